//! Esc through the real X server cancels a run while every core is saturated,
//! 20 times in a row, and the window shows each run cancelled.
//!
//! The test holds each try to 1 s: a window whose UI thread blocks, or that
//! repaints only on a timer, or that waits for a task to end, fails it. The
//! issue's figure, 150 ms at the p99, is a speed target and lives in a
//! benchmark, not here (a shared machine's noise once put one try of twenty at
//! 161 ms): `scripts/bench_cancel.sh` runs this same test in release mode with
//! `SCALELAB_CANCEL_LATENCIES=PATH`, which makes it write the twenty times to
//! PATH, and judges their p99 against 150 ms.
//!
//! The window runs in scripted mode with `--state-log`: it logs, on
//! CLOCK_MONOTONIC, when a frame showing a run's new state had been painted.
//! The test presses Esc with `xdotool` (XTEST, as a keyboard would) into the
//! focused window and takes the time just before the key is sent. Needs an X display
//! (`xvfb-run -a cargo test --features heavy`) and xdotool. Its own binary, so that no other
//! test loads the machine meanwhile.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRIES: usize = 20;
/// Far beyond the 150 ms target: a bound for "the window reacts", not a speed.
const LIMIT_MS: f64 = 1000.0;

fn monotonic_s() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we own.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn xdotool(args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .output()
        .expect("xdotool runs (apt-get install xdotool)");
    assert!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One xdotool process that presses keys as commands arrive on its stdin.
struct KeySender(Child);

impl KeySender {
    fn start() -> Self {
        let child = Command::new("xdotool")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("xdotool runs (apt-get install xdotool)");
        KeySender(child)
    }

    fn send_escape(&mut self) {
        use std::io::Write;
        let stdin = self.0.stdin.as_mut().expect("xdotool's stdin");
        stdin.write_all(b"key Escape\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for KeySender {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Ends the window by its pid if the test fails halfway.
struct Window(Child);

impl Drop for Window {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the state log as it grows: (run, state, t).
struct LogTail {
    reader: BufReader<std::fs::File>,
    pending: String,
}

impl LogTail {
    /// Waits up to `limit` for the line saying run `run` is shown in `state`.
    fn wait_for(&mut self, run: u64, state: &str, limit: Duration) -> f64 {
        let end = Instant::now() + limit;
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            if n > 0 {
                self.pending.push_str(&line);
                if !self.pending.ends_with('\n') {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(self.pending.trim()).unwrap();
                self.pending.clear();
                if v["run"] == run && v["state"] == state {
                    return v["t"].as_f64().unwrap();
                }
                assert!(
                    !(v["run"] == run && v["state"] != "running"),
                    "run {run} ended as {} instead of {state}",
                    v["state"]
                );
                continue;
            }
            assert!(
                Instant::now() < end,
                "run {run} was not shown {state} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn esc_cancels_a_saturating_run_and_the_window_shows_it() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "this test presses keys in a real window: run the tests as `xvfb-run -a cargo test --features heavy`"
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("states.jsonl");
    // Twice as many CPU-bound workers as cores, each run far longer than the test.
    let item = format!("threads:{}", 2 * cores);
    let list = vec![item; TRIES].join(",");
    let child = Command::new(env!("CARGO_BIN_EXE_scalelab"))
        .args(["gui", "--run", &list, "--tasks"])
        .arg((4 * cores).to_string())
        .args(["--numbers", "50000000000", "--allow-cancel", "--exit"])
        .arg("--state-log")
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .expect("the scalelab binary starts");
    let mut window = Window(child);

    let start = Instant::now();
    while !log.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "no state log");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut tail = LogTail {
        reader: BufReader::new(std::fs::File::open(&log).unwrap()),
        pending: String::new(),
    };
    let mut keys = KeySender::start();
    let mut latencies_ms = Vec::new();
    let mut window_id = String::new();
    for run in 1..=TRIES as u64 {
        tail.wait_for(run, "running", Duration::from_secs(30));
        if window_id.is_empty() {
            window_id = xdotool(&["search", "--sync", "--name", "^scalelab$"])
                .lines()
                .next()
                .unwrap()
                .to_string();
        }
        // Focus it as a window manager does on a click, then let the workers
        // saturate every core before pressing the key.
        xdotool(&["mousemove", "--window", &window_id, "700", "400"]);
        xdotool(&["windowfocus", "--sync", &window_id]);
        std::thread::sleep(Duration::from_millis(300));
        // The key goes through an xdotool already running (it reads commands
        // from stdin): the time taken is from the key entering the X server,
        // as a keyboard's would, not from starting a process on busy cores.
        let pressed = monotonic_s();
        keys.send_escape();
        let shown = tail.wait_for(run, "cancelled", Duration::from_secs(10));
        latencies_ms.push((shown - pressed) * 1000.0);
    }
    let status = window.0.wait().unwrap();
    assert!(status.success(), "the window exited with {status}");

    eprintln!("Esc to cancelled shown, ms, in order: {latencies_ms:.0?}");
    if let Some(path) = std::env::var_os("SCALELAB_CANCEL_LATENCIES") {
        let json = serde_json::to_string(&latencies_ms).unwrap();
        std::fs::write(&path, json).expect("SCALELAB_CANCEL_LATENCIES is writable");
    }
    let slowest = latencies_ms.iter().copied().fold(0.0, f64::max);
    assert!(
        slowest <= LIMIT_MS,
        "a cancel took {slowest:.0} ms to show (> {LIMIT_MS} ms): {latencies_ms:.0?}"
    );
}
