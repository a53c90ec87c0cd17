//! Command-line definitions and what each subcommand does.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use scalelab::backends::bus::{self, worker as bus_worker, worker::JoinOptions};
use scalelab::engine::{self, EngineOptions};
use scalelab::gui;
use scalelab::gui::live::Refresh;
use scalelab::gui::scripted::{ScriptConfig, check_writable, parse_run_list};
use scalelab::measure::bench::{self, BenchConfig};
use scalelab::report::event::{BusEvent, Event, join_command};
use scalelab::report::{RunReport, RunStatus};
use scalelab::spec::{BackendKind, BusParams, GilParams, IoParams, RunSpec, WorkloadKind};

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
    /// Run the chapter's experiments on scalelab's backends and in real CPython, side by side.
    Compare(CompareArgs),
    /// Sweep the worker count for several backends: speed-up, efficiency, Amdahl's law fitted.
    Sweep(SweepArgs),
    /// Many small runs back to back; then what the process still holds.
    Soak(SoakArgs),
    /// Seeded worker kills and cancels at random moments; every run must end properly.
    Faults(FaultArgs),
    /// Serve tasks: on stdin/stdout for a `processes` run (no arguments), or
    /// over the bus of a `bus` run with `--connect`.
    Worker(WorkerArgs),
    /// The engine as an HTTP service (docs/API.md): runs queue and go one at a
    /// time; every call needs the token.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: the system picks one). Beyond
    /// loopback only when named here; put TLS or an SSH tunnel in front (README).
    #[arg(long, default_value = scalelab::server::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// The token every call must present as `Authorization: Bearer TOKEN`
    /// (default: a fresh one, printed).
    #[arg(long)]
    pub token: Option<String>,
    /// Runs the history keeps; the oldest finished ones go first.
    #[arg(long, default_value_t = scalelab::server::runs::KEPT_RUNS, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub history: usize,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Join the `bus` run listening at this endpoint (as the run prints it).
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Option<String>,
    /// The run's token (default: the SCALELAB_BUS_TOKEN environment variable).
    #[arg(long, requires = "connect")]
    pub token: Option<String>,
    /// The master's CURVE public key, as its join command prints it: the bus
    /// is then encrypted and only that master can talk to this worker
    /// (default: the SCALELAB_BUS_SERVER_KEY environment variable).
    #[arg(
        long,
        requires = "connect",
        value_name = "KEY",
        allow_hyphen_values = true
    )]
    pub server_key: Option<String>,
    /// Seconds to wait for the master to accept the join.
    #[arg(long, default_value_t = 10.0, requires = "connect", value_parser = seconds_up_to::<3600>)]
    pub join_timeout: f64,
    /// Die with this process (the master that started us).
    #[arg(long, hide = true)]
    pub parent_pid: Option<u32>,
    /// Lower our scheduling priority by this much.
    #[arg(long, hide = true, default_value_t = 0)]
    pub nice: i32,
    /// Run under SCHED_IDLE (the desktop app's workers).
    #[arg(long, hide = true)]
    pub idle: bool,
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
    /// Requests each task makes (io and mixed workloads).
    #[arg(long, default_value_t = 10)]
    pub requests: u32,
    /// Milliseconds the latency service waits before answering (io and mixed).
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u32,
    /// The emulated GIL's switch interval in milliseconds (gil backend; CPython's default 5).
    #[arg(long, default_value_t = 5.0)]
    pub switch_interval_ms: f64,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Settings of the `bus` backend.
