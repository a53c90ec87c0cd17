//! The comparison with CPython from the app: `scalelab compare`'s matrix at
//! the chapter's size, run on a background thread (it takes a minute or two),
//! its progress and result drawn in a window. The engine-side `compare` module
//! does all the work; the UI thread only starts it, cancels it and folds what
//! it sends back (as commands, through the app's `CommandSender`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use egui::{Context, RichText, Ui};

use super::command::{Command, CommandSender};
use crate::engine::EngineOptions;
use crate::measure::compare::{
    self, CompareConfig, CompareError, CompareProgress, CompareReport, output,
};
use crate::report::export::group_thousands;

/// The window compares at the chapter's size, whatever the form says: the
/// form's presets go up to 16 x 200,000,000 numbers, which would keep CPython
/// busy for hours.
pub const CHAPTER_TASKS: u32 = 8;
pub const CHAPTER_NUMBERS: u64 = 1_000_000;

/// How a comparison ended.
pub enum Outcome {
    Done(Box<CompareReport>),
    Failed(String),
    Cancelled,
}

/// How a comparison ended, for the status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// The status bar's line.
    pub text: String,
    pub is_error: bool,
}

/// What the user did in the comparison window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Cancel,
    Close,
}

/// A comparison running, or its outcome.
pub struct CompareJob {
    thread: Option<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
    tasks: u32,
    numbers: u64,
    started: Instant,
    /// The step being measured, and when it started (since `started`).
    progress: Option<(CompareProgress, Duration)>,
    /// How long it took, once it ended.
    took: Option<Duration>,
    outcome: Option<Outcome>,
}

impl CompareJob {
    /// The window's comparison: the chapter's experiments at 8 x 1,000,000,
    /// 3 repetitions, CPython (`python3`) and the limits included.
    pub fn config(options: EngineOptions) -> CompareConfig {
        CompareConfig {
            tasks: CHAPTER_TASKS,
            numbers: CHAPTER_NUMBERS,
            options,
            ..CompareConfig::default()
        }
    }

    /// Starts `cfg` on a thread of its own (its cancel flag becomes the job's).
    pub fn start(mut cfg: CompareConfig, back: &CommandSender) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        cfg.cancel = cancel.clone();
        let (tasks, numbers) = (cfg.tasks, cfg.numbers);
        let back = back.clone();
        let thread = std::thread::Builder::new()
            .name("scalelab-compare".into())
            .spawn(move || {
                let progress = back.clone();
                let result = compare::run(&cfg, move |p| {
                    progress.send(Command::CompareProgress(p.clone()));
                });
                back.send(Command::CompareEnded(result.map(Box::new)));
            });
        let (thread, outcome) = match thread {
            Ok(t) => (Some(t), None),
            Err(e) => (
                None,
                Some(Outcome::Failed(format!(
                    "cannot start the comparison thread: {e}"
                ))),
            ),
        };
        Self {
            thread,
            cancel,
            tasks,
            numbers,
            started: Instant::now(),
            progress: None,
            took: outcome.as_ref().map(|_| Duration::ZERO),
            outcome,
        }
    }

    /// The size compared: tasks, numbers per task.
    pub fn size(&self) -> (u32, u64) {
        (self.tasks, self.numbers)
    }

    pub fn is_running(&self) -> bool {
        self.outcome.is_none()
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The step being measured.
    pub fn progress(&self) -> Option<&CompareProgress> {
        self.progress.as_ref().map(|(p, _)| p)
    }

    /// Asks the comparison to stop; it ends within a fraction of a second,
    /// and `on_ended` then reports it cancelled. Never waits.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelling(&self) -> bool {
        self.is_running() && self.cancel.load(Ordering::Relaxed)
    }

    /// The thread moved on to its next step.
    pub fn on_progress(&mut self, p: CompareProgress) {
        if self.outcome.is_none() {
            self.progress = Some((p, self.started.elapsed()));
        }
    }

    /// The thread ended: keeps the outcome and says what the status bar should.
    pub fn on_ended(&mut self, result: Result<Box<CompareReport>, CompareError>) -> Ended {
        let took = self.started.elapsed();
        self.took = Some(took);
        // The thread's last act was to send this: joining it takes no time, but off this thread anyway.
        if let Some(t) = self.thread.take() {
            join_off_thread(t, "scalelab-compare-join");
        }
        let took = clock(took);
        let (outcome, text, is_error) = match result {
            Ok(r) => (
                Outcome::Done(r),
                format!("Comparison with CPython done in {took}."),
                false,
            ),
            Err(CompareError::Cancelled) => (
                Outcome::Cancelled,
                format!("Comparison with CPython cancelled after {took}."),
                false,
            ),
            Err(CompareError::Failed(e) | CompareError::Invalid(e)) => {
                let text = format!("The comparison with CPython failed: {e}");
                (Outcome::Failed(e), text, true)
            }
        };
        self.outcome = Some(outcome);
        Ended { text, is_error }
    }

    /// Time since the start, or how long it took once it ended.
    pub fn elapsed(&self) -> Duration {
        self.took.unwrap_or_else(|| self.started.elapsed())
    }

    /// Time left, estimated from the share of the expected work done when
    /// the current step started; `None` until a step has finished.
    pub fn eta(&self) -> Option<Duration> {
        let (p, at) = self.progress.as_ref()?;
        if self.outcome.is_some() || p.done <= 0.0 {
            return None;
        }
        let total = at.as_secs_f64() / p.done;
        Some(Duration::from_secs_f64(
            (total - self.elapsed().as_secs_f64()).max(0.0),
        ))
    }
}

