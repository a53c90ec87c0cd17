//! What a run is: the backend, the workload and their sizes, checked before anything starts.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::workload::cpu::MAX_DRAW;

/// Most workers a run may ask for.
pub const MAX_WORKERS: u32 = 1024;
/// Most tasks a run may ask for (each task gets a row in the timeline).
pub const MAX_TASKS: u32 = 100_000;

/// What runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Native OS threads, no interpreter lock.
    Threads,
    /// A pool of child processes of scalelab itself, fed over pipes.
    Processes,
}

impl BackendKind {
    /// Every backend the engine offers, in the order the UI lists them.
    pub const ALL: [BackendKind; 2] = [BackendKind::Threads, BackendKind::Processes];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Threads => "threads",
            BackendKind::Processes => "processes",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// The chapter's CPU-bound sum of seeded random integers in [1, 100].
    Cpu,
}

impl WorkloadKind {
    /// Every workload, in the order the UI lists them.
    pub const ALL: [WorkloadKind; 1] = [WorkloadKind::Cpu];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Cpu => "cpu",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One run's full description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    pub backend: BackendKind,
    pub workload: WorkloadKind,
    pub workers: u32,
    pub tasks: u32,
    pub numbers_per_task: u64,
    pub seed: u64,
}

impl Default for RunSpec {
    /// The chapter's experiment: 8 workers, 8 tasks of 1,000,000 numbers.
    fn default() -> Self {
        Self {
            backend: BackendKind::Threads,
            workload: WorkloadKind::Cpu,
            workers: 8,
            tasks: 8,
            numbers_per_task: 1_000_000,
            seed: 42,
        }
    }
}

/// Why a spec was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for SpecError {}

impl RunSpec {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.problems().into_iter().next().map_or(Ok(()), Err)
    }

    /// Every problem with the spec, one per field at most (for forms that show them all).
    pub fn problems(&self) -> Vec<SpecError> {
        let mut out = Vec::new();
        let mut bad = |field, message: String| out.push(SpecError { field, message });
        if self.workers == 0 {
            bad("workers", "must be at least 1".into());
        } else if self.workers > MAX_WORKERS {
            bad(
                "workers",
                format!("{} is more than the limit of {MAX_WORKERS}", self.workers),
            );
        }
        if self.tasks == 0 {
            bad("tasks", "must be at least 1".into());
        } else if self.tasks > MAX_TASKS {
            bad(
                "tasks",
                format!("{} is more than the limit of {MAX_TASKS}", self.tasks),
            );
        }
        if self.numbers_per_task == 0 {
            bad("numbers_per_task", "must be at least 1".into());
        } else if (self.tasks as u64)
            .checked_mul(self.numbers_per_task)
            .and_then(|n| n.checked_mul(MAX_DRAW))
            .is_none()
        {
            bad(
                "numbers_per_task",
                format!(
                    "{} tasks x {} numbers could overflow a 64-bit sum",
                    self.tasks, self.numbers_per_task
                ),
            );
        }
        out
    }

    /// Total numbers drawn by the run.
    pub fn total_numbers(&self) -> u64 {
        self.tasks as u64 * self.numbers_per_task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut RunSpec)) -> RunSpec {
        let mut s = RunSpec::default();
        f(&mut s);
        s
    }

    #[test]
    fn default_is_valid() {
        assert_eq!(RunSpec::default().validate(), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (with(|s| s.workers = 0), "workers", "at least 1"),
            (with(|s| s.workers = 1025), "workers", "limit of 1024"),
            (with(|s| s.tasks = 0), "tasks", "at least 1"),
            (with(|s| s.tasks = MAX_TASKS + 1), "tasks", "limit"),
            (
                with(|s| s.numbers_per_task = 0),
                "numbers_per_task",
                "at least 1",
            ),
            (
                with(|s| s.numbers_per_task = u64::MAX / 100),
                "numbers_per_task",
                "overflow",
            ),
        ];
        for (spec, field, text) in cases {
            let err = spec.validate().unwrap_err();
            assert_eq!(err.field, field, "{spec:?}");
            assert!(err.message.contains(text), "{err}");
        }
    }

    #[test]
    fn largest_sum_that_fits_is_accepted() {
        let s = with(|s| {
            s.tasks = 1;
            s.numbers_per_task = u64::MAX / 100;
        });
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn all_problems_are_listed() {
        let s = with(|s| {
            s.workers = 0;
            s.tasks = 0;
            s.numbers_per_task = 0;
        });
        assert_eq!(s.problems().len(), 3);
    }
}
