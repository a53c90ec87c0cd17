//! A run request's body (`POST /api/v1/runs`): JSON bytes in, a run spec the
//! engine can run out, or the reason and the field at fault, in the CLI's
//! words. Kept apart from the HTTP handler so that the fuzzer (fuzz/) and the
//! unit tests drive it without a server.

use crate::spec::RunSpec;

/// Why a body is not a run the server will take.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    /// The spec's field at fault (`workers`, `io.requests`, `bus.keys`), if one is.
    pub field: Option<String>,
}

impl Refusal {
    fn new(message: String, field: Option<&str>) -> Self {
        Self {
            message,
            field: field.map(str::to_string),
        }
    }
}

/// The run `body` asks for, checked as `scalelab run` checks its flags.
pub fn run_spec(body: &[u8]) -> Result<RunSpec, Refusal> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::new(format!("the body is not JSON: {e}"), None))?;
    if let Some(field) = unknown_field(&value) {
        // A misspelt knob would otherwise run with its default, unnoticed.
        return Err(Refusal::new(
            // Quoted: a key may be empty, or hold spaces (the fuzzer sent `{"": 7}`).
            format!("no such field: {field:?}"),
            Some(&field),
        ));
    }
    let spec: RunSpec = serde_json::from_value(value)
        .map_err(|e| Refusal::new(format!("the body is not a run spec: {e}"), None))?;
    if let Err(e) = spec.validate() {
        return Err(Refusal::new(e.message, Some(e.field)));
    }
    if spec.bus.keys.is_some() {
        // A path on the server, which a caller has no business choosing.
        let msg = "a key file is a path on the server: not accepted over the API";
        return Err(Refusal::new(msg.into(), Some("bus.keys")));
    }
    Ok(spec)
}

/// The first field of `body` (an object, and its `io`, `gil` and `bus`) that
/// no run spec has, as `name` or `bus.name`.
fn unknown_field(body: &serde_json::Value) -> Option<String> {
    let known = serde_json::to_value(RunSpec::default()).expect("specs serialize");
    let (Some(body), Some(known)) = (body.as_object(), known.as_object()) else {
        return None; // not an object: serde says what is wrong
    };
    for (key, value) in body {
        let Some(inner_known) = known.get(key) else {
            return Some(key.clone());
        };
        if let (Some(inner), Some(inner_known)) = (value.as_object(), inner_known.as_object()) {
            // The bus token is taken but never written out.
            let secret = |k: &str| key == "bus" && k == "token";
            if let Some(k) = inner
                .keys()
                .find(|k| !inner_known.contains_key(*k) && !secret(k))
            {
                return Some(format!("{key}.{k}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole spec, with `extra` fields added or replaced.
    fn body(extra: &str) -> String {
        let base = r#""backend":"threads","workload":"cpu","workers":2,"tasks":2,"numbers_per_task":1000,"seed":1"#;
        if extra.is_empty() {
            format!("{{{base}}}")
        } else {
            // Later keys win in serde_json's map, as they do in JavaScript.
            format!("{{{base},{extra}}}")
        }
    }

    fn refused(body: &str) -> Refusal {
        run_spec(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn a_valid_body_gives_its_spec_and_defaults_the_knobs() {
        let spec = run_spec(body(r#""backend":"processes","workers":3"#).as_bytes()).unwrap();
        assert_eq!(spec.backend, crate::spec::BackendKind::Processes);
        assert_eq!(spec.workers, 3);
        assert_eq!(spec.numbers_per_task, 1000);
        assert_eq!(spec.io, RunSpec::default().io);
        let spec = run_spec(body(r#""io":{"requests":4,"latency_ms":5}"#).as_bytes()).unwrap();
        assert_eq!(spec.io.requests, 4);
    }

    #[test]
    fn refusals_name_the_field_at_fault() {
        let r = refused(&body(r#""wrkers":3"#));
        assert_eq!(r.field.as_deref(), Some("wrkers"));
        assert_eq!(r.message, r#"no such field: "wrkers""#);
        // Found by the api_body fuzz target: an empty key is named, quoted.
        let r = run_spec(b"{\"\":\r7}\r").unwrap_err();
        assert_eq!(r.message, r#"no such field: """#);
        assert_eq!(r.field.as_deref(), Some(""));
        let r = refused(&body(r#""io":{"request":1}"#));
        assert_eq!(r.field.as_deref(), Some("io.request"));
        let r = refused(&body(r#""workers":0"#));
        assert_eq!(r.field.as_deref(), Some("workers"), "{r:?}");
        let r = refused(&body(r#""bus":{"keys":"/etc/shadow"}"#));
        assert_eq!(r.field.as_deref(), Some("bus.keys"), "{r:?}");
        // The bus token is accepted though never written out.
        assert!(run_spec(body(r#""bus":{"token":"t"}"#).as_bytes()).is_ok());
    }

    #[test]
    fn what_is_not_a_spec_is_refused_without_a_field() {
        let not_specs = [
            String::new(),
            "[".into(),
            "nul".into(),
            "[1,2]".into(),
            "\"threads\"".into(),
            "{}".into(),
            body(r#""workers":-1"#),
            body(r#""workers":"2""#),
        ];
        for b in not_specs {
            let r = refused(&b);
            assert_eq!(r.field, None, "{b}: {r:?}");
            assert!(!r.message.is_empty());
        }
    }
}
