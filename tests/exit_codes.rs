//! Exit statuses, the same for every subcommand: 0 when it worked, 2 for input
//! the user must fix (nothing ran), 1 when the work itself failed.

use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");

fn status(args: &[&str], no_display: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(EXE);
    cmd.args(args);
    if no_display {
        cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_exits_2_for_every_subcommand() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--workers", "0"], "workers"),
        (&["run", "--backend", "bus", "--remote", "x"], "--remote"),
        (&["gui", "--run", "bogus:2"], "unknown backend"),
        (
            &[
                "gui",
                "--run",
                "threads:2",
                "--report",
                "/nonexistent/r.json",
            ],
            "report",
        ),
        (&["bench", "--seconds", "0"], "at most 600 seconds"),
        (&["bench", "--seconds", "601"], "at most 600 seconds"),
        (&["bench", "--kernel-numbers", "0"], "--kernel-numbers"),
        (&["compare", "--repeat", "0"], "1..=100"),
        (&["compare", "--repeat", "101"], "1..=100"),
        (&["compare", "--workers", "0", "--no-python"], "workers"),
        (
            &["compare", "--chart", "/nonexistent/x.png"],
            "no such folder",
        ),
        (&["sweep", "--repeat", "0"], "1..=100"),
        (&["sweep", "--workers", "1,0", "--numbers", "10"], "workers"),
        (
            &["sweep", "--workers", "2", "--numbers", "10"],
            "must include 1",
        ),
        (&["sweep", "--backends", "nosuch"], "nosuch"),
        (
            &["sweep", "--numbers", "10", "--chart", "/nonexistent/x.png"],
            "no such folder",
        ),
        (&["soak", "--runs", "0"], "1..=1000000"),
        (&["faults", "--cases", "0"], "1..=100000"),
        (
            &["worker", "--connect", "tcp://127.0.0.1:9"],
            "needs --token",
        ),
        (
            &[
                "worker",
                "--connect",
                "tcp://127.0.0.1:9",
                "--token",
                "t",
                "--join-timeout",
                "0",
            ],
            "at most 3600 seconds",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, needle) in cases {
        let (code, err) = status(args, true);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn work_that_fails_exits_1() {
    // A bus that cannot bind its endpoint: the run starts, then fails.
    let (code, err) = status(
        &[
            "run",
            "--backend",
            "bus",
            "--bind",
            "tcp://256.0.0.1:1",
            "--tasks",
            "2",
            "--numbers",
            "10",
        ],
        true,
    );
    assert_eq!(code, Some(1), "{err}");
    // A worker whose master never answers.
    let (code, err) = status(
        &[
            "worker",
            "--connect",
            "tcp://127.0.0.1:9",
            "--token",
            "t",
            "--join-timeout",
            "0.2",
        ],
        true,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no answer"), "{err}");
    // A window with no display to open on.
    let (code, err) = status(&["gui"], true);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no display"), "{err}");
}

#[test]
fn work_that_succeeds_exits_0() {
    let (code, err) = status(&["run", "--tasks", "2", "--numbers", "1000"], true);
    assert_eq!(code, Some(0), "{err}");
}
