//! `scalelab compare`: the chapter's experiments side by side, scalelab's
//! backends against real CPython on this machine, with repetitions, medians,
//! speed-ups, efficiency and the scalelab/CPython ratio per experiment.

pub mod chart;
pub mod limits;
pub mod output;
pub mod python;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use serde::Serialize;

use crate::engine::{self, EngineOptions};
use crate::latency_server::LatencyServer;
use crate::measure::median;
use crate::metrics::cores::core_count;
use crate::report::event::Event;
use crate::report::{RunReport, RunStatus};
use crate::spec::{BackendKind, IoParams, RunSpec, WorkloadKind};
use crate::workload::cpu::CpuTask;
use python::{Python, PythonRun};

/// How often a step that waits (an engine run, a CPython child) looks at the cancel flag.
pub(crate) const CANCEL_POLL: Duration = Duration::from_millis(20);

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub tasks: u32,
    pub numbers: u64,
    pub workers: Vec<u32>,
    pub backends: Vec<BackendKind>,
    pub repeat: usize,
    pub seed: u64,
    pub io: IoParams,
    /// The CPython interpreter, or `None` to leave CPython out.
    pub python: Option<String>,
    pub options: EngineOptions,
    /// Measure the limits (kernel, start cost, cancel latency) too.
    pub limits: bool,
    /// Set it to stop the comparison: the engine run or CPython child in
    /// progress is stopped (the child and every process it started are
    /// killed), no further step starts, and `run` returns
    /// `CompareError::Cancelled`.
    pub cancel: Arc<AtomicBool>,
}

impl Default for CompareConfig {
    /// The chapter's experiment: 8 tasks x 1,000,000 numbers, 1, cores and 8 workers.
    fn default() -> Self {
        let mut workers = vec![1, core_count() as u32, 8];
        workers.dedup();
        Self {
            tasks: 8,
            numbers: 1_000_000,
            workers,
            backends: BackendKind::ALL.to_vec(),
            repeat: 3,
            seed: 42,
            io: IoParams::default(),
            python: Some("python3".into()),
            options: EngineOptions::default(),
            limits: true,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Where a comparison is: step `step` of `steps` (from 1), measuring `what`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareProgress {
    pub step: usize,
    pub steps: usize,
    pub what: String,
    /// The share of the comparison's expected time done before this step
    /// (0 to 1). Steps are weighted by a rough estimate of their cost, since
    /// they differ a thousandfold: a CPython CPU step takes seconds, the same
    /// step in scalelab milliseconds.
    pub done: f64,
}

impl fmt::Display for CompareProgress {
    /// `step 3 of 38: scalelab threads x8 (cpu)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} of {}: {}", self.step, self.steps, self.what)
    }
}

/// Why a comparison gave no report. The CLI branches on it: an invalid size is
/// the user's to fix (exit 2), the rest are failures (exit 1).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    /// `CompareConfig::cancel` was set.
    #[error("cancelled")]
    Cancelled,
    /// The engine refused a run of the matrix: the size asked for is invalid.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

impl From<String> for CompareError {
    fn from(why: String) -> Self {
        CompareError::Failed(why)
    }
}

/// One cell of the matrix, over its repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `scalelab` or `cpython`.
    pub implementation: String,
    /// The backend (scalelab) or the script's mode (cpython).
    pub backend: String,
    pub workload: WorkloadKind,
    pub workers: u32,
    pub reps: usize,
    pub wall_s_median: f64,
    pub wall_s_min: f64,
    pub wall_s_max: f64,
    pub user_s_median: f64,
    pub sys_s_median: f64,
    pub cpu_percent_median: f64,
    /// Median wall of the same implementation and workload on one worker
    /// (serial, for CPython) over this row's.
    pub speedup_vs_1_worker: Option<f64>,
    /// %CPU / (100 x cores).
    pub efficiency: f64,
    /// True when every repetition gave the expected sums (scalelab), or the
    /// same sums every time (CPython, whose generator differs).
    pub sums_ok: bool,
}

impl Row {
    /// A short name: `scalelab processes x8 (cpu)`.
    pub fn label(&self) -> String {
        format!(
            "{} {} x{} ({})",
            self.implementation, self.backend, self.workers, self.workload
        )
    }
}

/// One of the chapter's experiments: scalelab's row next to CPython's.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub id: String,
    pub claim: String,
    pub scalelab: String,
    pub cpython: String,
    pub scalelab_wall_s: f64,
    pub cpython_wall_s: f64,
    /// How many times faster scalelab ran it: CPython's wall over scalelab's.
    pub scalelab_speedup_over_cpython: f64,
}

