//! Draws a `LiveRun`: header with overall progress, per-core CPU (lines, heat
//! map or average), run %CPU and throughput, worker progress, timeline.

use egui::{Color32, ColorImage, RichText, TextureHandle, TextureOptions, Ui};
use egui_plot::{Bar, BarChart, Corner, Legend, Line, Plot, PlotPoint, PlotPoints};

use super::{CoreView, LiveOptions, LiveRun, Refresh};
use crate::engine::calibrate::RunSize;
use crate::gui::charts::{
    fmt_rate, fmt_secs, heat_color, lane_step, sparse_value_grid, step_tick, task_color, time_grid,
    value_grid,
};
use crate::gui::command::Command;
use crate::report::RunStatus;
use crate::report::export::group_thousands;
use crate::spec::{BackendKind, WorkloadKind};

/// The run's own colour in the CPU charts.
const RUN_COLOR: Color32 = Color32::from_rgb(230, 120, 40);

/// Columns at most in the heat-map texture: older samples are averaged together.
const HEAT_MAX_COLUMNS: usize = 600;
/// Above this many cores, "auto" draws a heat-map strip instead of one line per core.
const LINES_MAX_CORES: usize = 16;

/// The x range of every live time chart: the run so far, so the charts line up.
fn time_span(live: &LiveRun) -> std::ops::RangeInclusive<f64> {
    0.0..=live.elapsed_s().max(0.1)
}

/// A run shorter than this is over before the charts have anything to show
/// (samples come every 100 ms).
const TOO_SHORT_S: f64 = 0.1;

/// Draws the whole live section in the space given; `busy` is a run size that
/// keeps this machine busy for a few seconds, offered when a run was too short.
pub fn show(
    ui: &mut Ui,
    live: Option<&mut LiveRun>,
    options: &mut LiveOptions,
    busy: Option<RunSize>,
) -> Option<Command> {
    let Some(live) = live else {
        ui.vertical_centered(|ui| {
            ui.add_space(ui.available_height() / 3.0);
            ui.heading("No run yet");
            ui.label("Pick a backend and a worker count on the left, then Run (Ctrl+Enter).");
        });
        return None;
    };
    header(ui, live, options);
    ui.add_space(4.0);
    if let Some((_, wall)) = live.ended
        && wall < TOO_SHORT_S
        && !live.timelines_missing
    {
        return too_short(ui, wall, busy);
    }
    let row_h = ((ui.available_height() - 12.0) / 2.0).max(120.0);
    ui.columns(2, |c| {
        core_chart(&mut c[0], live, options, row_h);
        run_charts(&mut c[1], live, row_h);
    });
    ui.separator();
    ui.columns(2, |c| {
        worker_progress(&mut c[0], live, row_h);
        if live.spec.backend == BackendKind::Gil {
            // Who held the GIL when, under the task timeline.
            timeline(&mut c[1], live, row_h * 0.5);
            gil_lanes(&mut c[1], live, row_h * 0.5 - 4.0);
        } else {
            timeline(&mut c[1], live, row_h);
        }
    });
    None
}

/// Where the charts would be: the run was over before a sample was taken.
fn too_short(ui: &mut Ui, wall_s: f64, busy: Option<RunSize>) -> Option<Command> {
    let mut command = None;
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() / 4.0);
        ui.heading(format!(
            "This run took {}: too short to chart",
            fmt_secs(wall_s)
        ));
        ui.label(
            "The charts sample the machine every 100 ms, so a run this short shows a dot \
             at most, and its %CPU is mostly start-up and shut-down.",
        );
        if let Some(size) = busy {
            ui.add_space(8.0);
            let text = format!(
                "Use {} tasks × {} numbers, {} workers (about {:.0} s here)",
                size.tasks,
                group_thousands(size.numbers_per_task),
                size.workers,
                crate::gui::controls::BUSY_SECONDS
            );
            if ui.button(text).clicked() {
                command = Some(Command::UseRunSize(size));
            }
        }
    });
    command
}