#[derive(Args, Debug, Clone)]
pub struct BusArgs {
    /// Endpoint the bus master binds; anything but loopback exposes it on purpose.
    #[arg(long, default_value = "tcp://127.0.0.1:*", value_name = "ENDPOINT")]
    pub bind: String,
    /// Token workers must present (default: a fresh one, printed).
    #[arg(long)]
    pub token: Option<String>,
    /// How many of the workers join from elsewhere instead of being started here.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub remote: u32,
    /// Bus heartbeat interval; a worker silent for 5 intervals is lost.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub heartbeat_ms: u32,
    /// Seconds without any worker connected (none joined yet, or all gone)
    /// after which the run fails with a reason; 0 waits without end.
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u32).range(0..=scalelab::spec::MAX_JOIN_TIMEOUT_S as i64))]
    pub join_timeout: u32,
    /// Percent of remote workers' results the master recomputes to catch a
    /// worker that lies (chosen at random, besides each one's first result).
    #[arg(long, default_value_t = 5, value_name = "PERCENT",
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub verify: u32,
    /// Encrypt the bus with CurveZMQ, loopback included (on by default when
    /// --bind exposes it beyond loopback); local workers use it too.
    #[arg(long, conflicts_with = "no_encrypt")]
    pub encrypt: bool,
    /// Do not encrypt, even beyond loopback (for workers without CURVE).
    #[arg(long)]
    pub no_encrypt: bool,
    /// Keep the master's key pair in this file (made when missing, mode 600),
    /// so that workers can pin its public key across runs; else one per run.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<String>,
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
            io: IoParams {
                requests: self.requests,
                latency_ms: self.latency_ms,
            },
            gil: GilParams {
                switch_interval_us: (self.switch_interval_ms * 1000.0).round() as u64,
            },
            bus: BusParams {
                bind: self.bus.bind.clone(),
                token: self.bus.token.clone(),
                remote_workers: self.bus.remote,
                heartbeat_ms: self.bus.heartbeat_ms,
                join_timeout_s: self.bus.join_timeout,
                verify_percent: self.bus.verify,
                encrypt: match (self.bus.encrypt, self.bus.no_encrypt) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                keys: self.bus.keys.clone(),
            },
        }
    }
}

