//! `threads`: a pool of native OS threads pulling tasks from a shared queue
//! (what `multiprocessing.pool.ThreadPool.map` would be without a GIL).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::ProgressThrottle;
use crate::engine::event::{Event, TaskRecord, WorkerKind};
use crate::engine::{BackendOutcome, Ending, RunContext};
use crate::metrics::clocks::{
    CpuTimes, nice_this_thread, this_thread_cpu, this_thread_id, this_thread_times,
};
use crate::workload::cpu::CpuTask;

/// Runs every task on `spec.workers` threads; returns when all have ended.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    let next_task = AtomicU32::new(0);
    let records = Mutex::new(Vec::with_capacity(ctx.spec.tasks as usize));
    let mut cpu = CpuTimes::default();
    let mut failure = None;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..ctx.spec.workers)
            .map(|w| {
                let (next_task, records) = (&next_task, &records);
                std::thread::Builder::new()
                    .name(format!("scalelab-worker-{w}"))
                    .spawn_scoped(scope, move || worker(ctx, w, next_task, records))
            })
            .collect();
        for (w, h) in handles.into_iter().enumerate() {
            match h
                .map_err(|e| e.to_string())
                .and_then(|h| h.join().map_err(|_| format!("worker thread {w} panicked")))
            {
                Ok(t) => cpu = cpu + t,
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
    }
}

/// One worker thread: takes tasks until none are left or the run is cancelled.
fn worker(
    ctx: &RunContext,
    w: u32,
    next_task: &AtomicU32,
    records: &Mutex<Vec<TaskRecord>>,
) -> CpuTimes {
    nice_this_thread(ctx.options.worker_nice);
    ctx.emit(Event::WorkerStarted {
        worker: w,
        kind: WorkerKind::Thread,
        os_id: this_thread_id(),
    });
    let slot = w as usize;
    loop {
        if ctx.cancelled() {
            break;
        }
        let task = next_task.fetch_add(1, Ordering::Relaxed);
        if task >= ctx.spec.tasks {
            break;
        }
        let start_s = ctx.now_s();
        let cpu0 = this_thread_cpu();
        ctx.emit(Event::TaskStarted {
            task,
            worker: w,
            at_s: start_s,
        });
        let mut throttle = ProgressThrottle::new();
        let mut reported = 0;
        let kernel = CpuTask::new(ctx.spec.seed, task as u64, ctx.spec.numbers_per_task);
        let sum = kernel.run(|done| {
            if throttle.due() {
                ctx.meter.add_numbers(slot, done - reported);
                ctx.meter
                    .set_cpu_ns(slot, this_thread_cpu().as_nanos() as u64);
                reported = done;
                ctx.emit(Event::Progress {
                    task,
                    worker: w,
                    done,
                });
            }
            !ctx.cancelled()
        });
        let cpu1 = this_thread_cpu();
        ctx.meter.set_cpu_ns(slot, cpu1.as_nanos() as u64);
        let Some(sum) = sum else { break };
        ctx.meter
            .add_numbers(slot, ctx.spec.numbers_per_task - reported);
        let record = TaskRecord {
            task,
            worker: w,
            sum,
            start_s,
            end_s: ctx.now_s(),
            cpu_s: (cpu1 - cpu0).as_secs_f64(),
        };
        ctx.emit(Event::TaskFinished(record.clone()));
        records
            .lock()
            .expect("no worker panics holding it")
            .push(record);
    }
    this_thread_times()
}
