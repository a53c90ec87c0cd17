//! scalelab: see how concurrency architectures scale.
//!
//! The engine (`engine`, `backends`, `workload`, `metrics`, `report`, `wire`)
//! knows nothing of any UI; `gui` draws what the engine reports.

pub mod backends;
pub mod bench;
pub mod engine;
pub mod gui;
pub mod metrics;
pub mod report;
pub mod wire;
pub mod workload;
