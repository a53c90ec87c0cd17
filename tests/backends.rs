//! Every backend gives the same sums, whatever the worker count; workers that
//! die are survived or reported.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{
    assert_lost_only_at_the_end, finish, finish_watching, options, options_with_worker_prelude,
    process_exists, spec,
};
use scalelab::backends::PROGRESS_PERIOD;
use scalelab::engine::{run_to_end, start};
use scalelab::report::RunStatus;
use scalelab::report::event::{Event, WorkerKind};
use scalelab::spec::BackendKind;
use scalelab::workload::cpu::task_sum;

#[test]
fn every_backend_and_worker_count_gives_the_same_sums() {
    let expected: Vec<Option<u64>> = (0..8).map(|t| Some(task_sum(42, t, 200_000))).collect();
    for backend in BackendKind::ALL {
        for workers in [1, 2, 3, 8] {
            let r = run_to_end(spec(backend, workers, 8, 200_000, 42), options()).unwrap();
            assert_eq!(
                r.status,
                RunStatus::Ok,
                "{backend} x {workers}: {:?}",
                r.reason
            );
            assert_eq!(r.sums, expected, "{backend} x {workers}");
            assert_eq!(r.total, expected.iter().flatten().sum::<u64>());
            assert_eq!(r.task_timeline.len(), 8);
            assert!(r.wall_s > 0.0 && r.user_s + r.sys_s > 0.0, "{r:?}");
            // Every task ran on one of the run's workers, inside the run, and
            // its CPU time was counted (a worker's clock read as it ran).
            for t in &r.task_timeline {
                assert!(t.worker < workers, "{t:?}");
                assert!(0.0 <= t.start_s && t.start_s <= t.end_s && t.end_s <= r.wall_s);
                assert!(t.cpu_s > 0.0, "{backend} x {workers}: {t:?}");
                // One thread's CPU over one task cannot exceed the task's wall
                // time (a millisecond's grace for the clocks' reads). A worker
                // process's start-up, about 4 ms, is the run's, not its first
                // task's.
                assert!(
                    t.cpu_s <= t.end_s - t.start_s + 1e-3,
                    "{backend} x {workers}: {t:?}"
                );
            }
        }
    }
}

/// A report carries the spec it ran as given: the engine draws a token only
/// for a bus run that has none, and never touches another backend's spec.
#[test]
fn a_report_carries_its_spec_as_given() {
    for backend in BackendKind::ALL {
        let given = spec(backend, 2, 2, 10_000, 3);
        let r = run_to_end(given.clone(), options()).unwrap();
        assert_eq!(r.status, RunStatus::Ok, "{backend}: {:?}", r.reason);
        if backend == BackendKind::Bus {
            // A token drawn for the run, and nothing else changed.
            let drawn = r.spec.bus.token.clone().expect("a token drawn for the bus");
            assert!(!drawn.is_empty());
            let mut with_token = given.clone();
            with_token.bus.token = Some(drawn);
            assert_eq!(r.spec, with_token);
        } else {
            assert_eq!(r.spec, given, "{backend}");
        }
    }
    let mut given = spec(BackendKind::Bus, 1, 2, 10_000, 3);
    given.bus.token = Some("the-users-own-token".into());
    let r = run_to_end(given.clone(), options()).unwrap();
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    assert_eq!(r.spec, given, "the user's token is kept");
}

#[test]
fn different_seeds_give_different_sums() {
    let a = run_to_end(spec(BackendKind::Threads, 2, 4, 100_000, 1), options()).unwrap();
    let b = run_to_end(spec(BackendKind::Threads, 2, 4, 100_000, 2), options()).unwrap();
    assert_ne!(a.sums, b.sums);
    // Tasks of one run differ from each other too.
    assert_ne!(a.sums[0], a.sums[1]);
}

