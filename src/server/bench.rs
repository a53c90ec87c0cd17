//! What serving costs, measured from inside one process (`scalelab bench
//! --api`, `scalelab soak --api`): the API's overhead on a run against the
//! same run local, the latency of an event from the engine to a client, the
//! cost of 100 watching clients, and what a server still holds after many runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::client::Remote;
use super::runs::Runs;
use super::{ServeOptions, Server};
use crate::backends::bus::fresh_token;
use crate::backends::context::EngineOptions;
use crate::engine::run_to_end;
use crate::metrics::cores::core_count;
use crate::metrics::procinfo::{Resources, settle, snapshot};
use crate::report::RunReport;
use crate::report::event::Event;
use crate::spec::{BackendKind, RunSpec, WorkloadKind, soak_spec};

/// Clients that watch a run besides the one that drives it.
pub const WATCHERS: usize = 100;
/// Of those, how many hang up after a few events.
pub const WATCHERS_DROPPING: usize = 20;

/// The figures `scalelab bench --api` gives.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBench {
    pub cores: usize,
    /// Pairs of runs (local, API), and of runs (1 client, 101 clients).
    pub pairs: usize,
    /// Medians, seconds: from start to report, as the caller sees it.
    pub local_s: f64,
    pub api_s: f64,
    /// `api_s / local_s`.
    pub api_overhead_ratio: f64,
    /// The runs' own wall time (the report's `wall_s`), medians.
    pub local_run_wall_s: f64,
    pub api_run_wall_s: f64,
    /// Event latency from the server taking it from the engine to a client
    /// having parsed it, over every event of the API runs, milliseconds.
    pub event_latency_ms_p50: f64,
    pub event_latency_ms_p99: f64,
    pub events: usize,
    /// The run's own wall time with `WATCHERS` more clients on its event
    /// stream, over the same run with its driver alone (medians).
    pub watched_run_wall_ratio: f64,
    pub watchers: usize,
    pub watchers_dropping: usize,
}

/// A server in this process on an ephemeral loopback port, serving on a
/// thread of its own until the process ends.
struct InProcess {
    url: String,
    token: String,
    runs: Arc<Runs>,
}

impl InProcess {
    fn start(history: usize) -> Result<Self, String> {
        let token = fresh_token().map_err(|e| e.to_string())?;
        let server = Server::bind(ServeOptions {
            listen: "127.0.0.1:0".parse().expect("an address"),
            token: token.clone(),
            engine: EngineOptions::default(),
            history,
        })
        .map_err(|e| format!("cannot serve: {e}"))?;
        let addr = server.addr().map_err(|e| e.to_string())?;
        let runs = server.runs();
        std::thread::Builder::new()
            .name("scalelab-bench-serve".into())
            .spawn(move || server.run())
            .map_err(|e| e.to_string())?;
        Ok(Self {
            url: format!("http://{addr}"),
            token,
            runs,
        })
    }

    fn remote(&self) -> Remote {
        Remote::new(&self.url, &self.token)
    }

    /// Runs `spec` through the API to its end; the report, the time from
    /// submitting to the report, and each event's latency.
    fn run(&self, spec: &RunSpec) -> Result<(RunReport, f64, Vec<f64>), String> {
        let started = Instant::now();
        let id = self.remote().submit(spec).map_err(|e| e.to_string())?;
        self.follow(id, started)
    }

    /// Follows run `id` to its end (see `run`; `started` is when it was submitted).
    fn follow(&self, id: u64, started: Instant) -> Result<(RunReport, f64, Vec<f64>), String> {
        let remote = self.remote();
        let mut received = Vec::new();
        let mut report = None;
        for e in remote.events(id).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            received.push(Instant::now());
            if let Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) = e {
                report = Some(*r);
            }
        }
        let took = started.elapsed().as_secs_f64();
        let report = report.ok_or("the stream ended without a report")?;
        let logged = self.runs.logged_at(id);
        let latencies = received
            .iter()
            .zip(&logged)
            .map(|(got, sent)| got.saturating_duration_since(*sent).as_secs_f64() * 1e3)
            .collect();
        Ok((report, took, latencies))
    }

    /// Starts `n` clients on the event stream of run `id`, each saying on
    /// `connected` when it is; `dropping` of them hang up after five events. They
    /// count `data:` lines without parsing them: what is measured is the
    /// server's cost of serving them, not theirs of reading JSON.
    fn watchers(
        &self,
        id: u64,
        n: usize,
        dropping: usize,
        connected: &crossbeam_channel::Sender<()>,
    ) -> Vec<std::thread::JoinHandle<usize>> {
        use std::io::BufRead;
        (0..n)
            .map(|i| {
                let connected = connected.clone();
                let url = format!("{}/api/v1/runs/{id}/events", self.url);
                let bearer = format!("Bearer {}", self.token);
                let limit = if i < dropping { 5 } else { usize::MAX };
                std::thread::spawn(move || {
                    // Stand-ins for clients on other machines: their own
                    // reading is not the server's cost, so it yields.
                    crate::metrics::clocks::lower_this_thread(19, true);
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    // The run is submitted just after: wait for it to exist.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let body = loop {
                        match agent.get(&url).header("Authorization", &bearer).call() {
                            Ok(r) if r.status() == 200 => {
                                let _ = connected.send(());
                                break Some(r.into_body());
                            }
                            _ if Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(5))
                            }
                            _ => break None,
                        }
                    };
                    body.map_or(0, |b| {
                        std::io::BufReader::new(b.into_reader())
                            .lines()
                            .map_while(Result::ok)
                            .filter(|l| l.starts_with("data:"))
                            .take(limit)
                            .count()
                    })
                })
            })
            .collect()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The bench's run: the chapter's CPU-bound one on every core, sized to take
