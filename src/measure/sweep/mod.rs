//! `scalelab sweep`: the worker count swept for several backends, one run at a
//! time, with repetitions. Speed-up is against each backend's own median with
//! one worker, efficiency is speed-up over the workers' share of the cores,
//! and Amdahl's law is fitted to every backend's points (measure/amdahl.rs).

pub mod chart;
pub mod output;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::amdahl::{self, Fit, Point};
use super::median;
use crate::engine::{EngineOptions, RunHandle, StartError, start};
use crate::metrics::cores::core_count;
use crate::metrics::procinfo::host_name;
use crate::report::RunReport;
use crate::report::RunStatus;
use crate::report::event::Event;
use crate::spec::{BackendKind, RunSpec, WorkloadKind};

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub backends: Vec<BackendKind>,
    /// Worker counts; must hold 1 (speed-ups are against it).
    pub workers: Vec<u32>,
    pub tasks: u32,
    pub numbers: u64,
    pub seed: u64,
    pub repeat: usize,
    pub options: EngineOptions,
    /// Set it to stop the sweep: the run in progress is cancelled at once.
    pub cancel: Arc<AtomicBool>,
    /// Where the runs go: `None` is this machine, with `options`.
    pub target: Option<Target>,
}

/// Starts one run on another machine (a `scalelab serve`), as the engine
/// starts one here.
pub type Starter = Arc<dyn Fn(RunSpec) -> Result<RunHandle, StartError> + Send + Sync>;

/// A machine the sweep's runs go to instead of this one: the ideal curve and
/// the fit use its cores.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub cores: usize,
    pub start: Starter,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("cores", &self.cores)
            .finish_non_exhaustive()
    }
}

/// 1, 2, 4, ... up to 2 × cores, and `cores` itself.
pub fn default_workers(cores: u32) -> Vec<u32> {
    let mut w: Vec<u32> = std::iter::successors(Some(1u32), |&x| Some(x * 2))
        .take_while(|&x| x <= 2 * cores)
        .collect();
    w.push(cores.max(1));
    w.sort_unstable();
    w.dedup();
    w
}

/// Numbers per task for `tasks` tasks that one worker draws in about
/// `seconds` at `ns_per_number`.
pub fn numbers_for(seconds: f64, ns_per_number: f64, tasks: u32) -> u64 {
    ((seconds * 1e9 / ns_per_number) as u64 / u64::from(tasks.max(1))).max(1)
}

/// Tasks that split evenly at every point: a multiple of the largest worker count.
pub fn suggested_tasks(workers: &[u32]) -> u32 {
    2 * workers.iter().copied().max().unwrap_or(1)
}

/// One backend at one worker count.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub workers: u32,
    pub wall_s: Vec<f64>,
    pub wall_s_median: f64,
    pub wall_s_min: f64,
    pub wall_s_max: f64,
    /// Against this backend's median wall time with one worker.
    pub speedup_median: f64,
    pub speedup_min: f64,
    pub speedup_max: f64,
    /// Speed-up over min(workers, cores): 1 is perfect use of the cores given.
    pub efficiency: f64,
    pub cpu_percent_median: f64,
}

/// One backend's curve and its fit.
#[derive(Debug, Clone, Serialize)]
pub struct SweepCurve {
    pub backend: BackendKind,
    pub points: Vec<SweepPoint>,
    /// Amdahl's law fitted to every repetition's speed-up; `None` when no
    /// point uses more than one core.
    pub fit: Option<Fit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// The machine the runs ran on, by host name.
    pub host: String,
    pub cores: u32,
    pub tasks: u32,
    pub numbers_per_task: u64,
    pub seed: u64,
    pub repeat: usize,
    pub curves: Vec<SweepCurve>,
}

/// Why a sweep did not give a report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SweepError {
    /// The sweep asked for is not one that can be run.
    #[error("{0}")]
    Invalid(String),
    /// A run of the sweep failed.
    #[error("{0}")]
    Failed(String),
    /// `SweepConfig::cancel` was set.
    #[error("cancelled")]
    Cancelled,
}

/// Progress: point k of n has just started; the estimated seconds left.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub point: usize,
    pub points: usize,
    pub what: String,
    pub eta_s: Option<f64>,
}

