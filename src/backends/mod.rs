//! The backends: each turns a `RunSpec` into events, through the `RunContext`.

pub mod bus;
pub mod context;
pub mod eventloop;
pub mod gil;
pub mod ledger;
pub mod process_worker;
pub mod processes;
pub mod task_exec;
pub mod threads;

use std::time::{Duration, Instant};

use crate::backends::context::{BackendOutcome, RunContext};
use crate::backends::ledger::Ledger;
use crate::metrics::clocks::{ChildExit, kill_child, reap_child, wait_child_exited};
use crate::report::event::Event;
use crate::spec::BackendKind;

/// How often a worker reports a running task's progress.
pub const PROGRESS_PERIOD: Duration = Duration::from_millis(50);

/// Worker processes a pool of `workers` may start over a run: the pool, and
/// as many replacements for those that die. The run's meter has a slot for
/// each, so that a replacement's numbers and CPU time are counted too.
pub fn process_slots(workers: u32) -> usize {
    2 * workers as usize
}

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

/// A task handed to a worker process and not yet answered (processes and bus).
#[derive(Debug)]
pub struct InFlight {
    pub task: u32,
    pub start_s: f64,
    pub cpu_ns_at_start: u64,
    /// Numbers the worker has reported drawn so far.
    pub reported: u64,
}

impl InFlight {
    pub fn new(task: u32, start_s: f64, cpu_ns_at_start: u64) -> Self {
        Self {
            task,
            start_s,
            cpu_ns_at_start,
            reported: 0,
        }
    }

    /// Takes a progress report; returns the numbers drawn since the last one,
    /// so that throughput rises while a task runs, not only when it ends.
    pub fn progress(&mut self, done: u64, numbers_per_task: u64) -> u64 {
        let done = done.min(numbers_per_task);
        let delta = done.saturating_sub(self.reported);
        self.reported = self.reported.max(done);
        delta
    }

    /// Numbers of a finished task not yet counted by its progress reports.
    pub fn rest(&self, numbers_per_task: u64) -> u64 {
        numbers_per_task.saturating_sub(self.reported)
    }
}

/// Something to do at most once per `period`: due once its time has come,
/// and then not again until a period after that moment.
#[derive(Debug)]
pub struct Every {
    period: Duration,
    next: Instant,
}

impl Every {
    /// First due one period from now.
    pub fn period_from_now(period: Duration) -> Self {
        Self {
            period,
            next: Instant::now() + period,
        }
    }

    /// Due at once.
    pub fn starting_now(period: Duration) -> Self {
        Self {
            period,
            next: Instant::now(),
        }
    }

    /// True when it is due (and schedules the next time).
    pub fn due(&mut self) -> bool {
        self.due_at(Instant::now())
    }

    pub fn due_at(&mut self, now: Instant) -> bool {
        if now >= self.next {
            self.next = now + self.period;
            true
        } else {
            false
        }
    }
}

/// Decides when a worker should report progress: at most once per `PROGRESS_PERIOD`.
#[derive(Debug)]
pub struct ProgressThrottle(Every);

impl Default for ProgressThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressThrottle {
    pub fn new() -> Self {
        Self(Every::period_from_now(PROGRESS_PERIOD))
    }

    /// True when a report is due (and schedules the next one).
    pub fn due(&mut self) -> bool {
        self.0.due()
    }
}

/// How long a worker process asked to leave at a run's end has before it is killed.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Ends worker process `pid` (worker number `worker`) at the end of a run.
/// One that was asked to leave (`asked`, how: "its input closing") gets until
/// `deadline`; then it is killed and reaped, and its CPU time counted. One
/// asked that did not leave by itself, with status 0, is a worker lost, and
/// said so.
pub(crate) fn end_worker_process(
    ctx: &RunContext,
    ledger: &mut Ledger,
    worker: u32,
    pid: u32,
    asked: Option<&str>,
    deadline: Instant,
) {
    if asked.is_some() {
        wait_child_exited(pid, deadline);
    }
    kill_child(pid);
    let Some((exit, cpu)) = reap_child(pid) else {
        return;
    };
    ledger.add_cpu(cpu);
    if let Some(how) = asked
        && exit != ChildExit::Code(0)
    {
        ledger.worker_lost();
        ctx.emit(Event::WorkerLost {
            worker,
            os_id: pid,
            reason: format!(
                "worker {worker} (pid {pid}) did not stop within {} s of {how} at the run's end and {exit}",
                EXIT_GRACE.as_secs()
            ),
            requeued: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_each_number_once_and_never_past_the_task() {
        let mut held = InFlight::new(3, 0.5, 7);
        assert_eq!(held.progress(400, 1000), 400);
        assert_eq!(held.progress(650, 1000), 250, "only what is new");
        assert_eq!(
            held.progress(600, 1000),
            0,
            "a report out of order adds nothing"
        );
        assert_eq!(held.reported, 650);
        assert_eq!(held.rest(1000), 350);
        assert_eq!(
            held.progress(5000, 1000),
            350,
            "capped at the task's numbers"
        );
        assert_eq!(held.rest(1000), 0);
    }

    #[test]
    fn progress_is_reported_at_most_once_a_period() {
        let before = Instant::now();
        let ProgressThrottle(mut throttle) = ProgressThrottle::new();
        let first = throttle.next;
        assert!(first >= before + PROGRESS_PERIOD, "not at once");
        assert!(!throttle.due_at(first - Duration::from_millis(1)));
        assert!(throttle.due_at(first), "due on the dot");
        // The next one a period after the report.
        let late = first + Duration::from_millis(30);
        assert!(!throttle.due_at(late), "reported at {first:?} already");
        assert!(throttle.due_at(first + PROGRESS_PERIOD + Duration::from_millis(1)));
        assert_eq!(
            throttle.next,
            first + 2 * PROGRESS_PERIOD + Duration::from_millis(1)
        );
    }

    #[test]
    fn a_schedule_starting_now_is_due_at_once_then_a_period_later() {
        let period = Duration::from_secs(3600);
        let mut every = Every::starting_now(period);
        assert!(every.due());
        assert!(!every.due(), "not again within the hour");
        let next = every.next;
        assert!(next > Instant::now() + period - Duration::from_secs(60));
        assert!(every.due_at(next));
    }
}
