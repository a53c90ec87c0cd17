//! CPU clocks of threads and child processes.

use std::time::Duration;

/// User and system CPU time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user_s: f64,
    pub sys_s: f64,
}

impl CpuTimes {
    pub fn total_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    fn from_rusage(r: &libc::rusage) -> Self {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Self {
            user_s: secs(r.ru_utime),
            sys_s: secs(r.ru_stime),
        }
    }
}

impl std::ops::Add for CpuTimes {
    type Output = CpuTimes;
    fn add(self, o: CpuTimes) -> CpuTimes {
        CpuTimes {
            user_s: self.user_s + o.user_s,
            sys_s: self.sys_s + o.sys_s,
        }
    }
}

/// CPU time the calling thread has used, split into user and system time.
pub fn this_thread_times() -> CpuTimes {
    // SAFETY: getrusage writes into the zeroed struct we own.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut r) == 0 {
            CpuTimes::from_rusage(&r)
        } else {
            CpuTimes::default()
        }
    }
}

/// CPU time the calling thread has used (a cheap clock for progress reports).
pub fn this_thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time the whole process has used.
pub fn this_process_cpu() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(id, &mut ts) == 0 {
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        } else {
            Duration::ZERO
        }
    }
}

/// The OS id of the calling thread.
pub fn this_thread_id() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exited with status {c}"),
            ChildExit::Signal(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

/// SIGKILLs child `pid`. Only for a child not yet reaped, whose pid cannot
/// have been reused.
pub fn kill_child(pid: u32) {
    // SAFETY: signalling our own unreaped child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// True when child `pid` has exited (it stays a zombie until reaped).
pub fn child_exited(pid: u32) -> bool {
    // SAFETY: waitid with WNOWAIT only peeks; the child is reaped later.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
            && info.si_pid() != 0
    }
}

/// Waits for child `pid` to end and returns how it ended and the CPU it used.
/// Unlike `Child::wait`, this reports the child's own resource usage.
pub fn reap_child(pid: u32) -> Option<(ChildExit, CpuTimes)> {
    // SAFETY: wait4 writes into the status and rusage we own.
    unsafe {
        let mut status = 0;
        let mut r: libc::rusage = std::mem::zeroed();
        loop {
            let rc = libc::wait4(pid as libc::pid_t, &mut status, 0, &mut r);
            if rc == pid as libc::pid_t {
                break;
            }
            if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            return None;
        }
        let exit = if libc::WIFSIGNALED(status) {
            ChildExit::Signal(libc::WTERMSIG(status))
        } else {
            ChildExit::Code(libc::WEXITSTATUS(status))
        };
        Some((exit, CpuTimes::from_rusage(&r)))
    }
}

/// Lowers the calling thread's scheduling priority by `nice` steps (Linux
/// applies nice per thread), and with `idle` moves it to `SCHED_IDLE`, where it
/// runs only when nothing else wants the core: the UI thread, the renderer and
/// the display server then always go first.
pub fn lower_this_thread(nice: i32, idle: bool) {
    // SAFETY: plain scheduling syscalls on our own thread (0 = the caller).
    unsafe {
        if nice > 0 {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
        }
        if idle {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_clock_advances_with_work() {
        let a = this_thread_cpu();
        let mut x = 1u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = this_thread_cpu();
        assert!(b > a);
        assert!(this_thread_times().total_s() > 0.0);
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by reap_child, the function under test
    fn reaps_a_killed_child_with_its_signal() {
        let child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let pid = child.id();
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let (exit, _) = reap_child(pid).unwrap();
        assert_eq!(exit, ChildExit::Signal(libc::SIGKILL));
    }
}
