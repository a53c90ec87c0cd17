//! The desktop app driven through egui_kittest: real app state, real engine runs
//! (small ones), widgets found by their labels as a screen reader would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod gui_support;
use gui_support::{harness, set_field, step_until};

use scalelab::engine::EngineOptions;
use scalelab::gui::app::{AppState, ScalelabApp, ThemeChoice};
use scalelab::gui::compare_view::{CompareJob, Outcome};
use scalelab::measure::compare::CompareConfig;
use scalelab::report::RunStatus;
use scalelab::spec::{BackendKind, IoParams};

fn app(export_dir: &Path) -> ScalelabApp {
    let state = AppState {
        export_dir: export_dir.display().to_string(),
        theme: ThemeChoice::Dark,
        ..AppState::default()
    };
    let options = EngineOptions {
        worker_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_scalelab"))),
        worker_nice: 10,
        ..EngineOptions::default()
    };
    ScalelabApp::new(state, options)
}

fn small_run(h: &mut Harness<'_, ScalelabApp>, workers: &str) {
    set_field(h, "Workers", workers);
    set_field(h, "Tasks", "4");
    set_field(h, "Numbers per task", "200,000");
}

#[test]
fn a_run_started_by_clicking_lands_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    h.get_by_label("processes").click();
    h.run_steps(2);
    small_run(&mut h, "3");
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().is_running(), "clicking Run starts a run");
    step_until(&mut h, "the run to finish", |a| !a.is_running());
    // Idle again: the UI settles (no repaint requests), and kittest's accessibility
    // check passes over every panel, live charts and history included.
    h.run();

    let history = &h.state().state.history;
    assert_eq!(history.entries.len(), 1);
    let r = &history.entries[0].report;
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    assert_eq!(
        (
            r.spec.backend,
            r.spec.workers,
            r.spec.tasks,
            r.spec.numbers_per_task
        ),
        (BackendKind::Processes, 3, 4, 200_000)
    );
    // The row is on screen: its baseline radio, its backend and its status.
    h.get_by_label("#1");
    assert!(
        !h.get_all_by_label("processes")
            .collect::<Vec<_>>()
            .is_empty()
    );
    h.get_by_label("ok");
    assert!(h.state().notice().unwrap().text.contains("Run #1 finished"));

    // A second run by keyboard (Ctrl+Enter) on threads, then the first becomes the baseline.
    h.get_by_label("threads").click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    // A run this small can start and end within one step: wait for its row.
    step_until(&mut h, "Ctrl+Enter to start a second run", |a| {
        a.state.history.entries.len() == 2
    });
    assert_eq!(h.state().state.history.entries.len(), 2);
    h.get_by_label("#2");
    h.get_by_label("1.00×");

    // Run #2 becomes the baseline: its own speed-up is 1.00× and #1's is measured against it.
    h.get_by_label("#2").click();
    h.run_steps(2);
    let history = &h.state().state.history;
    assert_eq!(history.baseline_id(), Some(2));
    let rows = history.rows();
    assert_eq!(rows[1].speedup, Some(1.0));
    let expected = rows[0].report.throughput() / rows[1].report.throughput();
    assert!((rows[0].speedup.unwrap() - expected).abs() < 1e-9);

    // "show" on run #1 brings its charts back.
    h.get_all_by_label("show").next().unwrap().click();
    h.run_steps(2);
    let live = h.state().live().unwrap();
    assert_eq!(live.history_id, Some(1));
    assert_eq!(live.spec.backend, BackendKind::Processes);
}

#[test]
fn the_theme_toggle_overrides_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    h.get_by_label("Light").click();
    h.run_steps(2);
    assert_eq!(h.state().state.theme, ThemeChoice::Light);
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
    h.get_by_label("Dark").click();
    h.run_steps(2);
    assert_eq!(h.ctx.theme(), egui::Theme::Dark);
    h.get_by_label("System").click();
    h.run_steps(2);
    assert_eq!(h.state().state.theme, ThemeChoice::System);
}