/// A claim of the chapter (or of this project), checked on the numbers measured.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub claim: String,
    pub measured: String,
    pub holds: bool,
}

/// Everything `scalelab compare` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub cores: usize,
    pub tasks: u32,
    pub numbers_per_task: u64,
    pub io_requests: u32,
    pub io_latency_ms: u32,
    pub repeat: usize,
    pub python: Option<String>,
    pub rows: Vec<Row>,
    pub experiments: Vec<Experiment>,
    pub checks: Vec<Check>,
    pub limits: Option<limits::Limits>,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// Repetitions of one cell: (wall, user, sys, %CPU) each time.
struct Reps {
    walls: Vec<f64>,
    users: Vec<f64>,
    syss: Vec<f64>,
    cpus: Vec<f64>,
    sums_ok: bool,
}

impl Reps {
    fn new() -> Self {
        Self {
            walls: Vec::new(),
            users: Vec::new(),
            syss: Vec::new(),
            cpus: Vec::new(),
            sums_ok: true,
        }
    }

    fn push(&mut self, wall: f64, user: f64, sys: f64, cpu: f64) {
        self.walls.push(wall);
        self.users.push(user);
        self.syss.push(sys);
        self.cpus.push(cpu);
    }

    fn row(
        self,
        implementation: &str,
        backend: &str,
        workload: WorkloadKind,
        workers: u32,
        cores: usize,
    ) -> Row {
        let cpu = median(self.cpus.clone());
        Row {
            implementation: implementation.into(),
            backend: backend.into(),
            workload,
            workers,
            reps: self.walls.len(),
            wall_s_min: self.walls.iter().cloned().fold(f64::INFINITY, f64::min),
            wall_s_max: self.walls.iter().cloned().fold(0.0, f64::max),
            wall_s_median: median(self.walls),
            user_s_median: median(self.users),
            sys_s_median: median(self.syss),
            cpu_percent_median: cpu,
            speedup_vs_1_worker: None,
            efficiency: cpu / (100.0 * cores.max(1) as f64),
            sums_ok: self.sums_ok,
        }
    }
}

/// What one step of a comparison measures.
enum StepKind {
    /// One cell of scalelab's matrix, `repeat` times.
    Scalelab(RunSpec),
    /// One of the chapter's scripts in CPython, `repeat` times.
    Cpython {
        mode: &'static str,
        workload: WorkloadKind,
        workers: u32,
    },
    /// The kernel, start cost and cancel latency.
    Limits,
}

struct Step {
    kind: StepKind,
    what: String,
    /// Expected seconds, roughly: only the ratios between steps matter.
    cost_s: f64,
}

/// Rough costs per number, from BENCHMARKS.md's 2-core host (scalelab's
/// kernel about 1.5 ns, CPython's `randint` loop about 750 ns). They only
/// weigh the steps against each other for the progress and its ETA.
const SCALELAB_NS_PER_NUMBER: f64 = 1.5;
const CPYTHON_NS_PER_NUMBER: f64 = 750.0;

/// Seconds the I/O workload waits: each worker's share of the tasks, one request after the other.
fn io_wait_s(tasks: u32, workers: u32, io: &IoParams) -> f64 {
    let rounds = tasks.div_ceil(workers.clamp(1, tasks.max(1)));
    rounds as f64 * io.requests as f64 * io.latency_ms as f64 / 1e3
}

/// The workers of the chapter's experiments: the largest count compared.
fn chapter_workers(cfg: &CompareConfig) -> u32 {
    *cfg.workers.iter().max().unwrap_or(&8)
}

