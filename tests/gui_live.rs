//! The live view's honesty, through egui_kittest: a first run sized from the
//! machine's own speed, a run too short to chart says so and offers a longer
//! one, and the window's own cost is on screen while a run goes.

use std::path::PathBuf;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

mod gui_support;
use gui_support::{harness, set_field, step_until};

use scalelab::engine::EngineOptions;
use scalelab::engine::calibrate::Calibration;
use scalelab::gui::app::{AppState, ScalelabApp, ThemeChoice};
use scalelab::report::RunStatus;

/// This machine as the calibration saw it in these tests: 2 cores, 1 ns a number.
const CALIBRATION: Calibration = Calibration {
    ns_per_number: 1.0,
    cores: 2,
};

fn app(fresh_form: bool) -> ScalelabApp {
    let state = AppState {
        theme: ThemeChoice::Dark,
        ..AppState::default()
    };
    let options = EngineOptions {
        worker_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_scalelab"))),
        ..EngineOptions::default()
    };
    ScalelabApp::new(state, options).with_calibration(CALIBRATION, fresh_form)
}

fn fill_form(h: &mut Harness<'_, ScalelabApp>, workers: &str, tasks: &str, numbers: &str) {
    set_field(h, "Workers", workers);
    set_field(h, "Tasks", tasks);
    set_field(h, "Numbers per task", numbers);
}

/// Workers, tasks and numbers per task, as the form holds them.
fn form_size<'a>(h: &'a Harness<'_, ScalelabApp>) -> (&'a str, &'a str, &'a str) {
    let f = &h.state().state.form;
    (&f.workers, &f.tasks, &f.numbers)
}

#[test]
fn a_fresh_form_holds_a_run_of_a_few_seconds_here() {
    let h = harness(app(true));
    // 8 tasks on 2 cores at 1 ns a number: 4 x 750,000,000 per core, 3 s.
    assert_eq!(form_size(&h), ("8", "8", "750,000,000"));
    // A saved form is left as the user left it.
    let h = harness(app(false));
    assert_eq!(h.state().state.form.numbers, "1,000,000");
}

#[test]
fn a_run_too_short_to_chart_says_so_and_offers_a_longer_one() {
    let mut h = harness(app(false));
    h.run_steps(2);
    fill_form(&mut h, "2", "2", "1,000");
    h.get_by_label("Run").click();
    h.step();
    step_until(&mut h, "the run to finish", |a| !a.is_running());
    h.run();
    let wall = h.state().state.history.entries[0].report.wall_s;
    assert!(wall < 0.1, "the run took {wall} s: not too short");
    assert!(
        h.query_by_label_contains("too short to chart").is_some(),
        "no word that the run was too short"
    );
    h.get_by_label_contains("about 3 s here").click();
    h.run();
    assert_eq!(form_size(&h), ("8", "8", "750,000,000"));
}

#[test]
fn the_windows_own_cost_is_shown_while_a_run_goes_and_kept_with_it() {
    let mut h = harness(app(false));
    h.run_steps(2);
    // Far longer than the test: it is cancelled.
    fill_form(&mut h, "2", "2", "100,000,000,000");
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().is_running());
    // Two samples at least (100 ms apart), then the status bar states the cost.
    step_until(&mut h, "two samples", |a| {
        a.live()
            .is_some_and(|l| l.recent_observer_percent(2.0).is_some() && l.elapsed_s() > 0.3)
    });
    assert!(
        h.query_by_label_contains("this window:").is_some(),
        "the status bar does not say what the window costs"
    );
    assert!(h.query_by_label_contains("% of a core").is_some());
    h.key_press(egui::Key::Escape);
    step_until(&mut h, "the run to end", |a| !a.is_running());
    h.run();
    let r = &h.state().state.history.entries[0].report;
    assert_eq!(r.status, RunStatus::Cancelled);
    // Kept with the run: the frames this test built meanwhile cost some CPU.
    assert!(
        r.observer_cpu_percent.is_finite() && r.observer_cpu_percent > 0.0,
        "the window's cost was not measured: {}",
        r.observer_cpu_percent
    );
    assert!(r.cpu_timeline.iter().any(|s| s.observer_cpu_percent > 0.0));
    assert!(h.query_by_label("app [%]").is_some(), "no app CPU column");
    // Idle now: no repaint is asked for (kittest's `run` would panic otherwise),
    // and the status bar no longer claims a live cost.
    assert!(h.query_by_label_contains("this window:").is_none());
}

