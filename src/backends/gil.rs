//! `gil`: the thread pool under an emulated CPython global interpreter lock.
//!
//! Faithful to CPython's `ceval_gil.c`: the lock is a flag guarded by a mutex
//! and a condition variable. A thread that wants it waits at most the switch
//! interval; if the holder has not switched by then, the waiter sets a drop
//! request. The holder checks for it at "eval breaker" points (every
//! `EVAL_BREAKER_NUMBERS` numbers, about what a bytecode loop does), drops the
//! lock, and waits until another thread has actually taken it, so it cannot
//! grab it straight back. Blocking I/O releases the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::task_exec::TaskEnv;
use super::threads::{AsMutThreadEnv, ThreadEnv, run_pool};
use crate::backends::context::{BackendOutcome, RunContext};
use crate::report::event::Event;
use crate::report::gil::{GilHold, GilReport, GilWorkerStats};

/// Numbers drawn between two eval-breaker checks.
pub const EVAL_BREAKER_NUMBERS: u64 = 4096;
/// Most holds kept in the timeline (a long run switches every few ms).
const MAX_HOLDS: usize = 200_000;

struct GilState {
    holder: Option<u32>,
    last_holder: Option<u32>,
    /// Incremented at every acquisition (CPython's `switch_number`).
    switch_number: u64,
    held_since: f64,
    switches: u64,
    drop_requests: u64,
    per_worker: Vec<GilWorkerStats>,
    holds: Vec<GilHold>,
    holds_dropped: u64,
}

/// The emulated GIL shared by a run's worker threads.
pub struct GilEmulator {
    state: Mutex<GilState>,
    /// Signalled when the GIL is released.
    released: Condvar,
    /// Signalled when the GIL is taken (for forced switching).
    switched: Condvar,
    drop_request: AtomicBool,
    interval: Duration,
    started: Instant,
}

impl GilEmulator {
    pub fn new(workers: u32, interval: Duration, started: Instant) -> Self {
        Self {
            state: Mutex::new(GilState {
                holder: None,
                last_holder: None,
                switch_number: 0,
                held_since: 0.0,
                switches: 0,
                drop_requests: 0,
                per_worker: (0..workers)
                    .map(|worker| GilWorkerStats {
                        worker,
                        ..Default::default()
                    })
                    .collect(),
                holds: Vec::new(),
                holds_dropped: 0,
            }),
            released: Condvar::new(),
            switched: Condvar::new(),
            drop_request: AtomicBool::new(false),
            interval,
            started,
        }
    }

    fn lock(&self) -> MutexGuard<'_, GilState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Takes the GIL for `worker`, waiting as CPython's `take_gil` does.
    pub fn take(&self, worker: u32) {
        let asked = Instant::now();
        let mut g = self.lock();
        while g.holder.is_some() {
            let seen = g.switch_number;
            let (guard, res) = self
                .released
                .wait_timeout(g, self.interval)
                .unwrap_or_else(|p| p.into_inner());
            g = guard;
            if res.timed_out() && g.holder.is_some() && g.switch_number == seen {
                // The holder kept it a whole interval: ask it to drop.
                self.drop_request.store(true, Ordering::Release);
                g.drop_requests += 1;
            }
        }
        g.holder = Some(worker);
        if g.last_holder.is_some_and(|l| l != worker) {
            g.switches += 1;
        }
        g.last_holder = Some(worker);
        g.switch_number += 1;
        g.held_since = self.now_s();
        self.drop_request.store(false, Ordering::Release);
        let stats = &mut g.per_worker[worker as usize];
        stats.waited_s += asked.elapsed().as_secs_f64();
        stats.acquisitions += 1;
        drop(g);
        self.switched.notify_all();
    }

    /// Releases the GIL; with `forced`, waits until another thread has taken it.
    /// Returns the hold that just ended.
    pub fn release(&self, worker: u32, forced: bool) -> GilHold {
        let mut g = self.lock();
        debug_assert_eq!(g.holder, Some(worker));
        let hold = GilHold {
            worker,
            start_s: g.held_since,
            end_s: self.now_s(),
        };
        g.holder = None;
        g.per_worker[worker as usize].held_s += hold.end_s - hold.start_s;
        if g.holds.len() < MAX_HOLDS {
            g.holds.push(hold);
        } else {
            g.holds_dropped += 1;
        }
        let seen = g.switch_number;
        self.released.notify_one();
        if forced {
            // Not switched yet: wait (bounded, in case the waiter went away).
            let deadline = Instant::now() + self.interval * 4;
            while g.switch_number == seen && Instant::now() < deadline {
                g = self
                    .switched
                    .wait_timeout(g, self.interval)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        hold
    }

    /// True when a waiter has asked the holder to drop the GIL.
    pub fn drop_requested(&self) -> bool {
        self.drop_request.load(Ordering::Acquire)
    }

    pub fn report(&self) -> GilReport {
        let g = self.lock();
        GilReport {
            switch_interval_ms: self.interval.as_secs_f64() * 1e3,
            switches: g.switches,
            drop_requests: g.drop_requests,
            per_worker: g.per_worker.clone(),
            holds: g.holds.clone(),
            holds_dropped: g.holds_dropped,
        }
    }
}

/// A worker thread's env under the GIL.
struct GilEnv<'a> {
    inner: ThreadEnv<'a>,
    gil: &'a GilEmulator,
}

impl GilEnv<'_> {
    fn release(&mut self, forced: bool) {
        let hold = self.gil.release(self.inner.worker, forced);
        self.inner.ctx.emit(Event::GilHold(hold));
    }
}

