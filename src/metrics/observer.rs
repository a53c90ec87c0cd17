//! What watching a run costs: the CPU time of this process's threads that are
//! not the run's (the window's UI thread and its renderer's threads when a run
//! is started from the app; next to nothing from the command line).
//!
//! A measuring instrument states its observer effect: the sampler reads this
//! clock beside the run's own, so every sample and every report says how much
//! of the machine went to the watcher rather than to the workers.

use std::collections::HashMap;
use std::fs;

/// Name prefixes of the threads a run owns (see the `thread::Builder` names in
/// `engine`, `backends` and `latency_server`, and libzmq's own I/O threads).
/// Everything else in the process is the observer.
const RUN_THREAD_PREFIXES: [&str; 7] = [
    "scalelab-run",
    "scalelab-sampler",
    "scalelab-worker",
    "scalelab-pipe",
    "scalelab-latency",
    "scalelab-compare",
    "ZMQbg",
];

/// True when a thread of this name belongs to a run, not to whoever watches it.
pub fn is_run_thread(comm: &str) -> bool {
    RUN_THREAD_PREFIXES.iter().any(|p| comm.starts_with(p))
}

/// A thread this clock has seen: whether it is the observer's, and its CPU so far.
#[derive(Debug, Clone, Copy)]
struct Seen {
    observer: bool,
    cpu_ns: u64,
}

/// Cumulative CPU time of the observer's threads, read from `/proc/self/task`.
///
/// A thread's name is read once, when it is first seen; afterwards only the
/// observer's threads are read, so a run of 1,024 worker threads costs a
/// directory listing per sample, not 1,024 file reads.
#[derive(Debug, Default)]
pub struct ObserverClock {
    threads: HashMap<u32, Seen>,
    total_ns: u64,
}

impl ObserverClock {
    /// A clock that counts from now: CPU the observer used before is not counted.
    pub fn new() -> Self {
        let mut c = Self::default();
        c.read();
        c.total_ns = 0;
        c
    }

    /// The observer's CPU time since `new`, in nanoseconds (never decreases).
    pub fn read(&mut self) -> u64 {
        let Ok(dir) = fs::read_dir("/proc/self/task") else {
            return self.total_ns;
        };
        let mut present = Vec::with_capacity(self.threads.len());
        let mut delta = 0u64;
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            present.push(tid);
            let seen = match self.threads.get(&tid) {
                Some(s) => *s,
                None => {
                    let comm = fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                        .unwrap_or_default();
                    let observer = !is_run_thread(comm.trim_end());
                    // A thread first seen now: what it used before counts now, once.
                    let s = Seen {
                        observer,
                        cpu_ns: 0,
                    };
                    self.threads.insert(tid, s);
                    s
                }
            };
            if !seen.observer {
                continue;
            }
            if let Some(ns) = thread_cpu_ns(tid) {
                delta += ns.saturating_sub(seen.cpu_ns);
                if let Some(s) = self.threads.get_mut(&tid) {
                    s.cpu_ns = ns.max(s.cpu_ns);
                }
            }
        }
        // Forget threads that have gone (their last partial interval is lost: at
        // most one sample period of one thread's CPU).
        present.sort_unstable();
        self.threads
            .retain(|tid, _| present.binary_search(tid).is_ok());
        self.total_ns += delta;
        self.total_ns
    }
}

/// A thread's CPU time in nanoseconds: `schedstat`'s run time (ns resolution),
/// else `stat`'s user + system ticks.
fn thread_cpu_ns(tid: u32) -> Option<u64> {
    if let Ok(s) = fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Some(ns);
    }
    let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    stat_cpu_ns(&stat, hz)
}

/// User + system time from a `/proc/.../stat` line, at `hz` ticks a second.
fn stat_cpu_ns(stat: &str, hz: u64) -> Option<u64> {
    // Fields after the parenthesised name: state is field 3; utime, stime are 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn stat_lines_give_user_plus_system_time() {
        // A name with spaces and a ')' in it: fields count from the last ')'.
        let stat = "4242 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 30 12 0 0 20 0 1 0";
        // utime 30 + stime 12 ticks at 100 Hz: 0.42 s.
        assert_eq!(stat_cpu_ns(stat, 100), Some(420_000_000));
        assert_eq!(stat_cpu_ns(stat, 250), Some(168_000_000));
        assert_eq!(stat_cpu_ns("4242 (x) S 1 2", 100), None);
    }

    fn spin(d: Duration) {
        let end = Instant::now() + d;
        let mut x = 0u64;
        while Instant::now() < end {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn run_threads_are_told_apart_by_name() {
        for run in [
            "scalelab-run",
            "scalelab-worker-7",
            "scalelab-pipe-3",
            "ZMQbg/IO/0",
        ] {
            assert!(is_run_thread(run), "{run}");
        }
        for watcher in ["scalelab", "llvmpipe-0", "winit", "scalelab-dialog", "main"] {
            assert!(!is_run_thread(watcher), "{watcher}");
        }
    }

    #[test]
    fn counts_observer_threads_and_not_run_threads() {
        let mut clock = ObserverClock::new();
        // A run's worker spins 300 ms: not the observer's.
        std::thread::Builder::new()
            .name("scalelab-worker-0".into())
            .spawn(|| spin(Duration::from_millis(300)))
            .unwrap()
            .join()
            .unwrap();
        let after_worker = clock.read();
        // A watcher thread burns 150 ms of its own CPU (CPU, not wall time: a
        // loaded machine may give it little of the wall) and stays alive until
        // the clock has been read: the observer's.
        let (burnt_tx, burnt_rx) = std::sync::mpsc::channel();
        let (leave_tx, leave_rx) = std::sync::mpsc::channel::<()>();
        let watcher = std::thread::Builder::new()
            .name("watcher".into())
            .spawn(move || {
                let start = crate::metrics::clocks::this_thread_cpu();
                let mut x = 0u64;
                while crate::metrics::clocks::this_thread_cpu() - start < Duration::from_millis(150)
                {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                burnt_tx.send(()).unwrap();
                let _ = leave_rx.recv();
            })
            .unwrap();
        burnt_rx.recv().unwrap();
        let mid = clock.read();
        drop(leave_tx);
        watcher.join().unwrap();
        assert!(
            after_worker < 100_000_000,
            "a run thread's 300 ms were counted: {after_worker} ns"
        );
        // What it burnt, but never the worker's 300 ms on top.
        assert!(mid >= 150_000_000, "the watcher's CPU was missed: {mid} ns");
        assert!(mid < 700_000_000, "{mid} ns");
        assert!(clock.read() >= mid, "the clock went back");
    }
}
