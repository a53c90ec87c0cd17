//! What this process holds: threads, open descriptors, children, resident
//! memory; and the name of the machine it runs on.

use std::time::{Duration, Instant};

use serde::Serialize;

/// A snapshot of the process's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub threads: usize,
    pub fds: usize,
    /// Children still running or waiting to be reaped.
    pub children: usize,
    pub rss_kib: u64,
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, |d| d.count())
}

/// The parent pid and state letter of process `pid`, from /proc/PID/stat.
pub fn ppid_and_state(pid: u32) -> Option<(u32, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut it = rest.split(' ');
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Pids of the children of `pid` (zombies included), with their state letters.
pub fn children_of(pid: u32) -> Vec<(u32, char)> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| {
                    let (ppid, state) = ppid_and_state(p)?;
                    (ppid == pid).then_some((p, state))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// True while `pid` runs (a zombie, dead but not reaped, does not count).
pub fn is_running(pid: u32) -> bool {
    ppid_and_state(pid).is_some_and(|(_, s)| s != 'Z' && s != 'X')
}

/// This process's resources now.
pub fn snapshot() -> Resources {
    let page_kib = 4; // Linux x86_64 and aarch64 base pages
    let rss_pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split(' ').nth(1)?.parse().ok())
        .unwrap_or(0);
    Resources {
        threads: count_dir("/proc/self/task"),
        // read_dir itself holds one descriptor open while counting.
        fds: count_dir("/proc/self/fd").saturating_sub(1),
        children: children_of(std::process::id()).len(),
        rss_kib: rss_pages * page_kib,
    }
}

/// Looks with `look` until what it sees is `settled`, or `within` has passed;
/// returns the last look. `pthread_join` returns as soon as the kernel clears
/// the thread's id, a moment before the thread leaves `/proc/self/task`, so a
/// thread a run has just joined (its latency service, libzmq's I/O thread) can
/// still be listed; a leaked one stays past any window.
pub fn settle<T>(within: Duration, mut look: impl FnMut() -> T, settled: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + within;
    loop {
        let now = look();
        if settled(&now) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// This machine's host name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_looks_until_settled_and_gives_up_after_the_window() {
        let mut looks = 0;
        let seen = settle(
            Duration::from_secs(30),
            || {
                looks += 1;
                looks
            },
            |n| *n == 3,
        );
        assert_eq!(seen, 3, "it stops at the first settled look");
        let asked = Instant::now();
        let seen = settle(Duration::from_millis(30), || "leaked", |s| s.is_empty());
        assert_eq!(
            seen, "leaked",
            "it returns the last look when nothing settles"
        );
        assert!(asked.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped below with reap_child
    fn sees_a_child_and_its_end() {
        let before = snapshot();
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(
            children_of(std::process::id())
                .iter()
                .any(|(p, _)| *p == pid)
        );
        assert!(is_running(pid));
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        crate::metrics::clocks::reap_child(pid).unwrap();
        assert!(!is_running(pid));
        assert!(before.threads >= 1 && before.rss_kib > 0);
    }

    #[test]
    fn this_process_reads_as_alive_under_its_parent() {
        let parent = unsafe { libc::getppid() } as u32;
        let (ppid, state) = ppid_and_state(std::process::id()).unwrap();
        assert_eq!(ppid, parent);
        // The harness's main thread waits for this test's: running or asleep.
        assert!(matches!(state, 'R' | 'S'), "{state}");
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped below with reap_child
    fn a_dead_child_not_yet_reaped_is_not_running() {
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let state = settle(
            Duration::from_secs(5),
            || ppid_and_state(pid).map(|(_, s)| s),
            |s| *s == Some('Z'),
        );
        assert_eq!(state, Some('Z'));
        assert!(!is_running(pid), "a zombie runs no more");
        crate::metrics::clocks::reap_child(pid).unwrap();
    }

    #[test]
    fn the_snapshot_counts_what_this_process_holds() {
        // Resident memory as the kernel states it in kB (`VmRSS`), read
        // right after: the two agree within a quarter.
        let s = snapshot();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_rss: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap();
        let ratio = s.rss_kib as f64 / vm_rss as f64;
        assert!(
            (0.75..1.25).contains(&ratio),
            "{} KiB vs VmRSS {vm_rss} kB",
            s.rss_kib
        );
        // Three descriptors held open are counted (other tests of this
        // binary open and close theirs, so no exact count holds here), and
        // this test runs on a thread beside the harness's own.
        let files: Vec<_> = (0..3)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let now = snapshot();
        assert!(now.fds >= files.len() && now.threads >= 2, "{now:?}");
    }

    #[test]
    fn the_host_name_is_the_kernels() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(host_name(), kernel.trim());
    }
}