impl TaskEnv for GilEnv<'_> {
    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
    fn progress(&mut self, done: u64) {
        self.inner.progress(done)
    }
    fn slice(&self) -> u64 {
        EVAL_BREAKER_NUMBERS
    }
    fn between_slices(&mut self) {
        if self.gil.drop_requested() {
            self.release(true);
            self.gil.take(self.inner.worker);
        }
    }
    fn before_blocking(&mut self) {
        self.release(false);
    }
    fn after_blocking(&mut self) {
        self.gil.take(self.inner.worker);
    }
    fn request_done(&mut self) {
        self.inner.request_done()
    }
}

impl<'a> AsMutThreadEnv<'a> for GilEnv<'a> {
    fn thread_env(&mut self) -> &mut ThreadEnv<'a> {
        &mut self.inner
    }
    fn on_start(&mut self) {
        self.gil.take(self.inner.worker);
    }
    fn on_exit(&mut self) {
        self.release(false);
    }
}

/// Runs every task on `spec.workers` threads that share one emulated GIL.
pub fn run(ctx: &RunContext) -> BackendOutcome {
    let gil = GilEmulator::new(
        ctx.spec.workers,
        Duration::from_micros(ctx.spec.gil.switch_interval_us),
        ctx.started(),
    );
    let mut outcome = run_pool(ctx, |inner| GilEnv { inner, gil: &gil });
    outcome.gil = Some(gil.report());
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A holder looks for a drop request once per `EVAL_BREAKER_NUMBERS`
    /// numbers, as CPython's eval breaker does every few bytecodes, not after
    /// every number or two: that would slow every task of the `gil` backend,
    /// and the chart that compares it with `threads`.
    #[test]
    fn a_holder_looks_for_drop_requests_once_per_eval_breaker_slice() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let ctx = RunContext::new(
            crate::spec::RunSpec::default(),
            crate::backends::context::EngineOptions::default(),
            tx,
            Default::default(),
            None,
        );
        let gil = GilEmulator::new(1, Duration::from_millis(5), Instant::now());
        let env = GilEnv {
            inner: ThreadEnv::new(&ctx, 0),
            gil: &gil,
        };
        assert_eq!(env.slice(), EVAL_BREAKER_NUMBERS);
    }

    /// One thread taking and releasing in turn: every hold recorded, its
    /// time counted to its worker, and a switch only when the holder changes.
    #[test]
    fn holds_acquisitions_and_switches_are_counted_as_they_happen() {
        let gil = GilEmulator::new(3, Duration::from_millis(7), Instant::now());
        for (worker, hold_ms) in [(0, 2), (1, 1), (1, 3), (2, 1), (0, 1)] {
            gil.take(worker);
            std::thread::sleep(Duration::from_millis(hold_ms));
            let hold = gil.release(worker, false);
            assert_eq!(hold.worker, worker);
            assert!(
                hold.end_s - hold.start_s >= hold_ms as f64 / 1e3,
                "{hold:?}"
            );
        }
        let r = gil.report();
        assert_eq!(r.switch_interval_ms, 7.0);
        assert_eq!(r.switches, 3, "0 to 1, 1 to 2, 2 to 0; 1 to 1 is none");
        assert_eq!((r.drop_requests, r.holds_dropped), (0, 0));
        assert_eq!(
            r.holds.iter().map(|h| h.worker).collect::<Vec<_>>(),
            [0, 1, 1, 2, 0]
        );
        assert!(r.holds.windows(2).all(|w| w[0].end_s <= w[1].start_s));
        let acquisitions: Vec<u64> = r.per_worker.iter().map(|w| w.acquisitions).collect();
        assert_eq!(acquisitions, [2, 2, 1]);
        for w in &r.per_worker {
            let held: f64 = r
                .holds
                .iter()
                .filter(|h| h.worker == w.worker)
                .map(|h| h.end_s - h.start_s)
                .sum();
            assert!((w.held_s - held).abs() < 1e-9, "{w:?} vs {held}");
            // Nobody held it while they asked: hardly any wait.
            assert!((0.0..0.5).contains(&w.waited_s), "{w:?}");
        }
    }

    /// A holder that keeps the GIL a whole interval is asked to drop it; the
    /// waiter's wait is counted, and the request is cleared once it takes it.
    #[test]
    fn a_waiter_asks_a_holder_that_keeps_it_past_the_interval_to_drop_it() {
        let gil = Arc::new(GilEmulator::new(
            2,
            Duration::from_millis(5),
            Instant::now(),
        ));
        gil.take(0);
        let asked = Instant::now();
        let waiter = {
            let gil = gil.clone();
            std::thread::spawn(move || {
                gil.take(1);
                gil.release(1, false);
            })
        };
        while !gil.drop_requested() {
            assert!(asked.elapsed() < Duration::from_secs(10), "no drop request");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            asked.elapsed() >= Duration::from_millis(4),
            "asked before the interval"
        );
        // Forced: returns once the waiter has it.
        gil.release(0, true);
        waiter.join().unwrap();
        assert!(!gil.drop_requested(), "cleared by the take");
        let r = gil.report();
        assert!(r.drop_requests >= 1, "{r:?}");
        assert_eq!(r.switches, 1);
        assert!(r.per_worker[1].waited_s >= 0.004, "{:?}", r.per_worker[1]);
        assert_eq!(r.per_worker[1].acquisitions, 1);
    }

    /// A forced release waits for another thread to take the GIL, but only
    /// for four intervals: with nobody waiting it returns after those.
    #[test]
    fn a_forced_release_with_nobody_waiting_gives_up_after_four_intervals() {
        let interval = Duration::from_millis(20);
        let gil = GilEmulator::new(1, interval, Instant::now());
        gil.take(0);
        let t = Instant::now();
        gil.release(0, true);
        let waited = t.elapsed();
        assert!(waited >= interval * 4, "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    /// The holds kept are capped; those past the cap are counted, not kept.
    #[test]
    fn holds_past_the_cap_are_counted_not_kept() {
        let gil = GilEmulator::new(1, Duration::from_millis(5), Instant::now());
        for _ in 0..MAX_HOLDS + 3 {
            gil.take(0);
            gil.release(0, false);
        }
        let r = gil.report();
        assert_eq!((r.holds.len(), r.holds_dropped), (MAX_HOLDS, 3));
        assert_eq!(r.per_worker[0].acquisitions, MAX_HOLDS as u64 + 3);
    }

    /// A holder that lets go within the interval is never asked to drop: the
    /// waiter woken by the release takes it without a request.
    #[test]
    fn a_release_within_the_interval_is_no_drop_request() {
        let gil = Arc::new(GilEmulator::new(2, Duration::from_secs(2), Instant::now()));
        gil.take(0);
        let waiter = {
            let gil = gil.clone();
            std::thread::spawn(move || {
                gil.take(1);
                gil.release(1, false);
            })
        };
        // Let the waiter start waiting, then let go long before 2 s.
        std::thread::sleep(Duration::from_millis(30));
        gil.release(0, false);
        waiter.join().unwrap();
        let r = gil.report();
        assert_eq!(r.drop_requests, 0, "{r:?}");
        assert!(!gil.drop_requested());
        assert_eq!((r.switches, r.per_worker[1].acquisitions), (1, 1));
    }

    #[test]
    fn two_spinning_threads_never_hold_it_together_and_switch_near_the_interval() {
        let gil = Arc::new(GilEmulator::new(
            2,
            Duration::from_millis(5),
            Instant::now(),
        ));
        let holders = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let hs: Vec<_> = (0..2)
            .map(|w| {
                let (gil, holders) = (gil.clone(), holders.clone());
                std::thread::spawn(move || {
                    gil.take(w);
                    let end = Instant::now() + Duration::from_millis(300);
                    while Instant::now() < end {
                        assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        std::hint::spin_loop();
                        holders.fetch_sub(1, Ordering::SeqCst);
                        if gil.drop_requested() {
                            gil.release(w, true);
                            gil.take(w);
                        }
                    }
                    gil.release(w, false);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let r = gil.report();
        assert!(r.switches >= 10, "{} switches", r.switches);
        let mut holds = r.holds.clone();
        holds.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        assert!(
            holds.windows(2).all(|w| w[0].end_s <= w[1].start_s),
            "overlapping holds"
        );
        // Holds last about the switch interval (loosely: machines here are noisy).
        let mut d: Vec<f64> = holds.iter().map(|h| h.end_s - h.start_s).collect();
        d.sort_by(f64::total_cmp);
        let median = d[d.len() / 2];
        assert!((0.004..0.030).contains(&median), "median hold {median} s");
    }
}