/// Every step of the comparison, in order, each spec validated before anything runs.
fn plan(
    cfg: &CompareConfig,
    base: &RunSpec,
    python: bool,
    cores: usize,
) -> Result<Vec<Step>, CompareError> {
    let reps = cfg.repeat.max(1) as f64;
    let numbers = cfg.tasks as f64 * cfg.numbers as f64;
    let parallel = |workers: u32| workers.min(cores as u32).min(cfg.tasks).max(1) as f64;
    let mut steps = Vec::new();
    // scalelab: every backend x workers, for the cpu and io workloads.
    for workload in [WorkloadKind::Cpu, WorkloadKind::Io] {
        for &backend in &cfg.backends {
            for &workers in &cfg.workers {
                let spec = RunSpec {
                    backend,
                    workload,
                    workers,
                    ..base.clone()
                };
                spec.validate()
                    .map_err(|e| CompareError::Invalid(format!("invalid comparison: {e}")))?;
                let once = match workload {
                    WorkloadKind::Io => io_wait_s(cfg.tasks, workers, &cfg.io),
                    _ => numbers * SCALELAB_NS_PER_NUMBER * 1e-9 / parallel(workers),
                };
                steps.push(Step {
                    kind: StepKind::Scalelab(spec),
                    what: format!("scalelab {backend} x{workers} ({workload})"),
                    cost_s: reps * (once + 0.01),
                });
            }
        }
    }
    // CPython: the chapter's scripts with the same parameters.
    if python {
        let w = chapter_workers(cfg);
        let modes: [(&'static str, WorkloadKind, u32); 6] = [
            ("serial", WorkloadKind::Cpu, 1),
            ("threads", WorkloadKind::Cpu, w),
            ("processes", WorkloadKind::Cpu, w),
            ("pushpull", WorkloadKind::Cpu, w),
            ("threads-io", WorkloadKind::Io, w),
            ("asyncio-io", WorkloadKind::Io, w),
        ];
        for (mode, workload, workers) in modes {
            let cpu = numbers * CPYTHON_NS_PER_NUMBER * 1e-9;
            let once = match mode {
                "serial" | "threads" => cpu,
                "processes" | "pushpull" => cpu / parallel(workers),
                _ => io_wait_s(cfg.tasks, workers, &cfg.io),
            };
            steps.push(Step {
                kind: StepKind::Cpython {
                    mode,
                    workload,
                    workers,
                },
                what: format!("cpython {mode} x{workers}"),
                cost_s: reps * (once + 0.05),
            });
        }
    }
    if cfg.limits {
        steps.push(Step {
            kind: StepKind::Limits,
            what: "limits: kernel, start cost, cancel latency".into(),
            cost_s: limits::expected_s(cfg.backends.len()),
        });
    }
    Ok(steps)
}

/// One engine run to its end; stopped (and `Cancelled` returned) as soon as `cancel` is set.
fn run_engine(
    spec: RunSpec,
    options: &EngineOptions,
    cancel: &AtomicBool,
) -> Result<RunReport, CompareError> {
    if cancel.load(Ordering::Relaxed) {
        return Err(CompareError::Cancelled);
    }
    let h = engine::start(spec, options.clone()).map_err(|e| match e {
        engine::StartError::Invalid(_) => CompareError::Invalid(e.to_string()),
        engine::StartError::Spawn(_) => CompareError::Failed(e.to_string()),
    })?;
    let mut report = None;
    let mut asked = false;
    while report.is_none() {
        if !asked && cancel.load(Ordering::Relaxed) {
            h.cancel();
            asked = true;
        }
        match h.events.recv_timeout(CANCEL_POLL) {
            Ok(Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r)) => report = Some(*r),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Every thread and child of the run has ended when this returns.
    h.join();
    if cancel.load(Ordering::Relaxed) {
        return Err(CompareError::Cancelled);
    }
    report.ok_or_else(|| CompareError::Failed("the run ended without a report".into()))
}

/// The sums a run of `spec` must give, worked out here, on one core: for the
/// CPU workload that is as long as the run's own work, so it goes a chunk at a
/// time, and a cancel stops it at once.
fn expected_sums(spec: &RunSpec, cancel: &AtomicBool) -> Result<Vec<Option<u64>>, CompareError> {
    let mut out = Vec::with_capacity(spec.tasks as usize);
    for t in 0..spec.tasks {
        if cancel.load(Ordering::Relaxed) {
            return Err(CompareError::Cancelled);
        }
        let sum = match spec.workload {
            // `expected_sum`'s, chunk by chunk.
            WorkloadKind::Cpu => CpuTask::new(spec.seed, t as u64, spec.numbers_per_task)
                .run(|_| !cancel.load(Ordering::Relaxed))
                .ok_or(CompareError::Cancelled)?,
            _ => spec.expected_sum(t),
        };
        out.push(Some(sum));
    }
    Ok(out)
}

/// One cell of scalelab's matrix over its repetitions.
fn scalelab_row(spec: &RunSpec, cfg: &CompareConfig, cores: usize) -> Result<Row, CompareError> {
    let (backend, workers, workload) = (spec.backend, spec.workers, spec.workload);
    // Worked out after the first run, so that a cancel meets the run itself first.
    let mut expected = None;
    let mut reps = Reps::new();
    for _ in 0..cfg.repeat.max(1) {
        let r = run_engine(spec.clone(), &cfg.options, &cfg.cancel)?;
        if r.status != RunStatus::Ok {
            return Err(CompareError::Failed(format!(
                "scalelab {backend} x{workers} ({workload}) failed: {}",
                r.reason.unwrap_or_default()
            )));
        }
        if expected.is_none() {
            expected = Some(expected_sums(spec, &cfg.cancel)?);
        }
        reps.sums_ok &= Some(&r.sums) == expected.as_ref();
        reps.push(r.wall_s, r.user_s, r.sys_s, r.cpu_percent);
    }
    Ok(reps.row("scalelab", backend.name(), workload, workers, cores))
}

/// One of the chapter's scripts in CPython over its repetitions: its row, or
/// why it was left out (`Err(Ok(why))`); `Err(Err(_))` stops the comparison.
fn cpython_row(
    py: &Python,
    (mode, workload, workers): (&str, WorkloadKind, u32),
    io_addr: std::net::SocketAddr,
    base: &RunSpec,
    cfg: &CompareConfig,
    cores: usize,
) -> Result<Row, Result<String, CompareError>> {
    let io = (workload == WorkloadKind::Io).then_some((io_addr, cfg.io.requests));
    let mut reps = Reps::new();
    let mut first_sums: Option<Vec<Option<u64>>> = None;
    for _ in 0..cfg.repeat.max(1) {
        if cfg.cancel.load(Ordering::Relaxed) {
            return Err(Err(CompareError::Cancelled));
        }
        match py.run(
            mode,
            cfg.tasks,
            cfg.numbers,
            workers,
            cfg.seed,
            io,
            &cfg.cancel,
        ) {
            Ok(PythonRun {
                sums,
                wall_s,
                user_s,
                sys_s,
                cpu_percent,
                ..
            }) => {
                let same = first_sums.get_or_insert_with(|| sums.clone()) == &sums;
                // I/O payloads are scalelab's own: check them exactly.
                let exact = workload != WorkloadKind::Io
                    || sums
                        == (0..cfg.tasks)
                            .map(|t| {
                                Some(
                                    RunSpec {
                                        workload,
                                        ..base.clone()
                                    }
                                    .expected_sum(t),
                                )
                            })
                            .collect::<Vec<_>>();
                reps.sums_ok &= same && exact && sums.len() == cfg.tasks as usize;
                reps.push(wall_s, user_s, sys_s, cpu_percent);
            }
            Err(_) if cfg.cancel.load(Ordering::Relaxed) => {
                return Err(Err(CompareError::Cancelled));
            }
            Err(e) => return Err(Ok(e)),
        }
    }
    Ok(reps.row("cpython", mode, workload, workers, cores))
}

/// Runs the whole comparison; `progress` hears each step as it starts.
/// Setting `cfg.cancel` stops it within a fraction of a second (the limits'
/// kernel timing, the longest piece that cannot be interrupted, takes about
/// 0.3 s) with `CompareError::Cancelled`, leaving nothing running.
pub fn run(
    cfg: &CompareConfig,
    mut progress: impl FnMut(&CompareProgress),
) -> Result<CompareReport, CompareError> {
    let cores = core_count();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let python = match &cfg.python {
        None => {
            notes.push("CPython left out (--no-python)".to_string());
            None
        }
        Some(exe) => match Python::find(exe) {
            Ok(p) => Some(p),
            Err(e) => {
                notes.push(format!("CPython left out: {e}"));
                None
            }
        },
    };
    let base = RunSpec {
        tasks: cfg.tasks,
        numbers_per_task: cfg.numbers,
        seed: cfg.seed,
        io: cfg.io,
        ..RunSpec::default()
    };
    base.validate()
        .map_err(|e| CompareError::Invalid(format!("invalid comparison: {e}")))?;
    let steps = plan(cfg, &base, python.is_some(), cores)?;
    let total_s: f64 = steps.iter().map(|s| s.cost_s).sum();
    let mut done_s = 0.0;
    // The latency service CPython's I/O scripts talk to, started at the first of them.
    let mut server: Option<LatencyServer> = None;
    let mut limits = None;
    for (i, step) in steps.iter().enumerate() {
        if cfg.cancel.load(Ordering::Relaxed) {
            return Err(CompareError::Cancelled);
        }
        progress(&CompareProgress {
            step: i + 1,
            steps: steps.len(),
            what: step.what.clone(),
            done: if total_s > 0.0 { done_s / total_s } else { 0.0 },
        });
        match &step.kind {
            StepKind::Scalelab(spec) => rows.push(scalelab_row(spec, cfg, cores)?),
            &StepKind::Cpython {
                mode,
                workload,
                workers,
            } => {
                let Some(py) = &python else { continue };
                let addr = match &server {
                    Some(s) => s.addr(),
                    None => {
                        let s = LatencyServer::start(
                            cfg.seed,
                            Duration::from_millis(cfg.io.latency_ms as u64),
                        )
                        .map_err(|e| format!("cannot start the latency service: {e}"))?;
                        server.insert(s).addr()
                    }
                };
                match cpython_row(py, (mode, workload, workers), addr, &base, cfg, cores) {
                    Ok(row) => rows.push(row),
                    Err(Ok(why)) => notes.push(format!("cpython {mode} left out: {why}")),
                    Err(Err(e)) => return Err(e),
                }
            }
            StepKind::Limits => {
                limits = Some(limits::measure(&cfg.options, &cfg.backends, &cfg.cancel)?)
            }
        }
        done_s += step.cost_s;
    }
    drop(server);

    fill_speedups(&mut rows);
    let experiments = experiments(&rows, cfg);
    let checks = checks(&rows, &experiments, cores, cfg);
    Ok(CompareReport {
        cores,
        tasks: cfg.tasks,
        numbers_per_task: cfg.numbers,
        io_requests: cfg.io.requests,
        io_latency_ms: cfg.io.latency_ms,
        repeat: cfg.repeat.max(1),
        python: python.map(|p| p.version.clone()),
        rows,
        experiments,
        checks,
        limits,
        notes,
    })
}

/// Speed-up of each row over the same implementation's 1-worker row
/// (CPython's serial run for its CPU modes, its x1 row otherwise).
fn fill_speedups(rows: &mut [Row]) {
    let base: Vec<Option<f64>> = rows
        .iter()
        .map(|r| {
            rows.iter()
                .find(|b| {
                    b.implementation == r.implementation
                        && b.workload == r.workload
                        && b.workers == 1
                        && (b.backend == r.backend
                            || (r.implementation == "cpython" && b.backend == "serial"))
                })
                .map(|b| b.wall_s_median)
        })
        .collect();
    for (r, b) in rows.iter_mut().zip(base) {
        r.speedup_vs_1_worker = b.map(|b| b / r.wall_s_median);
    }
}

fn find<'a>(
    rows: &'a [Row],
    imp: &str,
    backend: &str,
    workload: WorkloadKind,
    workers: u32,
) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.implementation == imp
            && r.backend == backend
            && r.workload == workload
            && r.workers == workers
    })
}

