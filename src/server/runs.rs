//! The server's runs: a queue that runs them one at a time (so that they never
//! measure each other), each run's event log for late listeners, and the
//! history. Knows nothing of HTTP.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::backends::context::EngineOptions;
use crate::engine;
use crate::report::RunReport;
use crate::report::event::Event;
use crate::spec::RunSpec;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Queued,
    Running,
    Done,
}

/// How far a running run has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub tasks_done: u32,
    pub tasks: u32,
}

/// What asking a run to stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    Asked,
    AlreadyEnded,
}

/// One run the server was given.
pub struct RunEntry {
    pub id: u64,
    pub spec: RunSpec,
    pub phase: Phase,
    pub progress: Progress,
    /// Every event so far, as JSON, in order: a late listener replays them.
    pub events: Vec<Arc<str>>,
    /// When each of `events` was taken from the engine (for `bench`'s latency).
    logged_at: Vec<Instant>,
    pub report: Option<Box<RunReport>>,
    /// Why the run could not start or ended without a report.
    pub failure: Option<String>,
    cancel_asked: bool,
}

/// The runs and the one thread that runs them.
pub struct Runs {
    inner: Mutex<Inner>,
    /// Woken whenever any run gains an event or changes phase.
    pub changed: Notify,
    queue: crossbeam_channel::Sender<u64>,
}

struct Inner {
    runs: Vec<RunEntry>,
    next_id: u64,
    /// How many runs the history keeps.
    kept: usize,
}

/// Runs kept in memory unless told otherwise; the oldest finished ones go
/// first beyond this.
pub const KEPT_RUNS: usize = 1000;
/// Runs whose whole event log is kept for late listeners; older ones keep
/// only their last event (their report is kept whole).
const KEPT_LOGS: usize = 50;

impl Runs {
    /// The runs, with their runner thread started.
    pub fn start(options: EngineOptions, kept: usize) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        let runs = Arc::new(Self {
            inner: Mutex::new(Inner {
                runs: Vec::new(),
                next_id: 1,
                kept: kept.max(1),
            }),
            changed: Notify::new(),
            queue: tx,
        });
        let weak = Arc::downgrade(&runs);
        std::thread::Builder::new()
            .name("scalelab-serve-runner".into())
            .spawn(move || {
                for id in rx {
                    let Some(runs) = weak.upgrade() else { return };
                    runs.run_one(id, &options);
                }
            })?;
        Ok(runs)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a valid spec; returns its id.
    pub fn submit(&self, spec: RunSpec) -> u64 {
        let id = {
            let mut inner = self.lock();
            let id = inner.next_id;
            inner.next_id += 1;
            let tasks = spec.tasks;
            inner.runs.push(RunEntry {
                id,
                spec,
                phase: Phase::Queued,
                progress: Progress {
                    tasks_done: 0,
                    tasks,
                },
                events: Vec::new(),
                logged_at: Vec::new(),
                report: None,
                failure: None,
                cancel_asked: false,
            });
            let kept = inner.kept;
            forget_oldest(&mut inner.runs, kept);
            id
        };
        // The runner lives as long as `self`: the send cannot fail.
        let _ = self.queue.send(id);
        self.changed.notify_waiters();
        id
    }

    /// Asks a run to stop; `None` when there is no such run.
    pub fn cancel(&self, id: u64) -> Option<Cancel> {
        let mut inner = self.lock();
        let r = inner.runs.iter_mut().find(|r| r.id == id)?;
        if r.phase == Phase::Done {
            return Some(Cancel::AlreadyEnded);
        }
        r.cancel_asked = true;
        Some(Cancel::Asked)
    }

    /// When each event of run `id` was taken from the engine (empty once its
    /// log is trimmed).
    pub fn logged_at(&self, id: u64) -> Vec<Instant> {
        self.with(id, |r| r.logged_at.clone()).unwrap_or_default()
    }

    /// Reads one run under the lock.
    pub fn with<T>(&self, id: u64, f: impl FnOnce(&RunEntry) -> T) -> Option<T> {
        self.lock().runs.iter().find(|r| r.id == id).map(f)
    }

    /// Reads every run under the lock, oldest first.
    pub fn all<T>(&self, f: impl FnMut(&RunEntry) -> T) -> Vec<T> {
        self.lock().runs.iter().map(f).collect()
    }

