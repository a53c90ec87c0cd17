//! Cancelling stops every worker promptly, mid-task and mid-request, and leaves
//! no thread or child. (Alone in its test binary so that no other test's threads
//! are counted.)
//!
//! "Promptly" here is a bound no wait-for-the-task implementation can meet, not a
//! speed target: each CPU task would run for a minute and each I/O request for
//! 30 s, so a cancel that waits for either takes far longer than the 2 s allowed.
//! How fast cancel is (target 100 ms; about 1 ms for threads, 5–20 ms for
//! processes and bus) is measured by `scalelab compare`'s limits section in
//! BENCHMARKS.md, where a shared machine's noise cannot fail the suite.

mod common;

use std::time::{Duration, Instant};

use common::{options, process_exists, scalelab_threads, spec};
use scalelab::engine::start;
use scalelab::report::RunStatus;
use scalelab::report::event::Event;
use scalelab::spec::{BackendKind, IoParams, WorkloadKind};

#[test]
fn cancel_ends_every_backend_and_workload_mid_task() {
    for (backend, workload) in BackendKind::ALL
        .into_iter()
        .flat_map(|b| WorkloadKind::ALL.map(|w| (b, w)))
    {
        let mut s = spec(backend, 4, 8, 10_000_000_000, 1);
        s.workload = workload;
        // Requests that take long enough to be cancelled in the middle of one.
        s.io = IoParams {
            requests: 1000,
            latency_ms: 30_000,
        };
        let h = start(s, options()).unwrap();
        let mut workers = Vec::new();
        let mut busy = 0;
        while workers.len() < 4 || busy < 4 {
            match h
                .events
                .recv_timeout(Duration::from_secs(10))
                .expect("the run starts")
            {
                Event::WorkerStarted { os_id, .. } => workers.push(os_id),
                Event::TaskStarted { .. } => busy += 1,
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        h.cancel();
        let r = loop {
            match h
                .events
                .recv_timeout(Duration::from_secs(5))
                .expect("cancel is prompt")
            {
                Event::Cancelled(r) => break r,
                e if e.is_terminal() => panic!("{backend}: ended with {e:?}"),
                _ => {}
            }
        };
        h.join();
        let took = t.elapsed();
        assert!(
            took <= Duration::from_secs(2),
            "{backend} {workload}: cancel took {took:?}"
        );
        assert_eq!(r.status, RunStatus::Cancelled);
        assert!(r.sums.iter().all(Option::is_none), "no task finished");
        // Workers ended by a cancel are ended on purpose, not lost.
        assert_eq!(r.workers_lost, 0, "{backend} {workload}");
        assert_eq!(scalelab_threads(), Vec::<String>::new(), "{backend}");
        if backend == BackendKind::Processes {
            for pid in workers {
                assert!(!process_exists(pid), "{backend}: child {pid} left behind");
            }
        }
    }
}
