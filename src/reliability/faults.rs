//! Fault injection: seeded, reproducible cases of worker kills and cancels at
//! random moments, each checked for a proper ending and nothing left behind.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::engine::{EngineOptions, start};
use crate::metrics::procinfo::{children_of, is_running, ppid_and_state};
use crate::report::RunStatus;
use crate::report::event::{Event, WorkerKind};
use crate::spec::{BackendKind, IoParams, RunSpec, WorkloadKind};

/// No case may take longer than this to end.
pub const HANG_BOUND: Duration = Duration::from_secs(20);

/// What a case does to its run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Fault {
    /// SIGKILL the n-th worker process that has started, after a delay.
    KillWorker { after_ms: u64, nth: usize },
    /// Cancel the run after a delay.
    Cancel { after_ms: u64 },
    /// Leave it alone.
    Nothing,
}

/// One case: a run and what is done to it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultCase {
    pub spec: RunSpec,
    pub fault: Fault,
}

/// How a case ended, and what was wrong with it (empty when all is well).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: FaultCase,
    pub status: Option<RunStatus>,
    pub reason: Option<String>,
    pub ended_in_ms: f64,
    pub killed: Option<u32>,
    pub problems: Vec<String>,
}

/// The `i`-th case of a campaign seeded `seed`.
pub fn make_case(rng: &mut SmallRng, backends: &[BackendKind]) -> FaultCase {
    let backend = backends[rng.random_range(0..backends.len())];
    let workload = WorkloadKind::ALL[rng.random_range(0..WorkloadKind::ALL.len())];
    let spec = RunSpec {
        backend,
        workload,
        workers: rng.random_range(1..=4),
        tasks: rng.random_range(1..=8),
        numbers_per_task: rng.random_range(1_000_000..=30_000_000),
        seed: rng.random(),
        io: IoParams {
            requests: rng.random_range(1..=4),
            latency_ms: rng.random_range(1..=10),
        },
        ..RunSpec::default()
    };
    let after_ms = rng.random_range(0..80);
    let fault = match rng.random_range(0..3) {
        0 => Fault::KillWorker {
            after_ms,
            nth: rng.random_range(0..4),
        },
        1 => Fault::Cancel { after_ms },
        _ => Fault::Nothing,
    };
    FaultCase { spec, fault }
}

/// Runs one case and checks its ending.
pub fn run_case(case: FaultCase, options: &EngineOptions) -> CaseResult {
    let t = Instant::now();
    let mut problems = Vec::new();
    let h = match start(case.spec.clone(), options.clone()) {
        Ok(h) => h,
        Err(e) => {
            return CaseResult {
                case,
                status: None,
                reason: Some(e.to_string()),
                ended_in_ms: 0.0,
                killed: None,
                problems: vec!["a valid spec was refused".into()],
            };
        }
    };
    let act_at = match case.fault {
        Fault::KillWorker { after_ms, .. } | Fault::Cancel { after_ms } => {
            Some(t + Duration::from_millis(after_ms))
        }
        Fault::Nothing => None,
    };
    let mut acted = false;
    let mut processes = Vec::new();
    let mut killed = None;
    let mut report = None;
    while report.is_none() {
        if t.elapsed() > HANG_BOUND {
            problems.push(format!("no ending within {HANG_BOUND:?}"));
            h.cancel();
            break;
        }
        match h.events.recv_timeout(Duration::from_millis(2)) {
            Ok(Event::WorkerStarted {
                kind: WorkerKind::Process,
                os_id,
                ..
            }) => processes.push(os_id),
            Ok(Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r)) => report = Some(r),
            _ => {}
        }
        if !acted && act_at.is_some_and(|at| Instant::now() >= at) {
            match case.fault {
                Fault::Cancel { .. } => {
                    h.cancel();
                    acted = true;
                }
                Fault::KillWorker { nth, .. } => {
                    if let Some(&pid) = processes.get(nth.min(processes.len().saturating_sub(1))) {
                        // Only while it is still our child: once reaped, its pid could be reused.
                        if ppid_and_state(pid).is_some_and(|(pp, _)| pp == std::process::id()) {
                            // SAFETY: signalling our own child process.
                            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                            killed = Some(pid);
                        }
                        acted = true;
                    } else if processes.is_empty() && case.spec.backend != BackendKind::Processes {
                        acted = true; // in-process backends have no process to kill
                    }
                }
                Fault::Nothing => {}
            }
        }
    }
    let ended_in_ms = t.elapsed().as_secs_f64() * 1e3;
    h.join();
    let (status, reason) = match &report {
        Some(r) => (Some(r.status), r.reason.clone()),
        None => (None, None),
    };
    if let Some(r) = &report {
        match r.status {
            RunStatus::Ok => {
                let want: Vec<_> = (0..case.spec.tasks)
                    .map(|t| Some(case.spec.expected_sum(t)))
                    .collect();
                if r.sums != want {
                    problems.push("finished with wrong sums".into());
                }
            }
            RunStatus::Failed | RunStatus::Cancelled => {
                if r.reason.as_deref().unwrap_or("").is_empty() {
                    problems.push("ended without a reason".into());
                }
            }
        }
        if r.status == RunStatus::Cancelled && !matches!(case.fault, Fault::Cancel { .. }) {
            problems.push("cancelled though nobody cancelled it".into());
        }
    }
    for pid in &processes {
        if is_running(*pid) {
            problems.push(format!("worker {pid} outlived its run"));
        }
    }
    let zombies: Vec<u32> = children_of(std::process::id())
        .into_iter()
        .filter(|(p, s)| *s == 'Z' && processes.contains(p))
        .map(|(p, _)| p)
        .collect();
    if !zombies.is_empty() {
        problems.push(format!("unreaped workers: {zombies:?}"));
    }
    CaseResult {
        case,
        status,
        reason,
        ended_in_ms,
        killed,
        problems,
    }
}

/// A whole campaign's tally.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    pub seed: u64,
    pub cases: usize,
    pub ok: usize,
    pub cancelled: usize,
    pub failed: usize,
    pub workers_killed: usize,
    pub slowest_ending_ms: f64,
    /// Cases that broke the promise.
    pub bad: Vec<CaseResult>,
}

/// Runs `cases` cases drawn from `seed`.
pub fn campaign(
    seed: u64,
    cases: usize,
    backends: &[BackendKind],
    options: &EngineOptions,
) -> CampaignReport {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut rep = CampaignReport {
        seed,
        cases,
        ok: 0,
        cancelled: 0,
        failed: 0,
        workers_killed: 0,
        slowest_ending_ms: 0.0,
        bad: Vec::new(),
    };
    for _ in 0..cases {
        let r = run_case(make_case(&mut rng, backends), options);
        match r.status {
            Some(RunStatus::Ok) => rep.ok += 1,
            Some(RunStatus::Cancelled) => rep.cancelled += 1,
            Some(RunStatus::Failed) => rep.failed += 1,
            None => {}
        }
        rep.workers_killed += r.killed.is_some() as usize;
        rep.slowest_ending_ms = rep.slowest_ending_ms.max(r.ended_in_ms);
        if !r.problems.is_empty() {
            rep.bad.push(r);
        }
    }
    rep
}
