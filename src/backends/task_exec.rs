//! Runs one task of any workload on a blocking worker (a thread or a child
//! process), with hooks for what differs between backends: progress reports,
//! cancel checks, and, under the GIL, the eval breaker and releasing the lock
//! around blocking I/O.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::spec::{IoParams, WorkloadKind};
use crate::workload::cpu::{CHUNK, CpuTask};
use crate::workload::io::{IoClient, mixed_slice_end, payload};

/// What a task needs to know, whichever backend runs it.
#[derive(Debug, Clone)]
pub struct TaskInput {
    pub task: u32,
    pub seed: u64,
    pub numbers: u64,
    pub workload: WorkloadKind,
    pub io: IoParams,
    /// The latency service (for `io` and `mixed`).
    pub io_addr: Option<SocketAddr>,
}

/// A finished task's result and the latency of each of its requests.
#[derive(Debug, Clone, Default)]
pub struct TaskOutput {
    pub sum: u64,
    pub latencies_ms: Vec<f32>,
}

/// Why a task did not finish.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskError {
    Cancelled,
    Failed(String),
}

/// The backend's side of running a task.
pub trait TaskEnv {
    /// True once the run has been asked to stop.
    fn cancelled(&self) -> bool;
    /// Numbers drawn so far by the task (called after every slice).
    fn progress(&mut self, done: u64);
    /// Numbers to draw between two calls of `between_slices`.
    fn slice(&self) -> u64 {
        CHUNK
    }
    /// Called between slices of CPU work (the GIL's eval breaker).
    fn between_slices(&mut self) {}
    /// Called before a blocking request (the GIL is released here).
    fn before_blocking(&mut self) {}
    /// Called after a blocking request (the GIL is taken back here).
    fn after_blocking(&mut self) {}
    /// A request finished.
    fn request_done(&mut self) {}
}

/// Draws numbers until `task` has drawn `until` of them.
fn compute(env: &mut impl TaskEnv, cpu: &mut CpuTask, until: u64) -> Result<(), TaskError> {
    let slice = env.slice();
    while cpu.drawn() < until {
        cpu.step_by(slice.min(until - cpu.drawn()));
        env.progress(cpu.drawn());
        if env.cancelled() {
            return Err(TaskError::Cancelled);
        }
        env.between_slices();
    }
    Ok(())
}

/// Runs one task to its end.
pub fn run_task(env: &mut impl TaskEnv, input: &TaskInput) -> Result<TaskOutput, TaskError> {
    let numbers = if input.workload.computes() {
        input.numbers
    } else {
        0
    };
    let mut cpu = CpuTask::new(input.seed, input.task as u64, numbers);
    if !input.workload.does_io() {
        compute(env, &mut cpu, numbers)?;
        return Ok(TaskOutput {
            sum: cpu.sum(),
            latencies_ms: Vec::new(),
        });
    }
    let addr = input
        .io_addr
        .ok_or_else(|| TaskError::Failed("no latency service for an I/O task".into()))?;
    let requests = input.io.requests;
    // A request may take its latency plus generous slack before it counts as lost.
    let give_up = Duration::from_millis(input.io.latency_ms as u64) + Duration::from_secs(10);
    let fail = |what: String| TaskError::Failed(format!("task {}: {what}", input.task));
    let mut out = TaskOutput {
        sum: 0,
        latencies_ms: Vec::with_capacity(requests as usize),
    };
    env.before_blocking();
    let client = IoClient::connect(addr);
    env.after_blocking();
    let mut client =
        client.map_err(|e| fail(format!("cannot reach the latency service at {addr}: {e}")))?;
    for r in 0..requests {
        if numbers > 0 {
            compute(env, &mut cpu, mixed_slice_end(numbers, requests, r))?;
        }
        let t0 = Instant::now();
        env.before_blocking();
        let answer = client.request(input.task as u64, r as u64, give_up, &|| env_cancelled(env));
        env.after_blocking();
        let p = match answer {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                return Err(TaskError::Cancelled);
            }
            Err(e) => {
                return Err(fail(format!(
                    "request {r} to the latency service at {addr} failed: {e}"
                )));
            }
        };
        out.latencies_ms.push(t0.elapsed().as_secs_f32() * 1e3);
        if p != payload(input.seed, input.task as u64, r as u64) {
            return Err(fail(format!(
                "request {r}: the latency service answered {p}, not the expected payload"
            )));
        }
        out.sum += p;
        env.request_done();
        if env.cancelled() {
            return Err(TaskError::Cancelled);
        }
    }
    out.sum += cpu.sum();
    Ok(out)
}

fn env_cancelled(env: &impl TaskEnv) -> bool {
    env.cancelled()
}