    /// Runs `id` to its end, logging its events (on the runner thread).
    fn run_one(&self, id: u64, options: &EngineOptions) {
        let spec = {
            let mut inner = self.lock();
            let Some(r) = inner.runs.iter_mut().find(|r| r.id == id) else {
                return;
            };
            if r.cancel_asked {
                // Cancelled while queued: it ends without running.
                r.phase = Phase::Done;
                drop(inner);
                self.changed.notify_waiters();
                return;
            }
            r.phase = Phase::Running;
            r.spec.clone()
        };
        self.changed.notify_waiters();
        let handle = match engine::start(spec, options.clone()) {
            Ok(h) => h,
            Err(e) => {
                self.finish(id, None, Some(e.to_string()));
                return;
            }
        };
        let mut cancel_sent = false;
        loop {
            if !cancel_sent && self.with(id, |r| r.cancel_asked).unwrap_or(true) {
                handle.cancel();
                cancel_sent = true;
            }
            let e = match handle.events.recv_timeout(Duration::from_millis(50)) {
                Ok(e) => e,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    self.finish(id, None, Some("the run ended without a report".into()));
                    return;
                }
            };
            let json: Arc<str> = serde_json::to_string(&e)
                .expect("events always serialize")
                .into();
            let report = match &e {
                Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => Some(r.clone()),
                _ => None,
            };
            {
                let mut inner = self.lock();
                if let Some(r) = inner.runs.iter_mut().find(|r| r.id == id) {
                    if matches!(e, Event::TaskFinished(_)) {
                        r.progress.tasks_done += 1;
                    }
                    r.events.push(json);
                    r.logged_at.push(Instant::now());
                }
            }
            // Listeners get the event now, the terminal one included,
            // before the run's threads and processes are joined.
            self.changed.notify_waiters();
            if let Some(report) = report {
                handle.join();
                self.finish(id, Some(report), None);
                return;
            }
        }
    }

    fn finish(&self, id: u64, report: Option<Box<RunReport>>, failure: Option<String>) {
        {
            let mut inner = self.lock();
            if let Some(r) = inner.runs.iter_mut().find(|r| r.id == id) {
                r.phase = Phase::Done;
                r.report = report;
                if let Some(why) = &failure {
                    let e = serde_json::json!({"type": "error", "data": why});
                    r.events.push(e.to_string().into());
                    r.logged_at.push(Instant::now());
                }
                r.failure = failure;
            }
            trim_logs(&mut inner.runs);
        }
        self.changed.notify_waiters();
    }
}

/// Drops the oldest finished runs beyond `kept` (a queued or running one stays).
fn forget_oldest(runs: &mut Vec<RunEntry>, kept: usize) {
    while runs.len() > kept {
        match runs.iter().position(|r| r.phase == Phase::Done) {
            Some(i) => {
                runs.remove(i);
            }
            None => return,
        }
    }
}

/// Keeps the whole event log of the last `KEPT_LOGS` runs only.
fn trim_logs(runs: &mut [RunEntry]) {
    let old = runs.len().saturating_sub(KEPT_LOGS);
    for r in runs[..old].iter_mut().filter(|r| r.phase == Phase::Done) {
        if r.events.len() > 1 {
            let last = r.events.pop();
            r.events = last.into_iter().collect();
            r.logged_at = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, phase: Phase, events: usize) -> RunEntry {
        RunEntry {
            id,
            spec: RunSpec::default(),
            phase,
            progress: Progress::default(),
            events: (0..events).map(|i| Arc::from(i.to_string())).collect(),
            logged_at: Vec::new(),
            report: None,
            failure: None,
            cancel_asked: false,
        }
    }

    #[test]
    fn old_logs_keep_their_last_event_and_the_recent_ones_keep_all() {
        let mut runs: Vec<RunEntry> = (0..KEPT_LOGS as u64 + 3)
            .map(|i| entry(i, Phase::Done, 4))
            .collect();
        runs[1].phase = Phase::Running;
        trim_logs(&mut runs);
        assert_eq!(&*runs[0].events, &[Arc::from("3")]);
        assert_eq!(runs[1].events.len(), 4, "a running run keeps its log");
        assert_eq!(runs[2].events.len(), 1);
        assert!(runs[3..].iter().all(|r| r.events.len() == 4));
    }

    #[test]
    fn the_oldest_finished_runs_go_first_and_unfinished_ones_stay() {
        let mut runs: Vec<RunEntry> = (0..KEPT_RUNS as u64 + 2)
            .map(|i| entry(i, Phase::Done, 0))
            .collect();
        runs[0].phase = Phase::Queued;
        forget_oldest(&mut runs, KEPT_RUNS);
        assert_eq!(runs.len(), KEPT_RUNS);
        let ids: Vec<u64> = runs.iter().take(3).map(|r| r.id).collect();
        assert_eq!(ids, vec![0, 3, 4]);
    }
}
