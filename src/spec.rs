//! What a run is: the backend, the workload and their sizes, checked before anything starts.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

use crate::workload::cpu::{self, MAX_DRAW};
use crate::workload::io;

/// Most workers a run may ask for.
pub const MAX_WORKERS: u32 = 1024;
/// Most tasks a run may ask for (each task gets a row in the timeline).
pub const MAX_TASKS: u32 = 100_000;

/// What runs the tasks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Native OS threads, no interpreter lock.
    Threads,
    /// A pool of child processes of scalelab itself, fed over pipes.
    Processes,
    /// OS threads that must hold an emulated CPython GIL to compute.
    Gil,
    /// One thread running every task as a cooperative coroutine (tokio).
    #[value(name = "eventloop")]
    #[serde(rename = "eventloop")]
    EventLoop,
    /// Worker processes, local or on other machines, fed over a ZeroMQ message bus.
    Bus,
}

impl BackendKind {
    /// The colour this backend has in every chart and table, the window's
    /// and the exported PNGs' alike (sRGB).
    pub fn rgb(self) -> [u8; 3] {
        match self {
            BackendKind::Threads => [70, 140, 230],
            BackendKind::Gil => [235, 130, 50],
            BackendKind::Processes => [90, 185, 100],
            BackendKind::EventLoop => [200, 90, 200],
            BackendKind::Bus => [220, 80, 80],
        }
    }

    /// Every backend the engine offers, in the order the UI lists them.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Threads,
        BackendKind::Gil,
        BackendKind::Processes,
        BackendKind::EventLoop,
        BackendKind::Bus,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Threads => "threads",
            BackendKind::Processes => "processes",
            BackendKind::Gil => "gil",
            BackendKind::EventLoop => "eventloop",
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// The chapter's CPU-bound sum of seeded random integers in [1, 100].
    Cpu,
    /// Requests to a local latency service; the result sums their payloads.
    Io,
    /// CPU slices between requests: the CPU sum plus the payloads.
    Mixed,
}

impl WorkloadKind {
    /// Every workload, in the order the UI lists them.
    pub const ALL: [WorkloadKind; 3] = [WorkloadKind::Cpu, WorkloadKind::Io, WorkloadKind::Mixed];

    /// True when tasks draw random numbers.
    pub fn computes(self) -> bool {
        matches!(self, WorkloadKind::Cpu | WorkloadKind::Mixed)
    }

    /// True when tasks make requests to the latency service.
    pub fn does_io(self) -> bool {
        matches!(self, WorkloadKind::Io | WorkloadKind::Mixed)
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Cpu => "cpu",
            WorkloadKind::Io => "io",
            WorkloadKind::Mixed => "mixed",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One run's full description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunSpec {
    pub backend: BackendKind,
    pub workload: WorkloadKind,
    #[schema(minimum = 1, maximum = 1024)]
    pub workers: u32,
    #[schema(minimum = 1, maximum = 100_000)]
    pub tasks: u32,
    /// Random integers each task sums (cpu and mixed).
    pub numbers_per_task: u64,
    pub seed: u64,
    /// The I/O workload's knobs (used by `io` and `mixed`).
    #[serde(default)]
    pub io: IoParams,
    /// The `gil` backend's knobs.
    #[serde(default)]
    pub gil: GilParams,
    /// Settings of the `bus` backend (ignored by the others).
    #[serde(default)]
    pub bus: BusParams,
}

/// Requests per task and the latency service's delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IoParams {
    pub requests: u32,
    pub latency_ms: u32,
}

impl Default for IoParams {
    /// 8 tasks x 10 requests x 20 ms: about 1.6 s with one worker.
    fn default() -> Self {
        Self {
            requests: 10,
            latency_ms: 20,
        }
    }
}

/// Most requests a task may make, and the longest latency the service may add.
pub const MAX_REQUESTS: u32 = 100_000;
pub const MAX_LATENCY_MS: u32 = 60_000;

/// The emulated GIL's switch interval (CPython's `sys.setswitchinterval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GilParams {
    pub switch_interval_us: u64,
}

