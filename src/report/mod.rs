//! What a run produced, in the shape the CLI prints and the GUI keeps.

pub mod event;
pub mod export;
pub mod gil;
pub mod history;

use serde::{Deserialize, Serialize};

use crate::report::event::{Sample, TaskRecord};
use crate::spec::RunSpec;
use gil::GilReport;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Ok,
    Cancelled,
    Failed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed => "failed",
        }
    }
}

/// The full account of one run: its spec, result, CPU accounting and timelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub spec: RunSpec,
    pub status: RunStatus,
    /// Why the run failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Per-task sums in task order; `null` for a task that did not finish.
    pub sums: Vec<Option<u64>>,
    /// Sum of all task sums (of those that finished).
    pub total: u64,
    pub wall_s: f64,
    /// CPU time of the workers in user and kernel mode.
    pub user_s: f64,
    pub sys_s: f64,
    /// `(user + sys) / wall`, as `time` prints it.
    pub cpu_percent: f64,
    /// CPU used during the run by this process outside the run, over wall time
    /// (% of one core): the window's own cost when the app ran it, about 0 from
    /// the command line. The observer effect, stated.
    #[serde(default)]
    pub observer_cpu_percent: f64,
    /// Logical cores available to the run.
    pub cores: usize,
    /// The machine the run ran on, by host name: the server's for a run sent
    /// to `scalelab serve`. Empty in reports written before it was recorded.
    #[serde(default)]
    pub host: String,
    /// Workers that died during the run (their tasks were re-run).
    #[serde(default)]
    pub workers_lost: u32,
    /// One entry per finished task, in finishing order.
    pub task_timeline: Vec<TaskRecord>,
    /// Machine and run samples at 10 Hz.
    pub cpu_timeline: Vec<Sample>,
    /// Request latencies of the I/O workloads (from sending a request to
    /// being ready to run again, which under the GIL includes re-taking it).
    /// As `io_stats`: `io` is the spec's knobs, flattened beside it.
    #[serde(rename = "io_stats", skip_serializing_if = "Option::is_none", default)]
    pub io: Option<IoStats>,
    /// What the emulated GIL did (the `gil` backend), as `gil_stats`.
    #[serde(rename = "gil_stats", skip_serializing_if = "Option::is_none", default)]
    pub gil: Option<GilReport>,
    /// The bus master's spot-checks of remote workers' results (the `bus`
    /// backend, when remote workers answered).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verification: Option<Verification>,
}

/// What the bus master recomputed of remote workers' results, and what it found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Percent of remote results recomputed (besides each remote worker's first).
    pub percent: u32,
    /// Results recomputed.
    pub verified: u32,
    /// Results whose sum was not the task's.
    pub mismatches: u32,
    /// Workers evicted for a wrong sum, by name, with the evidence.
    pub evicted: Vec<String>,
}

/// Request latency statistics of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoStats {
    pub requests: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_max: f64,
}

impl IoStats {
    /// Statistics of a set of latencies; `None` when there are none.
    pub fn from_latencies(mut ms: Vec<f32>) -> Option<Self> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f32::total_cmp);
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize] as f64;
        Some(Self {
            requests: ms.len() as u64,
            latency_ms_p50: at(0.5),
            latency_ms_p90: at(0.9),
            latency_ms_max: at(1.0),
        })
    }
}

impl RunReport {
    /// The report of a run that ended without the engine's own (its server
    /// went away): `status` and `reason`, no results, on `host` of `cores` cores.
    pub fn without_results(
        spec: RunSpec,
        status: RunStatus,
        reason: String,
        host: &str,
        cores: usize,
    ) -> Self {
        RunReport {
            sums: vec![None; spec.tasks as usize],
            spec,
            status,
            reason: Some(reason),
            total: 0,
            wall_s: 0.0,
            user_s: 0.0,
            sys_s: 0.0,
            cpu_percent: 0.0,
            observer_cpu_percent: 0.0,
            cores,
            host: host.to_string(),
            workers_lost: 0,
            task_timeline: Vec::new(),
            cpu_timeline: Vec::new(),
            io: None,
            gil: None,
            verification: None,
        }
    }

    /// Efficiency: the share of the machine the run kept busy, 0..=1.
    pub fn efficiency(&self) -> f64 {
        self.cpu_percent / (100.0 * self.cores.max(1) as f64)
    }

    /// Numbers drawn per second of wall time.
    pub fn throughput(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.spec.total_numbers() as f64 / self.wall_s
        } else {
            0.0
        }
    }

    /// A one-line summary in the style of `time`.
    pub fn time_line(&self) -> String {
        format!(
            "{:.2}s user {:.2}s system {:.0}% cpu {:.3} total",
            self.user_s, self.sys_s, self.cpu_percent, self.wall_s
        )
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A completed report of `spec` with no tasks run: a base for tests to fill.
    pub fn report(spec: RunSpec) -> RunReport {
        RunReport {
            status: RunStatus::Ok,
            reason: None,
            wall_s: 1.0,
            ..RunReport::without_results(spec, RunStatus::Ok, String::new(), "testhost", 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::report;
    use super::*;

    #[test]
    fn latency_statistics_pick_the_median_the_90th_percentile_and_the_max() {
        assert_eq!(IoStats::from_latencies(Vec::new()), None);
        // 1..=11 shuffled: the median is the 6th, p90 the 10th, the max the 11th.
        let ms = vec![7.0, 1.0, 11.0, 3.0, 9.0, 5.0, 2.0, 10.0, 4.0, 8.0, 6.0];
        assert_eq!(
            IoStats::from_latencies(ms),
            Some(IoStats {
                requests: 11,
                latency_ms_p50: 6.0,
                latency_ms_p90: 10.0,
                latency_ms_max: 11.0,
            })
        );
    }

    #[test]
    fn throughput_is_numbers_per_second_and_zero_without_time() {
        let mut r = report(RunSpec {
            tasks: 4,
            numbers_per_task: 1_000,
            ..RunSpec::default()
        });
        r.wall_s = 2.0;
        assert_eq!(r.throughput(), 2_000.0);
        r.wall_s = 0.0;
        assert_eq!(r.throughput(), 0.0);
    }

    #[test]
    fn the_time_line_reads_like_times() {
        let mut r = report(RunSpec::default());
        (r.user_s, r.sys_s, r.cpu_percent, r.wall_s) = (1.234, 0.5, 87.6, 2.0);
        assert_eq!(r.time_line(), "1.23s user 0.50s system 88% cpu 2.000 total");
    }
}
