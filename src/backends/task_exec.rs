//! Runs one task of any workload on a blocking worker (a thread or a child
//! process), with hooks for what differs between backends: progress reports,
//! cancel checks, and, under the GIL, the eval breaker and releasing the lock
//! around blocking I/O.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::spec::{IoParams, WorkloadKind};
use crate::workload::cpu::{CHUNK, CpuTask};
use crate::workload::io::{IoClient, mixed_slice_end, payload as io_payload};

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
    /// The token it asks for, when it asks (a `bus` run's).
    pub io_token: Option<String>,
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

/// What a task does, step by step, whoever runs it: the one place that knows
/// how a workload splits into drawing numbers and requests, how long a request
/// may take, what each answer must be, and how the sum adds up. The blocking
/// workers (`run_task` below) and the event loop's coroutines only carry the
/// steps out, each in its own way.
pub struct TaskPlan {
    task: u32,
    seed: u64,
    numbers: u64,
    io: Option<IoParams>,
    cpu: CpuTask,
    next_request: u32,
    out: TaskOutput,
}

/// The next thing a task must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Draw numbers until `until` have been drawn.
    Compute { until: u64 },
    /// Send request `r` to the latency service and wait for its payload.
    Request { r: u32 },
    /// Nothing is left: `finish` gives the result.
    Done,
}

impl TaskPlan {
    pub fn new(input: &TaskInput) -> Self {
        let numbers = if input.workload.computes() {
            input.numbers
        } else {
            0
        };
        let io = input.workload.does_io().then_some(input.io);
        TaskPlan {
            task: input.task,
            seed: input.seed,
            numbers,
            io,
            cpu: CpuTask::new(input.seed, input.task as u64, numbers),
            next_request: 0,
            out: TaskOutput {
                sum: 0,
                latencies_ms: Vec::with_capacity(io.map_or(0, |io| io.requests as usize)),
            },
        }
    }

    /// True when the task talks to the latency service.
    pub fn does_io(&self) -> bool {
        self.io.is_some()
    }

    pub fn task(&self) -> u32 {
        self.task
    }

    /// The numbers this task draws in all (0 for a pure I/O task).
    pub fn numbers(&self) -> u64 {
        self.numbers
    }

    /// The task's stream of numbers, for `Step::Compute`.
    pub fn cpu(&mut self) -> &mut CpuTask {
        &mut self.cpu
    }

    pub fn next(&self) -> Step {
        let Some(io) = self.io else {
            return if self.cpu.drawn() < self.numbers {
                Step::Compute {
                    until: self.numbers,
                }
            } else {
                Step::Done
            };
        };
        let r = self.next_request;
        if r >= io.requests {
            return Step::Done;
        }
        // A mixed task draws its share of numbers before each request (an
        // io task has none to draw: its share is always 0).
        let until = mixed_slice_end(self.numbers, io.requests, r);
        if self.cpu.drawn() < until {
            Step::Compute { until }
        } else {
            Step::Request { r }
        }
    }

    /// How long a request may take, its latency plus generous slack, before it
    /// counts as lost.
    pub fn give_up(&self) -> Duration {
        let latency_ms = self.io.map_or(0, |io| io.latency_ms);
        Duration::from_millis(latency_ms as u64) + Duration::from_secs(10)
    }

    /// A failure of this task, with its number in front.
    pub fn failed(&self, what: impl std::fmt::Display) -> TaskError {
        TaskError::Failed(format!("task {}: {what}", self.task))
    }

    /// Request `r` came back with `payload` after `latency_ms`: checked
    /// against what the service must answer, then counted.
    pub fn answered(&mut self, r: u32, payload: u64, latency_ms: f32) -> Result<(), TaskError> {
        debug_assert_eq!(self.next(), Step::Request { r });
        if payload != io_payload(self.seed, self.task as u64, r as u64) {
            return Err(self.failed(format!(
                "request {r}: the latency service answered {payload}, not the expected payload"
            )));
        }
        self.out.latencies_ms.push(latency_ms);
        self.out.sum += payload;
        self.next_request = r + 1;
        Ok(())
    }

    /// The result, once `next()` says `Done`.
    pub fn finish(mut self) -> TaskOutput {
        self.out.sum += self.cpu.sum();
        self.out
    }
}

/// Draws the next slice toward `until`: at most `slice` numbers, and never
/// past `until`, so that a mixed task's numbers stay on their side of each
/// request. Every backend's compute loop draws through this.
pub(crate) fn step_toward(cpu: &mut CpuTask, until: u64, slice: u64) {
    cpu.step_by(slice.min(until - cpu.drawn()));
}

