//! The worker side of the `bus` backend: `scalelab worker --connect ENDPOINT`.
//!
//! A DEALER that joins with the token, then runs its tasks one at a time, in
//! the order they come (the next may arrive while one runs), reporting
//! progress and heartbeats. It leaves when told to stop, when refused, or when
//! the master has been silent for its heartbeat timeout (the master vanished).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{MAX_MESSAGE, host_name, keys};
use std::cell::RefCell;

use crate::backends::process_worker;
use crate::backends::task_exec::{TaskEnv, TaskError, TaskInput, run_task};
use crate::backends::{Every, ProgressThrottle};
use crate::metrics::clocks::this_process_cpu;
use crate::wire::{self, BUS_PROTOCOL, Message};

/// How often a running task looks at the socket (heartbeats, stop).
const CHECK_PERIOD: Duration = Duration::from_millis(10);

/// Where to join and with what.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub endpoint: String,
    pub token: String,
    /// The master's CURVE public key: encrypt, and talk to that master only.
    pub server_key: Option<[u8; 32]>,
    /// How long to wait for the master's answer to the join.
    pub join_timeout: Duration,
}

/// The worker's connection to the master, with its heartbeat clocks.
struct Link {
    socket: zmq::Socket,
    heartbeat: Duration,
    silence: Duration,
    last_heard: Instant,
    last_sent: Instant,
    /// Tasks that arrived while another ran (the master sends the next one early).
    pending: VecDeque<Message>,
}

/// How a task ended on this side.
enum TaskEnd {
    Sum(u64, Vec<f32>),
    Stopped,
    Failed(String),
}

fn zmq_err(what: &str) -> impl Fn(zmq::Error) -> String + '_ {
    move |e| format!("cannot {what}: {e}")
}

impl Link {
    /// Sends without waiting: if the master is gone, its silence ends us anyway.
    fn send(&mut self, msg: &Message) -> Result<(), String> {
        match self.socket.send(wire::encode(msg), zmq::DONTWAIT) {
            Ok(()) | Err(zmq::Error::EAGAIN) => {
                self.last_sent = Instant::now();
                Ok(())
            }
            Err(e) => Err(format!("cannot send to the master: {e}")),
        }
    }

    /// Sends a heartbeat when one is due; fails once the master has been silent too long.
    fn tick(&mut self) -> Result<(), String> {
        if self.last_heard.elapsed() > self.silence {
            return Err(format!(
                "the master has been silent for {:.1} s; giving up",
                self.silence.as_secs_f64()
            ));
        }
        if self.last_sent.elapsed() >= self.heartbeat {
            self.send(&Message::Heartbeat {})?;
        }
        Ok(())
    }

    /// The next message from the master, waiting at most `wait`. A frame that
    /// is not a valid message is an error: the master would wait for an answer.
    fn next(&mut self, wait: Duration) -> Result<Option<Message>, String> {
        let ready = self
            .socket
            .poll(zmq::POLLIN, wait.as_millis() as i64)
            .map_err(zmq_err("poll the bus socket"))?;
        if ready == 0 {
            return Ok(None);
        }
        let body = match self.socket.recv_msg(zmq::DONTWAIT) {
            Ok(b) => b,
            Err(zmq::Error::EAGAIN) => return Ok(None),
            Err(e) => return Err(format!("cannot receive from the master: {e}")),
        };
        let mut extra = false;
        while self.socket.get_rcvmore().unwrap_or(false) {
            extra = true;
            let _ = self.socket.recv_msg(zmq::DONTWAIT);
        }
        self.last_heard = Instant::now();
        if extra {
            return Err("the master sent a message of several frames".into());
        }
        wire::decode(&body)
            .map(Some)
            .map_err(|e| format!("cannot read the master's message: {e}"))
    }

    /// Between chunks of a task: answers heartbeats, notices a stop or a silent master.
    fn check_in(&mut self) -> Result<bool, String> {
        self.tick()?;
        while let Some(m) = self.next(Duration::ZERO)? {
            match m {
                Message::Stop {} => return Ok(false),
                Message::Refused { reason } => {
                    return Err(format!("the master dropped this worker: {reason}"));
                }
                Message::Heartbeat {} => {}
                task @ Message::Task { .. } => self.pending.push_back(task),
                other => eprintln!("scalelab worker: ignoring {other:?} while busy"),
            }
        }
        Ok(true)
    }
}

fn cpu_ns() -> u64 {
    this_process_cpu().as_nanos() as u64
}