impl Default for GilParams {
    /// CPython's default: 5 ms.
    fn default() -> Self {
        Self {
            switch_interval_us: 5_000,
        }
    }
}

/// Bounds of the switch interval: 50 us to 1 s.
pub const MIN_SWITCH_US: u64 = 50;
pub const MAX_SWITCH_US: u64 = 1_000_000;

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
            io: IoParams::default(),
            gil: GilParams::default(),
            bus: BusParams::default(),
        }
    }
}

/// Why a spec was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

impl RunSpec {
    /// The result task `task` must give, computed directly from the kernels.
    pub fn expected_sum(&self, task: u32) -> u64 {
        let (seed, t) = (self.seed, task as u64);
        match self.workload {
            WorkloadKind::Cpu => cpu::task_sum(seed, t, self.numbers_per_task),
            WorkloadKind::Io => io::io_sum(seed, t, self.io.requests),
            WorkloadKind::Mixed => {
                cpu::task_sum(seed, t, self.numbers_per_task)
                    + io::io_sum(seed, t, self.io.requests)
            }
        }
    }

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
        if self.workload.does_io() {
            if self.io.requests == 0 {
                bad("requests", "must be at least 1".into());
            } else if self.io.requests > MAX_REQUESTS {
                bad(
                    "requests",
                    format!(
                        "{} is more than the limit of {MAX_REQUESTS}",
                        self.io.requests
                    ),
                );
            }
            if self.io.latency_ms > MAX_LATENCY_MS {
                bad(
                    "latency_ms",
                    format!(
                        "{} ms is more than the limit of {MAX_LATENCY_MS} ms",
                        self.io.latency_ms
                    ),
                );
            }
        }
        if self.backend == BackendKind::Gil
            && !(MIN_SWITCH_US..=MAX_SWITCH_US).contains(&self.gil.switch_interval_us)
        {
            bad(
                "switch_interval",
                format!(
                    "{} us is outside {MIN_SWITCH_US} us ..= {MAX_SWITCH_US} us",
                    self.gil.switch_interval_us
                ),
            );
        }
        if !self.workload.computes() {
            // The io workload draws no numbers: numbers_per_task is not used.
        } else if self.numbers_per_task == 0 {
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

    /// Total numbers drawn by the run (0 for the io workload).
    pub fn total_numbers(&self) -> u64 {
        if self.workload.computes() {
            self.tasks as u64 * self.numbers_per_task
        } else {
            0
        }
    }
}

/// Where the `bus` master listens and which workers it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct BusParams {
    /// ZeroMQ endpoint the master binds: loopback and an ephemeral port unless exposed on purpose.
    pub bind: String,
    /// Shared secret workers must present; generated (and shown) when absent. Never written out.
    #[serde(skip_serializing)]
    #[schema(write_only)]
    pub token: Option<String>,
    /// How many of `workers` are expected to join from elsewhere; the rest are started locally.
    pub remote_workers: u32,
    /// Heartbeat interval both ways; a peer silent for `HEARTBEAT_LIVENESS` intervals is lost.
    pub heartbeat_ms: u32,
    /// Seconds the run may go without any worker connected (none joined yet,
    /// or all of them gone) before it fails with a reason; 0 waits without end.
    pub join_timeout_s: u32,
    /// Percent of remote workers' results the master recomputes, chosen at
    /// random, besides each remote worker's first (0: only the first).
    pub verify_percent: u32,
    /// CurveZMQ encryption and server authentication: `Some(true)` on (loopback
    /// included), `Some(false)` off, `None` on exactly when `bind` is beyond loopback.
    pub encrypt: Option<bool>,
    /// File holding the master's CURVE key pair (created when missing), so
    /// that workers can pin one public key across runs; else one per run.
    pub keys: Option<String>,
}

/// The longest `join_timeout_s` (a day); 0 means no limit.
pub const MAX_JOIN_TIMEOUT_S: u32 = 86_400;

