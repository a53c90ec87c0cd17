//! The run history: every finished run with its id, the baseline speed-ups are
//! measured against, and the copy worth persisting (minus the bulky timelines).
//! Data only: the window draws it (`gui::history`), exports read its rows.

use serde::{Deserialize, Serialize};

use super::export::{ExportRow, speedup};
use super::{RunReport, RunStatus};

/// Most runs kept; the oldest go first.
pub const MAX_RUNS: usize = 200;

/// One finished run in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub report: RunReport,
}

/// Every finished run, with the baseline the user picked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunHistory {
    pub entries: Vec<HistoryEntry>,
    /// The run speed-ups are measured against; the first completed run if unset.
    pub baseline: Option<u64>,
    next_id: u64,
}

impl RunHistory {
    /// Adds a finished run; returns its id.
    pub fn push(&mut self, report: RunReport) -> u64 {
        self.next_id = self
            .next_id
            .max(self.entries.iter().map(|e| e.id).max().unwrap_or(0))
            + 1;
        let id = self.next_id;
        self.entries.push(HistoryEntry { id, report });
        if self.entries.len() > MAX_RUNS {
            let gone = self.entries.remove(0);
            if self.baseline == Some(gone.id) {
                self.baseline = None;
            }
        }
        id
    }

    pub fn get(&self, id: u64) -> Option<&RunReport> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.report)
    }

    pub fn remove(&mut self, id: u64) {
        self.entries.retain(|e| e.id != id);
        if self.baseline == Some(id) {
            self.baseline = None;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.baseline = None;
    }

    /// The baseline's id: the one picked, else the first completed run.
    pub fn baseline_id(&self) -> Option<u64> {
        self.baseline
            .filter(|id| self.get(*id).is_some())
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.report.status == RunStatus::Ok)
                    .map(|e| e.id)
            })
    }

    /// Every run with its speed-up against the baseline, for tables and exports.
    pub fn rows(&self) -> Vec<ExportRow<'_>> {
        let base = self.baseline_id().and_then(|id| self.get(id));
        self.entries
            .iter()
            .map(|e| ExportRow {
                id: e.id,
                report: &e.report,
                speedup: base.and_then(|b| speedup(b, &e.report)),
            })
            .collect()
    }

    /// A copy without per-sample and per-task timelines: what is worth persisting.
    pub fn without_timelines(&self) -> RunHistory {
        RunHistory {
            entries: self
                .entries
                .iter()
                .map(|e| HistoryEntry {
                    id: e.id,
                    report: summary_of(&e.report),
                })
                .collect(),
            baseline: self.baseline,
            next_id: self.next_id,
        }
    }
}

