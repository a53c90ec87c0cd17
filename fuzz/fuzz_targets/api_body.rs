//! `POST /api/v1/runs` bodies, whatever they hold: a spec the engine can run,
//! which its own JSON gives back unchanged, or a refusal with a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab::server::body::run_spec;

fuzz_target!(|data: &[u8]| {
    match run_spec(data) {
        Ok(spec) => {
            assert!(spec.validate().is_ok(), "{spec:?}");
            assert!(spec.bus.keys.is_none(), "a key path over the API: {spec:?}");
            // The token is taken but never written out.
            let mut plain = spec.clone();
            plain.bus.token = None;
            let json = serde_json::to_string(&plain).expect("specs serialize");
            let again = run_spec(json.as_bytes()).expect("a spec's own JSON is a valid body");
            assert!(again == plain, "{json}");
        }
        Err(r) => {
            assert!(!r.message.is_empty());
            assert!(r.field.as_ref().is_none_or(|f| !f.is_empty()));
        }
    }
});