#[test]
fn cancel_stops_a_long_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    set_field(&mut h, "Workers", "2");
    set_field(&mut h, "Tasks", "64");
    set_field(&mut h, "Numbers per task", "100000000000");
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().is_running());
    // Let it get going, then Cancel.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(300) {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.get_by_label("Cancel").click();
    let asked = Instant::now();
    step_until(&mut h, "the cancelled run", |a| !a.is_running());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        asked.elapsed()
    );
    let r = &h.state().state.history.entries[0].report;
    assert_eq!(r.status, RunStatus::Cancelled);
    // Shown twice: in the live header and in the history row.
    assert_eq!(h.get_all_by_label("cancelled").count(), 2);

    // Esc cancels too.
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().is_running());
    h.run_steps(3);
    h.key_press(egui::Key::Escape);
    step_until(&mut h, "the run cancelled by Esc", |a| !a.is_running());
    assert_eq!(
        h.state().state.history.entries[1].report.status,
        RunStatus::Cancelled
    );
}

#[test]
fn bad_input_is_shown_next_to_the_field_and_run_stays_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    set_field(&mut h, "Workers", "0");
    h.get_by_label("must be at least 1");
    assert!(
        h.get_by_label("Run").accesskit_node().is_disabled(),
        "Run is disabled"
    );
    h.get_by_label("Run").click();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    h.run_steps(3);
    assert!(!h.state().is_running(), "nothing starts with bad input");

    set_field(&mut h, "Workers", "2000");
    h.get_by_label("2000 is more than the limit of 1024");
    set_field(&mut h, "Workers", "4");
    set_field(&mut h, "Tasks", "lots");
    h.get_by_label("`lots` is not a whole number");
    assert!(h.query_by_label("must be at least 1").is_none());
    assert!(h.get_by_label("Run").accesskit_node().is_disabled());

    set_field(&mut h, "Tasks", "4");
    assert!(
        !h.get_by_label("Run").accesskit_node().is_disabled(),
        "fixed input enables Run"
    );
}

#[test]
fn any_invalid_field_keeps_run_disabled_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    small_run(&mut h, "2");
    // (backend or workload to pick first, field, bad value, good value)
    let cases: [(&str, &str, &str, &str); 7] = [
        ("cpu", "Numbers per task", "many", "200,000"),
        ("cpu", "Seed", "-1", "42"),
        ("io", "Requests per task", "0", "2"),
        ("io", "Latency (ms)", "soon", "1"),
        ("gil", "Switch interval (ms)", "0", "5"),
        ("bus", "Remote workers", "3", "0"),
        ("bus", "Bind", "tcp://nowhere", "tcp://127.0.0.1:*"),
    ];
    for (pick, field, bad, good) in cases {
        h.get_by_label(pick).click();
        h.run_steps(2);
        set_field(&mut h, field, good);
        assert!(
            !h.get_by_label("Run").accesskit_node().is_disabled(),
            "{pick}/{field}: Run disabled with `{good}`"
        );
        set_field(&mut h, field, bad);
        assert!(
            h.get_by_label("Run").accesskit_node().is_disabled(),
            "{pick}/{field}: Run enabled with `{bad}`"
        );
        h.get_by_label("Run").click();
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
        h.run_steps(3);
        assert!(
            !h.state().is_running(),
            "{pick}/{field}: `{bad}` started a run"
        );
        assert!(
            h.state().state.history.entries.is_empty(),
            "{pick}/{field}: {:?}",
            h.state()
                .state
                .history
                .entries
                .iter()
                .map(|e| (&e.report.status, &e.report.reason, e.report.spec.backend))
                .collect::<Vec<_>>()
        );
        set_field(&mut h, field, good);
        // Back to the plain CPU run on threads for the next case.
        h.get_by_label("threads").click();
        h.get_by_label("cpu").click();
        h.run_steps(2);
    }
}