/// about `seconds`.
fn bench_spec(seconds: f64, cores: usize) -> Result<RunSpec, String> {
    let mut spec = RunSpec {
        backend: BackendKind::Processes,
        workload: WorkloadKind::Cpu,
        workers: cores as u32,
        tasks: 4 * cores as u32,
        numbers_per_task: 4_000_000,
        seed: 42,
        ..RunSpec::default()
    };
    let probe = run_to_end(spec.clone(), EngineOptions::default()).map_err(|e| e.to_string())?;
    let scale = (seconds / probe.wall_s.max(1e-3)).clamp(0.1, 1000.0);
    spec.numbers_per_task = ((spec.numbers_per_task as f64 * scale) as u64).max(100_000);
    Ok(spec)
}

/// Measures the API's costs with `pairs` runs of about `seconds` each way.
pub fn run(seconds: f64, pairs: usize, mut progress: impl FnMut(&str)) -> Result<ApiBench, String> {
    let cores = core_count();
    let server = InProcess::start(super::runs::KEPT_RUNS)?;
    progress("sizing the run");
    let spec = bench_spec(seconds, cores)?;
    // One run through the API first: the server's runtime and connections warm.
    server.run(&spec)?;
    let (mut local, mut api, mut local_wall, mut api_wall) = (vec![], vec![], vec![], vec![]);
    let mut latencies = Vec::new();
    for k in 0..pairs {
        progress(&format!("local and API runs, pair {} of {pairs}", k + 1));
        // Alternate the order, so that drift on a shared machine falls evenly.
        for api_first in [k % 2 == 1, k % 2 == 0] {
            if api_first {
                let (r, took, lat) = server.run(&spec)?;
                api.push(took);
                api_wall.push(r.wall_s);
                latencies.extend(lat);
            } else {
                let started = Instant::now();
                let r = run_to_end(spec.clone(), EngineOptions::default())
                    .map_err(|e| e.to_string())?;
                local.push(started.elapsed().as_secs_f64());
                local_wall.push(r.wall_s);
            }
        }
    }
    let (mut alone, mut watched) = (vec![], vec![]);
    for k in 0..pairs {
        progress(&format!(
            "{WATCHERS} watching clients, pair {} of {pairs}",
            k + 1
        ));
        for with_watchers in [k % 2 == 1, k % 2 == 0] {
            // The measured run waits behind one like it, so that the
            // watchers are all on its stream before it starts: what is
            // measured is serving them, not their connecting.
            let remote = server.remote();
            remote.submit(&spec).map_err(|e| e.to_string())?;
            let submitted = Instant::now();
            let id = remote.submit(&spec).map_err(|e| e.to_string())?;
            let (tx, rx) = crossbeam_channel::unbounded();
            let n = if with_watchers { WATCHERS } else { 0 };
            let clients = server.watchers(id, n, WATCHERS_DROPPING, &tx);
            for _ in 0..n {
                rx.recv_timeout(Duration::from_secs(30))
                    .map_err(|_| "the watching clients could not connect")?;
            }
            if server.runs.with(id, |r| r.phase) != Some(super::runs::Phase::Queued) {
                return Err(
                    "the measured run started before its watchers were on: make --seconds longer"
                        .into(),
                );
            }
            let (r, _, _) = server.follow(id, submitted)?;
            let seen: usize = clients.into_iter().map(|c| c.join().unwrap_or(0)).sum();
            if with_watchers {
                if seen < (WATCHERS - WATCHERS_DROPPING) * r.spec.tasks as usize {
                    return Err(format!("the watching clients saw only {seen} events"));
                }
                watched.push(r.wall_s);
            } else {
                alone.push(r.wall_s);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (local_s, api_s) = (median(local), median(api));
    Ok(ApiBench {
        cores,
        pairs,
        local_s,
        api_s,
        api_overhead_ratio: api_s / local_s,
        local_run_wall_s: median(local_wall),
        api_run_wall_s: median(api_wall),
        event_latency_ms_p50: percentile(&latencies, 0.5),
        event_latency_ms_p99: percentile(&latencies, 0.99),
        events: latencies.len(),
        watched_run_wall_ratio: median(watched) / median(alone),
        watchers: WATCHERS,
        watchers_dropping: WATCHERS_DROPPING,
    })
}

impl ApiBench {
    pub fn to_markdown(&self) -> String {
        format!(
            "| the API's costs ({} cores, medians of {} pairs) | figure |\n\
             |---|---|\n\
             | a run through the API (submit to report, client side) / the same run local | {:.3} ({:.3} s / {:.3} s) |\n\
             | the run's own wall time, API / local | {:.3} s / {:.3} s |\n\
             | event latency, engine to client, p50 / p99 ({} events) | {:.2} ms / {:.2} ms |\n\
             | the run's wall time with {} more clients on its event stream ({} hanging up early) / with its driver alone | {:.3} |\n",
            self.cores,
            self.pairs,
            self.api_overhead_ratio,
            self.api_s,
            self.local_s,
            self.api_run_wall_s,
            self.local_run_wall_s,
            self.events,
            self.event_latency_ms_p50,
            self.event_latency_ms_p99,
            self.watchers,
            self.watchers_dropping,
            self.watched_run_wall_ratio,
        )
    }
}

/// What a server still holds after many API runs.
#[derive(Debug, Clone, Serialize)]
pub struct ApiSoak {
    pub runs: usize,
    pub failures: Vec<String>,
    /// Runs the server's history kept.
    pub history: usize,
    /// After the first 20 runs (every backend has run; the runtime is warm).
    pub warm: Resources,
    pub halfway: Resources,
    pub end: Resources,
    pub rss_growth_second_half_percent: f64,
}

impl ApiSoak {
    /// No failure, no thread or descriptor left behind, memory levelled off.
    pub fn clean(&self) -> bool {
        self.failures.is_empty()
            && self.end.threads <= self.warm.threads
            && self.end.fds <= self.warm.fds
            && self.end.children <= self.warm.children
            && self.rss_growth_second_half_percent < 3.0
    }

    pub fn to_markdown(&self) -> String {
        let row = |name: &str, r: &Resources| {
            format!(
                "| {name} | {} | {} | {} | {} |\n",
                r.threads, r.fds, r.children, r.rss_kib
            )
        };
        format!(
            "{} API runs (submit, follow the event stream to the report, check the sums), one server in this process keeping the last {} in its history: {} failure(s), {}.\n\n\
             | after | threads | descriptors | children | RSS KiB |\n|---|---|---|---|---|\n{}{}{}\n\
             RSS growth over the second half: {:.2} %.\n",
            self.runs,
            self.history,
            self.failures.len(),
            if self.clean() { "clean" } else { "NOT clean" },
            row("20 runs", &self.warm),
            row("half", &self.halfway),
            row("the end", &self.end),
            self.rss_growth_second_half_percent,
        )
    }
}

/// Runs `runs` small runs through the API of a server in this process, every
/// backend and workload in turn but the bus, then looks at what it holds.
pub fn soak(runs: usize) -> Result<ApiSoak, String> {
    const WARM: usize = 20;
    // A history of a tenth of the soak: it fills early, and memory must
    // level off once it is full (a whole one is 1,000 runs, by design).
    let history = (runs / 10).max(1);
    let server = InProcess::start(history)?;
    let backends = [
        BackendKind::Threads,
        BackendKind::Gil,
        BackendKind::Processes,
        BackendKind::EventLoop,
    ];
    let runs = runs.max(WARM + 2);
    let mut failures = Vec::new();
    let (mut warm, mut halfway) = (None, None);
    for i in 0..runs {
        let spec = soak_spec(i, &backends);
        match server.run(&spec) {
            Ok((r, _, _)) => {
                let want: Vec<_> = (0..spec.tasks)
                    .map(|t| Some(spec.expected_sum(t)))
                    .collect();
                if r.sums != want {
                    failures.push(format!("run {i}: wrong sums"));
                }
            }
            Err(e) => failures.push(format!("run {i}: {e}")),
        }
        if i + 1 == WARM {
            warm = Some(snapshot());
        }
        if i + 1 == runs / 2 {
            halfway = Some(snapshot());
        }
    }
    let warm = warm.expect("more runs than the warm-up");
    let halfway = halfway.unwrap_or(warm);
    let end = settle(Duration::from_millis(500), snapshot, |now| {
        now.threads <= warm.threads && now.fds <= warm.fds && now.children <= warm.children
    });
    let growth =
        100.0 * (end.rss_kib as f64 - halfway.rss_kib as f64) / halfway.rss_kib.max(1) as f64;
    Ok(ApiSoak {
        runs,
        history,
        failures,
        warm,
        halfway,
        end,
        rss_growth_second_half_percent: growth,
    })
}
