//! Runs the chapter's experiments in real CPython (`bench/python/chapter.py`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

/// The script, built into the binary so `scalelab compare` works from anywhere.
const SCRIPT: &str = include_str!("../../bench/python/chapter.py");

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

    /// Runs one mode (`serial`, `threads`, `processes`, `asyncio-io`, `threads-io`, `pushpull`).
    pub fn run(
        &self,
        mode: &str,
        tasks: u32,
        numbers: u64,
        workers: u32,
        seed: u64,
        io: Option<(SocketAddr, u32)>,
    ) -> Result<PythonRun, String> {
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
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.exe))?;
        let run: PythonRun = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "python {mode} printed no result ({e}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
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

impl Drop for Python {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}
