//! A quick measure of the CPU kernel on this machine, to size runs that last
//! long enough to watch: the chapter's literal 8 × 1,000,000 is over in tens of
//! milliseconds here, before a single sample is taken.

use std::time::Instant;

use crate::metrics::cores::core_count;
use crate::workload::cpu::task_sum;

/// Numbers the calibration draws: about 20 ms at 1 ns a number.
const PROBE_NUMBERS: u64 = 20_000_000;

/// Numbers drawn first, untimed, to warm caches and the CPU's clock.
const WARM_UP_NUMBERS: u64 = 2_000_000;

/// How fast this machine draws numbers, on one core and in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub ns_per_number: f64,
    pub cores: usize,
}

/// A run size: tasks × numbers per task, for `workers` workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSize {
    pub workers: u32,
    pub tasks: u32,
    pub numbers_per_task: u64,
}

impl Calibration {
    /// Times the kernel on the calling thread (some 20 ms: call it off the UI thread,
    /// or before the window opens).
    pub fn measure() -> Self {
        std::hint::black_box(task_sum(1, 0, WARM_UP_NUMBERS));
        let t = Instant::now();
        std::hint::black_box(task_sum(1, 1, PROBE_NUMBERS));
        let ns = t.elapsed().as_nanos() as f64 / PROBE_NUMBERS as f64;
        Self {
            ns_per_number: ns.max(0.05),
            cores: core_count(),
        }
    }

    /// A CPU-bound run that keeps every core busy for about `seconds` on the
    /// `threads` backend: at least the chapter's 8 workers and 8 tasks, more on
    /// a machine with more cores, and tasks a multiple of the cores so the work
    /// splits evenly. Numbers per task are rounded to two significant digits.
    pub fn busy_run(&self, seconds: f64) -> RunSize {
        let cores = self.cores.max(1) as u32;
        let workers = cores.max(8);
        let tasks = workers.div_ceil(cores) * cores;
        let per_core_numbers = seconds * 1e9 / self.ns_per_number;
        let raw = per_core_numbers * f64::from(cores) / f64::from(tasks);
        RunSize {
            workers,
            tasks,
            numbers_per_task: round_2_digits(raw.clamp(1e6, 1e12) as u64),
        }
    }
}

/// `n` rounded to two significant digits (`734_210_000` -> `730_000_000`).
fn round_2_digits(n: u64) -> u64 {
    let mut scale = 1;
    while n / scale >= 100 {
        scale *= 10;
    }
    (n + scale / 2) / scale * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_runs_keep_every_core_busy_for_the_time_asked() {
        let c = Calibration {
            ns_per_number: 1.0,
            cores: 2,
        };
        let size = c.busy_run(3.0);
        assert_eq!((size.workers, size.tasks), (8, 8));
        // 8 tasks on 2 cores: 4 each, 3 s at 1 ns a number.
        assert_eq!(size.numbers_per_task, 750_000_000);
        let big = Calibration {
            ns_per_number: 2.0,
            cores: 12,
        };
        let size = big.busy_run(2.0);
        assert_eq!((size.workers, size.tasks), (12, 12));
        assert_eq!(size.numbers_per_task, 1_000_000_000);
        let odd = Calibration {
            ns_per_number: 1.0,
            cores: 6,
        };
        assert_eq!(odd.busy_run(1.0).tasks % 6, 0);
    }

    #[test]
    fn sizes_round_to_two_digits() {
        assert_eq!(round_2_digits(734_210_000), 730_000_000);
        assert_eq!(round_2_digits(735_000_000), 740_000_000);
        assert_eq!(round_2_digits(99), 99);
        assert_eq!(round_2_digits(1_049), 1_000);
    }

    #[test]
    fn measuring_gives_a_plausible_rate() {
        let c = Calibration::measure();
        // A debug build of the kernel is slower, never absurdly so.
        assert!(c.ns_per_number > 0.05 && c.ns_per_number < 200.0, "{c:?}");
        assert!(c.cores >= 1);
    }
}
