//! What a run tells its watchers, in order, over a crossbeam channel.

use serde::{Deserialize, Serialize};

use crate::report::RunReport;
use crate::report::gil::GilHold;
use crate::spec::RunSpec;

/// How a worker exists on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerKind {
    Thread,
    Process,
    /// A coroutine on the event loop's one thread.
    Coroutine,
}

/// One finished task: who ran it, when, what it gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task: u32,
    pub worker: u32,
    pub sum: u64,
    /// Seconds since the run started.
    pub start_s: f64,
    pub end_s: f64,
    /// CPU time (user + system) the task used.
    pub cpu_s: f64,
}

/// One sample of the machine and the run, taken at 10 Hz while the run lasts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Utilisation of each core since the previous sample, 0..=100.
    pub per_core: Vec<f32>,
    /// The run's workers' CPU time over wall time since the previous sample, as `time` reports it.
    pub run_cpu_percent: f32,
    /// Numbers drawn per second since the previous sample.
    pub numbers_per_s: f64,
    /// Numbers drawn since the run started.
    pub numbers_done: u64,
    /// Requests answered per second since the previous sample (I/O workloads).
    #[serde(default)]
    pub requests_per_s: f64,
    /// CPU used since the previous sample by this process outside the run (the
    /// window's UI and rendering when the app watches it), as % of one core.
    #[serde(default)]
    pub observer_cpu_percent: f32,
}

/// Everything a run reports. Exactly one of `Finished`, `Cancelled`, `Failed` ends the stream.
/// As JSON (`scalelab serve`'s event streams): `{"type": "task_finished", "data": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    Started {
        spec: RunSpec,
        cores: usize,
        /// The latency service the I/O workloads talk to (always on loopback
        /// unless the caller supplied one).
        io_addr: Option<std::net::SocketAddr>,
    },
    WorkerStarted {
        worker: u32,
        kind: WorkerKind,
        /// Thread id or process id.
        os_id: u32,
    },
    TaskStarted {
        task: u32,
        worker: u32,
        at_s: f64,
    },
    /// Numbers drawn so far by a running task (throttled to a few per second per worker).
    Progress {
        task: u32,
        worker: u32,
        done: u64,
    },
    TaskFinished(TaskRecord),
    Sample(Sample),
    /// A worker held the emulated GIL for this stretch (the `gil` backend).
    GilHold(GilHold),
    /// A worker died; its task (if any) was handed to another worker.
    WorkerLost {
        worker: u32,
        os_id: u32,
        reason: String,
        requeued: Option<u32>,
    },
    /// What only the `bus` backend has to tell (endpoint, who joined, what it refused).
    Bus(BusEvent),
    Finished(Box<RunReport>),
    Cancelled(Box<RunReport>),
    Failed(Box<RunReport>),
}

impl Event {
    /// True for the run's last event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::Finished(_) | Event::Cancelled(_) | Event::Failed(_)
        )
    }
}

/// Events of the `bus` backend, beyond those every backend sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum BusEvent {
    /// The master is bound: workers join with `scalelab worker --connect ENDPOINT --token TOKEN`.
    Listening {
        endpoint: String,
        token: String,
        /// The master's CURVE public key (Z85) when the bus is encrypted.
        server_key: Option<String>,
    },
    /// A worker presented the right token and was accepted.
    WorkerJoined {
        worker: u32,
        host: String,
        pid: u32,
        /// Started by this run (else it joined from elsewhere).
        local: bool,
    },
    /// Fewer workers are connected than the run has: `joined` of `expected`.
    /// Sent when the count changes; `join` is the command that joins.
    Waiting {
        joined: u32,
        expected: u32,
        join: String,
    },
    /// A peer's join was refused (wrong token, protocol, too many workers).
    Refused { peer: String, reason: String },
    /// A remote worker's result failed its spot-check: the worker was evicted
    /// and every result it gave (`reopened`) is run again elsewhere.
    Evicted {
        worker: u32,
        reason: String,
        reopened: Vec<u32>,
    },
    /// A worker does not run this run's workload; its tasks went to others and it was stopped.
    Declined {
        worker: u32,
        host: String,
        pid: u32,
        reason: String,
    },
    /// A frame was dropped (malformed, oversize, unexpected); only the first few are reported.
    Dropped { peer: String, reason: String },
    /// Totals of dropped frames, sent once as the run ends.
    Tally(BusTally),
}

/// The command that joins a worker to a bus listening on `endpoint`, pinning
/// the master's public key when the bus is encrypted.
pub fn join_command(endpoint: &str, token: &str, server_key: Option<&str>) -> String {
    let mut cmd = format!("scalelab worker --connect {endpoint} --token {token}");
    if let Some(key) = server_key {
        // Z85 has characters a shell would read ($, &, <, ...): quoted; and
        // a key may begin with '-', which only the `=` form keeps a value.
        cmd.push_str(&format!(" --server-key='{key}'"));
    }
    cmd
}

/// What the bus master dropped during a run, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusTally {
    /// Frames that are not a valid message, or not one frame.
    pub malformed: u64,
    /// Frames larger than `wire::MAX_FRAME`.
    pub oversize: u64,
    /// Valid messages that made no sense from their sender (a result for a task it does not hold, ...).
    pub unexpected: u64,
    /// Results for tasks already finished.
    pub duplicates: u64,
    /// Joins refused.
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_command_names_the_endpoint_and_token_and_quotes_a_key() {
        assert_eq!(
            join_command("tcp://10.0.0.5:5555", "abc123", None),
            "scalelab worker --connect tcp://10.0.0.5:5555 --token abc123"
        );
        assert_eq!(
            join_command("tcp://h:1", "t", Some("-a$b&c<d")),
            "scalelab worker --connect tcp://h:1 --token t --server-key='-a$b&c<d'"
        );
    }
}
