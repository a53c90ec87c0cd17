//! `scalelab compare` end to end: scalelab's backends next to real CPython.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use scalelab::measure::compare::{
    self, CompareConfig, CompareError, CompareProgress, CompareReport,
};
use scalelab::metrics::procinfo;
use scalelab::spec::{BackendKind, IoParams};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");

fn compare(args: &[&str]) -> (Value, String) {
    let out = Command::new(EXE)
        .args([
            "compare",
            "--format",
            "json",
            "--repeat",
            "1",
            "--no-limits",
        ])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (
        serde_json::from_slice(&out.stdout).expect("one JSON report"),
        err,
    )
}

#[test]
fn the_matrix_runs_every_cell_with_the_right_sums() {
    let (v, _) = compare(&[
        "--no-python",
        "--numbers",
        "20000",
        "--workers",
        "1,3",
        "--backends",
        "threads,gil,processes,eventloop",
        "--requests",
        "2",
        "--latency-ms",
        "2",
    ]);
    let rows = v["rows"].as_array().unwrap();
    // 4 backends x 2 worker counts x 2 workloads.
    assert_eq!(rows.len(), 16);
    assert!(rows.iter().all(|r| r["sums_ok"] == true), "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["wall_s_median"].as_f64().unwrap() > 0.0)
    );
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("--no-python"))
    );
}

#[test]
fn cpython_runs_the_chapters_scripts_beside_scalelab() {
    let (v, _) = compare(&[
        "--numbers",
        "2000",
        "--workers",
        "1,8",
        "--backends",
        "threads,gil,processes",
        "--requests",
        "2",
        "--latency-ms",
        "2",
    ]);
    let rows = v["rows"].as_array().unwrap();
    let cpython: Vec<&Value> = rows
        .iter()
        .filter(|r| r["implementation"] == "cpython")
        .collect();
    assert!(
        v["python"].as_str().unwrap().starts_with("Python 3"),
        "python3 is needed: {v}"
    );
    for mode in ["serial", "threads", "processes", "threads-io", "asyncio-io"] {
        let r = cpython
            .iter()
            .find(|r| r["backend"] == mode)
            .unwrap_or_else(|| panic!("no cpython {mode}: {v}"));
        assert_eq!(r["sums_ok"], true, "{mode}");
    }
    let exps = v["experiments"].as_array().unwrap();
    for id in ["serial", "E1", "E2", "I/O threads"] {
        let e = exps
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"));
        assert!(e["scalelab_speedup_over_cpython"].as_f64().unwrap() > 0.0);
    }
    assert!(!v["checks"].as_array().unwrap().is_empty());
}

#[test]
fn a_missing_python_is_said_clearly() {
    let (v, _) = compare(&[
        "--python",
        "/nonexistent/python3",
        "--numbers",
        "1000",
        "--workers",
        "1",
        "--backends",
        "threads",
        "--requests",
        "1",
        "--latency-ms",
        "1",
    ]);
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("CPython left out") && n.contains("/nonexistent/python3")),
        "{notes:?}"
    );
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["implementation"] == "scalelab")
    );
}

#[test]
fn bad_arguments_are_refused() {
    for (args, needle) in [
        (&["--repeat", "0"][..], "--repeat"),
        (&["--workers", "0"][..], "workers"),
        (&["--chart", "/nonexistent/dir/c.png"][..], "no such folder"),
    ] {
        let out = Command::new(EXE)
            .arg("compare")
            .args(args)
            .args(["--no-python", "--no-limits"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}"
        );
    }
}

/// The comparisons run in this process go one at a time: each checks that no
/// scalelab thread is left behind.
static IN_PROCESS: Mutex<()> = Mutex::new(());

type Outcome = Result<CompareReport, CompareError>;

/// Starts `cfg` on a thread; its progress arrives on the receiver.
fn start(
    cfg: CompareConfig,
) -> (
    JoinHandle<Outcome>,
    crossbeam_channel::Receiver<CompareProgress>,
) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let t = std::thread::spawn(move || {
        compare::run(&cfg, |p| {
            let _ = tx.send(p.clone());
        })
    });
    (t, rx)
}

