//! Executing commands: starting and cancelling runs, the history, exports,
//! screenshots, the folder dialog, the comparison with CPython, the scripted
//! mode's end. Nothing here draws.

use super::*;

impl ScalelabApp {
    pub(super) fn execute(&mut self, command: Command, ctx: &Context) -> Vec<Command> {
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
                let cfg = crate::measure::compare::CompareConfig {
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
            Command::ExportFolderChosen(dir) => self.folder_chosen(dir),
            Command::CompareProgress(p) => {
                if let Some(job) = &mut self.compare {
                    job.on_progress(p);
                }
            }
            Command::CompareEnded(result) => {
                if let Some(job) = &mut self.compare {
                    let ended = job.on_ended(result);
                    self.notice = Some(Notice {
                        text: ended.text,
                        is_error: ended.is_error,
                    });
                }
            }
            Command::ScreenshotSaved(result) => {
                self.shots.saved();
                return self.screenshot_done(result);
            }
            Command::ShowSweep(open) => {
                self.sweep_open = open;
                if open && self.sweep_form.is_none() {
                    let ns = self.calibration.map(|c| c.ns_per_number);
                    self.sweep_form = Some(SweepForm::new(self.run_cores() as u32, ns));
                }
                if !open && self.is_sweeping() {
                    return vec![Command::CancelSweep];
                }
            }
            Command::StartSweep(form) => {
                self.start_sweep(&form, ctx);
                self.sweep_form = Some(form);
            }
            Command::CancelSweep => {
                if let Some(job) = &self.sweep
                    && job.is_running()
                {
                    job.cancel();
                    self.info("Cancelling the sweep…");
                }
            }
            Command::SweepProgress(p) => {
                if let Some(job) = &mut self.sweep {
                    job.on_progress(p);
                }
            }
            Command::SweepEnded(result) => {
                let failure = result.as_ref().err().map(ToString::to_string);
                if let Some(job) = &mut self.sweep {
                    let (text, is_error) = job.on_ended(result);
                    self.notice = Some(Notice { text, is_error });
                }
                if let Some(c) = self.script.as_mut().and_then(|s| s.on_sweep_ended(failure)) {
                    return vec![c];
                }
            }
            Command::SaveSweep(what) => self.save_sweep(what, ctx),
            Command::SweepSaved(result) => match result {
                Ok(p) => self.info(format!("Saved the sweep to {}", p.display())),
                Err(e) => self.error(format!("Cannot save the sweep: {e}")),
            },
            Command::Attach { url, token } => {
                if self.is_running() || self.machine.probing {
                    return Vec::new();
                }
                self.machine.probing = true;
                let back = self.sender(ctx);
                let spawned = std::thread::Builder::new()
                    .name("scalelab-attach".into())
                    .spawn(move || back.send(Command::Attached(Attached::probe(&url, &token))));
                if let Err(e) = spawned {
                    self.machine.probing = false;
                    self.error(format!("Cannot attach: {e}"));
                }
            }
            Command::Attached(result) => {
                self.machine.probing = false;
                let retrying = std::mem::take(&mut self.retry_pending);
                match result {
                    Ok(a) => {
                        self.attach(a, ctx);
                        if retrying && let Some(spec) = self.retry.take() {
                            return self.start(spec, ctx);
                        }
                    }
                    // Retry stays offered: the server may come back.
                    Err(e) => self.error(format!("Cannot attach to the server: {e}")),
                }
            }
            Command::Retry => {
                if self.retry.is_none() || self.is_running() || self.machine.probing {
                    return Vec::new();
                }
                let Some(a) = &self.attached else {
                    return Vec::new();
                };
                let (url, token) = (a.remote.url().to_string(), a.remote.token().to_string());
                self.retry_pending = true;
                self.info(format!("Asking {url} again…"));
                return vec![Command::Attach { url, token }];
            }
            Command::Detach => {
                if !self.is_running() && self.attached.take().is_some() {
                    self.retry = None;
                    self.server_cores = None;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Title("scalelab".into()));
                    self.info("Runs go to this machine again.");
                }
            }
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
        if self.machine.use_server && self.attached.is_none() {
            self.error("Attach to the server first (Machine, at the top), or choose this machine.");
            return Vec::new();
        }
        let started = match &self.attached {
            Some(a) => {
                crate::server::client::start(a.remote.clone(), spec.clone(), &a.machine, Some(wake))
            }
            None => engine::start_with_waker(spec.clone(), self.options.clone(), Some(wake)),
        };
        match started {
            Ok(handle) => {
                self.run = Some(handle);
                self.retry = None;
                self.runs_started += 1;
                // The form shows what runs (the scripted mode's runs included).
                self.state.form = SpecForm::from_spec(&spec);
                self.live = Some(LiveRun::new(spec.clone(), self.run_cores()));
                let place = match &self.attached {
                    Some(a) => format!(" on {}", a.machine.host),
                    None => String::new(),
                };
                self.info(format!(
                    "Running {} × {} workers{place}…",
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
        if self.folder_dialog_open {
            return;
        }
        let start = PathBuf::from(self.state.export_dir.trim());
        let back = self.sender(ctx);
        let spawned = std::thread::Builder::new()
            .name("scalelab-dialog".into())
            .spawn(move || {
                let mut dialog = rfd::FileDialog::new().set_title("Export folder");
                if start.is_dir() {
                    dialog = dialog.set_directory(&start);
                }
                back.send(Command::ExportFolderChosen(dialog.pick_folder()));
            });
        match spawned {
            Ok(_) => {
                self.folder_dialog_open = true;
                self.info("Choose the export folder in the dialog…");
            }
            Err(e) => self.error(format!("Cannot open the folder dialog: {e}")),
        }
    }

    fn folder_chosen(&mut self, dir: Option<PathBuf>) {
        self.folder_dialog_open = false;
        match dir {
            Some(dir) => {
                self.state.export_dir = dir.display().to_string();
                self.info(format!(
                    "Exports and screenshots now go to {}.",
                    dir.display()
                ));
            }
            None => self.error(
                "No folder chosen. (Without an XDG desktop portal no dialog can open: \
                 type the folder instead.)",
            ),
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
    /// Starts the sweep `form` describes (nothing else may measure meanwhile).
    pub fn start_sweep(&mut self, form: &SweepForm, ctx: &Context) {
        if self.is_running() || self.is_comparing() || self.is_sweeping() {
            self.error("Something is already measuring; wait for it to end.");
            return;
        }
        if self.machine.use_server && self.attached.is_none() {
            self.error("Attach to the server first (Machine, at the top), or choose this machine.");
            return;
        }
        match form.config(self.options.clone()) {
            Ok(mut cfg) => {
                // Attached: every run of the sweep goes to the server, one at a time.
                cfg.target = self.attached.as_ref().map(Attached::sweep_target);
                let place = cfg
                    .target
                    .as_ref()
                    .map_or(String::new(), |t| format!(" on {}", t.host));
                self.sweep = Some(SweepJob::start(cfg, &self.sender(ctx)));
                self.sweep_open = true;
                self.info(format!(
                    "Sweeping{place}: every backend at every worker count, one run at a time…"
                ));
            }
            Err(e) => self.error(format!("Cannot sweep: {e}")),
        }
    }

    /// Writes (or copies) the sweep's result. Files are written on a thread
    /// of their own: drawing the chart takes a tenth of a second.
    fn save_sweep(&mut self, what: sweep_view::SweepExport, ctx: &Context) {
        use crate::measure::sweep::{chart, output};
        use sweep_view::SweepExport;
        let Some(report) = self.sweep.as_ref().and_then(SweepJob::report).cloned() else {
            return;
        };
        if what == SweepExport::CopyMarkdown {
            ctx.copy_text(output::to_markdown(&report));
            self.info("Copied the sweep as Markdown.");
            return;
        }
        let ext = match what {
            SweepExport::Png => "png",
            SweepExport::Csv => "csv",
            _ => "json",
        };
        let path = self.export_path(&format!("sweep.{ext}"));
        let back = self.sender(ctx);
        let spawned = std::thread::Builder::new()
            .name("scalelab-sweep-save".into())
            .spawn(move || {
                // Written beside it under a hidden name, then renamed: the file
                // never exists half-written.
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let part = path.with_file_name(format!(".part-{name}"));
                let written = match what {
                    SweepExport::Png => chart::write_png(&report, &part),
                    SweepExport::Csv => output::to_csv(&report)
                        .and_then(|t| std::fs::write(&part, t).map_err(|e| e.to_string())),
                    _ => std::fs::write(&part, output::to_json(&report)).map_err(|e| e.to_string()),
                }
                .and_then(|()| std::fs::rename(&part, &path).map_err(|e| e.to_string()));
                if written.is_err() {
                    let _ = std::fs::remove_file(&part);
                }
                back.send(Command::SweepSaved(written.map(|()| path)));
            });
        if let Err(e) = spawned {
            self.error(format!("Cannot save the sweep: {e}"));
        }
    }

    pub(super) fn export_path(&self, ext: &str) -> PathBuf {
        let dir = crate::gui::expand_home(&self.state.export_dir);
        dir.join(format!("scalelab-{}.{ext}", crate::gui::timestamp()))
    }

    pub(super) fn screenshot_done(&mut self, result: Result<PathBuf, String>) -> Vec<Command> {
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

    pub(super) fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: false,
        });
    }

    pub(super) fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error: true,
        });
    }
}
