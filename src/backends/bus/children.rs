//! The bus's local workers: child processes of the run, started, watched and ended by pid.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Master, TOKEN_ENV, keys::SERVER_KEY_ENV};

/// A worker process this run started.
pub(super) struct LocalChild {
    pub(super) worker: u32,
    pub(super) pid: u32,
    pub(super) started: Instant,
    pub(super) joined: bool,
    pub(super) alive: bool,
}

impl Master<'_> {
    /// Starts `scalelab worker --connect ENDPOINT` as a child that dies with this thread.
    pub(super) fn spawn_local(&mut self) -> Result<(), String> {
        let worker = self.next_worker;
        let exe = self
            .ctx
            .options
            .worker_exe()
            .map_err(|e| format!("cannot find the scalelab executable: {e}"))?;
        let nice = self.ctx.options.worker_nice;
        let idle = self.ctx.options.worker_sched_idle;
        // SAFETY: getpid has no preconditions; read before fork for the check below.
        let parent = unsafe { libc::getpid() };
        let mut cmd = Command::new(&exe);
        cmd.args(["worker", "--connect", &self.endpoint])
            .env(TOKEN_ENV, &self.token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Encrypted like any other worker, pinning the key it was given.
        match &self.server_key {
            Some(key) => cmd.env(SERVER_KEY_ENV, key),
            None => cmd.env_remove(SERVER_KEY_ENV),
        };
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // SIGKILL when the thread that started it ends; give up at once
                // if the parent is already gone.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                if nice > 0 {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                }
                if idle {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                }
                Ok(())
            });
        }
        let pid = cmd
            .spawn()
            .map_err(|e| format!("cannot start worker {worker} ({}): {e}", exe.display()))?
            .id();
        self.next_worker += 1;
        self.children.push(LocalChild {
            worker,
            pid,
            started: Instant::now(),
            joined: false,
            alive: true,
        });
        Ok(())
    }
}
