//! `bus`: workers fed over a ZeroMQ message bus (the chapter's E6), local
//! children of the run or `scalelab worker --connect` processes on other machines.
//!
//! The master binds a ROUTER; each worker is a DEALER that joins with the run's
//! token and then holds at most `PREFETCH` tasks (the load-balancing pattern:
//! the chapter's PUSH/PULL silently loses the tasks queued at a worker that
//! dies). The master knows which worker holds which task, and re-queues them
//! when that worker's process exits or its heartbeats stop. Only a result for
//! the task a worker is running counts; anything else is counted and dropped.
//! docs/PROTOCOL.md describes the conversation.

mod children;
mod inbox;
pub mod keys;
mod verify;
pub mod worker;

use crate::metrics::clocks::{child_exited as exited, kill_child as kill};
pub use crate::metrics::procinfo::host_name;
use children::LocalChild;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::backends::context::{BackendOutcome, Ending, RunContext};
use crate::backends::ledger::{Ledger, RetryPolicy};
use crate::backends::{EXIT_GRACE, Every, InFlight};
use crate::metrics::clocks::{CpuTimes, reap_child};
use crate::report::event::{BusEvent, BusTally, Event, join_command};
use crate::spec::HEARTBEAT_LIVENESS;
use crate::wire::{self, Message};
use crate::workload::io::same_token;

/// Environment variable through which local workers get the token (a command
/// line would show it to every user of the machine in `ps`).
pub const TOKEN_ENV: &str = "SCALELAB_BUS_TOKEN";
/// Messages above this size make ZeroMQ drop the sender's connection before
/// anything is allocated; between `MAX_FRAME` and this they are counted and dropped.
pub const MAX_MESSAGE: i64 = 1 << 20;
/// How long a local child may take to join before it counts as failed.
const JOIN_GRACE: Duration = Duration::from_secs(10);
/// Longest wait in the master's loop: bounds how late a cancel is noticed.
const TICK: Duration = Duration::from_millis(10);
/// Dropped frames reported one by one; past this only the tally counts them.
const REPORTED_DROPS: u64 = 32;
/// Longest host name kept from a join.
const MAX_HOST: usize = 255;
/// Tasks a worker holds at once when its tasks are short: the one it runs and
/// one waiting at the worker, so that it never idles for a round trip. All are
/// tracked and re-queued if the worker is lost.
const PREFETCH: usize = 2;
/// Tasks shorter than this are prefetched. Longer ones are not: a round trip
/// is nothing next to them, and a task waiting at a slow worker while a fast
/// one idles would cost far more.
const PREFETCH_BELOW: Duration = Duration::from_millis(20);

/// A worker that has joined.
struct Peer {
    /// ZeroMQ routing id of its connection.
    id: Vec<u8>,
    worker: u32,
    host: String,
    pid: u32,
    /// Index in `children` when the run started this worker itself.
    child: Option<usize>,
    running: Option<InFlight>,
    /// Tasks sent after `running`, waiting at the worker, in the order it runs them.
    queued: VecDeque<u32>,
    /// Its last task took less than `PREFETCH_BELOW`.
    short_tasks: bool,
    /// CPU time the worker last reported (its whole process).
    cpu_ns: u64,
    /// What it had used when it joined: its start-up, which is no task's.
    cpu_ns_at_join: u64,
    last_heard: Instant,
}

impl Peer {
    /// The CPU time a remote worker spent in this run: since it joined. (A
    /// local one's is counted from its exit instead, start-up included.)
    fn cpu_since_join(&self) -> CpuTimes {
        reported_cpu(self.cpu_ns.saturating_sub(self.cpu_ns_at_join))
    }
}

/// The master's side of the run.
struct Master<'a> {
    ctx: &'a RunContext,
    socket: zmq::Socket,
    endpoint: String,
    token: String,
    /// The master's CURVE public key (Z85) when the bus is encrypted.
    server_key: Option<String>,
    host: String,
    heartbeat: Duration,
    peers: Vec<Peer>,
    children: Vec<LocalChild>,
    /// The queue, retries, results and CPU totals.
    ledger: Ledger,
    next_worker: u32,
    tally: BusTally,
    /// Since when no worker has been connected, joined or starting (`None` while one is).
    unmanned_since: Option<Instant>,
    /// The joined count last reported in a `Waiting` event.
    waiting_shown: Option<u32>,
    /// Why the last worker was lost, for the reason a run gives when none is left.
    last_loss: Option<String>,
    /// Workers that declined the run's workload, with their reasons.
    declines: Vec<String>,
    /// Recomputes a sample of remote workers' results.
    verifier: verify::Verifier,
    /// Every remote worker's name ("worker 3 (pid 42 on box)"), kept after it
    /// leaves: a wrong sum may be found once it has gone.
    remote_names: std::collections::HashMap<u32, String>,
    /// Remote workers caught with a wrong sum (never welcomed back by number).
    evicted: std::collections::HashSet<u32>,
}

