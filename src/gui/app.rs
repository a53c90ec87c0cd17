//! The app: persisted state, the live run, and the commands the panels return,
//! executed at the end of the frame so drawing never changes the world halfway.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::{Color32, Context, Key, Modifiers, RichText, Ui};

use crate::engine::calibrate::{Calibration, RunSize};
use crate::engine::{self, EngineOptions, RunHandle};
use crate::metrics::cores::core_count;
use crate::report::event::Event;
use crate::report::{RunReport, RunStatus};
use crate::spec::RunSpec;

use super::compare_view::{self, CompareJob};
use super::controls::{self, PanelContext, SpecForm};
use super::frame_stats::FrameStats;
use super::history;
use super::live::{self, LiveRun};
use super::screenshot::Screenshotter;
use super::scripted::Script;
pub use super::state::{AppState, ExportFormat, ThemeChoice};
use super::state_log::StateLog;

/// Key of the app's state in eframe's storage.
pub const STATE_KEY: &str = "scalelab_state";
/// Frame period of the scripted mode's own steps (warm-up, settling), which
/// happen while no run is live.
const SCRIPT_REPAINT: Duration = Duration::from_millis(16);
/// Most engine events folded per frame, so an event storm cannot stretch a frame.
const MAX_EVENTS_PER_FRAME: usize = 20_000;

/// What the panels ask for; executed at the end of the frame.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunSpec),
    Cancel,
    ShowRun(u64),
    RemoveRun(u64),
    ClearHistory,
    SetBaseline(u64),
    Export(ExportFormat),
    Copy(ExportFormat),
    Screenshot(PathBuf),
    SetTheme(ThemeChoice),
    /// The scripted mode is over, with its outcome.
    FinishScript(Result<(), String>),
    /// Run the chapter's comparison with CPython (tasks, numbers per task).
    StartCompare(u32, u64),
    /// Show or hide the comparison window; hiding it cancels a comparison in progress.
    ShowCompare(bool),
    /// Stop the comparison with CPython.
    CancelCompare,
    /// Open the desktop's folder dialog for the export folder.
    ChooseExportFolder,
    /// Put this size (workers, tasks, numbers per task) into the form.
    UseRunSize(RunSize),
}

/// A line in the status bar: a confirmation, or an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// Where the scripted mode's outcome is handed back to the command line.
pub type OutcomeSlot = Arc<Mutex<Option<Result<(), String>>>>;

/// The desktop app.
pub struct ScalelabApp {
    pub state: AppState,
    options: EngineOptions,
    run: Option<RunHandle>,
    /// This machine's kernel speed, when measured (sizes the "a few seconds" preset).
    calibration: Option<Calibration>,
    /// Runs started in this session (numbers the state log's runs).
    runs_started: u64,
    /// `--state-log`: what the window showed, and when.
    state_log: Option<StateLog>,
    live: Option<LiveRun>,
    frames: FrameStats,
    shots: Screenshotter,
    notice: Option<Notice>,
    script: Option<Script>,
    outcome: Option<OutcomeSlot>,
    cores: usize,
    persist: bool,
    theme_applied: Option<ThemeChoice>,
    compare: Option<CompareJob>,
    compare_open: bool,
    /// The folder dialog, open on its own thread: what it answers arrives here.
    folder_dialog: Option<crossbeam_channel::Receiver<Option<PathBuf>>>,
}

impl ScalelabApp {
    /// An app with the given state; runs use `options` (the GUI nices its workers).
    pub fn new(state: AppState, options: EngineOptions) -> Self {
        Self {
            state,
            options,
            run: None,
            calibration: None,
            runs_started: 0,
            state_log: None,
            live: None,
            frames: FrameStats::default(),
            shots: Screenshotter::default(),
            notice: None,
            script: None,
            outcome: None,
            cores: core_count(),
            persist: true,
            theme_applied: None,
            compare: None,
            compare_open: false,
            folder_dialog: None,
        }
    }

