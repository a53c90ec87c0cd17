//! The run history on screen: the comparison table against a baseline, charts
//! grouped by backend, and the export bar. What is kept is `report::history`.

use egui::{Color32, RichText, Ui};
use egui_plot::{Bar, BarChart, Plot};

use crate::report::export::group_thousands;
use crate::report::history::{HistoryEntry, RunHistory};
use crate::report::{RunReport, RunStatus};
use crate::spec::BackendKind;

use super::backend_color;
use super::charts::{step_tick, value_grid};
use super::command::Command;
use super::state::ExportFormat;

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
                .num_columns(14)
                .spacing([7.0, 3.0])
                .show(ui, |ui| {
                    for h in [
                        "base #",
                        "host",
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
                        ui.label(&r.host);
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
        "host" => "The machine the run ran on: a server's, for runs sent to it",
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
