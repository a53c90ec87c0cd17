//! The command line: JSON output holds the documented fields, %CPU agrees with
//! what `time` measures, and bad input is refused with a message.

use std::process::{Command, Stdio};

use scalelab::metrics::clocks::reap_child;
use scalelab::metrics::procinfo;
use scalelab::workload::cpu::task_sum;
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");

fn run_json(args: &[&str]) -> Value {
    let out = Command::new(EXE)
        .args(["run", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn json_output_holds_every_documented_field() {
    for backend in ["threads", "processes", "gil", "eventloop"] {
        let v = run_json(&[
            "--backend",
            backend,
            "--workers",
            "3",
            "--tasks",
            "5",
            "--numbers",
            "100000",
            "--seed",
            "7",
        ]);
        for field in [
            "backend",
            "workload",
            "workers",
            "tasks",
            "numbers_per_task",
            "seed",
            "status",
            "sums",
            "total",
            "wall_s",
            "user_s",
            "sys_s",
            "cpu_percent",
            "cores",
            "host",
            "task_timeline",
            "cpu_timeline",
        ] {
            assert!(v.get(field).is_some(), "{backend}: no {field} in {v}");
        }
        assert_eq!(v["backend"], backend);
        assert_eq!(v["workload"], "cpu");
        assert_eq!(v["workers"], 3);
        assert_eq!(v["numbers_per_task"], 100_000);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["host"], scalelab::metrics::procinfo::host_name());
        let sums: Vec<u64> = v["sums"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (0..5).map(|t| task_sum(7, t, 100_000)).collect();
        assert_eq!(sums, expected, "{backend}");
        assert_eq!(v["total"].as_u64().unwrap(), expected.iter().sum::<u64>());
        assert_eq!(v["task_timeline"].as_array().unwrap().len(), 5);
        let sample = &v["cpu_timeline"][0];
        assert!(
            sample["per_core"].as_array().unwrap().len() == v["cores"].as_u64().unwrap() as usize
        );
    }
}

#[test]
fn io_runs_report_latencies_and_gil_runs_their_gil() {
    let v = run_json(&[
        "--backend",
        "gil",
        "--workload",
        "mixed",
        "--workers",
        "2",
        "--tasks",
        "2",
        "--numbers",
        "1000000",
        "--requests",
        "3",
        "--latency-ms",
        "2",
        "--switch-interval-ms",
        "1",
    ]);
    assert_eq!(v["io_stats"]["requests"], 6);
    assert!(v["io_stats"]["latency_ms_p50"].as_f64().unwrap() >= 2.0);
    assert_eq!(v["gil_stats"]["switch_interval_ms"], 1.0);
    assert_eq!(v["gil_stats"]["per_worker"].as_array().unwrap().len(), 2);
    assert!(!v["gil_stats"]["holds"].as_array().unwrap().is_empty());
    // The spec's knobs keep their own names beside the measurements: one
    // key each, so that the spec part reads back as the run's spec.
    assert_eq!(v["io"]["requests"], 3);
    assert_eq!(v["io"]["latency_ms"], 2);
    assert_eq!(v["gil"]["switch_interval_us"], 1000);
    let spec: scalelab::spec::RunSpec = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(spec.gil.switch_interval_us, 1000);
    assert_eq!(spec.workers, 2);
}

#[test]
#[allow(clippy::zombie_processes)] // reaped with wait4, which also gives its rusage
fn cpu_percent_agrees_with_what_time_measures() {
    // What /usr/bin/time reports: the child's rusage over its wall time.
    let t = std::time::Instant::now();
    let child = Command::new(EXE)
        .args([
            "run",
            "--format",
            "json",
            "--workers",
            "2",
            "--tasks",
            "8",
            "--numbers",
            "60000000",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
    let (exit, cpu) = reap_child(pid).unwrap();
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(exit, scalelab::metrics::clocks::ChildExit::Code(0));
    let time_percent = 100.0 * cpu.total_s() / wall;
    let v: Value = serde_json::from_str(&text).unwrap();
    let ours = v["cpu_percent"].as_f64().unwrap();
    assert!(
        (ours - time_percent).abs() <= 10.0,
        "scalelab says {ours:.1} %CPU, time would say {time_percent:.1} %"
    );
}

#[test]
fn text_output_prints_sums_and_a_time_line() {
    let out = Command::new(EXE)
        .args([
            "run",
            "--workers",
            "2",
            "--tasks",
            "3",
            "--numbers",
            "1000",
            "--seed",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("task 2: {}", task_sum(1, 2, 1000))),
        "{text}"
    );
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("user")
            && last.contains("system")
            && last.contains("% cpu")
            && last.ends_with("total"),
        "{last}"
    );
}

#[test]
fn bad_input_is_refused_with_a_message_and_a_failing_status() {
    let cases: &[(&[&str], &str)] = &[
        (&["--workers", "0"], "workers"),
        (&["--workers", "1025"], "workers"),
        (&["--workers", "-3"], "-3"),
        (&["--workers", "many"], "--workers"),
        (&["--workers", ""], "--workers"),
        (&["--tasks", "0"], "tasks"),
        (&["--numbers", "0"], "numbers"),
        (&["--numbers", "18446744073709551615"], "overflow"),
        (&["--backend", "fibers"], "fibers"),
        (&["--workload", "io", "--requests", "0"], "requests"),
        (
            &["--backend", "gil", "--switch-interval-ms", "0"],
            "switch_interval",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(EXE).arg("run").args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed a result");
    }
}

/// Pids of the processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    procinfo::children_of(pid)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

#[test]
#[allow(clippy::zombie_processes)] // reaped with wait4 below
fn killing_the_cli_ends_its_worker_processes_within_a_second() {
    let child = Command::new(EXE)
        .args([
            "run",
            "--backend",
            "processes",
            "--workers",
            "3",
            "--numbers",
            "100000000000",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let workers = loop {
        let w = children_of(pid);
        if w.len() == 3 {
            break w;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workers never started: {w:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    reap_child(pid).unwrap();
    let killed = std::time::Instant::now();
    // A worker that died but waits to be reaped by its new parent (init) counts as gone.
    while workers.iter().any(|w| procinfo::is_running(*w)) {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(1),
            "workers {workers:?} outlived their master by a second"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn garbage_on_a_workers_stdin_ends_it_with_a_message() {
    use std::io::Write;
    for garbage in [
        &b"\xff\xff\xff\xff"[..],         // a frame far over the size limit
        b"\x05\0\0\0hello",               // not JSON
        b"\x0f\0\0\0{\"type\":\"task\"}", // a task missing its fields
        b"\x03\0",                        // a truncated length
    ] {
        let mut child = Command::new(EXE)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(garbage).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{garbage:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("worker: bad input from the master"),
            "{garbage:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn two_scalelab_runs_at_once_do_not_disturb_each_other() {
    let spawn = |backend: &str| {
        Command::new(EXE)
            .args([
                "run",
                "--format",
                "json",
                "--backend",
                backend,
                "--workers",
                "4",
            ])
            .args(["--tasks", "8", "--numbers", "20000000", "--seed", "3"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("processes"), spawn("processes"));
    let expected: Vec<u64> = (0..8).map(|t| task_sum(3, t, 20_000_000)).collect();
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let sums: Vec<u64> = v["sums"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        assert_eq!(sums, expected);
    }
}

#[test]
fn sweep_writes_one_row_per_point_its_fit_and_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sweep.png");
    let out = Command::new(EXE)
        .args(["sweep", "--backends", "threads,gil", "--workers", "2,1"])
        .args([
            "--tasks",
            "4",
            "--numbers",
            "300000",
            "--repeat",
            "2",
            "--format",
            "csv",
        ])
        .arg("--chart")
        .arg(&png)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("sweep: point 1 of 8: threads x1"),
        "{stderr}"
    );
    assert!(stderr.contains("sweep: point 8 of 8: gil x2"), "{stderr}");
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let col = |row: &Vec<&str>, name: &str| -> String {
        row[header.iter().position(|h| *h == name).unwrap()].to_string()
    };
    for row in &rows {
        let s: f64 = col(row, "serial_fraction").parse().unwrap();
        assert!((0.0..=1.0).contains(&s), "{csv}");
        if col(row, "workers") == "1" {
            assert_eq!(col(row, "speedup_median").parse::<f64>().unwrap(), 1.0);
        }
    }
    let img = image::open(&png).expect("a PNG").to_rgb8();
    assert!(img.width() >= 1200);
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "the chart looks blank");

    // Without one worker there is nothing to measure speed-up against.
    let out = Command::new(EXE)
        .args(["sweep", "--workers", "2,4", "--numbers", "1000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers must include 1"));
}
