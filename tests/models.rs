//! The chapter's other models: the emulated GIL, the event loop, and the
//! I/O-bound and mixed workloads, on every backend.

mod common;

use std::time::Duration;

use common::{options, spec};
use scalelab::engine::{EngineOptions, run_to_end, start};
use scalelab::latency_server::LatencyServer;
use scalelab::report::event::Event;
use scalelab::report::{RunReport, RunStatus};
use scalelab::spec::{BackendKind, IoParams, RunSpec, WorkloadKind};

fn io_spec(backend: BackendKind, workload: WorkloadKind, workers: u32) -> RunSpec {
    RunSpec {
        workload,
        io: IoParams {
            requests: 4,
            latency_ms: 5,
        },
        ..spec(backend, workers, 6, 300_000, 11)
    }
}

fn expected(s: &RunSpec) -> Vec<Option<u64>> {
    (0..s.tasks).map(|t| Some(s.expected_sum(t))).collect()
}

#[test]
fn every_workload_gives_the_same_sums_on_every_backend() {
    for workload in WorkloadKind::ALL {
        for backend in BackendKind::ALL {
            for workers in [1, 3] {
                let s = io_spec(backend, workload, workers);
                let r = run_to_end(s.clone(), options()).unwrap();
                assert_eq!(
                    r.status,
                    RunStatus::Ok,
                    "{backend} {workload} x{workers}: {:?}",
                    r.reason
                );
                assert_eq!(r.sums, expected(&s), "{backend} {workload} x{workers}");
                if workload.does_io() {
                    let io = r.io.as_ref().expect("io stats");
                    assert_eq!(io.requests, 6 * 4, "{backend} {workload}");
                    // 5 ms asked: the median is that, plus the scheduling of
                    // a loaded machine, far from a second.
                    assert!(
                        (5.0..500.0).contains(&io.latency_ms_p50),
                        "{backend} {workload}: {io:?}"
                    );
                    // The live rate counted every request as it was answered:
                    // summed over the samples' intervals, it gives them all.
                    let mut prev = 0.0;
                    let mut counted = 0.0;
                    for sample in &r.cpu_timeline {
                        counted += sample.requests_per_s * (sample.t_s - prev);
                        prev = sample.t_s;
                    }
                    assert!(
                        (counted - 24.0f64).abs() < 1e-6,
                        "{backend} {workload} x{workers}: {counted} requests in the samples"
                    );
                }
            }
        }
    }
}

fn gil_report(r: &RunReport) -> &scalelab::report::gil::GilReport {
    r.gil.as_ref().expect("a gil run reports its GIL")
}

#[test]
fn the_gil_is_never_held_by_two_threads() {
    for workload in WorkloadKind::ALL {
        let mut s = io_spec(BackendKind::Gil, workload, 4);
        s.numbers_per_task = 20_000_000;
        let r = run_to_end(s.clone(), options()).unwrap();
        assert_eq!(r.status, RunStatus::Ok, "{workload}: {:?}", r.reason);
        assert_eq!(r.sums, expected(&s));
        let g = gil_report(&r);
        assert!(g.holds.len() >= 4, "{workload}: {} holds", g.holds.len());
        let mut holds = g.holds.clone();
        holds.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        for w in holds.windows(2) {
            assert!(
                w[0].end_s <= w[1].start_s,
                "{workload}: overlapping holds {w:?}"
            );
        }
        assert!(g.switches >= 3, "{workload}: {} switches", g.switches);
        let held: f64 = g.per_worker.iter().map(|w| w.held_s).sum();
        assert!(
            held <= r.wall_s * 1.001,
            "{workload}: held {held} s in {} s",
            r.wall_s
        );
    }
}

#[test]
fn cpu_bound_gil_threads_hand_over_near_the_switch_interval() {
    for interval_us in [2_000u64, 10_000] {
        let mut s = spec(BackendKind::Gil, 2, 2, 400_000_000, 3);
        s.gil.switch_interval_us = interval_us;
        let r = run_to_end(s, options()).unwrap();
        assert_eq!(r.status, RunStatus::Ok);
        let g = gil_report(&r);
        assert!(g.drop_requests > 0);
        // Holds while both threads compute: the first half of the run.
        let mut d: Vec<f64> = g
            .holds
            .iter()
            .filter(|h| h.end_s < r.wall_s * 0.4)
            .map(|h| h.end_s - h.start_s)
            .collect();
        d.sort_by(f64::total_cmp);
        let ms = |q: f64| d[((d.len() - 1) as f64 * q) as usize] * 1e3;
        let want = interval_us as f64 / 1e3;
        // Load on the machine only lengthens holds (a holder the OS preempts
        // keeps the GIL), so the median bounds them from below, and the
        // shortest tenth, which a busy machine leaves near the interval,
        // bounds them from above: holds that end near the interval exist.
        assert!(
            ms(0.5) >= want * 0.8,
            "switch interval {want} ms, median hold {} ms",
            ms(0.5)
        );
        assert!(
            ms(0.1) <= want * 3.0 + 2.0,
            "switch interval {want} ms, the shortest tenth of holds end past {} ms",
            ms(0.1)
        );
    }
}

