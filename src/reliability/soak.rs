//! Many runs back to back, then a look at what the process still holds.

use std::time::Duration;

use serde::Serialize;

use crate::engine::{EngineOptions, run_to_end};
use crate::metrics::procinfo::{Resources, settle, snapshot};
use crate::report::RunStatus;
use crate::spec::{BackendKind, WorkloadKind, soak_spec};

/// What a soak found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub runs: usize,
    pub failures: Vec<String>,
    /// After the very first run.
    pub after_first_run: Resources,
    /// After the first round: one run of every backend and workload, so that
    /// libraries that initialise themselves once (libzmq, tokio) have done so.
    pub after_first_round: Resources,
    /// Halfway through the soak (the first round when the soak is that short).
    pub halfway: Resources,
    pub after_soak: Resources,
    /// Resident memory growth from the first round to the end.
    pub rss_growth_percent: f64,
    /// Resident memory growth over the second half of the soak: a leak keeps
    /// growing there, while the allocator's warm-up (glibc's per-thread arenas
    /// filling during the first hundred runs or so) has levelled off.
    pub rss_growth_second_half_percent: f64,
    /// Resident memory growth from the very first run to the end.
    pub rss_growth_since_first_run_percent: f64,
}

impl SoakReport {
    /// The report from its snapshots: after the first run, the first round,
    /// halfway, and the end.
    fn from_snapshots(runs: usize, failures: Vec<String>, at: [Resources; 4]) -> Self {
        let [after_first_run, after_first_round, halfway, after_soak] = at;
        SoakReport {
            runs,
            failures,
            rss_growth_percent: growth(&after_first_round, &after_soak),
            rss_growth_second_half_percent: growth(&halfway, &after_soak),
            rss_growth_since_first_run_percent: growth(&after_first_run, &after_soak),
            after_first_run,
            after_first_round,
            halfway,
            after_soak,
        }
    }

    /// True when nothing failed, no thread, descriptor or child was left
    /// behind, and resident memory levelled off: under 3 % growth over the
    /// second half (a leak of 1 KiB a run gives about 5 % over 250 runs) and
    /// under 25 % in all since the first round.
    pub fn clean(&self) -> bool {
        let (a, b) = (&self.after_first_round, &self.after_soak);
        self.failures.is_empty()
            && b.threads <= a.threads
            && b.fds <= a.fds
            && b.children <= a.children
            && self.rss_growth_second_half_percent < 3.0
            && self.rss_growth_percent < 25.0
    }
}

