//! The run engine: turns a `RunSpec` into a stream of `Event`s on a background
//! thread. Knows nothing of any UI; the CLI and the GUI drive it alike.

pub mod calibrate;
mod sampler;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};

use crate::backends;
pub use crate::backends::context::{BackendOutcome, Ending, EngineOptions, RunContext, Waker};
use crate::latency_server::LatencyServer;
use crate::metrics::cores::core_count;
use crate::report::event::{Event, Sample};
use crate::report::{IoStats, RunReport, RunStatus};
use crate::spec::{RunSpec, SpecError};

pub use sampler::SAMPLE_PERIOD;

/// A run in progress: its event stream and the means to stop it.
pub struct RunHandle {
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RunHandle {
    /// A handle on a run driven elsewhere (a `scalelab serve`): `thread`
    /// sends its events on the channel `events` reads, ending with a terminal
    /// one, and watches `cancel`.
    pub fn from_parts(
        events: Receiver<Event>,
        cancel: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self {
            events,
            cancel,
            thread: Some(thread),
        }
    }

    /// Asks the run to stop; a `Cancelled` event follows within 100 ms.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits for the run to end, collecting its final report.
    pub fn wait(mut self) -> RunReport {
        let mut last = None;
        for e in self.events.iter() {
            match e {
                Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => last = Some(*r),
                _ => {}
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        last.expect("the engine always sends a terminal event")
    }

    /// Waits until every thread and child of the run has ended.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunHandle {
    /// Dropping a handle stops its run: nothing outlives its owner.
    fn drop(&mut self) {
        self.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why a run did not start. A caller branches on it: a refused spec is the
/// user's to fix (the CLI exits 2), a thread the system would not give is not
/// (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid run: {0}")]
    Invalid(#[from] SpecError),
    #[error("cannot start the run thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl StartError {
    /// The refused field, when the spec was refused.
    pub fn invalid_field(&self) -> Option<&'static str> {
        match self {
            StartError::Invalid(e) => Some(e.field),
            StartError::Spawn(_) => None,
        }
    }
}

/// Starts a run. The spec is validated first; nothing starts if it is refused.
pub fn start(spec: RunSpec, options: EngineOptions) -> Result<RunHandle, StartError> {
    start_with_waker(spec, options, None)
}

/// Like `start`, calling `wake` after every event (the GUI asks for a repaint).
pub fn start_with_waker(
    spec: RunSpec,
    options: EngineOptions,
    wake: Option<Waker>,
) -> Result<RunHandle, StartError> {
    spec.validate()?;
    let (tx, rx) = unbounded();
    let cancel = Arc::new(AtomicBool::new(false));
    let ctx = RunContext::new(spec, options, tx, cancel.clone(), wake);
    let thread = std::thread::Builder::new()
        .name("scalelab-run".into())
        .spawn(move || control(ctx))
        .map_err(StartError::Spawn)?;
    Ok(RunHandle {
        events: rx,
        cancel,
        thread: Some(thread),
    })
}

/// Runs a spec to the end on the calling thread's behalf and returns its report.
pub fn run_to_end(spec: RunSpec, options: EngineOptions) -> Result<RunReport, StartError> {
    Ok(start(spec, options)?.wait())
}

/// The run's controlling thread: latency service, sampler, backend, report.
fn control(mut ctx: RunContext) {
    let cores = core_count();
    // The latency service lives exactly as long as the run.
    let mut server = None;
    let mut server_error = None;
    let mut io_token = None;
    match draw_tokens(&ctx.spec, crate::backends::bus::fresh_token) {
        Ok(Tokens { bus, own_io }) => {
            if bus.is_some() {
                ctx.spec.bus.token = bus;
            }
            if let Some(t) = &own_io {
                ctx.set_io_token(t.clone());
            }
            io_token = own_io.or_else(|| ctx.spec.bus.token.clone());
        }
        Err(e) => server_error = Some(e),
    }
    if ctx.spec.workload.does_io() && server_error.is_none() {
        let latency = Duration::from_millis(ctx.spec.io.latency_ms as u64);
        let start_one = || {
            if ctx.spec.backend == crate::spec::BackendKind::Bus {
                // Where the bus is, behind the bus's token: a remote worker
                // can reach it exactly when it can reach the bus.
                bus_service_ip(&ctx.spec.bus.bind).and_then(|ip| {
                    LatencyServer::start_at(ip, ctx.spec.seed, latency, io_token.clone())
                        .map_err(|e| e.to_string())
                })
            } else {
                LatencyServer::start(ctx.spec.seed, latency).map_err(|e| e.to_string())
            }
        };
        match ctx.options.io_server {
            Some(addr) => ctx.set_io_addr(addr),
            None => match start_one() {
                Ok(s) => {
                    ctx.set_io_addr(s.addr());
                    server = Some(s);
                }
                Err(e) => server_error = Some(format!("cannot start the latency service: {e}")),
            },
        }
    }
    ctx.emit(Event::Started {
        spec: ctx.spec.clone(),
        cores,
        io_addr: ctx.io_addr(),
    });
    let ctx = Arc::new(ctx);
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let sampler = {
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name("scalelab-sampler".into())
            .spawn(move || sampler::sample_until_stopped(&ctx, &stop_rx))
            .ok()
    };
    let outcome = match server_error {
        None => backends::run(&ctx),
        Some(why) => BackendOutcome::failed(why),
    };
    let wall_s = ctx.now_s();
    drop(server);
    drop(stop_tx);
    let samples = sampler.and_then(|s| s.join().ok()).unwrap_or_default();

    let mut sums = vec![None; ctx.spec.tasks as usize];
    for r in &outcome.records {
        sums[r.task as usize] = Some(r.sum);
    }
    // Checked: validation bounds every task's sum (RunSpec::problems) and the
    // ledger refuses a result beyond its task's bound, so this cannot overflow
    // unless both were bypassed; then the run fails instead of wrapping.
    let total = checked_total(&sums);
    let ending = match (total, outcome.ending) {
        (None, Ending::Completed) => {
            Ending::Failed("the sums' total does not fit in 64 bits".to_string())
        }
        (_, ending) => ending,
    };
    let (status, reason) = match ending {
        Ending::Completed => (RunStatus::Ok, None),
        Ending::Cancelled => (
            RunStatus::Cancelled,
            Some("cancelled by the user".to_string()),
        ),
        Ending::Failed(why) => (RunStatus::Failed, Some(why)),
    };
    let cpu = outcome.cpu;
    let observer_cpu_s = observer_cpu_s(&samples);
    let report = RunReport {
        spec: ctx.spec.clone(),
        status,
        reason,
        total: total.unwrap_or(u64::MAX),
        sums,
        wall_s,
        user_s: cpu.user_s,
        sys_s: cpu.sys_s,
        cpu_percent: cpu.percent_of(wall_s),
        observer_cpu_percent: if wall_s > 0.0 {
            100.0 * observer_cpu_s / wall_s
        } else {
            0.0
        },
        cores,
        host: crate::metrics::procinfo::host_name(),
        workers_lost: outcome.workers_lost,
        task_timeline: outcome.records,
        cpu_timeline: samples,
        io: IoStats::from_latencies(outcome.latencies_ms),
        gil: outcome.gil,
        verification: outcome.verification,
    };
    let boxed = Box::new(report);
    ctx.emit(match status {
        RunStatus::Ok => Event::Finished(boxed),
        RunStatus::Cancelled => Event::Cancelled(boxed),
        RunStatus::Failed => Event::Failed(boxed),
    });
}

/// The tokens a bus run uses, drawn here rather than by the bus, so that its
/// latency service can ask for them.
#[derive(Debug, PartialEq)]
struct Tokens {
    /// The bus's token: the spec's own, or one drawn when it has none. `None`
    /// for the other backends, whose spec is left as it is.
    bus: Option<String>,
    /// A token of the latency service's own, on an encrypted bus with
    /// requests: its link is not encrypted, and the bus's token must never
    /// cross the wire in clear. Workers learn it from the encrypted task
    /// frames. `None` when the service asks for the bus's token.
    own_io: Option<String>,
}

fn draw_tokens(
    spec: &RunSpec,
    mut fresh: impl FnMut() -> Result<String, String>,
) -> Result<Tokens, String> {
    if spec.backend != crate::spec::BackendKind::Bus {
        return Ok(Tokens {
            bus: None,
            own_io: None,
        });
    }
    let bus = match &spec.bus.token {
        Some(t) => t.clone(),
        None => fresh()?,
    };
    let own_io = if spec.bus.encrypted() && spec.workload.does_io() {
        Some(fresh()?)
    } else {
        None
    };
    Ok(Tokens {
        bus: Some(bus),
        own_io,
    })
}

/// The address a bus run's latency service binds: the bus's own (`*` is every
/// interface, as for the bus). Loopback for a bus on loopback.
fn bus_service_ip(bind: &str) -> Result<std::net::IpAddr, String> {
    let host =
        crate::spec::endpoint_host(bind).ok_or_else(|| format!("bad bus endpoint {bind:?}"))?;
    if host == "*" {
        return Ok(std::net::Ipv4Addr::UNSPECIFIED.into());
    }
    host.parse().map_err(|_| {
        format!(
            "the io and mixed workloads on a bus bound to {host:?} need an IP address in --bind, \
             where their latency service can listen too"
        )
    })
}

/// The sum of the finished tasks' sums; `None` when it does not fit in a u64.
fn checked_total(sums: &[Option<u64>]) -> Option<u64> {
    sums.iter()
        .flatten()
        .try_fold(0u64, |total, &s| total.checked_add(s))
}

/// The observer's CPU seconds over the samples (each covers the time since the one before).
fn observer_cpu_s(samples: &[Sample]) -> f64 {
    let mut last_t = 0.0;
    samples
        .iter()
        .map(|s| {
            let dt = (s.t_s - last_t).max(0.0);
            last_t = s.t_s;
            f64::from(s.observer_cpu_percent) / 100.0 * dt
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_worker(tasks: u32, numbers_per_task: u64) -> RunSpec {
        RunSpec {
            workers: 1,
            tasks,
            numbers_per_task,
            ..RunSpec::default()
        }
    }

    fn terminal(events: &Receiver<Event>) -> Vec<Event> {
        events.try_iter().filter(Event::is_terminal).collect()
    }

    /// `join` lets the run end by itself: once it returns, the run has sent
    /// every event, `Finished` last.
    #[test]
    fn join_waits_for_the_run_to_finish_without_cancelling_it() {
        // Some 0.2 s of drawing or more: a cancel would come before the end.
        let h = start(one_worker(2, 100_000_000), EngineOptions::default()).unwrap();
        let events = h.events.clone();
        h.join();
        let ends = terminal(&events);
        assert!(matches!(ends[..], [Event::Finished(_)]), "{ends:?}");
    }

    /// Dropping a handle stops its run and waits for it: by the time the drop
    /// returns, the run has been cancelled and has said so.
    #[test]
    fn dropping_the_handle_cancels_the_run_and_waits_for_its_end() {
        // Minutes of drawing, were it not cancelled.
        let h = start(one_worker(2, 100_000_000_000), EngineOptions::default()).unwrap();
        let events = h.events.clone();
        loop {
            let e = events.recv_timeout(Duration::from_secs(10)).unwrap();
            if matches!(e, Event::TaskStarted { .. }) {
                break;
            }
        }
        drop(h);
        let ends = terminal(&events);
        assert!(matches!(ends[..], [Event::Cancelled(_)]), "{ends:?}");
    }

    /// Tokens "t1", "t2", ... in the order asked for.
    fn counter() -> impl FnMut() -> Result<String, String> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(format!("t{n}"))
        }
    }

    #[test]
    fn a_bus_run_gets_a_token_when_it_has_none_and_its_latency_service_one_of_its_own_when_encrypted()
     {
        use crate::spec::{BackendKind, WorkloadKind};
        let run = |backend, workload, token: Option<&str>, encrypt| {
            let mut spec = RunSpec {
                backend,
                workload,
                ..RunSpec::default()
            };
            spec.bus.token = token.map(String::from);
            spec.bus.encrypt = Some(encrypt);
            draw_tokens(&spec, counter()).unwrap()
        };
        let tokens = |bus: Option<&str>, own_io: Option<&str>| Tokens {
            bus: bus.map(String::from),
            own_io: own_io.map(String::from),
        };
        // Other backends: nothing drawn, whatever their bus settings say.
        for backend in [
            BackendKind::Threads,
            BackendKind::Processes,
            BackendKind::Gil,
        ] {
            assert_eq!(
                run(backend, WorkloadKind::Io, None, true),
                tokens(None, None)
            );
        }
        // The bus: the spec's token kept, or one drawn.
        assert_eq!(
            run(BackendKind::Bus, WorkloadKind::Cpu, Some("mine"), false),
            tokens(Some("mine"), None)
        );
        assert_eq!(
            run(BackendKind::Bus, WorkloadKind::Io, None, false),
            tokens(Some("t1"), None)
        );
        // Encrypted, with requests: the latency service's own token too.
        assert_eq!(
            run(BackendKind::Bus, WorkloadKind::Mixed, Some("mine"), true),
            tokens(Some("mine"), Some("t1"))
        );
        assert_eq!(
            run(BackendKind::Bus, WorkloadKind::Io, None, true),
            tokens(Some("t1"), Some("t2"))
        );
        // Encrypted with no requests: no service, no token for it.
        assert_eq!(
            run(BackendKind::Bus, WorkloadKind::Cpu, None, true),
            tokens(Some("t1"), None)
        );
        // A token that cannot be drawn is the run's failure, with its reason.
        let spec = RunSpec {
            backend: BackendKind::Bus,
            ..RunSpec::default()
        };
        assert_eq!(
            draw_tokens(&spec, || Err("no randomness".into())),
            Err("no randomness".to_string())
        );
    }

    /// Only a run with requests starts a latency service: its address is in
    /// the `Started` event; a CPU run has none.
    #[test]
    fn only_runs_with_requests_start_a_latency_service() {
        use crate::spec::{IoParams, WorkloadKind};
        for (workload, has_service) in [
            (WorkloadKind::Cpu, false),
            (WorkloadKind::Io, true),
            (WorkloadKind::Mixed, true),
        ] {
            let spec = RunSpec {
                workload,
                io: IoParams {
                    requests: 2,
                    latency_ms: 1,
                },
                ..one_worker(1, 10_000)
            };
            let h = start(spec, EngineOptions::default()).unwrap();
            let io_addr = match h.events.recv_timeout(Duration::from_secs(10)).unwrap() {
                Event::Started { io_addr, .. } => io_addr,
                e => panic!("{workload}: began with {e:?}"),
            };
            assert_eq!(io_addr.is_some(), has_service, "{workload}: {io_addr:?}");
            assert_eq!(h.wait().status, RunStatus::Ok, "{workload}");
        }
    }

    /// The report's observer share is the samples' observer CPU over the
    /// run's wall time: this test's thread spins while the run goes on, so
    /// there is some to count.
    #[test]
    fn the_observers_share_is_its_sampled_cpu_over_the_wall_time() {
        let h = start(one_worker(1, 400_000_000), EngineOptions::default()).unwrap();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(300) {
            std::hint::black_box(spin.elapsed());
        }
        let r = h.wait();
        // Each sample's share covers the time since the one before.
        let (mut sampled, mut last_t) = (0.0, 0.0);
        for s in &r.cpu_timeline {
            sampled += f64::from(s.observer_cpu_percent) / 100.0 * (s.t_s - last_t);
            last_t = s.t_s;
        }
        assert!(sampled > 0.0, "{:?}", r.cpu_timeline);
        let want = 100.0 * sampled / r.wall_s;
        assert!(
            (r.observer_cpu_percent - want).abs() <= want * 1e-9,
            "{} vs {want}",
            r.observer_cpu_percent
        );
    }

    #[test]
    fn a_bus_runs_latency_service_listens_where_the_bus_does() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        assert_eq!(
            bus_service_ip("tcp://127.0.0.1:5555"),
            Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            bus_service_ip("tcp://10.1.2.3:*"),
            Ok(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
        );
        assert_eq!(
            bus_service_ip("tcp://[::1]:5555"),
            Ok(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        // Every interface, as for the bus.
        assert_eq!(
            bus_service_ip("tcp://*:5555"),
            Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
        let named = bus_service_ip("tcp://bigbox:5555").unwrap_err();
        assert!(
            named.contains("\"bigbox\"") && named.contains("--bind"),
            "{named}"
        );
        let bad = bus_service_ip("udp://x").unwrap_err();
        assert!(bad.contains("bad bus endpoint"), "{bad}");
    }

    #[test]
    fn the_observers_cpu_seconds_weigh_each_share_by_the_time_it_covers() {
        let sample = |t_s, observer_cpu_percent| Sample {
            t_s,
            per_core: Vec::new(),
            run_cpu_percent: 0.0,
            numbers_per_s: 0.0,
            numbers_done: 0,
            requests_per_s: 0.0,
            observer_cpu_percent,
        };
        assert_eq!(observer_cpu_s(&[]), 0.0);
        // 50 % over the first 0.1 s, then 25 % over 0.2 s: 0.05 + 0.05 s.
        let got = observer_cpu_s(&[sample(0.1, 50.0), sample(0.3, 25.0)]);
        assert!((got - 0.1).abs() < 1e-9, "{got}");
        // 200 % (two cores) over 0.5 s; a sample out of order adds nothing.
        let got = observer_cpu_s(&[sample(0.5, 200.0), sample(0.4, 100.0)]);
        assert!((got - 1.0).abs() < 1e-9, "{got}");
    }

    #[test]
    fn the_total_skips_unfinished_tasks_and_never_wraps() {
        assert_eq!(checked_total(&[Some(3), None, Some(4)]), Some(7));
        assert_eq!(checked_total(&[None, None]), Some(0));
        assert_eq!(
            checked_total(&[Some(u64::MAX - 1), Some(1)]),
            Some(u64::MAX)
        );
        assert_eq!(checked_total(&[Some(u64::MAX), Some(1)]), None);
    }
}
