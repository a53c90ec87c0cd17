//! Seeded fault injection: a few hundred runs with workers killed and runs
//! cancelled at random moments. Every run ends ok with the right sums,
//! cancelled, or failed with a reason; none hangs; no worker is left.

use scalelab::engine::EngineOptions;
use scalelab::reliability::faults::campaign;
use scalelab::spec::BackendKind;

#[test]
fn kills_and_cancels_at_random_moments_break_nothing() {
    let options = EngineOptions {
        worker_exe: Some(env!("CARGO_BIN_EXE_scalelab").into()),
        ..EngineOptions::default()
    };
    let r = campaign(20261127, 240, &BackendKind::ALL, &options);
    eprintln!(
        "{} cases: {} ok, {} cancelled, {} failed, {} workers killed, slowest ending {:.0} ms",
        r.cases, r.ok, r.cancelled, r.failed, r.workers_killed, r.slowest_ending_ms
    );
    assert!(r.bad.is_empty(), "{:#?}", r.bad);
    assert_eq!(r.ok + r.cancelled + r.failed, r.cases);
    // The campaign really did something: workers died and runs were cancelled.
    assert!(r.workers_killed >= 10, "{} kills", r.workers_killed);
    assert!(r.cancelled >= 10, "{} cancels", r.cancelled);
}
