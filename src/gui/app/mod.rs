//! The app: persisted state, the live run, and the commands the panels return,
//! executed at the end of the frame so drawing never changes the world halfway.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::{Color32, Context, Key, Modifiers, RichText, Ui};

use crate::engine::calibrate::Calibration;
use crate::engine::{self, EngineOptions, RunHandle};
use crate::metrics::cores::core_count;
use crate::report::event::Event;
use crate::report::{RunReport, RunStatus};
use crate::spec::RunSpec;

mod draw;
mod execute;

pub use super::command::Command;
use super::command::CommandSender;
use super::compare_view::{self, CompareJob};
use super::controls::{self, PanelContext, SpecForm};
use super::frame_stats::FrameStats;
use super::history;
use super::live::{self, LiveRun};
use super::machine::{Attached, CoreWatch, MachineForm};
use super::screenshot::Screenshotter;
use super::scripted::Script;
pub use super::state::{AppState, ExportFormat, ThemeChoice};
use super::state_log::StateLog;
use super::sweep_view::{self, SweepForm, SweepJob};

/// Key of the app's state in eframe's storage.
pub const STATE_KEY: &str = "scalelab_state";
/// Frame period of the scripted mode's own steps (warm-up, settling), which
/// happen while no run is live.
const SCRIPT_REPAINT: Duration = Duration::from_millis(16);
/// Most engine events folded per frame, so an event storm cannot stretch a frame.
const MAX_EVENTS_PER_FRAME: usize = 20_000;

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
    sweep: Option<SweepJob>,
    sweep_open: bool,
    /// The scaling-curves window's settings, made when it first opens.
    sweep_form: Option<SweepForm>,
    /// The folder dialog is open on its own thread (its answer comes as a command).
    folder_dialog_open: bool,
    /// The *Machine* control's fields, and the server runs go to, if any.
    machine: MachineForm,
    attached: Option<Attached>,
    /// The attached server's cores, watched while idle (the Machine bar).
    server_cores: Option<CoreWatch>,
    /// The last run sent to the server, when it failed there (the server went
    /// away, or could not be reached): Retry asks the server again and reruns it.
    retry: Option<RunSpec>,
    /// Retry is asking the server: the run goes once it answers.
    retry_pending: bool,
    /// Where background work sends its commands (see `CommandSender`), and
    /// where the app drains them, once a frame.
    background_tx: crossbeam_channel::Sender<Command>,
    background_rx: crossbeam_channel::Receiver<Command>,
}

