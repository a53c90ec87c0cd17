//! The scaling-curves window, driven through egui_kittest: a small sweep run
//! from the window ends with each backend's fit on screen and exports that
//! hold it; a big one is cancelled at once, and closing the window cancels.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod gui_support;
use gui_support::harness;

use scalelab::engine::EngineOptions;
use scalelab::gui::app::{AppState, ScalelabApp, ThemeChoice};
use scalelab::measure::sweep::SweepError;
use scalelab::spec::BackendKind;

fn app(export_dir: &Path) -> ScalelabApp {
    let state = AppState {
        export_dir: export_dir.display().to_string(),
        theme: ThemeChoice::Dark,
        ..AppState::default()
    };
    let options = EngineOptions {
        worker_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_scalelab"))),
        ..EngineOptions::default()
    };
    ScalelabApp::new(state, options)
}

/// Opens the window and sets its form.
fn open_with(
    h: &mut Harness<'_, ScalelabApp>,
    workers: &str,
    numbers: &str,
    backends: &[BackendKind],
) {
    h.get_by_label("Scaling curves…").click();
    h.run_steps(2);
    let form = h
        .state_mut()
        .sweep_form_mut()
        .expect("the window made its form");
    form.workers = workers.into();
    form.tasks = "4".into();
    form.numbers = numbers.into();
    form.repeat = "2".into();
    form.backends = backends.to_vec();
    h.run_steps(2);
}

fn step_while(
    h: &mut Harness<'_, ScalelabApp>,
    what: &str,
    secs: u64,
    going: impl Fn(&ScalelabApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while going(h.state()) {
        assert!(Instant::now() < deadline, "{what} after {secs} s");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(3);
}

#[test]
fn a_sweep_from_the_window_shows_each_fit_and_exports_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    open_with(
        &mut h,
        "1, 2",
        "200,000",
        &[BackendKind::Threads, BackendKind::Gil],
    );
    h.get_by_label("Run sweep").click();
    h.run_steps(2);
    assert!(h.state().is_sweeping());
    assert!(
        h.get_by_label("Run").accesskit_node().is_disabled(),
        "no run while a sweep measures"
    );
    step_while(&mut h, "the sweep still runs", 60, ScalelabApp::is_sweeping);
    let report = h
        .state()
        .sweep_job()
        .and_then(|j| j.report())
        .expect("a report")
        .clone();
    assert_eq!(report.curves.len(), 2);
    for c in &report.curves {
        let f = c.fit.as_ref().expect("two worker counts: a fit");
        let line = h
            .query_by_label_contains(&format!(
                "{}: serial fraction s = {:.3}",
                c.backend, f.serial_fraction
            ))
            .is_some();
        assert!(line, "{} fit shown", c.backend);
    }
    for button in [
        "Save sweep CSV",
        "Save sweep JSON",
        "Save sweep chart (PNG)",
    ] {
        h.get_by_label(button).click();
        h.run_steps(2);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let files = loop {
        h.step();
        let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        if files.len() == 3 {
            break files;
        }
        assert!(Instant::now() < deadline, "exports: {files:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let has = |ext: &str| {
        files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap()
            .clone()
    };
    let csv = std::fs::read_to_string(has("csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 4,
        "a header and one row per point: {csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(has("json")).unwrap()).unwrap();
    assert_eq!(json["curves"][1]["backend"], "gil");
    let png = image::open(has("png")).unwrap();
    assert!(png.width() >= 1200);
}

#[test]
fn a_sweep_is_cancelled_at_once_and_closing_its_window_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    // A minute per run: only a prompt cancel ends this test in time.
    open_with(&mut h, "1, 2", "50,000,000,000", &[BackendKind::Threads]);
    h.get_by_label("Run sweep").click();
    h.run_steps(3);
    assert!(h.state().is_sweeping());
    h.get_by_label("Cancel sweep").click();
    step_while(
        &mut h,
        "the cancelled sweep still runs",
        10,
        ScalelabApp::is_sweeping,
    );
    assert!(matches!(
        h.state().sweep_job().and_then(|j| j.outcome()),
        Some(Err(SweepError::Cancelled))
    ));
    h.get_by_label("Cancelled.");

    h.get_by_label("Run sweep").click();
    h.run_steps(3);
    assert!(h.state().is_sweeping());
    // The window's close button.
    h.get_by_label("Close window").click();
    step_while(
        &mut h,
        "the sweep outlived its window",
        10,
        ScalelabApp::is_sweeping,
    );
    assert!(
        h.query_by_label("Run sweep").is_none(),
        "the window is closed"
    );
}