/// Binds the ROUTER the workers connect to, a CURVE server when `keys` are
/// given; returns it and its actual endpoint.
fn bind(
    zctx: &zmq::Context,
    addr: &str,
    keys: Option<&keys::ServerKeys>,
) -> Result<(zmq::Socket, String), String> {
    let fail = |what: &str, e: zmq::Error| format!("cannot {what} the bus socket: {e}");
    let s = zctx.socket(zmq::ROUTER).map_err(|e| fail("create", e))?;
    if let Some(keys) = keys {
        keys.serve_on(&s).map_err(|e| fail("encrypt", e))?;
    }
    // Never block on close: a task for a vanished worker is re-queued, not kept.
    s.set_linger(0).map_err(|e| fail("configure", e))?;
    // Sending to a peer that has gone fails instead of vanishing silently.
    s.set_router_mandatory(true)
        .map_err(|e| fail("configure", e))?;
    s.set_maxmsgsize(MAX_MESSAGE)
        .map_err(|e| fail("configure", e))?;
    s.bind(addr)
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let endpoint = s
        .get_last_endpoint()
        .map_err(|e| fail("read back", e))?
        .map_err(|_| "the bound endpoint is not UTF-8".to_string())?;
    Ok((s, endpoint))
}

/// `N` bytes from the kernel's random source.
fn kernel_random<const N: usize>() -> std::io::Result<[u8; N]> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b))?;
    Ok(b)
}

