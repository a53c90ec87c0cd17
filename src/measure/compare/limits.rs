//! How close scalelab gets to the machine: the kernel next to the bare
//! generator loop and an estimate of the hardware's ceiling; what starting a
//! worker costs on each backend; how long a cancel takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::{EngineOptions, start};
use crate::measure::bench::kernel_vs_bare;
use crate::measure::median;
use crate::report::event::Event;
use crate::spec::{BackendKind, IoParams, RunSpec, WorkloadKind};

use super::CompareError;

/// Numbers per kernel timing, and how many timings.
const KERNEL_NUMBERS: u64 = 100_000_000;
const KERNEL_REPEATS: usize = 5;
/// Start costs and cancel latencies measured per backend.
const RUNS_PER_BACKEND: usize = 5;

/// Cycles per number the kernel could reach at best, by this reasoning:
/// one xoshiro256++ step is ~11 simple integer operations on a dependency
/// chain of ~4 cycles and yields two numbers; each number then costs a
/// multiply, a compare and an add, which overlap with the next step. So about
/// 2 cycles per step, 1 cycle per number, on a core that retires 3-4 simple
/// operations per cycle.
pub const CEILING_CYCLES_PER_NUMBER: f64 = 1.0;

/// Start cost and cancel latency of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendLimits {
    pub backend: BackendKind,
    /// Time from starting a run until its last worker reported ready, per worker (8 workers).
    pub start_ms_per_worker: f64,
    /// From `cancel()` to the run's last event, median and worst of 5.
    pub cancel_ms_median: f64,
    pub cancel_ms_max: f64,
}

/// What `scalelab compare` reports about the limits.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub kernel_ns_per_number: f64,
    pub bare_loop_ns_per_number: f64,
    /// The core's clock as /proc/cpuinfo reports it (0 when unknown).
    pub cpu_mhz: f64,
    /// `CEILING_CYCLES_PER_NUMBER` at that clock.
    pub ceiling_ns_per_number: f64,
    pub backends: Vec<BackendLimits>,
}

/// The highest `cpu MHz` in /proc/cpuinfo.
fn cpu_mhz() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .fold(0.0, f64::max)
}

fn start_cost(backend: BackendKind, options: &EngineOptions) -> Result<f64, String> {
    // Tasks that wait (one slow request each), so that every worker must start
    // and none competes for the cores with the others' start; cancelled once started.
    let spec = RunSpec {
        backend,
        workload: WorkloadKind::Io,
        workers: 8,
        tasks: 8,
        io: IoParams {
            requests: 1,
            latency_ms: 10_000,
        },
        ..RunSpec::default()
    };
    let t = Instant::now();
    let h = start(spec, options.clone()).map_err(|e| e.to_string())?;
    let mut started = 0;
    while started < 8 {
        match h.events.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::WorkerStarted { .. }) => started += 1,
            Ok(e) if e.is_terminal() => return Err(format!("{backend}: the run ended early")),
            Ok(_) => {}
            Err(_) => return Err(format!("{backend}: not every worker started")),
        }
    }
    let at = t.elapsed();
    h.cancel();
    h.join();
    Ok(at.as_secs_f64() * 1e3 / 8.0)
}

fn cancel_latency(backend: BackendKind, options: &EngineOptions) -> Result<f64, String> {
    let spec = RunSpec {
        backend,
        workers: 4,
        tasks: 8,
        numbers_per_task: 100_000_000_000,
        ..RunSpec::default()
    };
    let h = start(spec, options.clone()).map_err(|e| e.to_string())?;
    let mut busy = 0;
    while busy < 4 {
        match h.events.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::TaskStarted { .. }) => busy += 1,
            Ok(_) => {}
            Err(_) => return Err(format!("{backend}: the run did not start")),
        }
    }
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    h.cancel();
    for e in h.events.iter() {
        if e.is_terminal() {
            break;
        }
    }
    let took = t.elapsed();
    h.join();
    Ok(took.as_secs_f64() * 1e3)
}

/// Roughly how long `measure` takes, in seconds: the kernel timings (two
/// loops of `KERNEL_NUMBERS` and a tenth of one to warm up, at about 1.5 ns
/// a number, each time) and a few short runs per backend.
pub fn expected_s(backends: usize) -> f64 {
    KERNEL_REPEATS as f64 * 2.1 * KERNEL_NUMBERS as f64 * 1.5e-9 + 0.3 * backends as f64
}

/// Measures the limits for `backends`; stops between two measurements (the
/// longest, one kernel timing, takes about 0.3 s) once `cancel` is set.
pub fn measure(
    options: &EngineOptions,
    backends: &[BackendKind],
    cancel: &AtomicBool,
) -> Result<Limits, CompareError> {
    let go_on = || {
        if cancel.load(Ordering::Relaxed) {
            Err(CompareError::Cancelled)
        } else {
            Ok(())
        }
    };
    // One kernel/bare pair at a time, so that a cancel need not wait for all of them.
    let (mut kernels, mut bares) = (Vec::new(), Vec::new());
    for _ in 0..KERNEL_REPEATS {
        go_on()?;
        let (k, b) = kernel_vs_bare(KERNEL_NUMBERS, 1);
        kernels.push(k);
        bares.push(b);
    }
    let (kernel, bare) = (median(kernels), median(bares));
    let mhz = cpu_mhz();
    let mut out = Vec::new();
    for &backend in backends {
        let mut starts = Vec::new();
        for _ in 0..RUNS_PER_BACKEND {
            go_on()?;
            starts.push(start_cost(backend, options)?);
        }
        let mut cancels = Vec::new();
        for _ in 0..RUNS_PER_BACKEND {
            go_on()?;
            cancels.push(cancel_latency(backend, options)?);
        }
        out.push(BackendLimits {
            backend,
            start_ms_per_worker: median(starts),
            cancel_ms_max: cancels.iter().cloned().fold(0.0, f64::max),
            cancel_ms_median: median(cancels),
        });
    }
    Ok(Limits {
        kernel_ns_per_number: kernel,
        bare_loop_ns_per_number: bare,
        cpu_mhz: mhz,
        ceiling_ns_per_number: if mhz > 0.0 {
            CEILING_CYCLES_PER_NUMBER * 1e3 / mhz
        } else {
            0.0
        },
        backends: out,
    })
}
