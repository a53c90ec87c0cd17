//! The live run: its state, folded from engine events (cheap bookkeeping only),
//! and the charts that draw it: per-core CPU, the run's %CPU and throughput,
//! per-worker progress and the task timeline.

use std::time::Instant;

use egui::{Color32, ColorImage, RichText, TextureHandle, TextureOptions, Ui};
use egui_plot::{Bar, BarChart, Corner, Legend, Line, Plot, PlotPoint, PlotPoints};
use serde::{Deserialize, Serialize};

use crate::engine::event::{Event, Sample, TaskRecord};
use crate::engine::spec::RunSpec;
use crate::report::export::group_thousands;
use crate::report::{RunReport, RunStatus};

/// Columns at most in the heat-map texture: older samples are averaged together.
const HEAT_MAX_COLUMNS: usize = 600;
/// Above this many cores, "auto" draws a heat-map strip instead of one line per core.
const LINES_MAX_CORES: usize = 16;

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

/// The live charts' own settings (persisted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveOptions {
    pub core_view: CoreView,
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
    sampled_numbers: u64,
    finished_numbers: u64,
    lanes: Vec<WorkerLane>,
    workers_lost: u32,
    heat: Option<TextureHandle>,
    heat_stale: bool,
}

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
            sampled_numbers: 0,
            finished_numbers: 0,
            lanes,
            workers_lost: 0,
            heat: None,
            heat_stale: true,
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
            Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => {
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
        self.finished_numbers += self.spec.numbers_per_task;
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
        self.sampled_numbers = s.numbers_done;
        self.heat_stale = true;
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
        self.numbers_done() as f64 / self.spec.total_numbers().max(1) as f64
    }
}

/// Colour of a task bar: hues spread by the golden ratio so neighbours differ.
fn task_color(task: u32) -> Color32 {
    let hue = (task as f32 * 0.618_034).fract();
    egui::ecolor::Hsva::new(hue, 0.55, 0.85, 1.0).into()
}

/// Colour of a utilisation (0..=100) in the heat map: dark blue, cyan, yellow.
fn heat_color(u: f32) -> Color32 {
    let t = (u / 100.0).clamp(0.0, 1.0);
    let lerp = |a: [f32; 3], b: [f32; 3], t: f32| {
        Color32::from_rgb(
            (a[0] + (b[0] - a[0]) * t) as u8,
            (a[1] + (b[1] - a[1]) * t) as u8,
            (a[2] + (b[2] - a[2]) * t) as u8,
        )
    };
    let (low, mid, high) = (
        [20.0, 28.0, 60.0],
        [20.0, 150.0, 190.0],
        [255.0, 215.0, 60.0],
    );
    if t < 0.5 {
        lerp(low, mid, t * 2.0)
    } else {
        lerp(mid, high, (t - 0.5) * 2.0)
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 600.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    }
}

/// Numbers per second with an SI prefix.
pub fn fmt_rate(x: f64) -> String {
    let (v, unit) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    format!("{v:.1} {unit}")
}

/// Draws the whole live section in the space given.
pub fn show(ui: &mut Ui, live: Option<&mut LiveRun>, options: &mut LiveOptions) {
    let Some(live) = live else {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() / 3.0);
            ui.heading("No run yet");
            ui.label("Pick a backend and a worker count on the left, then Run (Ctrl+Enter).");
        });
        return;
    };
    header(ui, live);
    ui.add_space(4.0);
    let row_h = ((ui.available_height() - 12.0) / 2.0).max(120.0);
    ui.columns(2, |c| {
        core_chart(&mut c[0], live, options, row_h);
        run_charts(&mut c[1], live, row_h);
    });
    ui.separator();
    ui.columns(2, |c| {
        worker_progress(&mut c[0], live, row_h);
        timeline(&mut c[1], live, row_h);
    });
}

fn header(ui: &mut Ui, live: &LiveRun) {
    let s = &live.spec;
    let elapsed = live.elapsed_s();
    let f = live.fraction_done();
    let state = match live.ended {
        None => RichText::new("running").color(ui.visuals().warn_fg_color),
        Some((RunStatus::Ok, _)) => RichText::new("finished").color(Color32::from_rgb(80, 180, 90)),
        Some((st, _)) => RichText::new(st.name()).color(ui.visuals().error_fg_color),
    };
    ui.horizontal(|ui| {
        let which = live
            .history_id
            .map_or(String::new(), |id| format!("Run #{id}: "));
        ui.label(
            RichText::new(format!(
                "{which}{} × {} workers · {} tasks × {} numbers · seed {}",
                s.backend,
                s.workers,
                s.tasks,
                group_thousands(s.numbers_per_task),
                s.seed
            ))
            .strong(),
        );
        ui.label(state);
        if live.timelines_missing {
            ui.label(RichText::new("(charts are kept for the session the run was made in)").weak());
        }
        if live.workers_lost > 0 {
            ui.label(
                RichText::new(format!("{} worker(s) lost", live.workers_lost))
                    .color(ui.visuals().warn_fg_color),
            );
        }
    });
    let eta = if live.is_live() && f > 0.0 {
        format!(" · ETA {}", fmt_secs(elapsed * (1.0 - f) / f))
    } else {
        String::new()
    };
    ui.add(
        egui::ProgressBar::new(f as f32)
            .desired_height(16.0)
            .text(format!(
                "overall {:.0} % · elapsed {}{eta}",
                100.0 * f,
                fmt_secs(elapsed)
            )),
    );
}

