//! Scripted mode (`scalelab gui --run threads:8,processes:8 --screenshot F --exit`):
//! the real window performs a list of runs, shows the comparison, saves a
//! screenshot and exits. The `--run` parser lives here, free of any UI.

use std::path::{Path, PathBuf};

use crate::report::{RunReport, RunStatus};
use crate::spec::{BackendKind, RunSpec};

use super::command::Command;

/// Frames to let the window settle (plots fit their bounds) before the screenshot.
const SETTLE_FRAMES: u32 = 12;
/// Frames between the end of one run and the start of the next: the window draws
/// the ended run with the cores free, as a user sees it, before the next run's
/// workers take them (and the next run starts on a quiet machine).
const GAP_FRAMES: u32 = 6;
/// Frames drawn before the first run, as a user's window is open before they click Run:
/// the renderer's one-time start-up work (shader compilation, glyph atlas) happens here.
const WARM_UP_FRAMES: u32 = 30;

/// Parses `threads:8,processes:8` into specs that share `base`'s other fields.
/// Every spec is validated, so `threads:0` is refused here, before a window opens.
pub fn parse_run_list(list: &str, base: &RunSpec) -> Result<Vec<RunSpec>, String> {
    let known = || {
        BackendKind::ALL
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut runs = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("--run `{list}` has an empty item"));
        }
        let Some((name, workers)) = item.split_once(':') else {
            return Err(format!(
                "--run item `{item}` needs a worker count, as in `{item}:8`"
            ));
        };
        let backend = BackendKind::from_name(name.trim()).ok_or_else(|| {
            format!(
                "--run item `{item}`: unknown backend `{}` (known: {})",
                name.trim(),
                known()
            )
        })?;
        let workers: u32 = workers.trim().parse().map_err(|_| {
            format!("--run item `{item}`: `{workers}` is not a whole number of workers")
        })?;
        let spec = RunSpec {
            backend,
            workers,
            ..base.clone()
        };
        if let Some(p) = spec.problems().into_iter().next() {
            return Err(format!("--run item `{item}`: {p}"));
        }
        runs.push(spec);
    }
    Ok(runs)
}

/// Checks that a file can be created at `path` (its folder exists and is writable),
/// so a bad `--screenshot` fails before any run starts.
pub fn check_writable(path: &Path, what: &str) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write the {what} to {}: folder {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "cannot write the {what} to {}: it is a folder",
            path.display()
        ));
    }
    let probe = dir.join(format!(".scalelab-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot write the {what} to {}: {e}",
            path.display()
        )),
    }
}

/// What the scripted mode was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ScriptConfig {
    pub runs: Vec<RunSpec>,
    pub screenshot: Option<PathBuf>,
    pub frame_stats: Option<PathBuf>,
    /// Where the history goes as JSON (the same as *Save JSON*) once done.
    pub report: Option<PathBuf>,
    /// Where each state the window shows is logged with its time (`--state-log`).
    pub state_log: Option<PathBuf>,
    /// A run cancelled from the window does not fail the script.
    pub allow_cancel: bool,
    /// The live refresh, when not the default.
    pub refresh: Option<super::live::Refresh>,
    /// Close the window once done.
    pub exit: bool,
    /// After the runs, sweep this in the scaling-curves window (`--sweep`).
    pub sweep: Option<super::sweep_view::SweepForm>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    WarmUp(u32),
    Runs,
    /// Open the sweep window, then start the sweep, then wait for its end.
    SweepOpen,
    SweepStart,
    SweepWait,
    Settle(u32),
    AwaitScreenshot,
    Done,
}

/// The script's progress; it asks the app for things by returning commands.
#[derive(Debug)]
pub struct Script {
    pub config: ScriptConfig,
    started: usize,
    phase: Phase,
    /// Frames still to wait before the next run starts.
    gap: u32,
    /// Set once: `Ok` when everything was done, or why it failed.
    pub outcome: Option<Result<(), String>>,
}

impl Script {
    pub fn new(config: ScriptConfig) -> Self {
        Self {
            config,
            started: 0,
            phase: Phase::WarmUp(WARM_UP_FRAMES),
            gap: 0,
            outcome: None,
        }
    }

    /// True until the script has finished (or failed).
    pub fn active(&self) -> bool {
        self.phase != Phase::Done
    }