/// Waits (a few seconds at most) for the comparison to return after its cancel flag was set.
fn returns_soon(t: JoinHandle<Outcome>) -> Outcome {
    let asked = Instant::now();
    while !t.is_finished() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "the comparison still runs 5 s after its cancel"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.join().unwrap()
}

#[test]
fn a_cancelled_comparison_stops_its_engine_run_and_starts_no_further_step() {
    let _one = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = CompareConfig {
        // One worker on 8 x 2,000,000,000 numbers: the first step alone would take a minute.
        tasks: 8,
        numbers: 2_000_000_000,
        workers: vec![1],
        backends: vec![BackendKind::Threads],
        repeat: 3,
        python: None,
        options: common::options(),
        ..CompareConfig::default()
    };
    let cancel = cfg.cancel.clone();
    let (t, progress) = start(cfg);
    let first = progress
        .recv_timeout(Duration::from_secs(30))
        .expect("the first step never started");
    // cpu and io for threads x1, then the limits.
    assert_eq!(first.to_string(), "step 1 of 3: scalelab threads x1 (cpu)");
    assert_eq!(first.done, 0.0);
    // Let its engine run get going, then cancel.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!t.is_finished(), "the first step ended already");
    cancel.store(true, Ordering::Relaxed);
    let outcome = returns_soon(t);
    assert_eq!(outcome.unwrap_err(), CompareError::Cancelled);
    let later: Vec<CompareProgress> = progress.try_iter().collect();
    assert!(
        later.is_empty(),
        "steps started after the cancel: {later:?}"
    );
    let left = common::scalelab_threads();
    assert!(left.is_empty(), "threads of the comparison left: {left:?}");
}

/// Pids of the processes (zombies aside) running this process's CPython scripts.
fn running_our_scripts() -> Vec<u32> {
    let needle = format!("scalelab-chapter-{}-", std::process::id());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .filter(|&p| procinfo::is_running(p))
        .collect()
}

#[test]
fn a_cancelled_comparison_kills_the_cpython_run_in_progress() {
    // CPython is part of what this test checks: without it, it fails (`.ci/run`
    // and every Debian machine have python3); it never skips itself into green.
    assert!(
        Command::new("python3").arg("--version").output().is_ok(),
        "python3 is needed: the comparison runs the chapter's scripts in it"
    );
    let _one = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = CompareConfig {
        // The chapter's size: scalelab's steps take milliseconds, CPython's serial run seconds.
        tasks: 8,
        numbers: 1_000_000,
        workers: vec![1],
        backends: vec![BackendKind::Threads],
        repeat: 1,
        io: IoParams {
            requests: 1,
            latency_ms: 1,
        },
        limits: false,
        options: common::options(),
        ..CompareConfig::default()
    };
    let cancel = cfg.cancel.clone();
    let (t, progress) = start(cfg);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = progress
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("CPython's serial run never started");
        if p.what == "cpython serial x1" {
            assert_eq!((p.step, p.steps), (3, 8), "{p}");
            assert!(p.done > 0.0 && p.done < 0.05, "{p:?}");
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let python = loop {
        let pids = running_our_scripts();
        if !pids.is_empty() {
            break pids;
        }
        assert!(Instant::now() < deadline, "no CPython process seen");
        std::thread::sleep(Duration::from_millis(10));
    };
    cancel.store(true, Ordering::Relaxed);
    let outcome = returns_soon(t);
    assert_eq!(outcome.unwrap_err(), CompareError::Cancelled);
    for p in &python {
        assert!(!procinfo::is_running(*p), "CPython process {p} still runs");
    }
    let left = running_our_scripts();
    assert!(left.is_empty(), "CPython processes left: {left:?}");
    let later: Vec<CompareProgress> = progress.try_iter().collect();
    assert!(
        later.is_empty(),
        "steps started after the cancel: {later:?}"
    );
    let left = common::scalelab_threads();
    assert!(left.is_empty(), "threads of the comparison left: {left:?}");
}