#[test]
fn the_chapters_figures_stand_beside_the_form() {
    let mut h = harness(app(false));
    h.run_steps(2);
    h.get_by_label("What the chapter measured");
    for text in [
        "8 threads (GIL)",
        "11.66 s",
        "129 %",
        "8 processes",
        "4.58 s",
        "363 %",
    ] {
        assert!(h.query_by_label(text).is_some(), "{text} is not shown");
    }
}

#[test]
fn fields_carry_their_hints_and_the_backend_its_blurb() {
    let mut h = harness(app(false));
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("this machine has").is_some(),
        "the workers field's hint is missing"
    );
    assert!(
        h.query_by_label_contains("no interpreter lock").is_some(),
        "the threads backend's blurb is missing"
    );
}

/// Hovering a workload says what its tasks do: the form says it nowhere else.
#[test]
fn hovering_a_workload_says_what_its_tasks_do() {
    let mut h = harness(app(false));
    h.run_steps(2);
    let blurbs = [
        ("cpu", "seeded random integers"),
        ("io", "local latency service"),
        ("mixed", "CPU slices between requests"),
    ];
    for (workload, _) in blurbs {
        for (_, says) in blurbs {
            assert!(
                h.query_by_label_contains(says).is_none(),
                "{says:?} is on screen before {workload} is hovered"
            );
        }
        h.get_by_label(workload).hover();
        // A tooltip waits for the pointer to rest: step past egui's delay.
        h.run_steps(60);
        let (_, says) = blurbs.iter().find(|(w, _)| *w == workload).unwrap();
        assert!(
            h.query_by_label_contains(says).is_some(),
            "hovering {workload} does not say {says:?}"
        );
        // Move away so that the next one starts with no tooltip up.
        h.hover_at(egui::pos2(1400.0, 880.0));
        h.run_steps(60);
    }
}

/// A field with no hint leaves no blank line under it: the rows of Tasks and
/// Numbers per task (no hints) are a hint's line shorter than the Workers row.
#[test]
fn a_field_without_a_hint_takes_no_hint_line() {
    let mut h = harness(app(false));
    h.run_steps(2);
    // A field's input: the widest node its label names.
    let top = |field: &str| {
        h.get_all_by_label(field)
            .map(|n| n.rect())
            .max_by(|a, b| a.width().total_cmp(&b.width()))
            .unwrap()
            .top()
    };
    let (workers, tasks, numbers) = (top("Workers"), top("Tasks"), top("Numbers per task"));
    let with_hint = tasks - workers;
    let without = numbers - tasks;
    assert!(
        without + 8.0 < with_hint,
        "the Tasks row is {without} high, the Workers row (with its hint) {with_hint}"
    );
}

/// The form's text fields fit the panel beside their labels: neither spilling
/// past its edge nor shrunk to a stub (a layout bug the other tests cannot see).
#[test]
fn the_forms_fields_fit_beside_their_labels() {
    let mut h = harness(app(false));
    h.run_steps(2);
    let label = h.get_by_label("Workers").rect();
    for field in ["Workers", "Tasks", "Numbers per task", "Seed"] {
        let r = h
            .get_all_by_label(field)
            .map(|n| n.rect())
            .max_by(|a, b| a.width().total_cmp(&b.width()))
            .unwrap();
        assert!(r.width() >= 100.0, "{field}: {r:?} is a stub");
        // The left panel opens 300 points wide: a field leaves room before its
        // edge (a field sized past it is clipped at 299, against the scroll bar).
        assert!(
            r.right() <= 288.0,
            "{field}: {r:?} runs into the panel's edge"
        );
        assert!(r.left() >= label.left(), "{field}: {r:?}");
    }
}