/// Missed heartbeat intervals after which a bus peer counts as gone.
pub const HEARTBEAT_LIVENESS: u32 = 5;
/// Longest token a bus accepts (its latency service reads no longer one).
pub use crate::workload::io::MAX_TOKEN_LEN;

impl Default for BusParams {
    fn default() -> Self {
        Self {
            bind: "tcp://127.0.0.1:*".into(),
            token: None,
            remote_workers: 0,
            heartbeat_ms: 250,
            join_timeout_s: 60,
            verify_percent: 5,
            encrypt: None,
            keys: None,
        }
    }
}

impl BusParams {
    /// Workers the master starts itself.
    pub fn local_workers(&self, workers: u32) -> u32 {
        workers.saturating_sub(self.remote_workers)
    }

    /// Whether the bus runs CurveZMQ: as asked, else whenever it is exposed beyond loopback.
    pub fn encrypted(&self) -> bool {
        self.encrypt
            .unwrap_or_else(|| !endpoint_host(&self.bind).is_some_and(is_loopback))
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
        if self.verify_percent > 100 {
            bad(
                "bus.verify_percent",
                format!("{} % is more than 100 %", self.verify_percent),
            );
        }
        match &self.keys {
            Some(k) if k.is_empty() => bad("bus.keys", "must name a file".into()),
            Some(_) if self.encrypt == Some(false) => bad(
                "bus.keys",
                "a key pair is for encryption, which this run turns off".into(),
            ),
            _ => {}
        }
        if self.join_timeout_s > MAX_JOIN_TIMEOUT_S {
            bad(
                "bus.join_timeout_s",
                format!(
                    "{} s is more than a day ({MAX_JOIN_TIMEOUT_S} s); 0 waits without end",
                    self.join_timeout_s
                ),
            );
        }
        out
    }
}

/// The HOST of a `tcp://HOST:PORT` endpoint, without an IPv6 address's brackets.
pub fn endpoint_host(ep: &str) -> Option<&str> {
    ep.strip_prefix("tcp://")
        .and_then(|r| r.rsplit_once(':'))
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
}

