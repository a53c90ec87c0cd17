//! The comparison with CPython from the app: `scalelab compare`'s matrix, run
//! on a background thread (it takes a minute or two), its progress and result
//! drawn in a window. The engine-side `compare` module does all the work.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, unbounded};
use egui::{Context, RichText, Ui};

use crate::compare::{self, CompareConfig, CompareReport, output};
use crate::engine::EngineOptions;

/// What the comparison thread reports.
enum Message {
    Progress(String),
    Done(Result<CompareReport, String>),
}

/// A comparison running, or its outcome.
pub struct CompareJob {
    rx: Receiver<Message>,
    thread: Option<JoinHandle<()>>,
    tasks: u32,
    numbers: u64,
    /// What is being measured now.
    pub progress: String,
    pub outcome: Option<Result<CompareReport, String>>,
}

impl CompareJob {
    /// Starts the chapter's comparison for `tasks` x `numbers`, 3 repetitions.
    pub fn start(tasks: u32, numbers: u64, options: EngineOptions, ctx: &Context) -> Self {
        let (tx, rx) = unbounded();
        let wake = {
            let ctx = ctx.clone();
            Arc::new(move || ctx.request_repaint())
        };
        let cfg = CompareConfig {
            tasks,
            numbers,
            options,
            ..CompareConfig::default()
        };
        let thread = std::thread::Builder::new()
            .name("scalelab-compare".into())
            .spawn(move || {
                let progress_tx = tx.clone();
                let progress_wake = wake.clone();
                let result = compare::run(&cfg, move |what| {
                    let _ = progress_tx.send(Message::Progress(what.to_string()));
                    progress_wake();
                });
                let _ = tx.send(Message::Done(result));
                wake();
            })
            .ok();
        Self {
            rx,
            tasks,
            numbers,
            progress: "starting".into(),
            outcome: thread
                .is_none()
                .then(|| Err("cannot start the comparison thread".into())),
            thread,
        }
    }

    /// Folds what the thread said since the last frame. True while it still runs.
    pub fn poll(&mut self) -> bool {
        for m in self.rx.try_iter() {
            match m {
                Message::Progress(p) => self.progress = p,
                Message::Done(r) => self.outcome = Some(r),
            }
        }
        if self.outcome.is_some()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
        self.outcome.is_none()
    }
}

/// Draws the comparison window; returns false when the user closed it.
pub fn window(ctx: &Context, job: &CompareJob) -> bool {
    let mut open = true;
    egui::Window::new("Side by side with CPython")
        .open(&mut open)
        .default_size([900.0, 520.0])
        .vscroll(true)
        .show(ctx, |ui| body(ui, job));
    open
}

fn body(ui: &mut Ui, job: &CompareJob) {
    ui.label(format!(
        "The chapter's experiments, {} tasks x {} numbers: every backend with 1, cores and 8 workers, \
         and the same experiments in CPython. Measured while this window draws; `scalelab compare` \
         in a terminal gives quieter figures.",
        job.tasks, job.numbers
    ));
    ui.separator();
    match &job.outcome {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("measuring {}", job.progress));
            });
        }
        Some(Err(e)) => {
            ui.label(
                RichText::new(format!("The comparison failed: {e}"))
                    .color(ui.visuals().error_fg_color),
            );
        }
        Some(Ok(r)) => report(ui, r),
    }
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
    egui::CollapsingHeader::new("Every cell of the matrix (medians of 3)")
        .default_open(false)
        .show(ui, |ui| {
            let (h, rows) = output::matrix_cells(r);
            grid(ui, "compare_matrix", &h, &rows);
        });
    if ui.button("Copy as Markdown").clicked() {
        ui.ctx().copy_text(output::to_markdown(r));
    }
}