    /// The app as it was left, from eframe's storage; if that is unreadable, the
    /// defaults, a notice, and a copy of the bad state kept in `backup_dir`.
    pub fn from_storage(
        storage: Option<&dyn eframe::Storage>,
        options: EngineOptions,
        backup_dir: &std::path::Path,
    ) -> Self {
        let stored = storage.and_then(|s| s.get_string(STATE_KEY));
        let (state, problem) = AppState::from_stored_keeping(stored.as_deref(), backup_dir);
        let mut app = Self::new(state, options);
        if let Some(p) = problem {
            app.notice = Some(Notice {
                text: p,
                is_error: true,
            });
        }
        app
    }

    /// The scripted mode: fresh state, nothing persisted, outcome reported into `slot`.
    pub fn scripted(script: Script, options: EngineOptions, slot: OutcomeSlot) -> Self {
        let mut app = Self::new(AppState::default(), options);
        if let Some(r) = script.config.refresh {
            app.state.live_options.refresh = r;
        }
        if let Some(path) = &script.config.state_log {
            match StateLog::open(path) {
                Ok(log) => app.state_log = Some(log),
                Err(e) => app.error(format!("cannot log states to {}: {e}", path.display())),
            }
        }
        app.script = Some(script);
        app.outcome = Some(slot);
        app.persist = false;
        app
    }

    /// Sizes the presets (and, for a fresh form, the first run) from a measure
    /// of this machine's kernel.
    pub fn with_calibration(mut self, c: Calibration, fresh_form: bool) -> Self {
        if fresh_form {
            self.state
                .form
                .set_size(&c.busy_run(controls::BUSY_SECONDS));
        }
        self.calibration = Some(c);
        self
    }

    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// True while the comparison with CPython is measuring.
    pub fn is_comparing(&self) -> bool {
        self.compare.as_ref().is_some_and(CompareJob::is_running)
    }

    /// The comparison with CPython, running or ended.
    pub fn compare_job(&self) -> Option<&CompareJob> {
        self.compare.as_ref()
    }

    /// Starts a comparison of `cfg` and shows its window, as the button does
    /// with `CompareJob::config` (tests start smaller ones).
    pub fn start_compare(&mut self, cfg: crate::compare::CompareConfig, ctx: &Context) {
        if self.is_running() || self.is_comparing() {
            self.error("Something is already measuring; wait for it to end.");
            return;
        }
        let (tasks, numbers) = (cfg.tasks, cfg.numbers);
        self.compare = Some(CompareJob::start(cfg, ctx));
        self.compare_open = true;
        self.info(format!(
            "Comparing with CPython at {tasks} × {}: every backend, then the chapter's scripts…",
            crate::report::export::group_thousands(numbers)
        ));
    }

    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    pub fn live(&self) -> Option<&LiveRun> {
        self.live.as_ref()
    }

    /// One frame: fold events, draw, then execute what the panels asked for.
    pub fn ui_body(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        let now_s = ctx.input(|i| i.time);
        // Frame intervals count while a run is live; the scripted mode also repaints
        // continuously (warm-up, settling) but those frames are not under load.
        self.frames.begin(Instant::now(), now_s, self.run.is_some());
        if let Some(log) = &mut self.state_log {
            log.frame_started();
        }
        let refresh = self.state.live_options.refresh.period();
        if self.run.is_some() {
            // The live refresh while a run goes (elapsed time, ETA, charts); idle,
            // only input or new data wakes the app. Every frame costs the machine
            // CPU that the run would otherwise have had.
            ctx.request_repaint_after(refresh);
        } else if self.script.as_ref().is_some_and(Script::active) {
            ctx.request_repaint_after(SCRIPT_REPAINT);
        }
        if self.theme_applied != Some(self.state.theme) {
            ctx.set_theme(self.state.theme.preference());
            self.theme_applied = Some(self.state.theme);
        }

        match self.compare.as_mut().map(CompareJob::poll) {
            Some(compare_view::Polled::Running) => {
                ctx.request_repaint_after(Duration::from_millis(250))
            }
            Some(compare_view::Polled::Ended { text, is_error }) => {
                self.notice = Some(Notice { text, is_error })
            }
            _ => {}
        }
        self.poll_folder_dialog(&ctx);
        let mut commands = self.drain_events();
        commands.extend(self.shortcuts(&ctx));
        if let Some(c) = self
            .script
            .as_mut()
            .and_then(|s| s.step(self.run.is_some()))
        {
            commands.push(c);
        }
        commands.extend(self.draw(ui));
        self.log_shown_state(&ctx);
        if let Some(result) = self.shots.update(&ctx) {
            commands.extend(self.screenshot_done(result));
        }
        while !commands.is_empty() {
            for c in std::mem::take(&mut commands) {
                commands.extend(self.execute(c, &ctx));
            }
        }
        self.frames.end(now_s);
    }

