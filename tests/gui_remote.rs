//! The window attached to a `scalelab serve`: the Machine control attaches,
//! runs go to the server and land in the history with the right sums, a wrong
//! token is refused with a reason, and a server that goes away fails the run
//! with a reason while the window goes on.

use std::path::Path;

use egui_kittest::kittest::Queryable;

mod common;
mod gui_support;
use gui_support::{harness, set_field, step_until};

use scalelab::engine::EngineOptions;
use scalelab::gui::app::{AppState, ScalelabApp};
use scalelab::report::RunStatus;
use scalelab::workload::cpu::task_sum;

const TOKEN: &str = "gui-remote-token";

fn app(dir: &Path) -> ScalelabApp {
    let state = AppState {
        export_dir: dir.display().to_string(),
        ..AppState::default()
    };
    ScalelabApp::new(state, EngineOptions::default())
}

#[test]
fn the_window_runs_on_a_server_and_says_when_it_is_gone() {
    let (mut server, url, _) = common::serve("127.0.0.1:0", TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    h.get_by_label("server").click();
    h.run_steps(2);
    set_field(&mut h, "URL", &url);
    set_field(&mut h, "Token", "wrong");
    h.get_by_label("Attach").click();
    h.step();
    step_until(&mut h, "the refusal", |a| {
        a.notice().is_some_and(|n| n.is_error)
    });
    assert!(h.state().attached().is_none());
    assert!(h.state().notice().unwrap().text.contains("401"));

    set_field(&mut h, "Token", TOKEN);
    h.get_by_label("Attach").click();
    h.step();
    step_until(&mut h, "the attach", |a| a.attached().is_some());
    let host = h.state().attached().unwrap().machine.host.clone();
    assert!(h.state().notice().unwrap().text.contains(&host));

    h.get_by_label("threads").click();
    set_field(&mut h, "Workers", "2");
    set_field(&mut h, "Tasks", "3");
    set_field(&mut h, "Numbers per task", "300,000");
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().is_running());
    step_until(&mut h, "the remote run to finish", |a| !a.is_running());
    let entries = &h.state().state.history.entries;
    assert_eq!(entries.len(), 1);
    let r = &entries[0].report;
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    let want: Vec<Option<u64>> = (0..3).map(|t| Some(task_sum(42, t, 300_000))).collect();
    assert_eq!(r.sums, want);
    // It ran there, not here: the server's history has it.
    let listed: serde_json::Value = ureq::get(format!("{url}/api/v1/runs"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // The server goes away: the next run fails with a reason, the window goes on.
    server.kill().unwrap();
    server.wait().unwrap();
    h.get_by_label("Run").click();
    h.step();
    step_until(&mut h, "the failed run", |a| !a.is_running());
    let r = &h.state().state.history.entries.last().unwrap().report;
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        r.reason.as_deref().unwrap().contains("cannot reach"),
        "{:?}",
        r.reason
    );
    h.run_steps(3);

    // Back to this machine: runs go here again.
    h.get_by_label("this machine").click();
    h.run_steps(2);
    assert!(h.state().attached().is_none());
    h.get_by_label("Run").click();
    h.step();
    step_until(&mut h, "the local run", |a| !a.is_running());
    let r = &h.state().state.history.entries.last().unwrap().report;
    assert_eq!(r.status, RunStatus::Ok);
}
