//! The run's sampler: every `SAMPLE_PERIOD`, each core's use and the run's
//! rates (its CPU, numbers and requests per second, and the observer's share),
//! as `Sample`s. The clock and the meters are read here; the arithmetic that
//! turns readings into samples (`Rates`) and the schedule (`next_deadline`) are
//! pure, so that they can be checked without waiting on a clock.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::backends::context::RunContext;
use crate::metrics::cores::CoreSampler;
use crate::metrics::observer::ObserverClock;
use crate::report::event::{Event, Sample};

/// How often the sampler records per-core and run CPU use.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// A run's closing reading within this many seconds of the last sample gives
/// no new rates: over so short a time they would be noise.
const SHORTEST_INTERVAL_S: f64 = 1e-3;

/// Samples every `SAMPLE_PERIOD` until `stop` closes, and once more then;
/// sends each sample as an event and returns them all.
pub(super) fn sample_until_stopped(ctx: &RunContext, stop: &Receiver<()>) -> Vec<Sample> {
    let mut cores = CoreSampler::new();
    let mut observer = ObserverClock::new();
    let mut rates = Rates::default();
    // Fixed deadlines, not a timeout after each sample: the time a sample takes
    // (reading /proc/stat, sending the event) must not stretch the period.
    let mut deadline = Instant::now() + SAMPLE_PERIOD;
    loop {
        let closed = !matches!(stop.recv_deadline(deadline), Err(RecvTimeoutError::Timeout));
        deadline = next_deadline(deadline, Instant::now());
        let reading = Reading {
            t_s: ctx.now_s(),
            cpu_ns: ctx.meter.total_cpu_ns(),
            numbers: ctx.meter.total_numbers(),
            requests: ctx.meter.total_requests(),
            observer_ns: observer.read(),
        };
        if let Some(sample) = rates.take(reading, closed, || cores.sample()) {
            ctx.emit(Event::Sample(sample.clone()));
        }
        if closed {
            return rates.samples;
        }
    }
}

/// The deadline after `met`, the one just met: a period later; or, after a
/// stall longer than a period (a starved thread, a suspended laptop), a period
/// from `now`, rather than a burst of catch-up samples.
fn next_deadline(met: Instant, now: Instant) -> Instant {
    let next = met + SAMPLE_PERIOD;
    if next + SAMPLE_PERIOD < now {
        now + SAMPLE_PERIOD
    } else {
        next
    }
}

/// What the clock and the meters read at one tick: all totals since the run began.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Reading {
    t_s: f64,
    cpu_ns: u64,
    numbers: u64,
    requests: u64,
    /// This process's CPU outside the run.
    observer_ns: u64,
}

/// Turns readings into samples, each with its rates since the sample before.
#[derive(Debug, Default)]
struct Rates {
    /// The reading the last sample's rates ended at.
    last: Reading,
    samples: Vec<Sample>,
}

