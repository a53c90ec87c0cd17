//! The `bus` backend loses nothing and counts nothing twice: workers killed by
//! PID, workers joining late, garbage on the socket, a vanished master.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_lost_only_at_the_end, finish, finish_watching, options, options_with_worker_prelude,
    spec,
};
use scalelab::engine::RunHandle;
use scalelab::engine::{run_to_end, start};
use scalelab::report::event::{BusEvent, BusTally, Event};
use scalelab::report::{RunReport, RunStatus};
use scalelab::spec::{BackendKind, BusParams, IoParams, RunSpec, WorkloadKind};
use scalelab::wire::{self, BUS_PROTOCOL, Message};
use scalelab::workload::cpu::task_sum;
use scalelab::workload::io::io_sum;

const EXE: &str = env!("CARGO_BIN_EXE_scalelab");

fn bus_spec(workers: u32, tasks: u32, numbers: u64, seed: u64, bus: BusParams) -> RunSpec {
    RunSpec {
        bus,
        ..spec(BackendKind::Bus, workers, tasks, numbers, seed)
    }
}

fn params(remote_workers: u32, heartbeat_ms: u32) -> BusParams {
    BusParams {
        remote_workers,
        heartbeat_ms,
        ..BusParams::default()
    }
}

/// Waits for the first event `pick` accepts; panics after `secs`.
fn wait_for<T>(h: &RunHandle, secs: u64, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = h
            .events
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no awaited event within {secs} s"));
        if let Some(t) = pick(&e) {
            return t;
        }
        assert!(!e.is_terminal(), "the run ended early: {e:?}");
    }
}

fn listening(h: &RunHandle) -> (String, String) {
    wait_for(h, 10, |e| match e {
        Event::Bus(BusEvent::Listening {
            endpoint, token, ..
        }) => Some((endpoint.clone(), token.clone())),
        _ => None,
    })
}

/// Every task finished exactly once, with the right sum.
fn assert_complete_and_right(r: &RunReport, seed: u64, numbers: u64) {
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    let expected: Vec<_> = (0..r.spec.tasks)
        .map(|t| Some(task_sum(seed, t as u64, numbers)))
        .collect();
    assert_eq!(r.sums, expected);
    assert_eq!(
        r.task_timeline.len(),
        r.spec.tasks as usize,
        "a task doubled"
    );
    let distinct: BTreeSet<u32> = r.task_timeline.iter().map(|t| t.task).collect();
    assert_eq!(distinct.len(), r.spec.tasks as usize);
}

fn tally(events: &[Event]) -> BusTally {
    let t: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Bus(BusEvent::Tally(t)) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(t.len(), 1, "one tally per run");
    t[0]
}

/// `scalelab worker --connect` started by the test: a remote worker for the master.
fn join_worker(endpoint: &str, token: &str) -> Child {
    Command::new(EXE)
        .args(["worker", "--connect", endpoint, "--token", token])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// True while `pid` runs (a zombie no longer counts: it has exited).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn sigkill(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// Waits for a child to end, within `limit`; returns its status and stderr.
fn ended_within(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (st, err);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pid {} still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn bus_gives_the_same_sums_as_threads_from_the_command_line() {
    let out = |backend: &str| {
        let o = Command::new(EXE)
            .args([
                "run",
                "--backend",
                backend,
                "--workers",
                "3",
                "--tasks",
                "7",
            ])
            .args(["--numbers", "300000", "--seed", "11", "--format", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["sums"].clone(), v["total"].clone())
    };
    assert_eq!(out("bus"), out("threads"));
}

#[test]
fn a_local_worker_killed_mid_run_loses_and_doubles_nothing() {
    let (tasks, numbers, seed) = (40, 20_000_000, 3);
    let h = start(bus_spec(2, tasks, numbers, seed, params(0, 250)), options()).unwrap();
    let mut pids = Vec::new();
    let mut finished = 0;
    // Kill one worker once a few tasks are done and both hold one.
    let victim = wait_for(&h, 30, |e| {
        match e {
            Event::WorkerStarted { os_id, .. } => pids.push(*os_id),
            Event::TaskFinished(_) => finished += 1,
            _ => {}
        }
        (finished >= 4 && pids.len() == 2).then(|| pids[0])
    });
    sigkill(victim);
    let (events, r) = finish(h, 60);
    assert_complete_and_right(&r, seed, numbers);
    let lost: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::WorkerLost {
                os_id,
                reason,
                requeued,
                ..
            } => Some((*os_id, reason.clone(), *requeued)),
            _ => None,
        })
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].0, victim);
    assert!(lost[0].1.contains("signal 9"), "{}", lost[0].1);
    assert!(lost[0].2.is_some(), "the killed worker held a task");
    assert_eq!(r.workers_lost, 1);
    let t = tally(&events);
    assert_eq!(t, BusTally::default(), "nothing dropped in a clean run");
    // The pool is kept at strength: a replacement starts and joins.
    let replacement = events
        .iter()
        .find_map(|e| match e {
            Event::WorkerStarted {
                worker: 2, os_id, ..
            } => Some(*os_id),
            _ => None,
        })
        .expect("a replacement for the killed worker");
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Bus(BusEvent::WorkerJoined {
                worker: 2,
                local: true,
                ..
            })
        )),
        "the replacement joined"
    );
    pids.push(replacement);
    for pid in pids {
        assert!(!running(pid), "worker {pid} outlived the run");
    }
}

/// Local workers told to stop at the run's end leave by themselves (the run
/// just before checks that no other is lost); one that cannot, held by
/// SIGSTOP, is killed after the grace and reported lost.
#[test]
fn a_local_worker_that_does_not_stop_when_told_is_killed_and_reported_lost() {
    let h = start(bus_spec(2, 1, 1_000_000_000, 2, params(0, 1000)), options()).unwrap();
    let mut pids = std::collections::BTreeMap::new();
    let mut joined = 0;
    let mut busy = None;
    // The one task runs on one worker; the other, once joined, idles.
    let idle = wait_for(&h, 30, |e| {
        match e {
            Event::WorkerStarted { worker, os_id, .. } => {
                pids.insert(*worker, *os_id);
            }
            Event::TaskStarted { worker, .. } => busy = Some(*worker),
            Event::Bus(BusEvent::WorkerJoined { local: true, .. }) => joined += 1,
            _ => {}
        }
        match busy {
            Some(b) if joined == 2 => Some(pids[&(1 - b)]),
            _ => None,
        }
    });
    unsafe { libc::kill(idle as i32, libc::SIGSTOP) };
    let (events, r) = finish(h, 30);
    assert_lost_only_at_the_end(&r, &events, idle, "being told");
    assert!(!running(idle), "the stopped worker {idle} outlived the run");
}