/// One lane per worker, a bar for each stretch it held the emulated GIL.
/// Holds closer together than a pixel are merged into one bar.
fn gil_lanes(ui: &mut Ui, live: &LiveRun, height: f32) {
    ui.label(RichText::new("GIL: who held it when").strong())
        .on_hover_text(
            "The emulated GIL's hand-offs: a bar per stretch a thread held it. \
         Only one lane is ever busy at a time.",
        );
    let now = live.elapsed_s();
    let px = (now / ui.available_width().max(100.0) as f64).max(1e-6);
    let lanes = live.spec.workers as usize;
    let mut open: Vec<Option<(f64, f64)>> = vec![None; lanes];
    let mut bars = Vec::new();
    let bar = |w: usize, (s, e): (f64, f64)| {
        Bar::new(w as f64, (e - s).max(px))
            .base_offset(s)
            .width(0.7)
            .name(format!(
                "worker {w} held the GIL {} → {}",
                fmt_secs(s),
                fmt_secs(e)
            ))
            .fill(task_color(w as u32))
    };
    for h in &live.gil_holds {
        let w = h.worker as usize;
        if w >= lanes {
            continue;
        }
        match &mut open[w] {
            Some(p) if h.start_s - p.1 < px => p.1 = h.end_s,
            slot => {
                if let Some(p) = slot.take() {
                    bars.push(bar(w, p));
                }
                *slot = Some((h.start_s, h.end_s));
            }
        }
    }
    for (w, p) in open.into_iter().enumerate() {
        if let Some(p) = p {
            bars.push(bar(w, p));
        }
    }
    lanes_plot("gil_lanes", lanes, height.max(40.0), "holder").show(ui, |p| {
        p.set_plot_bounds_x(time_span(live));
        p.bar_chart(BarChart::new("GIL holds", bars).horizontal());
    });
}

/// The refresh rate menu of the live view.
fn refresh_choice(ui: &mut Ui, options: &mut LiveOptions) {
    egui::ComboBox::from_id_salt("refresh")
        .selected_text(options.refresh.label())
        .show_ui(ui, |ui| {
            for r in Refresh::ALL {
                ui.selectable_value(&mut options.refresh, r, r.label());
            }
        })
        .response
        .labelled_by(ui.label("refresh").id)
        .on_hover_text(
            "How often the window redraws while a run goes. Each frame costs CPU \
             the workers would otherwise get (\"this window\" in the status bar).",
        );
}

/// What runs and how it stands: spec, state, bus notes, lost workers.
fn run_line(ui: &mut Ui, live: &LiveRun, state: RichText) {
    let s = &live.spec;
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
    if let Some((joined, expected, join)) = &live.bus_waiting {
        ui.label(
            RichText::new(format!(
                "waiting for workers: {joined} of {expected} joined"
            ))
            .color(ui.visuals().warn_fg_color),
        )
        .on_hover_text(format!("join with: {join}"));
        if ui
            .small_button("Copy join command")
            .on_hover_text(join.as_str())
            .clicked()
        {
            ui.ctx().copy_text(join.clone());
        }
    }
    if let Some(note) = live.bus_notes.first() {
        if live.bus_notes.len() > 1 {
            ui.label(RichText::new(format!("{} bus event(s)", live.bus_notes.len() - 1)).small())
                .on_hover_text(live.bus_notes[1..].join("\n"));
        }
        ui.add(egui::Label::new(RichText::new(format!("bus: {note}")).small()).truncate())
            .on_hover_text(live.bus_notes.join("\n"));
    }
}