fn core_chart(ui: &mut Ui, live: &mut LiveRun, options: &mut LiveOptions, height: f32) {
    ui.horizontal(|ui| {
        ui.label(RichText::new("Per-core CPU").strong());
        ui.label(format!("({} cores)", live.cores));
        ui.add_space(12.0);
        let l = ui.label("view");
        egui::ComboBox::from_id_salt("core_view")
            .selected_text(options.core_view.label())
            .show_ui(ui, |ui| {
                for v in CoreView::ALL {
                    ui.selectable_value(&mut options.core_view, v, v.label());
                }
            })
            .response
            .labelled_by(l.id);
    });
    let view = match options.core_view {
        CoreView::Auto if live.cores > LINES_MAX_CORES => CoreView::HeatMap,
        CoreView::Auto => CoreView::Lines,
        v => v,
    };
    let plot_h = (height - 30.0).max(60.0);
    if view == CoreView::HeatMap {
        ui.label(
            RichText::new(
                "one row per core, one column per 100 ms: dark = idle, yellow = 100 % busy",
            )
            .small()
            .weak(),
        );
        let strip_h = (plot_h * 0.55).max(40.0);
        heat_strip(ui, live, strip_h);
        average_plot(ui, live, plot_h - strip_h - 6.0, false);
    } else {
        average_plot(ui, live, plot_h, view == CoreView::Lines);
    }
}

fn average_plot(ui: &mut Ui, live: &LiveRun, height: f32, per_core: bool) {
    let average_color = if ui.visuals().dark_mode {
        Color32::WHITE
    } else {
        Color32::BLACK
    };
    Plot::new("per_core_cpu")
        .x_grid_spacer(time_grid)
        .height(height.max(40.0))
        .link_axis(egui::Id::unique("live_time"), [true, false])
        .include_y(0.0)
        .include_y(100.0)
        .include_x(0.0)
        .x_axis_label("time [s]")
        .y_axis_label("CPU [%]")
        .legend(Legend::default().position(Corner::LeftBottom))
        .show(ui, |p| {
            if per_core {
                for (i, series) in live.per_core.iter().enumerate() {
                    p.line(Line::new(format!("core {i}"), PlotPoints::Borrowed(series)).width(1.0));
                }
            }
            p.line(
                Line::new("average", PlotPoints::Borrowed(&live.average))
                    .width(2.5)
                    .color(average_color),
            );
        });
}

/// One row per core, one column per sample, colour = utilisation: readable at 64+ cores.
fn heat_strip(ui: &mut Ui, live: &mut LiveRun, height: f32) {
    let n = live.average.len();
    if live.heat_stale || live.heat.is_none() {
        live.heat_stale = false;
        let rows = live.per_core.len().max(1);
        let cols = n.clamp(1, HEAT_MAX_COLUMNS);
        let mut img = ColorImage::filled([cols, rows], heat_color(0.0));
        for (row, series) in live.per_core.iter().enumerate() {
            for col in 0..cols.min(series.len()) {
                let (a, b) = (
                    col * n / cols,
                    ((col + 1) * n / cols).max(col * n / cols + 1),
                );
                let slice = &series[a..b.min(series.len())];
                let u = slice.iter().map(|p| p.y).sum::<f64>() / slice.len().max(1) as f64;
                img.pixels[row * cols + col] = heat_color(u as f32);
            }
        }
        match &mut live.heat {
            Some(t) => t.set(img, TextureOptions::NEAREST),
            None => live.heat = Some(ui.ctx().load_texture("heat", img, TextureOptions::NEAREST)),
        }
    }
    let Some(texture) = live.heat.as_ref().map(TextureHandle::id) else {
        return;
    };
    let cores = live.per_core.len().max(1);
    let t_end = live.average.last().map_or(0.1, |p| p.x).max(0.1);
    Plot::new("per_core_heat")
        .x_grid_spacer(time_grid)
        .height(height.max(40.0))
        .include_x(0.0)
        .include_x(t_end)
        .include_y(-0.5)
        .include_y(cores as f64 - 0.5)
        .invert_y(true)
        .y_axis_label("core")
        .y_axis_formatter(|m, _| {
            if m.value.fract() == 0.0 && m.value >= 0.0 {
                format!("{}", m.value as i64)
            } else {
                String::new()
            }
        })
        .y_grid_spacer(egui_plot::uniform_grid_spacer(move |_| {
            let step = lane_step(cores);
            [step, step * 5.0, step * 10.0]
        }))
        .show_grid(false)
        .link_axis(egui::Id::unique("live_time"), [true, false])
        .show(ui, |p| {
            p.image(
                egui_plot::PlotImage::new(
                    "utilisation (dark = idle, yellow = 100 %)",
                    texture,
                    PlotPoint::new(t_end / 2.0, (cores as f64 - 1.0) / 2.0),
                    egui::vec2(t_end as f32, cores as f32),
                )
                .allow_hover(false),
            );
        });
}

