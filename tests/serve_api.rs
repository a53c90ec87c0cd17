//! `scalelab serve`: the engine over HTTP. The token guards every call, bad
//! bodies get a 4xx with a reason, a served run gives the report the CLI gives,
//! late listeners replay what they missed, runs go one at a time, cancel works,
//! the cores stream ticks, and killing the server ends its workers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use scalelab::metrics::procinfo;
use scalelab::report::event::Event;
use scalelab::workload::cpu::task_sum;
use serde_json::{Value, json};

mod common;

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");
const TOKEN: &str = "serve-test-token";

/// A `scalelab serve` on an ephemeral loopback port, killed by its pid on drop.
struct Served {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Served {
    fn start() -> Self {
        let (child, url, token) = common::serve("127.0.0.1:0", TOKEN);
        assert_eq!(token, TOKEN, "it prints the token it checks");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self { child, url, agent }
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = self.agent.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path, Some(TOKEN));
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn post(&self, body: &[u8]) -> (u16, Value) {
        let mut resp = self
            .agent
            .post(format!("{}/api/v1/runs", self.url))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn submit(&self, spec: &Value) -> u64 {
        let (status, v) = self.post(spec.to_string().as_bytes());
        assert_eq!(status, 201, "{v}");
        v["id"].as_u64().unwrap()
    }

    fn delete(&self, id: u64) -> u16 {
        let resp = self
            .agent
            .delete(format!("{}/api/v1/runs/{id}", self.url))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        resp.status().as_u16()
    }

    /// The `data:` lines of an event stream, as they come.
    fn stream(&self, path: &str) -> impl Iterator<Item = Value> + use<> {
        let resp = self
            .agent
            .get(format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        BufReader::new(resp.into_body().into_reader())
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("data:").map(|d| d.trim().to_string()))
            .map(|d| serde_json::from_str(&d).unwrap())
    }

    /// Every event of run `id`, from its first to its terminal one.
    fn events(&self, id: u64) -> Vec<Value> {
        self.stream(&format!("/api/v1/runs/{id}/events")).collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_spec(workers: u32, tasks: u32, numbers: u64, seed: u64) -> Value {
    json!({
        "backend": "threads",
        "workload": "cpu",
        "workers": workers,
        "tasks": tasks,
        "numbers_per_task": numbers,
        "seed": seed,
    })
}

#[test]
fn every_call_needs_the_token_and_a_refusal_says_nothing() {
    let s = Served::start();
    for path in ["/api/v1/machine", "/api/v1/runs", "/api/v1/runs/1", "/nope"] {
        for token in [None, Some("wrong"), Some("")] {
            let (status, body) = s.get(path, token);
            assert_eq!(status, 401, "{path} with {token:?}");
            assert!(body.is_empty(), "{path}: a 401 says nothing: {body}");
        }
    }
    // A token that only begins like the right one is wrong too.
    let (status, _) = s.get("/api/v1/machine", Some(&TOKEN[..TOKEN.len() - 1]));
    assert_eq!(status, 401);
    let m = s.json("/api/v1/machine");
    assert!(!m["host"].as_str().unwrap().is_empty());
    assert_eq!(
        m["cores"].as_u64().unwrap() as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(m["cpu_model"].is_string());
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_openapi_document_lists_every_call_and_the_spec() {
    let s = Served::start();
    let (status, _) = s.get("/api/v1/openapi.json", None);
    assert_eq!(status, 401);
    let doc = s.json("/api/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = &doc["paths"];
    for (path, method) in [
        ("/api/v1/machine", "get"),
        ("/api/v1/cores", "get"),
        ("/api/v1/runs", "get"),
        ("/api/v1/runs", "post"),
        ("/api/v1/runs/{id}", "get"),
        ("/api/v1/runs/{id}", "delete"),
        ("/api/v1/runs/{id}/events", "get"),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path}: no 401"
        );
    }
    let spec = &doc["components"]["schemas"]["RunSpec"];
    for field in [
        "backend",
        "workload",
        "workers",
        "tasks",
        "numbers_per_task",
        "seed",
    ] {
        assert!(
            spec["required"].as_array().unwrap().contains(&json!(field)),
            "{field}"
        );
    }
    assert_eq!(spec["properties"]["workers"]["maximum"], 1024);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn bad_bodies_get_a_4xx_with_the_clis_reason() {
    let s = Served::start();
    // The same message the CLI gives for the same mistake.
    let cli = Command::new(EXE)
        .args(["run", "--workers", "0"])
        .output()
        .unwrap();
    let cli_err = String::from_utf8_lossy(&cli.stderr);
    let (status, v) = s.post(cpu_spec(0, 4, 1000, 1).to_string().as_bytes());
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "workers");
    let message = v["error"].as_str().unwrap();
    assert!(cli_err.contains(message), "CLI: {cli_err}, API: {message}");

    let mut bad_backend = cpu_spec(1, 1, 1000, 1);
    bad_backend["backend"] = json!("fibers");
    let (status, v) = s.post(bad_backend.to_string().as_bytes());
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("fibers"), "{v}");

    // A misspelt knob is named, not run with its default.
    for (field, body) in [
        ("worker", json!({"worker": 4})),
        ("io.request", json!({"io": {"request": 4}})),
        ("bus.remote", json!({"bus": {"remote": 1}})),
    ] {
        let mut spec = cpu_spec(1, 1, 1000, 1);
        for (k, v) in body.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let (status, v) = s.post(spec.to_string().as_bytes());
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["field"], field, "{v}");
    }
    for path in ["/api/v1/runs/-1", "/api/v1/runs/x/events"] {
        let (status, body) = s.get(path, Some(TOKEN));
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["field"], "id", "{body}");
    }
    // The server's files are not the caller's to name.
    let mut keys = cpu_spec(1, 1, 1000, 1);
    keys["bus"] = json!({"keys": "/tmp/scalelab-api-test.keys"});
    let (status, v) = s.post(keys.to_string().as_bytes());
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["field"], "bus.keys");
    assert!(!std::path::Path::new("/tmp/scalelab-api-test.keys").exists());