/// A fresh random token: 128 bits from the kernel, in hex.
pub fn fresh_token() -> Result<String, String> {
    let b = kernel_random::<16>().map_err(|e| format!("cannot make a token: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Peer {
    /// Tasks sent to this worker and not yet answered.
    fn held(&self) -> usize {
        self.running.is_some() as usize + self.queued.len()
    }

    /// How many tasks this worker should hold.
    fn capacity(&self) -> usize {
        if self.short_tasks { PREFETCH } else { 1 }
    }
}

impl<'a> Master<'a> {
    fn local_workers(&self) -> u32 {
        self.ctx.spec.bus.local_workers(self.ctx.spec.workers)
    }

    /// Every task has its result, and every result being checked has been.
    fn done(&self) -> bool {
        self.ledger.done() && self.verifier.pending() == 0
    }

    /// The ledger and the checker, the rest of the master (its socket first
    /// of all) dropped.
    fn into_parts(self) -> (Ledger, verify::Verifier) {
        (self.ledger, self.verifier)
    }

    /// Acts on recomputed results: a worker caught with a wrong sum is
    /// evicted, and every result it gave is struck out and run again elsewhere.
    fn take_verdicts(&mut self) -> Result<(), String> {
        for v in self.verifier.verdicts() {
            if v.holds() || !self.evicted.insert(v.worker) {
                continue;
            }
            let name = self
                .remote_names
                .get(&v.worker)
                .cloned()
                .unwrap_or_else(|| format!("worker {}", v.worker));
            if let Some(i) = self.peers.iter().position(|p| p.worker == v.worker) {
                let p = self.peers.remove(i);
                let reason = format!("task {} failed its spot-check", v.task);
                let _ = self.send(&p.id, &Message::Refused { reason });
                self.ledger.add_cpu(p.cpu_since_join());
                let held = p.running.map(|t| t.task).into_iter().chain(p.queued);
                self.ledger.return_waiting(held);
            }
            let reopened = self.ledger.reopen_worker(v.worker);
            let evidence = format!(
                "{name}: task {} summed to {}, not {}; its {} result(s) are run again",
                v.task,
                v.claimed,
                v.expected,
                reopened.len()
            );
            self.last_loss = Some(format!("{name} was evicted for a wrong sum"));
            self.verifier.evicted(evidence.clone());
            self.ctx.emit(Event::Bus(BusEvent::Evicted {
                worker: v.worker,
                reason: evidence,
                reopened,
            }));
        }
        Ok(())
    }

    fn send(&self, id: &[u8], msg: &Message) -> Result<(), zmq::Error> {
        self.socket.send(id, zmq::SNDMORE | zmq::DONTWAIT)?;
        self.socket.send(wire::encode(msg), zmq::DONTWAIT)
    }

    fn peer_at(&self, id: &[u8]) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    /// Tops every worker up to `PREFETCH` tasks.
    fn dispatch(&mut self) -> Result<(), String> {
        let mut unreachable = Vec::new();
        for i in 0..self.peers.len() {
            while self.peers[i].held() < self.peers[i].capacity() {
                let Some(task) = self.ledger.next_task() else {
                    break;
                };
                let spec = &self.ctx.spec;
                let msg = wire::task_message(spec, task, self.ctx.io_addr(), self.ctx.io_token());
                if let Err(e) = self.send(&self.peers[i].id, &msg) {
                    self.ledger.put_back(task);
                    unreachable.push((self.peers[i].id.clone(), e));
                    break;
                }
                if self.peers[i].running.is_some() {
                    self.peers[i].queued.push_back(task);
                } else {
                    let cpu_ns = self.peers[i].cpu_ns;
                    self.begin(i, task, cpu_ns);
                }
            }
        }
        for (id, e) in unreachable {
            if let Some(i) = self.peer_at(&id) {
                self.lose(Some(i), None, format!("cannot be reached ({e})"))?;
            }
        }
        Ok(())
    }

    /// Worker `i` starts `task` now (it had nothing before it).
    fn begin(&mut self, i: usize, task: u32, cpu_ns_at_start: u64) {
        let start_s = self.ctx.now_s();
        let p = &mut self.peers[i];
        p.running = Some(InFlight::new(task, start_s, cpu_ns_at_start));
        self.ctx.emit(Event::TaskStarted {
            task,
            worker: p.worker,
            at_s: start_s,
        });
    }

    /// Sends heartbeats and gives up on workers silent for too long.
    fn beat(&mut self) -> Result<(), String> {
        let silence = self.heartbeat * HEARTBEAT_LIVENESS;
        for p in &self.peers {
            let _ = self.send(&p.id, &Message::Heartbeat {});
        }
        while let Some(i) = self
            .peers
            .iter()
            .position(|p| p.last_heard.elapsed() > silence)
        {
            self.lose(
                Some(i),
                None,
                format!("missed its heartbeats for {:.1} s", silence.as_secs_f64()),
            )?;
        }
        Ok(())
    }

    /// Notices local children that exited, or never joined.
    fn check_children(&mut self) -> Result<(), String> {
        for c in 0..self.children.len() {
            let ch = &self.children[c];
            if !ch.alive {
                continue;
            }
            let why = if exited(ch.pid) {
                "ended"
            } else if !ch.joined && ch.started.elapsed() > JOIN_GRACE {
                "did not join in time"
            } else {
                continue;
            };
            let peer = self.peers.iter().position(|p| p.child == Some(c));
            self.lose(peer, Some(c), why.into())?;
        }
        Ok(())
    }

    /// A worker is gone: reap it if it is ours, re-queue its task, replace it if local.
    fn lose(
        &mut self,
        peer: Option<usize>,
        child: Option<usize>,
        why: String,
    ) -> Result<(), String> {
        let peer = peer.map(|i| self.peers.remove(i));
        let child = child.or(peer.as_ref().and_then(|p| p.child));
        let mut exit = None;
        let (worker, pid) = match (&peer, child) {
            (_, Some(c)) => {
                let ch = &mut self.children[c];
                if ch.alive {
                    kill(ch.pid);
                    ch.alive = false;
                    if let Some((how, cpu)) = reap_child(ch.pid) {
                        self.ledger.add_cpu(cpu);
                        exit = Some(how);
                    }
                }
                (ch.worker, ch.pid)
            }
            (Some(p), None) => {
                self.ledger.add_cpu(p.cpu_since_join());
                (p.worker, p.pid)
            }
            (None, None) => unreachable!("a lost worker is a peer or a child"),
        };
        let place = match &peer {
            Some(p) if child.is_none() => format!("pid {pid} on {}", p.host),
            _ => format!("pid {pid}"),
        };
        let reason = match exit {
            Some(how) => format!("worker {worker} ({place}) {why} and {how}"),
            None => format!("worker {worker} ({place}) {why}"),
        };
        self.last_loss = Some(reason.clone());
        let (requeued, waiting) = match peer {
            Some(p) => (p.running.map(|t| t.task), p.queued),
            None => (None, VecDeque::new()),
        };
        // Tasks that were only waiting at the worker go back first in line, in order.
        self.ledger.return_waiting(waiting.into_iter());
        self.ledger.worker_lost();
        self.ctx.emit(Event::WorkerLost {
            worker,
            os_id: pid,
            reason: reason.clone(),
            requeued,
        });
        if let Some(task) = requeued {
            self.ledger.requeue_lost(task, &reason)?;
        }
        // Keep the local pool at strength while work remains, within a bound.
        let slots = crate::backends::process_slots(self.local_workers());
        if child.is_some() && !self.done() && self.children.len() < slots {
            self.spawn_local()
                .map_err(|e| format!("{reason}; no replacement: {e}"))?;
        }
        let anyone = !self.peers.is_empty() || self.children.iter().any(|c| c.alive);
        if !anyone && self.ctx.spec.bus.remote_workers == 0 && !self.done() {
            return Err(format!(
                "{reason}, and no worker is left to run the remaining tasks"
            ));
        }
        Ok(())
    }

    /// Tells every worker the run is over and ends the local ones: gently when
    /// `graceful`, else at once. Collects everyone's CPU time.
    fn shut_down(&mut self, graceful: bool) {
        // Local workers are killed on a cancel: a `stop` would only sit in the
        // socket while it lingers.
        for p in self.peers.iter().filter(|p| graceful || p.child.is_none()) {
            let _ = self.send(&p.id, &Message::Stop {});
        }
        if !graceful {
            for c in self.children.iter().filter(|c| c.alive) {
                kill(c.pid);
            }
        }
        // Only a child that joined was sent a `stop`. One still starting up when
        // the last result came in (8 workers racing 8 short tasks on 2 cores)
        // holds no task and would never hear it: waiting for it cost the whole
        // grace period, a second in one bus run out of five.
        let told: Vec<usize> = self.peers.iter().filter_map(|p| p.child).collect();
        let deadline = Instant::now() + EXIT_GRACE;
        for (i, c) in self
            .children
            .iter_mut()
            .enumerate()
            .filter(|(_, c)| c.alive)
        {
            let asked = (graceful && told.contains(&i)).then_some("being told");
            super::end_worker_process(self.ctx, &mut self.ledger, c.worker, c.pid, asked, deadline);
            c.alive = false;
        }
        for p in self.peers.iter().filter(|p| p.child.is_none()) {
            self.ledger.add_cpu(p.cpu_since_join());
        }
        // Give the `stop` to remote workers a moment to leave; a cancel must stay prompt.
        let linger = if graceful { 200 } else { 20 };
        let _ = self.socket.set_linger(linger);
    }

    /// True while some worker is connected, or a local one is starting.
    fn manned(&self) -> bool {
        !self.peers.is_empty() || self.children.iter().any(|c| c.alive)
    }

    /// Says how many workers have joined when that changes while some are
    /// missing, and fails the run once no worker at all has been connected for
    /// the join timeout: a bus whose workers never come must not wait unseen.
    fn watch_attendance(&mut self) -> Result<(), String> {
        let joined = self.peers.len() as u32;
        let expected = self.ctx.spec.workers;
        if self.ctx.spec.bus.remote_workers > 0
            && joined < expected
            && self.waiting_shown != Some(joined)
        {
            self.ctx.emit(Event::Bus(BusEvent::Waiting {
                joined,
                expected,
                join: join_command(&self.endpoint, &self.token, self.server_key.as_deref()),
            }));
            self.waiting_shown = Some(joined);
        } else if joined >= expected {
            self.waiting_shown = None;
        }
        if self.manned() {
            self.unmanned_since = None;
            return Ok(());
        }
        let since = *self.unmanned_since.get_or_insert_with(Instant::now);
        let limit_s = self.ctx.spec.bus.join_timeout_s;
        if limit_s == 0 || since.elapsed() < Duration::from_secs(limit_s as u64) {
            return Ok(());
        }
        let why = match &self.last_loss {
            None => format!(
                "no worker joined within {limit_s} s (0 of {expected}) at {}; \
                 start them with the join command shown when the run began",
                self.endpoint
            ),
            Some(last) => {
                format!("no worker has been connected for {limit_s} s; the last one: {last}")
            }
        };
        Err(format!("{why} (--join-timeout 0 waits without end)"))
    }

    /// The master's loop: until every task is done, the run is cancelled, or it fails.
    fn serve(&mut self) -> Result<(), String> {
        let mut beat = Every::period_from_now(self.heartbeat);
        let mut check = Every::starting_now(TICK);
        while !self.done() && !self.ctx.cancelled() {
            self.socket
                .poll(zmq::POLLIN, TICK.as_millis() as i64)
                .map_err(|e| format!("the bus socket failed: {e}"))?;
            self.drain_inbox()?;
            let now = Instant::now();
            if check.due_at(now) {
                self.check_children()?;
                self.take_verdicts()?;
                self.watch_attendance()?;
            }
            if beat.due_at(now) {
                self.beat()?;
            }
            self.dispatch()?;
        }
        Ok(())
    }
}

/// CPU time a remote worker reported (user and system together, counted as user).
fn reported_cpu(ns: u64) -> CpuTimes {
    CpuTimes {
        user_s: ns as f64 / 1e9,
        sys_s: 0.0,
    }
}

/// Runs every task on the bus: `workers - remote_workers` local children plus
/// whoever joins with the token.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    let failed = BackendOutcome::failed;
    let params = &ctx.spec.bus;
    let token = match params.token.clone().map_or_else(fresh_token, Ok) {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    let keys = match (params.encrypted(), &params.keys) {
        (false, _) => None,
        (true, Some(path)) => Some(keys::ServerKeys::load_or_create(path.as_ref())),
        (true, None) => Some(keys::ServerKeys::generate()),
    };
    let keys = match keys.transpose() {
        Ok(k) => k,
        Err(e) => return failed(format!("cannot encrypt the bus: {e}")),
    };
    let zctx = zmq::Context::new();
    let (socket, endpoint) = match bind(&zctx, &params.bind, keys.as_ref()) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let server_key = keys.as_ref().map(keys::ServerKeys::public_z85);
    ctx.emit(Event::Bus(BusEvent::Listening {
        endpoint: endpoint.clone(),
        token: token.clone(),
        server_key: server_key.clone(),
    }));
    let lowered = (ctx.options.worker_nice, ctx.options.worker_sched_idle);
    let verifier = match verify::Verifier::new(&ctx.spec, lowered) {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let mut master = Master {
        ctx,
        socket,
        endpoint,
        token,
        server_key,
        host: host_name(),
        heartbeat: Duration::from_millis(params.heartbeat_ms as u64),
        peers: Vec::new(),
        children: Vec::new(),
        ledger: Ledger::new(&ctx.spec, RetryPolicy::BUS),
        next_worker: 0,
        tally: BusTally::default(),
        unmanned_since: None,
        waiting_shown: None,
        last_loss: None,
        declines: Vec::new(),
        verifier,
        remote_names: Default::default(),
        evicted: Default::default(),
    };
    let local = master.local_workers();
    let result = (0..local)
        .try_for_each(|_| master.spawn_local())
        .and_then(|()| master.serve());
    let ending = master.ledger.ending(result);
    master.shut_down(matches!(ending, Ending::Completed));
    ctx.emit(Event::Bus(BusEvent::Tally(master.tally)));
    // The master (and its socket) goes before the ZeroMQ context it belongs to:
    // ending a context waits for its sockets to close.
    let (mut ledger, verifier) = master.into_parts();
    let (verification, checker_cpu) = verifier.finish();
    ledger.add_cpu(checker_cpu);
    let mut outcome = ledger.outcome(ending);
    outcome.verification = verification;
    drop(zctx);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "a"));
    }

    #[test]
    fn fresh_tokens_differ_and_are_hex() {
        let (a, b) = (fresh_token().unwrap(), fresh_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn binds_loopback_on_an_ephemeral_port() {
        let z = zmq::Context::new();
        let (_s, ep) = bind(&z, "tcp://127.0.0.1:*", None).unwrap();
        let port: u16 = ep
            .strip_prefix("tcp://127.0.0.1:")
            .unwrap()
            .parse()
            .unwrap();
        assert!(port > 0);
    }
}