/// Runs `runs` runs of the `scalelab` binary `exe` (`scalelab run`), one after
/// another, and compares this process's resources after the first and the last.
pub fn soak_cli(runs: usize, backends: &[BackendKind], exe: &std::path::Path) -> SoakReport {
    let mut failures = Vec::new();
    let mut checkpoints = Checkpoints::new(runs, backends);
    for i in 0..runs.max(1) {
        let s = soak_spec(i, backends);
        let out = std::process::Command::new(exe)
            .args(["run", "--format", "json"])
            .args([
                "--backend",
                s.backend.name(),
                "--workload",
                s.workload.name(),
            ])
            .args([
                "--workers",
                &s.workers.to_string(),
                "--tasks",
                &s.tasks.to_string(),
            ])
            .args([
                "--numbers",
                &s.numbers_per_task.to_string(),
                "--seed",
                &s.seed.to_string(),
            ])
            .args(["--requests", &s.io.requests.to_string()])
            .args(["--latency-ms", &s.io.latency_ms.to_string()])
            .output();
        let what = format!("cli run {i} ({} {} x{})", s.backend, s.workload, s.workers);
        match out {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                let want: Vec<u64> = (0..s.tasks).map(|t| s.expected_sum(t)).collect();
                if v["sums"] != serde_json::json!(want) {
                    failures.push(format!("{what}: wrong sums"));
                }
            }
            Ok(o) => failures.push(format!(
                "{what}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => failures.push(format!("{what}: cannot start: {e}")),
        }
        checkpoints.after_run(i);
    }
    checkpoints.finish(runs, failures)
}

/// Runs in one round: every backend with every workload once.
fn round(backends: &[BackendKind]) -> usize {
    backends.len() * WorkloadKind::ALL.len()
}

fn growth(from: &Resources, to: &Resources) -> f64 {
    100.0 * (to.rss_kib as f64 - from.rss_kib as f64) / from.rss_kib.max(1) as f64
}

/// The snapshots a soak takes as it goes: after its first run, its first
/// round and its halfway run.
struct Checkpoints {
    round: usize,
    half: usize,
    first: Option<Resources>,
    first_round: Option<Resources>,
    halfway: Option<Resources>,
}

impl Checkpoints {
    fn new(runs: usize, backends: &[BackendKind]) -> Self {
        Self {
            round: round(backends),
            half: runs / 2,
            first: None,
            first_round: None,
            halfway: None,
        }
    }

    /// Takes whichever snapshot falls after run `i` (counted from 0).
    fn after_run(&mut self, i: usize) {
        let done = i + 1;
        if i == 0 {
            self.first = Some(snapshot());
        }
        if done == self.round {
            self.first_round = Some(snapshot());
        }
        if done == self.half && done > self.round {
            self.halfway = Some(snapshot());
        }
    }

    fn finish(self, runs: usize, failures: Vec<String>) -> SoakReport {
        let after_first_run = self.first.expect("at least one run");
        // A soak shorter than a round compares with its first run.
        let after_first_round = self.first_round.unwrap_or(after_first_run);
        let halfway = self.halfway.unwrap_or(after_first_round);
        let after_soak = settled_snapshot(&after_first_round);
        SoakReport::from_snapshots(
            runs.max(1),
            failures,
            [after_first_run, after_first_round, halfway, after_soak],
        )
    }
}

/// A snapshot once threads, descriptors and children are back to `baseline`,
/// or after half a second: a thread the last run has just joined may still be
/// listed for a moment (see `settle`).
fn settled_snapshot(baseline: &Resources) -> Resources {
    settle(Duration::from_millis(500), snapshot, |now| {
        now.threads <= baseline.threads
            && now.fds <= baseline.fds
            && now.children <= baseline.children
    })
}

/// Runs `runs` runs in this process and compares its resources after the
/// first run with those after the last.
pub fn soak(runs: usize, backends: &[BackendKind], options: &EngineOptions) -> SoakReport {
    let mut failures = Vec::new();
    let mut checkpoints = Checkpoints::new(runs, backends);
    for i in 0..runs.max(1) {
        let spec = soak_spec(i, backends);
        let what = format!(
            "run {i} ({} {} x{})",
            spec.backend, spec.workload, spec.workers
        );
        match run_to_end(spec.clone(), options.clone()) {
            Ok(r) if r.status == RunStatus::Ok => {
                let want: Vec<_> = (0..spec.tasks)
                    .map(|t| Some(spec.expected_sum(t)))
                    .collect();
                if r.sums != want {
                    failures.push(format!("{what}: wrong sums"));
                }
            }
            Ok(r) => failures.push(format!("{what}: {}", r.reason.unwrap_or_default())),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
        checkpoints.after_run(i);
    }
    checkpoints.finish(runs, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(first_round: u64, halfway: u64, end: u64) -> SoakReport {
        let at = |rss_kib| Resources {
            threads: 1,
            fds: 5,
            children: 0,
            rss_kib,
        };
        SoakReport::from_snapshots(
            500,
            vec![],
            [at(first_round), at(first_round), at(halfway), at(end)],
        )
    }

    #[test]
    fn a_warm_up_that_levels_off_is_clean_and_steady_growth_is_a_leak() {
        // Measured: +490 KiB in the first half, +60 KiB in the second.
        assert!(report(8000, 8490, 8550).clean());
        // 1 KiB a run: +250 KiB in each half.
        assert!(!report(5000, 5250, 5500).clean());
        // A big warm-up is fine only up to a point.
        assert!(!report(5000, 7000, 7000).clean());
    }
}