#[derive(Args, Debug, Default)]
pub struct GuiArgs {
    /// Scripted mode: runs to perform one after another, as BACKEND:WORKERS,...
    /// (e.g. `threads:8,processes:8`).
    #[arg(long, value_name = "LIST")]
    pub run: Option<String>,
    /// Tasks of each scripted run (and of each point of --sweep).
    #[arg(long, default_value_t = 8)]
    pub tasks: u32,
    /// Random integers each task of a scripted run (and of --sweep) sums.
    #[arg(long, default_value_t = 1_000_000)]
    pub numbers: u64,
    /// Scripted mode: after the runs, open *Scaling curves* and sweep
    /// threads, gil and processes over 1, 2, 4, ... 2 x cores workers (3
    /// repetitions, --tasks x --numbers), then take the screenshot.
    #[arg(long)]
    pub sweep: bool,
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
    /// Write the history here when the script is done, as the JSON *Save JSON* writes.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Append a JSON line here each time the window shows a run in a new state
    /// (running, ok, cancelled, failed), with the CLOCK_MONOTONIC time at which
    /// that frame had been painted.
    #[arg(long, value_name = "PATH")]
    pub state_log: Option<PathBuf>,
    /// A scripted run cancelled from the window (Esc) does not fail the script:
    /// the next run starts.
    #[arg(long)]
    pub allow_cancel: bool,
    /// Frames per second while a run goes (the window's *refresh*; default 7).
    #[arg(long, value_name = "HZ", value_parser = ["1", "2", "5", "7", "10", "30"])]
    pub refresh: Option<String>,
    /// Send the runs to this `scalelab serve` (http://HOST:PORT) from the start,
    /// as the window's Machine control does.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The server's token (default: the SCALELAB_SERVER_TOKEN environment variable).
    #[arg(long, requires = "server")]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Run on the `scalelab serve` at this URL (http://HOST:PORT) instead of
    /// here; `--token` is then the server's token (default: the
    /// SCALELAB_SERVER_TOKEN environment variable). Prints what a local run prints.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Tasks per run (the chapter: 8).
    #[arg(long, default_value_t = 8)]
    pub tasks: u32,
    /// Numbers each CPU task sums (the chapter: 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    pub numbers: u64,
    /// Worker counts to run every backend with (default: 1, cores, 8).
    #[arg(long, value_delimiter = ',')]
    pub workers: Vec<u32>,
    /// Backends to run (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub backends: Vec<BackendKind>,
    /// Repetitions of every cell; medians and min-max are reported.
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub repeat: usize,
    /// Requests per I/O task.
    #[arg(long, default_value_t = 10)]
    pub requests: u32,
    /// Latency of each request, in ms.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u32,
    /// The CPython interpreter to run the chapter's scripts with.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Leave CPython out.
    #[arg(long)]
    pub no_python: bool,
    /// Skip the limits (kernel ceiling, start cost, cancel latency).
    #[arg(long)]
    pub no_limits: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Also draw the comparison as a PNG chart here.
    #[arg(long)]
    pub chart: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Backends to sweep, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "threads,gil,processes"
    )]
    pub backends: Vec<BackendKind>,
    /// Worker counts, comma-separated; must include 1 (default: 1, 2, 4, ...
    /// up to 2 x cores, and the cores).
    #[arg(long, value_delimiter = ',')]
    pub workers: Vec<u32>,
    /// Tasks per run (default: 2 x the largest worker count, so the work
    /// splits evenly at every point).
    #[arg(long)]
    pub tasks: Option<u32>,
    /// Numbers per task (default: sized so one worker takes about --seconds).
    #[arg(long)]
    pub numbers: Option<u64>,
    /// How long the one-worker run should take when --numbers is not given.
    #[arg(long, default_value_t = 2.0, value_parser = seconds_up_to::<600>)]
    pub seconds: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Repetitions of every point; medians and min-max are reported.
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub repeat: usize,
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Also draw the sweep as a PNG chart here.
    #[arg(long)]
    pub chart: Option<std::path::PathBuf>,
    /// Sweep on the `scalelab serve` at this URL (http://HOST:PORT): every run
    /// goes there, and the ideal curve and the fit use its cores.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The server's token (default: the SCALELAB_SERVER_TOKEN environment variable).
    #[arg(long, requires = "server")]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Runs in all, cycling through every backend and workload.
    #[arg(long, default_value_t = 500, value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub runs: usize,
    /// Start `scalelab run` processes instead of running in this process.
    #[arg(long, conflicts_with = "api")]
    pub cli: bool,
    /// Through the HTTP API of a `scalelab serve` in this process.
    #[arg(long)]
    pub api: bool,
}

#[derive(Args, Debug)]
pub struct FaultArgs {
    /// Cases to run.
    #[arg(long, default_value_t = 300, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub cases: usize,
    /// Seed of the campaign: the same seed gives the same cases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Wall time of the 1-worker scaling runs, in seconds.
    #[arg(long, default_value_t = 2.5, value_parser = seconds_up_to::<600>)]
    pub seconds: f64,
    /// Numbers per kernel timing.
    #[arg(long, default_value_t = 200_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub kernel_numbers: u64,
    /// Skip the gil / eventloop / io measurements.
    #[arg(long)]
    pub no_models: bool,
    /// Backends to measure, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub backends: Vec<BackendKind>,
    /// Measure `scalelab serve` instead: a run through the API against the same
    /// run local, event latency, and 100 watching clients (pairs of runs of
    /// about --seconds each).
    #[arg(long)]
    pub api: bool,
    /// Pairs of runs for --api.
    #[arg(long, default_value_t = 5, requires = "api", value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub pairs: usize,
}

pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Gui(GuiArgs::default())) {
        Command::Gui(args) => gui(&args),
        Command::Run(args) => run(&args),
        Command::Bench(args) => bench(&args),
        Command::Compare(args) => compare(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Soak(args) => soak(&args),
        Command::Faults(args) => faults(&args),
        Command::Worker(args) => worker(&args),
        Command::Serve(args) => serve(&args),
    }
}

