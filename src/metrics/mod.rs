//! Measuring a run: per-core utilisation, CPU clocks, and the live meter workers update.

pub mod clocks;
pub mod cores;
pub mod meter;
pub mod observer;
pub mod procinfo;
