//! The window's form, every text field typed at random (fields split on `\x1f`),
//! on every backend and workload: a spec that validates, or problems each naming a field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab::spec::{BackendKind, WorkloadKind};
use scalelab::gui::controls::SpecForm;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut f = text.split('\x1f').map(str::to_string);
    let mut next = || f.next().unwrap_or_default();
    let base = SpecForm {
        workers: next(),
        tasks: next(),
        numbers: next(),
        seed: next(),
        requests: next(),
        latency_ms: next(),
        switch_interval_ms: next(),
        bus_bind: next(),
        bus_token: next(),
        bus_remote: next(),
        ..SpecForm::default()
    };
    for backend in BackendKind::ALL {
        for workload in WorkloadKind::ALL {
            let form = SpecForm {
                backend,
                workload,
                ..base.clone()
            };
            match form.parse() {
                Ok(spec) => assert!(spec.validate().is_ok(), "{spec:?}"),
                Err(problems) => {
                    assert!(!problems.is_empty());
                    assert!(problems.iter().all(|p| !p.message.is_empty()));
                }
            }
        }
    }
});
