//! SIGKILL the scalelab process (CLI, and the GUI in scripted mode) during
//! `processes` and `bus` runs: every worker is gone within a second.
//! The GUI cases need an X display: run the tests under `xvfb-run -a`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scalelab::metrics::clocks::reap_child;
use scalelab::metrics::procinfo::{children_of, is_running};

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");

/// Starts `args`, waits for its `workers` worker processes, SIGKILLs it, and
/// checks that every worker is gone within a second.
#[allow(clippy::zombie_processes)] // reaped with wait4 below
fn kill_master_and_watch(args: &[&str], workers: usize) {
    let master = Command::new(EXE)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = master.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let children = loop {
        let c: Vec<u32> = children_of(pid).into_iter().map(|(p, _)| p).collect();
        if c.len() >= workers {
            break c;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            reap_child(pid);
            panic!("{args:?}: only {} of {workers} workers started", c.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let them get to work.
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    reap_child(pid).unwrap();
    let killed = Instant::now();
    while children.iter().any(|c| is_running(*c)) {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "{args:?}: workers {children:?} outlived their master by a second"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killing_the_cli_during_a_bus_run_ends_its_workers() {
    kill_master_and_watch(
        &[
            "run",
            "--backend",
            "bus",
            "--workers",
            "3",
            "--numbers",
            "100000000000",
        ],
        3,
    );
}

#[test]
#[cfg_attr(
    not(feature = "heavy"),
    ignore = "heavy tier: opens a real window (xvfb-run -a cargo test --features heavy)"
)]
fn killing_the_gui_during_processes_and_bus_runs_ends_their_workers() {
    assert!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "this test opens the real window: run the tests under `xvfb-run -a cargo test --features heavy`"
    );
    for backend in ["processes", "bus"] {
        let run = format!("{backend}:3");
        kill_master_and_watch(
            &[
                "gui",
                "--run",
                &run,
                "--tasks",
                "8",
                "--numbers",
                "100000000000",
                "--exit",
            ],
            3,
        );
    }
}
