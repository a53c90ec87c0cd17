//! The live run: its state, folded from engine events (cheap bookkeeping only).
//! `panel` draws it: per-core CPU, the run's %CPU and throughput, per-worker
//! progress and the task timeline.

mod panel;

use std::time::Instant;

use egui::TextureHandle;
use egui_plot::PlotPoint;
use serde::{Deserialize, Serialize};

use crate::report::event::{BusEvent, Event, Sample, TaskRecord, join_command};
use crate::report::gil::GilHold;
use crate::report::{RunReport, RunStatus};
use crate::spec::RunSpec;

pub use panel::show;

/// How the per-core chart shows the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CoreView {
    /// One line per core up to 16 cores, a heat-map strip beyond.
    #[default]
    Auto,
    Lines,
    HeatMap,
    AverageOnly,
}

impl CoreView {
    const ALL: [CoreView; 4] = [
        CoreView::Auto,
        CoreView::Lines,
        CoreView::HeatMap,
        CoreView::AverageOnly,
    ];

    fn label(self) -> &'static str {
        match self {
            CoreView::Auto => "auto",
            CoreView::Lines => "lines",
            CoreView::HeatMap => "heat map",
            CoreView::AverageOnly => "average only",
        }
    }
}

/// How often the window redraws while a run goes. Samples come at 10 Hz, so
/// faster only spends the machine's CPU on frames that show nothing new; like
/// top or btop, a slower refresh costs less still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Refresh {
    /// Once a second.
    Hz1,
    Hz2,
    Hz5,
    /// About 7 frames a second (the default): the charts move several times a
    /// second while a software-rendered window takes some 6 % of a 2-core machine.
    #[default]
    Hz7,
    /// Every sample.
    Hz10,
    /// Smooth progress bars, at several times the cost.
    Hz30,
}

impl Refresh {
    pub const ALL: [Refresh; 6] = [
        Refresh::Hz1,
        Refresh::Hz2,
        Refresh::Hz5,
        Refresh::Hz7,
        Refresh::Hz10,
        Refresh::Hz30,
    ];

    /// Time between two frames while a run is live.
    pub fn period(self) -> std::time::Duration {
        std::time::Duration::from_millis(match self {
            Refresh::Hz1 => 1000,
            Refresh::Hz2 => 500,
            Refresh::Hz5 => 200,
            Refresh::Hz7 => 150,
            Refresh::Hz10 => 100,
            Refresh::Hz30 => 33,
        })
    }

    /// The refresh of `hz` frames a second (`"7"`), if offered.
    pub fn from_hz(hz: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.label().split(' ').next() == Some(hz))
    }

    pub fn label(self) -> &'static str {
        match self {
            Refresh::Hz1 => "1 Hz",
            Refresh::Hz2 => "2 Hz",
            Refresh::Hz5 => "5 Hz",
            Refresh::Hz7 => "7 Hz",
            Refresh::Hz10 => "10 Hz (every sample)",
            Refresh::Hz30 => "30 Hz",
        }
    }
}

/// The live charts' own settings (persisted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveOptions {
    pub core_view: CoreView,
    pub refresh: Refresh,
}

/// A task a worker is running now.
#[derive(Debug, Clone, Copy)]
struct RunningTask {
    task: u32,
    start_s: f64,
    done: u64,
}

/// One worker's lane: what it runs now and the tasks it finished.
#[derive(Debug, Clone, Default)]
struct WorkerLane {
    running: Option<RunningTask>,
    /// (start, end, task), in the order the worker ran them.
    finished: Vec<(f64, f64, u32)>,
}

/// What the live panel shows for one run: built from events, or from a stored report.
pub struct LiveRun {
    pub spec: RunSpec,
    pub cores: usize,
    started: Instant,
    /// How the run ended and its wall time, once it has.
    pub ended: Option<(RunStatus, f64)>,
    /// History id of the run once it is in the history.
    pub history_id: Option<u64>,
    /// Shown from a report whose timelines were not kept (a run from an earlier session).
    timelines_missing: bool,
    per_core: Vec<Vec<PlotPoint>>,
    average: Vec<PlotPoint>,
    run_cpu: Vec<PlotPoint>,
    throughput: Vec<PlotPoint>,
    /// The run's share of the whole machine (0..=100, like a core's utilisation).
    run_share: Vec<PlotPoint>,
    /// Everything else on the machine, this app included (0..=100 of the machine).
    others_share: Vec<PlotPoint>,
    /// This app's own CPU outside the run, % of one core.
    observer: Vec<PlotPoint>,
    sampled_numbers: u64,
    finished_numbers: u64,
    lanes: Vec<WorkerLane>,
    workers_lost: u32,
    heat: Option<TextureHandle>,
    heat_stale: bool,
    /// Requests answered per second (io and mixed workloads).
    requests: Vec<PlotPoint>,
    tasks_finished: u32,
    /// Who held the emulated GIL when (the `gil` backend), in the order released.
    gil_holds: Vec<GilHold>,
    /// What the bus said: where it listens, who joined or was refused.
    bus_notes: Vec<String>,
    /// While the bus waits for workers: joined, expected, and the join command.
    pub bus_waiting: Option<(u32, u32, String)>,
}

