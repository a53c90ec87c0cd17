//! Scaling curves from the app: `scalelab sweep` on a background thread, its
//! settings, progress (point k of n, an ETA, cancel) and result drawn in a
//! window: speed-up against workers with whiskers, the ideal and each
//! backend's Amdahl fit dashed, efficiency beside it, and the fit in words.
//! The measuring is the engine-side `measure::sweep`; this file only starts
//! it, cancels it, draws what it sends back and asks for exports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use egui::{Color32, Context, RichText, Ui};
use egui_plot::{Corner, Legend, Line, LineStyle, Plot, PlotPoints};

use super::command::{Command, CommandSender};
use super::compare_view::{join_off_thread, join_within};
use crate::engine::EngineOptions;
use crate::measure::sweep::{
    self, Progress, SweepConfig, SweepError, SweepReport, output::fit_line,
};
use crate::report::export::group_thousands;
use crate::spec::BackendKind;

/// What the sweep window's form holds (text as typed).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepForm {
    pub backends: Vec<BackendKind>,
    pub workers: String,
    pub tasks: String,
    pub numbers: String,
    pub repeat: String,
}

impl SweepForm {
    /// The chapter's contrast (threads, the GIL, processes), the default worker
    /// list, tasks that split at every point, and numbers for about 2 s with
    /// one worker at `ns_per_number`.
    pub fn new(cores: u32, ns_per_number: Option<f64>) -> Self {
        let workers = sweep::default_workers(cores);
        let tasks = sweep::suggested_tasks(&workers);
        let numbers = ns_per_number.map_or(10_000_000, |ns| sweep::numbers_for(2.0, ns, tasks));
        SweepForm {
            backends: vec![
                BackendKind::Threads,
                BackendKind::Gil,
                BackendKind::Processes,
            ],
            workers: list(&workers),
            tasks: tasks.to_string(),
            numbers: group_thousands(numbers),
            repeat: "3".into(),
        }
    }

    /// The sweep the form asks for, or what is wrong with it.
    pub fn config(&self, options: EngineOptions) -> Result<SweepConfig, String> {
        let workers: Vec<u32> = self
            .workers
            .split(',')
            .map(|w| {
                w.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("workers: `{}` is not a count", w.trim()))
            })
            .collect::<Result<_, _>>()?;
        if !workers.contains(&1) {
            return Err("workers: the list must include 1 (speed-ups are against it)".into());
        }
        let tasks: u32 = self
            .tasks
            .trim()
            .parse()
            .map_err(|_| "tasks: not a whole number".to_string())?;
        let numbers: u64 = self
            .numbers
            .replace([',', '_', ' '], "")
            .parse()
            .map_err(|_| "numbers per task: not a whole number".to_string())?;
        let repeat: usize = match self.repeat.trim().parse() {
            Ok(r @ 1..=20) => r,
            _ => return Err("repetitions: 1 to 20".into()),
        };
        if self.backends.is_empty() {
            return Err("pick at least one backend".into());
        }
        let cfg = SweepConfig {
            backends: self.backends.clone(),
            workers,
            tasks,
            numbers,
            seed: 42,
            repeat,
            options,
            cancel: Default::default(),
            target: None,
        };
        for &w in &cfg.workers {
            let spec = crate::spec::RunSpec {
                workers: w,
                tasks,
                numbers_per_task: numbers,
                ..Default::default()
            };
            spec.validate().map_err(|e| e.to_string())?;
        }
        Ok(cfg)
    }

    /// A hint when the tasks do not split evenly at every worker count.
    pub fn split_hint(&self) -> Option<String> {
        let workers: Vec<u32> = self
            .workers
            .split(',')
            .filter_map(|w| w.trim().parse().ok())
            .collect();
        let tasks: u32 = self.tasks.trim().parse().ok()?;
        let uneven = workers
            .iter()
            .find(|&&w| w > 0 && !tasks.is_multiple_of(w))?;
        Some(format!(
            "{tasks} tasks do not split evenly over {uneven} workers: {} would",
            sweep::suggested_tasks(&workers)
        ))
    }
}