/// Joins the run at `opts.endpoint` and serves tasks until told to stop.
pub fn serve(opts: &JoinOptions) -> Result<(), String> {
    let zctx = zmq::Context::new();
    let socket = zctx
        .socket(zmq::DEALER)
        .map_err(zmq_err("create a socket"))?;
    // A short linger: a last result may still leave, an absent master cannot hold us.
    socket.set_linger(100).map_err(zmq_err("configure"))?;
    socket
        .set_maxmsgsize(MAX_MESSAGE)
        .map_err(zmq_err("configure"))?;
    if let Some(key) = &opts.server_key {
        keys::connect_as_client(&socket, key)?;
    }
    let mut handshakes = keys::HandshakeWatch::attach(&zctx, &socket)?;
    socket
        .connect(&opts.endpoint)
        .map_err(|e| format!("cannot connect to {}: {e}", opts.endpoint))?;
    let mut link = Link {
        socket,
        heartbeat: opts.join_timeout,
        silence: opts.join_timeout,
        last_heard: Instant::now(),
        last_sent: Instant::now(),
        pending: VecDeque::new(),
    };
    link.send(&Message::Join {
        protocol: BUS_PROTOCOL,
        token: opts.token.clone(),
        host: host_name(),
        pid: std::process::id(),
        cpu_ns: cpu_ns(),
    })?;
    let deadline = Instant::now() + opts.join_timeout;
    let (worker, heartbeat_ms, liveness) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match link.next(join_wait(left))? {
            Some(Message::Welcome {
                worker,
                heartbeat_ms,
                liveness,
            }) => break (worker, heartbeat_ms, liveness),
            Some(Message::Refused { reason }) => return Err(format!("refused: {reason}")),
            Some(Message::Stop {}) => return Ok(()),
            Some(_) => {}
            // A handshake that fails again and again will not succeed: say why now.
            None if handshakes.update().hopeless() => {
                let why = handshakes.seen.diagnosis(opts.server_key.is_some());
                return Err(format!(
                    "cannot join {}: {}",
                    opts.endpoint,
                    why.unwrap_or_default()
                ));
            }
            None if left.is_zero() => {
                let why = handshakes.update().diagnosis(opts.server_key.is_some());
                return Err(format!(
                    "no answer from {} within {:.1} s{}",
                    opts.endpoint,
                    opts.join_timeout.as_secs_f64(),
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
            None => {}
        }
    };
    link.heartbeat = Duration::from_millis(heartbeat_ms.clamp(1, 60_000) as u64);
    link.silence = link.heartbeat * liveness.clamp(2, 100);
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "scalelab worker: joined {} as worker {worker}",
            opts.endpoint
        );
    }
    loop {
        link.tick()?;
        let msg = match link.pending.pop_front() {
            Some(task) => Some(task),
            None => link.next(link.heartbeat)?,
        };
        match msg {
            None | Some(Message::Heartbeat {}) => {}
            Some(Message::Task {
                task,
                seed,
                numbers,
                workload,
                io,
            }) => {
                let io_token = io.as_ref().and_then(|t| t.token.clone());
                let side = process_worker::BusSide {
                    endpoint: &opts.endpoint,
                    token: io_token.as_deref().unwrap_or(&opts.token),
                };
                let input =
                    process_worker::task_input(task, seed, numbers, workload, io, Some(side));
                match input.map(|input| run_one(&mut link, &input))? {
                    Ok(TaskEnd::Sum(sum, mut latency_ms)) => {
                        latency_ms.truncate(wire::MAX_LATENCIES);
                        link.send(&Message::Done {
                            task,
                            sum,
                            cpu_ns: cpu_ns(),
                            latency_ms,
                        })?
                    }
                    Ok(TaskEnd::Stopped) => return Ok(()),
                    // The task failed, not this worker: say why and go on serving.
                    Ok(TaskEnd::Failed(reason)) => link.send(&Message::Failed { task, reason })?,
                    Err(e) => return Err(e),
                }
            }
            Some(Message::Stop {}) => return Ok(()),
            Some(Message::Refused { reason }) => {
                return Err(format!("the master dropped this worker: {reason}"));
            }
            Some(other) => eprintln!("scalelab worker: ignoring {other:?}"),
        }
    }
}

/// How long a joining worker waits for the master's answer before it looks at
/// its handshakes again: a tenth of a second, never past the join's deadline.
fn join_wait(left: Duration) -> Duration {
    left.min(CHECK_PERIOD * 10)
}

/// A running task's side of the link: progress, heartbeats, stop.
struct BusEnv<'a> {
    link: RefCell<&'a mut Link>,
    task: u32,
    throttle: ProgressThrottle,
    checks: RefCell<Every>,
    /// `Ok(true)` while the task may go on; `Ok(false)` once told to stop.
    state: RefCell<Result<bool, String>>,
}

impl<'a> BusEnv<'a> {
    /// A task's env; its first look at the socket is one `CHECK_PERIOD` away.
    fn starting(link: &'a mut Link, task: u32) -> Self {
        Self {
            link: RefCell::new(link),
            task,
            throttle: ProgressThrottle::new(),
            checks: RefCell::new(Every::period_from_now(CHECK_PERIOD)),
            state: RefCell::new(Ok(true)),
        }
    }
}