impl Drop for CompareJob {
    /// Only when the app itself goes away with a comparison running: stop it,
    /// and give it a moment (it needs a few ms) to kill what it started, so
    /// that no CPython process outlives the app.
    fn drop(&mut self) {
        self.cancel();
        if let Some(t) = self.thread.take() {
            join_within(t, Duration::from_secs(2));
        }
    }
}

/// Joins a background job's thread that has sent its last command, on a
/// thread of its own (`name`, which starts as the job's does): the UI
/// thread never waits.
pub fn join_off_thread(t: JoinHandle<()>, name: &str) {
    let _ = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || t.join());
}

/// Gives a cancelled job's thread up to `limit` to end (as the app goes
/// away), joining it if it did.
pub fn join_within(t: JoinHandle<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !t.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if t.is_finished() {
        let _ = t.join();
    }
}

/// `m:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// Draws the comparison window; says whether the user cancelled or closed it.
pub fn window(ctx: &Context, job: &CompareJob) -> Action {
    let mut open = true;
    let mut action = Action::None;
    egui::Window::new("Side by side with CPython")
        .open(&mut open)
        .default_size([900.0, 520.0])
        .vscroll(true)
        .show(ctx, |ui| action = body(ui, job));
    if open { action } else { Action::Close }
}

fn body(ui: &mut Ui, job: &CompareJob) -> Action {
    let mut action = Action::None;
    ui.label(format!(
        "The chapter's experiments at the chapter's size, {} tasks × {} numbers, whatever the \
         form says (CPython takes seconds where scalelab takes milliseconds): every backend with \
         1, cores and 8 workers, and the same experiments in CPython. Measured while this window \
         draws; `scalelab compare` in a terminal gives quieter figures and other sizes.",
        job.tasks,
        group_thousands(job.numbers)
    ));
    ui.separator();
    match &job.outcome {
        None => {
            let (step, done) = match job.progress() {
                Some(p) => (p.to_string(), p.done),
                None => ("starting".to_string(), 0.0),
            };
            ui.horizontal(|ui| {
                ui.spinner();
                if job.is_cancelling() {
                    ui.label(format!("Cancelling… (was at {step})"));
                } else {
                    ui.label(format!("Measuring {step}"));
                }
            });
            ui.add(egui::ProgressBar::new(done as f32).show_percentage());
            ui.horizontal(|ui| {
                let eta = match job.eta() {
                    Some(left) => format!("ETA about {}", clock(left)),
                    None => "ETA: estimating…".to_string(),
                };
                ui.label(format!("elapsed {} · {eta}", clock(job.elapsed())));
                if ui
                    .add_enabled(!job.is_cancelling(), egui::Button::new("Cancel comparison"))
                    .on_hover_text(
                        "Stop the comparison: the run or CPython process in progress ends at once",
                    )
                    .clicked()
                {
                    action = Action::Cancel;
                }
            });
        }
        Some(Outcome::Cancelled) => {
            let at = job
                .progress()
                .map(|p| format!(", at {p}"))
                .unwrap_or_default();
            ui.label(
                RichText::new(format!(
                    "Comparison cancelled after {}{at}.",
                    clock(job.elapsed())
                ))
                .color(ui.visuals().warn_fg_color),
            );
        }
        Some(Outcome::Failed(e)) => {
            ui.label(
                RichText::new(format!("The comparison failed: {e}"))
                    .color(ui.visuals().error_fg_color),
            );
        }
        Some(Outcome::Done(r)) => report(ui, r),
    }
    action
}

fn grid(ui: &mut Ui, id: &str, header: &[&str], rows: &[Vec<String>]) {
    egui::Grid::new(id)
        .striped(true)
        .num_columns(header.len())
        .show(ui, |ui| {
            for h in header {
                ui.label(RichText::new(*h).strong());
            }
            ui.end_row();
            for row in rows {
                for cell in row {
                    ui.label(cell);
                }
                ui.end_row();
            }
        });
}

fn report(ui: &mut Ui, r: &CompareReport) {
    for n in &r.notes {
        ui.label(RichText::new(format!("note: {n}")).color(ui.visuals().warn_fg_color));
    }
    ui.label(RichText::new("The chapter's experiments").strong());
    let (h, rows) = output::experiment_cells(r);
    grid(ui, "compare_experiments", &h, &rows);
    ui.add_space(6.0);
    ui.label(RichText::new("The claims, checked").strong());
    for c in &r.checks {
        let (mark, color) = if c.holds {
            ("holds", egui::Color32::from_rgb(80, 180, 90))
        } else {
            ("does not hold", ui.visuals().error_fg_color)
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(mark).color(color).strong());
            ui.label(format!("{} ({})", c.claim, c.measured));
        });
    }
    ui.add_space(6.0);
    egui::CollapsingHeader::new(format!(
        "Every cell of the matrix (medians of {})",
        r.repeat
    ))
    .default_open(false)
    .show(ui, |ui| {
        let (h, rows) = output::matrix_cells(r);
        grid(ui, "compare_matrix", &h, &rows);
    });
    if ui.button("Copy as Markdown").clicked() {
        ui.ctx().copy_text(output::to_markdown(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(clock(Duration::from_secs(75)), "1:15");
        assert_eq!(clock(Duration::from_millis(900)), "0:00");
    }
}
