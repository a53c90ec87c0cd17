//! Spot-checks of remote workers' results. A result inside its task's bounds
//! can still be wrong: a worker that lies, or one with a broken kernel. The
//! master recomputes each remote worker's first result and a random sample of
//! the rest, on a thread of its own so that its loop (heartbeats, dispatch)
//! never waits for a check. Which tasks are checked depends on a secret drawn
//! per run, so a worker cannot tell which of its answers will be looked at.
//! Local children run this binary's own kernel and are not checked.

use std::collections::HashSet;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::metrics::clocks::{CpuTimes, lower_this_thread, this_thread_times};
use crate::report::Verification;
use crate::spec::RunSpec;
use crate::workload::cpu::mix64;

/// A result to recompute.
struct Check {
    task: u32,
    worker: u32,
    claimed: u64,
}

/// A recomputed result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    pub task: u32,
    pub worker: u32,
    pub claimed: u64,
    pub expected: u64,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.claimed == self.expected
    }
}

pub(super) struct Verifier {
    spec: RunSpec,
    /// Worker nice and SCHED_IDLE, as the run's workers get.
    lowered: (i32, bool),
    salt: u64,
    /// Workers whose first result has been sent for checking.
    seen: HashSet<u32>,
    thread: Option<(Sender<Check>, JoinHandle<CpuTimes>)>,
    verdicts: Option<Receiver<Verdict>>,
    pending: u32,
    stats: Verification,
    /// Whether any remote result arrived (else the report says nothing of checks).
    used: bool,
}

impl Verifier {
    pub fn new(spec: &RunSpec, lowered: (i32, bool)) -> Result<Self, String> {
        Ok(Verifier {
            spec: spec.clone(),
            lowered,
            salt: secret()?,
            seen: HashSet::new(),
            thread: None,
            verdicts: None,
            pending: 0,
            stats: Verification {
                percent: spec.bus.verify_percent,
                ..Verification::default()
            },
            used: false,
        })
    }

    /// Whether `worker`'s result for `task` is to be recomputed: its first
    /// one always, the others with the run's percentage.
    pub fn wants(&mut self, worker: u32, task: u32) -> bool {
        self.used = true;
        if self.seen.insert(worker) {
            return true;
        }
        mix64(self.salt ^ u64::from(task)) % 100 < u64::from(self.spec.bus.verify_percent)
    }

    /// Queues a result for recomputing.
    pub fn submit(&mut self, task: u32, worker: u32, claimed: u64) -> Result<(), String> {
        if self.thread.is_none() {
            self.start()?;
        }
        let (tx, _) = self.thread.as_ref().expect("started above");
        tx.send(Check {
            task,
            worker,
            claimed,
        })
        .map_err(|_| "the result checker stopped".to_string())?;
        self.pending += 1;
        Ok(())
    }

    fn start(&mut self) -> Result<(), String> {
        let (check_tx, check_rx) = crossbeam_channel::unbounded::<Check>();
        let (verdict_tx, verdict_rx) = crossbeam_channel::unbounded();
        let spec = self.spec.clone();
        let (nice, idle) = self.lowered;
        // Named as a worker: its CPU is the run's, not the window's.
        let handle = std::thread::Builder::new()
            .name("scalelab-worker-verify".into())
            .spawn(move || {
                lower_this_thread(nice, idle);
                for c in check_rx {
                    let expected = spec.expected_sum(c.task);
                    let verdict = Verdict {
                        task: c.task,
                        worker: c.worker,
                        claimed: c.claimed,
                        expected,
                    };
                    if verdict_tx.send(verdict).is_err() {
                        break;
                    }
                }
                this_thread_times()
            })
            .map_err(|e| format!("cannot start the result checker: {e}"))?;
        self.thread = Some((check_tx, handle));
        self.verdicts = Some(verdict_rx);
        Ok(())
    }

    /// Verdicts that have come in, counted.
    pub fn verdicts(&mut self) -> Vec<Verdict> {
        let Some(rx) = &self.verdicts else {
            return Vec::new();
        };
        let got: Vec<Verdict> = rx.try_iter().collect();
        self.pending -= got.len() as u32;
        self.stats.verified += got.len() as u32;
        self.stats.mismatches += got.iter().filter(|v| !v.holds()).count() as u32;
        got
    }

    /// Results still being recomputed: the run is not over until they are.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// A worker evicted for a wrong sum, by name and with the evidence.
    pub fn evicted(&mut self, entry: String) {
        self.stats.evicted.push(entry);
    }