    for body in [&b"{not json"[..], b"", b"[]", b"{\"backend\": \"threads\"}"] {
        let (status, v) = s.post(body);
        assert_eq!(status, 400, "{:?}: {v}", String::from_utf8_lossy(body));
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
    let huge = vec![b' '; 64 * 1024 + 1];
    let (status, _) = s.post(&huge);
    assert_eq!(status, 413, "a body over 64 KiB is refused");
    for path in ["/api/v1/runs/999", "/api/v1/runs/999/events"] {
        let (status, body) = s.get(path, Some(TOKEN));
        assert_eq!(status, 404, "{path}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("999"), "{body}");
    }
    assert_eq!(s.delete(999), 404);
    // Nothing of that was queued.
    assert_eq!(s.json("/api/v1/runs"), json!([]));
}

#[test]
fn a_served_run_reports_what_the_cli_reports_and_late_listeners_replay_it() {
    let s = Served::start();
    let spec = cpu_spec(2, 6, 200_000, 73);
    let id = s.submit(&spec);
    let events = s.events(id);
    assert_eq!(events.first().unwrap()["type"], "started");
    assert_eq!(events.last().unwrap()["type"], "finished");
    let finished = events
        .iter()
        .filter(|e| e["type"] == "task_finished")
        .count();
    assert_eq!(finished, 6);
    // Each event is the engine's own, as JSON that reads back as one.
    for e in &events {
        serde_json::from_value::<Event>(e.clone()).unwrap_or_else(|err| panic!("{err}: {e}"));
    }
    let report = s.json(&format!("/api/v1/runs/{id}"));
    let cli: Value = serde_json::from_slice(
        &Command::new(EXE)
            .args(["run", "--format", "json", "--workers", "2", "--tasks", "6"])
            .args(["--numbers", "200000", "--seed", "73"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&report),
        keys(&cli),
        "the same fields as the CLI's JSON"
    );
    for field in [
        "sums", "total", "status", "backend", "workers", "io", "gil", "bus",
    ] {
        assert_eq!(report[field], cli[field], "{field}");
    }
    let sums: Vec<u64> = (0..6).map(|t| task_sum(73, t, 200_000)).collect();
    assert_eq!(report["sums"], json!(sums));
    // The terminal event carries the same report.
    assert_eq!(events.last().unwrap()["data"]["sums"], report["sums"]);
    // A listener that comes after the end gets the whole run again.
    assert_eq!(s.events(id), events);
    let history = s.json("/api/v1/runs");
    assert_eq!(history[0]["id"], id);
    assert_eq!(history[0]["status"], "ok");
    assert_eq!(history[0]["total"], report["total"]);
    assert_eq!(history[0]["host"], s.json("/api/v1/machine")["host"]);
}

#[test]
fn runs_queue_one_at_a_time_and_cancel_ends_them() {
    let s = Served::start();
    // Long enough to be cancelled while it goes.
    let long = s.submit(&cpu_spec(2, 200, 50_000_000, 1));
    let queued = s.submit(&cpu_spec(1, 1, 1000, 2));
    let last = s.submit(&cpu_spec(1, 2, 1000, 3));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = s.json(&format!("/api/v1/runs/{long}"));
        if v["status"] == "running" {
            assert!(v["progress"]["tasks"] == 200, "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "never started: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // While one goes, the others wait: they never measure each other.
    assert_eq!(
        s.json(&format!("/api/v1/runs/{queued}"))["status"],
        "queued"
    );
    assert_eq!(s.json(&format!("/api/v1/runs/{last}"))["status"], "queued");
    assert_eq!(s.delete(queued), 202);
    // A listener of the running one sees it end when it is cancelled.
    let mut stream = s.stream(&format!("/api/v1/runs/{long}/events"));
    assert_eq!(stream.next().unwrap()["type"], "started");
    assert_eq!(s.delete(long), 202);
    let end = stream.last().unwrap();
    assert_eq!(end["type"], "cancelled", "{end}");
    assert_eq!(
        s.json(&format!("/api/v1/runs/{long}"))["status"],
        "cancelled"
    );
    // The one cancelled while queued never ran; the next one ran whole.
    let ended = s.events(queued);
    assert!(ended.iter().all(|e| e["type"] != "started"), "{ended:?}");
    assert_eq!(
        s.json(&format!("/api/v1/runs/{queued}"))["status"],
        "cancelled"
    );
    s.events(last);
    let v = s.json(&format!("/api/v1/runs/{last}"));
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(
        v["sums"],
        json!([task_sum(3, 0, 1000), task_sum(3, 1, 1000)])
    );
    // An ended run cannot be cancelled, and says so.
    assert_eq!(s.delete(last), 409);
    let ids: Vec<u64> = s
        .json("/api/v1/runs")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![long, queued, last]);
}

#[test]
fn the_cores_stream_ticks_at_ten_hertz_with_no_run() {
    let s = Served::start();
    let cores = s.json("/api/v1/machine")["cores"].as_u64().unwrap() as usize;
    let started = Instant::now();
    let samples: Vec<Value> = s.stream("/api/v1/cores").take(11).collect();
    let took = started.elapsed();
    for v in &samples {
        let per_core = v["cores"].as_array().unwrap();
        assert_eq!(per_core.len(), cores);
        assert!(
            per_core
                .iter()
                .all(|c| (0.0..=100.0).contains(&c.as_f64().unwrap()))
        );
    }
    let t = |i: usize| samples[i]["t_s"].as_f64().unwrap();
    let span = t(10) - t(0);
    assert!((0.8..1.6).contains(&span), "10 samples span {span} s");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn run_with_server_prints_what_a_local_run_prints() {
    let s = Served::start();
    let args = [
        "--backend",
        "processes",
        "--workers",
        "2",
        "--tasks",
        "5",
        "--numbers",
        "300000",
        "--seed",
        "186",
    ];
    let local = Command::new(EXE).arg("run").args(args).output().unwrap();
    let remote = Command::new(EXE)
        .args(["run", "--server", &s.url, "--token", TOKEN])
        .args(args)
        .output()
        .unwrap();
    assert!(
        remote.status.success(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let text = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            // The time line differs from run to run; the rest must not.
            .filter(|l| !l.contains(" total"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(text(&remote), text(&local));
    assert!(text(&remote).iter().any(|l| l.starts_with("task 4: ")));
    let json_of = |server: bool| -> Value {
        let mut cmd = Command::new(EXE);
        cmd.args(["run", "--format", "json"]).args(args);
        if server {
            cmd.args(["--server", &s.url, "--token", TOKEN]);
        }
        serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap()
    };
    let (l, r) = (json_of(false), json_of(true));
    assert_eq!(l["sums"], r["sums"]);
    assert_eq!(l["total"], r["total"]);
    // Each report names the machine it ran on (the same one here, over loopback).
    assert_eq!(r["host"], s.json("/api/v1/machine")["host"]);
    assert_eq!(l["host"], r["host"]);
    // Refusals come back as the CLI's own.
    let bad = Command::new(EXE)
        .args([
            "run",
            "--server",
            &s.url,
            "--token",
            TOKEN,
            "--workers",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("workers"));
    let unauthorised = Command::new(EXE)
        .args(["run", "--server", &s.url, "--token", "nope"])
        .output()
        .unwrap();
    assert!(!unauthorised.status.success());
    assert!(String::from_utf8_lossy(&unauthorised.stderr).contains("401"));
}

#[test]
fn killing_the_server_ends_its_workers() {
    let mut s = Served::start();
    s.submit(&json!({
        "backend": "processes", "workload": "cpu", "workers": 2, "tasks": 4,
        "numbers_per_task": 100_000_000_000u64, "seed": 1,
    }));
    let pid = s.child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers = loop {
        let w: Vec<u32> = procinfo::children_of(pid)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        if w.len() == 2 {
            break w;
        }
        assert!(Instant::now() < deadline, "workers never started: {w:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    s.child.kill().unwrap(); // SIGKILL: no chance to clean up
    s.child.wait().unwrap();
    let killed = Instant::now();
    while workers.iter().any(|w| procinfo::is_running(*w)) {
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "workers outlived the server: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn many_api_runs_leave_nothing_behind() {
    // `scalelab soak --api`: runs through the API of a server in its own
    // process, then what that process still holds.
    let out = Command::new(EXE)
        .args(["soak", "--api", "--runs", "200"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("200 API runs") && text.contains("0 failure(s), clean"),
        "{text}"
    );
}

/// The engine's own handle, on a run that goes on the server.
fn remote_handle(s: &Served, spec: &Value) -> scalelab::engine::RunHandle {
    use scalelab::server::client::{Remote, start};
    let spec: scalelab::spec::RunSpec = serde_json::from_value(spec.clone()).unwrap();
    // What the report says of the machine if the server cannot (it may be gone).
    let machine = scalelab::server::machine::Machine {
        host: "the-server".into(),
        cores: 2,
        cpu_model: String::new(),
        version: String::new(),
    };
    start(Remote::new(&s.url, TOKEN), spec, &machine, None).unwrap()
}

#[test]
fn a_remote_handle_runs_cancels_and_says_when_the_server_goes() {
    let mut s = Served::start();
    let report = remote_handle(&s, &cpu_spec(2, 3, 50_000, 7)).wait();
    assert_eq!(report.status, scalelab::report::RunStatus::Ok);
    let want: Vec<Option<u64>> = (0..3).map(|t| Some(task_sum(7, t, 50_000))).collect();
    assert_eq!(report.sums, want);

    let long = cpu_spec(2, 200, 50_000_000, 1);
    let h = remote_handle(&s, &long);
    let first = h.events.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(first, Event::Started { .. }), "{first:?}");
    h.cancel();
    let report = h.wait();
    assert_eq!(report.status, scalelab::report::RunStatus::Cancelled);

    let h = remote_handle(&s, &long);
    h.events.recv_timeout(Duration::from_secs(10)).unwrap();
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let report = h.wait();
    assert_eq!(report.status, scalelab::report::RunStatus::Failed);
    let why = report.reason.unwrap();
    assert!(why.contains("lost the server"), "{why}");

    // A server that is not there at all: a failed run with the reason, at once.
    let h = remote_handle(&s, &cpu_spec(1, 1, 1000, 1));
    let report = h.wait();
    assert_eq!(report.status, scalelab::report::RunStatus::Failed);
    assert!(report.reason.unwrap().contains("cannot reach"));
    assert_eq!(
        report.host, "the-server",
        "the report names the machine it was for"
    );
}

#[test]
fn sweep_with_server_runs_every_point_there() {
    let s = Served::start();
    let out = Command::new(EXE)
        .args(["sweep", "--server", &s.url, "--token", TOKEN])
        .args(["--backends", "threads", "--workers", "1,2", "--tasks", "2"])
        .args(["--numbers", "200000", "--repeat", "1", "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let machine = s.json("/api/v1/machine");
    assert!(
        stderr.contains(&format!("sweep: on {}", machine["host"].as_str().unwrap())),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["host"], machine["host"]);
    assert_eq!(v["cores"], machine["cores"]);
    assert_eq!(v["curves"][0]["points"].as_array().unwrap().len(), 2, "{v}");
    // Both points ran on the server, with the sweep's spec.
    let listed = s.json("/api/v1/runs");
    let runs = listed.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{listed}");
    for (run, workers) in runs.iter().zip([1, 2]) {
        assert_eq!(run["status"], "ok", "{run}");
        assert_eq!(run["spec"]["workers"], workers, "{run}");
        assert_eq!(run["spec"]["numbers_per_task"], 200000, "{run}");
    }
    // Without a token it says so, and sends nothing.
    let none = Command::new(EXE)
        .env_remove("SCALELAB_SERVER_TOKEN")
        .args([
            "sweep",
            "--server",
            &s.url,
            "--workers",
            "1",
            "--numbers",
            "1000",
        ])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--token"));
    assert_eq!(s.json("/api/v1/runs").as_array().unwrap().len(), 2);
}
