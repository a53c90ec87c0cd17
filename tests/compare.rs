//! `scalelab compare` end to end: scalelab's backends next to real CPython.

use std::process::Command;

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