/// Draws numbers until `task` has drawn `until` of them.
fn compute(env: &mut impl TaskEnv, cpu: &mut CpuTask, until: u64) -> Result<(), TaskError> {
    let slice = env.slice();
    while cpu.drawn() < until {
        step_toward(cpu, until, slice);
        env.progress(cpu.drawn());
        if env.cancelled() {
            return Err(TaskError::Cancelled);
        }
        env.between_slices();
    }
    Ok(())
}

/// Runs one task to its end on a blocking worker.
pub fn run_task(env: &mut impl TaskEnv, input: &TaskInput) -> Result<TaskOutput, TaskError> {
    let mut plan = TaskPlan::new(input);
    let mut client = None;
    if plan.does_io() {
        let addr = input
            .io_addr
            .ok_or_else(|| TaskError::Failed("no latency service for an I/O task".into()))?;
        env.before_blocking();
        let connected = IoClient::connect_with(addr, input.io_token.as_deref());
        env.after_blocking();
        client = Some(connected.map_err(|e| {
            plan.failed(format!("cannot reach the latency service at {addr}: {e}"))
        })?);
    }
    loop {
        match plan.next() {
            Step::Compute { until } => compute(env, plan.cpu(), until)?,
            Step::Request { r } => {
                let client = client
                    .as_mut()
                    .expect("connected above, as the task does I/O");
                let give_up = plan.give_up();
                let t0 = Instant::now();
                env.before_blocking();
                let answer = client.request(plan.task() as u64, r as u64, give_up, &|| {
                    env_cancelled(env)
                });
                env.after_blocking();
                let payload = match answer {
                    Ok(p) => p,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                        return Err(TaskError::Cancelled);
                    }
                    Err(e) => {
                        return Err(plan.failed(format!(
                            "request {r} to the latency service at {} failed: {e}",
                            client.addr()
                        )));
                    }
                };
                plan.answered(r, payload, t0.elapsed().as_secs_f32() * 1e3)?;
                env.request_done();
                if env.cancelled() {
                    return Err(TaskError::Cancelled);
                }
            }
            Step::Done => return Ok(plan.finish()),
        }
    }
}

