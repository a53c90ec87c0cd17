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
