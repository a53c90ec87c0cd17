//! Live per-worker counters that workers bump and the sampler reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers drawn and CPU nanoseconds used, per worker slot.
#[derive(Debug)]
pub struct RunMeter {
    numbers: Vec<AtomicU64>,
    requests: Vec<AtomicU64>,
    cpu_ns: Vec<AtomicU64>,
}

impl RunMeter {
    pub fn new(slots: usize) -> Self {
        Self {
            numbers: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            requests: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            cpu_ns: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds `n` drawn numbers to `slot`.
    pub fn add_numbers(&self, slot: usize, n: u64) {
        if let Some(c) = self.numbers.get(slot) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds `n` answered requests to `slot`.
    pub fn add_requests(&self, slot: usize, n: u64) {
        if let Some(c) = self.requests.get(slot) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn total_requests(&self) -> u64 {
        self.requests
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sets the CPU time `slot` has used so far (a cumulative clock).
    pub fn set_cpu_ns(&self, slot: usize, ns: u64) {
        if let Some(c) = self.cpu_ns.get(slot) {
            c.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// Adds CPU time to `slot`: for workers that share a slot, whose
    /// cumulative clocks `set_cpu_ns` could not combine.
    pub fn add_cpu_ns(&self, slot: usize, ns: u64) {
        if let Some(c) = self.cpu_ns.get(slot) {
            c.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// The slot of worker `id` when workers come and go without bound (the
    /// bus's remote workers take a new id at every join): ids share slots,
    /// and whoever shares one must only *add* to it.
    pub fn shared_slot(&self, id: u32) -> usize {
        id as usize % self.numbers.len().max(1)
    }

    pub fn total_numbers(&self) -> u64 {
        self.numbers.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn total_cpu_ns(&self) -> u64 {
        self.cpu_ns.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_per_slot_and_total_across_slots() {
        let m = RunMeter::new(3);
        m.add_numbers(0, 5);
        m.add_numbers(2, 7);
        m.add_numbers(9, 100); // no such slot: ignored
        assert_eq!(m.total_numbers(), 12);
        m.add_requests(1, 2);
        m.add_requests(1, 3);
        m.add_requests(3, 50);
        assert_eq!(m.total_requests(), 5);
        // A cumulative clock: the latest, never going back.
        m.set_cpu_ns(0, 100);
        m.set_cpu_ns(0, 250);
        m.set_cpu_ns(0, 200);
        m.set_cpu_ns(1, 40);
        assert_eq!(m.total_cpu_ns(), 290);
        m.add_cpu_ns(2, 10);
        m.add_cpu_ns(2, 5);
        m.add_cpu_ns(7, 1000);
        assert_eq!(m.total_cpu_ns(), 305);
    }

    #[test]
    fn shared_slots_wrap_around_the_slots() {
        let m = RunMeter::new(4);
        let slots: Vec<usize> = (0..9).map(|id| m.shared_slot(id)).collect();
        assert_eq!(slots, vec![0, 1, 2, 3, 0, 1, 2, 3, 0]);
        assert_eq!(RunMeter::new(0).shared_slot(5), 0);
    }
}
