//! `threads`: a pool of native OS threads pulling tasks from a shared queue
//! (what `multiprocessing.pool.ThreadPool.map` would be without a GIL).
//! The `gil` backend runs the same pool with its lock hooked in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ProgressThrottle;
use super::task_exec::{TaskEnv, TaskError, TaskInput, run_task};
use crate::backends::context::{BackendOutcome, Ending, RunContext};
use crate::metrics::clocks::{
    CpuTimes, lower_this_thread, this_thread_cpu, this_thread_id, this_thread_times,
};
use crate::report::event::{Event, TaskRecord, WorkerKind};

/// Runs every task on `spec.workers` threads; returns when all have ended.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    run_pool(ctx, |env| env)
}

/// A worker thread's side of a task: progress, meter and cancel.
pub struct ThreadEnv<'a> {
    pub ctx: &'a RunContext,
    pub worker: u32,
    task: u32,
    throttle: ProgressThrottle,
    reported: u64,
}

impl<'a> ThreadEnv<'a> {
    pub(crate) fn new(ctx: &'a RunContext, worker: u32) -> Self {
        Self {
            ctx,
            worker,
            task: 0,
            throttle: ProgressThrottle::new(),
            reported: 0,
        }
    }

    fn begin(&mut self, task: u32) {
        self.task = task;
        self.reported = 0;
    }

    /// Brings the meter up to date with the task's numbers and the thread's CPU clock.
    fn settle(&mut self, done: u64) {
        let slot = self.worker as usize;
        self.ctx.meter.add_numbers(slot, done - self.reported);
        self.ctx
            .meter
            .set_cpu_ns(slot, this_thread_cpu().as_nanos() as u64);
        self.reported = done;
    }
}

impl TaskEnv for ThreadEnv<'_> {
    fn cancelled(&self) -> bool {
        self.ctx.cancelled()
    }

    fn progress(&mut self, done: u64) {
        if self.throttle.due() {
            self.settle(done);
            self.ctx.emit(Event::Progress {
                task: self.task,
                worker: self.worker,
                done,
            });
        }
    }

    fn request_done(&mut self) {
        self.ctx.meter.add_requests(self.worker as usize, 1);
    }
}

/// The pool: `wrap` turns each worker's `ThreadEnv` into the env its tasks run in.
pub fn run_pool<'a, E: TaskEnv + AsMutThreadEnv<'a>>(
    ctx: &'a RunContext,
    wrap: impl Fn(ThreadEnv<'a>) -> E + Sync,
) -> BackendOutcome {
    let next_task = AtomicU32::new(0);
    let records = Mutex::new(Vec::with_capacity(ctx.spec.tasks as usize));
    let latencies = Mutex::new(Vec::new());
    let mut cpu = CpuTimes::default();
    let mut failure = None;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ctx.spec.workers)
            .map(|w| {
                let (next_task, records, latencies, wrap) =
                    (&next_task, &records, &latencies, &wrap);
                std::thread::Builder::new()
                    .name(format!("scalelab-worker-{w}"))
                    .spawn_scoped(scope, move || {
                        let env = wrap(ThreadEnv::new(ctx, w));
                        worker(env, next_task, records, latencies)
                    })
            })
            .collect();
        for (w, h) in handles.into_iter().enumerate() {
            let joined = h
                .map_err(|e| format!("cannot start worker thread {w}: {e}"))
                .and_then(|h| h.join().map_err(|_| format!("worker thread {w} panicked")));
            match joined {
                Ok(Ok(t)) => cpu = cpu + t,
                Ok(Err((t, why))) => {
                    cpu = cpu + t;
                    failure.get_or_insert(why);
                }
                Err(e) => {
                    ctx.cancel_internal();
                    failure.get_or_insert(e);
                }
            }
        }
    });
    let ending = match failure {
        Some(why) => Ending::Failed(why),
        None if ctx.cancelled() => Ending::Cancelled,
        None => Ending::Completed,
    };
    BackendOutcome {
        records: records.into_inner().unwrap_or_default(),
        cpu,
        ending,
        workers_lost: 0,
        latencies_ms: latencies.into_inner().unwrap_or_default(),
        gil: None,
        verification: None,
    }
}

/// Gives the pool access to the plain thread env inside a wrapping env.
pub trait AsMutThreadEnv<'a> {
    fn thread_env(&mut self) -> &mut ThreadEnv<'a>;
    /// Called when the worker starts and ends (the GIL takes and drops its lock here).
    fn on_start(&mut self) {}
    fn on_exit(&mut self) {}
}

impl<'a> AsMutThreadEnv<'a> for ThreadEnv<'a> {
    fn thread_env(&mut self) -> &mut ThreadEnv<'a> {
        self
    }
}

type WorkerResult = Result<CpuTimes, (CpuTimes, String)>;

/// One worker thread: takes tasks until none are left, the run is cancelled, or a task fails.
fn worker<'a, E: TaskEnv + AsMutThreadEnv<'a>>(
    mut env: E,
    next_task: &AtomicU32,
    records: &Mutex<Vec<TaskRecord>>,
    latencies: &Mutex<Vec<f32>>,
) -> WorkerResult {
    let (ctx, w) = {
        let te = env.thread_env();
        (te.ctx, te.worker)
    };
    lower_this_thread(ctx.options.worker_nice, ctx.options.worker_sched_idle);
    ctx.emit(Event::WorkerStarted {
        worker: w,
        kind: WorkerKind::Thread,
        os_id: this_thread_id(),
    });
    env.on_start();
    let mut failure = None;
    while !ctx.cancelled() {
        let task = next_task.fetch_add(1, Ordering::Relaxed);
        if task >= ctx.spec.tasks {
            break;
        }
        let start_s = ctx.now_s();
        let cpu0 = this_thread_cpu();
        env.thread_env().begin(task);
        ctx.emit(Event::TaskStarted {
            task,
            worker: w,
            at_s: start_s,
        });
        let input = TaskInput {
            task,
            seed: ctx.spec.seed,
            numbers: ctx.spec.numbers_per_task,
            workload: ctx.spec.workload,
            io: ctx.spec.io,
            io_addr: ctx.io_addr(),
            io_token: None,
        };
        let out = match run_task(&mut env, &input) {
            Ok(out) => out,
            Err(TaskError::Cancelled) => break,
            Err(TaskError::Failed(why)) => {
                // Stop the other workers now, not when this one is joined:
                // one may wait on a request that will never be answered.
                ctx.cancel_internal();
                failure = Some(why);
                break;
            }
        };
        let done = ctx.spec.total_numbers() / ctx.spec.tasks as u64;
        env.thread_env().settle(done);
        let record = TaskRecord {
            task,
            worker: w,
            sum: out.sum,
            start_s,
            end_s: ctx.now_s(),
            cpu_s: (this_thread_cpu() - cpu0).as_secs_f64(),
        };
        ctx.emit(Event::TaskFinished(record.clone()));
        records
            .lock()
            .expect("no worker panics holding it")
            .push(record);
        latencies
            .lock()
            .expect("no worker panics holding it")
            .extend(out.latencies_ms);
    }
    env.on_exit();
    let times = this_thread_times();
    match failure {
        None => Ok(times),
        Some(why) => Err((times, why)),
    }
}