/// A local worker that never joins is given up on after the join grace (10 s)
/// and replaced; one that joined is not, however long it has been running.
#[test]
fn a_local_worker_that_never_joins_is_replaced_after_the_grace_and_no_other() {
    // The first worker to run the script sleeps instead of joining; the
    // others are real.
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_worker_prelude(
        dir.path(),
        &format!(
            "if mkdir '{}/first' 2>/dev/null; then exec sleep 60; fi",
            dir.path().display()
        ),
    );
    // 16 s of waiting on the latency service for one worker, however busy
    // the machine: past the grace, with work left for the replacement.
    let mut s = bus_spec(2, 8, 0, 6, params(0, 250));
    s.workload = WorkloadKind::Io;
    s.io = IoParams {
        requests: 20,
        latency_ms: 100,
    };
    let h = start(s, opts).unwrap();
    let mut started = Vec::new();
    let (events, r) = finish(h, 120);
    for e in &events {
        if let Event::WorkerStarted { worker, os_id, .. } = e {
            started.push((*worker, *os_id));
        }
    }
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    let expected: Vec<_> = (0..8).map(|t| Some(io_sum(6, t, 20))).collect();
    assert_eq!(r.sums, expected);
    let lost: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::WorkerLost { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    // "worker W (pid N) did not join in time and was killed by signal 9":
    // W is 0 or 1, whichever of the two started first ran the script's mkdir.
    let (sleeper_worker, sleeper): (u32, u32) = lost[0]
        .strip_prefix("worker ")
        .and_then(|rest| rest.split_once(" (pid "))
        .and_then(|(w, rest)| Some((w, rest.split_once(") did not join in time")?.0)))
        .and_then(|(w, pid)| Some((w.parse().ok()?, pid.parse().ok()?)))
        .unwrap_or_else(|| panic!("{lost:?}"));
    assert!(sleeper_worker < 2, "{lost:?}");
    assert!(
        r.wall_s > 10.0,
        "the run outlasted the grace: {} s",
        r.wall_s
    );
    // A worker counts as started once it joins: the real one, and the
    // replacement.
    let workers: Vec<u32> = started.iter().map(|&(w, _)| w).collect();
    assert_eq!(workers, [1 - sleeper_worker, 2], "{started:?}");
    for pid in started.into_iter().map(|(_, pid)| pid).chain([sleeper]) {
        assert!(!running(pid), "worker {pid} outlived the run");
    }
}

/// Local workers are replaced up to twice the local pool; once none is left
/// and no remote worker is expected, the run fails saying so.
#[test]
fn a_local_pool_out_of_replacements_fails_the_run_with_a_reason() {
    let h = start(bus_spec(1, 3, 400_000_000, 7, params(0, 250)), options()).unwrap();
    // Worker 0 dies on task 0; worker 1 replaces it, and dies on task 1, which
    // still has its retry: but a pool of 1 gets only one replacement.
    let mut pids = Vec::new();
    let mut killed = Vec::new();
    let r = finish_watching(h, 60, |e| match e {
        Event::WorkerStarted { os_id, .. } => pids.push(os_id),
        Event::TaskStarted { task, worker, .. } if task == worker && task < 2 => {
            let pid = pids[worker as usize];
            sigkill(pid);
            killed.push(pid);
        }
        _ => {}
    });
    assert_eq!(killed.len(), 2, "both workers were killed on their task");
    assert_eq!(pids.len(), 2, "one replacement, not more: {pids:?}");
    assert_eq!(r.status, RunStatus::Failed);
    let why = r.reason.unwrap();
    assert!(
        why.contains("worker 1") && why.contains("no worker is left to run the remaining tasks"),
        "{why}"
    );
    assert_eq!(r.workers_lost, 2);
    for pid in pids {
        assert!(!running(pid), "worker {pid} was not reaped");
    }
}

#[test]
fn when_the_only_worker_is_killed_a_worker_joining_later_finishes_the_run() {
    let (tasks, numbers, seed) = (4, 300_000_000, 4);
    let h = start(bus_spec(1, tasks, numbers, seed, params(1, 100)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let mut first = join_worker(&endpoint, &token);
    let pid = first.id();
    wait_for(&h, 10, |e| {
        matches!(e, Event::Progress { worker: 0, .. }).then_some(())
    });
    sigkill(pid);
    let _ = first.wait();
    // Heartbeats stop: the master gives the task back to the queue, and waits.
    let requeued = wait_for(&h, 10, |e| match e {
        Event::WorkerLost {
            os_id, requeued, ..
        } => {
            assert_eq!(*os_id, pid);
            Some(*requeued)
        }
        Event::TaskFinished(_) => panic!("a task finished with no worker: {e:?}"),
        _ => None,
    });
    assert!(requeued.is_some());
    let mut second = join_worker(&endpoint, &token);
    let (events, r) = finish(h, 60);
    assert_complete_and_right(&r, seed, numbers);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Bus(BusEvent::WorkerJoined { worker: 1, local: false, pid, .. }) if *pid == second.id()
        )),
        "the second worker joined as worker 1"
    );
    assert!(r.task_timeline.iter().all(|t| t.worker <= 1));
    // The run's end tells the remote worker to stop: it leaves cleanly.
    let (st, err) = ended_within(&mut second, Duration::from_secs(2));
    assert!(st.success(), "{st:?}: {err}");
    assert!(r.user_s > 0.0, "remote CPU time counted");
}

/// A DEALER of the test's own, speaking the wire format by hand.
struct Peer {
    s: zmq::Socket,
}

impl Peer {
    fn new(z: &zmq::Context, endpoint: &str) -> Peer {
        let s = z.socket(zmq::DEALER).unwrap();
        s.set_linger(500).unwrap();
        s.set_rcvtimeo(5000).unwrap();
        s.connect(endpoint).unwrap();
        Peer { s }
    }
    fn raw(&self, frames: &[&[u8]]) {
        self.s.send_multipart(frames.iter().copied(), 0).unwrap();
    }
    fn send(&self, m: &Message) {
        self.raw(&[&wire::encode(m)]);
    }
    fn recv(&self) -> Message {
        let b = self.s.recv_bytes(0).expect("an answer from the master");
        wire::decode(&b).unwrap()
    }
    /// The next message that is not a heartbeat.
    fn recv_real(&self) -> Message {
        loop {
            match self.recv() {
                Message::Heartbeat {} => {}
                m => return m,
            }
        }
    }
}

