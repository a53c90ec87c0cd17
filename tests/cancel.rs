//! Cancelling stops every worker within 100 ms and leaves no thread or child.
//! (Alone in its test binary so that no other test's threads are counted.)

mod common;

use std::time::{Duration, Instant};

use common::{options, process_exists, scalelab_threads, spec};
use scalelab::engine::start;
use scalelab::report::RunStatus;
use scalelab::report::event::Event;
use scalelab::spec::{BackendKind, IoParams, WorkloadKind};

#[test]
fn cancel_ends_every_backend_and_workload_within_100_ms() {
    for (backend, workload) in BackendKind::ALL
        .into_iter()
        .flat_map(|b| WorkloadKind::ALL.map(|w| (b, w)))
    {
        let mut s = spec(backend, 4, 8, 10_000_000_000, 1);
        s.workload = workload;
        // Requests that take long enough to be cancelled in the middle of one.
        s.io = IoParams {
            requests: 1000,
            latency_ms: 500,
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
            took <= Duration::from_millis(100),
            "{backend} {workload}: cancel took {took:?}"
        );
        assert_eq!(r.status, RunStatus::Cancelled);
        assert!(r.sums.iter().all(Option::is_none), "no task finished");
        assert_eq!(scalelab_threads(), Vec::<String>::new(), "{backend}");
        if backend == BackendKind::Processes {
            for pid in workers {
                assert!(!process_exists(pid), "{backend}: child {pid} left behind");
            }
        }
    }
}