    /// Called once a frame: the next thing to do, if any. `run_in_progress`
    /// covers a sweep too.
    pub fn step(&mut self, run_in_progress: bool) -> Option<Command> {
        match self.phase {
            Phase::WarmUp(0) => {
                self.phase = Phase::Runs;
                self.step(run_in_progress)
            }
            Phase::WarmUp(n) => {
                self.phase = Phase::WarmUp(n - 1);
                None
            }
            Phase::Runs if run_in_progress => None,
            Phase::Runs if self.gap > 0 => {
                self.gap -= 1;
                None
            }
            Phase::Runs => match self.config.runs.get(self.started) {
                Some(spec) => {
                    self.started += 1;
                    Some(Command::Run(spec.clone()))
                }
                None if self.config.sweep.is_some() => {
                    self.phase = Phase::SweepOpen;
                    None
                }
                None => {
                    self.phase = Phase::Settle(SETTLE_FRAMES);
                    None
                }
            },
            Phase::SweepOpen => {
                self.phase = Phase::SweepStart;
                Some(Command::ShowSweep(true))
            }
            Phase::SweepStart => {
                self.phase = Phase::SweepWait;
                self.config.sweep.clone().map(Command::StartSweep)
            }
            Phase::SweepWait if run_in_progress => None,
            Phase::SweepWait => {
                self.phase = Phase::Settle(SETTLE_FRAMES);
                None
            }
            Phase::Settle(0) => match self.config.screenshot.clone() {
                Some(path) => {
                    self.phase = Phase::AwaitScreenshot;
                    Some(Command::Screenshot(path))
                }
                None => Some(self.finish(Ok(()))),
            },
            Phase::Settle(n) => {
                self.phase = Phase::Settle(n - 1);
                None
            }
            Phase::AwaitScreenshot | Phase::Done => None,
        }
    }

    /// A run of the script ended: anything but success fails the script.
    pub fn on_run_ended(&mut self, report: &RunReport) -> Option<Command> {
        self.gap = GAP_FRAMES;
        if self.phase != Phase::Runs
            || report.status == RunStatus::Ok
            || (report.status == RunStatus::Cancelled && self.config.allow_cancel)
        {
            return None;
        }
        let why = report.reason.as_deref().unwrap_or("no reason given");
        Some(self.finish(Err(format!(
            "run {} ({} with {} workers) {}: {why}",
            self.started,
            report.spec.backend,
            report.spec.workers,
            report.status.name()
        ))))
    }

    /// The sweep ended: anything but a report fails the script.
    pub fn on_sweep_ended(&mut self, failure: Option<String>) -> Option<Command> {
        let why = failure?;
        (self.phase == Phase::SweepWait).then(|| self.finish(Err(format!("the sweep: {why}"))))
    }

    /// A run of the script could not start.
    pub fn on_run_refused(&mut self, why: &str) -> Option<Command> {
        (self.phase == Phase::Runs)
            .then(|| self.finish(Err(format!("run {} could not start: {why}", self.started))))
    }

    /// The screenshot was written (or not).
    pub fn on_screenshot(&mut self, result: Result<PathBuf, String>) -> Option<Command> {
        (self.phase == Phase::AwaitScreenshot).then(|| self.finish(result.map(|_| ())))
    }