/// A host that names this machine's loopback: `127.0.0.0/8` or `::1`.
fn is_loopback(host: &str) -> bool {
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
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

/// The `i`-th spec of a soak (`scalelab soak`, `soak --api`): every backend and workload in turn, small sizes.
pub fn soak_spec(i: usize, backends: &[BackendKind]) -> RunSpec {
    let backend = backends[i % backends.len()];
    let workload = WorkloadKind::ALL[(i / backends.len()) % WorkloadKind::ALL.len()];
    RunSpec {
        backend,
        workload,
        workers: 1 + (i % 3) as u32,
        tasks: 4,
        numbers_per_task: 20_000,
        seed: i as u64,
        io: IoParams {
            requests: 2,
            latency_ms: 1,
        },
        ..RunSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every limit is inclusive: the limit itself is a valid run, one past it
    /// is refused, naming the field.
    #[test]
    fn every_limit_takes_its_own_value_and_refuses_one_past_it() {
        let base = RunSpec {
            numbers_per_task: 1,
            ..RunSpec::default()
        };
        let field_of = |s: RunSpec| s.validate().err().map(|e| e.field);
        let io = |requests, latency_ms| RunSpec {
            workload: WorkloadKind::Io,
            io: IoParams {
                requests,
                latency_ms,
            },
            ..base.clone()
        };
        let gil = |switch_interval_us| RunSpec {
            backend: BackendKind::Gil,
            gil: GilParams { switch_interval_us },
            ..base.clone()
        };
        let cases: Vec<(RunSpec, RunSpec, &str)> = vec![
            (
                RunSpec {
                    workers: MAX_WORKERS,
                    ..base.clone()
                },
                RunSpec {
                    workers: MAX_WORKERS + 1,
                    ..base.clone()
                },
                "workers",
            ),
            (
                RunSpec {
                    tasks: MAX_TASKS,
                    ..base.clone()
                },
                RunSpec {
                    tasks: MAX_TASKS + 1,
                    ..base.clone()
                },
                "tasks",
            ),
            (io(MAX_REQUESTS, 1), io(MAX_REQUESTS + 1, 1), "requests"),
            (
                io(1, MAX_LATENCY_MS),
                io(1, MAX_LATENCY_MS + 1),
                "latency_ms",
            ),
            (
                gil(MAX_SWITCH_US),
                gil(MAX_SWITCH_US + 1),
                "switch_interval",
            ),
            (
                gil(MIN_SWITCH_US),
                gil(MIN_SWITCH_US - 1),
                "switch_interval",
            ),
        ];
        for (at, past, field) in cases {
            assert_eq!(field_of(at.clone()), None, "{at:?}");
            assert_eq!(field_of(past.clone()), Some(field), "{past:?}");
        }
    }

    /// The bus's limits, as `every_limit_...`: inclusive, and one past refused.
    #[test]
    fn every_bus_limit_takes_its_own_value_and_refuses_one_past_it() {
        let bus = |f: &dyn Fn(&mut BusParams)| {
            let mut spec = RunSpec {
                backend: BackendKind::Bus,
                workers: 4,
                ..RunSpec::default()
            };
            f(&mut spec.bus);
            spec.validate().err().map(|e| e.field)
        };
        let long = |n: usize| Some("t".repeat(n));
        assert_eq!(bus(&|b| b.token = long(MAX_TOKEN_LEN)), None);
        assert_eq!(
            bus(&|b| b.token = long(MAX_TOKEN_LEN + 1)),
            Some("bus.token")
        );
        assert_eq!(bus(&|b| b.token = long(1)), None);
        assert_eq!(bus(&|b| b.remote_workers = 4), None);
        assert_eq!(bus(&|b| b.remote_workers = 5), Some("bus.remote_workers"));
        assert_eq!(bus(&|b| b.heartbeat_ms = 10), None);
        assert_eq!(bus(&|b| b.heartbeat_ms = 9), Some("bus.heartbeat_ms"));
        assert_eq!(bus(&|b| b.heartbeat_ms = 60_000), None);
        assert_eq!(bus(&|b| b.heartbeat_ms = 60_001), Some("bus.heartbeat_ms"));
        assert_eq!(bus(&|b| b.verify_percent = 100), None);
        assert_eq!(bus(&|b| b.verify_percent = 101), Some("bus.verify_percent"));
        assert_eq!(bus(&|b| b.join_timeout_s = MAX_JOIN_TIMEOUT_S), None);
        assert_eq!(
            bus(&|b| b.join_timeout_s = MAX_JOIN_TIMEOUT_S + 1),
            Some("bus.join_timeout_s")
        );
    }

    #[test]
    fn soak_specs_cycle_through_every_backend_and_workload_small_and_valid() {
        use std::collections::HashSet;
        let backends = BackendKind::ALL;
        let n = backends.len() * WorkloadKind::ALL.len();
        let mut pairs = HashSet::new();
        for i in 0..n {
            let s = soak_spec(i, &backends);
            assert!(s.validate().is_ok(), "{s:?}");
            assert_eq!(s.seed, i as u64);
            assert_eq!((s.tasks, s.numbers_per_task), (4, 20_000));
            assert_eq!((s.io.requests, s.io.latency_ms), (2, 1));
            pairs.insert((s.backend, s.workload));
        }
        // Every backend with every workload, once each in the first n runs.
        assert_eq!(pairs.len(), n);
        // One workload across all the backends, then the next.
        for i in 0..backends.len() {
            assert_eq!(soak_spec(i, &backends).workload, WorkloadKind::Cpu, "{i}");
            let next = soak_spec(backends.len() + i, &backends);
            assert_eq!(next.workload, WorkloadKind::Io, "{i}");
        }
        let workers: Vec<u32> = (0..4).map(|i| soak_spec(i, &backends).workers).collect();
        assert_eq!(workers, [1, 2, 3, 1]);
    }

    #[test]
    fn the_master_starts_the_workers_that_are_not_remote() {
        let with = |remote_workers| BusParams {
            remote_workers,
            ..BusParams::default()
        };
        assert_eq!(with(0).local_workers(4), 4);
        assert_eq!(with(1).local_workers(4), 3);
        assert_eq!(with(4).local_workers(4), 0);
        // More remote workers than workers is refused by `problems`; here it saturates.
        assert_eq!(with(5).local_workers(4), 0);
    }

    #[test]
    fn each_backend_has_a_colour_of_its_own_and_every_kind_prints_its_name() {
        let colours: std::collections::HashSet<[u8; 3]> =
            BackendKind::ALL.iter().map(|b| b.rgb()).collect();
        assert_eq!(colours.len(), BackendKind::ALL.len());
        // The screenshots in the README show these.
        assert_eq!(BackendKind::Threads.rgb(), [70, 140, 230]);
        assert_eq!(BackendKind::Gil.rgb(), [235, 130, 50]);
        for b in BackendKind::ALL {
            assert_eq!(b.to_string(), b.name());
            assert_eq!(BackendKind::from_name(&b.to_string()), Some(b));
        }
        for w in WorkloadKind::ALL {
            assert_eq!(w.to_string(), w.name());
        }
        assert_eq!(WorkloadKind::Mixed.to_string(), "mixed");
    }

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
    fn io_and_gil_knobs_are_checked() {
        let io = |r, l| {
            with(|s| {
                s.workload = WorkloadKind::Io;
                s.io = IoParams {
                    requests: r,
                    latency_ms: l,
                };
            })
        };
        assert_eq!(io(10, 20).validate(), Ok(()));
        assert_eq!(io(0, 20).validate().unwrap_err().field, "requests");
        assert_eq!(
            io(MAX_REQUESTS + 1, 20).validate().unwrap_err().field,
            "requests"
        );
        assert_eq!(
            io(1, MAX_LATENCY_MS + 1).validate().unwrap_err().field,
            "latency_ms"
        );
        // The io workload does not use numbers_per_task.
        let mut s = io(1, 1);
        s.numbers_per_task = 0;
        assert_eq!(s.validate(), Ok(()));
        let gil = |us| {
            with(|s| {
                s.backend = BackendKind::Gil;
                s.gil.switch_interval_us = us;
            })
        };
        assert_eq!(gil(5000).validate(), Ok(()));
        assert_eq!(gil(0).validate().unwrap_err().field, "switch_interval");
        assert_eq!(
            gil(MAX_SWITCH_US + 1).validate().unwrap_err().field,
            "switch_interval"
        );
    }

    #[test]
    fn names_round_trip() {
        for b in BackendKind::ALL {
            assert_eq!(BackendKind::from_name(b.name()), Some(b));
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{b}\""));
        }
    }

    #[test]
    fn encryption_follows_the_bind_unless_asked() {
        let bus = |bind: &str, encrypt| BusParams {
            bind: bind.into(),
            encrypt,
            ..BusParams::default()
        };
        assert!(!bus("tcp://127.0.0.1:*", None).encrypted());
        assert!(!bus("tcp://127.3.2.1:5555", None).encrypted());
        assert!(!bus("tcp://[::1]:5555", None).encrypted());
        assert!(bus("tcp://0.0.0.0:5555", None).encrypted());
        assert!(bus("tcp://*:5555", None).encrypted());
        assert!(bus("tcp://10.1.2.3:5555", None).encrypted());
        assert!(bus("tcp://eth0:5555", None).encrypted());
        assert!(bus("tcp://127.0.0.1:*", Some(true)).encrypted());
        assert!(!bus("tcp://0.0.0.0:5555", Some(false)).encrypted());
    }

    #[test]
    fn a_key_file_needs_encryption() {
        let mut s = RunSpec {
            backend: BackendKind::Bus,
            ..RunSpec::default()
        };
        s.bus.keys = Some("/tmp/k".into());
        assert_eq!(s.validate(), Ok(()));
        s.bus.encrypt = Some(false);
        assert_eq!(s.validate().unwrap_err().field, "bus.keys");
        s.bus.encrypt = None;
        s.bus.keys = Some(String::new());
        assert_eq!(s.validate().unwrap_err().field, "bus.keys");
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
