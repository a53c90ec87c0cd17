//! Command-line definitions and what each subcommand does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use scalelab::bench::{self, BenchConfig};
use scalelab::engine::event::Event;
use scalelab::engine::spec::{BackendKind, RunSpec, WorkloadKind};
use scalelab::engine::{self, EngineOptions};
use scalelab::gui;
use scalelab::gui::scripted::{ScriptConfig, check_writable, parse_run_list};
use scalelab::report::{RunReport, RunStatus};

#[derive(Parser, Debug)]
#[command(
    name = "scalelab",
    version,
    about = "See how concurrency architectures scale."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the desktop app (the default).
    Gui(GuiArgs),
    /// Run one experiment and print its result like `time`.
    Run(RunArgs),
    /// Measure the kernel and how the backends scale on this machine.
    Bench(BenchArgs),
    /// Serve tasks on stdin/stdout for a `processes` run (started by scalelab itself).
    #[command(hide = true)]
    Worker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// What runs the tasks.
    #[arg(long, value_enum, default_value_t = BackendKind::Threads)]
    pub backend: BackendKind,
    /// What each task does.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Cpu)]
    pub workload: WorkloadKind,
    /// Workers (threads or processes), 1 to 1024.
    #[arg(long, default_value_t = 8)]
    pub workers: u32,
    /// Tasks in the run.
    #[arg(long, default_value_t = 8)]
    pub tasks: u32,
    /// Random integers each task sums.
    #[arg(long, default_value_t = 1_000_000)]
    pub numbers: u64,
    /// Seed of the run; the same seed gives the same sums on every backend.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl SpecArgs {
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            backend: self.backend,
            workload: self.workload,
            workers: self.workers,
            tasks: self.tasks,
            numbers_per_task: self.numbers,
            seed: self.seed,
        }
    }
}

#[derive(Args, Debug, Default)]
pub struct GuiArgs {
    /// Scripted mode: runs to perform one after another, as BACKEND:WORKERS,...
    /// (e.g. `threads:8,processes:8`).
    #[arg(long, value_name = "LIST")]
    pub run: Option<String>,
    /// Tasks of each scripted run.
    #[arg(long, default_value_t = 8, requires = "run")]
    pub tasks: u32,
    /// Random integers each task of a scripted run sums.
    #[arg(long, default_value_t = 1_000_000, requires = "run")]
    pub numbers: u64,
    /// Seed of the scripted runs.
    #[arg(long, default_value_t = 42, requires = "run")]
    pub seed: u64,
    /// Save a PNG of the window once the scripted runs are done.
    #[arg(long, value_name = "PATH")]
    pub screenshot: Option<PathBuf>,
    /// Close the window once the scripted runs (and screenshot) are done.
    #[arg(long)]
    pub exit: bool,
    /// Write the app's frame timings as JSON here when the script is done.
    #[arg(long, value_name = "PATH")]
    pub frame_stats: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Wall time of the 1-worker scaling runs, in seconds.
    #[arg(long, default_value_t = 2.5)]
    pub seconds: f64,
    /// Numbers per kernel timing.
    #[arg(long, default_value_t = 200_000_000)]
    pub kernel_numbers: u64,
}

pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Gui(GuiArgs::default())) {
        Command::Gui(args) => gui(&args),
        Command::Run(args) => run(&args),
        Command::Bench(args) => bench(&args),
        Command::Worker => worker(),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("scalelab: {msg}");
    ExitCode::from(2)
}

fn gui(args: &GuiArgs) -> ExitCode {
    let options = EngineOptions {
        worker_nice: gui::GUI_WORKER_NICE,
        ..EngineOptions::default()
    };
    let scripted =
        args.run.is_some() || args.screenshot.is_some() || args.exit || args.frame_stats.is_some();
    let script = if scripted {
        let base = RunSpec {
            tasks: args.tasks,
            numbers_per_task: args.numbers,
            seed: args.seed,
            ..RunSpec::default()
        };
        let runs = match args.run.as_deref().map(|l| parse_run_list(l, &base)) {
            Some(Ok(runs)) => runs,
            Some(Err(e)) => return fail(e),
            None => Vec::new(),
        };
        for (path, what) in [
            (&args.screenshot, "screenshot"),
            (&args.frame_stats, "frame stats"),
        ] {
            if let Some(p) = path
                && let Err(e) = check_writable(p, what)
            {
                return fail(e);
            }
        }
        Some(ScriptConfig {
            runs,
            screenshot: args.screenshot.clone(),
            frame_stats: args.frame_stats.clone(),
            exit: args.exit,
        })
    } else {
        None
    };
    match gui::launch(gui::LaunchConfig { script, options }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scalelab: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let spec = args.spec.spec();
    let handle = match engine::start(spec, EngineOptions::default()) {
        Ok(h) => h,
        Err(e) => return fail(format!("invalid run: {e}")),
    };
    let mut report = None;
    for e in handle.events.iter() {
        match e {
            Event::WorkerLost {
                reason, requeued, ..
            } if args.format == Format::Text => {
                let again = requeued.map_or(String::new(), |t| format!("; task {t} re-queued"));
                eprintln!("scalelab: {reason}{again}");
            }
            Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => report = Some(*r),
            _ => {}
        }
    }
    handle.join();
    let report = report.expect("the engine always ends with a report");
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string(&report).expect("reports always serialize")
        ),
        Format::Text => print_text(&report),
    }
    match report.status {
        RunStatus::Ok => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn print_text(r: &RunReport) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} x {} numbers on {} with {} worker(s), seed {}",
        r.spec.tasks, r.spec.numbers_per_task, r.spec.backend, r.spec.workers, r.spec.seed
    );
    for (i, s) in r.sums.iter().enumerate() {
        match s {
            Some(s) => _ = writeln!(out, "task {i}: {s}"),
            None => _ = writeln!(out, "task {i}: -"),
        }
    }
    let _ = writeln!(out, "total: {}", r.total);
    if let Some(why) = &r.reason {
        let _ = writeln!(out, "{}: {why}", r.status.name());
    }
    let _ = writeln!(out, "{}", r.time_line());
}

fn bench(args: &BenchArgs) -> ExitCode {
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        return fail("--seconds must be between 0 and 600");
    }
    if args.kernel_numbers == 0 {
        return fail("--kernel-numbers must be at least 1");
    }
    let cfg = BenchConfig {
        scaling_run_s: args.seconds,
        kernel_numbers: args.kernel_numbers,
        ..BenchConfig::default()
    };
    match bench::run(&cfg, |what| eprintln!("measuring {what}")) {
        Ok(r) => {
            match args.format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&r).expect("serializes"))
                }
                Format::Text => print!("{}", r.to_markdown()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn worker() -> ExitCode {
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    match scalelab::backends::process_worker::serve(&mut input, &mut output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("worker: {e}")),
    }
}
