//! scalelab: see how concurrency architectures scale.
//!
//! The engine (`engine`, `backends`, `workload`, `metrics`, `report`, `wire`)
//! knows nothing of any UI; `gui` draws what the engine reports.

pub mod backends;
pub mod engine;
pub mod gui;
pub mod latency_server;
pub mod measure;
pub mod metrics;
pub mod reliability;
pub mod report;
pub mod server;
pub mod spec;
pub mod wire;
pub mod workload;
