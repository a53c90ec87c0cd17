//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scalelab::engine::{EngineOptions, RunHandle};
use scalelab::metrics::procinfo::settle;
use scalelab::report::RunReport;
use scalelab::report::event::Event;
use scalelab::spec::{BackendKind, RunSpec, WorkloadKind};

/// Engine options whose `processes` workers are the scalelab binary under test.
pub fn options() -> EngineOptions {
    EngineOptions {
        worker_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_scalelab"))),
        worker_nice: 0,
        ..EngineOptions::default()
    }
}

/// Like `options`, but each worker process starts as a shell script in
/// `dir` that runs `prelude` first and then becomes the scalelab binary
/// (`exec` keeps the process, its pid and its CPU clock).
pub fn options_with_worker_prelude(dir: &Path, prelude: &str) -> EngineOptions {
    let script = dir.join("worker.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{prelude}\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_scalelab")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A fork elsewhere in this binary may briefly hold the file open for writing.
    std::thread::sleep(Duration::from_millis(200));
    EngineOptions {
        worker_exe: Some(script),
        ..options()
    }
}

pub fn spec(backend: BackendKind, workers: u32, tasks: u32, numbers: u64, seed: u64) -> RunSpec {
    RunSpec {
        backend,
        workload: WorkloadKind::Cpu,
        workers,
        tasks,
        numbers_per_task: numbers,
        seed,
        ..RunSpec::default()
    }
}

/// True while a process with this pid exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Names of this process's threads that belong to scalelab runs, allowing
/// a just-joined thread 50 ms to leave `/proc/self/task` (see `settle`).
pub fn scalelab_threads() -> Vec<String> {
    let look = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| s.starts_with("scalelab-"))
            .collect()
    };
    settle(std::time::Duration::from_millis(50), look, Vec::is_empty)
}

/// `scalelab serve --listen LISTEN --token TOKEN`, started, with its stderr
/// drained once read; the URL and the token it printed. The caller ends it.
pub fn serve(listen: &str, token: &str) -> (std::process::Child, String, String) {
    serve_as(None, listen, token)
}

/// `serve`, on a machine named `host` when given: in a UTS namespace of its
/// own (`unshare --uts`, root only), so that a test can tell the server's host
/// name from this one's. `unshare` and `sh` exec, so the child's pid is the server's.
pub fn serve_as(
    host: Option<&str>,
    listen: &str,
    token: &str,
) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_scalelab");
    let mut cmd = match host {
        Some(name) => {
            let mut c = Command::new("unshare");
            c.args([
                "--uts",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$@\"",
                name,
                exe,
            ]);
            c
        }
        None => Command::new(exe),
    };
    let mut child = cmd
        .args(["serve", "--listen", listen, "--token", token])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let (mut url, mut printed) = (None, None);
    let mut line = String::new();
    while url.is_none() || printed.is_none() {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "serve ended early");
        if let Some(u) = line.trim().strip_prefix("scalelab: serving on ") {
            url = Some(u.to_string());
        }
        if let Some(t) = line.trim().strip_prefix("scalelab: token: ") {
            printed = Some(t.to_string());
        }
    }
    // Keep draining stderr so that the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, url.unwrap(), printed.unwrap())
}

/// A `scalelab serve`'s history (`GET /api/v1/runs`), as JSON.
pub fn server_runs(url: &str, token: &str) -> serde_json::Value {
    ureq::get(format!("{url}/api/v1/runs"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// Hands each of a run's events to `each` until the terminal one, and returns
/// the report once the run's threads have ended. Panics after `secs`: a
/// deadline, not a silence, since samples keep coming while a run waits.
pub fn finish_watching(h: RunHandle, secs: u64, mut each: impl FnMut(Event)) -> Box<RunReport> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.events.recv_timeout(left).expect("the run ends in time") {
            Event::Finished(r) | Event::Cancelled(r) | Event::Failed(r) => {
                h.join();
                return r;
            }
            e => each(e),
        }
    }
}

/// The run's events up to its report, and the report.
pub fn finish(h: RunHandle, secs: u64) -> (Vec<Event>, Box<RunReport>) {
    let mut seen = Vec::new();
    let r = finish_watching(h, secs, |e| seen.push(e));
    (seen, r)
}

/// Checks a run that ended ok having lost one worker only: `pid`, which did
/// not leave by itself at the run's end, asked `how` ("its input closing",
/// "being told"), and was killed.
pub fn assert_lost_only_at_the_end(r: &RunReport, events: &[Event], pid: u32, how: &str) {
    assert_eq!(r.status, scalelab::report::RunStatus::Ok, "{:?}", r.reason);
    let lost: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::WorkerLost { os_id, reason, .. } => Some((*os_id, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].0, pid);
    let end =
        format!("did not stop within 1 s of {how} at the run's end and was killed by signal 9");
    assert!(lost[0].1.ends_with(&end), "{}", lost[0].1);
    assert_eq!(r.workers_lost, 1);
}
