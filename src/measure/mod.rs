//! Measuring: `scalelab bench` (kernel, scaling, the bus's own costs), the
//! chapter's claims about the models, and `scalelab compare` (the matrix beside
//! CPython). Each drives the engine like any other caller; the helpers they
//! share live here once.

pub mod amdahl;
pub mod bench;
pub mod compare;
pub mod models;
pub mod sweep;

use crate::engine::{EngineOptions, run_to_end};
use crate::report::{RunReport, RunStatus};
use crate::spec::RunSpec;

/// Runs `spec` to its end and insists that it finished: a measurement of a
/// run that failed or was cancelled would be a wrong figure, not a slow one.
pub fn run_ok(spec: RunSpec, options: &EngineOptions) -> Result<RunReport, String> {
    let what = format!("{} {} x{}", spec.backend, spec.workload, spec.workers);
    let r = run_to_end(spec, options.clone()).map_err(|e| e.to_string())?;
    if r.status != RunStatus::Ok {
        return Err(format!(
            "{what} did not finish: {}",
            r.reason.unwrap_or_default()
        ));
    }
    Ok(r)
}

/// The median of `v` (the upper one for an even count; 0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}