fn run_charts(ui: &mut Ui, live: &LiveRun, height: f32) {
    let h = (height - 60.0) / 2.0;
    let machine = 100.0 * live.cores as f64;
    ui.label(RichText::new("Run CPU and throughput").strong())
        .on_hover_text(
            "%CPU as `time` computes it: the workers' CPU time over wall time, per 100 ms.",
        );
    Plot::new("run_cpu")
        .x_grid_spacer(time_grid)
        .height(h.max(40.0))
        .include_y(0.0)
        .include_y(machine)
        .include_x(0.0)
        .y_axis_label("CPU [%]")
        .legend(Legend::default().position(Corner::LeftBottom))
        .link_axis(egui::Id::unique("live_time"), [true, false])
        .show(ui, |p| {
            p.line(
                Line::new("run %CPU", PlotPoints::Borrowed(&live.run_cpu))
                    .color(Color32::from_rgb(230, 120, 40))
                    .fill(0.0),
            );
            p.hline(
                egui_plot::HLine::new(format!("all {} cores", live.cores), machine)
                    .style(egui_plot::LineStyle::dashed_loose()),
            );
        });
    Plot::new("throughput")
        .x_grid_spacer(time_grid)
        .height(h.max(40.0))
        .include_y(0.0)
        .include_x(0.0)
        .x_axis_label("time [s]")
        .y_axis_label("numbers/s")
        .y_axis_formatter(|m, _| fmt_rate(m.value))
        .legend(Legend::default().position(Corner::LeftBottom))
        .link_axis(egui::Id::unique("live_time"), [true, false])
        .show(ui, |p| {
            p.line(
                Line::new("throughput", PlotPoints::Borrowed(&live.throughput))
                    .color(Color32::from_rgb(70, 140, 230))
                    .fill(0.0),
            );
        });
}

fn worker_progress(ui: &mut Ui, live: &LiveRun, height: f32) {
    let per_task = live.spec.numbers_per_task.max(1) as f32;
    ui.label(RichText::new("Workers").strong()).on_hover_text(
        "Each bar is the worker's current task; the count is tasks it has finished.",
    );
    let row_h = 18.0;
    egui::ScrollArea::vertical()
        .id_salt("workers")
        .max_height(height - 24.0)
        .auto_shrink([false, false])
        .show_rows(ui, row_h, live.lanes.len(), |ui, range| {
            for w in range {
                let lane = &live.lanes[w];
                ui.horizontal(|ui| {
                    ui.add_sized([56.0, row_h - 2.0], egui::Label::new(format!("worker {w}")));
                    let done = lane.finished.len();
                    let (f, text) = match lane.running {
                        Some(r) => (
                            r.done as f32 / per_task,
                            format!(
                                "task {} · {:.0} % · {done} done",
                                r.task,
                                100.0 * r.done as f32 / per_task
                            ),
                        ),
                        None if live.is_live() => (0.0, format!("idle · {done} done")),
                        None => (1.0, format!("{done} task(s) done")),
                    };
                    ui.add(
                        egui::ProgressBar::new(f)
                            .desired_height(row_h - 4.0)
                            .text(text),
                    );
                });
            }
        });
}