    /// Tells the state log what this frame drew (before commands change it).
    fn log_shown_state(&mut self, ctx: &Context) {
        if let Some(log) = &mut self.state_log {
            let shown = self.live.as_ref().map(|l| {
                let state = match l.ended {
                    None => "running",
                    Some((status, _)) => status.name(),
                };
                (self.runs_started, state)
            });
            if log.frame_shows(shown) {
                ctx.request_repaint();
            }
        }
    }

    /// Folds pending engine events into the live run; files the report when it ends.
    fn drain_events(&mut self) -> Vec<Command> {
        let Some(handle) = &self.run else {
            return Vec::new();
        };
        let mut ended: Option<RunReport> = None;
        for e in handle.events.try_iter().take(MAX_EVENTS_PER_FRAME) {
            if let Some(live) = &mut self.live {
                live.apply(&e);
            }
            if let Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) = e {
                ended = Some(*r);
            }
        }
        let Some(report) = ended else {
            return Vec::new();
        };
        // The run thread sends its report last: joining it takes no time, but off this thread anyway.
        if let Some(handle) = self.run.take() {
            std::thread::spawn(move || handle.join());
        }
        let mut commands = Vec::new();
        if let Some(c) = self.script.as_mut().and_then(|s| s.on_run_ended(&report)) {
            commands.push(c);
        }
        let (status, wall, reason) = (report.status, report.wall_s, report.reason.clone());
        let id = self.state.history.push(report);
        if let Some(live) = &mut self.live {
            live.history_id = Some(id);
        }
        self.notice = Some(match status {
            RunStatus::Ok => Notice {
                text: format!("Run #{id} finished in {wall:.3} s."),
                is_error: false,
            },
            _ => Notice {
                text: format!(
                    "Run #{id} {}: {}",
                    status.name(),
                    reason.unwrap_or_default()
                ),
                is_error: status == RunStatus::Failed,
            },
        });
        commands
    }

    fn shortcuts(&mut self, ctx: &Context) -> Vec<Command> {
        let mut out = Vec::new();
        if ctx.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::Enter))
            && !self.is_running()
            && let Ok(spec) = self.state.form.parse()
        {
            out.push(Command::Run(spec));
        }
        if self.is_running() && ctx.input_mut(|i| i.consume_key(Modifiers::NONE, Key::Escape)) {
            out.push(Command::Cancel);
        }
        out
    }

    fn draw(&mut self, ui: &mut Ui) -> Vec<Command> {
        let mut out = Vec::new();
        // Panels paint no background of their own: the frame is cleared to the panel
        // colour (see `clear_color`), which costs a software renderer nothing, where
        // filling the whole window again would shade every pixel once more per frame.
        let bare = egui::Frame::side_top_panel(ui.style()).fill(Color32::TRANSPARENT);
        egui::Panel::top("top_bar").frame(bare).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(RichText::new("scalelab").strong());
                ui.label(RichText::new("how concurrency architectures scale").weak());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let compare = ui
                        .add_enabled(
                            !self.is_running(),
                            egui::Button::new(if self.is_comparing() {
                                "Comparing…"
                            } else {
                                "Compare with CPython…"
                            }),
                        )
                        .on_hover_text(
                            "The chapter's experiments on every backend and in real CPython, \
                             side by side, at the chapter's 8 tasks × 1,000,000 numbers whatever \
                             the form says (a minute or two, with progress; it can be cancelled)",
                        );
                    if compare.clicked() {
                        out.push(if self.is_comparing() {
                            Command::ShowCompare(true)
                        } else {
                            Command::StartCompare(
                                compare_view::CHAPTER_TASKS,
                                compare_view::CHAPTER_NUMBERS,
                            )
                        });
                    }
                    ui.separator();
                    if ui
                        .button("Save screenshot")
                        .on_hover_text("Write a PNG of the window into the export folder")
                        .clicked()
                    {
                        out.push(Command::Screenshot(self.export_path("png")));
                    }
                    ui.separator();
                    for t in ThemeChoice::ALL.iter().rev() {
                        if ui
                            .selectable_label(self.state.theme == *t, t.label())
                            .clicked()
                        {
                            out.push(Command::SetTheme(*t));
                        }
                    }
                    ui.label("Theme");
                });
            });
        });
        egui::Panel::bottom("status_bar")
            .frame(bare)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if let Some(n) = &self.notice {
                        let color = if n.is_error {
                            ui.visuals().error_fg_color
                        } else {
                            ui.visuals().text_color()
                        };
                        ui.label(RichText::new(&n.text).color(color));
                    }
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        ui.label(
                            RichText::new(self.frames.meter_text())
                                .small()
                                .color(Color32::GRAY),
                        )
                        .on_hover_text(
                            "Time spent building each frame, and frame rate while a run is live.",
                        );
                        if let Some(live) = &self.live
                            && live.is_live()
                            && let Some(p) = live.recent_observer_percent(2.0)
                        {
                            ui.separator();
                            ui.label(
                                RichText::new(format!("this window: {p:.1} % of a core"))
                                    .small()
                                    .color(Color32::GRAY),
                            )
                            .on_hover_text(
                                "CPU this app used over the last 2 s outside the run: its UI \
                             thread and its renderer's threads. The workers did not get it.",
                            );
                        }
                    });
                });
            });
        egui::Panel::left("controls")
            .frame(bare)
            .default_size(300.0)
            .min_size(260.0)
            .show(ui, |ui| {
                let cx = PanelContext {
                    cores: self.cores,
                    calibration: self.calibration,
                    // A comparison measures too: runs would disturb it.
                    running: self.is_running() || self.is_comparing(),
                };
                egui::ScrollArea::vertical().show(ui, |ui| {
                    out.extend(controls::show(ui, &mut self.state.form, &cx));
                });
            });
        let history_h = (ui.available_height() * 0.40).max(220.0);
        egui::Panel::bottom("history")
            .frame(bare)
            .resizable(true)
            .default_size(history_h)
            .min_size(160.0)
            .show(ui, |ui| {
                ui.add_space(4.0);
                let shown = self.live.as_ref().and_then(|l| l.history_id);
                out.extend(history::show(
                    ui,
                    &self.state.history,
                    &mut self.state.export_dir,
                    shown,
                ));
            });
        let busy = self.calibration.map(|c| c.busy_run(controls::BUSY_SECONDS));
        let central = egui::Frame::central_panel(ui.style()).fill(Color32::TRANSPARENT);
        egui::CentralPanel::default().frame(central).show(ui, |ui| {
            out.extend(live::show(
                ui,
                self.live.as_mut(),
                &mut self.state.live_options,
                busy,
            ));
        });
        if self.compare_open
            && let Some(job) = &self.compare
        {
            match compare_view::window(ui.ctx(), job) {
                compare_view::Action::Close => out.push(Command::ShowCompare(false)),
                compare_view::Action::Cancel => out.push(Command::CancelCompare),
                compare_view::Action::None => {}
            }
        }
        out
    }

    fn execute(&mut self, command: Command, ctx: &Context) -> Vec<Command> {
        match command {
            Command::Run(spec) => return self.start(spec, ctx),
            Command::Cancel => {
                if let Some(h) = &self.run {
                    h.cancel();
                    self.info("Cancelling…");
                }
            }
            Command::ShowRun(id) => match self.state.history.get(id) {
                _ if self.is_running() => {
                    self.error("A run is in progress; its charts stay shown.")
                }
                Some(r) => self.live = Some(LiveRun::from_report(r, id)),
                None => {}
            },
            Command::RemoveRun(id) => {
                self.state.history.remove(id);
                self.info(format!("Removed run #{id}."));
            }
            Command::ClearHistory => {
                self.state.history.clear();
                self.info("Cleared the history.");
            }
            Command::SetBaseline(id) => self.state.history.baseline = Some(id),
            Command::Export(f) => self.export(f),
            Command::Copy(f) => match f.render(&self.state.history.rows()) {
                Ok(text) => {
                    ctx.copy_text(text);
                    self.info(format!(
                        "Copied the history as {} to the clipboard.",
                        f.label()
                    ));
                }
                Err(e) => self.error(format!("Cannot copy the history: {e}")),
            },
            Command::Screenshot(path) => match self.shots.request(path.clone()) {
                // The scripted mode keeps the last run's line in the picture.
                Ok(()) if self.script.is_some() => {}
                Ok(()) => self.info(format!("Saving a screenshot to {}…", path.display())),
                Err(e) => self.error(e),
            },
            Command::SetTheme(t) => self.state.theme = t,
            Command::FinishScript(outcome) => self.finish_script(outcome, ctx),
            Command::StartCompare(tasks, numbers) => {
                let cfg = crate::compare::CompareConfig {
                    tasks,
                    numbers,
                    ..CompareJob::config(self.options.clone())
                };
                self.start_compare(cfg, ctx);
            }
            Command::ShowCompare(open) => {
                self.compare_open = open;
                if !open && self.is_comparing() {
                    return vec![Command::CancelCompare];
                }
            }
            Command::CancelCompare => {
                if let Some(job) = &self.compare
                    && job.is_running()
                {
                    job.cancel();
                    self.info("Cancelling the comparison with CPython…");
                }
            }
            Command::ChooseExportFolder => self.open_folder_dialog(ctx),
            Command::UseRunSize(size) => {
                self.state.form.set_size(&size);
                self.info("The form now holds a run of a few seconds: press Run.");
            }
        }
        Vec::new()
    }

    fn start(&mut self, spec: RunSpec, ctx: &Context) -> Vec<Command> {
        if self.is_running() {
            return Vec::new();
        }
        if self.is_comparing() {
            self.error("The comparison with CPython is measuring; run when it is done.");
            return Vec::new();
        }
        // While a run is live every frame asks for the next (see `ui_body`), so the
        // workers never touch egui's context: a worker preempted while holding its
        // lock would stall the UI thread. Only the run's end asks for a frame at once.
        let repaint = ctx.clone();
        let wake: engine::Waker = Arc::new(move |last| {
            if last {
                repaint.request_repaint();
            }
        });
        match engine::start_with_waker(spec.clone(), self.options.clone(), Some(wake)) {
            Ok(handle) => {
                self.run = Some(handle);
                self.runs_started += 1;
                // The form shows what runs (the scripted mode's runs included).
                self.state.form = SpecForm::from_spec(&spec);
                self.live = Some(LiveRun::new(spec.clone(), self.cores));
                self.info(format!(
                    "Running {} × {} workers…",
                    spec.backend, spec.workers
                ));
                ctx.request_repaint();
                Vec::new()
            }
            Err(e) => {
                self.error(format!("Cannot start the run: {e}"));
                self.script
                    .as_mut()
                    .and_then(|s| s.on_run_refused(&e.to_string()))
                    .into_iter()
                    .collect()
            }
        }
    }

    /// Opens the desktop's native folder dialog (XDG portal) on its own thread,
    /// starting at the current export folder; the UI thread never waits for it.
    fn open_folder_dialog(&mut self, ctx: &Context) {
        if self.folder_dialog.is_some() {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let start = PathBuf::from(self.state.export_dir.trim());
        let repaint = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("scalelab-dialog".into())
            .spawn(move || {
                let mut dialog = rfd::FileDialog::new().set_title("Export folder");
                if start.is_dir() {
                    dialog = dialog.set_directory(&start);
                }
                let _ = tx.send(dialog.pick_folder());
                repaint.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.folder_dialog = Some(rx);
                self.info("Choose the export folder in the dialog…");
            }
            Err(e) => self.error(format!("Cannot open the folder dialog: {e}")),
        }
    }

    fn poll_folder_dialog(&mut self, ctx: &Context) {
        let Some(rx) = &self.folder_dialog else {
            return;
        };
        match rx.try_recv() {
            Ok(Some(dir)) => {
                self.state.export_dir = dir.display().to_string();
                self.info(format!(
                    "Exports and screenshots now go to {}.",
                    dir.display()
                ));
                self.folder_dialog = None;
            }
            Ok(None) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.error(
                    "No folder chosen. (Without an XDG desktop portal no dialog can open: \
                     type the folder instead.)",
                );
                self.folder_dialog = None;
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {
                ctx.request_repaint_after(Duration::from_millis(200));
            }
        }
    }

    fn export(&mut self, f: ExportFormat) {
        let rows = self.state.history.rows();
        let path = self.export_path(f.extension());
        let result = f.render(&rows).and_then(|text| {
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
        match result {
            Ok(()) => self.info(format!(
                "Saved {} run(s) as {} to {}",
                rows.len(),
                f.label(),
                path.display()
            )),
            Err(e) => self.error(format!("Export failed: {e}")),
        }
    }

    /// `<export folder>/scalelab-YYYYMMDD-HHMMSS.<ext>`.
    fn export_path(&self, ext: &str) -> PathBuf {
        let dir = super::expand_home(&self.state.export_dir);
        dir.join(format!("scalelab-{}.{ext}", super::timestamp()))
    }

    fn screenshot_done(&mut self, result: Result<PathBuf, String>) -> Vec<Command> {
        match &result {
            Ok(p) => self.info(format!("Saved a screenshot to {}", p.display())),
            Err(e) => self.error(format!("Screenshot failed: {e}")),
        }
        self.script
            .as_mut()
            .and_then(|s| s.on_screenshot(result))
            .into_iter()
            .collect()
    }

    fn finish_script(&mut self, mut outcome: Result<(), String>, ctx: &Context) {
        let Some(script) = &self.script else {
            return;
        };
        if let Some(path) = &script.config.report {
            let json = ExportFormat::Json.render(&self.state.history.rows());
            if let Err(e) =
                json.and_then(|j| std::fs::write(path, j + "\n").map_err(|e| e.to_string()))
            {
                let msg = format!("cannot write the report to {}: {e}", path.display());
                outcome = outcome.and(Err(msg));
            }
        }
        if let Some(path) = &script.config.frame_stats {
            let json = serde_json::to_string_pretty(&self.frames.summary())
                .expect("frame stats serialize");
            if let Err(e) = std::fs::write(path, json + "\n") {
                let msg = format!("cannot write the frame stats to {}: {e}", path.display());
                outcome = outcome.and(Err(msg));
            }
        }
        let exit = script.config.exit;
        match &outcome {
            Ok(()) => self.info("Scripted runs done."),
            Err(e) => self.error(format!("Scripted mode failed: {e}")),
        }
        if let Some(slot) = &self.outcome {
            *slot.lock().expect("outcome lock") = Some(outcome);
        }
        if exit {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: true,
        });
    }
}

impl eframe::App for ScalelabApp {
    fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
        if self.is_running()
            && let Some(s) = frame.info().cpu_usage
        {
            self.frames.record_frame_cpu(s);
        }
        self.ui_body(ui);
    }

    /// The panels' colour: they paint no background of their own (see `draw`).
    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.persist {
            storage.set_string(STATE_KEY, self.state.to_stored());
        }
    }

    fn persist_egui_memory(&self) -> bool {
        self.persist
    }
}