#[test]
fn events_tell_a_complete_story() {
    for backend in BackendKind::ALL {
        let h = start(spec(backend, 2, 4, 3_000_000, 5), options()).unwrap();
        let events: Vec<Event> = h.events.iter().collect();
        assert!(matches!(events[0], Event::Started { .. }), "{backend}");
        let terminal: Vec<_> = events.iter().filter(|e| e.is_terminal()).collect();
        assert_eq!(terminal.len(), 1, "{backend}");
        assert!(events.last().unwrap().is_terminal());
        let kind = match backend {
            BackendKind::Threads | BackendKind::Gil => WorkerKind::Thread,
            BackendKind::Processes | BackendKind::Bus => WorkerKind::Process,
            BackendKind::EventLoop => WorkerKind::Coroutine,
        };
        let started = events
            .iter()
            .filter(|e| matches!(e, Event::WorkerStarted { kind: k, .. } if *k == kind))
            .count();
        assert_eq!(started, 2, "{backend}");
        let finished = events
            .iter()
            .filter(|e| matches!(e, Event::TaskFinished(_)))
            .count();
        assert_eq!(finished, 4, "{backend}");
        assert!(
            events.iter().any(|e| matches!(e, Event::Sample(_))),
            "{backend}"
        );
    }
}

#[test]
fn a_report_samples_cores_at_10_hz() {
    let r = run_to_end(spec(BackendKind::Threads, 2, 4, 150_000_000, 3), options()).unwrap();
    assert_eq!(r.status, RunStatus::Ok);
    let n = r.cpu_timeline.len() as f64;
    // One sample per 100 ms at least (the last one is taken at the end).
    assert!(
        n >= (r.wall_s / 0.1).floor(),
        "{n} samples in {} s",
        r.wall_s
    );
    assert!(r.cpu_timeline.iter().all(|s| s.per_core.len() == r.cores));
    let last = r.cpu_timeline.last().unwrap();
    assert_eq!(last.numbers_done, 4 * 150_000_000);
}

/// Starts a long `processes` run and returns it once every worker has said hello.
fn long_process_run(
    workers: u32,
    tasks: u32,
) -> (scalelab::engine::RunHandle, Vec<u32>, Vec<Event>) {
    let h = start(
        spec(BackendKind::Processes, workers, tasks, 400_000_000, 7),
        options(),
    )
    .unwrap();
    let mut pids = Vec::new();
    let mut seen = Vec::new();
    while pids.len() < workers as usize {
        let e = h
            .events
            .recv_timeout(Duration::from_secs(10))
            .expect("workers start");
        if let Event::WorkerStarted { os_id, .. } = e {
            pids.push(os_id);
        }
        seen.push(e);
    }
    (h, pids, seen)
}

#[test]
fn a_killed_child_is_replaced_and_its_task_rerun() {
    let (h, pids, _) = long_process_run(2, 4);
    std::thread::sleep(Duration::from_millis(100));
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let t = Instant::now();
    let mut lost = Vec::new();
    let mut replacements = Vec::new();
    let r = finish_watching(h, 60, |e| match e {
        Event::WorkerLost {
            os_id,
            reason,
            requeued,
            ..
        } => lost.push((os_id, reason, requeued)),
        Event::WorkerStarted { worker, os_id, .. } => replacements.push((worker, os_id)),
        _ => {}
    });
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].0, pids[0]);
    assert!(lost[0].1.contains("signal 9"), "{}", lost[0].1);
    assert!(lost[0].2.is_some(), "the killed worker held a task");
    let expected: Vec<_> = (0..4).map(|i| Some(task_sum(7, i, 400_000_000))).collect();
    assert_eq!(r.sums, expected);
    assert_eq!(r.workers_lost, 1);
    assert!(t.elapsed() < Duration::from_secs(60));
    // The pool is kept at strength: worker 2 replaces worker 0.
    assert_eq!(replacements.len(), 1, "{replacements:?}");
    assert_eq!(replacements[0].0, 2);
    for pid in pids.into_iter().chain([replacements[0].1]) {
        assert!(!process_exists(pid), "worker {pid} outlived the run");
    }
}