/// A report's numbers without its timelines (cloned field by field: the timelines can be large).
fn summary_of(r: &RunReport) -> RunReport {
    RunReport {
        spec: r.spec.clone(),
        status: r.status,
        reason: r.reason.clone(),
        // Sums of huge runs are dropped: nothing shows them, and they would bloat the file.
        sums: if r.sums.len() <= 1024 {
            r.sums.clone()
        } else {
            Vec::new()
        },
        total: r.total,
        wall_s: r.wall_s,
        user_s: r.user_s,
        sys_s: r.sys_s,
        cpu_percent: r.cpu_percent,
        observer_cpu_percent: r.observer_cpu_percent,
        cores: r.cores,
        host: r.host.clone(),
        workers_lost: r.workers_lost,
        task_timeline: Vec::new(),
        cpu_timeline: Vec::new(),
        io: r.io.clone(),
        // The GIL's totals stay; its hand-off timeline goes with the other timelines.
        gil: r.gil.as_ref().map(|g| super::gil::GilReport {
            holds: Vec::new(),
            holds_dropped: g.holds_dropped + g.holds.len() as u64,
            ..g.clone()
        }),
        verification: r.verification.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RunSpec;

    fn report(status: RunStatus, wall_s: f64) -> RunReport {
        RunReport {
            spec: RunSpec::default(),
            status,
            reason: None,
            sums: vec![],
            total: 0,
            wall_s,
            user_s: 0.0,
            sys_s: 0.0,
            cpu_percent: 100.0,
            observer_cpu_percent: 0.0,
            cores: 2,
            host: "box".into(),
            workers_lost: 0,
            task_timeline: vec![],
            cpu_timeline: vec![crate::report::event::Sample {
                t_s: 0.1,
                per_core: vec![1.0, 2.0],
                run_cpu_percent: 1.0,
                numbers_per_s: 1.0,
                numbers_done: 1,
                requests_per_s: 0.0,
                observer_cpu_percent: 0.0,
            }],
            io: None,
            gil: None,
            verification: None,
        }
    }

    #[test]
    fn baseline_defaults_to_the_first_completed_run() {
        let mut h = RunHistory::default();
        let a = h.push(report(RunStatus::Cancelled, 1.0));
        let b = h.push(report(RunStatus::Ok, 2.0));
        let c = h.push(report(RunStatus::Ok, 1.0));
        assert_eq!(h.baseline_id(), Some(b));
        let rows = h.rows();
        assert_eq!(rows[0].speedup, None);
        assert_eq!(rows[2].speedup, Some(2.0));
        h.baseline = Some(c);
        assert_eq!(h.rows()[1].speedup, Some(0.5));
        h.remove(c);
        assert_eq!(h.baseline_id(), Some(b));
        h.remove(a);
        assert_eq!(h.entries.len(), 1);
        h.clear();
        assert!(h.entries.is_empty() && h.baseline_id().is_none());
    }

    #[test]
    fn the_baseline_goes_only_with_its_own_run() {
        let mut h = RunHistory::default();
        let a = h.push(report(RunStatus::Ok, 1.0));
        let b = h.push(report(RunStatus::Ok, 1.0));
        h.baseline = Some(b);
        h.remove(a);
        assert_eq!(h.baseline, Some(b), "removing another run kept it");
        h.remove(b);
        assert_eq!(h.baseline, None);
        // Falling off the end of the history takes the baseline only if it is the one that falls.
        let mut h = RunHistory::default();
        let first = h.push(report(RunStatus::Ok, 1.0));
        let second = h.push(report(RunStatus::Ok, 1.0));
        h.baseline = Some(second);
        for _ in 0..MAX_RUNS - 1 {
            h.push(report(RunStatus::Ok, 1.0));
        }
        assert!(h.get(first).is_none());
        assert_eq!(h.baseline, Some(second));
        h.push(report(RunStatus::Ok, 1.0));
        assert!(h.get(second).is_none());
        assert_eq!(h.baseline, None);
    }

    #[test]
    fn summaries_keep_small_sums_and_the_gils_totals() {
        let mut small = report(RunStatus::Ok, 1.0);
        small.sums = vec![Some(1); 1024];
        let mut big = report(RunStatus::Ok, 1.0);
        big.sums = vec![Some(1); 1025];
        let hold = |w| crate::report::gil::GilHold {
            worker: w,
            start_s: 0.0,
            end_s: 1.0,
        };
        small.gil = Some(crate::report::gil::GilReport {
            switch_interval_ms: 5.0,
            switches: 9,
            drop_requests: 1,
            per_worker: Vec::new(),
            holds: vec![hold(0), hold(1), hold(0)],
            holds_dropped: 4,
        });
        let s = summary_of(&small);
        assert_eq!(s.sums.len(), 1024);
        assert!(s.cpu_timeline.is_empty());
        let gil = s.gil.unwrap();
        assert!(gil.holds.is_empty());
        assert_eq!(gil.holds_dropped, 7, "the holds it leaves out are counted");
        assert_eq!(gil.switches, 9);
        assert!(summary_of(&big).sums.is_empty());
    }

    #[test]
    fn ids_keep_growing_and_history_is_capped() {
        let mut h = RunHistory::default();
        for _ in 0..MAX_RUNS + 5 {
            h.push(report(RunStatus::Ok, 1.0));
        }
        assert_eq!(h.entries.len(), MAX_RUNS);
        assert_eq!(h.entries[0].id, 6);
        assert_eq!(h.entries.last().unwrap().id, MAX_RUNS as u64 + 5);
    }

    #[test]
    fn persisted_copy_drops_timelines_only() {
        let mut h = RunHistory::default();
        h.push(report(RunStatus::Ok, 1.0));
        let s = h.without_timelines();
        assert!(s.entries[0].report.cpu_timeline.is_empty());
        assert_eq!(s.entries[0].report.wall_s, 1.0);
        assert_eq!(s.next_id, h.next_id);
    }
}