impl SweepReport {
    /// The largest worker count swept.
    pub fn max_workers(&self) -> u32 {
        self.curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.workers))
            .max()
            .unwrap_or(1)
    }

    /// The ideal curve, min(workers, cores), at every worker count up to the largest.
    pub fn ideal(&self) -> Vec<[f64; 2]> {
        (1..=self.max_workers())
            .map(|w| [f64::from(w), f64::from(w.min(self.cores))])
            .collect()
    }

    /// The speed-up Amdahl's law gives with serial fraction `s` on this
    /// machine's cores, at `steps + 1` worker counts from 1 to `to`.
    pub fn fitted(&self, s: f64, to: f64, steps: u32) -> Vec<[f64; 2]> {
        (0..=steps)
            .map(|i| 1.0 + (to - 1.0) * f64::from(i) / f64::from(steps))
            .map(|x| [x, amdahl::speedup(s, x.min(f64::from(self.cores)))])
            .collect()
    }
}

impl SweepConfig {
    fn check(&self) -> Result<(), SweepError> {
        let bad = |m: String| Err(SweepError::Invalid(m));
        if self.backends.is_empty() {
            return bad("--backends: none given".into());
        }
        if !self.workers.contains(&1) {
            return bad(
                "--workers must include 1: speed-ups are measured against one worker".into(),
            );
        }
        if self.repeat == 0 {
            return bad("--repeat must be at least 1".into());
        }
        for &w in &self.workers {
            self.spec(self.backends[0], w)
                .validate()
                .map_err(|e| SweepError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    fn spec(&self, backend: BackendKind, workers: u32) -> RunSpec {
        RunSpec {
            backend,
            workload: WorkloadKind::Cpu,
            workers,
            tasks: self.tasks,
            numbers_per_task: self.numbers,
            seed: self.seed,
            ..RunSpec::default()
        }
    }
}

/// Runs the sweep: every backend at every worker count, `repeat` times, one
/// run after another (never two at once, so they do not share the cores).
/// The repetitions of one point are spread over the sweep (round-robin), so
/// that a slow spell of the machine does not land on one point only.
pub fn run(
    cfg: &SweepConfig,
    mut progress: impl FnMut(&Progress),
) -> Result<SweepReport, SweepError> {
    cfg.check()?;
    let mut workers = cfg.workers.clone();
    workers.sort_unstable();
    workers.dedup();
    let cells: Vec<(BackendKind, u32)> = cfg
        .backends
        .iter()
        .flat_map(|&b| workers.iter().map(move |&w| (b, w)))
        .collect();
    let total = cells.len() * cfg.repeat;
    let mut walls = vec![Vec::new(); cells.len()];
    let mut cpus = vec![Vec::new(); cells.len()];
    let started = Instant::now();
    let mut done = 0;
    for _ in 0..cfg.repeat {
        for (i, &(backend, w)) in cells.iter().enumerate() {
            let eta_s = (done > 0)
                .then(|| started.elapsed().as_secs_f64() / done as f64 * (total - done) as f64);
            progress(&Progress {
                point: done + 1,
                points: total,
                what: format!("{backend} x{w}"),
                eta_s,
            });
            let r = run_one(cfg, cfg.spec(backend, w))?;
            if r.status != RunStatus::Ok {
                return Err(SweepError::Failed(format!(
                    "{backend} x{w} {}: {}",
                    r.status.name(),
                    r.reason.unwrap_or_default()
                )));
            }
            walls[i].push(r.wall_s);
            cpus[i].push(r.cpu_percent);
            done += 1;
        }
    }
    let (host, cores) = match &cfg.target {
        Some(t) => (t.host.clone(), t.cores as u32),
        None => (host_name(), core_count() as u32),
    };
    let curves = cfg
        .backends
        .iter()
        .map(|&backend| {
            let of = |w: u32| {
                cells
                    .iter()
                    .position(|&c| c == (backend, w))
                    .expect("swept")
            };
            let base = median(walls[of(1)].clone());
            let points: Vec<SweepPoint> = workers
                .iter()
                .map(|&w| {
                    let v = &walls[of(w)];
                    let (lo, hi) = (
                        v.iter().copied().fold(f64::INFINITY, f64::min),
                        v.iter().copied().fold(0.0, f64::max),
                    );
                    let med = median(v.clone());
                    SweepPoint {
                        workers: w,
                        wall_s: v.clone(),
                        wall_s_median: med,
                        wall_s_min: lo,
                        wall_s_max: hi,
                        speedup_median: base / med,
                        speedup_min: base / hi,
                        speedup_max: base / lo,
                        efficiency: base / med / f64::from(w.min(cores).max(1)),
                        cpu_percent_median: median(cpus[of(w)].clone()),
                    }
                })
                .collect();
            let fit_points: Vec<Point> = points
                .iter()
                .flat_map(|p| {
                    p.wall_s.iter().map(move |wall| Point {
                        workers: p.workers,
                        speedup: base / wall,
                    })
                })
                .collect();
            SweepCurve {
                backend,
                fit: amdahl::fit(&fit_points, cores),
                points,
            }
        })
        .collect();
    Ok(SweepReport {
        host,
        cores,
        tasks: cfg.tasks,
        numbers_per_task: cfg.numbers,
        seed: cfg.seed,
        repeat: cfg.repeat,
        curves,
    })
}

/// One run of the sweep, cancelled as soon as the sweep is.
fn run_one(cfg: &SweepConfig, spec: RunSpec) -> Result<Box<RunReport>, SweepError> {
    if cfg.cancel.load(Ordering::Relaxed) {
        return Err(SweepError::Cancelled);
    }
    let started = match &cfg.target {
        Some(t) => (t.start)(spec),
        None => start(spec, cfg.options.clone()),
    };
    let h = started.map_err(|e| SweepError::Invalid(e.to_string()))?;
    loop {
        match h.events.recv_timeout(Duration::from_millis(20)) {
            Ok(Event::Finished(r) | Event::Failed(r) | Event::Cancelled(r)) => {
                h.join();
                if r.status == RunStatus::Cancelled && cfg.cancel.load(Ordering::Relaxed) {
                    return Err(SweepError::Cancelled);
                }
                return Ok(r);
            }
            Ok(_) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if cfg.cancel.load(Ordering::Relaxed) {
                    h.cancel();
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(SweepError::Failed("a run of the sweep vanished".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_worker_list_doubles_up_to_twice_the_cores_and_holds_the_cores() {
        assert_eq!(default_workers(2), [1, 2, 4]);
        assert_eq!(default_workers(6), [1, 2, 4, 6, 8]);
        assert_eq!(default_workers(1), [1, 2]);
        assert_eq!(suggested_tasks(&[1, 2, 4]), 8);
    }

    #[test]
    fn a_sweep_without_one_worker_or_backends_is_refused() {
        let cfg = SweepConfig {
            backends: vec![BackendKind::Threads],
            workers: vec![2, 4],
            tasks: 8,
            numbers: 1000,
            seed: 1,
            repeat: 1,
            options: EngineOptions::default(),
            cancel: Default::default(),
            target: None,
        };
        let e = run(&cfg, |_| {}).unwrap_err();
        assert!(
            matches!(e, SweepError::Invalid(ref m) if m.contains("must include 1")),
            "{e}"
        );
        let none = SweepConfig {
            backends: vec![],
            workers: vec![1],
            ..cfg.clone()
        };
        assert!(matches!(run(&none, |_| {}), Err(SweepError::Invalid(_))));
        let zero = SweepConfig {
            workers: vec![1, 0],
            ..cfg
        };
        let e = run(&zero, |_| {}).unwrap_err();
        assert!(e.to_string().contains("workers"), "{e}");
    }

    #[test]
    fn a_small_sweep_measures_every_point_in_order_with_progress() {
        let cfg = SweepConfig {
            backends: vec![BackendKind::Threads, BackendKind::Gil],
            workers: vec![2, 1],
            tasks: 4,
            numbers: 200_000,
            seed: 3,
            repeat: 2,
            options: EngineOptions::default(),
            cancel: Default::default(),
            target: None,
        };
        let mut seen = Vec::new();
        let r = run(&cfg, |p| seen.push((p.point, p.points, p.what.clone()))).unwrap();
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[0], (1, 8, "threads x1".to_string()));
        assert_eq!(seen[7], (8, 8, "gil x2".to_string()));
        assert_eq!(r.curves.len(), 2);
        for c in &r.curves {
            assert_eq!(
                c.points.iter().map(|p| p.workers).collect::<Vec<_>>(),
                [1, 2]
            );
            let one = &c.points[0];
            assert_eq!(one.wall_s.len(), 2);
            assert!((one.speedup_median - 1.0).abs() < 1e-9);
            assert!(one.speedup_min <= one.speedup_median && one.speedup_median <= one.speedup_max);
        }
    }

    #[test]
    fn a_cancelled_sweep_stops_its_run_at_once() {
        let cfg = SweepConfig {
            backends: vec![BackendKind::Threads],
            workers: vec![1],
            tasks: 1,
            numbers: 50_000_000_000,
            seed: 3,
            repeat: 1,
            options: EngineOptions::default(),
            cancel: Default::default(),
            target: None,
        };
        let cancel = cfg.cancel.clone();
        let t = Instant::now();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            cancel.store(true, Ordering::Relaxed);
        });
        let e = run(&cfg, |_| {}).unwrap_err();
        stopper.join().unwrap();
        assert!(matches!(e, SweepError::Cancelled), "{e}");
        // The run alone would take a minute.
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }
}