fn env_cancelled(env: &impl TaskEnv) -> bool {
    env.cancelled()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::cpu::task_sum;
    use crate::workload::io::{fake_service, io_sum};

    fn input(workload: WorkloadKind, numbers: u64, requests: u32) -> TaskInput {
        TaskInput {
            task: 3,
            seed: 9,
            numbers,
            workload,
            io: IoParams {
                requests,
                latency_ms: 250,
            },
            io_addr: None,
            io_token: None,
        }
    }

    /// Carries a plan out with the right answers; returns the steps taken.
    fn drive(plan: &mut TaskPlan, seed: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        loop {
            let step = plan.next();
            steps.push(step);
            match step {
                Step::Compute { until } => {
                    let drawn = plan.cpu().drawn();
                    plan.cpu().step_by(until - drawn);
                }
                Step::Request { r } => {
                    let p = io_payload(seed, plan.task() as u64, r as u64);
                    plan.answered(r, p, 1.5).unwrap();
                }
                Step::Done => return steps,
            }
        }
    }

    #[test]
    fn a_cpu_task_draws_its_numbers_once_and_requests_nothing() {
        let mut plan = TaskPlan::new(&input(WorkloadKind::Cpu, 1000, 4));
        assert_eq!(plan.numbers(), 1000);
        let steps = drive(&mut plan, 9);
        assert_eq!(steps, [Step::Compute { until: 1000 }, Step::Done]);
        let out = plan.finish();
        assert_eq!(out.sum, task_sum(9, 3, 1000));
        assert!(out.latencies_ms.is_empty());
    }

    #[test]
    fn an_io_task_only_requests_and_a_mixed_task_draws_a_share_before_each() {
        let mut plan = TaskPlan::new(&input(WorkloadKind::Io, 1000, 3));
        assert_eq!(plan.numbers(), 0);
        let steps = drive(&mut plan, 9);
        let r = |r| Step::Request { r };
        assert_eq!(steps, [r(0), r(1), r(2), Step::Done]);
        assert_eq!(plan.give_up(), Duration::from_millis(10_250));
        let out = plan.finish();
        assert_eq!(out.sum, io_sum(9, 3, 3));
        assert_eq!(out.latencies_ms, [1.5; 3]);

        let mut plan = TaskPlan::new(&input(WorkloadKind::Mixed, 1000, 3));
        let steps = drive(&mut plan, 9);
        let c = |until| Step::Compute { until };
        assert_eq!(
            steps,
            [c(332), r(0), c(666), r(1), c(1000), r(2), Step::Done]
        );
        assert_eq!(plan.finish().sum, task_sum(9, 3, 1000) + io_sum(9, 3, 3));
    }

    /// A TaskEnv that records progress and never cancels.
    struct Recorder(Vec<u64>);

    impl TaskEnv for Recorder {
        fn cancelled(&self) -> bool {
            false
        }
        fn progress(&mut self, done: u64) {
            self.0.push(done);
        }
        fn slice(&self) -> u64 {
            4096
        }
    }

    #[test]
    fn computing_stops_exactly_where_the_plan_says_not_a_slice_later() {
        // A mixed task's share before a request ends mid-slice: drawing on to
        // the slice's end would move numbers across the request.
        let mut cpu = CpuTask::new(9, 3, 10_000);
        let mut env = Recorder(Vec::new());
        compute(&mut env, &mut cpu, 1000).unwrap();
        assert_eq!(cpu.drawn(), 1000);
        assert_eq!(env.0, [1000]);
        compute(&mut env, &mut cpu, 9000).unwrap();
        assert_eq!(env.0, [1000, 5096, 9000]);
    }

    #[test]
    fn a_wrong_answer_fails_the_task_and_is_not_counted() {
        let mut plan = TaskPlan::new(&input(WorkloadKind::Io, 0, 2));
        let right = io_payload(9, 3, 0);
        let err = plan.answered(0, right + 1, 1.0).unwrap_err();
        assert_eq!(
            err,
            TaskError::Failed(format!(
                "task 3: request 0: the latency service answered {}, not the expected payload",
                right + 1
            ))
        );
        assert_eq!(plan.next(), Step::Request { r: 0 });
        plan.answered(0, right, 1.0).unwrap();
        assert_eq!(plan.next(), Step::Request { r: 1 });
    }

    /// Cancels the run once `after` has passed.
    struct CancelAfter(Instant);

    impl TaskEnv for CancelAfter {
        fn cancelled(&self) -> bool {
            Instant::now() >= self.0
        }
        fn progress(&mut self, _: u64) {}
    }

    #[test]
    fn a_request_waiting_when_the_run_is_cancelled_ends_the_task_as_cancelled_not_failed() {
        // Holds every connection open and never answers.
        let addr = fake_service(|conn| {
            std::thread::sleep(Duration::from_secs(30));
            drop(conn);
        });
        let mut io = input(WorkloadKind::Io, 0, 2);
        io.io_addr = Some(addr);
        let mut env = CancelAfter(Instant::now() + Duration::from_millis(100));
        assert_eq!(run_task(&mut env, &io).unwrap_err(), TaskError::Cancelled);
    }

    #[test]
    fn a_request_the_service_drops_fails_the_task_with_the_reason() {
        let addr = fake_service(drop);
        let mut io = input(WorkloadKind::Io, 0, 2);
        io.io_addr = Some(addr);
        let mut env = CancelAfter(Instant::now() + Duration::from_secs(60));
        let TaskError::Failed(why) = run_task(&mut env, &io).unwrap_err() else {
            panic!("a dropped connection is a failure, not a cancel");
        };
        assert!(
            why.starts_with(&format!(
                "task 3: request 0 to the latency service at {addr} failed: "
            )),
            "{why}"
        );
    }

    #[test]
    fn each_request_is_timed_in_milliseconds_as_it_waits_for_its_answer() {
        // Answers every request right, after 30 ms.
        let addr = fake_service(|mut conn| {
            use std::io::{Read, Write};
            let mut msg = [0u8; crate::workload::io::REQUEST_LEN];
            while conn.read_exact(&mut msg).is_ok() {
                let (task, r) = crate::workload::io::decode_request(&msg);
                std::thread::sleep(Duration::from_millis(30));
                let answer = crate::workload::io::encode_answer(io_payload(9, task, r));
                if conn.write_all(&answer).is_err() {
                    return;
                }
            }
        });
        let mut io = input(WorkloadKind::Io, 0, 3);
        io.io_addr = Some(addr);
        let mut env = CancelAfter(Instant::now() + Duration::from_secs(60));
        let out = run_task(&mut env, &io).unwrap();
        assert_eq!(out.sum, io_sum(9, 3, 3));
        assert_eq!(out.latencies_ms.len(), 3);
        // At least the service's 30 ms; far less than a second on any machine
        // that runs these tests.
        for ms in out.latencies_ms {
            assert!((30.0..1000.0).contains(&ms), "{ms} ms");
        }
    }
}
