//! 500 runs back to back, in this process and through the CLI: nothing leaks.
//! (Alone in its binary: it counts the process's threads and descriptors.)

use std::path::Path;

use scalelab::engine::EngineOptions;
use scalelab::reliability::soak::{soak, soak_cli};
use scalelab::spec::BackendKind;

#[test]
fn five_hundred_runs_leave_nothing_behind() {
    let options = EngineOptions {
        worker_exe: Some(env!("CARGO_BIN_EXE_scalelab").into()),
        ..EngineOptions::default()
    };
    let r = soak(500, &BackendKind::ALL, &options);
    eprintln!("in-process soak: {}", serde_json::to_string(&r).unwrap());
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.clean(), "{r:?}");

    let r = soak_cli(
        500,
        &BackendKind::ALL,
        Path::new(env!("CARGO_BIN_EXE_scalelab")),
    );
    eprintln!("CLI soak: {}", serde_json::to_string(&r).unwrap());
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.clean(), "{r:?}");
}