/// Workers leave by themselves once their input closes at the run's end (the
/// run above checks that no other is lost); one that cannot, held by
/// SIGSTOP, is killed after the grace and reported lost.
#[test]
fn a_worker_that_does_not_stop_at_the_end_is_killed_and_reported_lost() {
    let (h, _, seen) = long_process_run(2, 1);
    // Workers say hello in any order: map them by number.
    let pid_of: std::collections::BTreeMap<u32, u32> = seen
        .iter()
        .filter_map(|e| match e {
            Event::WorkerStarted { worker, os_id, .. } => Some((*worker, *os_id)),
            _ => None,
        })
        .collect();
    let mut busy = seen.iter().find_map(|e| match e {
        Event::TaskStarted { worker, .. } => Some(*worker),
        _ => None,
    });
    while busy.is_none() {
        if let Event::TaskStarted { worker, .. } =
            h.events.recv_timeout(Duration::from_secs(10)).unwrap()
        {
            busy = Some(worker);
        }
    }
    let idle = pid_of[&(1 - busy.unwrap())];
    unsafe { libc::kill(idle as i32, libc::SIGSTOP) };
    let (events, r) = finish(h, 60);
    assert_lost_only_at_the_end(&r, &events, idle, "its input closing");
    assert!(
        !process_exists(idle),
        "the stopped worker {idle} outlived the run"
    );
}

#[test]
fn a_task_whose_workers_keep_dying_fails_the_run_with_a_reason() {
    let (h, pids, _) = long_process_run(1, 1);
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let mut killed = vec![pids[0]];
    let r = finish_watching(h, 30, |e| {
        // Kill the replacement too: the task has then died twice.
        if let Event::WorkerStarted { os_id, .. } = e {
            unsafe { libc::kill(os_id as i32, libc::SIGKILL) };
            killed.push(os_id);
        }
    });
    assert_eq!(r.status, RunStatus::Failed);
    let why = r.reason.unwrap();
    assert!(why.contains("worker 1") && why.contains("task 0"), "{why}");
    assert!(why.contains("re-run"), "{why}");
    for pid in killed {
        assert!(!process_exists(pid), "worker {pid} was not reaped");
    }
}

/// The pool replaces lost children up to twice its size; once no child is
/// left and tasks still wait, the run fails saying so rather than wait for ever.
#[test]
fn a_pool_out_of_replacements_fails_the_run_with_a_reason() {
    let (h, pids, _) = long_process_run(1, 3);
    // Worker 0 dies on task 0; worker 1 replaces it, and dies on task 1, which
    // still has its retry: but a pool of 1 gets only one replacement.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let mut killed = vec![pids[0]];
    let mut replacement = None;
    let r = finish_watching(h, 60, |e| match e {
        Event::WorkerStarted {
            worker: 1, os_id, ..
        } => replacement = Some(os_id),
        Event::TaskStarted {
            task: 1, worker: 1, ..
        } => {
            let pid = replacement.expect("worker 1 started");
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed.push(pid);
        }
        _ => {}
    });
    assert_eq!(r.status, RunStatus::Failed);
    let why = r.reason.unwrap();
    assert!(
        why.contains("worker 1") && why.contains("no worker is left to run the remaining tasks"),
        "{why}"
    );
    assert_eq!(r.workers_lost, 2);
    for pid in killed {
        assert!(!process_exists(pid), "worker {pid} was not reaped");
    }
}

#[test]
fn a_worker_binary_that_is_missing_fails_the_run_with_a_reason() {
    let mut opts = options();
    opts.worker_exe = Some("/nonexistent/scalelab".into());
    let r = run_to_end(spec(BackendKind::Processes, 2, 2, 10, 1), opts).unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.reason.unwrap().contains("cannot start worker 0"));
}

