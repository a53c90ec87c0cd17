//! Property tests (fuzzing with proptest) of the decoders of outside input the
//! wire tests do not cover: the scripted mode's run lists (`threads:8,...`),
//! the persisted app state, and the GUI's form. Whatever the input, each
//! answers with a value or an error message, never a panic, and what it
//! accepts is valid.

use proptest::prelude::*;

use scalelab::gui::app::AppState;
use scalelab::gui::controls::SpecForm;
use scalelab::gui::scripted::parse_run_list;
use scalelab::spec::RunSpec;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn run_lists_never_panic_and_accepted_specs_are_valid(list in ".{0,60}") {
        if let Ok(specs) = parse_run_list(&list, &RunSpec::default()) {
            prop_assert!(!specs.is_empty());
            for s in specs {
                prop_assert!(s.validate().is_ok());
            }
        }
    }

    #[test]
    fn run_lists_of_the_right_shape_parse(
        items in proptest::collection::vec(
            (prop_oneof![Just("threads"), Just("gil"), Just("processes"), Just("eventloop"), Just("bus")], 1u32..=1024),
            1..6,
        )
    ) {
        let list = items.iter().map(|(b, w)| format!("{b}:{w}")).collect::<Vec<_>>().join(",");
        let specs = parse_run_list(&list, &RunSpec::default()).unwrap();
        prop_assert_eq!(specs.len(), items.len());
        for (s, (b, w)) in specs.iter().zip(&items) {
            prop_assert_eq!(s.backend.name(), *b);
            prop_assert_eq!(s.workers, *w);
        }
    }

    #[test]
    fn persisted_state_never_panics(text in ".{0,200}") {
        let (state, problem) = AppState::from_stored(Some(&text));
        if problem.is_some() {
            prop_assert_eq!(state, AppState::default());
        }
    }

    #[test]
    fn damaged_saved_state_gives_defaults_or_a_readable_state(cut in 0usize..400, flip in 0usize..400, byte in any::<u8>()) {
        // A real saved state, truncated and with one byte changed.
        let mut state = AppState::default();
        state.form.workers = "3".into();
        let mut bytes = state.to_stored().into_bytes();
        if flip < bytes.len() {
            bytes[flip] = byte;
        }
        bytes.truncate(cut.min(bytes.len()));
        let text = String::from_utf8_lossy(&bytes).to_string();
        let (back, problem) = AppState::from_stored(Some(&text));
        if problem.is_some() {
            prop_assert_eq!(back, AppState::default());
        } else {
            // Taken as readable: then it is a state the app can save and read back
            // as itself, and an undamaged text gives exactly what was saved.
            let (again, again_problem) = AppState::from_stored(Some(&back.to_stored()));
            prop_assert!(again_problem.is_none(), "{:?}", again_problem);
            prop_assert_eq!(&again, &back);
            if text == state.to_stored() {
                prop_assert_eq!(&back, &state);
            }
        }
    }

    #[test]
    fn the_form_never_panics_and_what_it_accepts_is_valid(
        workers in ".{0,12}", tasks in ".{0,12}", numbers in ".{0,24}", seed in ".{0,24}",
        requests in ".{0,8}", latency in ".{0,8}", switch in ".{0,8}", remote in ".{0,6}",
    ) {
        for backend in scalelab::spec::BackendKind::ALL {
            for workload in scalelab::spec::WorkloadKind::ALL {
                let form = SpecForm {
                    backend,
                    workload,
                    workers: workers.clone(),
                    tasks: tasks.clone(),
                    numbers: numbers.clone(),
                    seed: seed.clone(),
                    requests: requests.clone(),
                    latency_ms: latency.clone(),
                    switch_interval_ms: switch.clone(),
                    bus_remote: remote.clone(),
                    ..SpecForm::default()
                };
                match form.parse() {
                    Ok(spec) => prop_assert!(spec.validate().is_ok()),
                    Err(problems) => prop_assert!(problems.iter().all(|p| !p.message.is_empty())),
                }
            }
        }
    }
}