/// A peer that has joined with the run's token, and its worker number.
fn joined(z: &zmq::Context, endpoint: &str, token: &str) -> (Peer, u32) {
    let p = Peer::new(z, endpoint);
    join(&p, token, BUS_PROTOCOL);
    let Message::Welcome { worker, .. } = p.recv_real() else {
        panic!("not welcomed")
    };
    (p, worker)
}

fn join(p: &Peer, token: &str, protocol: u32) {
    join_from(p, token, protocol, "test-peer", 1);
}

/// Joins as a worker on `host` with process id `pid`.
fn join_from(p: &Peer, token: &str, protocol: u32, host: &str, pid: u32) {
    p.send(&Message::Join {
        protocol,
        token: token.into(),
        host: host.into(),
        pid,
        cpu_ns: 0,
    });
}

#[test]
fn garbage_wrong_tokens_and_stray_results_leave_the_run_correct() {
    let (tasks, numbers, seed) = (20, 5_000_000, 5);
    let h = start(bus_spec(1, tasks, numbers, seed, params(0, 100)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();

    // Not a message at all, from a peer that never joins.
    let junk = Peer::new(&z, &endpoint);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..20 {
        let bytes: Vec<u8> = (0..(1 + i * 37))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        junk.raw(&[&bytes]);
    }
    junk.raw(&[b"{\"type\":\"done\"", b"\"task\":1}"]); // two frames
    junk.raw(&[b""]);
    junk.raw(&[br#"{"type":"done","task":1,"#]); // truncated
    junk.raw(&[b"\xff\xfe{}"]);
    junk.raw(&[&vec![b' '; 100_000]]); // over MAX_FRAME, under ZeroMQ's cut-off
    // A peer that has not joined is told why each frame was dropped.
    for _ in 0..25 {
        let Message::Refused { reason } = junk.recv() else {
            panic!("junk gets a refusal")
        };
        assert!(reason.starts_with("malformed message: "), "{reason}");
    }
    // Past ZeroMQ's cut-off: the connection is dropped before anything is allocated.
    let huge = Peer::new(&z, &endpoint);
    huge.raw(&[&vec![0u8; 2 << 20]]);

    // Wrong token, wrong protocol: refused.
    let intruder = Peer::new(&z, &endpoint);
    join(&intruder, "not-the-token", BUS_PROTOCOL);
    assert!(matches!(intruder.recv(), Message::Refused { reason } if reason.contains("token")));
    join(&intruder, &token, BUS_PROTOCOL + 1);
    assert!(matches!(intruder.recv(), Message::Refused { reason } if reason.contains("protocol")));

    // A result from a peer that never joined.
    let stranger = Peer::new(&z, &endpoint);
    stranger.send(&Message::Done {
        task: 9999,
        sum: 1,
        cpu_ns: 0,
        latency_ms: vec![],
    });
    assert!(matches!(stranger.recv(), Message::Refused { .. }));

    // A worker that joins, then sends results for tasks it was never given,
    // answers its own task honestly, and repeats it with a wrong sum.
    let (rogue, rogue_id) = joined(&z, &endpoint, &token);
    let Message::Task { task, .. } = rogue.recv_real() else {
        panic!("the rogue got no task")
    };
    rogue.send(&Message::Done {
        task: 5000,
        sum: 0,
        cpu_ns: 0,
        latency_ms: vec![],
    });
    rogue.send(&Message::Progress {
        task: 5001,
        done: 1,
        cpu_ns: 0,
    });
    let sum = task_sum(seed, task as u64, numbers);
    rogue.send(&Message::Done {
        task,
        sum,
        cpu_ns: 0,
        latency_ms: vec![],
    });
    rogue.send(&Message::Done {
        task,
        sum: sum + 1,
        cpu_ns: 0,
        latency_ms: vec![],
    });
    // A master's message, which no worker sends.
    rogue.send(&Message::Stop {});
    // And garbage, which takes the drops past the 32 that are reported.
    for _ in 0..10 {
        rogue.raw(&[b"\xff\xfe{}"]);
    }
    // Then it goes silent while holding its next task, if it got one.
    let (events, r) = finish(h, 60);
    drop((junk, huge, intruder, stranger, rogue));
    assert_complete_and_right(&r, seed, numbers);
    assert!(
        r.task_timeline
            .iter()
            .any(|t| t.task == task && t.sum == sum)
    );
    assert_eq!(
        tally(&events),
        BusTally {
            malformed: 34,
            oversize: 1,
            unexpected: 4,
            duplicates: 1,
            refused: 2,
        }
    );
    // The first 32 drops (of 40) are reported, each naming who sent what was
    // dropped, what it was and why.
    let dropped: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Bus(BusEvent::Dropped { peer, reason }) => {
                Some((peer.as_str(), reason.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 32, "{dropped:?}");
    let stranger = "a peer that has not joined";
    let rogue = format!("worker {rogue_id}");
    for want in [
        (
            stranger,
            "done for task 9999, which it is not running".to_string(),
        ),
        (
            &rogue,
            "done for task 5000, which it is not running".to_string(),
        ),
        (
            &rogue,
            "progress for task 5001, which it is not running".to_string(),
        ),
        (
            &rogue,
            format!("late result for task {task}, already finished"),
        ),
        (&rogue, "unexpected stop".to_string()),
    ] {
        assert!(
            dropped.contains(&(want.0, want.1.as_str())),
            "{want:?} not in {dropped:?}"
        );
    }
}

/// A joining worker's host name is kept whole up to 255 bytes; a longer one
/// is cut to 63 characters (at most 255 bytes whatever they are).
#[test]
fn a_joining_workers_host_name_is_cut_only_past_255_bytes() {
    let h = start(bus_spec(3, 2, 10_000_000_000, 1, params(3, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let peers: Vec<Peer> = [100, 255, 300]
        .into_iter()
        .map(|len| {
            let p = Peer::new(&z, &endpoint);
            join_from(&p, &token, BUS_PROTOCOL, &"h".repeat(len), len as u32);
            assert!(matches!(p.recv_real(), Message::Welcome { .. }));
            p
        })
        .collect();
    let mut hosts = std::collections::BTreeMap::new();
    while hosts.len() < 3 {
        let (pid, host) = wait_for(&h, 10, |e| match e {
            Event::Bus(BusEvent::WorkerJoined {
                host,
                pid,
                local: false,
                ..
            }) => Some((*pid, host.clone())),
            _ => None,
        });
        hosts.insert(pid, host.len());
    }
    assert_eq!(
        hosts,
        [(100, 100), (255, 255), (300, 63)].into_iter().collect()
    );
    h.cancel();
    drop(peers);
    finish(h, 30);
}

#[test]
fn a_worker_with_the_wrong_token_is_refused_and_exits() {
    let mut p = params(1, 250);
    p.token = Some("right".into());
    let h = start(bus_spec(1, 1, 1000, 1, p), options()).unwrap();
    let (endpoint, token) = listening(&h);
    assert_eq!(token, "right");
    let mut w = join_worker(&endpoint, "wrong");
    let (st, err) = ended_within(&mut w, Duration::from_secs(5));
    assert!(!st.success());
    assert!(err.contains("wrong token"), "{err}");
    wait_for(&h, 5, |e| {
        matches!(e, Event::Bus(BusEvent::Refused { reason, .. }) if reason == "wrong token")
            .then_some(())
    });
    h.cancel();
    let (_, r) = finish(h, 5);
    assert_eq!(r.status, RunStatus::Cancelled);
}

#[test]
fn a_generated_token_is_shown_and_a_run_without_one_refused() {
    let r = run_to_end(bus_spec(2, 4, 1000, 1, params(0, 250)), options()).unwrap();
    assert_eq!(r.status, RunStatus::Ok);
    let h = start(bus_spec(1, 1, 1000, 1, params(0, 250)), options()).unwrap();
    let (_, a) = listening(&h);
    let _ = finish(h, 10);
    let h = start(bus_spec(1, 1, 1000, 1, params(0, 250)), options()).unwrap();
    let (_, b) = listening(&h);
    let _ = finish(h, 10);
    assert_ne!(a, b, "each run gets its own token");
    let no_token = Command::new(EXE)
        .args(["worker", "--connect", "tcp://127.0.0.1:9"])
        .env_remove(scalelab::backends::bus::TOKEN_ENV)
        .output()
        .unwrap();
    assert!(!no_token.status.success());
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("--token"));
}

/// Pids of the children of `pid` (all its threads').
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = t.unwrap().path().join("children");
        if let Ok(s) = std::fs::read_to_string(path) {
            out.extend(s.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
    }
    out
}

/// A peer that joins from the master's own host is one of the run's local
/// workers only if its pid is one the master started: another process on the
/// same machine, joining while the local worker has not yet, stays remote.
#[test]
fn a_peer_on_the_masters_host_is_local_only_with_a_childs_pid() {
    let h = start(bus_spec(2, 2, 10_000_000_000, 1, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    // Hold the local worker back (found by its command line, as other tests'
    // children run beside it) so that it cannot join first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let child = loop {
        let mine = children_of(std::process::id()).into_iter().find(|&c| {
            std::fs::read(format!("/proc/{c}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&endpoint))
        });
        if let Some(c) = mine {
            break c;
        }
        assert!(Instant::now() < deadline, "no local worker started");
        std::thread::sleep(Duration::from_millis(1));
    };
    unsafe { libc::kill(child as i32, libc::SIGSTOP) };
    let z = zmq::Context::new();
    let p = Peer::new(&z, &endpoint);
    let here = scalelab::metrics::procinfo::host_name();
    join_from(&p, &token, BUS_PROTOCOL, &here, 1);
    assert!(matches!(p.recv_real(), Message::Welcome { .. }));
    let local = wait_for(&h, 10, |e| match e {
        Event::Bus(BusEvent::WorkerJoined { pid: 1, local, .. }) => Some(*local),
        _ => None,
    });
    unsafe { libc::kill(child as i32, libc::SIGCONT) };
    assert!(!local, "pid 1 was taken for the master's child {child}");
    h.cancel();
    drop(p);
    finish(h, 30);
}

#[test]
fn local_workers_exit_within_a_second_of_their_master_being_killed() {
    let mut master = Command::new(EXE)
        .args(["run", "--backend", "bus", "--workers", "2", "--tasks", "4"])
        .args(["--numbers", "10000000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let kids = loop {
        let k = children_of(master.id());
        if k.len() == 2 {
            break k;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "workers start");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(kids.iter().all(|&k| running(k)));
    sigkill(master.id());
    let _ = master.wait();
    let t = Instant::now();
    while kids.iter().any(|&k| running(k)) {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a local worker outlived its master by a second"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A free loopback port (a small race with other binders, fine for a test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_remote_worker_gives_up_after_its_heartbeat_timeout_when_the_master_vanishes() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut master = Command::new(EXE)
        .args(["run", "--backend", "bus", "--workers", "1", "--remote", "1"])
        .args([
            "--tasks",
            "2",
            "--numbers",
            "10000000000",
            "--heartbeat-ms",
            "100",
        ])
        .args(["--bind", &endpoint, "--token", "vanishing"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the master says it listens, then join.
    let mut err = master.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("listening") {
        let n = err.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the master ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let mut w = join_worker(&endpoint, "vanishing");
    while !String::from_utf8_lossy(&seen).contains("joined") {
        let n = err.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the master ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(w.try_wait().unwrap().is_none(), "the worker is busy");
    sigkill(master.id());
    let _ = master.wait();
    let t = Instant::now();
    // Heartbeat 100 ms, 5 missed: gone after 0.5 s (plus a task chunk and scheduling).
    let (st, out) = ended_within(&mut w, Duration::from_secs(3));
    let took = t.elapsed();
    assert!(!st.success());
    assert!(out.contains("silent"), "{out}");
    assert!(
        took >= Duration::from_millis(400),
        "gave up too early: {took:?}"
    );
}

/// A worker started before its master keeps trying, within its join
/// timeout, and joins once the master listens.
#[test]
fn a_worker_started_before_its_master_joins_once_it_listens() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut w = Command::new(EXE)
        .args(["worker", "--connect", &endpoint, "--token", "early"])
        .args(["--join-timeout", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(w.try_wait().unwrap().is_none(), "the worker waits");
    let mut p = params(1, 250);
    p.bind = endpoint;
    p.token = Some("early".into());
    let h = start(bus_spec(1, 4, 10_000, 3, p), options()).unwrap();
    let (events, r) = finish(h, 30);
    assert_complete_and_right(&r, 3, 10_000);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Bus(BusEvent::WorkerJoined { .. }))),
        "the early worker joined"
    );
    let (st, err) = ended_within(&mut w, Duration::from_secs(10));
    assert!(st.success(), "{err}");
}

#[test]
fn cancelling_a_bus_run_ends_its_local_workers() {
    let h = start(bus_spec(2, 4, 10_000_000_000, 1, params(0, 250)), options()).unwrap();
    let mut pids = Vec::new();
    wait_for(&h, 10, |e| {
        if let Event::WorkerStarted { os_id, .. } = e {
            pids.push(*os_id);
        }
        (pids.len() == 2).then_some(())
    });
    let t = Instant::now();
    h.cancel();
    let (events, r) = finish(h, 5);
    // How fast cancel is, is a benchmark (compare's limits in BENCHMARKS.md);
    // here other tests share the cores, so only a gross delay fails.
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(r.status, RunStatus::Cancelled);
    // Killed on purpose, not lost.
    assert!(
        !events.iter().any(|e| matches!(e, Event::WorkerLost { .. })),
        "{events:?}"
    );
    assert_eq!(r.workers_lost, 0);
    for pid in pids {
        assert!(!common::process_exists(pid), "child {pid} left behind");
    }
}

#[test]
fn bad_bus_settings_are_refused_naming_the_field() {
    for (args, field) in [
        (&["--bind", "tcp://localhost:*"][..], "bus.bind"),
        (&["--bind", "udp://127.0.0.1:9"][..], "bus.bind"),
        (&["--remote", "3"][..], "bus.remote_workers"),
        (&["--token", "has space"][..], "bus.token"),
        (&["--heartbeat-ms", "1"][..], "bus.heartbeat_ms"),
    ] {
        let o = Command::new(EXE)
            .args(["run", "--backend", "bus", "--workers", "2"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(field), "{args:?}: {err}");
    }
}

#[test]
fn a_worker_that_misses_its_heartbeats_loses_its_task_and_its_late_result_is_dropped() {
    let (tasks, numbers, seed) = (100, 20_000_000, 8);
    let h = start(bus_spec(2, tasks, numbers, seed, params(1, 100)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let (slow, worker) = joined(&z, &endpoint, &token);
    let Message::Task { task, .. } = slow.recv_real() else {
        panic!("no task")
    };
    // It says nothing more: after 5 heartbeats (500 ms) its task goes to the local worker.
    wait_for(&h, 10, |e| match e {
        Event::WorkerLost {
            worker: w,
            requeued,
            ..
        } if *w == worker => {
            assert_eq!(*requeued, Some(task));
            Some(())
        }
        _ => None,
    });
    wait_for(&h, 10, |e| match e {
        Event::TaskFinished(r) if r.task == task => {
            assert_ne!(r.worker, worker);
            Some(())
        }
        _ => None,
    });
    // Its result, late and wrong, is dropped; it is told it no longer belongs.
    // (Written as the JSON a worker sends, as the protocol page gives it.)
    let late = format!(r#"{{"type":"done","task":{task},"sum":1,"cpu_ns":0}}"#);
    slow.raw(&[late.as_bytes()]);
    assert!(matches!(slow.recv_real(), Message::Refused { .. }));
    let (events, r) = finish(h, 60);
    assert_complete_and_right(&r, seed, numbers);
    assert_eq!(r.workers_lost, 1);
    let t = tally(&events);
    assert_eq!((t.duplicates, t.unexpected), (1, 0), "{t:?}");
}

#[test]
fn only_the_whole_token_joins_not_an_empty_one_nor_a_prefix() {
    let h = start(bus_spec(1, 1, 1000, 1, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    assert!(token.len() >= 16, "{token}");
    let z = zmq::Context::new();
    let almost = [
        String::new(),
        token[..token.len() / 2].to_string(),
        token[..token.len() - 1].to_string(),
        format!("{token}0"),
        format!(" {token}"),
        token.to_uppercase(),
    ];
    for wrong in almost.iter().filter(|t| **t != token) {
        let p = Peer::new(&z, &endpoint);
        join(&p, wrong, BUS_PROTOCOL);
        let answer = p.recv();
        assert!(
            matches!(&answer, Message::Refused { reason } if reason.contains("token")),
            "token {wrong:?} was answered {answer:?}"
        );
    }
    // The whole token still joins.
    let (p, _) = joined(&z, &endpoint, &token);
    drop(p);
    h.cancel();
    let (_, r) = finish(h, 10);
    assert_ne!(r.status, RunStatus::Failed, "{:?}", r.reason);
}

#[test]
fn remote_workers_past_the_meters_slots_still_count_every_number() {
    // One worker expected, so the live meter has 2 slots; three peers join
    // (ids 0, 1, 2) and each answers two tasks. Before the fix, worker 2's
    // numbers fell outside the meter and live throughput read a third low.
    let (tasks, numbers, seed) = (6, 1000, 11);
    let h = start(bus_spec(1, tasks, numbers, seed, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let peers: Vec<Peer> = (0..3).map(|_| Peer::new(&z, &endpoint)).collect();
    // Each peer answers whatever tasks it holds (the master may prefetch a
    // second one to a worker whose tasks are short), until every task is done.
    let mut held: Vec<Vec<u32>> = vec![Vec::new(); peers.len()];
    for (p, h) in peers.iter().zip(held.iter_mut()) {
        join(p, &token, BUS_PROTOCOL);
        assert!(matches!(p.recv_real(), Message::Welcome { .. }));
        let Message::Task { task, .. } = p.recv_real() else {
            panic!("no first task")
        };
        h.push(task);
    }
    let mut answered = 0u32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered < tasks {
        assert!(Instant::now() < deadline, "only {answered} tasks answered");
        for (p, h) in peers.iter().zip(held.iter_mut()) {
            for task in h.drain(..) {
                answered += 1;
                p.send(&Message::Done {
                    task,
                    sum: task_sum(seed, task as u64, numbers),
                    cpu_ns: 1_000_000 * u64::from(answered),
                    latency_ms: vec![],
                });
            }
            while p.s.poll(zmq::POLLIN, 50).unwrap() > 0 {
                if let Message::Task { task, .. } = p.recv() {
                    h.push(task);
                }
            }
        }
    }
    let (_, r) = finish(h, 30);
    assert_complete_and_right(&r, seed, numbers);
    assert!(
        r.task_timeline.iter().any(|t| t.worker == 2),
        "worker 2 ran a task"
    );
    let last = r.cpu_timeline.last().expect("a final sample");
    assert_eq!(last.numbers_done, tasks as u64 * numbers, "{last:?}");
}

/// A worker whose tasks come back within 20 ms is sent its next one early
/// (it holds two); one whose last task took longer holds one.
#[test]
fn a_worker_with_short_tasks_gets_the_next_one_early() {
    let (tasks, numbers, seed) = (8, 1000, 4);
    let h = start(bus_spec(1, tasks, numbers, seed, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    // Join a while after the start: a task's times are then far from 0.
    std::thread::sleep(Duration::from_millis(100));
    let z = zmq::Context::new();
    let (p, _) = joined(&z, &endpoint, &token);
    let task_now = |p: &Peer| match p.recv_real() {
        Message::Task { task, .. } => task,
        m => panic!("not a task: {m:?}"),
    };
    // The tasks that come within `ms`, answering heartbeats meanwhile.
    let tasks_within = |p: &Peer, ms: u64| {
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_millis(ms);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if p.s.poll(zmq::POLLIN, left.as_millis() as i64).unwrap() == 0 {
                continue;
            }
            match p.recv() {
                Message::Task { task, .. } => got.push(task),
                Message::Heartbeat {} => p.send(&Message::Heartbeat {}),
                m => panic!("not a task: {m:?}"),
            }
        }
        got
    };
    let done = |p: &Peer, task: u32| {
        p.send(&Message::Done {
            task,
            sum: task_sum(seed, task as u64, numbers),
            cpu_ns: 0,
            latency_ms: vec![],
        })
    };
    // One task at first; answered at once, two come back.
    let first = task_now(&p);
    done(&p, first);
    let held = tasks_within(&p, 500);
    assert_eq!(held.len(), 2, "short tasks: the next one early {held:?}");
    // The first of them answered slowly: from then on, one at a time.
    std::thread::sleep(Duration::from_millis(60));
    done(&p, held[0]);
    assert_eq!(
        tasks_within(&p, 300),
        Vec::<u32>::new(),
        "a slow task: none more"
    );
    done(&p, held[1]);
    assert_eq!(tasks_within(&p, 300).len(), 1, "then one");
    h.cancel();
    drop(p);
    finish(h, 30);
}

/// A remote worker's CPU time is what it reports, a running total from its
/// start: a task's is the difference between two reports, the first task's
/// counted from the join, and the run's is what it used after joining (its
/// start-up before is no part of the run), as user time.
#[test]
fn a_remote_workers_cpu_is_counted_as_it_reports_it() {
    let (numbers, seed) = (1000, 5);
    let h = start(bus_spec(1, 2, numbers, seed, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let p = Peer::new(&z, &endpoint);
    p.send(&Message::Join {
        protocol: BUS_PROTOCOL,
        token: token.clone(),
        host: "test-peer".into(),
        pid: 1,
        cpu_ns: 500_000_000,
    });
    assert!(matches!(p.recv_real(), Message::Welcome { .. }));
    for cpu_ns in [1_750_000_000, 3_500_000_000] {
        let task = match p.recv_real() {
            Message::Task { task, .. } => task,
            m => panic!("not a task: {m:?}"),
        };
        p.send(&Message::Done {
            task,
            sum: task_sum(seed, task as u64, numbers),
            cpu_ns,
            latency_ms: vec![],
        });
    }
    let (_, r) = finish(h, 30);
    assert_complete_and_right(&r, seed, numbers);
    let mut cpu: Vec<_> = r.task_timeline.iter().map(|t| (t.task, t.cpu_s)).collect();
    cpu.sort_by_key(|&(task, _)| task);
    assert_eq!(cpu, [(0, 1.25), (1, 1.75)]);
    // The master's own time on top is a few milliseconds at most.
    assert!(r.user_s >= 3.0 && r.user_s < 3.2, "user {} s", r.user_s);
    assert!(r.sys_s < 0.2, "sys {} s", r.sys_s);
}

#[test]
fn impossible_results_drop_their_worker_and_the_task_is_run_again() {
    // A sum past u64's range (it used to wrap the run's total, status ok) and
    // 2001 latencies on a CPU task: each worker is dropped, its task re-run.
    let (tasks, numbers, seed) = (12, 3_000_000, 21);
    let h = start(bus_spec(2, tasks, numbers, seed, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let answers = [(u64::MAX, vec![]), (numbers * 50, vec![1.0f32; 2001])];
    let mut dropped = Vec::new();
    for (sum, latency_ms) in answers {
        let (rogue, worker) = joined(&z, &endpoint, &token);
        let Message::Task { task, .. } = rogue.recv_real() else {
            panic!("no task")
        };
        rogue.send(&Message::Done {
            task,
            sum,
            cpu_ns: 0,
            latency_ms,
        });
        let reason = wait_for(&h, 10, |e| match e {
            Event::WorkerLost {
                worker: w,
                requeued,
                reason,
                ..
            } if *w == worker => {
                assert_eq!(*requeued, Some(task));
                Some(reason.clone())
            }
            _ => None,
        });
        assert!(reason.contains("impossible result"), "{reason}");
        dropped.push((worker, task));
        // It no longer belongs: anything more it says is refused.
        rogue.send(&Message::Heartbeat {});
        assert!(matches!(rogue.recv_real(), Message::Refused { .. }));
    }
    let (_, r) = finish(h, 60);
    assert_complete_and_right(&r, seed, numbers);
    assert_eq!(r.workers_lost, 2);
    for (worker, task) in dropped {
        let rec = r.task_timeline.iter().find(|t| t.task == task).unwrap();
        assert_ne!(
            rec.worker, worker,
            "task {task} counted from the worker that lied"
        );
    }
}

#[test]
fn a_bus_whose_workers_never_join_says_it_waits_then_fails_after_its_join_timeout() {
    let mut bus = params(2, 250);
    bus.join_timeout_s = 1;
    let h = start(bus_spec(2, 4, 1000, 1, bus), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let (joined, expected, join) = wait_for(&h, 10, |e| match e {
        Event::Bus(BusEvent::Waiting {
            joined,
            expected,
            join,
        }) => Some((*joined, *expected, join.clone())),
        _ => None,
    });
    assert_eq!((joined, expected), (0, 2));
    assert_eq!(
        join,
        format!("scalelab worker --connect {endpoint} --token {token}")
    );
    let t = Instant::now();
    let (_, r) = finish(h, 30);
    assert_eq!(r.status, RunStatus::Failed);
    let reason = r.reason.unwrap();
    assert!(
        reason.starts_with("no worker joined within 1 s (0 of 2)"),
        "{reason}"
    );
    assert!(
        !reason.contains(&token),
        "a reason is exported: no token in it"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    // The CLI says the same, and exits 1 (a failed run).
    let out = Command::new(EXE)
        .args(["run", "--backend", "bus", "--workers", "2", "--remote", "2"])
        .args(["--tasks", "2", "--numbers", "1000", "--join-timeout", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("waiting for workers: 0 of 2 joined; join with: scalelab worker --connect tcp://127.0.0.1:"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("failed: no worker joined within 1 s"), "{out}");
}

/// The master beats once per heartbeat period, not on every turn of its loop.
#[test]
fn the_master_sends_one_heartbeat_per_period() {
    let h = start(bus_spec(1, 1, 1000, 1, params(1, 100)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let (p, _) = joined(&z, &endpoint, &token);
    // Hold the task, answering each beat, for a second: about 10 beats.
    let mut beats = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if p.s.poll(zmq::POLLIN, left.as_millis() as i64).unwrap() == 0 {
            continue;
        }
        if let Message::Heartbeat {} = p.recv() {
            beats += 1;
            p.send(&Message::Heartbeat {});
        }
    }
    // Loose below (a busy machine delays beats), tight enough above to tell
    // a beat per period from one per 10 ms turn.
    assert!((3..=20).contains(&beats), "{beats} beats in 1 s at 100 ms");
    h.cancel();
    drop(p);
    finish(h, 10);
}

/// While remote workers are missing, the master says how many have joined
/// once per change, not on every check; a bus of local workers never says it.
#[test]
fn waiting_for_workers_is_said_once_per_change_and_only_for_remote_ones() {
    let h = start(bus_spec(2, 2, 1000, 1, params(2, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    // Dozens of the master's 10 ms checks pass between joins.
    std::thread::sleep(Duration::from_millis(300));
    let a = Peer::new(&z, &endpoint);
    join_from(&a, &token, BUS_PROTOCOL, "peer-a", 11);
    assert!(matches!(a.recv_real(), Message::Welcome { .. }));
    std::thread::sleep(Duration::from_millis(300));
    let b = Peer::new(&z, &endpoint);
    join_from(&b, &token, BUS_PROTOCOL, "peer-b", 12);
    assert!(matches!(b.recv_real(), Message::Welcome { .. }));
    std::thread::sleep(Duration::from_millis(300));
    h.cancel();
    let (events, _) = finish(h, 10);
    let waiting: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Bus(BusEvent::Waiting {
                joined, expected, ..
            }) => Some((*joined, *expected)),
            _ => None,
        })
        .collect();
    assert_eq!(waiting, [(0, 2), (1, 2)]);

    let (events, r) = finish(
        start(bus_spec(2, 2, 1000, 1, params(0, 250)), options()).unwrap(),
        30,
    );
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Bus(BusEvent::Waiting { .. }))),
        "a local bus waits for no one to join"
    );
}

/// A worker that went away while it held no task is found when a task is
/// sent to it: it cannot be reached, it is reported lost with nothing to put
/// back, and the task waits for the next worker.
#[test]
fn a_worker_gone_while_idle_is_lost_when_a_task_cannot_reach_it() {
    let (numbers, seed) = (1000, 8);
    // Remote workers only, one task; beats slow enough (5 s of silence) that
    // the master does not find the idle worker gone by its silence first.
    let h = start(bus_spec(2, 1, numbers, seed, params(2, 1000)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let (a, _) = joined(&z, &endpoint, &token);
    let Message::Task { task, .. } = a.recv_real() else {
        panic!("no task")
    };
    // B joins with no task left to hold, and goes away.
    let zb = zmq::Context::new();
    let (b, idle) = joined(&zb, &endpoint, &token);
    b.s.set_linger(0).unwrap();
    drop(b);
    drop(zb);
    std::thread::sleep(Duration::from_millis(300));
    // A hands its task back: the master's try to give it to B fails.
    a.send(&Message::Declined {
        task,
        reason: "cpu is not implemented here".into(),
    });
    assert_eq!(a.recv_real(), Message::Stop {});
    let (reason, requeued) = wait_for(&h, 10, |e| match e {
        Event::WorkerLost {
            worker,
            reason,
            requeued,
            ..
        } if *worker == idle => Some((reason.clone(), *requeued)),
        _ => None,
    });
    assert!(reason.contains("cannot be reached"), "{reason}");
    assert_eq!(requeued, None, "it held no task");
    // A third worker runs the task, and the run ends right.
    let (c, _) = joined(&z, &endpoint, &token);
    let Message::Task { task, .. } = c.recv_real() else {
        panic!("no task for the third worker")
    };
    c.send(&Message::Done {
        task,
        sum: task_sum(seed, task as u64, numbers),
        cpu_ns: 0,
        latency_ms: vec![],
    });
    let (_, r) = finish(h, 30);
    assert_complete_and_right(&r, seed, numbers);
    assert_eq!(r.workers_lost, 1);
}

#[test]
fn a_workload_every_connected_worker_declines_fails_the_run_with_their_reasons() {
    let h = start(bus_spec(2, 4, 1000, 1, params(2, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let peers: Vec<Peer> = (0..2).map(|_| joined(&z, &endpoint, &token).0).collect();
    for (i, p) in peers.iter().enumerate() {
        let Message::Task { task, .. } = p.recv_real() else {
            panic!("no task")
        };
        p.send(&Message::Declined {
            task,
            reason: format!("cpu is not implemented here ({i})"),
        });
        assert_eq!(p.recv_real(), Message::Stop {}, "a decliner is stopped");
    }
    let (events, r) = finish(h, 10);
    assert_eq!(r.status, RunStatus::Failed);
    let reason = r.reason.unwrap();
    assert!(
        reason.starts_with("no connected worker runs the cpu workload: worker "),
        "{reason}"
    );
    assert!(
        reason.contains("cpu is not implemented here (0)"),
        "{reason}"
    );
    assert!(
        reason.contains("cpu is not implemented here (1)"),
        "{reason}"
    );
    let declines = events
        .iter()
        .filter(|e| matches!(e, Event::Bus(BusEvent::Declined { .. })))
        .count();
    assert_eq!(declines, 2);
    assert_eq!(r.workers_lost, 0, "declining is not being lost");
}

#[test]
fn a_declining_worker_hands_its_tasks_to_the_others_and_the_run_ends_right() {
    let (tasks, numbers, seed) = (6, 2_000_000, 5);
    let h = start(bus_spec(2, tasks, numbers, seed, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let (picky, worker) = joined(&z, &endpoint, &token);
    let Message::Task { task, .. } = picky.recv_real() else {
        panic!("no task")
    };
    picky.send(&Message::Declined {
        task,
        reason: "not today".into(),
    });
    assert_eq!(picky.recv_real(), Message::Stop {});
    let (_, r) = finish(h, 60);
    assert_complete_and_right(&r, seed, numbers);
    assert!(r.task_timeline.iter().all(|t| t.worker != worker));
    assert_eq!(r.workers_lost, 0);
}

#[test]
fn a_malformed_join_and_a_second_join_are_refused_naming_why() {
    let h = start(bus_spec(2, 4, 50_000_000, 1, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let broken = Peer::new(&z, &endpoint);
    broken.raw(&[br#"{"type":"join","protocol":1,"token":"x"}"#]);
    let Message::Refused { reason } = broken.recv_real() else {
        panic!("a malformed join gets an answer")
    };
    assert!(reason.starts_with("malformed message: "), "{reason}");
    assert!(reason.contains("host"), "names the missing field: {reason}");

    let (twice, worker) = joined(&z, &endpoint, &token);
    join(&twice, &token, BUS_PROTOCOL);
    loop {
        match twice.recv_real() {
            Message::Task { .. } => {}
            Message::Refused { reason } => {
                assert_eq!(reason, format!("already joined as worker {worker}"));
                break;
            }
            m => panic!("unexpected {m:?}"),
        }
    }
    let lost = wait_for(&h, 10, |e| match e {
        Event::WorkerLost {
            worker: w, reason, ..
        } if *w == worker => Some(reason.clone()),
        _ => None,
    });
    assert!(lost.contains("joined a second time"), "{lost}");
    h.cancel();
    let (_, r) = finish(h, 10);
    assert_eq!(r.status, RunStatus::Cancelled);
}

#[test]
fn when_every_worker_is_gone_the_run_fails_after_its_join_timeout_naming_the_last_loss() {
    let mut bus = params(1, 100);
    bus.join_timeout_s = 1;
    let h = start(bus_spec(1, 2, 50_000_000_000, 1, bus), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let z = zmq::Context::new();
    let (_silent, _) = joined(&z, &endpoint, &token);
    // It takes its task and then says nothing more: lost after 5 heartbeats.
    let (_, r) = finish(h, 30);
    assert_eq!(r.status, RunStatus::Failed);
    let reason = r.reason.unwrap();
    assert!(
        reason.starts_with("no worker has been connected for 1 s; the last one: worker 0 (pid 1 on test-peer) missed its heartbeats"),
        "{reason}"
    );
    assert_eq!(r.workers_lost, 1);
}

#[test]
fn a_worker_that_lies_plausibly_is_caught_evicted_and_its_results_run_again() {
    // Two honest local workers and one remote liar whose every sum is off by
    // one: inside the bounds, so only recomputing it can tell.
    let (tasks, numbers, seed) = (24, 2_000_000, 9);
    let h = start(bus_spec(3, tasks, numbers, seed, params(1, 250)), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let liar = std::thread::spawn(move || {
        let z = zmq::Context::new();
        let (p, worker) = joined(&z, &endpoint, &token);
        let mut answered = 0;
        loop {
            match p.recv_real() {
                Message::Task {
                    task,
                    seed,
                    numbers,
                    ..
                } => {
                    p.send(&Message::Done {
                        task,
                        sum: task_sum(seed, task as u64, numbers) + 1,
                        cpu_ns: 1_000_000,
                        latency_ms: vec![],
                    });
                    answered += 1;
                }
                Message::Refused { reason } | Message::Failed { reason, .. } => {
                    return (worker, answered, reason);
                }
                Message::Stop {} => return (worker, answered, "stopped".into()),
                m => panic!("unexpected {m:?}"),
            }
        }
    });
    let (events, r) = finish(h, 120);
    let (liar_worker, answered, farewell) = liar.join().unwrap();
    assert!(answered >= 1);
    assert!(farewell.contains("failed its spot-check"), "{farewell}");
    assert_complete_and_right(&r, seed, numbers);
    assert!(
        r.task_timeline.iter().all(|t| t.worker != liar_worker),
        "no result of the liar's is kept"
    );
    let v = r.verification.expect("the report says what was checked");
    assert!(v.verified >= 1 && v.mismatches >= 1, "{v:?}");
    assert_eq!(v.evicted.len(), 1, "{v:?}");
    assert!(
        v.evicted[0].starts_with(&format!("worker {liar_worker} (pid 1 on test-peer): task ")),
        "named: {v:?}"
    );
    let evictions = events
        .iter()
        .filter(
            |e| matches!(e, Event::Bus(BusEvent::Evicted { worker, .. }) if *worker == liar_worker),
        )
        .count();
    assert_eq!(evictions, 1);
}

#[test]
fn honest_remote_workers_pass_their_spot_checks() {
    let (tasks, numbers, seed) = (8, 1_000_000, 4);
    let mut bus = params(2, 250);
    bus.verify_percent = 100;
    let h = start(bus_spec(2, tasks, numbers, seed, bus), options()).unwrap();
    let (endpoint, token) = listening(&h);
    let mut workers = [
        join_worker(&endpoint, &token),
        join_worker(&endpoint, &token),
    ];
    let (_, r) = finish(h, 60);
    for w in &mut workers {
        let _ = w.wait();
    }
    assert_complete_and_right(&r, seed, numbers);
    let v = r.verification.unwrap();
    assert_eq!((v.verified, v.mismatches, v.percent), (tasks, 0, 100));
    assert!(v.evicted.is_empty());
}