#[test]
fn live_gil_holds_are_reported_as_events() {
    let h = start(spec(BackendKind::Gil, 2, 2, 50_000_000, 3), options()).unwrap();
    let events: Vec<Event> = h.events.iter().collect();
    let mut holds: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::GilHold(g) => Some(*g),
            _ => None,
        })
        .collect();
    assert!(holds.len() >= 2, "{} hold events", holds.len());
    // The test checks mutual exclusion itself (the source's debug_assert is gone
    // in a release build): no two holds overlap, and both threads held it.
    holds.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    for w in holds.windows(2) {
        assert!(
            w[0].start_s <= w[0].end_s && w[0].end_s <= w[1].start_s,
            "two holders at once: {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    let holders: std::collections::HashSet<u32> = holds.iter().map(|g| g.worker).collect();
    assert_eq!(holders.len(), 2, "{holders:?}");
    // The report's hand-off timeline is the same story.
    let Some(Event::Finished(r)) = events.last() else {
        panic!("the run did not finish");
    };
    let gil = r.gil.as_ref().expect("a gil report");
    assert_eq!(gil.holds.len() + gil.holds_dropped as usize, holds.len());
}

#[test]
fn the_runs_latency_service_binds_loopback_and_ends_with_the_run() {
    for backend in BackendKind::ALL {
        let h = start(io_spec(backend, WorkloadKind::Io, 2), options()).unwrap();
        let Ok(Event::Started { io_addr, .. }) = h.events.recv() else {
            panic!("the first event is Started");
        };
        let addr = io_addr.expect("an io run has a latency service");
        assert!(addr.ip().is_loopback(), "{addr}");
        // While the run lasts, the service answers.
        assert!(std::net::TcpStream::connect(addr).is_ok());
        let r = h.wait();
        assert_eq!(r.status, RunStatus::Ok);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{backend}: the latency service outlived its run"
        );
    }
}

#[test]
fn a_request_that_fails_fails_the_run_with_a_reason() {
    for backend in BackendKind::ALL {
        // A service that goes away mid-run: the run must fail, not hang.
        let server = LatencyServer::start(11, Duration::from_millis(30)).unwrap();
        let opts = EngineOptions {
            io_server: Some(server.addr()),
            ..options()
        };
        let mut s = io_spec(backend, WorkloadKind::Io, 2);
        s.io = IoParams {
            requests: 50,
            latency_ms: 30,
        };
        let h = start(s, opts).unwrap();
        // Let requests start, then take the service down.
        while !matches!(
            h.events
                .recv_timeout(Duration::from_secs(10))
                .expect("the run starts"),
            Event::TaskStarted { .. }
        ) {}
        std::thread::sleep(Duration::from_millis(100));
        drop(server);
        let r = h.wait();
        assert_eq!(r.status, RunStatus::Failed, "{backend}");
        let why = r.reason.unwrap();
        assert!(why.contains("latency service"), "{backend}: {why}");
    }
}

/// One task that fails stops the run's other tasks at once: a service that
/// closes its first connection and leaves the others unanswered fails the run
/// with that connection's reason, without waiting the 10 s after which the unanswered
/// requests would give up.
#[test]
fn a_task_that_fails_stops_the_others_at_once() {
    for backend in BackendKind::ALL {
        let service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = service.local_addr().unwrap();
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let held = held.clone();
            std::thread::spawn(move || {
                for (i, conn) in service.incoming().enumerate() {
                    let Ok(conn) = conn else { return };
                    if i > 0 {
                        held.lock().unwrap().push(conn); // open, never answered
                    } // the first is closed at once
                }
            });
        }
        let opts = EngineOptions {
            io_server: Some(addr),
            ..options()
        };
        let mut s = io_spec(backend, WorkloadKind::Io, 2);
        s.tasks = 4;
        let t = std::time::Instant::now();
        let r = run_to_end(s, opts).unwrap();
        let took = t.elapsed();
        assert_eq!(r.status, RunStatus::Failed, "{backend}");
        let why = r.reason.unwrap();
        // The closed connection's reason (an end of file or a reset, or for
        // the bus, whose workers present a token first, a token not
        // accepted), not a give-up on the unanswered ones.
        assert!(
            why.contains("the latency service") && !why.contains("no answer"),
            "{backend}: {why}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{backend}: the run took {took:?}"
        );
    }
}

#[test]
fn io_runs_overlap_requests_with_enough_workers() {
    // 8 tasks x 4 requests x 25 ms: 8 workers take ~100 ms, 1 worker ~800 ms.
    for backend in [
        BackendKind::Threads,
        BackendKind::Gil,
        BackendKind::EventLoop,
    ] {
        let mut s = io_spec(backend, WorkloadKind::Io, 8);
        s.tasks = 8;
        s.io = IoParams {
            requests: 4,
            latency_ms: 25,
        };
        let wide = run_to_end(s.clone(), options()).unwrap();
        s.workers = 1;
        let narrow = run_to_end(s, options()).unwrap();
        assert_eq!(wide.status, RunStatus::Ok);
        // A ratio, not an absolute time: 8-way overlap should give well over 3x.
        let ratio = narrow.wall_s / wide.wall_s;
        assert!(
            ratio > 3.0,
            "{backend}: 1 worker {} s, 8 workers {} s",
            narrow.wall_s,
            wide.wall_s
        );
    }
}
