//! `scalelab gui --run LIST`: refused with a message, or specs that all validate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab::spec::RunSpec;
use scalelab::gui::scripted::parse_run_list;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = std::str::from_utf8(data) else {
        return;
    };
    match parse_run_list(list, &RunSpec::default()) {
        Ok(runs) => {
            assert!(!runs.is_empty());
            for r in runs {
                assert!(r.validate().is_ok(), "{r:?}");
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
