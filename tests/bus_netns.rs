//! Across hosts: `scalelab serve` in one network namespace driven by the CLI
//! and the scripted window from another; and a worker in its own network namespace, joined to the master
//! over a veth pair, runs the tasks of a master bound to the veth address,
//! over an encrypted bus, and a capture of the link (tcpdump) finds neither
//! the token nor a message in clear. Needs root, iproute2 (`ip netns`) and
//! tcpdump: without them this test fails loudly.
//!
//! Traffic stays between the two ends of the test's own veth pair, on
//! addresses of a private range chosen here and used nowhere else.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{options, spec};
use scalelab::engine::start;
use scalelab::report::RunStatus;
use scalelab::report::event::{BusEvent, Event};
use scalelab::spec::{BackendKind, BusParams, IoParams, RunSpec, WorkloadKind};

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");

/// Runs `ip ARGS`, panicking with its output when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("network namespaces are unavailable: cannot run `ip` ({e}); install iproute2 and run as root"));
    assert!(
        out.status.success(),
        "network namespaces are unavailable: `ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A namespace with one end of a veth pair in it; both removed on drop, even
/// when the test fails halfway.
struct TwoHosts {
    ns: String,
    outer: String,
    master_ip: String,
    worker_ip: String,
}

impl TwoHosts {
    /// `tag` (one letter) and `net` (the second octet) keep the tests of this
    /// file, which run at once, apart.
    fn new(tag: char, net: u8) -> TwoHosts {
        // Unique per test run: names and addresses derive from this process's id.
        let id = std::process::id();
        let hosts = TwoHosts {
            ns: format!("sl{tag}us{id}"),
            outer: format!("sl{tag}{id}o"),
            master_ip: format!("10.{net}.{}.1", id % 250),
            worker_ip: format!("10.{net}.{}.2", id % 250),
        };
        let inner = format!("sl{tag}{id}i");
        ip(&["netns", "add", &hosts.ns]);
        // From here on, drop cleans up whatever was made.
        ip(&[
            "link",
            "add",
            &hosts.outer,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &hosts.ns]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", hosts.master_ip),
            "dev",
            &hosts.outer,
        ]);
        ip(&["link", "set", &hosts.outer, "up"]);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &hosts.ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        in_ns(&[
            "addr",
            "add",
            &format!("{}/24", hosts.worker_ip),
            "dev",
            &inner,
        ]);
        in_ns(&["link", "set", &inner, "up"]);
        in_ns(&["link", "set", "lo", "up"]);
        hosts
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both; the namespace goes last.
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Every workload, one after another (the namespace's names derive from this
/// process's id), over an encrypted bus (the default beyond loopback): for io
/// and mixed, the run's latency service listens where the bus does, behind a
/// token of its own that the worker learns from its encrypted tasks.
#[test]
fn a_worker_in_another_network_namespace_runs_the_tasks_of_every_workload() {
    for workload in WorkloadKind::ALL {
        across_namespaces(workload);
    }
}

fn across_namespaces(workload: WorkloadKind) {
    let hosts = TwoHosts::new('b', 231);
    let (tasks, numbers, seed) = (6, 20_000_000, 9);
    let mut run = RunSpec {
        bus: BusParams {
            bind: format!("tcp://{}:*", hosts.master_ip),
            remote_workers: 1,
            ..BusParams::default()
        },
        ..spec(BackendKind::Bus, 1, tasks, numbers, seed)
    };
    run.workload = workload;
    run.io = IoParams {
        requests: 5,
        latency_ms: 10,
    };
    let expected_run = run.clone();
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
    // Bound beyond loopback, the bus is encrypted without being asked.
    let server_key = server_key.expect("a bus beyond loopback is encrypted by default");
    assert!(
        endpoint.starts_with(&format!("tcp://{}:", hosts.master_ip)),
        "{endpoint}"
    );
    // Everything that crosses between the two hosts, as a capture on the link.
    let capture = Capture::on(&hosts.outer);
    // What the worker says goes to a file, for the message of a failure.
    let said = std::env::temp_dir().join(format!("scalelab-{}-worker.err", hosts.ns));
    let mut worker = Command::new("ip")
        .args(["netns", "exec", &hosts.ns, EXE, "worker"])
        .args(["--connect", &endpoint, "--token", &token])
        .arg(format!("--server-key={server_key}"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    let worker_said = || std::fs::read_to_string(&said).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut joined = None;
    let report = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.events.recv_timeout(left) {
            Ok(Event::Bus(BusEvent::WorkerJoined { worker, local, .. })) => {
                assert!(!local);
                joined = Some(worker);
            }
            Ok(Event::Finished(r) | Event::Failed(r) | Event::Cancelled(r)) => break r,
            Ok(_) => {}
            Err(_) => {
                let _ = worker.kill();
                let _ = worker.wait();
                panic!(
                    "the run across namespaces did not finish in time; the worker said: {}",
                    worker_said()
                );
            }
        }
    };
    h.join();
    assert_eq!(
        report.status,
        RunStatus::Ok,
        "{workload}: {:?}; the worker said: {}",
        report.reason,
        worker_said()
    );
    let expected: Vec<_> = (0..tasks)
        .map(|t| Some(expected_run.expected_sum(t)))
        .collect();
    assert_eq!(report.sums, expected, "{workload}");
    if workload.does_io() {
        assert_eq!(
            report.io.as_ref().map(|io| io.requests),
            Some(tasks as u64 * 5)
        );
    }
    let w = joined.expect("the namespaced worker joined");
    assert!(report.task_timeline.iter().all(|t| t.worker == w));
    let t = Instant::now();
    let status = loop {
        if let Some(s) = worker.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(5) {
            let _ = worker.kill();
            let _ = worker.wait();
            panic!("the namespaced worker did not leave after the run");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}: {}", worker_said());
    let _ = std::fs::remove_file(&said);
    let wire = capture.stop();
    assert!(
        wire.len() > 2000,
        "the capture saw the run ({} bytes)",
        wire.len()
    );
    assert!(
        contains(&wire, b"CURVE"),
        "the handshake names its mechanism"
    );
    for secret in [
        token.as_bytes(),
        b"\"type\"",
        b"\"join\"",
        b"\"task\"",
        b"\"done\"",
    ] {
        assert!(
            !contains(&wire, secret),
            "{workload}: {:?} crossed the link in clear",
            String::from_utf8_lossy(secret)
        );
    }
    drop(hosts);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// tcpdump writing every TCP packet on an interface to a file, packet by packet.
struct Capture {
    child: std::process::Child,
    file: std::path::PathBuf,
    /// Its stderr, kept open: closing it would kill tcpdump with SIGPIPE.
    _err: std::io::BufReader<std::process::ChildStderr>,
}

impl Capture {
    fn on(interface: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("scalelab-{interface}.pcap"));
        let mut child = Command::new("tcpdump")
            // --immediate-mode: each packet is handed over as it comes, not
            // batched, so that none is still in the kernel's ring at the end.
            .args([
                "-i",
                interface,
                "--immediate-mode",
                "-U",
                "-n",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .arg("tcp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("tcpdump is needed (apt-get install tcpdump): {e}"));
        // It says "listening on ..." once it captures.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0 {
            if line.contains("listening on") {
                break;
            }
        }
        assert!(
            line.contains("listening on"),
            "tcpdump did not start: {line}"
        );
        Capture {
            child,
            file,
            _err: err,
        }
    }

    /// Ends tcpdump by its pid and returns what it wrote.
    fn stop(mut self) -> Vec<u8> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap()
    }
}

impl Drop for Capture {
    /// A failed test leaves no tcpdump behind (a waited-for child is not signalled again).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The chapter's E5 across hosts: `scalelab serve` listening on the veth
/// address (asked for explicitly), `scalelab run --server` and the scripted
/// window (`gui --server`, under its own Xvfb) in the other namespace.
#[test]
fn the_cli_and_the_window_in_another_namespace_run_on_the_server() {
    let hosts = TwoHosts::new('s', 232);
    let token = "netns-serve-token";
    // A host name of its own, so that "ran there" shows in every report.
    let host = "scalelab-server-232";
    let (mut server, url, _) =
        common::serve_as(Some(host), &format!("{}:0", hosts.master_ip), token);
    assert!(url.contains(&hosts.master_ip), "{url}");
    let in_ns = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &hosts.ns]).args(args);
        cmd
    };
    let out = in_ns(&[EXE, "run", "--server", &url, "--token", token])
        .args(["--backend", "processes", "--workers", "2", "--tasks", "4"])
        .args(["--numbers", "2000000", "--seed", "5", "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<u64> = (0..4)
        .map(|t| scalelab::workload::cpu::task_sum(5, t, 2_000_000))
        .collect();
    assert_eq!(v["sums"], serde_json::json!(want));
    assert_eq!(v["host"], host, "the report names the server's machine");

    let report = std::env::temp_dir().join(format!("scalelab-netns-{}.json", std::process::id()));
    let out = in_ns(&[
        "xvfb-run", "-a", EXE, "gui", "--server", &url, "--token", token,
    ])
    .args(["--run", "threads:2", "--tasks", "4", "--numbers", "2000000"])
    .args(["--seed", "5", "--exit", "--report"])
    .arg(&report)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let _ = std::fs::remove_file(&report);
    let runs = saved["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{saved}");
    assert_eq!(runs[0]["status"], "ok", "{saved}");
    assert_eq!(runs[0]["total"], want.iter().sum::<u64>());
    assert_eq!(
        runs[0]["host"], host,
        "the window's export names the server's machine"
    );
    // Both runs went to the server.
    let listed = common::server_runs(&url, token);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let _ = server.kill();
    let _ = server.wait();
}