#[test]
fn invalid_specs_are_refused_before_anything_starts() {
    for (s, field) in [
        (spec(BackendKind::Threads, 0, 8, 10, 1), "workers"),
        (spec(BackendKind::Processes, 1025, 8, 10, 1), "workers"),
        (spec(BackendKind::Threads, 2, 0, 10, 1), "tasks"),
        (spec(BackendKind::Threads, 2, 8, 0, 1), "numbers_per_task"),
        (
            spec(BackendKind::Threads, 2, 1000, u64::MAX / 1000, 1),
            "numbers_per_task",
        ),
    ] {
        let err = start(s, options()).err().expect("refused");
        assert_eq!(err.invalid_field(), Some(field), "{err}");
    }
}

#[test]
fn every_backend_counts_numbers_while_tasks_run_and_never_twice() {
    for backend in BackendKind::ALL {
        // Two tasks of ~0.3 s each: samples at 10 Hz land in the middle of them.
        let r = run_to_end(spec(backend, 2, 2, 400_000_000, 9), options()).unwrap();
        assert_eq!(r.status, RunStatus::Ok, "{backend}: {:?}", r.reason);
        let total = 2 * 400_000_000;
        let done: Vec<u64> = r.cpu_timeline.iter().map(|s| s.numbers_done).collect();
        assert_eq!(*done.last().unwrap(), total, "{backend}: {done:?}");
        assert!(done.iter().all(|&d| d <= total), "{backend}: {done:?}");
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "{backend}: {done:?}");
        assert!(
            done.iter().any(|&d| d > 0 && d < total),
            "{backend}: numbers only counted when tasks end: {done:?}"
        );
    }
}

/// A worker process's start-up is the run's CPU time, not its first task's.
/// The workers here start through a script that spins for about 0.3 s of CPU
/// before it becomes `scalelab worker` (exec keeps the process and its CPU
/// clock); a task of 200,000 numbers takes well under 20 ms.
#[test]
fn a_worker_processs_start_up_is_the_runs_cpu_not_its_first_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options_with_worker_prelude(
        dir.path(),
        "i=0\nwhile [ $i -lt 300000 ]; do i=$((i+1)); done",
    );
    for backend in [BackendKind::Processes, BackendKind::Bus] {
        let r = run_to_end(spec(backend, 1, 3, 200_000, 4), opts.clone()).unwrap();
        assert_eq!(r.status, RunStatus::Ok, "{backend}: {:?}", r.reason);
        let tasks: f64 = r.task_timeline.iter().map(|t| t.cpu_s).sum();
        for t in &r.task_timeline {
            assert!(t.cpu_s < 0.02, "{backend}: {t:?} carries the start-up");
        }
        assert!(
            r.user_s + r.sys_s > tasks + 0.1,
            "{backend}: the start-up is still the run's: {} s in all, {tasks} s in tasks",
            r.user_s + r.sys_s
        );
    }
}

/// Progress comes at the throttle's pace, at most once per `PROGRESS_PERIOD`
/// and once more at a task's end, not after every chunk of numbers: the
/// window redraws on each report, and a report per chunk would have it draw
/// hundreds of times a second per worker.
#[test]
fn every_backend_reports_progress_at_the_throttles_pace_not_per_chunk() {
    let numbers = 40_000_000; // 610 chunks per task
    for backend in BackendKind::ALL {
        let h = start(spec(backend, 2, 2, numbers, 5), options()).unwrap();
        let mut reports: HashMap<u32, u64> = HashMap::new();
        let r = finish_watching(h, 120, |e| {
            if let Event::Progress { task, .. } = e {
                *reports.entry(task).or_default() += 1;
            }
        });
        assert_eq!(r.status, RunStatus::Ok, "{backend}: {:?}", r.reason);
        assert_eq!(r.task_timeline.len(), 2, "{backend}: both tasks finish");
        for t in &r.task_timeline {
            let (task, wall) = (t.task, t.end_s - t.start_s);
            let n = reports.get(&task).copied().unwrap_or(0);
            // Load only lengthens a task, and so only widens the allowance.
            let allowed = (wall / PROGRESS_PERIOD.as_secs_f64()).floor() as u64 + 2;
            assert!(
                n <= allowed,
                "{backend}: task {task} reported progress {n} times in {wall:.3} s (at most {allowed})"
            );
        }
    }
}

