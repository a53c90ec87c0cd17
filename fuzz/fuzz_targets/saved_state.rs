//! The app's saved state as eframe's storage hands it back, whatever it holds:
//! unreadable gives the defaults and a message; readable saves and reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalelab::gui::app::AppState;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (state, problem) = AppState::from_stored(Some(text));
    if problem.is_some() {
        assert!(state == AppState::default());
    } else {
        let (again, again_problem) = AppState::from_stored(Some(&state.to_stored()));
        assert!(again_problem.is_none());
        assert!(again == state);
    }
});