/// The chapter's experiments, each as a scalelab row next to its CPython row.
fn experiments(rows: &[Row], cfg: &CompareConfig) -> Vec<Experiment> {
    let w = *cfg.workers.iter().max().unwrap_or(&8);
    let cpu = WorkloadKind::Cpu;
    let io = WorkloadKind::Io;
    let pairs = [
        (
            "serial",
            "one worker, serial: the baseline",
            ("threads", cpu, 1),
            ("serial", cpu, 1),
        ),
        (
            "E1",
            "threads on CPU-bound work: the GIL allows about one core",
            ("gil", cpu, w),
            ("threads", cpu, w),
        ),
        (
            "E1*",
            "threads without a GIL (scalelab's native threads)",
            ("threads", cpu, w),
            ("threads", cpu, w),
        ),
        (
            "E2",
            "a pool of processes sidesteps the GIL",
            ("processes", cpu, w),
            ("processes", cpu, w),
        ),
        (
            "E4",
            "an event loop overlaps I/O on one thread",
            ("eventloop", io, w),
            ("asyncio-io", io, w),
        ),
        (
            "I/O threads",
            "threads for I/O-bound work, even under the GIL",
            ("gil", io, w),
            ("threads-io", io, w),
        ),
        (
            "E6",
            "a message bus spreads work over processes",
            ("bus", cpu, w),
            ("pushpull", cpu, w),
        ),
    ];
    pairs
        .iter()
        .filter_map(|(id, claim, (sb, sw, sn), (pb, pw, pn))| {
            let s = find(rows, "scalelab", sb, *sw, *sn)?;
            let p = find(rows, "cpython", pb, *pw, *pn)?;
            Some(Experiment {
                id: id.to_string(),
                claim: claim.to_string(),
                scalelab: s.label(),
                cpython: p.label(),
                scalelab_wall_s: s.wall_s_median,
                cpython_wall_s: p.wall_s_median,
                scalelab_speedup_over_cpython: p.wall_s_median / s.wall_s_median,
            })
        })
        .collect()
}