impl TaskEnv for BusEnv<'_> {
    /// Also looks at the socket every `CHECK_PERIOD` (heartbeats both ways, a stop),
    /// even while a request waits for its answer.
    fn cancelled(&self) -> bool {
        if matches!(*self.state.borrow(), Ok(true)) && self.checks.borrow_mut().due() {
            let r = self.link.borrow_mut().check_in();
            *self.state.borrow_mut() = r;
        }
        !matches!(*self.state.borrow(), Ok(true))
    }

    fn progress(&mut self, done: u64) {
        if self.throttle.due() {
            let progress = Message::Progress {
                task: self.task,
                done,
                cpu_ns: cpu_ns(),
            };
            if let Err(e) = self.link.get_mut().send(&progress) {
                *self.state.get_mut() = Err(e);
            }
        }
    }
}

/// Runs one task of any workload; `Err` when the link itself failed.
fn run_one(link: &mut Link, input: &TaskInput) -> Result<TaskEnd, String> {
    let mut env = BusEnv::starting(link, input.task);
    match run_task(&mut env, input) {
        Ok(out) => Ok(TaskEnd::Sum(out.sum, out.latencies_ms)),
        Err(TaskError::Failed(reason)) => Ok(TaskEnd::Failed(reason)),
        Err(TaskError::Cancelled) => match env.state.into_inner() {
            Ok(_) => Ok(TaskEnd::Stopped),
            Err(e) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link over an inproc pair, and the master's end of it.
    fn link(zctx: &zmq::Context, heartbeat: Duration, silence: Duration) -> (Link, zmq::Socket) {
        let master = zctx.socket(zmq::PAIR).unwrap();
        master.bind("inproc://worker-link-test").unwrap();
        let socket = zctx.socket(zmq::PAIR).unwrap();
        socket.connect("inproc://worker-link-test").unwrap();
        let link = Link {
            socket,
            heartbeat,
            silence,
            last_heard: Instant::now(),
            last_sent: Instant::now(),
            pending: VecDeque::new(),
        };
        (link, master)
    }

    fn heartbeats(master: &zmq::Socket) -> usize {
        let mut n = 0;
        while let Ok(b) = master.recv_bytes(zmq::DONTWAIT) {
            assert!(matches!(wire::decode(&b), Ok(Message::Heartbeat {})));
            n += 1;
        }
        n
    }

    /// A heartbeat goes out only once one is due, and sending anything puts
    /// the next off; a master silent past the limit ends the link.
    #[test]
    fn a_tick_sends_a_heartbeat_only_when_due_and_notices_a_silent_master() {
        let zctx = zmq::Context::new();
        let second = Duration::from_secs(1);
        let (mut link, master) = link(&zctx, second, second * 10);
        link.tick().unwrap();
        assert_eq!(heartbeats(&master), 0, "just sent: none due");
        link.last_sent = Instant::now() - second * 2;
        link.tick().unwrap();
        link.tick().unwrap();
        assert_eq!(heartbeats(&master), 1, "one due, then none");
        link.last_heard = Instant::now() - second * 11;
        let e = link.tick().unwrap_err();
        assert_eq!(e, "the master has been silent for 10.0 s; giving up");
    }

    #[test]
    fn a_joining_worker_looks_again_every_tenth_of_a_second_until_its_deadline() {
        assert_eq!(
            join_wait(Duration::from_secs(5)),
            Duration::from_millis(100)
        );
        assert_eq!(
            join_wait(Duration::from_millis(30)),
            Duration::from_millis(30)
        );
        assert_eq!(join_wait(Duration::ZERO), Duration::ZERO);
    }

    /// A running task looks at the socket once per `CHECK_PERIOD`, the first
    /// time one period after it starts, and no more once it has been told to
    /// stop. Each look sends a heartbeat here (the period is zero), so the
    /// master counts them. A trial the machine stalled past a period proves
    /// nothing and is run again.
    #[test]
    fn a_running_task_looks_at_the_socket_once_per_check_period() {
        let pause = || std::thread::sleep(CHECK_PERIOD + Duration::from_millis(2));
        'trial: for _ in 0..20 {
            let zctx = zmq::Context::new();
            let (mut link, master) = link(&zctx, Duration::ZERO, Duration::from_secs(60));
            let env = BusEnv::starting(&mut link, 7);
            // Three calls within one period: how many looks?
            let looks = |env: &BusEnv| {
                let t = Instant::now();
                let told = (0..3).fold(false, |told, _| env.cancelled() || told);
                (t.elapsed() < CHECK_PERIOD).then(|| (heartbeats(&master), told))
            };
            let Some(first) = looks(&env) else {
                continue 'trial;
            };
            assert_eq!(first, (0, false), "no look before the first period");
            pause();
            let Some(second) = looks(&env) else {
                continue 'trial;
            };
            assert_eq!(
                second,
                (1, false),
                "one look, then none until the next period"
            );
            pause();
            let Some(third) = looks(&env) else {
                continue 'trial;
            };
            assert_eq!(third, (1, false), "one look per period");
            master.send(wire::encode(&Message::Stop {}), 0).unwrap();
            pause();
            assert!(env.cancelled(), "the look after the stop sees it");
            assert_eq!(heartbeats(&master), 1);
            pause();
            assert!(env.cancelled());
            assert_eq!(heartbeats(&master), 0, "no look once told to stop");
            return;
        }
        panic!("every trial was stalled past a check period");
    }
}
