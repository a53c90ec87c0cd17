//! The run history: what is kept (persisted, minus the bulky timelines), the
//! comparison table against a baseline, charts grouped by backend, and exports.

use egui::{Color32, RichText, Ui};
use egui_plot::{Bar, BarChart, Plot};
use serde::{Deserialize, Serialize};

use crate::report::export::{ExportRow, group_thousands, speedup};
use crate::report::{RunReport, RunStatus};
use crate::spec::BackendKind;

use super::backend_color;
use super::charts::{step_tick, value_grid};
use super::command::Command;
use super::state::ExportFormat;

/// Most runs kept; the oldest go first.
pub const MAX_RUNS: usize = 200;

/// One finished run in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub report: RunReport,
}

/// Every finished run, with the baseline the user picked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunHistory {
    pub entries: Vec<HistoryEntry>,
    /// The run speed-ups are measured against; the first completed run if unset.
    pub baseline: Option<u64>,
    next_id: u64,
}

impl RunHistory {
    /// Adds a finished run; returns its id.
    pub fn push(&mut self, report: RunReport) -> u64 {
        self.next_id = self
            .next_id
            .max(self.entries.iter().map(|e| e.id).max().unwrap_or(0))
            + 1;
        let id = self.next_id;
        self.entries.push(HistoryEntry { id, report });
        if self.entries.len() > MAX_RUNS {
            let gone = self.entries.remove(0);
            if self.baseline == Some(gone.id) {
                self.baseline = None;
            }
        }
        id
    }

    pub fn get(&self, id: u64) -> Option<&RunReport> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.report)
    }

    pub fn remove(&mut self, id: u64) {
        self.entries.retain(|e| e.id != id);
        if self.baseline == Some(id) {
            self.baseline = None;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.baseline = None;
    }

    /// The baseline's id: the one picked, else the first completed run.
    pub fn baseline_id(&self) -> Option<u64> {
        self.baseline
            .filter(|id| self.get(*id).is_some())
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| e.report.status == RunStatus::Ok)
                    .map(|e| e.id)
            })
    }

    /// Every run with its speed-up against the baseline, for tables and exports.
    pub fn rows(&self) -> Vec<ExportRow<'_>> {
        let base = self.baseline_id().and_then(|id| self.get(id));
        self.entries
            .iter()
            .map(|e| ExportRow {
                id: e.id,
                report: &e.report,
                speedup: base.and_then(|b| speedup(b, &e.report)),
            })
            .collect()
    }

    /// A copy without per-sample and per-task timelines: what is worth persisting.
    pub fn without_timelines(&self) -> RunHistory {
        RunHistory {
            entries: self
                .entries
                .iter()
                .map(|e| HistoryEntry {
                    id: e.id,
                    report: summary_of(&e.report),
                })
                .collect(),
            baseline: self.baseline,
            next_id: self.next_id,
        }
    }
}

/// A report's numbers without its timelines (cloned field by field: the timelines can be large).
fn summary_of(r: &RunReport) -> RunReport {
    RunReport {
        spec: r.spec.clone(),
        status: r.status,
        reason: r.reason.clone(),
        // Sums of huge runs are dropped: nothing shows them, and they would bloat the file.
        sums: if r.sums.len() <= 1024 {
            r.sums.clone()
        } else {
            Vec::new()
        },
        total: r.total,
        wall_s: r.wall_s,
        user_s: r.user_s,
        sys_s: r.sys_s,
        cpu_percent: r.cpu_percent,
        observer_cpu_percent: r.observer_cpu_percent,
        cores: r.cores,
        workers_lost: r.workers_lost,
        task_timeline: Vec::new(),
        cpu_timeline: Vec::new(),
        io: r.io.clone(),
        // The GIL's totals stay; its hand-off timeline goes with the other timelines.
        gil: r.gil.as_ref().map(|g| crate::report::gil::GilReport {
            holds: Vec::new(),
            holds_dropped: g.holds_dropped + g.holds.len() as u64,
            ..g.clone()
        }),
    }
}