fn header(ui: &mut Ui, live: &LiveRun, options: &mut LiveOptions) {
    let elapsed = live.elapsed_s();
    let f = live.fraction_done();
    let state = match live.ended {
        None => RichText::new("running").color(ui.visuals().warn_fg_color),
        Some((RunStatus::Ok, _)) => RichText::new("finished").color(Color32::from_rgb(80, 180, 90)),
        Some((st, _)) => RichText::new(st.name()).color(ui.visuals().error_fg_color),
    };
    ui.horizontal(|ui| {
        // The refresh choice first, at the right edge: the run's line takes what is
        // left, and a long bus note is cut (its hover shows it whole).
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            refresh_choice(ui, options);
            ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                run_line(ui, live, state);
            });
        });
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
        .show_background(false)
        .x_grid_spacer(time_grid)
        .x_axis_formatter(step_tick)
        .height(height.max(40.0))
        .include_y(0.0)
        .include_y(100.0)
        .x_axis_label("time [s]")
        .y_axis_label("CPU [%]")
        .y_grid_spacer(value_grid)
        .y_axis_formatter(step_tick)
        .legend(Legend::default().position(Corner::LeftBottom))
        .show(ui, |p| {
            p.set_plot_bounds_x(time_span(live));
            if per_core {
                for (i, series) in live.per_core.iter().enumerate() {
                    p.line(Line::new(format!("core {i}"), PlotPoints::Borrowed(series)).width(1.0));
                }
            }
            p.line(
                Line::new("this run", PlotPoints::Borrowed(&live.run_share))
                    .color(RUN_COLOR.gamma_multiply(0.8))
                    .fill(0.0),
            );
            p.line(
                Line::new(
                    "everything else, this app included",
                    PlotPoints::Borrowed(&live.others_share),
                )
                .width(1.5)
                .color(Color32::from_rgb(200, 60, 160)),
            );
            p.line(
                Line::new("all cores (average)", PlotPoints::Borrowed(&live.average))
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
        .show_background(false)
        .x_grid_spacer(time_grid)
        .x_axis_formatter(step_tick)
        .height(height.max(40.0))
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
        .show(ui, |p| {
            p.set_plot_bounds_x(time_span(live));
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
    // Both plots share the time axis: only the lower one draws it.
    let plots_h = height - 24.0;
    let machine = 100.0 * live.cores as f64;
    ui.label(RichText::new("Run CPU and throughput").strong())
        .on_hover_text(
            "%CPU as `time` computes it: the workers' CPU time over wall time, per 100 ms. \
             \"this window\" is what the app itself used meanwhile, outside the run.",
        );
    Plot::new("run_cpu")
        .show_background(false)
        .x_grid_spacer(time_grid)
        .show_axes([false, true])
        .height((plots_h * 0.44).max(40.0))
        .include_y(0.0)
        .include_y(machine)
        .y_axis_label("CPU [%]")
        .y_grid_spacer(sparse_value_grid)
        .y_axis_formatter(step_tick)
        .legend(Legend::default().position(Corner::LeftBottom))
        .show(ui, |p| {
            p.set_plot_bounds_x(time_span(live));
            p.line(
                Line::new("run %CPU", PlotPoints::Borrowed(&live.run_cpu))
                    .color(RUN_COLOR)
                    .fill(0.0),
            );
            p.line(
                Line::new("this window", PlotPoints::Borrowed(&live.observer))
                    .width(1.5)
                    .color(Color32::from_rgb(200, 60, 160)),
            );
            p.hline(
                egui_plot::HLine::new(format!("all {} cores", live.cores), machine)
                    .style(egui_plot::LineStyle::dashed_loose()),
            );
        });
    // The io workload draws no numbers: its throughput is requests answered.
    let (series, unit) = if live.spec.workload == WorkloadKind::Io {
        (&live.requests, "requests/s")
    } else {
        (&live.throughput, "numbers/s")
    };
    Plot::new("throughput")
        .show_background(false)
        .x_grid_spacer(time_grid)
        .x_axis_formatter(step_tick)
        .height((plots_h * 0.56 - 6.0).max(40.0))
        .y_grid_spacer(sparse_value_grid)
        .include_y(0.0)
        .x_axis_label("time [s]")
        .y_axis_label(unit)
        .y_axis_formatter(|m, _| fmt_rate(m.value))
        .legend(Legend::default().position(Corner::LeftBottom))
        .show(ui, |p| {
            p.set_plot_bounds_x(time_span(live));
            p.line(
                Line::new("throughput", PlotPoints::Borrowed(series))
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
    lanes_plot("timeline", lanes, (height - 24.0).max(40.0), "worker").show(ui, |p| {
        p.set_plot_bounds_x(time_span(live));
        p.bar_chart(BarChart::new("tasks", bars).horizontal());
    });
}

/// A time chart with one horizontal lane per worker, numbered from the top.
fn lanes_plot(id: &str, lanes: usize, height: f32, y_label: &str) -> Plot<'static> {
    Plot::new(id)
        .show_background(false)
        .x_grid_spacer(time_grid)
        .x_axis_formatter(step_tick)
        .height(height)
        .include_y(-0.5)
        .include_y(lanes as f64 - 0.5)
        .x_axis_label("time [s]")
        .y_axis_label(y_label.to_string())
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
