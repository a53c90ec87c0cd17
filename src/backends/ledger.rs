//! The task ledger of the backends that hand tasks to worker processes
//! (`processes` and `bus`): the queue, retries, results, CPU totals and the
//! closing outcome. Who holds which task stays with each backend (a pipe per
//! child, a routing id per bus peer); what happens to a task is decided here,
//! once, so that the two cannot drift apart.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use super::InFlight;
use super::context::{BackendOutcome, Ending};
use crate::metrics::clocks::CpuTimes;
use crate::report::event::TaskRecord;
use crate::spec::{RunSpec, WorkloadKind};
use crate::wire::MAX_LATENCIES;

/// Longest request latency a result may report, in ms (an hour: beyond any run's patience).
const MAX_LATENCY_MS: f32 = 3_600_000.0;

/// How often a task whose worker was lost may be handed out again. The one
/// place where the two masters differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u8,
    /// How the reason words it: "re-run" (a child died) or "re-queued" (a peer left).
    pub verb: &'static str,
}

impl RetryPolicy {
    /// `processes`: once. A child that dies twice on the same task suggests the
    /// task kills it; the run fails with that reason rather than try forever.
    pub const PROCESSES: RetryPolicy = RetryPolicy {
        max_retries: 1,
        verb: "re-run",
    };
    /// `bus`: three times. Remote workers also leave for reasons of their own
    /// (a network, a laptop lid), which say nothing about the task.
    pub const BUS: RetryPolicy = RetryPolicy {
        max_retries: 3,
        verb: "re-queued",
    };
}

/// Every task's state in one run.
#[derive(Debug)]
pub struct Ledger {
    queue: VecDeque<u32>,
    retries: Vec<u8>,
    finished: Vec<bool>,
    records: Vec<TaskRecord>,
    policy: RetryPolicy,
    per_task: u64,
    /// Every sum a task can have: each of its draws adds 1 to 100.
    sums: RangeInclusive<u64>,
    /// Most request latencies a result may carry (none for a CPU task).
    max_latencies: usize,
    cpu: CpuTimes,
    lost: u32,
    latencies: Vec<f32>,
}

impl Ledger {
    /// Every task of `spec` queued in order, none finished.
    pub fn new(spec: &RunSpec, policy: RetryPolicy) -> Self {
        let tasks = spec.tasks as usize;
        let requests = u64::from(spec.io.requests);
        let draws = match spec.workload {
            WorkloadKind::Cpu => spec.numbers_per_task,
            WorkloadKind::Io => requests,
            WorkloadKind::Mixed => spec.numbers_per_task.saturating_add(requests),
        };
        Self {
            queue: (0..spec.tasks).collect(),
            retries: vec![0; tasks],
            finished: vec![false; tasks],
            records: Vec::with_capacity(tasks),
            policy,
            per_task: spec.total_numbers() / spec.tasks.max(1) as u64,
            sums: draws..=draws.saturating_mul(100),
            max_latencies: if spec.workload.does_io() {
                (spec.io.requests as usize).min(MAX_LATENCIES)
            } else {
                0
            },
            cpu: CpuTimes::default(),
            lost: 0,
            latencies: Vec::new(),
        }
    }

    /// Numbers one task draws (for progress and the live meter).
    pub fn per_task(&self) -> u64 {
        self.per_task
    }

    /// The next task to hand out.
    pub fn next_task(&mut self) -> Option<u32> {
        self.queue.pop_front()
    }

    /// A task that was taken but never reached a worker goes back first in line.
    pub fn put_back(&mut self, task: u32) {
        self.queue.push_front(task);
    }

    /// Tasks that were only waiting at a lost worker go back first in line, in
    /// their order; they never started, so no retry is charged.
    pub fn return_waiting(&mut self, tasks: impl DoubleEndedIterator<Item = u32>) {
        for task in tasks.rev() {
            self.queue.push_front(task);
        }
    }

    /// A worker was lost (`reason` says which and why).
    pub fn worker_lost(&mut self) {
        self.lost += 1;
    }

    /// The task a lost worker was running goes back first in line, unless it
    /// has used up its retries: then the run fails, with `reason` and the count.
    pub fn requeue_lost(&mut self, task: u32, reason: &str) -> Result<(), String> {
        let RetryPolicy { max_retries, verb } = self.policy;
        let tries = &mut self.retries[task as usize];
        if *tries >= max_retries {
            return Err(format!(
                "{reason} while running task {task}, which had already been {verb} {max_retries} time(s)"
            ));
        }
        *tries += 1;
        self.queue.push_front(task);
        Ok(())
    }

