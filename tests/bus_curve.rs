//! CurveZMQ on the bus: with encryption on, nothing a worker and its master
//! say can be read on the wire, and a worker that pins the wrong key cannot
//! join. The wire is captured by a relay the remote worker connects through:
//! every byte between them passes it and is kept.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{finish, options, spec};
use scalelab::engine::{RunHandle, start};
use scalelab::report::event::{BusEvent, Event};
use scalelab::report::{RunReport, RunStatus};
use scalelab::spec::{BackendKind, BusParams, IoParams, RunSpec, WorkloadKind};

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");
const TOKEN: &str = "curve-test-token-5f3a9c1e";

/// A TCP relay on loopback that records every byte it passes, both ways.
struct Tap {
    port: u16,
    wire: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    /// Forwards each connection made to it to `target` (`HOST:PORT`).
    fn to(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let wire = Arc::new(Mutex::new(Vec::new()));
        let kept = wire.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&target) else {
                    return;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let kept = kept.clone();
                    std::thread::spawn(move || pump(from, to, &kept));
                }
            }
        });
        Self { port, wire }
    }

    fn seen(&self) -> Vec<u8> {
        self.wire.lock().unwrap().clone()
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, kept: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        kept.lock().unwrap().extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The endpoint and server key the run announces.
fn listening(h: &RunHandle) -> (String, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.events.recv_timeout(left).expect("the bus listens") {
            Event::Bus(BusEvent::Listening {
                endpoint,
                server_key,
                ..
            }) => return (endpoint, server_key),
            e => assert!(!e.is_terminal(), "{e:?}"),
        }
    }
}

/// A mixed run (tasks, results, latencies and the latency service's address
/// all cross the bus) with one worker, remote, which connects through a tap.
/// Returns what the tap saw and the run's report.
fn run_through_tap(encrypt: bool) -> (Vec<u8>, Box<RunReport>, RunSpec) {
    let mut run = RunSpec {
        bus: BusParams {
            remote_workers: 1,
            token: Some(TOKEN.into()),
            encrypt: Some(encrypt),
            verify_percent: 100,
            ..BusParams::default()
        },
        ..spec(BackendKind::Bus, 1, 8, 200_000, 31)
    };
    run.workload = WorkloadKind::Mixed;
    run.io = IoParams {
        requests: 3,
        latency_ms: 5,
    };
    let h = start(run.clone(), options()).unwrap();
    let (endpoint, server_key) = listening(&h);
    assert_eq!(
        server_key.is_some(),
        encrypt,
        "a key exactly when encrypted"
    );
    let port = endpoint.rsplit_once(':').unwrap().1;
    let tap = Tap::to(format!("127.0.0.1:{port}"));
    let mut worker = Command::new(EXE);
    worker
        .args([
            "worker",
            "--connect",
            &format!("tcp://127.0.0.1:{}", tap.port),
        ])
        .args(["--token", TOKEN])
        .stdin(Stdio::null());
    if let Some(key) = &server_key {
        worker.arg(format!("--server-key={key}"));
    }
    let mut worker = worker.spawn().unwrap();
    let (events, report) = finish(h, 60);
    let _ = worker.kill();
    let _ = worker.wait();
    let remote_joined = events
        .iter()
        .any(|e| matches!(e, Event::Bus(BusEvent::WorkerJoined { local: false, .. })));
    assert!(remote_joined, "the worker behind the tap joined");
    (tap.seen(), report, run)
}

#[test]
fn encrypted_the_token_tasks_and_results_cannot_be_read_on_the_wire() {
    let (wire, report, run) = run_through_tap(true);
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.reason);
    let expected: Vec<_> = (0..run.tasks).map(|t| Some(run.expected_sum(t))).collect();
    assert_eq!(report.sums, expected);
    assert!(
        wire.len() > 1000,
        "the tap saw the traffic ({} bytes)",
        wire.len()
    );
    for secret in [
        TOKEN.as_bytes(),
        b"\"type\"",
        b"join",
        b"welcome",
        b"task",
        b"done",
        b"latency_ms",
        b"heartbeat",
        b"127.0.0.1",
    ] {
        assert!(
            !contains(&wire, secret),
            "{:?} crossed the wire in clear",
            String::from_utf8_lossy(secret)
        );
    }
    // What does cross: ZeroMQ's CURVE handshake, by name.
    assert!(contains(&wire, b"CURVE"));
    assert!(contains(&wire, b"HELLO"));
}

