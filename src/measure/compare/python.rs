//! Runs the chapter's experiments in real CPython (`bench/python/chapter.py`).

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::CANCEL_POLL;
use crate::metrics::procinfo;

/// The script, built into the binary so `scalelab compare` works from anywhere.
const SCRIPT: &str = include_str!("../../../bench/python/chapter.py");

/// One CPython experiment's result, in `scalelab run --format json`'s shape.
#[derive(Debug, Clone, Deserialize)]
pub struct PythonRun {
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub sums: Vec<Option<u64>>,
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub cpu_percent: f64,
}

/// How long one experiment may take before it counts as hung: two minutes,
/// plus a microsecond per number drawn (CPython draws one in about 0.1 µs
/// alone, so this allows it a tenth of a core). A multiprocessing pool that
/// never ends (seen once under heavy load) then fails the comparison with a
/// reason instead of holding it, and the window's job, forever.
pub fn time_limit(tasks: u32, numbers: u64) -> Duration {
    Duration::from_secs(120) + Duration::from_micros(u64::from(tasks).saturating_mul(numbers))
}

/// A CPython interpreter that can run the experiments.
pub struct Python {
    exe: String,
    script: PathBuf,
    pub version: String,
}

impl Python {
    /// Finds `exe` and writes the script next to the temporary files; `Err`
    /// says why CPython cannot be used.
    pub fn find(exe: &str) -> Result<Self, String> {
        let out = Command::new(exe)
            .arg("--version")
            .output()
            .map_err(|e| format!("{exe} cannot be run: {e}"))?;
        if !out.status.success() {
            return Err(format!("{exe} --version failed"));
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // One file per interpreter found: each removes its own when dropped,
        // while the others may still run theirs.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let script = std::env::temp_dir().join(format!(
            "scalelab-chapter-{}-{}.py",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&script, SCRIPT)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        Ok(Self {
            exe: exe.to_string(),
            script,
            version,
        })
    }

    /// Runs one mode (`serial`, `threads`, `processes`, `asyncio-io`, `threads-io`, `pushpull`)
    /// to its end, or until `cancel` is set: then the interpreter and every
    /// process it started are killed at once, and `Err("cancelled")` returned.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        mode: &str,
        tasks: u32,
        numbers: u64,
        workers: u32,
        seed: u64,
        io: Option<(SocketAddr, u32)>,
        cancel: &AtomicBool,
    ) -> Result<PythonRun, String> {
        self.spawn(mode, tasks, numbers, workers, seed, io)?
            .wait(cancel)
    }

    /// Starts one mode; `PythonChild::wait` gives its result.
    pub fn spawn(
        &self,
        mode: &str,
        tasks: u32,
        numbers: u64,
        workers: u32,
        seed: u64,
        io: Option<(SocketAddr, u32)>,
    ) -> Result<PythonChild, String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(&self.script)
            .arg(mode)
            .args(["--tasks", &tasks.to_string()])
            .args(["--numbers", &numbers.to_string()])
            .args(["--workers", &workers.to_string()])
            .args(["--seed", &seed.to_string()]);
        if let Some((addr, requests)) = io {
            cmd.args(["--io-addr", &addr.to_string()])
                .args(["--requests", &requests.to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // The interpreter dies with the thread that started it, should
                // scalelab itself die before it could kill it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.exe))?;
        // Read both pipes as they fill, so that a chatty child never blocks on them.
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        Ok(PythonChild {
            child: Some(child),
            mode: mode.to_string(),
            started: Instant::now(),
            limit: time_limit(tasks, numbers),
            out,
            err,
        })
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn joined(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader.and_then(|r| r.join().ok()).unwrap_or_default()
}

/// One CPython experiment running. Dropping it kills it.
pub struct PythonChild {
    child: Option<Child>,
    mode: String,
    started: Instant,
    /// Past this, `wait` kills it (`time_limit`).
    limit: Duration,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

impl PythonChild {
    /// The interpreter's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Another time limit than `time_limit`'s.
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Waits for the result, looking at `cancel` every `CANCEL_POLL`: once it
    /// is set, or the time limit is past, kills the interpreter and everything
    /// it started, and says so.
    pub fn wait(mut self, cancel: &AtomicBool) -> Result<PythonRun, String> {
        let mut child = self.child.take().expect("waited once");
        let mode = self.mode.clone();
        loop {
            let late = self.started.elapsed() > self.limit;
            if cancel.load(Ordering::Relaxed) || late {
                kill_tree(&mut child);
                // Every writer of the pipes is dead: the readers end now.
                joined(self.out.take());
                joined(self.err.take());
                if late {
                    return Err(format!(
                        "python {mode} did not finish within {:.0} s (a hung pool?): killed",
                        self.limit.as_secs_f64()
                    ));
                }
                return Err("cancelled".into());
            }
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) => std::thread::sleep(CANCEL_POLL),
                Err(e) => {
                    kill_tree(&mut child);
                    return Err(format!("cannot wait for python {mode}: {e}"));
                }
            }
        }
        let stdout = joined(self.out.take());
        let stderr = joined(self.err.take());
        let run: PythonRun = serde_json::from_slice(&stdout).map_err(|e| {
            format!(
                "python {mode} printed no result ({e}): {}",
                String::from_utf8_lossy(&stderr).trim()
            )
        })?;
        if run.status != "ok" {
            return Err(format!(
                "python {mode}: {}",
                run.reason.clone().unwrap_or_else(|| "failed".into())
            ));
        }
        Ok(run)
    }
}

impl Drop for PythonChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }
}