    /// Whether a result is possible at all: a sum no task of this run can have,
    /// or latencies a task cannot have measured, come from a broken or hostile
    /// worker. Its task must not count (it would wrap the run's total, or
    /// skew its latency figures); the caller drops the worker and re-queues.
    pub fn check_result(&self, sum: u64, latency_ms: &[f32]) -> Result<(), String> {
        if !self.sums.contains(&sum) {
            return Err(format!(
                "a sum of {sum}, outside the {}..={} any task of this run can have",
                self.sums.start(),
                self.sums.end()
            ));
        }
        if latency_ms.len() > self.max_latencies {
            return Err(format!(
                "{} request latencies, where a task has at most {}",
                latency_ms.len(),
                self.max_latencies
            ));
        }
        if let Some(bad) = latency_ms
            .iter()
            .find(|ms| !(ms.is_finite() && (0.0..=MAX_LATENCY_MS).contains(*ms)))
        {
            return Err(format!("a request latency of {bad} ms"));
        }
        Ok(())
    }

    /// A worker answered `task` (which it held as `held`) with `sum`, its
    /// process clock reading `cpu_ns`: the task's record, or `None` when the
    /// task had already finished (only the first answer counts).
    pub fn finish(
        &mut self,
        held: &InFlight,
        worker: u32,
        sum: u64,
        end_s: f64,
        cpu_ns: u64,
    ) -> Option<TaskRecord> {
        let done = self.finished.get_mut(held.task as usize)?;
        if *done {
            return None;
        }
        *done = true;
        let record = TaskRecord {
            task: held.task,
            worker,
            sum,
            start_s: held.start_s,
            end_s,
            cpu_s: cpu_ns.saturating_sub(held.cpu_ns_at_start) as f64 / 1e9,
        };
        self.records.push(record.clone());
        Some(record)
    }

    /// Every result `worker` gave is struck out (it was caught giving a wrong
    /// one): those tasks go back first in line, in order, no retry charged.
    /// Returns them.
    pub fn reopen_worker(&mut self, worker: u32) -> Vec<u32> {
        let mut reopened = Vec::new();
        self.records.retain(|r| {
            let theirs = r.worker == worker;
            if theirs {
                reopened.push(r.task);
            }
            !theirs
        });
        reopened.sort_unstable();
        for &t in &reopened {
            self.finished[t as usize] = false;
        }
        self.return_waiting(reopened.iter().copied());
        reopened
    }

    /// CPU time of workers, as their processes are reaped (or as they report it).
    pub fn add_cpu(&mut self, cpu: CpuTimes) {
        self.cpu = self.cpu + cpu;
    }

    /// Request latencies that came with a result.
    pub fn add_latencies(&mut self, ms: Vec<f32>) {
        self.latencies.extend(ms);
    }

    /// Whether `task` has its result (false for a task the run does not have).
    pub fn is_finished(&self, task: u32) -> bool {
        self.finished.get(task as usize).copied().unwrap_or(false)
    }

    pub fn done(&self) -> bool {
        self.records.len() == self.finished.len()
    }

    pub fn queue_is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How the run ended, given the master loop's result.
    pub fn ending(&self, result: Result<(), String>) -> Ending {
        match result {
            Err(why) => Ending::Failed(why),
            Ok(()) if self.done() => Ending::Completed,
            Ok(()) => Ending::Cancelled,
        }
    }