/// A duration in seconds, more than 0 and at most MAX (clap states the range in its error).
fn seconds_up_to<const MAX: u32>(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if v > 0.0 && v <= f64::from(MAX) {
        Ok(v)
    } else {
        Err(format!("must be more than 0 and at most {MAX} seconds"))
    }
}

/// Exit status for input the user must fix (clap's own usage errors exit 2 too).
const EXIT_BAD_INPUT: u8 = 2;
/// Exit status for a run (or bench, comparison, worker) that failed or was cancelled.
const EXIT_FAILED: u8 = 1;

/// Bad input: says what is wrong and exits 2; nothing ran.
fn bad_input(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("scalelab: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// A failure while working: says why and exits 1.
fn failed(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("scalelab: {msg}");
    ExitCode::from(EXIT_FAILED)
}

fn gui(args: &GuiArgs) -> ExitCode {
    // The window's workers are scheduled exactly as `scalelab run`'s: niced or
    // SCHED_IDLE workers would be starved by any other load on the machine, and
    // the window would measure something else than the command line does.
    let options = EngineOptions::default();
    let scripted = args.run.is_some()
        || args.sweep
        || args.screenshot.is_some()
        || args.exit
        || args.frame_stats.is_some()
        || args.report.is_some()
        || args.state_log.is_some();
    let script = if scripted {
        let base = RunSpec {
            tasks: args.tasks,
            numbers_per_task: args.numbers,
            seed: args.seed,
            ..RunSpec::default()
        };
        let runs = match args.run.as_deref().map(|l| parse_run_list(l, &base)) {
            Some(Ok(runs)) => runs,
            Some(Err(e)) => return bad_input(e),
            None => Vec::new(),
        };
        for (path, what) in [
            (&args.screenshot, "screenshot"),
            (&args.frame_stats, "frame stats"),
            (&args.report, "report"),
            (&args.state_log, "state log"),
        ] {
            if let Some(p) = path
                && let Err(e) = check_writable(p, what)
            {
                return bad_input(e);
            }
        }
        Some(ScriptConfig {
            runs,
            screenshot: args.screenshot.clone(),
            frame_stats: args.frame_stats.clone(),
            report: args.report.clone(),
            state_log: args.state_log.clone(),
            allow_cancel: args.allow_cancel,
            refresh: args.refresh.as_deref().and_then(Refresh::from_hz),
            exit: args.exit,
            sweep: args.sweep.then(|| {
                let cores = scalelab::metrics::cores::core_count() as u32;
                let mut form = scalelab::gui::sweep_view::SweepForm::new(cores, None);
                form.tasks = args.tasks.to_string();
                form.numbers = args.numbers.to_string();
                form
            }),
        })
    } else {
        None
    };
    let attached = match &args.server {
        Some(url) => {
            let token = args
                .token
                .clone()
                .or_else(|| std::env::var("SCALELAB_SERVER_TOKEN").ok())
                .unwrap_or_default();
            match gui::machine::Attached::probe(url, &token) {
                Ok(a) => Some(a),
                Err(e) => return failed(format!("gui: --server: {e}")),
            }
        }
        None => None,
    };
    match gui::launch(gui::LaunchConfig {
        script,
        options,
        attached,
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

fn run(args: &RunArgs) -> ExitCode {
    let spec = args.spec.spec();
    if let Some(url) = &args.server {
        return run_remote(args, url, spec);
    }
    let handle = match engine::start(spec, EngineOptions::default()) {
        Ok(h) => h,
        Err(e @ engine::StartError::Invalid(_)) => return bad_input(e),
        Err(e) => return failed(e),
    };
    let report = watch_run(args, handle.events.iter());
    handle.join();
    print_report(args, report.expect("the engine always ends with a report"))
}

/// The same run on a `scalelab serve`: the same events, the same output.
fn run_remote(args: &RunArgs, url: &str, mut spec: RunSpec) -> ExitCode {
    use scalelab::server::client::{ClientError, Remote};
    let Some(token) = spec
        .bus
        .token
        .take()
        .or_else(|| std::env::var("SCALELAB_SERVER_TOKEN").ok())
    else {
        return bad_input(
            "run: --server needs --token (or SCALELAB_SERVER_TOKEN in the environment)",
        );
    };
    let remote = Remote::new(url, &token);
    let id = match remote.submit(&spec) {
        Ok(id) => id,
        Err(ClientError::Invalid { field, message }) => {
            return bad_input(format!("invalid run: {field}: {message}"));
        }
        Err(e) => return failed(e),
    };
    let events = match remote.events(id) {
        Ok(ev) => ev,
        Err(e) => return failed(e),
    };
    let mut broken = None;
    let report = watch_run(
        args,
        events.map_while(|e| e.map_err(|e| broken = Some(e)).ok()),
    );
    match (report, broken) {
        (Some(r), _) => print_report(args, r),
        (None, Some(e)) => failed(e),
        (None, None) => failed(format!("{url}: the run's events ended without its report")),
    }
}

/// Says what a person needs to hear while a run goes; returns its report.
fn watch_run(args: &RunArgs, events: impl Iterator<Item = Event>) -> Option<RunReport> {
    let mut report = None;
    for e in events {
        match e {
            Event::WorkerLost {
                reason, requeued, ..
            } if args.format == Format::Text => {
                let again = requeued.map_or(String::new(), |t| format!("; task {t} re-queued"));
                eprintln!("scalelab: {reason}{again}");
            }
            // On stderr in either format: JSON output still needs to say how to join.
            Event::Bus(e) => print_bus_event(&e),
            Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => report = Some(*r),
            _ => {}
        }
    }
    report
}

fn print_report(args: &RunArgs, report: RunReport) -> ExitCode {
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string(&report).expect("reports always serialize")
        ),
        Format::Text => print_text(&report),
    }
    match report.status {
        RunStatus::Ok => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_FAILED),
    }
}

fn describe_task(s: &RunSpec) -> String {
    match s.workload {
        WorkloadKind::Cpu => format!("{} numbers each", s.numbers_per_task),
        WorkloadKind::Io => format!("{} requests x {} ms each", s.io.requests, s.io.latency_ms),
        WorkloadKind::Mixed => format!(
            "{} numbers between {} requests x {} ms each",
            s.numbers_per_task, s.io.requests, s.io.latency_ms
        ),
    }
}

fn print_text(r: &RunReport) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} {} task(s) on {} with {} worker(s), seed {}: {}",
        r.spec.tasks,
        r.spec.workload,
        r.spec.backend,
        r.spec.workers,
        r.spec.seed,
        describe_task(&r.spec)
    );
    for (i, s) in r.sums.iter().enumerate() {
        match s {
            Some(s) => _ = writeln!(out, "task {i}: {s}"),
            None => _ = writeln!(out, "task {i}: -"),
        }
    }
    let _ = writeln!(out, "total: {}", r.total);
    if let Some(io) = &r.io {
        let _ = writeln!(
            out,
            "requests: {} latency p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            io.requests, io.latency_ms_p50, io.latency_ms_p90, io.latency_ms_max
        );
    }
    if let Some(g) = &r.gil {
        let _ = writeln!(
            out,
            "gil: switch interval {} ms, {} switches, {} drop requests",
            g.switch_interval_ms, g.switches, g.drop_requests
        );
        for w in &g.per_worker {
            let _ = writeln!(
                out,
                "  worker {}: held {:.3} s, waited {:.3} s, {} acquisitions",
                w.worker, w.held_s, w.waited_s, w.acquisitions
            );
        }
    }
    if let Some(v) = &r.verification {
        let _ = writeln!(
            out,
            "verified: {} remote result(s) recomputed (each worker's first, then {} %), {} wrong",
            v.verified, v.percent, v.mismatches
        );
        for e in &v.evicted {
            let _ = writeln!(out, "  evicted {e}");
        }
    }
    if let Some(why) = &r.reason {
        let _ = writeln!(out, "{}: {why}", r.status.name());
    }
    let _ = writeln!(out, "{}", r.time_line());
}