/// Most GIL holds kept for the chart (a long run hands over every few ms).
const MAX_GIL_HOLDS: usize = 200_000;
/// Most bus notes kept.
const MAX_BUS_NOTES: usize = 64;

impl LiveRun {
    /// A run that is starting now.
    pub fn new(spec: RunSpec, cores: usize) -> Self {
        let lanes = vec![WorkerLane::default(); spec.workers as usize];
        Self {
            spec,
            cores,
            started: Instant::now(),
            ended: None,
            history_id: None,
            timelines_missing: false,
            per_core: vec![Vec::new(); cores],
            average: Vec::new(),
            run_cpu: Vec::new(),
            throughput: Vec::new(),
            run_share: Vec::new(),
            others_share: Vec::new(),
            observer: Vec::new(),
            sampled_numbers: 0,
            finished_numbers: 0,
            lanes,
            workers_lost: 0,
            heat: None,
            heat_stale: true,
            requests: Vec::new(),
            tasks_finished: 0,
            gil_holds: Vec::new(),
            bus_notes: Vec::new(),
            bus_waiting: None,
        }
    }

    /// The charts of a finished run, rebuilt from its report.
    pub fn from_report(report: &RunReport, history_id: u64) -> Self {
        let mut live = Self::new(report.spec.clone(), report.cores);
        for s in &report.cpu_timeline {
            live.add_sample(s);
        }
        for r in &report.task_timeline {
            live.finish_task(r);
        }
        live.workers_lost = report.workers_lost;
        if let Some(g) = &report.gil {
            live.gil_holds = g.holds.clone();
        }
        live.ended = Some((report.status, report.wall_s));
        live.history_id = Some(history_id);
        live.timelines_missing = report.cpu_timeline.is_empty() && report.task_timeline.is_empty();
        live
    }

    /// Folds one engine event into the state.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Started { cores, .. } => {
                if *cores != self.cores {
                    self.cores = *cores;
                    self.per_core = vec![Vec::new(); *cores];
                }
            }
            Event::WorkerStarted { worker, .. } => {
                self.lane(*worker);
            }
            Event::TaskStarted { task, worker, at_s } => {
                self.lane(*worker).running = Some(RunningTask {
                    task: *task,
                    start_s: *at_s,
                    done: 0,
                });
            }
            Event::Progress { task, worker, done } => {
                if let Some(r) = &mut self.lane(*worker).running
                    && r.task == *task
                {
                    r.done = *done;
                }
            }
            Event::TaskFinished(rec) => self.finish_task(rec),
            Event::Sample(s) => self.add_sample(s),
            Event::WorkerLost { worker, .. } => {
                self.workers_lost += 1;
                self.lane(*worker).running = None;
            }
            Event::GilHold(h) => {
                if self.gil_holds.len() < MAX_GIL_HOLDS {
                    self.gil_holds.push(*h);
                }
            }
            Event::Bus(e) => {
                match e {
                    BusEvent::Waiting {
                        joined,
                        expected,
                        join,
                    } => self.bus_waiting = Some((*joined, *expected, join.clone())),
                    BusEvent::WorkerJoined { .. } => self.bus_waiting = None,
                    _ => {}
                }
                if let Some(note) = bus_note(e)
                    && self.bus_notes.len() < MAX_BUS_NOTES
                {
                    self.bus_notes.push(note);
                }
            }
            Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => {
                self.bus_waiting = None;
                for lane in &mut self.lanes {
                    lane.running = None;
                }
                self.ended = Some((r.status, r.wall_s));
            }
        }
    }

    fn lane(&mut self, worker: u32) -> &mut WorkerLane {
        let i = worker as usize;
        if i >= self.lanes.len() {
            self.lanes.resize(i + 1, WorkerLane::default());
        }
        &mut self.lanes[i]
    }

    fn finish_task(&mut self, rec: &TaskRecord) {
        let lane = self.lane(rec.worker);
        lane.running = None;
        lane.finished.push((rec.start_s, rec.end_s, rec.task));
        self.finished_numbers += self.spec.total_numbers() / self.spec.tasks.max(1) as u64;
        self.tasks_finished += 1;
    }

    fn add_sample(&mut self, s: &Sample) {
        if s.per_core.len() != self.per_core.len() {
            self.per_core = vec![Vec::new(); s.per_core.len()];
        }
        for (series, &u) in self.per_core.iter_mut().zip(&s.per_core) {
            series.push(PlotPoint::new(s.t_s, u));
        }
        let avg = s.per_core.iter().sum::<f32>() / s.per_core.len().max(1) as f32;
        self.average.push(PlotPoint::new(s.t_s, avg));
        self.run_cpu.push(PlotPoint::new(s.t_s, s.run_cpu_percent));
        self.throughput.push(PlotPoint::new(s.t_s, s.numbers_per_s));
        self.requests.push(PlotPoint::new(s.t_s, s.requests_per_s));
        let n = s.per_core.len().max(1) as f64;
        let run_share = (f64::from(s.run_cpu_percent) / n).min(100.0);
        self.run_share.push(PlotPoint::new(s.t_s, run_share));
        self.others_share
            .push(PlotPoint::new(s.t_s, (f64::from(avg) - run_share).max(0.0)));
        self.observer
            .push(PlotPoint::new(s.t_s, f64::from(s.observer_cpu_percent)));
        self.sampled_numbers = s.numbers_done;
        self.heat_stale = true;
    }

    /// This app's own CPU over the last `window_s` seconds of samples, % of one core.
    pub fn recent_observer_percent(&self, window_s: f64) -> Option<f64> {
        let last = self.observer.last()?.x;
        let (sum, n) = self
            .observer
            .iter()
            .rev()
            .take_while(|p| p.x > last - window_s)
            .fold((0.0, 0), |(sum, n), p| (sum + p.y, n + 1));
        Some(sum / f64::from(n.max(1)))
    }

    /// True while the run has not ended.
    pub fn is_live(&self) -> bool {
        self.ended.is_none()
    }

    /// Seconds since the run started (its wall time once ended).
    pub fn elapsed_s(&self) -> f64 {
        match self.ended {
            Some((_, wall)) => wall,
            None => self.started.elapsed().as_secs_f64(),
        }
    }

    /// Numbers drawn so far, from the freshest source (progress reports or samples).
    fn numbers_done(&self) -> u64 {
        let running: u64 = self
            .lanes
            .iter()
            .filter_map(|l| l.running.map(|r| r.done))
            .sum();
        (self.finished_numbers + running)
            .max(self.sampled_numbers)
            .min(self.spec.total_numbers())
    }

    /// Share of the run's numbers drawn, 0..=1.
    pub fn fraction_done(&self) -> f64 {
        if self.ended.is_some_and(|(s, _)| s == RunStatus::Ok) {
            return 1.0;
        }
        if self.spec.total_numbers() == 0 {
            // The io workload draws no numbers: count finished tasks.
            return self.tasks_finished as f64 / self.spec.tasks.max(1) as f64;
        }
        self.numbers_done() as f64 / self.spec.total_numbers().max(1) as f64
    }
}