    /// What the backend hands back, once its workers have been shut down.
    pub fn outcome(self, ending: Ending) -> BackendOutcome {
        BackendOutcome {
            records: self.records,
            cpu: self.cpu,
            ending,
            workers_lost: self.lost,
            latencies_ms: self.latencies,
            gil: None,
            verification: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tasks: u32) -> RunSpec {
        RunSpec {
            tasks,
            numbers_per_task: 1000,
            ..RunSpec::default()
        }
    }

    #[test]
    fn impossible_results_are_refused_with_a_reason() {
        let l = Ledger::new(&spec(2), RetryPolicy::BUS);
        assert!(l.check_result(1000, &[]).is_ok());
        assert!(l.check_result(100_000, &[]).is_ok());
        assert!(l.check_result(50_500, &[]).is_ok());
        assert!(
            l.check_result(999, &[])
                .unwrap_err()
                .contains("outside the 1000..=100000")
        );
        assert!(l.check_result(100_001, &[]).is_err());
        assert!(l.check_result(u64::MAX, &[]).is_err());
        let e = l.check_result(5000, &[1.0]).unwrap_err();
        assert!(
            e.contains("1 request latencies, where a task has at most 0"),
            "{e}"
        );

        let io = RunSpec {
            workload: WorkloadKind::Io,
            io: crate::spec::IoParams {
                requests: 10,
                latency_ms: 1,
            },
            ..spec(2)
        };
        let l = Ledger::new(&io, RetryPolicy::BUS);
        assert!(l.check_result(10, &[2.0; 10]).is_ok());
        assert!(l.check_result(1000, &[]).is_ok(), "latencies are optional");
        assert!(l.check_result(9, &[]).is_err());
        assert!(l.check_result(1001, &[]).is_err());
        assert!(l.check_result(500, &[2.0; 11]).is_err());
        for bad in [-1.0, f32::NAN, f32::INFINITY, 1e30] {
            let e = l.check_result(500, &[2.0, bad]).unwrap_err();
            assert!(e.contains("request latency"), "{bad}: {e}");
        }

        let mixed = RunSpec {
            workload: WorkloadKind::Mixed,
            ..io
        };
        let l = Ledger::new(&mixed, RetryPolicy::BUS);
        assert!(l.check_result(1010, &[]).is_ok());
        assert!(l.check_result(1009, &[]).is_err());
        assert!(l.check_result(101_000, &[]).is_ok());
    }

    #[test]
    fn tasks_go_out_in_order_and_come_back_first_in_line() {
        let mut l = Ledger::new(&spec(5), RetryPolicy::BUS);
        assert_eq!(l.per_task(), 1000);
        assert_eq!(
            (l.next_task(), l.next_task(), l.next_task()),
            (Some(0), Some(1), Some(2))
        );
        l.put_back(1);
        l.return_waiting([0, 2].into_iter());
        assert_eq!(l.next_task(), Some(0));
        assert_eq!(l.next_task(), Some(2));
        assert_eq!(l.next_task(), Some(1));
        assert_eq!(l.next_task(), Some(3));
    }

    #[test]
    fn retries_follow_the_policy_and_then_fail_the_run_with_the_reason() {
        for policy in [RetryPolicy::PROCESSES, RetryPolicy::BUS] {
            let mut l = Ledger::new(&spec(2), policy);
            let t = l.next_task().unwrap();
            for _ in 0..policy.max_retries {
                l.worker_lost();
                l.requeue_lost(t, "worker 0 died").unwrap();
                assert_eq!(l.next_task(), Some(t), "first in line again");
            }
            let err = l.requeue_lost(t, "worker 9 died").unwrap_err();
            assert!(
                err.starts_with("worker 9 died while running task 0"),
                "{err}"
            );
            assert!(
                err.contains(&format!("{} {} time(s)", policy.verb, policy.max_retries)),
                "{err}"
            );
            assert_eq!(
                l.outcome(Ending::Cancelled).workers_lost,
                u32::from(policy.max_retries)
            );
        }
    }

    #[test]
    fn only_the_first_answer_counts_and_the_outcome_holds_everything() {
        let mut l = Ledger::new(&spec(2), RetryPolicy::PROCESSES);
        let held = InFlight::new(0, 0.5, 1_000_000_000);
        let r = l.finish(&held, 3, 42, 1.5, 3_000_000_000).unwrap();
        assert_eq!(
            (r.task, r.worker, r.sum, r.start_s, r.end_s),
            (0, 3, 42, 0.5, 1.5)
        );
        assert_eq!(r.cpu_s, 2.0);
        assert!(
            l.finish(&held, 4, 43, 2.0, 0).is_none(),
            "a second answer is dropped"
        );
        assert!(
            l.finish(&InFlight::new(7, 0.0, 0), 4, 1, 1.0, 0).is_none(),
            "no task 7"
        );
        assert!(!l.done());
        assert!(l.is_finished(0) && !l.is_finished(1) && !l.is_finished(7));
        assert!(matches!(l.ending(Ok(())), Ending::Cancelled));
        l.finish(&InFlight::new(1, 0.0, 0), 3, 8, 2.0, 0).unwrap();
        assert!(l.done());
        assert!(matches!(l.ending(Ok(())), Ending::Completed));
        assert!(matches!(l.ending(Err("x".into())), Ending::Failed(w) if w == "x"));
        l.add_cpu(CpuTimes {
            user_s: 1.0,
            sys_s: 0.5,
        });
        l.add_cpu(CpuTimes {
            user_s: 1.0,
            sys_s: 0.0,
        });
        l.add_latencies(vec![1.0, 2.0]);
        let o = l.outcome(Ending::Completed);
        assert_eq!(o.records.iter().map(|r| r.sum).collect::<Vec<_>>(), [42, 8]);
        assert_eq!((o.cpu.user_s, o.cpu.sys_s), (2.0, 0.5));
        assert_eq!(o.latencies_ms, [1.0, 2.0]);
        assert_eq!(o.workers_lost, 0);
    }

    #[test]
    fn a_caught_workers_results_are_struck_out_and_queued_again() {
        let mut l = Ledger::new(&spec(4), RetryPolicy::BUS);
        let take = |l: &mut Ledger, worker: u32| {
            let task = l.next_task().unwrap();
            let sum = 1000 + task as u64;
            l.finish(&InFlight::new(task, 0.0, 0), worker, sum, 1.0, 0)
                .unwrap();
        };
        take(&mut l, 7);
        take(&mut l, 8);
        take(&mut l, 7);
        assert_eq!(l.reopen_worker(7), [0, 2]);
        assert!(!l.is_finished(0) && l.is_finished(1) && !l.is_finished(2));
        assert_eq!(l.next_task(), Some(0), "first in line");
        assert_eq!(l.next_task(), Some(2));
        assert_eq!(l.next_task(), Some(3));
        assert!(l.reopen_worker(7).is_empty());
        let out = l.outcome(Ending::Completed);
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].worker, 8);
    }
}