fn bench(args: &BenchArgs) -> ExitCode {
    if args.api {
        let r = scalelab::server::bench::run(args.seconds, args.pairs, |what| {
            eprintln!("measuring {what}")
        });
        return match r {
            Ok(r) => print_bench(args.format, &r, r.to_markdown()),
            Err(e) => failed(e),
        };
    }
    let defaults = BenchConfig::default();
    let cfg = BenchConfig {
        scaling_run_s: args.seconds,
        kernel_numbers: args.kernel_numbers,
        models: !args.no_models,
        backends: if args.backends.is_empty() {
            defaults.backends.clone()
        } else {
            args.backends.clone()
        },
        ..defaults
    };
    match bench::run(&cfg, |what| eprintln!("measuring {what}")) {
        Ok(r) => print_bench(args.format, &r, r.to_markdown()),
        Err(e) => failed(e),
    }
}

/// A bench's figures as JSON, or as the Markdown table `markdown`.
fn print_bench(format: Format, figures: &impl serde::Serialize, markdown: String) -> ExitCode {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(figures).expect("serializes")
        ),
        Format::Text => print!("{markdown}"),
    }
    ExitCode::SUCCESS
}

fn compare(args: &CompareArgs) -> ExitCode {
    use scalelab::measure::compare::{self, CompareConfig, chart, output};
    let defaults = CompareConfig::default();
    let cfg = CompareConfig {
        tasks: args.tasks,
        numbers: args.numbers,
        workers: if args.workers.is_empty() {
            defaults.workers.clone()
        } else {
            args.workers.clone()
        },
        backends: if args.backends.is_empty() {
            defaults.backends.clone()
        } else {
            args.backends.clone()
        },
        repeat: args.repeat,
        io: IoParams {
            requests: args.requests,
            latency_ms: args.latency_ms,
        },
        python: (!args.no_python).then(|| args.python.clone()),
        limits: !args.no_limits,
        ..defaults
    };
    if let Some(dir) = args.chart.as_ref().and_then(|p| p.parent())
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return bad_input(format!("--chart: no such folder: {}", dir.display()));
    }
    let report = match compare::run(&cfg, |p| eprintln!("measuring {p}")) {
        Ok(r) => r,
        Err(e @ compare::CompareError::Invalid(_)) => return bad_input(e),
        Err(e) => return failed(e),
    };
    let text = match args.format {
        TableFormat::Table => Ok(output::to_table(&report)),
        TableFormat::Markdown => Ok(output::to_markdown(&report)),
        TableFormat::Json => Ok(output::to_json(&report)),
        TableFormat::Csv => output::to_csv(&report),
    };
    print_with_chart(text, args.chart.as_deref(), |path| {
        chart::write_png(&report, path)
    })
}

