//! The workloads: the kernels with no threads or channels of their own.

pub mod cpu;
pub mod io;

use crate::engine::spec::{RunSpec, WorkloadKind};

/// The result task `task` of `spec` must give, computed directly.
pub fn expected_sum(spec: &RunSpec, task: u32) -> u64 {
    let (seed, t) = (spec.seed, task as u64);
    match spec.workload {
        WorkloadKind::Cpu => cpu::task_sum(seed, t, spec.numbers_per_task),
        WorkloadKind::Io => io::io_sum(seed, t, spec.io.requests),
        WorkloadKind::Mixed => {
            cpu::task_sum(seed, t, spec.numbers_per_task) + io::io_sum(seed, t, spec.io.requests)
        }
    }
}
