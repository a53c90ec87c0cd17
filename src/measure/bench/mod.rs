//! `scalelab bench`: the kernel next to a bare generator loop, and how the
//! backends scale with workers on this machine.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::engine::EngineOptions;
use crate::measure::models::{self, ModelsReport};
use crate::measure::{median, run_ok};
use crate::metrics::cores::core_count;
use crate::spec::{BackendKind, RunSpec, WorkloadKind};
use crate::workload::cpu::{bare_loop_sum, task_sum};

mod bus;

/// What to measure and how hard.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Numbers per kernel timing.
    pub kernel_numbers: u64,
    /// Alternating kernel/bare-loop timings; the median of each is reported.
    pub repeats: usize,
    /// Target wall time of the 1-worker scaling run, in seconds.
    pub scaling_run_s: f64,
    pub backends: Vec<BackendKind>,
    pub max_workers: u32,
    pub options: EngineOptions,
    /// Also measure the gil / eventloop / io claims.
    pub models: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        let cores = core_count() as u32;
        Self {
            kernel_numbers: 200_000_000,
            repeats: 7,
            scaling_run_s: 2.5,
            // Every backend, as `scalelab bench` measures them (and compare's matrix).
            backends: BackendKind::ALL.to_vec(),
            max_workers: cores,
            options: EngineOptions::default(),
            models: true,
        }
    }
}

/// One scaling measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingRun {
    pub backend: BackendKind,
    pub workers: u32,
    pub tasks: u32,
    pub numbers_per_task: u64,
    pub wall_s: f64,
    pub cpu_percent: f64,
    pub speedup: f64,
}

/// Everything `scalelab bench` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub cores: usize,
    pub kernel_ns_per_number: f64,
    pub bare_loop_ns_per_number: f64,
    /// Kernel time over bare-loop time: 1.0 means progress reporting costs nothing.
    pub kernel_over_bare: f64,
    /// Speed-up over one worker, by backend and worker count.
    pub speedup: BTreeMap<String, BTreeMap<u32, f64>>,
    pub runs: Vec<ScalingRun>,
    /// The bus's own costs, when `bus` is among the backends measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<bus::BusBench>,
    /// The gil / eventloop / io claims (absent with `--no-models`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelsReport>,
}

fn ns_per_number(numbers: u64, f: impl Fn(u64, u64, u64) -> u64) -> f64 {
    let t = Instant::now();
    std::hint::black_box(f(std::hint::black_box(42), 0, numbers));
    t.elapsed().as_nanos() as f64 / numbers as f64
}

/// The kernel's and the bare generator loop's ns per number on one core:
/// medians of `repeats` timings of `numbers` each, after a warm-up, taken in
/// turn so that both see the same machine noise.
pub(crate) fn kernel_vs_bare(numbers: u64, repeats: usize) -> (f64, f64) {
    let (mut kernel, mut bare) = (Vec::new(), Vec::new());
    ns_per_number(numbers / 10, task_sum);
    for _ in 0..repeats.max(1) {
        kernel.push(ns_per_number(numbers, task_sum));
        bare.push(ns_per_number(numbers, bare_loop_sum));
    }
    (median(kernel), median(bare))
}

/// Runs the whole benchmark; `progress` hears what is being measured.
pub fn run(cfg: &BenchConfig, mut progress: impl FnMut(&str)) -> Result<BenchReport, String> {
    progress("kernel vs bare loop (one core)");
    let (kernel, bare) = kernel_vs_bare(cfg.kernel_numbers, cfg.repeats);

    let cores = core_count();
    let tasks = 8 * cfg.max_workers.max(1);
    let numbers_per_task = ((cfg.scaling_run_s * 1e9 / kernel) as u64 / tasks as u64).max(1);
    let mut runs = Vec::new();
    let mut speedup: BTreeMap<String, BTreeMap<u32, f64>> = BTreeMap::new();
    for &backend in &cfg.backends {
        let mut base = None;
        for workers in 1..=cfg.max_workers {
            progress(&format!("{backend} with {workers} worker(s)"));
            let spec = RunSpec {
                backend,
                workload: WorkloadKind::Cpu,
                workers,
                tasks,
                numbers_per_task,
                seed: 42,
                ..RunSpec::default()
            };
            let r = run_ok(spec, &cfg.options)?;
            let base_wall = *base.get_or_insert(r.wall_s);
            let s = base_wall / r.wall_s;
            speedup
                .entry(backend.name().to_string())
                .or_default()
                .insert(workers, s);
            runs.push(ScalingRun {
                backend,
                workers,
                tasks,
                numbers_per_task,
                wall_s: r.wall_s,
                cpu_percent: r.cpu_percent,
                speedup: s,
            });
        }
    }
    let bus = if cfg.backends.contains(&BackendKind::Bus) {
        let long_numbers = ((cfg.scaling_run_s * 1e9 / kernel) as u64 / 8).max(1);
        Some(bus::measure(cfg, long_numbers, &mut progress)?)
    } else {
        None
    };
    let models = if cfg.models {
        // The chapter's CPU experiment, scaled so that one worker takes ~scaling_run_s.
        let per_task = numbers_per_task * tasks as u64 / 8;
        Some(models::run(&cfg.options, per_task, kernel, &mut progress)?)
    } else {
        None
    };
    Ok(BenchReport {
        bus,
        models,
        cores,
        kernel_ns_per_number: kernel,
        bare_loop_ns_per_number: bare,
        kernel_over_bare: kernel / bare,
        speedup,
        runs,
    })
}

impl BenchReport {
    /// A human-readable table (Markdown, so it can go straight into BENCHMARKS.md).
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "cores: {}\n\n| measure | value |\n|---|---|\n\
             | kernel, ns per number (1 core) | {:.3} |\n\
             | bare generator loop, ns per number | {:.3} |\n\
             | kernel / bare loop | {:.3} |\n\n\
             | backend | workers | tasks x numbers | wall (s) | %CPU | speed-up |\n|---|---|---|---|---|---|\n",
            self.cores,
            self.kernel_ns_per_number,
            self.bare_loop_ns_per_number,
            self.kernel_over_bare
        );
        for r in &self.runs {
            s += &format!(
                "| {} | {} | {} x {} | {:.3} | {:.0} | {:.2}x |\n",
                r.backend,
                r.workers,
                r.tasks,
                r.numbers_per_task,
                r.wall_s,
                r.cpu_percent,
                r.speedup
            );
        }
        if let Some(b) = &self.bus {
            s += &b.to_markdown();
        }
        if let Some(m) = &self.models {
            s += "\n";
            s += &m.to_markdown();
        }
        s
    }
}