/// Prints a measurement's text (`compare`, `sweep`) and draws its chart
/// when one was asked for.
fn print_with_chart(
    text: Result<String, String>,
    chart: Option<&std::path::Path>,
    draw: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> ExitCode {
    let text = match text {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    if let Some(path) = chart {
        if let Err(e) = draw(path) {
            return failed(e);
        }
        eprintln!("chart written to {}", path.display());
    }
    ExitCode::SUCCESS
}

/// The server a sweep's runs go to, asked for its machine first.
fn sweep_target(
    url: &str,
    token: Option<&str>,
) -> Result<scalelab::measure::sweep::Target, ExitCode> {
    let Some(token) = token
        .map(str::to_string)
        .or_else(|| std::env::var("SCALELAB_SERVER_TOKEN").ok())
    else {
        return Err(bad_input(
            "sweep: --server needs --token (or SCALELAB_SERVER_TOKEN in the environment)",
        ));
    };
    let attached = gui::machine::Attached::probe(url, &token)
        .map_err(|e| failed(format!("sweep: --server: {e}")))?;
    eprintln!("sweep: on {}", attached.describe());
    Ok(attached.sweep_target())
}

fn sweep(args: &SweepArgs) -> ExitCode {
    use scalelab::measure::sweep::{self, SweepConfig, SweepError, chart, output};
    let target = match &args.server {
        Some(url) => match sweep_target(url, args.token.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => return e,
        },
        None => None,
    };
    let cores = target.as_ref().map_or_else(
        || scalelab::metrics::cores::core_count() as u32,
        |t| t.cores as u32,
    );
    let workers = if args.workers.is_empty() {
        sweep::default_workers(cores)
    } else {
        args.workers.clone()
    };
    let tasks = args
        .tasks
        .unwrap_or_else(|| sweep::suggested_tasks(&workers));
    let numbers = args.numbers.unwrap_or_else(|| {
        let c = scalelab::engine::calibrate::Calibration::measure();
        sweep::numbers_for(args.seconds, c.ns_per_number, tasks)
    });
    if let Some(dir) = args.chart.as_ref().and_then(|p| p.parent())
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return bad_input(format!("--chart: no such folder: {}", dir.display()));
    }
    if let Some(w) = workers.iter().find(|&&w| w > 0 && !tasks.is_multiple_of(w)) {
        eprintln!(
            "scalelab: note: {tasks} tasks do not split evenly over {w} workers; \
             a multiple of {} would (e.g. --tasks {})",
            workers.iter().max().unwrap_or(&1),
            sweep::suggested_tasks(&workers)
        );
    }
    let cfg = SweepConfig {
        backends: args.backends.clone(),
        workers,
        tasks,
        numbers,
        seed: args.seed,
        repeat: args.repeat,
        options: EngineOptions::default(),
        cancel: Default::default(),
        target,
    };
    let report = match sweep::run(&cfg, |p| {
        let eta = p
            .eta_s
            .map_or(String::new(), |s| format!(", about {s:.0} s left"));
        eprintln!("sweep: point {} of {}: {}{eta}", p.point, p.points, p.what);
    }) {
        Ok(r) => r,
        Err(e @ SweepError::Invalid(_)) => return bad_input(e),
        Err(e) => return failed(e),
    };
    let text = match args.format {
        TableFormat::Table => Ok(output::to_table(&report)),
        TableFormat::Markdown => Ok(output::to_markdown(&report)),
        TableFormat::Json => Ok(output::to_json(&report)),
        TableFormat::Csv => output::to_csv(&report),
    };
    print_with_chart(text, args.chart.as_deref(), |path| {
        chart::write_png(&report, path)
    })
}

fn soak(args: &SoakArgs) -> ExitCode {
    use scalelab::reliability::soak;
    if args.api {
        return match scalelab::server::bench::soak(args.runs) {
            Ok(r) => {
                print!("{}", r.to_markdown());
                if r.clean() {
                    ExitCode::SUCCESS
                } else {
                    failed(format!("the soak found problems: {:?}", r.failures))
                }
            }
            Err(e) => failed(e),
        };
    }
    let r = if args.cli {
        match std::env::current_exe() {
            Ok(exe) => soak::soak_cli(args.runs, &BackendKind::ALL, &exe),
            Err(e) => return failed(format!("cannot find this executable: {e}")),
        }
    } else {
        soak::soak(args.runs, &BackendKind::ALL, &EngineOptions::default())
    };
    println!("{}", serde_json::to_string_pretty(&r).expect("serializes"));
    if r.clean() {
        ExitCode::SUCCESS
    } else {
        failed("the soak found problems")
    }
}

fn faults(args: &FaultArgs) -> ExitCode {
    use scalelab::reliability::faults;
    let r = faults::campaign(
        args.seed,
        args.cases,
        &BackendKind::ALL,
        &EngineOptions::default(),
    );
    println!("{}", serde_json::to_string_pretty(&r).expect("serializes"));
    if r.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        failed(format!("{} case(s) broke the promise", r.bad.len()))
    }
}