    /// Stops the checker (dropping what it has not done: the run is over) and
    /// gives the report's figures and the checker's CPU time.
    pub fn finish(mut self) -> (Option<Verification>, CpuTimes) {
        let cpu = match self.thread.take() {
            Some((tx, handle)) => {
                drop(tx);
                handle.join().unwrap_or_default()
            }
            None => CpuTimes::default(),
        };
        (self.used.then_some(self.stats), cpu)
    }
}

/// 64 bits from the kernel's random source.
fn secret() -> Result<u64, String> {
    super::kernel_random::<8>()
        .map(u64::from_le_bytes)
        .map_err(|e| format!("cannot draw the spot-check secret: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(percent: u32) -> RunSpec {
        let mut s = RunSpec {
            tasks: 10_000,
            numbers_per_task: 100,
            ..RunSpec::default()
        };
        s.bus.verify_percent = percent;
        s
    }

    #[test]
    fn every_workers_first_result_and_about_the_percentage_of_the_rest() {
        let mut v = Verifier::new(&spec(5), (0, false)).unwrap();
        assert!(v.wants(7, 123));
        assert!(v.wants(8, 123), "another worker's first");
        let sampled = (0..10_000).filter(|&t| v.wants(7, t)).count();
        assert!((350..=650).contains(&sampled), "{sampled} of 10,000 at 5 %");
        let mut none = Verifier::new(&spec(0), (0, false)).unwrap();
        assert!(none.wants(1, 0));
        assert_eq!((0..1000).filter(|&t| none.wants(1, t)).count(), 0);
        let mut all = Verifier::new(&spec(100), (0, false)).unwrap();
        assert_eq!((0..1000).filter(|&t| all.wants(1, t)).count(), 1000);
    }

    #[test]
    fn the_sample_differs_from_run_to_run() {
        let pick = || {
            let mut v = Verifier::new(&spec(50), (0, false)).unwrap();
            v.wants(0, 0);
            (1..200).filter(|&t| v.wants(0, t)).collect::<Vec<_>>()
        };
        assert_ne!(pick(), pick(), "a worker could learn a fixed sample");
    }

    /// Whatever the secret, each task gets a draw of its own: a secret of all
    /// ones or all zeros must not make every task's fate the same.
    #[test]
    fn the_sample_depends_on_each_task_whatever_the_secret() {
        for salt in [0, u64::MAX, 0x5555_5555_5555_5555] {
            let mut v = Verifier::new(&spec(50), (0, false)).unwrap();
            v.salt = salt;
            v.wants(0, 0);
            let sampled = (1..=1000).filter(|&t| v.wants(0, t)).count();
            assert!(
                (400..=600).contains(&sampled),
                "salt {salt:#x}: {sampled} of 1000 at 50 %"
            );
        }
    }

    #[test]
    fn wrong_sums_are_found_and_counted() {
        let s = spec(100);
        let mut v = Verifier::new(&s, (0, false)).unwrap();
        v.submit(3, 1, s.expected_sum(3)).unwrap();
        v.submit(4, 2, s.expected_sum(4) + 1).unwrap();
        // Both pending until their verdicts are collected: the run waits for them.
        assert_eq!(v.pending(), 2);
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < 2 {
            assert!(std::time::Instant::now() < deadline);
            got.extend(v.verdicts());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(v.pending(), 0);
        assert!(got.iter().find(|x| x.task == 3).unwrap().holds());
        assert!(!got.iter().find(|x| x.task == 4).unwrap().holds());
        v.used = true;
        let (stats, _) = v.finish();
        let stats = stats.unwrap();
        assert_eq!((stats.verified, stats.mismatches), (2, 1));
    }

    /// The report speaks of checks only when some remote result came in;
    /// then it carries the percentage and the workers evicted, even with
    /// nothing checked yet.
    #[test]
    fn the_report_has_checks_only_when_remote_results_came() {
        let (stats, cpu) = Verifier::new(&spec(5), (0, false)).unwrap().finish();
        assert_eq!(stats, None);
        assert_eq!((cpu.user_s, cpu.sys_s), (0.0, 0.0), "no checker ran");
        let mut v = Verifier::new(&spec(5), (0, false)).unwrap();
        assert!(v.wants(1, 0));
        v.evicted("worker 1 (host): task 0 summed 5, not 6".into());
        let stats = v.finish().0.expect("a remote result came");
        assert_eq!(stats.percent, 5);
        assert_eq!((stats.verified, stats.mismatches), (0, 0));
        assert_eq!(stats.evicted, ["worker 1 (host): task 0 summed 5, not 6"]);
    }
}
