//! `processes`: a pool of child processes of scalelab itself (`scalelab worker`),
//! fed task descriptions over stdin and answering over stdout (the chapter's
//! `multiprocessing.Pool`). A child that dies is noticed when its pipe closes;
//! its task is re-run once on another worker, or the run fails naming it.

use std::process::{ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::ledger::{Ledger, RetryPolicy};
use super::{EXIT_GRACE, InFlight};
use crate::backends::context::{BackendOutcome, RunContext};
use crate::metrics::clocks::{kill_child as kill, reap_child};
use crate::report::event::{Event, WorkerKind};
use crate::wire::{FrameError, Message, read_frame, task_message, write_frame};

/// What a reader thread passes on from a child's stdout.
enum FromChild {
    Msg(usize, Message),
    Gone(usize, String),
}

/// One child process and what the master knows of it.
struct Child {
    worker: u32,
    pid: u32,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
    task: Option<InFlight>,
    cpu_ns: u64,
    alive: bool,
}

/// Starts `scalelab worker` as a child that dies with this process.
fn spawn_child(
    ctx: &RunContext,
    slot: usize,
    worker: u32,
    tx: &Sender<FromChild>,
) -> Result<Child, String> {
    let exe = ctx
        .options
        .worker_exe()
        .map_err(|e| format!("cannot find the scalelab executable: {e}"))?;
    // No pre_exec hook: std can then start the child with posix_spawn (vfork),
    // several times cheaper than fork + exec. The child binds itself to us.
    let mut cmd = Command::new(&exe);
    cmd.arg("worker")
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .arg("--nice")
        .arg(ctx.options.worker_nice.to_string())
        .args(ctx.options.worker_sched_idle.then_some("--idle"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start worker {worker} ({}): {e}", exe.display()))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let tx = tx.clone();
    let reader = std::thread::Builder::new()
        .name(format!("scalelab-pipe-{worker}"))
        .spawn(move || {
            loop {
                match read_frame(&mut stdout) {
                    Ok(m) => {
                        if tx.send(FromChild::Msg(slot, m)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let why = match e {
                            FrameError::Eof => "closed its output".to_string(),
                            e => format!("sent a bad frame ({e})"),
                        };
                        let _ = tx.send(FromChild::Gone(slot, why));
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start a reader thread: {e}"))?;
    Ok(Child {
        worker,
        pid,
        stdin,
        reader: Some(reader),
        task: None,
        cpu_ns: 0,
        alive: true,
    })
}

/// The master's view of the run: its children, and the ledger of its tasks.
struct Pool<'a> {
    ctx: &'a RunContext,
    tx: Sender<FromChild>,
    children: Vec<Child>,
    ledger: Ledger,
    next_worker: u32,
}

impl<'a> Pool<'a> {
    fn spawn(&mut self) -> Result<(), String> {
        let slot = self.children.len();
        let worker = self.next_worker;
        let child = spawn_child(self.ctx, slot, worker, &self.tx)?;
        self.next_worker += 1;
        self.children.push(child);
        // Its first task goes down the pipe at once: the child finds it as soon
        // as it has started, while the next children are still being spawned.
        self.feed(slot)
    }

    /// Gives the child at `slot` its next task, or closes its input when none is left.
    fn feed(&mut self, slot: usize) -> Result<(), String> {
        let Some(task) = self.ledger.next_task() else {
            return Ok(());
        };
        let spec = &self.ctx.spec;
        let c = &mut self.children[slot];
        let msg = task_message(spec, task, self.ctx.io_addr(), None);
        let start_s = self.ctx.now_s();
        c.task = Some(InFlight::new(task, start_s, c.cpu_ns));
        self.ctx.emit(Event::TaskStarted {
            task,
            worker: c.worker,
            at_s: start_s,
        });
        if let Some(stdin) = c.stdin.as_mut() {
            // A write error means the child died: its reader reports it.
            let _ = write_frame(stdin, &msg);
        }
        Ok(())
    }

    fn handle(&mut self, msg: FromChild) -> Result<(), String> {
        match msg {
            FromChild::Msg(slot, Message::Hello { pid, cpu_ns }) => {
                let expected = self.children[slot].pid;
                if pid != expected {
                    return self.lose(slot, format!("announced pid {pid}, not {expected}"));
                }
                let c = &mut self.children[slot];
                // The child's start-up is the run's CPU (its exit counts it),
                // but no task's: its first task counts from here, even when
                // it was handed over before the child said hello.
                c.cpu_ns = cpu_ns;
                if let Some(t) = c.task.as_mut() {
                    t.cpu_ns_at_start = cpu_ns;
                }
                self.ctx.emit(Event::WorkerStarted {
                    worker: c.worker,
                    kind: WorkerKind::Process,
                    os_id: pid,
                });
                if self.children[slot].task.is_none() {
                    self.feed(slot)
                } else {
                    Ok(())
                }
            }
            FromChild::Msg(slot, Message::Progress { task, done, cpu_ns }) => {
                let per_task = self.ledger.per_task();
                let c = &mut self.children[slot];
                let Some(held) = c.task.as_mut().filter(|t| t.task == task) else {
                    return self.lose(
                        slot,
                        format!("reported progress on task {task} it does not hold"),
                    );
                };
                let drawn = held.progress(done, per_task);
                c.cpu_ns = cpu_ns;
                self.ctx.meter.add_numbers(slot, drawn);
                self.ctx.meter.set_cpu_ns(slot, cpu_ns);
                self.ctx.emit(Event::Progress {
                    task,
                    worker: c.worker,
                    done,
                });
                Ok(())
            }
            FromChild::Msg(
                slot,
                Message::Done {
                    task,
                    sum,
                    cpu_ns,
                    latency_ms,
                },
            ) => {
                // Checked while the child still holds the task, so that losing
                // the child re-queues it.
                if let Err(why) = self.ledger.check_result(sum, &latency_ms) {
                    return self.lose(
                        slot,
                        format!("sent an impossible result for task {task} ({why})"),
                    );
                }
                self.ctx.meter.add_requests(slot, latency_ms.len() as u64);
                self.ledger.add_latencies(latency_ms);
                let c = &mut self.children[slot];
                let Some(held) = c.task.take().filter(|t| t.task == task) else {
                    return self.lose(slot, format!("returned task {task} it does not hold"));
                };
                c.cpu_ns = cpu_ns;
                let worker = c.worker;
                self.ctx.meter.set_cpu_ns(slot, cpu_ns);
                self.ctx
                    .meter
                    .add_numbers(slot, held.rest(self.ledger.per_task()));
                // A child runs one task at a time and gets each task once: the
                // ledger has never seen this one finish.
                if let Some(record) =
                    self.ledger
                        .finish(&held, worker, sum, self.ctx.now_s(), cpu_ns)
                {
                    self.ctx.emit(Event::TaskFinished(record));
                }
                self.feed(slot)
            }
            FromChild::Msg(slot, Message::Failed { task, reason }) => {
                let c = &mut self.children[slot];
                if c.task.as_ref().map(|t| t.task) != Some(task) {
                    return self.lose(
                        slot,
                        format!("reported failure of task {task} it does not hold"),
                    );
                }
                c.task = None;
                Err(format!("worker {} (pid {}): {reason}", c.worker, c.pid))
            }
            FromChild::Msg(slot, other) => {
                self.lose(slot, format!("sent an unexpected message: {other:?}"))
            }
            FromChild::Gone(slot, why) => self.lose(slot, why),
        }
    }

    /// A child died or misbehaved: reap it, re-queue its task once, replace it.
    fn lose(&mut self, slot: usize, why: String) -> Result<(), String> {
        let c = &mut self.children[slot];
        if !c.alive {
            return Ok(());
        }
        kill(c.pid);
        c.alive = false;
        c.stdin = None;
        let exit = reap_child(c.pid).map(|(exit, cpu)| {
            self.ledger.add_cpu(cpu);
            exit
        });
        let reason = match exit {
            Some(exit) => format!("worker {} (pid {}) {why} and {exit}", c.worker, c.pid),
            None => format!("worker {} (pid {}) {why}", c.worker, c.pid),
        };
        let (worker, pid) = (c.worker, c.pid);
        let requeued = c.task.take().map(|t| t.task);
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
        // Keep the pool at strength while work remains, within a bound on replacements.
        if !self.done() && self.children.len() < super::process_slots(self.ctx.spec.workers) {
            self.spawn()
                .map_err(|e| format!("{reason}; no replacement: {e}"))?;
        }
        if !self.ledger.queue_is_empty() && !self.children.iter().any(|c| c.alive) {
            return Err(format!(
                "{reason}, and no worker is left to run the remaining tasks"
            ));
        }
        Ok(())
    }

    fn done(&self) -> bool {
        self.ledger.done()
    }

    /// Ends every child still alive: gently (closed input) when `graceful`,
    /// otherwise at once; reaps them all and joins their readers.
    fn shut_down(&mut self, graceful: bool) {
        for c in self.children.iter_mut().filter(|c| c.alive) {
            c.stdin = None;
            if !graceful {
                kill(c.pid);
            }
        }
        let deadline = Instant::now() + EXIT_GRACE;
        for c in self.children.iter_mut().filter(|c| c.alive) {
            let asked = graceful.then_some("its input closing");
            super::end_worker_process(self.ctx, &mut self.ledger, c.worker, c.pid, asked, deadline);
            c.alive = false;
        }
        for c in &mut self.children {
            if let Some(r) = c.reader.take() {
                let _ = r.join();
            }
        }
    }
}

/// Runs every task on `spec.workers` child processes.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    let (tx, rx): (Sender<FromChild>, Receiver<FromChild>) = unbounded();
    let mut pool = Pool {
        ctx,
        tx,
        children: Vec::new(),
        ledger: Ledger::new(&ctx.spec, RetryPolicy::PROCESSES),
        next_worker: 0,
    };
    let mut result = (0..ctx.spec.workers).try_for_each(|_| pool.spawn());
    while result.is_ok() && !pool.done() && !ctx.cancelled() {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(msg) => result = pool.handle(msg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => unreachable!("the pool holds a sender"),
        }
    }
    let ending = pool.ledger.ending(result);
    pool.shut_down(matches!(ending, super::context::Ending::Completed));
    pool.ledger.outcome(ending)
}
