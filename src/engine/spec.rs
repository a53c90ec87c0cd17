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
    /// Worker processes, local or on other machines, fed over a ZeroMQ message bus.
    Bus,
}

impl BackendKind {
    /// Every backend the engine offers, in the order the UI lists them.
    pub const ALL: [BackendKind; 3] = [
        BackendKind::Threads,
        BackendKind::Processes,
        BackendKind::Bus,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Threads => "threads",
            BackendKind::Processes => "processes",
            BackendKind::Bus => "bus",
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
    /// Settings of the `bus` backend (ignored by the others).
    #[serde(default)]
    pub bus: BusParams,
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
            bus: BusParams::default(),
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
        if self.backend == BackendKind::Bus {
            out.extend(self.bus.problems(self.workers));
        }
        out
    }

    /// Total numbers drawn by the run.
    pub fn total_numbers(&self) -> u64 {
        self.tasks as u64 * self.numbers_per_task
    }
}

/// Where the `bus` master listens and which workers it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusParams {
    /// ZeroMQ endpoint the master binds: loopback and an ephemeral port unless exposed on purpose.
    pub bind: String,
    /// Shared secret workers must present; generated (and shown) when absent. Never written out.
    #[serde(skip_serializing)]
    pub token: Option<String>,
    /// How many of `workers` are expected to join from elsewhere; the rest are started locally.
    pub remote_workers: u32,
    /// Heartbeat interval both ways; a peer silent for `HEARTBEAT_LIVENESS` intervals is lost.
    pub heartbeat_ms: u32,
}

/// Missed heartbeat intervals after which a bus peer counts as gone.
pub const HEARTBEAT_LIVENESS: u32 = 5;
/// Longest token a bus accepts.
pub const MAX_TOKEN_LEN: usize = 256;

impl Default for BusParams {
    fn default() -> Self {
        Self {
            bind: "tcp://127.0.0.1:*".into(),
            token: None,
            remote_workers: 0,
            heartbeat_ms: 250,
        }
    }
}

impl BusParams {
    /// Workers the master starts itself.
    pub fn local_workers(&self, workers: u32) -> u32 {
        workers.saturating_sub(self.remote_workers)
    }

    /// Problems with the bus settings of a run of `workers` workers.
    pub fn problems(&self, workers: u32) -> Vec<SpecError> {
        let mut out = Vec::new();
        let mut bad = |field, message: String| out.push(SpecError { field, message });
        if let Err(why) = check_endpoint(&self.bind) {
            bad("bus.bind", why);
        }
        match &self.token {
            Some(t) if t.is_empty() => bad("bus.token", "must not be empty".into()),
            Some(t) if t.len() > MAX_TOKEN_LEN => bad(
                "bus.token",
                format!("is longer than {MAX_TOKEN_LEN} characters"),
            ),
            Some(t) if !t.chars().all(|c| c.is_ascii_graphic()) => bad(
                "bus.token",
                "may only hold printable ASCII characters, no spaces".into(),
            ),
            _ => {}
        }
        if self.remote_workers > workers {
            bad(
                "bus.remote_workers",
                format!(
                    "{} remote workers is more than the run's {workers} workers",
                    self.remote_workers
                ),
            );
        }
        if !(10..=60_000).contains(&self.heartbeat_ms) {
            bad(
                "bus.heartbeat_ms",
                format!("{} ms is outside 10..=60000 ms", self.heartbeat_ms),
            );
        }
        out
    }
}

/// Accepts `tcp://HOST:PORT` where PORT is a number or `*` (an ephemeral port).
fn check_endpoint(ep: &str) -> Result<(), String> {
    let usage = || format!("{ep:?} is not of the form tcp://ADDRESS:PORT (PORT may be *)");
    let rest = ep.strip_prefix("tcp://").ok_or_else(usage)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(usage)?;
    if host.is_empty() || (port != "*" && port.parse::<u16>().is_err()) {
        return Err(usage());
    }
    if host == "localhost" {
        return Err("use tcp://127.0.0.1:PORT: ZeroMQ cannot bind \"localhost\"".into());
    }
    Ok(())
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
    fn bus_settings_are_checked_only_for_the_bus() {
        let mut s = with(|s| {
            s.bus.bind = "udp://x".into();
            s.bus.remote_workers = 99;
        });
        assert_eq!(s.validate(), Ok(()));
        s.backend = BackendKind::Bus;
        let fields: Vec<_> = s.problems().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["bus.bind", "bus.remote_workers"]);
        for (bind, ok) in [
            ("tcp://127.0.0.1:*", true),
            ("tcp://10.231.0.1:5555", true),
            ("tcp://localhost:*", false),
            ("tcp://127.0.0.1", false),
            ("tcp://127.0.0.1:99999", false),
        ] {
            s.bus = BusParams {
                bind: bind.into(),
                ..BusParams::default()
            };
            assert_eq!(s.validate().is_ok(), ok, "{bind}");
        }
        s.bus = BusParams::default();
        for (token, ok) in [("abc", true), ("", false), ("a b", false)] {
            s.bus.token = Some(token.into());
            assert_eq!(s.validate().is_ok(), ok, "{token:?}");
        }
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