/// Every process in /proc whose parent is in `parents`, and not in it itself.
fn children_of_any(parents: &HashSet<u32>) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| !parents.contains(p))
                .filter(|&p| {
                    procinfo::ppid_and_state(p).is_some_and(|(pp, _)| parents.contains(&pp))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `root` and every process it started, directly or not, as /proc shows them now.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut tree: HashSet<u32> = HashSet::from([root]);
    loop {
        let more = children_of_any(&tree);
        if more.is_empty() {
            break;
        }
        tree.extend(more);
    }
    tree.into_iter().collect()
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: a plain syscall; every pid here is one of the tree, which cannot be reaped meanwhile.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Kills `child` and every process it started (a `multiprocessing` pool's
/// workers, the push/pull workers): each process is stopped before its
/// children are looked for, so that none can start another, nor reap one
/// (whose pid could then be reused) meanwhile; then all are killed at once
/// and `child` reaped. Targets pids only, never names.
fn kill_tree(child: &mut Child) {
    let root = child.id();
    let mut tree: HashSet<u32> = HashSet::from([root]);
    signal(root, libc::SIGSTOP);
    loop {
        let more = children_of_any(&tree);
        if more.is_empty() {
            break;
        }
        for p in more {
            signal(p, libc::SIGSTOP);
            tree.insert(p);
        }
    }
    for &p in &tree {
        signal(p, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// CPython, which these tests exercise: without it they fail, never skip.
    fn python() -> Python {
        Python::find("python3")
            .unwrap_or_else(|e| panic!("python3 is needed to test the CPython runner: {e}"))
    }

    #[test]
    fn a_run_left_alone_gives_its_result() {
        let py = python();
        let never = AtomicBool::new(false);
        let r = py.run("serial", 3, 1000, 1, 42, None, &never).unwrap();
        assert_eq!(r.sums.len(), 3);
        assert!(r.sums.iter().all(Option::is_some));
    }

    #[test]
    fn a_run_past_its_time_limit_is_killed_with_a_reason() {
        let py = python();
        let never = AtomicBool::new(false);
        // Minutes of work for CPython, a limit of half a second.
        let child = py
            .spawn("serial", 1, 5_000_000_000, 1, 42, None)
            .unwrap()
            .with_limit(Duration::from_millis(500));
        let pid = child.pid();
        let t0 = Instant::now();
        let err = child.wait(&never).unwrap_err();
        assert!(err.contains("did not finish within"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
        // Killed and reaped: its pid is gone (or, at worst, another process's).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.contains("python"), "{stat}");
        // The default limit grows with the work, from two minutes.
        assert_eq!(time_limit(8, 0), Duration::from_secs(120));
        assert_eq!(time_limit(8, 1_000_000), Duration::from_secs(128));
    }

    /// User CPU time of `pid` so far, in clock ticks.
    fn user_ticks(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s[s.rfind(')')? + 2..].to_string();
                rest.split(' ').nth(11)?.parse().ok()
            })
            .unwrap_or(0)
    }

    #[test]
    fn a_cancelled_run_kills_the_interpreter_and_its_pool_at_once() {
        let py = python();
        // A pool of 2 workers, each on a task of about 20 s in CPython (were
        // the kill to miss them, they would not burn the cores for long).
        let child = py.spawn("processes", 2, 30_000_000, 2, 42, None).unwrap();
        let pid = child.pid();
        // `python3` may be a launcher (pyenv's shims are scripts) with the
        // interpreter beneath it: wait until the pool's 2 workers, children of
        // the interpreter, are computing.
        let script = py.script.display().to_string();
        let runs_script = |p: u32| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&script))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let tree = loop {
            let tree = process_tree(pid);
            let computing = tree
                .iter()
                .filter(|&&p| {
                    runs_script(p)
                        && procinfo::ppid_and_state(p).is_some_and(|(pp, _)| runs_script(pp))
                        && user_ticks(p) >= 5
                })
                .count();
            if computing >= 2 {
                break tree;
            }
            assert!(
                Instant::now() < deadline,
                "the pool never started: {tree:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let cancel = AtomicBool::new(false);
        let took = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let r = child.wait(&cancel);
                (r, Instant::now())
            });
            let asked = Instant::now();
            cancel.store(true, Ordering::Relaxed);
            let (r, ended) = waiter.join().unwrap();
            assert_eq!(r.unwrap_err(), "cancelled");
            ended - asked
        });
        assert!(took < Duration::from_secs(2), "the cancel took {took:?}");
        // SIGKILL is sent before `wait` returns; the kernel tears a process down
        // a moment later (longer on a loaded machine), so allow it a second.
        let gone_by = Instant::now() + Duration::from_secs(1);
        for p in tree {
            while procinfo::is_running(p) && Instant::now() < gone_by {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                !procinfo::is_running(p),
                "process {p} of the cancelled run still runs a second after the cancel"
            );
        }
    }

    #[test]
    fn a_dropped_run_is_killed_too() {
        let py = python();
        let child = py.spawn("serial", 1, 30_000_000, 1, 42, None).unwrap();
        let pid = child.pid();
        assert!(procinfo::is_running(pid));
        drop(child);
        assert!(
            !procinfo::is_running(pid),
            "the interpreter outlived its PythonChild"
        );
    }
}
