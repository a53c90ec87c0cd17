//! `--state-log`: one JSON line each time the window shows a run in a new state,
//! stamped with the CLOCK_MONOTONIC time by which that frame had been painted.
//! A test that presses Esc through the X server reads it to time the response.
//!
//! The line is written at the start of the frame after the change: eframe paints
//! a frame before it builds the next, so that time is after the pixels were out.
//! A small thread does the writing: the UI thread never waits on the disk.

use std::io::Write;
use std::path::Path;

use crossbeam_channel::Sender;

/// What the window shows of the current run: its number and state.
pub type Shown = (u64, &'static str);

/// The log: what was last logged, what to log at the next frame, the writer.
pub struct StateLog {
    tx: Sender<String>,
    logged: Option<Shown>,
    pending: Option<Shown>,
}

impl StateLog {
    /// Opens (creates or truncates) the log; its writer thread ends with the log.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::create(path)?;
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        std::thread::Builder::new()
            .name("state-log".into())
            .spawn(move || {
                for line in rx {
                    let _ = writeln!(file, "{line}");
                    let _ = file.flush();
                }
            })?;
        Ok(Self {
            tx,
            logged: None,
            pending: None,
        })
    }

    /// At the start of a frame: logs what the previous frame showed for the first time.
    pub fn frame_started(&mut self) {
        if let Some((run, state)) = self.pending.take() {
            let line = serde_json::json!({ "t": monotonic_s(), "run": run, "state": state });
            let _ = self.tx.send(line.to_string());
        }
    }

    /// At the end of a frame: what it shows. True when that is new (ask for a frame
    /// at once, so the line is written as soon as this one is painted).
    pub fn frame_shows(&mut self, shown: Option<Shown>) -> bool {
        if shown.is_none() || shown == self.logged {
            return false;
        }
        self.logged = shown;
        self.pending = shown;
        true
    }
}

/// Seconds on CLOCK_MONOTONIC, the clock every process on the machine shares.
pub fn monotonic_s() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we own.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_new_state_is_logged_once_at_the_next_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("states.jsonl");
        let mut log = StateLog::open(&path).unwrap();
        let before = monotonic_s();
        assert!(log.frame_shows(Some((1, "running"))));
        assert!(!log.frame_shows(Some((1, "running"))), "logged twice");
        log.frame_started();
        assert!(!log.frame_shows(Some((1, "running"))));
        log.frame_started();
        assert!(log.frame_shows(Some((1, "cancelled"))));
        log.frame_started();
        drop(log);
        let mut lines = Vec::new();
        for _ in 0..100 {
            lines = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect();
            if lines.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["state"], "running");
        assert_eq!(lines[1]["state"], "cancelled");
        assert_eq!(lines[1]["run"], 1);
        let t = lines[1]["t"].as_f64().unwrap();
        assert!(t >= before && t <= monotonic_s(), "{t} not within the test");
    }
}
