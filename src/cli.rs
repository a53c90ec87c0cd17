//! Command-line definitions and what each subcommand does.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use scalelab::backends::bus::{self, worker as bus_worker, worker::JoinOptions};
use scalelab::bench::{self, BenchConfig};
use scalelab::engine::event::{BusEvent, Event};
use scalelab::engine::spec::{BackendKind, BusParams, RunSpec, WorkloadKind};
use scalelab::engine::{self, EngineOptions};
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
    Gui,
    /// Run one experiment and print its result like `time`.
    Run(RunArgs),
    /// Measure the kernel and how the backends scale on this machine.
    Bench(BenchArgs),
    /// Serve tasks: on stdin/stdout for a `processes` run (no arguments), or
    /// over the bus of a `bus` run with `--connect`.
    Worker(WorkerArgs),
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Join the `bus` run listening at this endpoint (as the run prints it).
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Option<String>,
    /// The run's token (default: the SCALELAB_BUS_TOKEN environment variable).
    #[arg(long, requires = "connect")]
    pub token: Option<String>,
    /// Seconds to wait for the master to accept the join.
    #[arg(long, default_value_t = 10.0, requires = "connect")]
    pub join_timeout: f64,
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
            bus: BusParams {
                bind: self.bus.bind.clone(),
                token: self.bus.token.clone(),
                remote_workers: self.bus.remote,
                heartbeat_ms: self.bus.heartbeat_ms,
            },
        }
    }
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
    /// Backends to measure, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub backends: Vec<BackendKind>,
}

pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Gui) {
        Command::Gui => gui(),
        Command::Run(args) => run(&args),
        Command::Bench(args) => bench(&args),
        Command::Worker(args) => worker(&args),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("scalelab: {msg}");
    ExitCode::from(2)
}

fn gui() -> ExitCode {
    fail("the desktop app is not built yet; use `scalelab run`")
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
            // On stderr in either format: JSON output still needs to say how to join.
            Event::Bus(e) => print_bus_event(&e),
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
        backends: if args.backends.is_empty() {
            BackendKind::ALL.to_vec()
        } else {
            args.backends.clone()
        },
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

/// What a person at the terminal needs from the bus: how to join, who joined or was refused.
fn print_bus_event(e: &BusEvent) {
    match e {
        BusEvent::Listening { endpoint, token } => eprintln!(
            "scalelab: bus listening on {endpoint}; join with: scalelab worker --connect {endpoint} --token {token}"
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
    let Some(endpoint) = &args.connect else {
        return pipe_worker();
    };
    let Some(token) = args
        .token
        .clone()
        .or_else(|| std::env::var(bus::TOKEN_ENV).ok())
    else {
        return fail(format!(
            "worker: --connect needs --token (or {} in the environment)",
            bus::TOKEN_ENV
        ));
    };
    if !(args.join_timeout > 0.0 && args.join_timeout <= 3600.0) {
        return fail("worker: --join-timeout must be between 0 and 3600 seconds");
    }
    let opts = JoinOptions {
        endpoint: endpoint.clone(),
        token,
        join_timeout: std::time::Duration::from_secs_f64(args.join_timeout),
    };
    match bus_worker::serve(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("worker: {e}")),
    }
}

fn pipe_worker() -> ExitCode {
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    match scalelab::backends::process_worker::serve(&mut input, &mut output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("worker: {e}")),
    }
}
