//! CPU clocks of threads and child processes.

use std::time::{Duration, Instant};

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

    /// `100 * (user + sys) / wall`, as `time` prints it; 0 for no wall time.
    pub fn percent_of(&self, wall_s: f64) -> f64 {
        if wall_s > 0.0 {
            100.0 * self.total_s() / wall_s
        } else {
            0.0
        }
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

/// Waits until child `pid` has exited or `deadline` has passed; true if it
/// exited. Sleeps in the kernel on a pidfd, which becomes readable the moment
/// the child ends, so a shutdown learns of each exit at once rather than at
/// its next poll. The child is left for `reap_child`.
pub fn wait_child_exited(pid: u32, deadline: Instant) -> bool {
    // SAFETY: pidfd_open on our own unreaped child, whose pid cannot be reused.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
    if fd < 0 {
        // No pidfds (Linux before 5.3): peek every millisecond instead.
        while Instant::now() < deadline && !child_exited(pid) {
            std::thread::sleep(Duration::from_millis(1));
        }
        return child_exited(pid);
    }
    let exited = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll reads and writes the one pollfd we own.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        // Readable (the child ended) or timed out: either way waitid says
        // whether it has exited, including an exit just at the deadline.
        break child_exited(pid);
    };
    // SAFETY: closing the pidfd opened above.
    unsafe { libc::close(fd) };
    exited
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
    fn rusage_times_are_seconds_and_microseconds() {
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        r.ru_utime = libc::timeval {
            tv_sec: 2,
            tv_usec: 250_000,
        };
        r.ru_stime = libc::timeval {
            tv_sec: 0,
            tv_usec: 1_500,
        };
        let t = CpuTimes::from_rusage(&r);
        assert_eq!(t.user_s, 2.25);
        assert_eq!(t.sys_s, 0.0015);
    }

    #[test]
    fn process_and_monotonic_clocks_advance() {
        let a = this_process_cpu();
        let mut x = 1u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(this_process_cpu() > a);
        assert!(clock(libc::CLOCK_MONOTONIC) > Duration::ZERO);
        // A clock that does not exist reads as zero rather than garbage.
        assert_eq!(clock(-12345), Duration::ZERO);
    }

    /// Lets SIGUSR2 interrupt a blocking call (no SA_RESTART) instead of
    /// ending the process, so that a test can make a wait see EINTR.
    fn interruptible_by_sigusr2() {
        extern "C" fn nothing(_: libc::c_int) {}
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as *const () as usize;
            sa.sa_flags = 0;
            libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut());
        }
    }

    /// Runs `wait` on a thread, interrupts it with a signal while it blocks,
    /// then kills the `sleep` child it waits for; returns what `wait` gave.
    #[allow(clippy::zombie_processes)] // reaped by the caller's `wait` or below
    fn interrupted<T: Send + 'static>(wait: fn(u32) -> T) -> T {
        interruptible_by_sigusr2();
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            wait(pid)
        });
        let thread = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
        std::thread::sleep(Duration::from_millis(100));
        kill_child(pid);
        let out = t.join().unwrap();
        let _ = wait_child_exited(pid, Instant::now() + Duration::from_secs(5));
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        out
    }

    #[test]
    fn waits_go_on_after_a_signal_interrupts_them() {
        // Each wait must take the EINTR and wait again, not give up.
        let exited =
            interrupted(|pid| wait_child_exited(pid, Instant::now() + Duration::from_secs(20)));
        assert!(exited, "wait_child_exited gave up on EINTR");
        let reaped = interrupted(reap_child);
        assert_eq!(
            reaped.map(|(exit, _)| exit),
            Some(ChildExit::Signal(libc::SIGKILL)),
            "reap_child gave up on EINTR"
        );
    }

    #[test]
    fn reaping_what_is_not_our_child_fails_at_once() {
        // pid 1 is nobody's child here: wait4 fails with ECHILD, not EINTR.
        let started = Instant::now();
        assert!(reap_child(1).is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by reap_child
    fn child_exited_peeks_without_reaping_and_kill_child_kills() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!child_exited(pid));
        kill_child(pid);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !child_exited(pid) {
            assert!(Instant::now() < deadline, "kill_child did not kill");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Peeking leaves it to be reaped, with how it ended.
        assert!(child_exited(pid));
        assert_eq!(reap_child(pid).unwrap().0, ChildExit::Signal(libc::SIGKILL));
    }

    #[test]
    fn lowering_by_zero_leaves_an_earlier_nice_alone() {
        let nice = std::thread::spawn(|| {
            lower_this_thread(5, false);
            lower_this_thread(0, false);
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .join()
        .unwrap();
        assert_eq!(nice, 5);
    }

    #[test]
    fn cpu_percent_counts_user_and_system_time() {
        let t = CpuTimes {
            user_s: 1.5,
            sys_s: 0.5,
        };
        assert_eq!(t.total_s(), 2.0);
        assert_eq!(t.percent_of(1.0), 200.0);
        assert_eq!(t.percent_of(4.0), 50.0);
        assert_eq!(t.percent_of(0.0), 0.0);
    }

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

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by reap_child
    fn waits_for_an_exit_and_gives_up_at_the_deadline() {
        let quick = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        assert!(wait_child_exited(
            quick.id(),
            Instant::now() + Duration::from_secs(30)
        ));
        assert_eq!(reap_child(quick.id()).unwrap().0, ChildExit::Code(3));

        let slow = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let asked = Instant::now();
        assert!(!wait_child_exited(
            slow.id(),
            asked + Duration::from_millis(50)
        ));
        assert!(asked.elapsed() >= Duration::from_millis(50));
        assert!(
            !child_exited(slow.id()),
            "a running child must not look exited"
        );
        kill_child(slow.id());
        assert!(wait_child_exited(
            slow.id(),
            Instant::now() + Duration::from_secs(30)
        ));
        assert_eq!(
            reap_child(slow.id()).unwrap().0,
            ChildExit::Signal(libc::SIGKILL)
        );
    }
}