/// The control: without encryption the same tap reads it all, so the test
/// above would see a leak.
#[test]
fn unencrypted_the_same_tap_reads_the_token_and_the_frames() {
    let (wire, report, _) = run_through_tap(false);
    assert_eq!(report.status, RunStatus::Ok, "{:?}", report.reason);
    assert!(contains(&wire, TOKEN.as_bytes()));
    assert!(contains(&wire, b"\"type\":\"task\""));
    assert!(contains(&wire, b"\"type\":\"done\""));
    assert!(contains(&wire, b"latency_ms"));
}

/// A worker that pins another key, or none, never joins: it says why and
/// exits, and the run sees no worker join.
#[test]
fn a_worker_with_the_wrong_server_key_or_none_cannot_join() {
    let other_key = {
        // Another master's key: a run of its own, which ends at once.
        let h = start(
            RunSpec {
                bus: BusParams {
                    encrypt: Some(true),
                    ..BusParams::default()
                },
                ..spec(BackendKind::Bus, 1, 1, 10, 1)
            },
            options(),
        )
        .unwrap();
        let (_, key) = listening(&h);
        finish(h, 30);
        key.unwrap()
    };
    let h = start(
        RunSpec {
            bus: BusParams {
                remote_workers: 1,
                token: Some(TOKEN.into()),
                encrypt: Some(true),
                join_timeout_s: 0,
                ..BusParams::default()
            },
            ..spec(BackendKind::Bus, 1, 2, 10, 1)
        },
        options(),
    )
    .unwrap();
    let (endpoint, key) = listening(&h);
    assert_ne!(key.as_deref(), Some(other_key.as_str()));
    for (pinned, why) in [
        (
            Some(other_key.as_str()),
            "the --server-key is not this master's",
        ),
        (None, "the master's bus is encrypted"),
    ] {
        let mut cmd = Command::new(EXE);
        cmd.args(["worker", "--connect", &endpoint, "--token", TOKEN])
            .args(["--join-timeout", "10"])
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(k) = pinned {
            cmd.arg(format!("--server-key={k}"));
        }
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(why), "{err}");
        // It gives up on the failing handshakes, not at its join timeout.
        assert!(started.elapsed() < Duration::from_secs(9), "{err}");
    }
    h.cancel();
    let (events, report) = finish(h, 30);
    assert_eq!(report.status, RunStatus::Cancelled);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Bus(BusEvent::WorkerJoined { .. }))),
        "nobody joined"
    );
}

/// The key pair kept with --keys: made once (mode 600), then the same public
/// key run after run, so workers can pin it; printed in the join command.
#[test]
fn a_key_file_keeps_the_masters_key_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("bus.keys");
    let announced = || {
        let out = Command::new(EXE)
            .args(["run", "--backend", "bus", "--workers", "1", "--tasks", "1"])
            .args(["--numbers", "1000", "--encrypt", "--keys"])
            .arg(&keys)
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let key = err
            .split("--server-key='")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or_else(|| panic!("no --server-key in {err}"))
            .to_string();
        key
    };
    let first = announced();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&keys).unwrap().contains(&first));
    assert_eq!(announced(), first);
}

/// About one key in 85 begins with '-'. The join command's `--server-key=KEY`
/// form keeps it a value, and so does the spaced form a user might type.
#[test]
fn a_server_key_that_begins_with_a_dash_is_taken_as_a_key() {
    let key = format!("-{}", "0".repeat(39));
    assert!(
        scalelab::report::event::join_command("tcp://h:1", "t", Some(&key))
            .ends_with(&format!("--server-key='{key}'"))
    );
    let eq = format!("--server-key={key}");
    for form in [vec![eq.as_str()], vec!["--server-key", key.as_str()]] {
        let out = Command::new(EXE)
            .args(["worker", "--connect", "tcp://127.0.0.1:9", "--token", TOKEN])
            .args(["--join-timeout", "0.5"])
            .args(&form)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(!err.contains("unexpected argument"), "{form:?}: {err}");
        assert!(!err.contains("not a CURVE key"), "{form:?}: {err}");
    }
}
