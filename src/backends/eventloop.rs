//! `eventloop`: one thread runs every task as a cooperative coroutine on a
//! tokio current-thread runtime (the chapter's asyncio). `workers` coroutines
//! pull tasks from a shared queue. CPU tasks yield between chunks, so they
//! interleave but gain no speed; I/O tasks use non-blocking sockets, so all
//! their requests overlap on the one thread.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProgressThrottle;
use crate::backends::context::{BackendOutcome, Ending, RunContext};
use crate::metrics::clocks::{
    lower_this_thread, this_thread_cpu, this_thread_id, this_thread_times,
};
use crate::report::event::{Event, TaskRecord, WorkerKind};
use crate::workload::cpu::{CHUNK, CpuTask};
use crate::workload::io::{encode_request, mixed_slice_end, payload};

/// How often the loop looks at the cancel flag while every coroutine waits.
const CANCEL_POLL: Duration = Duration::from_millis(5);

/// State the coroutines share (one thread: plain cells suffice).
struct Shared<'a> {
    ctx: &'a RunContext,
    next_task: Cell<u32>,
    records: RefCell<Vec<TaskRecord>>,
    latencies: RefCell<Vec<f32>>,
    failure: RefCell<Option<String>>,
}

/// Runs every task on one thread as `spec.workers` coroutines.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    let result = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("scalelab-worker-loop".into())
            .spawn_scoped(scope, || run_loop(ctx))
            .map_err(|e| format!("cannot start the event loop thread: {e}"))
            .and_then(|h| {
                h.join()
                    .map_err(|_| "the event loop thread panicked".to_string())
            })
    });
    let (records, latencies, cpu, failure) = match result {
        Ok(r) => r,
        Err(e) => (Vec::new(), Vec::new(), Default::default(), Some(e)),
    };
    let ending = match failure {
        Some(why) => Ending::Failed(why),
        None if ctx.cancelled() => Ending::Cancelled,
        None => Ending::Completed,
    };
    BackendOutcome {
        records,
        cpu,
        ending,
        workers_lost: 0,
        latencies_ms: latencies,
        gil: None,
    }
}

type LoopResult = (
    Vec<TaskRecord>,
    Vec<f32>,
    crate::metrics::clocks::CpuTimes,
    Option<String>,
);

fn run_loop(ctx: &RunContext) -> LoopResult {
    lower_this_thread(ctx.options.worker_nice, ctx.options.worker_sched_idle);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return (
                Vec::new(),
                Vec::new(),
                Default::default(),
                Some(format!("cannot build the event loop: {e}")),
            );
        }
    };
    let shared = Shared {
        ctx,
        next_task: Cell::new(0),
        records: RefCell::new(Vec::new()),
        latencies: RefCell::new(Vec::new()),
        failure: RefCell::new(None),
    };
    let tid = this_thread_id();
    runtime.block_on(async {
        let coroutines = (0..ctx.spec.workers).map(|w| {
            ctx.emit(Event::WorkerStarted {
                worker: w,
                kind: WorkerKind::Coroutine,
                os_id: tid,
            });
            coroutine(&shared, w)
        });
        let all = futures_join_all(coroutines.collect());
        tokio::select! {
            _ = all => {}
            _ = wait_for_cancel(ctx) => {}
        }
    });
    // The thread's CPU clock covers every coroutine.
    ctx.meter.set_cpu_ns(0, this_thread_cpu().as_nanos() as u64);
    (
        shared.records.into_inner(),
        shared.latencies.into_inner(),
        this_thread_times(),
        shared.failure.into_inner(),
    )
}

