//! The workloads: the kernels with no threads or channels of their own. They
//! import nothing else of scalelab: `spec` and everything above build on them.

pub mod cpu;
pub mod io;