/// What a person at the terminal needs from the bus: how to join, who joined or was refused.
fn print_bus_event(e: &BusEvent) {
    match e {
        BusEvent::Listening {
            endpoint,
            token,
            server_key,
        } => eprintln!(
            "scalelab: bus listening on {endpoint}; join with: {}",
            join_command(endpoint, token, server_key.as_deref())
        ),
        BusEvent::Waiting {
            joined,
            expected,
            join,
        } => eprintln!(
            "scalelab: waiting for workers: {joined} of {expected} joined; join with: {join}"
        ),
        BusEvent::Evicted { reason, .. } => {
            eprintln!("scalelab: evicted a worker with a wrong result: {reason}")
        }
        BusEvent::Declined {
            worker,
            host,
            pid,
            reason,
        } => eprintln!(
            "scalelab: worker {worker} ({host} pid {pid}) declined the run's workload: {reason}"
        ),
        BusEvent::WorkerJoined {
            worker,
            host,
            pid,
            local: false,
        } => eprintln!("scalelab: worker {worker} joined from {host} (pid {pid})"),
        BusEvent::Refused { peer, reason } => {
            eprintln!("scalelab: refused a worker ({peer}): {reason}")
        }
        BusEvent::Tally(t) if *t != Default::default() => eprintln!(
            "scalelab: bus dropped {} malformed, {} oversize, {} unexpected, {} duplicate frame(s); refused {} join(s)",
            t.malformed, t.oversize, t.unexpected, t.duplicates, t.refused
        ),
        _ => {}
    }
}