/// A line for the bus panel, for the bus events a person needs to see.
fn bus_note(e: &BusEvent) -> Option<String> {
    Some(match e {
        BusEvent::Listening {
            endpoint,
            token,
            server_key,
        } => format!(
            "listening on {endpoint}; join with: {}",
            join_command(endpoint, token, server_key.as_deref())
        ),
        BusEvent::Evicted { reason, .. } => format!("evicted {reason}"),
        BusEvent::Declined {
            worker,
            host,
            pid,
            reason,
        } => format!("worker {worker} ({host} pid {pid}) declined the workload: {reason}"),
        BusEvent::WorkerJoined {
            worker,
            host,
            pid,
            local,
        } => format!(
            "worker {worker} joined from {host} (pid {pid}){}",
            if *local { ", started here" } else { ", remote" }
        ),
        BusEvent::Refused { peer, reason } => format!("refused {peer}: {reason}"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fold_into_progress_and_lanes() {
        let spec = RunSpec {
            workers: 2,
            tasks: 2,
            numbers_per_task: 100,
            ..RunSpec::default()
        };
        let mut live = LiveRun::new(spec, 2);
        live.apply(&Event::TaskStarted {
            task: 0,
            worker: 1,
            at_s: 0.0,
        });
        live.apply(&Event::Progress {
            task: 0,
            worker: 1,
            done: 50,
        });
        assert!((live.fraction_done() - 0.25).abs() < 1e-9);
        live.apply(&Event::TaskFinished(TaskRecord {
            task: 0,
            worker: 1,
            sum: 5000,
            start_s: 0.0,
            end_s: 0.5,
            cpu_s: 0.5,
        }));
        assert!((live.fraction_done() - 0.5).abs() < 1e-9);
        live.apply(&Event::Sample(Sample {
            t_s: 0.1,
            per_core: vec![50.0, 100.0],
            run_cpu_percent: 150.0,
            numbers_per_s: 1000.0,
            numbers_done: 100,
            requests_per_s: 0.0,
            observer_cpu_percent: 3.0,
        }));
        assert_eq!(live.average[0].y, 75.0);
        // The run's 150 % of one core is 75 % of two; nothing else was busy.
        assert_eq!(live.run_share[0].y, 75.0);
        assert_eq!(live.others_share[0].y, 0.0);
        assert_eq!(live.recent_observer_percent(2.0), Some(3.0));
        assert_eq!(live.lanes[1].finished.len(), 1);
        // A worker index beyond the spec (a replacement) gets a lane of its own.
        live.apply(&Event::WorkerStarted {
            worker: 5,
            kind: crate::report::event::WorkerKind::Process,
            os_id: 1,
        });
        assert_eq!(live.lanes.len(), 6);
    }
}
