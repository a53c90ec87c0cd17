//! What the `bus` costs: dispatching a task, starting and connecting a worker,
//! and how far long tasks scale over it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::BenchConfig;
use crate::engine::start;
use crate::measure::{median, run_ok};
use crate::metrics::cores::core_count;
use crate::report::event::Event;
use crate::spec::{BackendKind, RunSpec, WorkloadKind};

/// Tiny tasks per dispatch measurement.
const TINY_TASKS: u32 = 5000;
/// Repeats of each measurement; the median is reported.
const REPEATS: usize = 5;

/// The bus's own figures.
#[derive(Debug, Clone, Serialize)]
pub struct BusBench {
    /// One worker, one-number tasks: wall time per task from the first dispatch
    /// to the last result (a full master-worker round trip), in microseconds.
    pub dispatch_us_per_task: f64,
    /// The same with one worker per core: the master's throughput, per task.
    pub dispatch_us_per_task_all_cores: f64,
    pub tiny_tasks: u32,
    /// From asking for a run to every local worker having joined, in milliseconds.
    pub spawn_connect_ms: f64,
    pub spawn_connect_workers: u32,
    /// Wall time with one worker over wall time with one worker per core.
    pub long_task_speedup: f64,
    pub long_task_workers: u32,
    pub long_tasks: u32,
    pub long_task_numbers: u64,
    pub long_task_wall_1_s: f64,
    pub long_task_wall_n_s: f64,
    /// Remote workers' results spot-checked at the default percentage: the
    /// same run with `cores` remote workers (checked) over `cores` local
    /// children (never checked), wall time, median of 3 each.
    pub spot_check_wall_ratio: f64,
    pub spot_check_tasks: u32,
    /// Results the master recomputed in the remote run (median run).
    pub spot_checked: u32,
    pub spot_check_percent: u32,
    /// The same one-worker dispatch over an encrypted bus (CurveZMQ), per task.
    pub curve_dispatch_us_per_task: f64,
    /// Long tasks on one worker per core, encrypted bus over plain, wall time.
    pub curve_long_task_wall_ratio: f64,
}

fn bus_spec(workers: u32, tasks: u32, numbers: u64) -> RunSpec {
    plain_or_curve(workers, tasks, numbers, false)
}

fn plain_or_curve(workers: u32, tasks: u32, numbers: u64, encrypt: bool) -> RunSpec {
    let mut bus = crate::spec::BusParams::default();
    bus.encrypt = Some(encrypt);
    RunSpec {
        bus,
        backend: BackendKind::Bus,
        workload: WorkloadKind::Cpu,
        workers,
        tasks,
        numbers_per_task: numbers,
        seed: 42,
        ..RunSpec::default()
    }
}

/// Microseconds per task between the first dispatch and the last result.
fn dispatch_us(cfg: &BenchConfig, workers: u32, encrypt: bool) -> Result<f64, String> {
    let mut v = Vec::new();
    for _ in 0..REPEATS {
        let spec = plain_or_curve(workers, TINY_TASKS, 1, encrypt);
        let r = run_ok(spec, &cfg.options)?;
        let first = r
            .task_timeline
            .iter()
            .map(|t| t.start_s)
            .fold(f64::MAX, f64::min);
        let last = r.task_timeline.iter().map(|t| t.end_s).fold(0.0, f64::max);
        v.push((last - first) * 1e6 / TINY_TASKS as f64);
    }
    Ok(median(v))
}

/// Milliseconds from `start` to the last of `workers` local workers joining.
fn spawn_connect_ms(cfg: &BenchConfig, workers: u32) -> Result<f64, String> {
    let mut v = Vec::new();
    for _ in 0..REPEATS {
        let t = Instant::now();
        // Tasks long enough that the run cannot end before everyone has joined.
        let h = start(
            bus_spec(workers, workers, 10_000_000_000),
            cfg.options.clone(),
        )
        .map_err(|e| e.to_string())?;
        let mut joined = 0;
        while joined < workers {
            match h.events.recv_timeout(Duration::from_secs(10)) {
                Ok(Event::WorkerStarted { .. }) => joined += 1,
                Ok(e) if e.is_terminal() => return Err("a bus run ended early".into()),
                Ok(_) => {}
                Err(_) => return Err("bus workers did not join within 10 s".into()),
            }
        }
        v.push(t.elapsed().as_secs_f64() * 1e3);
        h.cancel();
        h.join();
    }
    Ok(median(v))
}

/// Wall time of one bus run of `tasks` x `numbers` whose `workers` workers all
/// join from outside the run, as `scalelab worker --connect` processes; and
/// how many of their results the master recomputed.
fn remote_run(
    cfg: &BenchConfig,
    workers: u32,
    tasks: u32,
    numbers: u64,
) -> Result<(f64, u32), String> {
    let mut spec = bus_spec(workers, tasks, numbers);
    spec.bus.remote_workers = workers;
    let exe = cfg.options.worker_exe().map_err(|e| e.to_string())?;
    let h = start(spec, cfg.options.clone()).map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    let report = loop {
        match h.events.recv_timeout(Duration::from_secs(120)) {
            Ok(Event::Bus(crate::report::event::BusEvent::Listening {
                endpoint, token, ..
            })) => {
                for _ in 0..workers {
                    let child = std::process::Command::new(&exe)
                        .args(["worker", "--connect", &endpoint])
                        .env(crate::backends::bus::TOKEN_ENV, &token)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .map_err(|e| format!("cannot start a remote worker: {e}"))?;
                    children.push(child);
                }
            }
            Ok(Event::Finished(r)) => break r,
            Ok(e) if e.is_terminal() => {
                h.cancel();
                return Err(format!("a remote bus run did not finish: {e:?}"));
            }
            Ok(_) => {}
            Err(_) => {
                h.cancel();
                return Err("a remote bus run took over 2 minutes".into());
            }
        }
    };
    h.join();
    for mut c in children {
        // They leave on the run's `stop`; a straggler is ended by its pid.
        if c.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(300));
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
            }
        }
        let _ = c.wait();
    }
    let checked = report.verification.map_or(0, |v| v.verified);
    Ok((report.wall_s, checked))
}