#[test]
fn exports_write_what_the_history_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    small_run(&mut h, "2");
    for _ in 0..2 {
        h.get_by_label("Run").click();
        h.step();
        step_until(&mut h, "a run", |a| !a.is_running());
    }
    let files = |ext: &str| -> Vec<PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect()
    };

    h.get_by_label("Save CSV").click();
    h.run_steps(2);
    let csv_files = files("csv");
    assert_eq!(csv_files.len(), 1);
    let notice = h.state().notice().unwrap().text.clone();
    assert!(
        notice.contains(&csv_files[0].display().to_string()),
        "{notice}"
    );
    let csv = std::fs::read_to_string(&csv_files[0]).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,host,backend,workload,workers,tasks,numbers_per_task"));
    // Each run names the machine it ran on: this one, run locally.
    let host = scalelab::metrics::procinfo::host_name();
    assert!(
        lines[1].starts_with(&format!("1,{host},threads,cpu,2,4,200000,42,ok,")),
        "{csv}"
    );
    assert!(
        lines[2].starts_with(&format!("2,{host},threads,cpu,2,4,200000,42,ok,")),
        "{csv}"
    );

    h.get_by_label("Save JSON").click();
    h.run_steps(2);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files("json")[0]).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["speedup"], 1.0);
    let wall = h.state().state.history.entries[1].report.wall_s;
    assert_eq!(runs[1]["wall_s"].as_f64().unwrap(), wall);

    h.get_by_label("Save Markdown").click();
    h.run_steps(2);
    let md = std::fs::read_to_string(&files("md")[0]).unwrap();
    assert_eq!(md.lines().count(), 4, "{md}");
    assert!(
        md.contains(&format!("| 2 | {host} | threads | 2 | 4 × 200,000 |")),
        "{md}"
    );

    // A folder that does not exist: an error is shown and nothing else changes.
    set_field(
        &mut h,
        "Export folder",
        &dir.path().join("nope").display().to_string(),
    );
    h.get_by_label("Save CSV").click();
    h.run_steps(2);
    let n = h.state().notice().unwrap();
    assert!(n.is_error && n.text.contains("Export failed"), "{n:?}");
    assert_eq!(h.state().state.history.entries.len(), 2);

    // Copy goes to the clipboard as egui's output command.
    h.get_by_label("Copy Markdown").click();
    h.step();
    let copied = h
        .output()
        .platform_output
        .commands
        .iter()
        .find_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .expect("a copy command");
    assert!(copied.starts_with("| # | host | backend |"), "{copied}");

    // Remove one run, then clear.
    h.get_all_by_label("remove").next().unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().state.history.entries.len(), 1);
    assert_eq!(h.state().state.history.entries[0].id, 2);
    h.get_by_label("Clear history").click();
    h.run_steps(2);
    assert!(h.state().state.history.entries.is_empty());
}

#[test]
fn a_corrupt_saved_state_starts_with_defaults_and_says_so() {
    struct Store(Option<String>);
    impl eframe::Storage for Store {
        fn get_string(&self, _key: &str) -> Option<String> {
            self.0.clone()
        }
        fn set_string(&mut self, _key: &str, value: String) {
            self.0 = Some(value);
        }
        fn remove_string(&mut self, _key: &str) {
            self.0 = None;
        }
        fn flush(&mut self) {}
    }
    let store = Store(Some("{\"form\": 12".into()));
    let backup = tempfile::tempdir().unwrap();
    let app = ScalelabApp::from_storage(Some(&store), EngineOptions::default(), backup.path());
    assert_eq!(app.state, AppState::default());
    let mut h = harness(app);
    h.run_steps(2);
    h.get_by_label_contains("could not be read");
    h.get_by_label_contains("A copy of it is in");
    assert_eq!(std::fs::read_dir(backup.path()).unwrap().count(), 1);

    // What the app saves, it reads back.
    let mut store = Store(None);
    h.state_mut().state.form.workers = "5".into();
    eframe::App::save(h.state_mut(), &mut store);
    let back = ScalelabApp::from_storage(Some(&store), EngineOptions::default(), backup.path());
    assert_eq!(back.state.form.workers, "5");
    assert!(back.notice().is_none());
}

#[test]
fn presets_fill_tasks_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    h.get_by_label("Preset").click();
    h.run_steps(2);
    h.get_by_label("Heavy: 32 × 1,000,000,000").click();
    h.run_steps(2);
    let form = &h.state().state.form;
    assert_eq!(
        (form.tasks.as_str(), form.numbers.as_str()),
        ("32", "1,000,000,000")
    );
    h.get_by_label("32,000,000,000 numbers in all");
}