/// Starts a long run with two workers on each backend that starts its own,
/// and hands each worker's thread or process id to `check` once it has had a
/// moment to lower itself.
fn check_each_started_worker(
    opts: scalelab::engine::EngineOptions,
    check: impl Fn(BackendKind, u32),
) {
    for backend in [
        BackendKind::Threads,
        BackendKind::Processes,
        BackendKind::Bus,
    ] {
        let h = start(spec(backend, 2, 4, 2_000_000_000, 1), opts.clone()).unwrap();
        let mut checked = 0;
        while checked < 2 {
            let e = h
                .events
                .recv_timeout(Duration::from_secs(10))
                .expect("workers start");
            if let Event::WorkerStarted { os_id, .. } = e {
                // A worker lowers itself as it starts: give it a moment.
                std::thread::sleep(Duration::from_millis(50));
                check(backend, os_id);
                checked += 1;
            }
        }
        h.cancel();
        h.join();
    }
}

/// The nice value of a thread or process.
fn nice_of(os_id: u32) -> i32 {
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, os_id)
    }
}

#[test]
fn the_desktop_apps_workers_run_under_sched_idle() {
    // The GUI asks for SCHED_IDLE workers so that its own thread always gets a core.
    let opts = scalelab::engine::EngineOptions {
        worker_sched_idle: true,
        worker_nice: 10,
        ..options()
    };
    check_each_started_worker(opts, |backend, os_id| {
        let policy = unsafe { libc::sched_getscheduler(os_id as i32) };
        assert_eq!(policy, libc::SCHED_IDLE, "{backend}: worker {os_id}");
        assert_eq!(nice_of(os_id), 10, "{backend}: worker {os_id}");
    });
}

/// Workers asked for no nice keep the one they inherit: a run started from a
/// thread at nice 3 (as `nice scalelab` would be) does not lift its workers
/// back to 0, which only a privileged process could do anyway.
#[test]
fn workers_asked_for_no_nice_keep_the_one_they_inherit() {
    std::thread::spawn(|| {
        // Raising one's own nice needs no privilege; this thread only.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 3) };
        check_each_started_worker(options(), |backend, os_id| {
            assert_eq!(nice_of(os_id), 3, "{backend}: worker {os_id}");
        });
    })
    .join()
    .unwrap();
}

#[test]
fn cpu_percent_is_user_plus_system_time_over_wall_time() {
    // The io workload's socket calls are system time; where the clocks caught
    // some, a %CPU from user time alone would read low.
    for backend in [BackendKind::Threads, BackendKind::Processes] {
        let s = scalelab::spec::RunSpec {
            workload: scalelab::spec::WorkloadKind::Io,
            io: scalelab::spec::IoParams {
                requests: 200,
                latency_ms: 0,
            },
            ..spec(backend, 2, 4, 1, 3)
        };
        let r = run_to_end(s, options()).unwrap();
        assert_eq!(r.status, RunStatus::Ok, "{backend}: {:?}", r.reason);
        let expected = 100.0 * (r.user_s + r.sys_s) / r.wall_s;
        assert!(
            (r.cpu_percent - expected).abs() <= 1e-9 * expected.max(1.0),
            "{backend}: cpu_percent {} is not 100 (user {} + sys {}) / wall {}",
            r.cpu_percent,
            r.user_s,
            r.sys_s,
            r.wall_s
        );
    }
}