fn worker(args: &WorkerArgs) -> ExitCode {
    if let Some(parent) = args.parent_pid
        && let Err(e) =
            scalelab::backends::process_worker::bind_to_parent(parent, args.nice, args.idle)
    {
        return failed(format!("worker: {e}"));
    }
    let Some(endpoint) = &args.connect else {
        return pipe_worker();
    };
    let Some(token) = args
        .token
        .clone()
        .or_else(|| std::env::var(bus::TOKEN_ENV).ok())
    else {
        return bad_input(format!(
            "worker: --connect needs --token (or {} in the environment)",
            bus::TOKEN_ENV
        ));
    };
    let server_key = match args
        .server_key
        .clone()
        .or_else(|| std::env::var(bus::keys::SERVER_KEY_ENV).ok())
        .map(|k| bus::keys::decode_key(&k))
        .transpose()
    {
        Ok(k) => k,
        Err(e) => return bad_input(format!("worker: --server-key: {e}")),
    };
    let opts = JoinOptions {
        endpoint: endpoint.clone(),
        token,
        server_key,
        join_timeout: std::time::Duration::from_secs_f64(args.join_timeout),
    };
    match bus_worker::serve(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(format!("worker: {e}")),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let token = match args.token.clone().map_or_else(bus::fresh_token, Ok) {
        Ok(t) if !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic()) => t,
        Ok(_) => return bad_input("serve: --token must be printable ASCII without spaces"),
        Err(e) => return failed(format!("serve: {e}")),
    };
    let opts = scalelab::server::ServeOptions {
        listen: args.listen,
        token: token.clone(),
        engine: Default::default(),
        history: args.history,
    };
    let server = match scalelab::server::Server::bind(opts) {
        Ok(s) => s,
        Err(e) => return failed(format!("serve: cannot listen on {}: {e}", args.listen)),
    };
    let addr = match server.addr() {
        Ok(a) => a,
        Err(e) => return failed(format!("serve: {e}")),
    };
    eprintln!("scalelab: serving on http://{addr}");
    eprintln!("scalelab: token: {token}");
    if !addr.ip().is_loopback() {
        eprintln!(
            "scalelab: listening beyond loopback without TLS: put TLS or an SSH tunnel in front (README, \"Serving\")"
        );
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(format!("serve: {e}")),
    }
}

fn pipe_worker() -> ExitCode {
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    use scalelab::backends::process_worker::{ServeError, serve};
    match serve(&mut input, &mut output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ ServeError::BadInput(_)) => bad_input(format!("worker: {e}")),
        Err(e) => failed(format!("worker: {e}")),
    }
}
