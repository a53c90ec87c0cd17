//! Per-core CPU utilisation read from `/proc/stat`.
//!
//! Written by hand rather than with `sysinfo` because sysinfo refuses to refresh
//! CPU usage more often than every 200 ms on Linux, and runs are sampled at 10 Hz.

use std::fs;

/// Busy and total jiffies of one core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CoreTimes {
    busy: u64,
    total: u64,
}

/// Parses the `cpuN` lines of `/proc/stat` content.
fn parse_proc_stat(text: &str) -> Vec<CoreTimes> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_ascii_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let field = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal (guest is already in user).
            let idle = field(3) + field(4);
            let total: u64 = (0..8).map(field).sum();
            CoreTimes {
                busy: total - idle,
                total,
            }
        })
        .collect()
}

/// Samples per-core utilisation: each call reports the share of time each core
/// was busy since the previous call.
#[derive(Debug, Default)]
pub struct CoreSampler {
    last: Vec<CoreTimes>,
}

impl CoreSampler {
    /// A sampler primed with the current counters.
    pub fn new() -> Self {
        let mut s = Self::default();
        s.sample();
        s
    }

    /// Utilisation of each core since the last call, 0..=100. Empty where
    /// `/proc/stat` cannot be read.
    pub fn sample(&mut self) -> Vec<f32> {
        let now = fs::read_to_string("/proc/stat")
            .map(|t| parse_proc_stat(&t))
            .unwrap_or_default();
        let out = now
            .iter()
            .zip(
                self.last
                    .iter()
                    .chain(std::iter::repeat(&CoreTimes::default())),
            )
            .map(|(n, l)| {
                let total = n.total.saturating_sub(l.total);
                let busy = n.busy.saturating_sub(l.busy);
                if total == 0 {
                    0.0
                } else {
                    (100.0 * busy as f64 / total as f64) as f32
                }
            })
            .collect();
        self.last = now;
        out
    }
}

/// Logical cores this process may run on.
pub fn core_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_per_core_lines_only() {
        let text = "cpu  10 0 10 80 0 0 0 0 0 0\n\
                    cpu0 5 0 5 40 0 0 0 0 0 0\n\
                    cpu1 5 0 5 30 10 0 0 0 0 0\n\
                    intr 1 2 3\n";
        let cores = parse_proc_stat(text);
        assert_eq!(
            cores,
            vec![
                CoreTimes {
                    busy: 10,
                    total: 50
                },
                CoreTimes {
                    busy: 10,
                    total: 50
                }
            ]
        );
    }

    #[test]
    fn a_busy_core_shows_as_busy() {
        let mut s = CoreSampler::new();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let usage = s.sample();
        assert!(!usage.is_empty());
        assert!(usage.iter().all(|u| (0.0..=100.0).contains(u)));
        // One core spun for 300 ms: the busiest core must show it.
        let max = usage.iter().cloned().fold(0.0, f32::max);
        assert!(max > 50.0, "{usage:?}");
    }
}
