//! The workloads: pure kernels with no threads, channels or clocks of their own.

pub mod cpu;