/// The spot-checks' cost: remote workers (checked) against local children
/// (not checked), the same tasks, interleaved.
fn spot_check_cost(cfg: &BenchConfig, tasks: u32, numbers: u64) -> Result<(f64, u32), String> {
    let workers = core_count() as u32;
    let (mut local, mut remote, mut checked) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        local.push(run_ok(bus_spec(workers, tasks, numbers), &cfg.options)?.wall_s);
        let (wall, n) = remote_run(cfg, workers, tasks, numbers)?;
        remote.push(wall);
        checked.push(n as f64);
    }
    Ok((median(remote) / median(local), median(checked) as u32))
}

/// Measures the bus; `long_numbers` makes a task of about an eighth of the scaling run.
pub fn measure(
    cfg: &BenchConfig,
    long_numbers: u64,
    progress: &mut impl FnMut(&str),
) -> Result<BusBench, String> {
    let cores = core_count() as u32;
    progress("bus: dispatch overhead, tiny tasks");
    let one = dispatch_us(cfg, 1, false)?;
    let all = dispatch_us(cfg, cores, false)?;
    progress("bus: dispatch overhead, encrypted (CurveZMQ)");
    let curve_one = dispatch_us(cfg, 1, true)?;
    progress("bus: worker spawn and connect");
    let spawn = spawn_connect_ms(cfg, cores)?;
    progress("bus: speed-up on long tasks");
    let long_tasks = 4 * cores;
    let wall = |workers, encrypt| -> Result<f64, String> {
        let mut v = Vec::new();
        for _ in 0..3 {
            let spec = plain_or_curve(workers, long_tasks, long_numbers, encrypt);
            v.push(run_ok(spec, &cfg.options)?.wall_s);
        }
        Ok(median(v))
    };
    let (w1, wn) = (wall(1, false)?, wall(cores, false)?);
    let curve_wn = wall(cores, true)?;
    progress("bus: the cost of spot-checking remote workers");
    // Many short tasks, so that each worker's always-checked first result
    // weighs what it would in a real run, not a quarter of it.
    let check_tasks = 50 * cores;
    let (check_ratio, checked) = spot_check_cost(cfg, check_tasks, (long_numbers / 8).max(1))?;
    Ok(BusBench {
        dispatch_us_per_task: one,
        dispatch_us_per_task_all_cores: all,
        tiny_tasks: TINY_TASKS,
        spawn_connect_ms: spawn,
        spawn_connect_workers: cores,
        long_task_speedup: w1 / wn,
        long_task_workers: cores,
        long_tasks,
        long_task_numbers: long_numbers,
        long_task_wall_1_s: w1,
        long_task_wall_n_s: wn,
        spot_check_wall_ratio: check_ratio,
        spot_check_tasks: check_tasks,
        spot_checked: checked,
        spot_check_percent: crate::spec::BusParams::default().verify_percent,
        curve_dispatch_us_per_task: curve_one,
        curve_long_task_wall_ratio: curve_wn / wn,
    })
}

impl BusBench {
    /// The bus's rows, in Markdown.
    pub fn to_markdown(&self) -> String {
        format!(
            "\n| bus measure | value |\n|---|---|\n\
             | dispatch overhead, 1 worker, {} one-number tasks (µs per task) | {:.1} |\n\
             | dispatch overhead, {} workers (µs per task) | {:.1} |\n\
             | spawn and connect {} local workers (ms) | {:.1} |\n\
             | long tasks, {} x {} numbers: wall 1 worker / {} workers (s) | {:.3} / {:.3} |\n\
             | bus speed-up on long tasks, {} workers | {:.2}x |\n\
             | spot-checks at {} %: {} tasks on {} remote workers, {} recomputed; wall / the same on local children (target < 1.10) | {:.3} {} |\n\
             | encrypted (CurveZMQ): dispatch overhead, 1 worker (µs per task; plain / encrypted) | {:.1} / {:.1} ({:.2}x) |\n\
             | encrypted (CurveZMQ): long tasks on {} workers, wall encrypted / plain | {:.3} |\n",
            self.tiny_tasks,
            self.dispatch_us_per_task,
            self.long_task_workers,
            self.dispatch_us_per_task_all_cores,
            self.spawn_connect_workers,
            self.spawn_connect_ms,
            self.long_tasks,
            self.long_task_numbers,
            self.long_task_workers,
            self.long_task_wall_1_s,
            self.long_task_wall_n_s,
            self.long_task_workers,
            self.long_task_speedup,
            self.spot_check_percent,
            self.spot_check_tasks,
            self.long_task_workers,
            self.spot_checked,
            self.spot_check_wall_ratio,
            if self.spot_check_wall_ratio < 1.10 {
                "ok"
            } else {
                "MISSED"
            },
            self.dispatch_us_per_task,
            self.curve_dispatch_us_per_task,
            self.curve_dispatch_us_per_task / self.dispatch_us_per_task,
            self.long_task_workers,
            self.curve_long_task_wall_ratio,
        )
    }
}