    fn finish(&mut self, outcome: Result<(), String>) -> Command {
        self.phase = Phase::Done;
        Command::FinishScript(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lists_parse_in_order() {
        let base = RunSpec {
            tasks: 4,
            ..RunSpec::default()
        };
        let runs = parse_run_list("threads:8, processes:2", &base).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].backend, runs[0].workers, runs[0].tasks),
            (BackendKind::Threads, 8, 4)
        );
        assert_eq!(
            (runs[1].backend, runs[1].workers),
            (BackendKind::Processes, 2)
        );
    }

    #[test]
    fn bad_run_lists_say_what_is_wrong() {
        let base = RunSpec::default();
        let cases = [
            ("threads:0", "workers: must be at least 1"),
            ("threads:2000", "limit of 1024"),
            (
                "nosuch:3",
                "unknown backend `nosuch` (known: threads, gil, processes, eventloop, bus)",
            ),
            ("threads", "needs a worker count"),
            ("threads:x", "`x` is not a whole number"),
            ("threads:2,,processes:2", "empty item"),
            ("", "empty item"),
        ];
        for (list, message) in cases {
            let err = parse_run_list(list, &base).unwrap_err();
            assert!(err.contains(message), "{list}: {err}");
        }
    }

    #[test]
    fn screenshot_folders_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_writable(&dir.path().join("a.png"), "screenshot").is_ok());
        let err = check_writable(&dir.path().join("missing/a.png"), "screenshot").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(check_writable(dir.path(), "screenshot").is_err());
    }

    #[test]
    fn a_cancelled_run_fails_the_script_unless_cancels_are_allowed() {
        let report = |status| RunReport {
            status,
            reason: Some("cancelled by the user".into()),
            ..crate::report::tests_support::report(RunSpec::default())
        };
        for (allow, fails) in [(false, true), (true, false)] {
            let mut s = Script::new(ScriptConfig {
                runs: parse_run_list("threads:1,threads:1", &RunSpec::default()).unwrap(),
                allow_cancel: allow,
                ..ScriptConfig::default()
            });
            for _ in 0..=WARM_UP_FRAMES {
                let _ = s.step(false);
            }
            let c = s.on_run_ended(&report(RunStatus::Cancelled));
            assert_eq!(
                matches!(c, Some(Command::FinishScript(Err(_)))),
                fails,
                "allow_cancel {allow}: {c:?}"
            );
            // A failed run fails the script either way.
            if !fails {
                assert!(matches!(
                    s.on_run_ended(&report(RunStatus::Failed)),
                    Some(Command::FinishScript(Err(_)))
                ));
            }
        }
    }

    #[test]
    fn a_scripted_sweep_opens_the_window_starts_waits_then_screenshots() {
        let form = crate::gui::sweep_view::SweepForm::new(2, None);
        let mut s = Script::new(ScriptConfig {
            screenshot: Some("x.png".into()),
            sweep: Some(form.clone()),
            ..ScriptConfig::default()
        });
        let mut seen = Vec::new();
        for _ in 0..=WARM_UP_FRAMES + 2 {
            seen.extend(s.step(false));
        }
        assert!(matches!(seen[0], Command::ShowSweep(true)), "{seen:?}");
        assert!(
            matches!(&seen[1], Command::StartSweep(f) if *f == form),
            "{seen:?}"
        );
        // While the sweep goes, nothing; a failed sweep fails the script.
        assert!(s.step(true).is_none());
        assert!(s.on_sweep_ended(None).is_none());
        let mut next = Vec::new();
        for _ in 0..=SETTLE_FRAMES + 1 {
            next.extend(s.step(false));
        }
        assert!(matches!(next[..], [Command::Screenshot(_)]), "{next:?}");

        let mut failing = Script::new(ScriptConfig {
            sweep: Some(form),
            ..ScriptConfig::default()
        });
        for _ in 0..=WARM_UP_FRAMES + 2 {
            let _ = failing.step(false);
        }
        assert!(matches!(
            failing.on_sweep_ended(Some("boom".into())),
            Some(Command::FinishScript(Err(e))) if e == "the sweep: boom"
        ));
    }

    #[test]
    fn script_runs_then_screenshots_then_finishes() {
        let mut s = Script::new(ScriptConfig {
            runs: parse_run_list("threads:1,processes:1", &RunSpec::default()).unwrap(),
            screenshot: Some("x.png".into()),
            exit: true,
            ..ScriptConfig::default()
        });
        for _ in 0..WARM_UP_FRAMES {
            assert!(s.step(false).is_none());
        }
        assert!(
            matches!(s.step(false), Some(Command::Run(r)) if r.backend == BackendKind::Threads)
        );
        assert!(s.step(true).is_none());
        // The run ended: a few frames of the ended run before the next starts.
        assert!(
            s.on_run_ended(&crate::report::tests_support::report(RunSpec::default()))
                .is_none()
        );
        for _ in 0..GAP_FRAMES {
            assert!(s.step(false).is_none(), "the next run started at once");
        }
        assert!(
            matches!(s.step(false), Some(Command::Run(r)) if r.backend == BackendKind::Processes)
        );
        let mut shot = None;
        for _ in 0..=SETTLE_FRAMES + 1 {
            if let Some(c) = s.step(false) {
                shot = Some(c);
            }
        }
        assert!(matches!(shot, Some(Command::Screenshot(_))));
        assert!(matches!(
            s.on_screenshot(Ok("x.png".into())),
            Some(Command::FinishScript(Ok(())))
        ));
        assert!(!s.active());
    }
}