/// The comparisons these tests start go one at a time: each checks that its
/// thread is gone at the end.
static COMPARING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An app whose form holds the "Busy" preset, 16 x 200,000,000 numbers: far
/// too much for CPython.
fn busy_app(dir: &Path) -> ScalelabApp {
    let mut app = app(dir);
    app.state.form.tasks = "16".into();
    app.state.form.numbers = "200,000,000".into();
    app
}

/// Steps frames until the comparison has ended; it must within a few seconds
/// (it has been cancelled).
fn step_until_compared(h: &mut Harness<'_, ScalelabApp>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.state().is_comparing() {
        assert!(
            Instant::now() < deadline,
            "the comparison still runs 5 s after its cancel"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

/// True once the comparison thread has left this process.
fn compare_thread_gone() -> bool {
    let threads = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .map(|s| s.trim().to_string())
            // "scalelab-compare", cut to 15 bytes by the kernel.
            .filter(|s| s == "scalelab-compar")
            .collect()
    };
    scalelab::metrics::procinfo::settle(Duration::from_secs(2), threads, Vec::is_empty).is_empty()
}

fn is_cancelled(app: &ScalelabApp) -> bool {
    matches!(
        app.compare_job().and_then(|j| j.outcome()),
        Some(Outcome::Cancelled)
    )
}

#[test]
fn the_compare_button_measures_the_chapters_size_whatever_the_form_says_and_cancel_ends_it() {
    let _one = COMPARING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(busy_app(dir.path()));
    h.get_by_label("Compare with CPython…").click();
    h.run_steps(2);
    assert!(h.state().is_comparing());
    assert_eq!(
        h.state().compare_job().unwrap().size(),
        (8, 1_000_000),
        "the form's 16 x 200,000,000 must not reach the comparison"
    );
    // Runs wait while it measures.
    assert!(h.get_by_label("Run").accesskit_node().is_disabled());
    step_until(&mut h, "the first step", |app| {
        app.compare_job().is_some_and(|j| j.progress().is_some())
    });
    h.get_by_label_contains("8 tasks × 1,000,000 numbers, whatever the form says");
    h.get_by_label_contains("Measuring step 1 of ");
    h.get_by_label_contains("elapsed 0:0");
    h.get_by_label("Cancel comparison").click();
    h.run_steps(1);
    step_until_compared(&mut h);
    assert!(is_cancelled(h.state()), "the comparison was not cancelled");
    h.get_by_label_contains("Comparison cancelled after");
    let notice = h.state().notice().unwrap().text.clone();
    assert!(notice.contains("cancelled"), "{notice}");
    assert!(
        compare_thread_gone(),
        "the comparison thread outlived its cancel"
    );
    // Its window closes without changing what it says; runs can start again.
    h.get_by_label("Close window").click();
    h.run_steps(2);
    assert!(is_cancelled(h.state()));
    small_run(&mut h, "2");
    h.get_by_label("Run").click();
    h.step();
    assert!(
        h.state().is_running(),
        "Run starts a run after the cancel: {:?}",
        h.state().notice()
    );
    step_until(&mut h, "the run after the comparison", |app| {
        !app.is_running()
    });
    let history = &h.state().state.history;
    assert_eq!(history.entries.len(), 1);
    assert_eq!(history.entries[0].report.status, RunStatus::Ok);
}

#[test]
fn closing_the_comparison_window_cancels_the_comparison() {
    let _one = COMPARING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(busy_app(dir.path()));
    h.get_by_label("Compare with CPython…").click();
    h.run_steps(2);
    step_until(&mut h, "the first step", |app| {
        app.compare_job().is_some_and(|j| j.progress().is_some())
    });
    h.get_by_label("Close window").click();
    h.run_steps(1);
    step_until_compared(&mut h);
    assert!(is_cancelled(h.state()), "closing the window did not cancel");
    assert!(
        h.query_by_label_contains("whatever the form says")
            .is_none(),
        "the window is still shown"
    );
    let notice = h.state().notice().unwrap().text.clone();
    assert!(notice.contains("cancelled"), "{notice}");
    assert!(
        compare_thread_gone(),
        "the comparison thread outlived its cancel"
    );
    // And a new comparison starts from the button.
    h.get_by_label("Compare with CPython…").click();
    h.run_steps(4);
    assert!(h.state().is_comparing());
    h.get_by_label_contains("whatever the form says");
    // The app going away with it running stops it too.
    drop(h);
    assert!(compare_thread_gone(), "the comparison outlived the app");
}

#[test]
fn a_finished_comparison_shows_its_result_and_says_so() {
    let _one = COMPARING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    // A small comparison, as the button starts at the chapter's size.
    let cfg = CompareConfig {
        tasks: 2,
        numbers: 2000,
        workers: vec![1, 2],
        backends: vec![
            BackendKind::Threads,
            BackendKind::Gil,
            BackendKind::Processes,
        ],
        repeat: 1,
        io: IoParams {
            requests: 1,
            latency_ms: 1,
        },
        limits: false,
        ..CompareJob::config(EngineOptions {
            worker_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_scalelab"))),
            ..EngineOptions::default()
        })
    };
    let ctx = h.ctx.clone();
    h.state_mut().start_compare(cfg, &ctx);
    h.run_steps(2);
    assert!(h.state().is_comparing());
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.state().is_comparing() {
        assert!(Instant::now() < deadline, "the comparison never ended");
        std::thread::sleep(Duration::from_millis(50));
        h.run_steps(1);
    }
    h.run_steps(2);
    assert!(matches!(
        h.state().compare_job().unwrap().outcome(),
        Some(Outcome::Done(_))
    ));
    h.get_by_label("The chapter's experiments");
    h.get_by_label("The claims, checked");
    h.get_by_label("Copy as Markdown");
    let notice = h.state().notice().unwrap().text.clone();
    assert!(
        notice.contains("Comparison with CPython done in"),
        "{notice}"
    );
    assert!(compare_thread_gone());
}

#[test]
fn the_folder_dialog_never_blocks_the_window_and_its_answer_is_reported() {
    // Here (Xvfb, no desktop portal) the native dialog cannot open: the app
    // must keep drawing frames meanwhile and say so, keeping the folder as it was.
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    let before = h.state().state.export_dir.clone();
    h.get_by_label("Choose…").click();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        h.run_steps(1);
        let notice = h
            .state()
            .notice()
            .map(|n| n.text.clone())
            .unwrap_or_default();
        if notice.contains("No folder chosen") || notice.contains("now go to") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dialog's answer never came: {notice}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if h.state()
        .notice()
        .unwrap()
        .text
        .contains("No folder chosen")
    {
        assert_eq!(h.state().state.export_dir, before);
    }
}

#[test]
fn an_encrypted_bus_waiting_for_its_workers_says_so_and_copies_the_join_command_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    small_run(&mut h, "2");
    h.get_by_label("bus").click();
    h.run_steps(2);
    set_field(&mut h, "Remote workers", "2");
    // Encrypted: the command carries the key a worker must pin.
    h.get_by_label("CurveZMQ").click();
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.step();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h
        .query_by_label("waiting for workers: 0 of 2 joined")
        .is_none()
    {
        assert!(Instant::now() < deadline, "no waiting line");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.get_by_label("Copy join command").click();
    h.step();
    let copied: Vec<String> = h
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(copied.len(), 1, "{copied:?}");
    assert!(
        copied[0].starts_with("scalelab worker --connect tcp://127.0.0.1:")
            && copied[0].contains(" --token "),
        "{copied:?}"
    );
    let key = copied[0]
        .split(" --server-key='")
        .nth(1)
        .and_then(|k| k.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no --server-key in {copied:?}"));
    assert!(
        scalelab::backends::bus::keys::decode_key(key).is_ok(),
        "{key}"
    );
    h.get_by_label("Cancel").click();
    step_until(&mut h, "the cancel", |a| !a.is_running());
    assert!(
        h.query_by_label("waiting for workers: 0 of 2 joined")
            .is_none()
    );
}
