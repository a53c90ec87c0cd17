//! The Python worker in examples/, written from docs/PROTOCOL.md alone, joins a
//! bus run and its results are accepted with the right sums. Needs python3 and
//! pyzmq (`.ci/run` installs them): without them this test fails, it never skips.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{options, spec};
use scalelab::engine::start;
use scalelab::report::RunStatus;
use scalelab::report::event::{BusEvent, Event};
use scalelab::spec::{BackendKind, BusParams, RunSpec};
use scalelab::workload::cpu::task_sum;

const WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python_worker.py");

fn require_pyzmq() {
    let out = Command::new("python3")
        .args(["-c", "import zmq; print(zmq.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to test the Python worker: {e}"));
    assert!(
        out.status.success(),
        "pyzmq is needed to test the Python worker (pip install pyzmq): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_worker_s_results_are_accepted_with_the_right_sums() {
    // Long enough for progress reports and heartbeats during a task.
    python_run(4, 40_001, u64::MAX - 3);
}

#[test]
fn the_python_worker_runs_tasks_sent_early_in_order() {
    // Tasks this short are prefetched: the next arrives while one runs.
    python_run(60, 11, 77);
}

/// pyzmq's own libzmq and libsodium complete the CURVE handshake with ours.
#[test]
fn the_python_worker_joins_an_encrypted_bus_with_the_printed_key() {
    python_run_with(6, 5_003, 5, true);
}

fn python_run(tasks: u32, numbers: u64, seed: u64) {
    python_run_with(tasks, numbers, seed, false)
}

fn python_run_with(tasks: u32, numbers: u64, seed: u64, encrypt: bool) {
    require_pyzmq();
    let run = RunSpec {
        bus: BusParams {
            remote_workers: 1,
            encrypt: Some(encrypt),
            ..BusParams::default()
        },
        ..spec(BackendKind::Bus, 1, tasks, numbers, seed)
    };
    let h = start(run, options()).unwrap();
    let (endpoint, token, server_key) = loop {
        match h.events.recv_timeout(Duration::from_secs(10)).unwrap() {
            Event::Bus(BusEvent::Listening {
                endpoint,
                token,
                server_key,
            }) => break (endpoint, token, server_key),
            e => assert!(!e.is_terminal(), "{e:?}"),
        }
    };
    assert_eq!(server_key.is_some(), encrypt);
    let mut py = Command::new("python3")
        .args([WORKER, "--connect", &endpoint, "--token", &token])
        .args(server_key.iter().map(|k| format!("--server-key={k}")))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut joined = None;
    let report = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.events.recv_timeout(left) {
            Ok(Event::Bus(BusEvent::WorkerJoined {
                worker, pid, local, ..
            })) => {
                assert!(!local);
                assert_eq!(pid, py.id());
                joined = Some(worker);
            }
            Ok(Event::Finished(r) | Event::Failed(r) | Event::Cancelled(r)) => break r,
            Ok(_) => {}
            Err(_) => {
                let _ = py.kill();
                panic!("the Python worker did not finish the run in time");
            }
        }
    };
    h.join();
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.reason);
    let expected: Vec<_> = (0..tasks)
        .map(|t| Some(task_sum(seed, t as u64, numbers)))
        .collect();
    assert_eq!(report.sums, expected);
    let py_worker = joined.expect("the Python worker joined");
    assert!(report.task_timeline.iter().all(|t| t.worker == py_worker));
    assert_eq!(report.task_timeline.len(), tasks as usize);
    assert!(report.user_s > 0.0, "the CPU time it reported is counted");
    // `stop` at the end of the run: it leaves cleanly.
    let t = Instant::now();
    let status = loop {
        if let Some(s) = py.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the Python worker stays"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_python_worker_is_refused_with_a_wrong_token() {
    require_pyzmq();
    let run = RunSpec {
        bus: BusParams {
            remote_workers: 1,
            token: Some("the-right-one".into()),
            ..BusParams::default()
        },
        ..spec(BackendKind::Bus, 1, 1, 10, 1)
    };
    let h = start(run, options()).unwrap();
    let endpoint = loop {
        if let Event::Bus(BusEvent::Listening { endpoint, .. }) =
            h.events.recv_timeout(Duration::from_secs(10)).unwrap()
        {
            break endpoint;
        }
    };
    let out = Command::new("python3")
        .args([WORKER, "--connect", &endpoint, "--token", "a-wrong-one"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.cancel();
}

#[test]
fn an_io_run_whose_only_worker_declines_io_fails_with_its_reason() {
    require_pyzmq();
    let mut run = RunSpec {
        bus: BusParams {
            remote_workers: 1,
            ..BusParams::default()
        },
        ..spec(BackendKind::Bus, 1, 2, 0, 1)
    };
    run.workload = scalelab::spec::WorkloadKind::Io;
    let h = start(run, options()).unwrap();
    let (endpoint, token) = loop {
        match h.events.recv_timeout(Duration::from_secs(10)).unwrap() {
            Event::Bus(BusEvent::Listening {
                endpoint, token, ..
            }) => break (endpoint, token),
            e => assert!(!e.is_terminal(), "{e:?}"),
        }
    };
    let mut py = Command::new("python3")
        .args([WORKER, "--connect", &endpoint, "--token", &token])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let report = loop {
        match h.events.recv_timeout(Duration::from_secs(30)) {
            Ok(Event::Finished(r) | Event::Failed(r) | Event::Cancelled(r)) => break r,
            Ok(_) => {}
            Err(_) => {
                let _ = py.kill();
                panic!("the run neither ended nor failed: a silent hang");
            }
        }
    };
    h.join();
    assert_eq!(report.status, RunStatus::Failed);
    let reason = report.reason.unwrap();
    assert!(
        reason.starts_with("no connected worker runs the io workload: worker 0 (")
            && reason.ends_with("io is not implemented by the python worker"),
        "{reason}"
    );
    // It was sent `stop`, and leaves cleanly.
    let t = Instant::now();
    let status = loop {
        if let Some(s) = py.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the Python worker stays"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
}
