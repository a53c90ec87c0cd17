//! The window attached to a `scalelab serve`: the Machine control attaches,
//! shows the server's cores while idle, runs go to the server and land in the
//! history with the right sums and the server's host name, a wrong token is
//! refused with a reason, a server that goes away fails the run with a reason
//! while the window goes on, Retry runs it again once the server is back, and
//! the scaling curves go to the server too.

use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod common;
mod gui_support;
use gui_support::{harness, set_field, step_until};

use scalelab::engine::EngineOptions;
use scalelab::gui::app::{AppState, ScalelabApp};
use scalelab::gui::machine::Seen;
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

/// Chooses *server* in the Machine row, types the URL and token, presses Attach.
fn press_attach(h: &mut Harness<'_, ScalelabApp>, url: &str, token: &str) {
    h.get_by_label("server").click();
    h.run_steps(2);
    set_field(h, "URL", url);
    set_field(h, "Token", token);
    h.get_by_label("Attach").click();
    h.step();
}

/// `press_attach`, until the window is attached.
fn attach(h: &mut Harness<'_, ScalelabApp>, url: &str) {
    press_attach(h, url, TOKEN);
    step_until(h, "the attach", |a| a.attached().is_some());
}

#[test]
fn the_window_runs_on_a_server_and_says_when_it_is_gone() {
    let (mut server, url, _) = common::serve("127.0.0.1:0", TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    press_attach(&mut h, &url, "wrong");
    step_until(&mut h, "the refusal", |a| {
        a.notice().is_some_and(|n| n.is_error)
    });
    assert!(h.state().attached().is_none());
    assert!(h.state().notice().unwrap().text.contains("401"));

    attach(&mut h, &url);
    let host = h.state().attached().unwrap().machine.host.clone();
    let cores = h.state().attached().unwrap().machine.cores;
    assert!(h.state().notice().unwrap().text.contains(&host));
    // Idle, the Machine bar shows the server's cores as /api/v1/cores streams them.
    step_until(
        &mut h,
        "the server's cores",
        |a| matches!(a.server_cores(), Some(Seen::Cores(c)) if c.len() == cores),
    );

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
    assert_eq!(r.host, host, "the history row names the server's machine");
    h.get_by_label("Save CSV").click();
    h.run_steps(2);
    let csv = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .expect("the CSV export");
    let csv = std::fs::read_to_string(csv).unwrap();
    assert!(csv.starts_with("id,host,"), "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("1,{host},threads,")),
        "{csv}"
    );
    // It ran there, not here: the server's history has it.
    let listed = common::server_runs(&url, TOKEN);
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

/// Kills the server once the run has drawn some of its numbers there.
#[test]
fn a_server_lost_mid_run_is_said_and_retry_runs_again_once_it_is_back() {
    let (mut server, url, _) = common::serve("127.0.0.1:0", TOKEN);
    let port = url.rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    attach(&mut h, &url);

    h.get_by_label("threads").click();
    set_field(&mut h, "Workers", "2");
    set_field(&mut h, "Tasks", "2");
    // About 2 s here (the kernel draws about 1 number per ns per core): long
    // enough to kill the server well inside it.
    set_field(&mut h, "Numbers per task", "1,500,000,000");
    h.get_by_label("Run").click();
    h.step();
    step_until(&mut h, "the server's progress", |a| {
        a.live().is_some_and(|l| l.fraction_done() > 0.02)
    });
    assert!(
        h.state().is_running(),
        "the run ended before the server was killed"
    );
    server.kill().unwrap();
    server.wait().unwrap();
    step_until(&mut h, "the lost run", |a| !a.is_running());
    let r = &h.state().state.history.entries.last().unwrap().report;
    assert_eq!(r.status, RunStatus::Failed);
    let why = r.reason.clone().unwrap();
    assert!(
        why.contains("lost the server") && why.contains("mid-run"),
        "{why}"
    );
    assert!(h.state().notice().unwrap().text.contains("lost the server"));
    assert!(h.state().retry_spec().is_some());

    // Retry while the server is still down: a reason, and Retry stays offered.
    h.get_by_label("Retry").click();
    h.step();
    step_until(&mut h, "the failed retry", |a| {
        a.notice()
            .is_some_and(|n| n.is_error && n.text.contains("Cannot attach"))
    });
    assert!(!h.state().is_running());
    assert!(h.state().retry_spec().is_some());

    // The server is back on the same address: Retry attaches and runs again.
    let (mut server, again, _) = common::serve(&format!("127.0.0.1:{port}"), TOKEN);
    assert_eq!(again, url);
    h.get_by_label("Retry").click();
    h.step();
    step_until(&mut h, "the retried run", |a| {
        a.state.history.entries.len() == 2 && !a.is_running()
    });
    let r = &h.state().state.history.entries[1].report;
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.reason);
    // The sums' values are checked by the test above; recomputing 3 × 10⁹
    // numbers here would only slow the fast tier.
    assert!(r.sums.iter().all(Option::is_some), "{:?}", r.sums);
    assert_eq!(r.spec.numbers_per_task, 1_500_000_000);
    assert!(h.state().retry_spec().is_none());
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The scaling curves of an attached window are the server's.
#[test]
fn an_attached_windows_scaling_curves_run_on_the_server() {
    let (mut server, url, _) = common::serve("127.0.0.1:0", TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app(dir.path()));
    h.run_steps(2);
    attach(&mut h, &url);
    let host = h.state().attached().unwrap().machine.host.clone();

    h.get_by_label("Scaling curves…").click();
    h.run_steps(2);
    let form = h.state_mut().sweep_form_mut().expect("the sweep form");
    form.workers = "1, 2".into();
    form.tasks = "2".into();
    form.numbers = "200,000".into();
    form.repeat = "1".into();
    form.backends = vec![scalelab::spec::BackendKind::Threads];
    h.run_steps(2);
    h.get_by_label("Run sweep").click();
    h.run_steps(2);
    step_until(&mut h, "the sweep", |a| {
        a.sweep_job().is_some_and(|j| !j.is_running())
    });
    let report = h
        .state()
        .sweep_job()
        .unwrap()
        .report()
        .cloned()
        .expect("a report");
    assert_eq!(report.host, host);
    assert_eq!(report.curves[0].points.len(), 2);
    // Both runs went to the server.
    let listed = common::server_runs(&url, TOKEN);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    // CPython runs here: the comparison is not offered while attached.
    assert!(
        h.get_by_label("Compare with CPython…")
            .accesskit_node()
            .is_disabled()
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
