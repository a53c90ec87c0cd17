//! What the kittest suites share: a harness around the real app, typing into
//! a field, and stepping frames until the engine (on its own threads) is done.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use scalelab::gui::app::ScalelabApp;

/// The app in a 1440 x 900 window, one `ui_body` a frame.
pub fn harness(app: ScalelabApp) -> Harness<'static, ScalelabApp> {
    Harness::builder()
        .with_size([1440.0, 900.0])
        .build_ui_state(|ui, app: &mut ScalelabApp| app.ui_body(ui), app)
}

/// Types into the text field labelled `label`, replacing what it held.
pub fn set_field(h: &mut Harness<'_, ScalelabApp>, label: &str, text: &str) {
    h.get_by_label(label).set_text_value_accesskit(text);
    h.run_steps(2);
}

/// Steps frames (in real time: the engine runs on its own threads) until `done`.
pub fn step_until(
    h: &mut Harness<'_, ScalelabApp>,
    what: &str,
    done: impl Fn(&ScalelabApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(h.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}