/// One lane per worker, a bar per task from start to end. Bars narrower than a pixel
/// are merged, so a run of 100,000 tasks stays a few hundred shapes.
fn timeline(ui: &mut Ui, live: &LiveRun, height: f32) {
    ui.label(RichText::new("Timeline").strong())
        .on_hover_text("One lane per worker, one bar per task from its start to its end.");
    let now = live.elapsed_s();
    let px = (now / ui.available_width().max(100.0) as f64).max(1e-6);
    let lanes = live.lanes.len();
    let bar_w = if lanes > 64 { 1.0 } else { 0.7 };
    // Thin lanes or thousands of tasks: tasks cannot be told apart, so draw each
    // lane's busy stretches (a few hundred shapes instead of tens of thousands).
    let finished: usize = live.lanes.iter().map(|l| l.finished.len()).sum();
    let dense = lanes > 64 || finished > 4000;
    let mut bars = Vec::new();
    for (w, lane) in live.lanes.iter().enumerate() {
        let y = w as f64;
        let mut pending: Option<(f64, f64, u32, u32)> = None; // start, end, first task, count
        for &(s, e, task) in &lane.finished {
            match &mut pending {
                Some(p) if s - p.1 < px && (dense || (e - p.0) < 3.0 * px) => {
                    p.1 = e;
                    p.3 += 1;
                }
                _ => {
                    if let Some(p) = pending.take() {
                        bars.push(task_bar(y, p, bar_w));
                    }
                    pending = Some((s, e, task, 1));
                }
            }
        }
        if let Some(p) = pending {
            bars.push(task_bar(y, p, bar_w));
        }
        if let Some(r) = lane.running {
            bars.push(
                Bar::new(y, (now - r.start_s).max(0.0))
                    .base_offset(r.start_s)
                    .width(bar_w)
                    .name(format!("worker {w}: task {} (running)", r.task))
                    .fill(task_color(r.task).gamma_multiply(0.5)),
            );
        }
    }
    Plot::new("timeline")
        .x_grid_spacer(time_grid)
        .height((height - 24.0).max(40.0))
        .include_x(0.0)
        .include_x(now.max(1e-3))
        .include_y(-0.5)
        .include_y(lanes as f64 - 0.5)
        .x_axis_label("time [s]")
        .y_axis_label("worker")
        .invert_y(true)
        .y_grid_spacer(egui_plot::uniform_grid_spacer(move |_| {
            let step = lane_step(lanes);
            [step, step * 5.0, step * 10.0]
        }))
        .y_axis_formatter(|m, _| {
            if m.value.fract() == 0.0 && m.value >= 0.0 {
                format!("{}", m.value as i64)
            } else {
                String::new()
            }
        })
        .show_grid([true, false])
        .show(ui, |p| {
            p.bar_chart(BarChart::new("tasks", bars).horizontal());
        });
}

/// Time axis marks in 1-2-5 steps, about five labelled ones across the plot
/// (egui_plot's default base-10 steps leave a 0..9 s axis with the 0 label only).
fn time_grid(input: egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    let (lo, hi) = input.bounds;
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        return Vec::new();
    }
    let raw = range / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let major = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let minor = major / 5.0;
    let first = (lo / minor).ceil() as i64;
    let last = (hi / minor).floor() as i64;
    (first..=last.min(first + 1000))
        .map(|k| egui_plot::GridMark {
            value: k as f64 * minor,
            step_size: if k % 5 == 0 { major } else { minor },
        })
        .collect()
}

/// Spacing of worker ticks: 1 up to 12 lanes, then 1-2-5 steps keeping about 8 ticks.
fn lane_step(lanes: usize) -> f64 {
    let raw = (lanes as f64 / 8.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if lanes <= 12 { 1.0 } else { step }
}

fn task_bar(lane: f64, (start, end, task, count): (f64, f64, u32, u32), width: f64) -> Bar {
    let name = if count == 1 {
        format!("task {task}: {} → {}", fmt_secs(start), fmt_secs(end))
    } else {
        format!("{count} tasks from task {task}")
    };
    Bar::new(lane, end - start)
        .base_offset(start)
        .width(width)
        .name(name)
        .fill(task_color(task))
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
        }));
        assert_eq!(live.average[0].y, 75.0);
        assert_eq!(live.lanes[1].finished.len(), 1);
        // A worker index beyond the spec (a replacement) gets a lane of its own.
        live.apply(&Event::WorkerStarted {
            worker: 5,
            kind: crate::engine::event::WorkerKind::Process,
            os_id: 1,
        });
        assert_eq!(live.lanes.len(), 6);
    }

    #[test]
    fn heat_colours_run_from_dark_to_yellow() {
        assert_eq!(heat_color(0.0), Color32::from_rgb(20, 28, 60));
        assert_eq!(heat_color(100.0), Color32::from_rgb(255, 215, 60));
        assert_eq!(heat_color(250.0), heat_color(100.0));
    }

    #[test]
    fn time_marks_step_by_one_two_five() {
        let marks = time_grid(egui_plot::GridInput {
            bounds: (0.0, 8.3),
            base_step_size: 0.01,
        });
        let major: Vec<f64> = marks
            .iter()
            .filter(|m| m.step_size == 2.0)
            .map(|m| m.value)
            .collect();
        assert_eq!(major, [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(marks.len(), 21);
    }

    #[test]
    fn rates_get_si_prefixes() {
        assert_eq!(fmt_rate(1.5e9), "1.5 G");
        assert_eq!(fmt_rate(2.0e6), "2.0 M");
        assert_eq!(fmt_rate(12.0), "12.0 ");
    }
}