fn list(workers: &[u32]) -> String {
    workers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sweep running, or its outcome.
pub struct SweepJob {
    thread: Option<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
    started: Instant,
    progress: Option<Progress>,
    took: Option<Duration>,
    outcome: Option<Result<Box<SweepReport>, SweepError>>,
}

impl SweepJob {
    /// Starts `cfg` on a thread of its own (its cancel flag becomes the job's).
    pub fn start(cfg: SweepConfig, back: &CommandSender) -> Self {
        let cancel = cfg.cancel.clone();
        let back = back.clone();
        let thread = std::thread::Builder::new()
            .name("scalelab-sweep".into())
            .spawn(move || {
                let progress = back.clone();
                let result = sweep::run(&cfg, move |p| {
                    progress.send(Command::SweepProgress(p.clone()));
                });
                back.send(Command::SweepEnded(result.map(Box::new)));
            });
        let (thread, outcome) = match thread {
            Ok(t) => (Some(t), None),
            Err(e) => (
                None,
                Some(Err(SweepError::Failed(format!(
                    "cannot start the sweep thread: {e}"
                )))),
            ),
        };
        SweepJob {
            thread,
            cancel,
            started: Instant::now(),
            progress: None,
            took: None,
            outcome,
        }
    }

    pub fn is_running(&self) -> bool {
        self.outcome.is_none()
    }

    pub fn report(&self) -> Option<&SweepReport> {
        match &self.outcome {
            Some(Ok(r)) => Some(r),
            _ => None,
        }
    }

    pub fn outcome(&self) -> Option<&Result<Box<SweepReport>, SweepError>> {
        self.outcome.as_ref()
    }

    /// Asks the sweep to stop; its run in progress is cancelled at once. Never waits.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn on_progress(&mut self, p: Progress) {
        if self.outcome.is_none() {
            self.progress = Some(p);
        }
    }

    /// The thread ended: keeps the outcome and gives the status bar's line.
    pub fn on_ended(&mut self, result: Result<Box<SweepReport>, SweepError>) -> (String, bool) {
        let took = self.started.elapsed();
        self.took = Some(took);
        if let Some(t) = self.thread.take() {
            join_off_thread(t, "scalelab-sweep-join");
        }
        let line = match &result {
            Ok(_) => (format!("Sweep done in {:.0} s.", took.as_secs_f64()), false),
            Err(SweepError::Cancelled) => ("Sweep cancelled.".to_string(), false),
            Err(e) => (format!("The sweep failed: {e}"), true),
        };
        self.outcome = Some(result);
        line
    }
}

impl Drop for SweepJob {
    /// The app going away mid-sweep: stop it, and give it a moment to end its run.
    fn drop(&mut self) {
        self.cancel();
        if let Some(t) = self.thread.take() {
            join_within(t, Duration::from_secs(2));
        }
    }
}

/// Draws the sweep window; returns what the user asked for.
pub fn window(
    ctx: &Context,
    form: &mut SweepForm,
    job: Option<&SweepJob>,
    busy: bool,
) -> Vec<Command> {
    let mut open = true;
    let mut out = Vec::new();
    egui::Window::new("Scaling curves")
        .open(&mut open)
        .default_size([1100.0, 640.0])
        .vscroll(true)
        .show(ctx, |ui| out = body(ui, form, job, busy));
    if !open {
        out.push(Command::ShowSweep(false));
    }
    out
}

fn body(ui: &mut Ui, form: &mut SweepForm, job: Option<&SweepJob>, busy: bool) -> Vec<Command> {
    let mut out = Vec::new();
    let running = job.is_some_and(SweepJob::is_running);
    ui.add_enabled_ui(!running, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label("Backends:");
            for b in BackendKind::ALL {
                let mut on = form.backends.contains(&b);
                if ui.checkbox(&mut on, b.to_string()).changed() {
                    if on {
                        form.backends.push(b);
                        form.backends
                            .sort_by_key(|x| BackendKind::ALL.iter().position(|y| y == x));
                    } else {
                        form.backends.retain(|x| *x != b);
                    }
                }
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Workers");
            ui.add(egui::TextEdit::singleline(&mut form.workers).desired_width(120.0))
                .on_hover_text("Worker counts, comma-separated; 1 must be among them");
            ui.label("Tasks");
            ui.add(egui::TextEdit::singleline(&mut form.tasks).desired_width(50.0));
            ui.label("Numbers per task");
            ui.add(egui::TextEdit::singleline(&mut form.numbers).desired_width(110.0));
            ui.label("Repetitions");
            ui.add(egui::TextEdit::singleline(&mut form.repeat).desired_width(30.0));
        });
    });
    if let Some(hint) = form.split_hint() {
        ui.label(
            RichText::new(hint)
                .small()
                .color(ui.visuals().warn_fg_color),
        );
    }
    ui.horizontal(|ui| {
        if running {
            if ui.button("Cancel sweep").clicked() {
                out.push(Command::CancelSweep);
            }
            if let Some(p) = job.and_then(|j| j.progress.as_ref()) {
                let eta = p
                    .eta_s
                    .map_or(String::new(), |s| format!(", about {s:.0} s left"));
                ui.add(
                    egui::ProgressBar::new((p.point - 1) as f32 / p.points.max(1) as f32)
                        .desired_width(240.0),
                );
                ui.label(format!("point {} of {}: {}{eta}", p.point, p.points, p.what));
            } else {
                ui.spinner();
            }
        } else {
            let problem = form.config(EngineOptions::default()).err();
            let go = ui
                .add_enabled(problem.is_none() && !busy, egui::Button::new("Run sweep"))
                .on_hover_text(
                    "Every backend at every worker count, one run at a time, the repetitions spread over the sweep",
                )
                .on_disabled_hover_text(problem.clone().unwrap_or_else(|| "a run is going".into()));
            if go.clicked() {
                out.push(Command::StartSweep(form.clone()));
            }
            if let Some(p) = problem {
                ui.label(RichText::new(p).color(ui.visuals().error_fg_color));
            }
        }
    });
    match job.and_then(SweepJob::outcome) {
        Some(Ok(report)) => out.extend(result(ui, report)),
        Some(Err(SweepError::Cancelled)) => {
            ui.label("Cancelled.");
        }
        Some(Err(e)) => {
            ui.label(RichText::new(e.to_string()).color(ui.visuals().error_fg_color));
        }
        None => {}
    }
    out
}