impl Rates {
    /// The sample `now` makes, if any (kept, and returned to be sent).
    /// `closed`: the run has ended, and this is the last reading. `per_core`
    /// is read only for a sample with new rates.
    fn take(
        &mut self,
        now: Reading,
        closed: bool,
        per_core: impl FnOnce() -> Vec<f32>,
    ) -> Option<&Sample> {
        let last = self.last;
        let dt = (now.t_s - last.t_s).max(1e-6);
        let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
        let percent = |now: u64, then: u64| (100.0 * per_s(now, then) / 1e9) as f32;
        if dt > SHORTEST_INTERVAL_S || !closed || self.samples.is_empty() {
            self.samples.push(Sample {
                t_s: now.t_s,
                per_core: per_core(),
                run_cpu_percent: percent(now.cpu_ns, last.cpu_ns),
                numbers_per_s: per_s(now.numbers, last.numbers),
                numbers_done: now.numbers,
                requests_per_s: per_s(now.requests, last.requests),
                observer_cpu_percent: percent(now.observer_ns, last.observer_ns),
            });
            self.last = now;
        } else if now.numbers != last.numbers || now.requests != last.requests {
            // The run ended within a millisecond of the last sample, after more
            // work was counted: the final totals must still show, with the
            // rates as they were.
            let mut sample = self.samples.last()?.clone();
            sample.t_s = now.t_s;
            sample.numbers_done = now.numbers;
            self.samples.push(sample);
        } else {
            return None;
        }
        self.samples.last()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crossbeam_channel::unbounded;

    use super::*;
    use crate::backends::context::EngineOptions;
    use crate::metrics::cores::core_count;
    use crate::spec::RunSpec;

    fn reading(t_s: f64, cpu_ns: u64, numbers: u64, requests: u64, observer_ns: u64) -> Reading {
        Reading {
            t_s,
            cpu_ns,
            numbers,
            requests,
            observer_ns,
        }
    }

    fn near(got: f64, want: f64) -> bool {
        (got - want).abs() <= want.abs() * 1e-6
    }

    #[test]
    fn rates_are_what_was_counted_since_the_sample_before_over_its_time() {
        let mut rates = Rates::default();
        let s = rates
            .take(
                reading(0.1, 50_000_000, 1_000_000, 10, 10_000_000),
                false,
                || vec![40.0, 60.0],
            )
            .unwrap()
            .clone();
        assert_eq!(s.t_s, 0.1);
        assert_eq!(s.per_core, vec![40.0, 60.0]);
        assert!(near(f64::from(s.run_cpu_percent), 50.0), "{s:?}");
        assert!(near(s.numbers_per_s, 1e7), "{s:?}");
        assert_eq!(s.numbers_done, 1_000_000);
        assert!(near(s.requests_per_s, 100.0), "{s:?}");
        assert!(near(f64::from(s.observer_cpu_percent), 10.0), "{s:?}");
        // The next, 0.2 s later: 0.4 CPU seconds (two cores), 3 M numbers,
        // 30 requests, 6 ms of the observer's CPU.
        let s = rates
            .take(
                reading(0.3, 450_000_000, 4_000_000, 40, 16_000_000),
                false,
                || vec![100.0, 100.0],
            )
            .unwrap()
            .clone();
        assert_eq!(s.t_s, 0.3);
        assert!(near(f64::from(s.run_cpu_percent), 200.0), "{s:?}");
        assert!(near(s.numbers_per_s, 1.5e7), "{s:?}");
        assert_eq!(s.numbers_done, 4_000_000);
        assert!(near(s.requests_per_s, 150.0), "{s:?}");
        assert!(near(f64::from(s.observer_cpu_percent), 3.0), "{s:?}");
        assert_eq!(rates.samples.len(), 2);
    }

    #[test]
    fn a_reading_taken_while_the_run_goes_on_is_a_sample_however_soon() {
        let mut rates = Rates::default();
        rates.take(reading(0.1, 0, 100, 0, 0), false, Vec::new);
        // Half a millisecond later, the run not over: still a sample, with rates.
        let s = rates
            .take(reading(0.1005, 0, 150, 0, 0), false, || vec![7.0])
            .unwrap();
        assert_eq!(s.per_core, vec![7.0]);
        assert!(near(s.numbers_per_s, 1e5), "{s:?}");
        // And a first reading is a sample even when the run has just closed.
        let mut first = Rates::default();
        let s = first
            .take(reading(0.0002, 0, 9, 0, 0), true, || vec![1.0])
            .unwrap();
        assert_eq!((s.numbers_done, s.per_core.clone()), (9, vec![1.0]));
    }

    #[test]
    fn a_closing_reading_right_after_a_sample_shows_the_totals_with_the_rates_unchanged() {
        let mut rates = Rates::default();
        let before = rates
            .take(reading(0.2, 100_000_000, 2_000, 4, 0), false, || vec![50.0])
            .unwrap()
            .clone();
        // More numbers, 0.4 ms on, and the run has closed: the totals show, the
        // rates stay, and the cores are not read over so short a time.
        let s = rates
            .take(reading(0.2004, 100_000_000, 2_500, 4, 0), true, || {
                panic!("the cores were read for a 0.4 ms interval")
            })
            .unwrap()
            .clone();
        assert_eq!(s.t_s, 0.2004);
        assert_eq!(s.numbers_done, 2_500);
        assert_eq!(
            (
                s.per_core,
                s.numbers_per_s,
                s.requests_per_s,
                s.run_cpu_percent
            ),
            (
                before.per_core,
                before.numbers_per_s,
                before.requests_per_s,
                before.run_cpu_percent
            )
        );
        assert_eq!(rates.samples.len(), 2);
    }

    #[test]
    fn a_closing_reading_right_after_a_sample_with_only_new_requests_still_shows() {
        let mut rates = Rates::default();
        rates.take(reading(0.2, 0, 2_000, 4, 0), false, Vec::new);
        let s = rates.take(reading(0.2004, 0, 2_000, 5, 0), true, Vec::new);
        assert_eq!(s.map(|s| s.t_s), Some(0.2004));
    }

    #[test]
    fn a_closing_reading_within_a_millisecond_with_nothing_new_adds_nothing() {
        let mut rates = Rates::default();
        rates.take(reading(0.0, 0, 2_000, 4, 0), false, Vec::new);
        // Exactly a millisecond on is still too soon for rates.
        assert!(
            rates
                .take(reading(1e-3, 5, 2_000, 4, 3), true, Vec::new)
                .is_none()
        );
        assert_eq!(rates.samples.len(), 1);
        // Just past it, the closing reading is a sample with its rates.
        let s = rates
            .take(reading(0.0011, 1_100, 2_000, 4, 0), true, Vec::new)
            .unwrap();
        assert!(near(f64::from(s.run_cpu_percent), 1e-1), "{s:?}");
    }

    #[test]
    fn counters_that_go_back_give_no_negative_rate() {
        let mut rates = Rates::default();
        rates.take(reading(0.1, 10, 10, 10, 10), false, Vec::new);
        let s = rates
            .take(reading(0.2, 5, 5, 5, 5), false, Vec::new)
            .unwrap();
        assert_eq!(
            (
                s.run_cpu_percent,
                s.numbers_per_s,
                s.requests_per_s,
                s.observer_cpu_percent
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn deadlines_follow_a_fixed_period_and_start_afresh_after_a_stall() {
        let met = Instant::now();
        let p = SAMPLE_PERIOD;
        // On time, or late by less than a period: the next deadline is a
        // period after the one met, so late samples do not stretch the period.
        assert_eq!(next_deadline(met, met), met + p);
        assert_eq!(next_deadline(met, met + p / 2), met + p);
        assert_eq!(next_deadline(met, met + 2 * p), met + p);
        // Later than that: a period from now, with no burst to catch up.
        let late = met + 2 * p + Duration::from_nanos(1);
        assert_eq!(next_deadline(met, late), late + p);
        let asleep = met + 50 * p;
        assert_eq!(next_deadline(met, asleep), asleep + p);
    }

    /// The sampler on a live meter: summed over the run, the samples' rates give
    /// back the numbers, requests and CPU seconds counted, and no sample comes
    /// before its deadline.
    #[test]
    fn samples_carry_the_rates_the_meter_counted() {
        let (tx, _rx) = unbounded();
        let ctx = Arc::new(RunContext::new(
            RunSpec::default(),
            EngineOptions::default(),
            tx,
            Default::default(),
            None,
        ));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let samples = std::thread::scope(|s| {
            let sampler = s.spawn(|| sample_until_stopped(&ctx, &stop_rx));
            for _ in 0..6 {
                ctx.meter.add_numbers(0, 1_000_000);
                ctx.meter.add_requests(0, 10);
                ctx.meter.add_cpu_ns(0, 50_000_000);
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(stop_tx);
            sampler.join().unwrap()
        });
        assert!(samples.len() >= 3, "{samples:?}");
        let (mut numbers, mut requests, mut cpu_s, mut last_t) = (0.0, 0.0, 0.0, 0.0);
        for (k, s) in samples.iter().enumerate() {
            let dt = s.t_s - last_t;
            last_t = s.t_s;
            numbers += s.numbers_per_s * dt;
            requests += s.requests_per_s * dt;
            cpu_s += f64::from(s.run_cpu_percent) / 100.0 * dt;
            // This process's own CPU outside the run: at most every core.
            let most = 100.0 * core_count() as f32 * 1.5;
            assert!((0.0..=most).contains(&s.observer_cpu_percent), "{s:?}");
            // The k-th deadline is k + 1 periods after the sampler began, which
            // was after the run's clock began; only the closing one may be early.
            if k + 1 < samples.len() {
                let due = (k + 1) as f64 * SAMPLE_PERIOD.as_secs_f64();
                assert!(s.t_s >= due, "sample {k} at {} s, before {due} s", s.t_s);
            }
        }
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(near(numbers, 6e6), "numbers {numbers}");
        assert!(near(requests, 60.0), "requests {requests}");
        assert!(near(cpu_s, 0.3), "cpu {cpu_s}");
        assert_eq!(samples.last().unwrap().numbers_done, 6_000_000);
    }
}
