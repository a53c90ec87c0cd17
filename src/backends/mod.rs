//! The backends: each turns a `RunSpec` into events, through the `RunContext`.

pub mod bus;
pub mod eventloop;
pub mod gil;
pub mod process_worker;
pub mod processes;
pub mod task_exec;
pub mod threads;

use std::time::{Duration, Instant};

use crate::engine::spec::BackendKind;
use crate::engine::{BackendOutcome, RunContext};

/// How often a worker reports a running task's progress.
pub const PROGRESS_PERIOD: Duration = Duration::from_millis(50);

/// Runs the spec's backend to its end.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    match ctx.spec.backend {
        BackendKind::Threads => threads::run(ctx),
        BackendKind::Processes => processes::run(ctx),
        BackendKind::Gil => gil::run(ctx),
        BackendKind::EventLoop => eventloop::run(ctx),
        BackendKind::Bus => bus::run(ctx),
    }
}

/// Decides when a worker should report progress: at most once per `PROGRESS_PERIOD`.
#[derive(Debug)]
pub struct ProgressThrottle {
    next: Instant,
}

impl Default for ProgressThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressThrottle {
    pub fn new() -> Self {
        Self {
            next: Instant::now() + PROGRESS_PERIOD,
        }
    }

    /// True when a report is due (and schedules the next one).
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.next {
            self.next = now + PROGRESS_PERIOD;
            true
        } else {
            false
        }
    }
}