fn color(b: BackendKind) -> Color32 {
    super::backend_color(b)
}

fn result(ui: &mut Ui, r: &SweepReport) -> Vec<Command> {
    let mut out = Vec::new();
    ui.separator();
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(format!(
                "{} tasks × {} numbers, {} run(s) per point, on {} ({} cores)",
                r.tasks,
                group_thousands(r.numbers_per_task),
                r.repeat,
                r.host,
                r.cores
            ))
            .strong(),
        );
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("Copy sweep Markdown").clicked() {
                out.push(Command::SaveSweep(SweepExport::CopyMarkdown));
            }
            if ui.button("Save sweep JSON").clicked() {
                out.push(Command::SaveSweep(SweepExport::Json));
            }
            if ui.button("Save sweep CSV").clicked() {
                out.push(Command::SaveSweep(SweepExport::Csv));
            }
            if ui
                .button("Save sweep chart (PNG)")
                .on_hover_text(
                    "The same chart `scalelab sweep --chart` draws, into the export folder",
                )
                .clicked()
            {
                out.push(Command::SaveSweep(SweepExport::Png));
            }
        });
    });
    for c in &r.curves {
        let warn = c.fit.as_ref().is_some_and(|f| f.misfit.is_some());
        let mut text = RichText::new(fit_line(c)).color(color(c.backend));
        if warn {
            text = text.strong();
        }
        ui.label(text);
    }
    let max_w = r.max_workers();
    let height = (ui.available_height() - 10.0).clamp(260.0, 420.0);
    let width = (ui.available_width() - 10.0) / 2.0;
    ui.horizontal(|ui| {
        Plot::new("sweep_speedup")
            .width(width)
            .height(height)
            .x_axis_label("workers")
            .y_axis_label("speed-up against 1 worker")
            .legend(Legend::default().position(Corner::RightBottom))
            .include_y(0.0)
            .include_x(0.0)
            .show(ui, |p| {
                let ideal = r.ideal();
                p.line(
                    Line::new(
                        format!("ideal: min(workers, {} cores)", r.cores),
                        PlotPoints::from(ideal),
                    )
                    .color(Color32::GRAY)
                    .width(1.5),
                );
                for c in &r.curves {
                    let col = color(c.backend);
                    let pts: Vec<[f64; 2]> = c
                        .points
                        .iter()
                        .map(|q| [f64::from(q.workers), q.speedup_median])
                        .collect();
                    p.line(
                        Line::new(c.backend.to_string(), PlotPoints::from(pts))
                            .color(col)
                            .width(2.5),
                    );
                    for q in &c.points {
                        let x = f64::from(q.workers);
                        p.line(
                            Line::new(
                                c.backend.to_string(),
                                PlotPoints::from(vec![[x, q.speedup_min], [x, q.speedup_max]]),
                            )
                            .color(col)
                            .width(1.5),
                        );
                    }
                    if let Some(f) = &c.fit {
                        let model = r.fitted(f.serial_fraction, f64::from(max_w), 100);
                        p.line(
                            Line::new(
                                format!("{} fit (s = {:.2})", c.backend, f.serial_fraction),
                                PlotPoints::from(model),
                            )
                            .color(col.gamma_multiply(0.7))
                            .style(LineStyle::dashed_loose()),
                        );
                    }
                }
            });
        Plot::new("sweep_efficiency")
            .width(width)
            .height(height)
            .x_axis_label("workers")
            .y_axis_label("efficiency")
            .include_y(0.0)
            .include_y(1.1)
            .include_x(0.0)
            .show(ui, |p| {
                p.line(
                    Line::new(
                        "perfect",
                        PlotPoints::from(vec![[0.0, 1.0], [f64::from(max_w), 1.0]]),
                    )
                    .color(Color32::GRAY),
                );
                for c in &r.curves {
                    let pts: Vec<[f64; 2]> = c
                        .points
                        .iter()
                        .map(|q| [f64::from(q.workers), q.efficiency])
                        .collect();
                    p.line(
                        Line::new(c.backend.to_string(), PlotPoints::from(pts))
                            .color(color(c.backend))
                            .width(2.5),
                    );
                }
            });
    });
    out
}

/// What the sweep window's export buttons ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepExport {
    Png,
    Csv,
    Json,
    CopyMarkdown,
}
