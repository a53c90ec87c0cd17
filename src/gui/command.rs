//! What the panels, the shortcuts and the scripted mode ask the app to do. They
//! return commands instead of acting, and the app executes them at the end of the
//! frame (the `#[must_use] Command` pattern of egui's demo app), so drawing never
//! changes the world halfway through a frame.

use std::path::PathBuf;

use crossbeam_channel::Sender;
use egui::Context;

use super::state::{ExportFormat, ThemeChoice};
use super::sweep_view::{SweepExport, SweepForm};
use crate::engine::calibrate::RunSize;
use crate::measure::compare::{CompareError, CompareProgress, CompareReport};
use crate::measure::sweep::{Progress as SweepProgress, SweepError, SweepReport};
use crate::spec::RunSpec;

/// What the panels ask for; executed at the end of the frame.
#[must_use]
#[derive(Debug, Clone)]
pub enum Command {
    Run(RunSpec),
    /// Send runs to the server at `url` from now on (asks it first).
    Attach {
        url: String,
        token: String,
    },
    /// What the server said when asked (from the attaching thread).
    Attached(Result<super::machine::Attached, String>),
    /// Run on this machine again.
    Detach,
    /// Ask the server again, and on an answer run again what failed on it.
    Retry,
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
    /// Show or hide the scaling-curves window; hiding it cancels a sweep in progress.
    ShowSweep(bool),
    /// Start the sweep the window's form describes.
    StartSweep(SweepForm),
    CancelSweep,
    /// Write the sweep's result (or copy it).
    SaveSweep(SweepExport),

    // What background work hands back, through the one `CommandSender`:
    /// The folder dialog closed, with the folder chosen (or none).
    ExportFolderChosen(Option<PathBuf>),
    /// The comparison with CPython moved on to its next step.
    CompareProgress(CompareProgress),
    /// The comparison with CPython ended.
    CompareEnded(Result<Box<CompareReport>, CompareError>),
    /// A screenshot's PNG was written (or why not).
    ScreenshotSaved(Result<PathBuf, String>),
    /// The sweep moved on to its next point.
    SweepProgress(SweepProgress),
    /// The sweep ended.
    SweepEnded(Result<Box<SweepReport>, SweepError>),
    /// A sweep export was written (or why not).
    SweepSaved(Result<PathBuf, String>),
}

/// The one way back from background threads (the folder dialog, the comparison,
/// the screenshot writer) to the UI thread: a clone of it sends a `Command`,
/// and the app executes it at the end of the next frame like any other.
#[derive(Clone)]
pub struct CommandSender {
    tx: Sender<Command>,
    ctx: Context,
}

impl CommandSender {
    /// A sender into `tx` (whose receiver the app drains every frame) that wakes `ctx`.
    pub fn new(tx: Sender<Command>, ctx: Context) -> Self {
        Self { tx, ctx }
    }

    /// Hands `command` to the UI thread and asks for a frame (ignored once the app has gone).
    pub fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            self.ctx.request_repaint();
        }
    }
}