/// The chapter's claims, checked on what was measured here.
fn checks(rows: &[Row], exps: &[Experiment], cores: usize, cfg: &CompareConfig) -> Vec<Check> {
    let w = *cfg.workers.iter().max().unwrap_or(&8);
    let cpu = WorkloadKind::Cpu;
    let mut out = Vec::new();
    let serial = find(rows, "cpython", "serial", cpu, 1);
    if let (Some(s), Some(t)) = (serial, find(rows, "cpython", "threads", cpu, w)) {
        out.push(Check {
            claim: format!("CPython: {w} threads are no faster than serial (the GIL)"),
            measured: format!(
                "serial {:.2} s, {w} threads {:.2} s",
                s.wall_s_median, t.wall_s_median
            ),
            holds: t.wall_s_median >= 0.9 * s.wall_s_median,
        });
    }
    if let (Some(s), Some(p)) = (serial, find(rows, "cpython", "processes", cpu, w)) {
        let x = s.wall_s_median / p.wall_s_median;
        out.push(Check {
            claim: format!(
                "CPython: a pool of {w} processes is about cores ({cores}) x faster than serial"
            ),
            measured: format!("{x:.2}x"),
            holds: x >= 0.7 * cores as f64,
        });
    }
    if let Some(e) = exps.iter().find(|e| e.id == "E2") {
        out.push(Check {
            claim: "scalelab processes >= 100x faster than the CPython process pool on the chapter's workload".into(),
            measured: format!("{:.0}x", e.scalelab_speedup_over_cpython),
            holds: e.scalelab_speedup_over_cpython >= 100.0,
        });
    }
    if let (Some(one), Some(many)) = (
        find(rows, "scalelab", "gil", cpu, 1),
        find(rows, "scalelab", "gil", cpu, w),
    ) {
        out.push(Check {
            claim: format!("scalelab gil: {w} CPU-bound threads stay near one core"),
            measured: format!(
                "{:.0} %CPU, wall {:.2}x that of 1 worker",
                many.cpu_percent_median,
                many.wall_s_median / one.wall_s_median
            ),
            holds: many.cpu_percent_median <= 115.0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        imp: &str,
        backend: &str,
        workload: WorkloadKind,
        workers: u32,
        wall: f64,
        cpu: f64,
    ) -> Row {
        let mut r = Reps::new();
        r.push(wall, wall * cpu / 100.0, 0.0, cpu);
        r.row(imp, backend, workload, workers, 2)
    }

    fn sample() -> Vec<Row> {
        let c = WorkloadKind::Cpu;
        let mut rows = vec![
            row("scalelab", "threads", c, 1, 0.010, 100.0),
            row("scalelab", "threads", c, 8, 0.005, 200.0),
            row("scalelab", "gil", c, 1, 0.010, 100.0),
            row("scalelab", "gil", c, 8, 0.011, 100.0),
            row("scalelab", "processes", c, 8, 0.012, 190.0),
            row("cpython", "serial", c, 1, 2.6, 100.0),
            row("cpython", "threads", c, 8, 2.5, 101.0),
            row("cpython", "processes", c, 8, 1.37, 188.0),
        ];
        fill_speedups(&mut rows);
        rows
    }

    #[test]
    fn expected_sums_are_the_workloads_and_stop_on_cancel() {
        let never = AtomicBool::new(false);
        for workload in [WorkloadKind::Cpu, WorkloadKind::Io] {
            let spec = RunSpec {
                workload,
                tasks: 3,
                numbers_per_task: 3 * crate::workload::cpu::CHUNK + 5,
                ..RunSpec::default()
            };
            let want: Vec<Option<u64>> = (0..3).map(|t| Some(spec.expected_sum(t))).collect();
            assert_eq!(expected_sums(&spec, &never).unwrap(), want, "{workload}");
        }
        let spec = RunSpec {
            tasks: 1,
            numbers_per_task: 1 << 40,
            ..RunSpec::default()
        };
        // Cancelled before its first chunk: it returns at once instead of drawing 2^40 numbers.
        let cancel = AtomicBool::new(true);
        assert_eq!(expected_sums(&spec, &cancel), Err(CompareError::Cancelled));
    }

    #[test]
    fn speedups_are_over_the_same_implementations_one_worker_run() {
        let rows = sample();
        assert_eq!(rows[1].speedup_vs_1_worker, Some(2.0));
        assert!((rows[3].speedup_vs_1_worker.unwrap() - 0.010 / 0.011).abs() < 1e-9);
        // No 1-worker processes row: no speed-up rather than a wrong one.
        assert_eq!(rows[4].speedup_vs_1_worker, None);
        // CPython modes compare with the serial run.
        assert!((rows[7].speedup_vs_1_worker.unwrap() - 2.6 / 1.37).abs() < 1e-9);
        assert_eq!(rows[0].efficiency, 0.5);
    }

    #[test]
    fn experiments_pair_rows_and_checks_judge_them() {
        let rows = sample();
        let cfg = CompareConfig {
            workers: vec![1, 8],
            ..CompareConfig::default()
        };
        let exps = experiments(&rows, &cfg);
        let e2 = exps.iter().find(|e| e.id == "E2").unwrap();
        assert!((e2.scalelab_speedup_over_cpython - 1.37 / 0.012).abs() < 1e-9);
        // No bus rows: E6 is left out, not invented.
        assert!(exps.iter().all(|e| e.id != "E6"));
        let checks = checks(&rows, &exps, 2, &cfg);
        let holds = |needle: &str| {
            checks
                .iter()
                .find(|c| c.claim.contains(needle))
                .unwrap()
                .holds
        };
        assert!(holds("no faster than serial"));
        assert!(holds("cores (2) x faster"), "2.6 / 1.37 = 1.9 x on 2 cores");
        // And a claim that fails is reported as failing.
        let mut slow = rows.clone();
        slow[7].wall_s_median = 2.4;
        let checks = super::checks(&slow, &exps, 2, &cfg);
        assert!(
            !checks
                .iter()
                .find(|c| c.claim.contains("cores (2)"))
                .unwrap()
                .holds
        );
        assert!(holds(">= 100x"));
        assert!(holds("near one core"));
    }

    #[test]
    fn every_output_format_has_every_row() {
        let rows = sample();
        let r = CompareReport {
            cores: 2,
            tasks: 8,
            numbers_per_task: 1_000_000,
            io_requests: 10,
            io_latency_ms: 20,
            repeat: 1,
            python: None,
            experiments: Vec::new(),
            checks: Vec::new(),
            limits: None,
            notes: vec!["CPython left out".into()],
            rows,
        };
        let csv = output::to_csv(&r).unwrap();
        let mut rd = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(rd.records().count(), r.rows.len());
        let md = output::to_markdown(&r);
        assert_eq!(
            md.lines()
                .filter(|l| l.starts_with("| scalelab") || l.starts_with("| cpython"))
                .count(),
            r.rows.len()
        );
        let json: serde_json::Value = serde_json::from_str(&output::to_json(&r)).unwrap();
        assert_eq!(json["rows"].as_array().unwrap().len(), r.rows.len());
        assert!(output::to_table(&r).contains("note: CPython left out"));
        let dir = std::env::temp_dir().join(format!("scalelab-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("c.png");
        chart::write_png(&r, &png).unwrap();
        let img = image::open(&png).unwrap().to_rgb8();
        assert!(img.width() >= 1000);
        let colours: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 20, "a blank chart");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
