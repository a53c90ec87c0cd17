//! What the server tells about the machine it runs on: its name, cores and CPU,
//! and its per-core utilisation at 10 Hz whether or not a run goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metrics::cores::{CoreSampler, core_count};
use crate::metrics::procinfo::host_name;

/// `GET /api/v1/machine`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Machine {
    pub host: String,
    pub cores: usize,
    pub cpu_model: String,
    pub version: String,
}

impl Machine {
    pub fn this() -> Self {
        Self {
            host: host_name(),
            cores: core_count(),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The first `model name` of /proc/cpuinfo.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// One sample of every core's utilisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CoreSample {
    /// Seconds since the server started.
    pub t_s: f64,
    /// Percent busy, one per core.
    pub cores: Vec<f32>,
}

/// How often the cores are sampled.
pub const CORE_PERIOD: Duration = Duration::from_millis(100);

/// Samples the cores at 10 Hz on a thread of its own, for as long as anyone
/// holds the returned receiver's sender side (the server).
pub fn sample_cores()
-> std::io::Result<(Arc<watch::Sender<CoreSample>>, watch::Receiver<CoreSample>)> {
    let (tx, rx) = watch::channel(CoreSample::default());
    let tx = Arc::new(tx);
    let weak = Arc::downgrade(&tx);
    std::thread::Builder::new()
        .name("scalelab-serve-cores".into())
        .spawn(move || {
            let started = Instant::now();
            let mut sampler = CoreSampler::new();
            let mut next = Instant::now() + CORE_PERIOD;
            loop {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                next += CORE_PERIOD;
                let Some(tx) = weak.upgrade() else { return };
                tx.send_replace(CoreSample {
                    t_s: started.elapsed().as_secs_f64(),
                    cores: sampler.sample(),
                });
            }
        })?;
    Ok((tx, rx))
}