/// Joins futures on the current thread without an extra crate.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: Vec<F>) {
    let mut set = Vec::with_capacity(futs.len());
    for f in futs {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

async fn wait_for_cancel(ctx: &RunContext) {
    while !ctx.cancelled() {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

/// One coroutine: takes tasks until none are left or one fails.
async fn coroutine(shared: &Shared<'_>, w: u32) {
    let ctx = shared.ctx;
    loop {
        if ctx.cancelled() || shared.failure.borrow().is_some() {
            return;
        }
        let task = shared.next_task.get();
        if task >= ctx.spec.tasks {
            return;
        }
        shared.next_task.set(task + 1);
        let start_s = ctx.now_s();
        let cpu0 = this_thread_cpu();
        ctx.emit(Event::TaskStarted {
            task,
            worker: w,
            at_s: start_s,
        });
        match run_task(ctx, w, task).await {
            Ok((sum, lat)) => {
                let record = TaskRecord {
                    task,
                    worker: w,
                    sum,
                    start_s,
                    end_s: ctx.now_s(),
                    // Coroutines share the thread: this counts CPU spent by all
                    // of them while this task was running.
                    cpu_s: (this_thread_cpu() - cpu0).as_secs_f64(),
                };
                ctx.emit(Event::TaskFinished(record.clone()));
                shared.records.borrow_mut().push(record);
                shared.latencies.borrow_mut().extend(lat);
            }
            Err(None) => return,
            Err(Some(why)) => {
                shared.failure.borrow_mut().get_or_insert(why);
                ctx.cancel_internal();
                return;
            }
        }
    }
}

/// Runs one task; `Err(None)` when cancelled, `Err(Some(why))` when it failed.
async fn run_task(ctx: &RunContext, w: u32, task: u32) -> Result<(u64, Vec<f32>), Option<String>> {
    let spec = &ctx.spec;
    let numbers = if spec.workload.computes() {
        spec.numbers_per_task
    } else {
        0
    };
    let mut cpu = CpuTask::new(spec.seed, task as u64, numbers);
    let mut throttle = ProgressThrottle::new();
    let mut reported = 0;
    let slot = w as usize;
    // Draws until `until`, yielding to the other coroutines after every chunk.
    let mut compute = async |cpu: &mut CpuTask, until: u64| -> Result<(), Option<String>> {
        while cpu.drawn() < until {
            cpu.step_by(CHUNK.min(until - cpu.drawn()));
            if throttle.due() || cpu.drawn() == numbers {
                ctx.meter.add_numbers(slot, cpu.drawn() - reported);
                ctx.meter.set_cpu_ns(0, this_thread_cpu().as_nanos() as u64);
                reported = cpu.drawn();
                ctx.emit(Event::Progress {
                    task,
                    worker: w,
                    done: cpu.drawn(),
                });
            }
            if ctx.cancelled() {
                return Err(None);
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    };
    if !spec.workload.does_io() {
        compute(&mut cpu, numbers).await?;
        return Ok((cpu.sum(), Vec::new()));
    }
    let addr: SocketAddr = ctx
        .io_addr()
        .ok_or_else(|| Some("no latency service for an I/O task".to_string()))?;
    let fail = |what: String| Some(format!("task {task}: {what}"));
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(format!("cannot reach the latency service at {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let give_up = Duration::from_millis(spec.io.latency_ms as u64) + Duration::from_secs(10);
    let mut sum = 0;
    let mut lat = Vec::with_capacity(spec.io.requests as usize);
    for r in 0..spec.io.requests {
        if numbers > 0 {
            compute(&mut cpu, mixed_slice_end(numbers, spec.io.requests, r)).await?;
        }
        let t0 = Instant::now();
        let msg = encode_request(task as u64, r as u64);
        let mut buf = [0u8; 8];
        let exchange = async {
            stream.write_all(&msg).await?;
            stream.read_exact(&mut buf).await
        };
        match tokio::time::timeout(give_up, exchange).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(fail(format!(
                    "request {r} to the latency service at {addr} failed: {e}"
                )));
            }
            Err(_) => {
                return Err(fail(format!("request {r}: no answer within {give_up:?}")));
            }
        }
        lat.push(t0.elapsed().as_secs_f32() * 1e3);
        let p = u64::from_le_bytes(buf);
        if p != payload(spec.seed, task as u64, r as u64) {
            return Err(fail(format!(
                "request {r}: the latency service answered {p}, not the expected payload"
            )));
        }
        sum += p;
        ctx.meter.add_requests(slot, 1);
        if ctx.cancelled() {
            return Err(None);
        }
    }
    Ok((sum + cpu.sum(), lat))
}
