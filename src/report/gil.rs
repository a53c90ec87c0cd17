//! What the emulated GIL did during a run: the data the `gil` backend reports
//! and the window and exports show. The emulator itself is `backends::gil`.

use serde::{Deserialize, Serialize};

/// One stretch of time a worker held the GIL, in seconds since the run started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GilHold {
    pub worker: u32,
    pub start_s: f64,
    pub end_s: f64,
}

/// How long one worker held the GIL and waited for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GilWorkerStats {
    pub worker: u32,
    pub held_s: f64,
    pub waited_s: f64,
    pub acquisitions: u64,
}

/// What the GIL did during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GilReport {
    pub switch_interval_ms: f64,
    /// Times the GIL passed from one thread to another.
    pub switches: u64,
    /// Drop requests set by waiters whose wait timed out.
    pub drop_requests: u64,
    pub per_worker: Vec<GilWorkerStats>,
    /// The hand-off timeline (the first 200,000 holds: `backends::gil` caps it).
    pub holds: Vec<GilHold>,
    /// Holds left out of `holds` for size.
    pub holds_dropped: u64,
}
