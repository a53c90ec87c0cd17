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
use super::task_exec::{Step, TaskError, TaskInput, TaskOutput, TaskPlan, step_toward};
use crate::backends::context::{BackendOutcome, Ending, RunContext};
use crate::metrics::clocks::{
    lower_this_thread, this_thread_cpu, this_thread_id, this_thread_times,
};
use crate::report::event::{Event, TaskRecord, WorkerKind};
use crate::workload::cpu::{CHUNK, CpuTask};
use crate::workload::io::{ANSWER_LEN, decode_answer, encode_request};

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
        verification: None,
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
            Ok(TaskOutput { sum, latencies_ms }) => {
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
                shared.latencies.borrow_mut().extend(latencies_ms);
            }
            Err(TaskError::Cancelled) => return,
            Err(TaskError::Failed(why)) => {
                shared.failure.borrow_mut().get_or_insert(why);
                ctx.cancel_internal();
                return;
            }
        }
    }
}

/// Runs one task as a coroutine: the steps are `TaskPlan`'s, as on every
/// other backend; only how they are carried out differs (yielding between
/// chunks, non-blocking sockets).
async fn run_task(ctx: &RunContext, w: u32, task: u32) -> Result<TaskOutput, TaskError> {
    let spec = &ctx.spec;
    let mut plan = TaskPlan::new(&TaskInput {
        task,
        seed: spec.seed,
        numbers: spec.numbers_per_task,
        workload: spec.workload,
        io: spec.io,
        io_addr: ctx.io_addr(),
        io_token: None,
    });
    let numbers = plan.numbers();
    let mut throttle = ProgressThrottle::new();
    let mut reported = 0;
    let slot = w as usize;
    // Draws until `until`, yielding to the other coroutines after every chunk.
    let mut compute = async |cpu: &mut CpuTask, until: u64| -> Result<(), TaskError> {
        while cpu.drawn() < until {
            step_toward(cpu, until, CHUNK);
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
                return Err(TaskError::Cancelled);
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    };
    let mut stream = None;
    if plan.does_io() {
        let addr: SocketAddr = ctx
            .io_addr()
            .ok_or_else(|| TaskError::Failed("no latency service for an I/O task".into()))?;
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| plan.failed(format!("cannot reach the latency service at {addr}: {e}")))?;
        let _ = s.set_nodelay(true);
        stream = Some((s, addr));
    }
    loop {
        match plan.next() {
            Step::Compute { until } => compute(plan.cpu(), until).await?,
            Step::Request { r } => {
                let (stream, addr) = stream
                    .as_mut()
                    .expect("connected above, as the task does I/O");
                let give_up = plan.give_up();
                let t0 = Instant::now();
                let msg = encode_request(task as u64, r as u64);
                let mut buf = [0u8; ANSWER_LEN];
                let exchange = async {
                    stream.write_all(&msg).await?;
                    stream.read_exact(&mut buf).await
                };
                match tokio::time::timeout(give_up, exchange).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        return Err(plan.failed(format!(
                            "request {r} to the latency service at {addr} failed: {e}"
                        )));
                    }
                    Err(_) => {
                        return Err(
                            plan.failed(format!("request {r}: no answer within {give_up:?}"))
                        );
                    }
                }
                plan.answered(r, decode_answer(&buf), t0.elapsed().as_secs_f32() * 1e3)?;
                ctx.meter.add_requests(slot, 1);
                if ctx.cancelled() {
                    return Err(TaskError::Cancelled);
                }
            }
            Step::Done => return Ok(plan.finish()),
        }
    }
}
