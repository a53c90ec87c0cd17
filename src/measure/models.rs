//! The models part of `scalelab bench`: the chapter's claims about the GIL,
//! the event loop and I/O, measured on this machine.

use serde::Serialize;

use crate::engine::EngineOptions;
use crate::measure::run_ok;
use crate::spec::{BackendKind, IoParams, RunSpec, WorkloadKind};

/// One run of the models comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRun {
    pub label: String,
    pub backend: BackendKind,
    pub workload: WorkloadKind,
    pub workers: u32,
    pub wall_s: f64,
    pub cpu_percent: f64,
    /// Wall time of the same run with one worker over this run's (1.0 where not compared).
    pub speedup: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gil_switches: Option<u64>,
}

/// What the models comparison found.
#[derive(Debug, Clone, Serialize)]
pub struct ModelsReport {
    pub cpu_tasks: u32,
    pub cpu_numbers_per_task: u64,
    pub io_tasks: u32,
    pub io_requests: u32,
    pub io_latency_ms: u32,
    pub runs: Vec<ModelRun>,
    /// Median request latency of I/O tasks under the GIL, alone and with CPU work beside them.
    pub gil_io_latency_ms_p50: f64,
    pub gil_mixed_latency_ms_p50: f64,
}

/// CPU-bound 8 tasks on threads, gil and eventloop (8 workers vs 1); I/O-bound
/// 8 x 10 x 20 ms on every backend (8 vs 1); and the convoy effect: request
/// latency under the GIL with and without CPU work beside it.
pub fn run(
    options: &EngineOptions,
    cpu_numbers: u64,
    kernel_ns_per_number: f64,
    progress: &mut impl FnMut(&str),
) -> Result<ModelsReport, String> {
    let cpu = RunSpec {
        tasks: 8,
        numbers_per_task: cpu_numbers,
        ..RunSpec::default()
    };
    let io = RunSpec {
        workload: WorkloadKind::Io,
        ..RunSpec::default()
    };
    let mut runs = Vec::new();
    let mut measure = |label: String, spec: RunSpec, one: Option<f64>| -> Result<f64, String> {
        progress(&label);
        let r = run_ok(spec.clone(), options)?;
        runs.push(ModelRun {
            label,
            backend: spec.backend,
            workload: spec.workload,
            workers: spec.workers,
            wall_s: r.wall_s,
            cpu_percent: r.cpu_percent,
            speedup: one.map_or(1.0, |w| w / r.wall_s),
            latency_ms_p50: r.io.as_ref().map(|io| io.latency_ms_p50),
            gil_switches: r.gil.as_ref().map(|g| g.switches),
        });
        Ok(r.wall_s)
    };
    let cpu_backends = [
        BackendKind::Threads,
        BackendKind::Gil,
        BackendKind::EventLoop,
    ];
    for (base, backends) in [(&cpu, &cpu_backends[..]), (&io, &BackendKind::ALL[..])] {
        for &backend in backends {
            let one = RunSpec {
                backend,
                workers: 1,
                ..base.clone()
            };
            let w = base.workload;
            let t1 = measure(format!("{w} {backend} x1"), one.clone(), None)?;
            measure(
                format!("{w} {backend} x8"),
                RunSpec { workers: 8, ..one },
                Some(t1),
            )?;
        }
    }
    // The convoy effect: 2 threads under the GIL, 20 requests of 5 ms each.
    // With 20 ms of CPU work before each request, a thread back from I/O
    // usually finds the other computing, and must wait a switch interval for
    // its drop request to be honoured before it can go on.
    let gil_io = RunSpec {
        backend: BackendKind::Gil,
        workers: 2,
        tasks: 2,
        io: IoParams {
            requests: 20,
            latency_ms: 5,
        },
        ..io.clone()
    };
    let slice_numbers = (0.020 / (kernel_ns_per_number.max(0.05) * 1e-9)) as u64;
    let gil_mixed = RunSpec {
        workload: WorkloadKind::Mixed,
        numbers_per_task: slice_numbers * 20,
        ..gil_io.clone()
    };
    let latency = |label: &str, runs: &[ModelRun]| {
        runs.iter()
            .find(|r| r.label == label)
            .and_then(|r| r.latency_ms_p50)
            .unwrap_or(0.0)
    };
    measure("gil io x2 (I/O only)".into(), gil_io, None)?;
    measure(
        "gil mixed x2 (CPU between requests)".into(),
        gil_mixed,
        None,
    )?;
    Ok(ModelsReport {
        cpu_tasks: cpu.tasks,
        cpu_numbers_per_task: cpu.numbers_per_task,
        io_tasks: io.tasks,
        io_requests: io.io.requests,
        io_latency_ms: io.io.latency_ms,
        gil_io_latency_ms_p50: latency("gil io x2 (I/O only)", &runs),
        gil_mixed_latency_ms_p50: latency("gil mixed x2 (CPU between requests)", &runs),
        runs,
    })
}

impl ModelsReport {
    /// A Markdown table of the runs and the convoy-effect line.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "Models: cpu = {} tasks x {} numbers; io = {} tasks x {} requests x {} ms\n\n\
             | run | wall (s) | %CPU | speed-up over 1 worker | latency p50 (ms) | GIL switches |\n\
             |---|---|---|---|---|---|\n",
            self.cpu_tasks,
            self.cpu_numbers_per_task,
            self.io_tasks,
            self.io_requests,
            self.io_latency_ms
        );
        for r in &self.runs {
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            s += &format!(
                "| {} | {:.3} | {:.0} | {:.2}x | {} | {} |\n",
                r.label,
                r.wall_s,
                r.cpu_percent,
                r.speedup,
                opt(r.latency_ms_p50.map(|v| format!("{v:.1}"))),
                opt(r.gil_switches.map(|v| v.to_string())),
            );
        }
        s += &format!(
            "\nConvoy effect under the GIL: request latency p50 {:.1} ms with I/O only, \
             {:.1} ms with CPU work beside it.\n",
            self.gil_io_latency_ms_p50, self.gil_mixed_latency_ms_p50
        );
        s
    }
}