/// The history section: export bar, table, and charts beside it.
pub fn show(
    ui: &mut Ui,
    history: &RunHistory,
    export_dir: &mut String,
    shown: Option<u64>,
) -> Option<Command> {
    let mut command = None;
    ui.horizontal(|ui| {
        ui.label(RichText::new("History").strong());
        ui.label(format!("{} run(s)", history.entries.len()));
        ui.separator();
        for f in ExportFormat::ALL {
            if ui
                .button(format!("Save {}", f.label()))
                .on_hover_text(format!(
                    "Write the history as {} into the export folder",
                    f.label()
                ))
                .clicked()
            {
                command = Some(Command::Export(f));
            }
        }
        ui.separator();
        for f in [ExportFormat::Markdown, ExportFormat::Csv] {
            if ui.button(format!("Copy {}", f.label())).clicked() {
                command = Some(Command::Copy(f));
            }
        }
        ui.separator();
        let l = ui.label("Export folder");
        ui.add(egui::TextEdit::singleline(export_dir).desired_width(180.0))
            .labelled_by(l.id);
        if ui
            .button("Choose…")
            .on_hover_text("Pick the export folder in the desktop's file dialog")
            .clicked()
        {
            command = Some(Command::ChooseExportFolder);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui
                .add_enabled(
                    !history.entries.is_empty(),
                    egui::Button::new("Clear history"),
                )
                .clicked()
            {
                command = Some(Command::ClearHistory);
            }
        });
    });
    let full = ui.available_size();
    let table_w = (full.x * 0.74).max(420.0).min(full.x);
    ui.horizontal_top(|ui| {
        ui.allocate_ui(egui::vec2(table_w, full.y), |ui| {
            if let Some(c) = table(ui, history, shown) {
                command = Some(c);
            }
        });
        ui.separator();
        ui.vertical(|ui| charts(ui, history, full.y));
    });
    command
}

fn table(ui: &mut Ui, history: &RunHistory, shown: Option<u64>) -> Option<Command> {
    let mut command = None;
    if history.entries.is_empty() {
        ui.label(RichText::new("Finished runs appear here, ready to compare.").weak());
        return None;
    }
    let baseline = history.baseline_id();
    let rows = history.rows();
    egui::ScrollArea::both()
        .id_salt("history_table")
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show(ui, |ui| {
            egui::Grid::new("history_grid")
                .striped(true)
                .num_columns(13)
                .spacing([7.0, 3.0])
                .show(ui, |ui| {
                    for h in [
                        "base #",
                        "backend",
                        "workers",
                        "tasks × numbers",
                        "wall [s]",
                        "user [s]",
                        "sys [s]",
                        "CPU [%]",
                        "app [%]",
                        "speed-up",
                        "efficiency",
                        "status",
                        "",
                    ] {
                        ui.label(RichText::new(h).strong())
                            .on_hover_text(column_help(h));
                    }
                    ui.end_row();
                    for row in &rows {
                        let r = row.report;
                        let mut selected = baseline;
                        if ui
                            .radio_value(&mut selected, Some(row.id), format!("#{}", row.id))
                            .on_hover_text(format!("Measure speed-ups against run #{}", row.id))
                            .clicked()
                        {
                            command = Some(Command::SetBaseline(row.id));
                        }
                        ui.label(
                            RichText::new(r.spec.backend.name())
                                .color(backend_color(r.spec.backend)),
                        );
                        right(ui, r.spec.workers.to_string());
                        right(
                            ui,
                            format!(
                                "{} × {}",
                                r.spec.tasks,
                                group_thousands(r.spec.numbers_per_task)
                            ),
                        );
                        right(ui, format!("{:.3}", r.wall_s));
                        right(ui, format!("{:.3}", r.user_s));
                        right(ui, format!("{:.3}", r.sys_s));
                        right(ui, format!("{:.0}", r.cpu_percent));
                        right(ui, format!("{:.1}", r.observer_cpu_percent));
                        right(ui, row.speedup.map_or("–".into(), |s| format!("{s:.2}×")));
                        right(ui, format!("{:.0} %", 100.0 * r.efficiency()));
                        let status = RichText::new(r.status.name()).color(match r.status {
                            RunStatus::Ok => Color32::from_rgb(80, 180, 90),
                            _ => ui.visuals().error_fg_color,
                        });
                        let s = ui.label(status);
                        if let Some(why) = &r.reason {
                            s.on_hover_text(why);
                        }
                        ui.horizontal(|ui| {
                            let is_shown = shown == Some(row.id);
                            if ui
                                .selectable_label(is_shown, "show")
                                .on_hover_text("Show this run's charts above")
                                .clicked()
                            {
                                command = Some(Command::ShowRun(row.id));
                            }
                            if ui.small_button("remove").clicked() {
                                command = Some(Command::RemoveRun(row.id));
                            }
                        });
                        ui.end_row();
                    }
                });
        });
    command
}

