//! What the engine hands a backend and what a backend hands back. The engine
//! (one layer up) builds a `RunContext`, calls `backends::run`, and turns the
//! `BackendOutcome` into the run's report; backends never reach back into it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::metrics::clocks::CpuTimes;
use crate::metrics::meter::RunMeter;
use crate::report::Verification;
use crate::report::event::{Event, TaskRecord};
use crate::report::gil::GilReport;
use crate::spec::RunSpec;

/// Called after every event a run sends, with `true` for its last one: a watcher
/// can coalesce the others and still show the end at once.
pub type Waker = Arc<dyn Fn(bool) + Send + Sync>;

/// How the engine runs things, beyond what the spec says.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// The scalelab binary to start as `scalelab worker` (default: this executable).
    pub worker_exe: Option<PathBuf>,
    /// Nice increment for workers (threads and children), so the UI stays smooth.
    pub worker_nice: i32,
    /// Run workers under `SCHED_IDLE`: they get every core nothing else wants.
    pub worker_sched_idle: bool,
    /// Use this latency service instead of starting one (I/O workloads).
    pub io_server: Option<std::net::SocketAddr>,
}

impl EngineOptions {
    /// The executable that serves `scalelab worker`.
    pub fn worker_exe(&self) -> std::io::Result<PathBuf> {
        match &self.worker_exe {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe(),
        }
    }
}

/// What a backend gets to run with.
pub struct RunContext {
    pub spec: RunSpec,
    pub options: EngineOptions,
    events: Sender<Event>,
    cancel: Arc<AtomicBool>,
    pub meter: Arc<RunMeter>,
    started: Instant,
    on_event: Option<Waker>,
    io_addr: Option<std::net::SocketAddr>,
    /// The token an encrypted bus's workers present to the latency service
    /// (never the bus's own, which must not cross the wire in clear).
    io_token: Option<String>,
}

impl RunContext {
    /// A run that starts now: events go to `events`, `wake` is called after each.
    pub fn new(
        spec: RunSpec,
        options: EngineOptions,
        events: Sender<Event>,
        cancel: Arc<AtomicBool>,
        wake: Option<Waker>,
    ) -> Self {
        Self {
            meter: Arc::new(RunMeter::new(super::process_slots(spec.workers))),
            spec,
            options,
            events,
            cancel,
            started: Instant::now(),
            on_event: wake,
            io_addr: None,
            io_token: None,
        }
    }

    /// Where the run's latency service listens (set by the engine before the backend starts).
    pub fn set_io_addr(&mut self, addr: std::net::SocketAddr) {
        self.io_addr = Some(addr);
    }

    /// The latency service's own token, sent to bus workers inside encrypted task frames.
    pub fn set_io_token(&mut self, token: String) {
        self.io_token = Some(token);
    }

    /// The latency service's own token, if it has one apart from the bus's.
    pub fn io_token(&self) -> Option<&str> {
        self.io_token.as_deref()
    }

    /// Sends an event to the watchers (ignored once they have gone).
    pub fn emit(&self, e: Event) {
        let last = e.is_terminal();
        let _ = self.events.send(e);
        if let Some(wake) = &self.on_event {
            wake(last);
        }
    }

    /// True once the run has been asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Stops the run from inside (a backend that has failed stops its other workers).
    pub fn cancel_internal(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The latency service of an I/O workload.
    pub fn io_addr(&self) -> Option<std::net::SocketAddr> {
        self.io_addr
    }

    /// Seconds since the run started.
    pub fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// How a backend's run ended.
#[derive(Debug)]
pub enum Ending {
    Completed,
    Cancelled,
    Failed(String),
}

/// What a backend hands back: its finished tasks, the workers' CPU, how it ended.
#[derive(Debug)]
pub struct BackendOutcome {
    pub records: Vec<TaskRecord>,
    pub cpu: CpuTimes,
    pub ending: Ending,
    pub workers_lost: u32,
    /// Latency of every answered request (I/O workloads).
    pub latencies_ms: Vec<f32>,
    pub gil: Option<GilReport>,
    /// The bus master's spot-checks (the `bus` backend with remote workers).
    pub verification: Option<Verification>,
}

impl BackendOutcome {
    /// A run that failed before any task ran.
    pub fn failed(why: String) -> Self {
        Self {
            records: Vec::new(),
            cpu: CpuTimes::default(),
            ending: Ending::Failed(why),
            workers_lost: 0,
            latencies_ms: Vec::new(),
            gil: None,
            verification: None,
        }
    }
}
