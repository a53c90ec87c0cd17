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
            // A field at fault is named in the message, or is the spec's own
            // (whose message then says what is wrong with it).
            if let Some(f) = &r.field {
                let own = serde_json::to_value(scalelab::spec::RunSpec::default()).unwrap();
                let top = f.split('.').next().unwrap_or_default();
                assert!(
                    r.message.contains(&format!("{f:?}")) || own.get(top).is_some(),
                    "{r:?}"
                );
            }
        }
    }
});