fn right(ui: &mut Ui, text: String) {
    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
        ui.label(text)
    });
}

fn column_help(h: &str) -> &'static str {
    match h {
        "base #" => "The run number; the selected one is the baseline for speed-ups",
        "wall [s]" => "Wall-clock time of the run",
        "user [s]" | "sys [s]" => "The workers' CPU time in user and kernel mode",
        "CPU [%]" => "(user + sys) / wall, as `time` prints it",
        "app [%]" => {
            "What this window itself used meanwhile (its UI and rendering threads), \
             as % of one core: the observer effect"
        }
        "speed-up" => "Throughput over the baseline's (= baseline wall / wall for the same work)",
        "efficiency" => "CPU % / (100 × cores): the share of the machine kept busy",
        _ => "",
    }
}

/// Wall time and %CPU per run, bars grouped by backend.
fn charts(ui: &mut Ui, history: &RunHistory, height: f32) {
    // Each backend's runs side by side, a gap between backends.
    let mut x = 0.0;
    let mut groups: Vec<(BackendKind, Vec<(f64, &HistoryEntry)>)> = Vec::new();
    for b in BackendKind::ALL {
        let runs: Vec<_> = history
            .entries
            .iter()
            .filter(|e| e.report.spec.backend == b)
            .map(|e| {
                x += 1.0;
                (x, e)
            })
            .collect();
        if !runs.is_empty() {
            x += 1.0;
            groups.push((b, runs));
        }
    }
    let ticks: Vec<(f64, u64)> = groups
        .iter()
        .flat_map(|(_, runs)| runs.iter().map(|(x, e)| (*x, e.id)))
        .collect();
    let cores = history.entries.last().map_or(1, |e| e.report.cores);
    ui.label(RichText::new("Per run, grouped by backend").strong())
        .on_hover_text("Hover a bar for its run; the dashed line is the whole machine.");
    // No legend: in a plot this small it hides the bars. The colours are the
    // backends' in the table beside, and the note says what the dashed line is.
    ui.label(
        RichText::new(format!(
            "colours: the table's backends · dashed: all {cores} cores"
        ))
        .small()
        .weak(),
    );
    let h = ((height - 50.0) / 2.0).max(60.0);
    for (title, unit, value) in [
        (
            "wall time",
            "wall [s]",
            (|r: &RunReport| r.wall_s) as fn(&RunReport) -> f64,
        ),
        ("CPU", "CPU [%]", |r: &RunReport| r.cpu_percent),
    ] {
        let ticks = ticks.clone();
        let top = history
            .entries
            .iter()
            .map(|e| value(&e.report))
            .fold(0.0, f64::max)
            .max(if title == "CPU" {
                100.0 * cores as f64
            } else {
                0.0
            });
        let plot = Plot::new(format!("history_{title}"))
            .show_background(false)
            .height(h)
            .include_y(0.0)
            .include_y(top * 1.1)
            .include_x(0.0)
            .include_x(x.max(2.0))
            .y_axis_label(unit)
            .y_grid_spacer(value_grid)
            .y_axis_formatter(step_tick)
            .custom_x_axes(vec![
                egui_plot::AxisHints::new_x()
                    .formatter(move |m, _| {
                        ticks
                            .iter()
                            .find(|(x, _)| (x - m.value).abs() < 1e-6)
                            .map_or(String::new(), |(_, id)| format!("#{id}"))
                    })
                    // Run numbers are short: label bars as close as 18 points apart.
                    .label_spacing(18.0..=24.0),
            ])
            .x_grid_spacer(egui_plot::uniform_grid_spacer(|_| [1.0, 1.0, 1.0]))
            .show_grid([false, true])
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false);
        plot.show(ui, |p| {
            for (b, runs) in &groups {
                let bars = runs
                    .iter()
                    .map(|(x, e)| {
                        Bar::new(*x, value(&e.report))
                            .width(0.7)
                            .fill(backend_color(*b).gamma_multiply(0.8))
                            .name(format!(
                                "#{} {} × {}: {:.2} {unit}",
                                e.id,
                                b,
                                e.report.spec.workers,
                                value(&e.report)
                            ))
                    })
                    .collect();
                p.bar_chart(BarChart::new(b.name(), bars).color(backend_color(*b)));
            }
            if title == "CPU" && !groups.is_empty() {
                p.hline(
                    egui_plot::HLine::new(format!("all {cores} cores"), 100.0 * cores as f64)
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RunSpec;

    fn report(status: RunStatus, wall_s: f64) -> RunReport {
        RunReport {
            spec: RunSpec::default(),
            status,
            reason: None,
            sums: vec![],
            total: 0,
            wall_s,
            user_s: 0.0,
            sys_s: 0.0,
            cpu_percent: 100.0,
            observer_cpu_percent: 0.0,
            cores: 2,
            workers_lost: 0,
            task_timeline: vec![],
            cpu_timeline: vec![crate::report::event::Sample {
                t_s: 0.1,
                per_core: vec![1.0, 2.0],
                run_cpu_percent: 1.0,
                numbers_per_s: 1.0,
                numbers_done: 1,
                requests_per_s: 0.0,
                observer_cpu_percent: 0.0,
            }],
            io: None,
            gil: None,
        }
    }

    #[test]
    fn baseline_defaults_to_the_first_completed_run() {
        let mut h = RunHistory::default();
        let a = h.push(report(RunStatus::Cancelled, 1.0));
        let b = h.push(report(RunStatus::Ok, 2.0));
        let c = h.push(report(RunStatus::Ok, 1.0));
        assert_eq!(h.baseline_id(), Some(b));
        let rows = h.rows();
        assert_eq!(rows[0].speedup, None);
        assert_eq!(rows[2].speedup, Some(2.0));
        h.baseline = Some(c);
        assert_eq!(h.rows()[1].speedup, Some(0.5));
        h.remove(c);
        assert_eq!(h.baseline_id(), Some(b));
        h.remove(a);
        assert_eq!(h.entries.len(), 1);
        h.clear();
        assert!(h.entries.is_empty() && h.baseline_id().is_none());
    }

    #[test]
    fn ids_keep_growing_and_history_is_capped() {
        let mut h = RunHistory::default();
        for _ in 0..MAX_RUNS + 5 {
            h.push(report(RunStatus::Ok, 1.0));
        }
        assert_eq!(h.entries.len(), MAX_RUNS);
        assert_eq!(h.entries[0].id, 6);
        assert_eq!(h.entries.last().unwrap().id, MAX_RUNS as u64 + 5);
    }

    #[test]
    fn persisted_copy_drops_timelines_only() {
        let mut h = RunHistory::default();
        h.push(report(RunStatus::Ok, 1.0));
        let s = h.without_timelines();
        assert!(s.entries[0].report.cpu_timeline.is_empty());
        assert_eq!(s.entries[0].report.wall_s, 1.0);
        assert_eq!(s.next_id, h.next_id);
    }
}