impl ScalelabApp {
    /// An app with the given state; runs use `options` (the GUI nices its workers).
    pub fn new(state: AppState, options: EngineOptions) -> Self {
        let (background_tx, background_rx) = crossbeam_channel::unbounded();
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
            sweep: None,
            sweep_open: false,
            sweep_form: None,
            folder_dialog_open: false,
            machine: MachineForm::default(),
            attached: None,
            server_cores: None,
            retry: None,
            retry_pending: false,
            background_tx,
            background_rx,
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

    /// The app with runs going to `attached` from the start.
    pub fn attached_to(mut self, attached: Attached, ctx: &Context) -> Self {
        self.machine.use_server = true;
        self.machine.url = attached.remote.url().to_string();
        self.attach(attached, ctx);
        self
    }

    /// The server runs go to, if any.
    pub fn attached(&self) -> Option<&Attached> {
        self.attached.as_ref()
    }

    /// What the Machine bar last heard of the attached server's cores.
    pub fn server_cores(&self) -> Option<super::machine::Seen> {
        self.server_cores.as_ref().map(CoreWatch::seen)
    }

    /// The run Retry would send to the server again, if one failed there.
    pub fn retry_spec(&self) -> Option<&RunSpec> {
        self.retry.as_ref()
    }

    /// Cores of the machine runs go to.
    fn run_cores(&self) -> usize {
        self.attached
            .as_ref()
            .map_or(self.cores, |a| a.machine.cores)
    }

    fn attach(&mut self, attached: Attached, ctx: &Context) {
        ctx.send_viewport_cmd(egui::ViewportCommand::Title(format!(
            "scalelab — {}",
            attached.machine.host
        )));
        self.info(format!("Runs now go to {}.", attached.describe()));
        self.server_cores = Some(CoreWatch::start(attached.remote.clone()));
        self.attached = Some(attached);
    }

    /// True while the comparison with CPython is measuring.
    pub fn is_comparing(&self) -> bool {
        self.compare.as_ref().is_some_and(CompareJob::is_running)
    }

    /// True while a sweep is measuring.
    pub fn is_sweeping(&self) -> bool {
        self.sweep.as_ref().is_some_and(SweepJob::is_running)
    }

    /// The sweep, running or ended.
    pub fn sweep_job(&self) -> Option<&SweepJob> {
        self.sweep.as_ref()
    }

    /// The scaling-curves window's settings (once it has been opened).
    pub fn sweep_form_mut(&mut self) -> Option<&mut SweepForm> {
        self.sweep_form.as_mut()
    }

    /// The comparison with CPython, running or ended.
    pub fn compare_job(&self) -> Option<&CompareJob> {
        self.compare.as_ref()
    }

    /// Starts a comparison of `cfg` and shows its window, as the button does
    /// with `CompareJob::config` (tests start smaller ones).
    pub fn start_compare(&mut self, cfg: crate::measure::compare::CompareConfig, ctx: &Context) {
        if self.is_running() || self.is_comparing() {
            self.error("Something is already measuring; wait for it to end.");
            return;
        }
        let (tasks, numbers) = (cfg.tasks, cfg.numbers);
        self.compare = Some(CompareJob::start(cfg, &self.sender(ctx)));
        self.compare_open = true;
        self.info(format!(
            "Comparing with CPython at {tasks} × {}: every backend, then the chapter's scripts…",
            crate::report::export::group_thousands(numbers)
        ));
    }

    /// The way back to this app for work done on other threads.
    fn sender(&self, ctx: &Context) -> CommandSender {
        CommandSender::new(self.background_tx.clone(), ctx.clone())
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
        } else if self.is_sweeping() {
            // A sweep's runs have no live charts: its progress comes as
            // commands, and only its ETA ticks on between them. At the
            // scripted mode's 60 Hz, a software renderer took about a core from
            // the sweep's runs, and threads x 2 showed 1.3x instead of 1.9x.
            ctx.request_repaint_after(Duration::from_millis(250));
        } else if self.script.as_ref().is_some_and(Script::active) {
            ctx.request_repaint_after(SCRIPT_REPAINT);
        } else if self.server_cores.is_some() && !self.is_comparing() {
            // The server's cores in the Machine bar: once a second is enough
            // to see whether it is busy, and costs this machine little.
            ctx.request_repaint_after(Duration::from_secs(1));
        }
        if self.theme_applied != Some(self.state.theme) {
            ctx.set_theme(self.state.theme.preference());
            self.theme_applied = Some(self.state.theme);
        }

        if self.is_comparing() {
            // Its elapsed time and ETA tick on between progress messages.
            ctx.request_repaint_after(Duration::from_millis(250));
        }
        let mut commands = self.drain_events();
        commands.extend(self.background_rx.try_iter());
        commands.extend(self.shortcuts(&ctx));
        let busy = self.run.is_some() || self.is_sweeping();
        if let Some(c) = self.script.as_mut().and_then(|s| s.step(busy)) {
            commands.push(c);
        }
        commands.extend(self.draw(ui));
        self.log_shown_state(&ctx);
        if let Some(result) = self.shots.update(&ctx, &self.sender(&ctx)) {
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
        // A run that failed on a server can be sent again once it answers.
        self.retry =
            (self.attached.is_some() && status == RunStatus::Failed).then(|| report.spec.clone());
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
