//! Keeping the promise: whatever happens to a worker, a run completes with the
//! right sums or fails with a reason, and nothing is left behind. The soak and
//! the fault campaign are library code so that tests and `scalelab soak` /
//! `scalelab faults` run the very same thing.

pub mod faults;
pub mod soak;
