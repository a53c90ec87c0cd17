//! The control panel: what to run (backend, workload, sizes, seed, the backend's
//! own knobs), with every problem shown next to its field, and Run / Cancel.

use egui::{RichText, Ui};
use serde::{Deserialize, Serialize};

use crate::report::export::group_thousands;
use crate::spec::{
    BackendKind, BusParams, GilParams, IoParams, MAX_WORKERS, RunSpec, WorkloadKind,
};

use super::command::Command;
use crate::engine::calibrate::{Calibration, RunSize};

/// The form as typed: text fields stay text, so a bad entry can be shown, not lost.
/// Fields missing from an older saved form take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecForm {
    pub backend: BackendKind,
    pub workload: WorkloadKind,
    pub workers: String,
    pub tasks: String,
    pub numbers: String,
    pub seed: String,
    /// io and mixed workloads.
    pub requests: String,
    pub latency_ms: String,
    /// gil backend, in milliseconds.
    pub switch_interval_ms: String,
    /// bus backend.
    pub bus_bind: String,
    pub bus_token: String,
    pub bus_remote: String,
    /// CurveZMQ asked for (it is on anyway when the bind is beyond loopback).
    pub bus_encrypt: bool,
}

impl Default for SpecForm {
    fn default() -> Self {
        Self::from_spec(&RunSpec::default())
    }
}

/// Seconds the "a few seconds here" preset (and a fresh form) keeps every core busy.
pub const BUSY_SECONDS: f64 = 3.0;

/// Tasks × numbers per task the preset menu offers besides the calibrated one.
/// At about 0.7 ns a number, "Busy" is some 2 s of CPU and "Heavy" some 20 s:
/// seconds of work for 2 to 8 cores. The chapter's own size is over in tens of
/// milliseconds, too short to chart, but it is the one CPython is compared at.
const PRESETS: [(&str, u32, u64); 4] = [
    ("The chapter's: 8 × 1,000,000", 8, 1_000_000),
    ("Busy: 16 × 200,000,000", 16, 200_000_000),
    ("Heavy: 32 × 1,000,000,000", 32, 1_000_000_000),
    ("Many small: 10,000 × 100,000", 10_000, 100_000),
];

/// A problem with one field of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    /// `RunSpec`'s field name (`workers`, `tasks`, `numbers_per_task`, `seed`).
    pub field: &'static str,
    pub message: String,
}

impl SpecForm {
    pub fn from_spec(s: &RunSpec) -> Self {
        Self {
            backend: s.backend,
            workload: s.workload,
            workers: s.workers.to_string(),
            tasks: s.tasks.to_string(),
            numbers: group_thousands(s.numbers_per_task),
            seed: s.seed.to_string(),
            requests: s.io.requests.to_string(),
            latency_ms: s.io.latency_ms.to_string(),
            switch_interval_ms: format!("{}", s.gil.switch_interval_us as f64 / 1000.0),
            bus_bind: s.bus.bind.clone(),
            // A token is a secret: never filled in from a saved spec.
            bus_token: String::new(),
            bus_remote: s.bus.remote_workers.to_string(),
            bus_encrypt: s.bus.encrypt == Some(true),
        }
    }

    /// Puts a run size (workers, tasks, numbers per task) into the form.
    pub fn set_size(&mut self, size: &RunSize) {
        self.workers = size.workers.to_string();
        self.tasks = size.tasks.to_string();
        self.numbers = group_thousands(size.numbers_per_task);
    }

    /// The spec, or every problem with the form (parse errors first, then `RunSpec::problems`).
    pub fn parse(&self) -> Result<RunSpec, Vec<FieldProblem>> {
        let mut problems = Vec::new();
        let mut num = |field: &'static str, text: &str| -> u64 {
            let cleaned: String = text
                .chars()
                .filter(|c| !matches!(c, ',' | '_' | ' ' | '\u{a0}'))
                .collect();
            match cleaned.parse::<u64>() {
                Ok(v) => v,
                Err(_) => {
                    problems.push(FieldProblem {
                        field,
                        message: if cleaned.is_empty() {
                            "required".into()
                        } else {
                            format!("`{}` is not a whole number", text.trim())
                        },
                    });
                    1
                }
            }
        };
        let workers = num("workers", &self.workers);
        let tasks = num("tasks", &self.tasks);
        let numbers_per_task = if self.workload.computes() {
            num("numbers_per_task", &self.numbers)
        } else {
            1 // not used by the io workload
        };
        let seed = num("seed", &self.seed);
        let (requests, latency_ms) = if self.workload.does_io() {
            (
                num("requests", &self.requests),
                num("latency_ms", &self.latency_ms),
            )
        } else {
            (
                IoParams::default().requests as u64,
                IoParams::default().latency_ms as u64,
            )
        };
        let bus_remote = if self.backend == BackendKind::Bus {
            num("bus.remote_workers", &self.bus_remote)
        } else {
            0
        };
        let switch_us = if self.backend == BackendKind::Gil {
            match self.switch_interval_ms.trim().parse::<f64>() {
                Ok(ms) if ms.is_finite() && ms >= 0.0 => (ms * 1000.0).round() as u64,
                _ => {
                    problems.push(FieldProblem {
                        field: "switch_interval",
                        message: format!(
                            "`{}` is not a number of milliseconds",
                            self.switch_interval_ms.trim()
                        ),
                    });
                    GilParams::default().switch_interval_us
                }
            }
        } else {
            GilParams::default().switch_interval_us
        };
        // Out-of-range u32 values stay out of range, so the spec's own checks name them.
        let clamp32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let spec = RunSpec {
            backend: self.backend,
            workload: self.workload,
            workers: clamp32(workers),
            tasks: clamp32(tasks),
            numbers_per_task,
            seed,
            io: IoParams {
                requests: clamp32(requests),
                latency_ms: clamp32(latency_ms),
            },
            gil: GilParams {
                switch_interval_us: switch_us,
            },
            bus: BusParams {
                bind: self.bus_bind.trim().to_string(),
                token: Some(self.bus_token.trim().to_string()).filter(|t| !t.is_empty()),
                remote_workers: clamp32(bus_remote),
                // Unticked leaves it to the bind: never off beyond loopback from here.
                encrypt: self.bus_encrypt.then_some(true),
                ..BusParams::default()
            },
        };
        for p in spec.problems() {
            if !problems.iter().any(|q| q.field == p.field) {
                problems.push(FieldProblem {
                    field: p.field,
                    message: p.message,
                });
            }
        }
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(problems)
        }
    }
}

/// What the panel needs to know about the app.
pub struct PanelContext {
    /// Cores of the machine runs go to (a server's, when attached).
    pub cores: usize,
    /// The attached server's host name; `None` runs here.
    pub host: Option<String>,
    pub running: bool,
    /// This machine's kernel speed, when measured: sizes the first preset.
    pub calibration: Option<Calibration>,
}

/// Draws the control panel; returns what the user asked for.
pub fn show(ui: &mut Ui, form: &mut SpecForm, cx: &PanelContext) -> Option<Command> {
    let mut command = None;
    let parsed = form.parse();
    let problem = |field: &str| -> Option<String> {
        parsed
            .as_ref()
            .err()?
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.clone())
    };

    ui.heading("Experiment");
    ui.add_space(4.0);
    ui.label(RichText::new("Backend").strong());
    for b in BackendKind::ALL {
        ui.radio_value(&mut form.backend, b, b.name())
            .on_hover_text(backend_blurb(b));
    }
    ui.label(RichText::new(backend_blurb(form.backend)).small().weak());
    backend_knobs(ui, form, &problem);

    ui.add_space(6.0);
    ui.label(RichText::new("Workload").strong());
    ui.horizontal(|ui| {
        for w in WorkloadKind::ALL {
            ui.radio_value(&mut form.workload, w, w.name())
                .on_hover_text(workload_blurb(w));
        }
    });

    ui.add_space(6.0);
    let width = ui.available_width();
    egui::Grid::new("spec_fields")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            field(
                ui,
                "Workers",
                &mut form.workers,
                match &cx.host {
                    None => format!("1 to {MAX_WORKERS}; this machine has {} cores", cx.cores),
                    Some(h) => format!("1 to {MAX_WORKERS}; {h} has {} cores", cx.cores),
                },
                problem("workers"),
                width,
            );
            field(
                ui,
                "Tasks",
                &mut form.tasks,
                String::new(),
                problem("tasks"),
                width,
            );
            if form.workload.computes() {
                field(
                    ui,
                    "Numbers per task",
                    &mut form.numbers,
                    String::new(),
                    problem("numbers_per_task"),
                    width,
                );
            }
            if form.workload.does_io() {
                field(
                    ui,
                    "Requests per task",
                    &mut form.requests,
                    "to scalelab's latency service on 127.0.0.1".into(),
                    problem("requests"),
                    width,
                );
                field(
                    ui,
                    "Latency (ms)",
                    &mut form.latency_ms,
                    "the service's delay before each answer".into(),
                    problem("latency_ms"),
                    width,
                );
            }
            field(
                ui,
                "Seed",
                &mut form.seed,
                String::new(),
                problem("seed"),
                width,
            );
        });

    ui.horizontal(|ui| {
        let l = ui.label("Preset");
        egui::ComboBox::from_id_salt("preset")
            .selected_text("tasks × numbers…")
            .show_ui(ui, |ui| {
                if let Some(c) = cx.calibration {
                    let size = c.busy_run(BUSY_SECONDS);
                    let name = format!(
                        "About {BUSY_SECONDS:.0} s here: {} × {}, {} workers",
                        size.tasks,
                        group_thousands(size.numbers_per_task),
                        size.workers
                    );
                    if ui
                        .selectable_label(false, name)
                        .on_hover_text(format!(
                            "Keeps all {} cores busy for about {BUSY_SECONDS:.0} s on `threads` \
                             (measured: {:.2} ns a number on one core)",
                            c.cores, c.ns_per_number
                        ))
                        .clicked()
                    {
                        form.set_size(&size);
                    }
                }
                for (name, tasks, numbers) in PRESETS {
                    if ui.selectable_label(false, name).clicked() {
                        form.tasks = tasks.to_string();
                        form.numbers = group_thousands(numbers);
                    }
                }
            })
            .response
            .labelled_by(l.id);
    });
    if let Ok(spec) = &parsed {
        ui.label(
            RichText::new(format!(
                "{} numbers in all",
                group_thousands(spec.total_numbers())
            ))
            .small()
            .weak(),
        );
    }

    ui.add_space(8.0);
    ui.horizontal(|ui| {
        let can_run = parsed.is_ok() && !cx.running;
        let run = ui
            .add_enabled(can_run, egui::Button::new(RichText::new("Run").strong()))
            .on_hover_text("Ctrl+Enter")
            .on_disabled_hover_text(if cx.running {
                "A run is in progress"
            } else {
                "Fix the fields marked in red first"
            });
        if run.clicked()
            && let Ok(spec) = &parsed
        {
            command = Some(Command::Run(spec.clone()));
        }
        if ui
            .add_enabled(cx.running, egui::Button::new("Cancel"))
            .on_hover_text("Esc")
            .clicked()
        {
            command = Some(Command::Cancel);
        }
    });
    ui.add_space(12.0);
    ui.separator();
    chapter_notes(ui);
    command
}

/// The chapter's own figures, to compare with what this machine shows.
fn chapter_notes(ui: &mut Ui) {
    egui::CollapsingHeader::new("What the chapter measured")
        .default_open(true)
        .show(ui, |ui| {
            ui.label(
                RichText::new("CPython, 8 tasks × 1,000,000 numbers, on an idle 4-core CPU:")
                    .small(),
            );
            egui::Grid::new("chapter_figures")
                .num_columns(3)
                .spacing([10.0, 2.0])
                .show(ui, |ui| {
                    for (what, wall, cpu) in [
                        ("8 threads (GIL)", "11.66 s", "129 %"),
                        ("8 processes", "4.58 s", "363 %"),
                    ] {
                        ui.label(RichText::new(what).small());
                        ui.label(RichText::new(wall).small());
                        ui.label(RichText::new(cpu).small());
                        ui.end_row();
                    }
                });
            ui.label(
                RichText::new(
                    "Rule of thumb: threads for I/O-bound work, processes for CPU-bound \
                     work, a message bus to go beyond one machine. Native threads have no \
                     GIL: here they scale like processes.",
                )
                .small()
                .weak(),
            );
        });
}

/// One labelled text field with its hint or problem underneath.
fn field(
    ui: &mut Ui,
    label: &str,
    text: &mut String,
    hint: String,
    problem: Option<String>,
    width: f32,
) {
    let l = ui.label(label);
    ui.vertical(|ui| {
        let input_w = (width - 130.0).max(80.0);
        let mut edit = egui::TextEdit::singleline(text).desired_width(input_w);
        if problem.is_some() {
            edit = edit.text_color(ui.visuals().error_fg_color);
        }
        ui.add(edit).labelled_by(l.id);
        match problem {
            Some(p) => {
                ui.label(RichText::new(p).small().color(ui.visuals().error_fg_color));
            }
            None if !hint.is_empty() => {
                ui.label(RichText::new(hint).small().weak());
            }
            None => {}
        }
    });
    ui.end_row();
}

/// One line on what a backend is.
fn backend_blurb(b: BackendKind) -> &'static str {
    match b {
        BackendKind::Threads => "Native OS threads sharing one process, no interpreter lock.",
        BackendKind::Gil => {
            "Threads under an emulated CPython GIL: one computes at a time; I/O releases it."
        }
        BackendKind::Processes => "A pool of scalelab child processes fed over pipes.",
        BackendKind::EventLoop => {
            "One thread running every task as a coroutine: I/O overlaps, CPU does not."
        }
        BackendKind::Bus => {
            "Worker processes fed over ZeroMQ, started here or joining from other machines."
        }
    }
}

/// The backend's own settings, under the backend list.
fn backend_knobs(ui: &mut Ui, form: &mut SpecForm, problem: &dyn Fn(&str) -> Option<String>) {
    let width = ui.available_width();
    match form.backend {
        BackendKind::Threads | BackendKind::Processes | BackendKind::EventLoop => {}
        BackendKind::Gil => {
            egui::Grid::new("gil_knobs").num_columns(2).show(ui, |ui| {
                field(
                    ui,
                    "Switch interval (ms)",
                    &mut form.switch_interval_ms,
                    "CPython's default: 5 ms (sys.setswitchinterval)".into(),
                    problem("switch_interval"),
                    width,
                );
            });
        }
        BackendKind::Bus => {
            egui::Grid::new("bus_knobs").num_columns(2).show(ui, |ui| {
                field(
                    ui,
                    "Bind",
                    &mut form.bus_bind,
                    "loopback unless you expose it on purpose".into(),
                    problem("bus.bind"),
                    width,
                );
                field(
                    ui,
                    "Token",
                    &mut form.bus_token,
                    "empty: a fresh one, shown when the run starts".into(),
                    problem("bus.token"),
                    width,
                );
                field(
                    ui,
                    "Remote workers",
                    &mut form.bus_remote,
                    "of the workers, how many join from elsewhere".into(),
                    problem("bus.remote_workers"),
                    width,
                );
                ui.label("Encrypt");
                ui.checkbox(&mut form.bus_encrypt, "CurveZMQ")
                    .on_hover_text("always on when Bind is beyond loopback");
                ui.end_row();
            });
        }
    }
}

fn workload_blurb(w: WorkloadKind) -> &'static str {
    match w {
        WorkloadKind::Cpu => "CPU-bound: each task sums seeded random integers in [1, 100].",
        WorkloadKind::Io => "I/O-bound: each task makes requests to a local latency service.",
        WorkloadKind::Mixed => "Mixed: CPU slices between requests (the GIL's convoy effect).",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_form_gives_the_chapter_spec() {
        assert_eq!(SpecForm::default().parse(), Ok(RunSpec::default()));
    }

    #[test]
    fn numbers_accept_separators() {
        let form = SpecForm {
            numbers: "2,000_000".into(),
            ..SpecForm::default()
        };
        assert_eq!(form.parse().unwrap().numbers_per_task, 2_000_000);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let form = SpecForm {
            workers: "0".into(),
            tasks: "many".into(),
            numbers: String::new(),
            seed: "-1".into(),
            ..SpecForm::default()
        };
        let problems = form.parse().unwrap_err();
        let find = |f: &str| {
            problems
                .iter()
                .find(|p| p.field == f)
                .unwrap()
                .message
                .clone()
        };
        assert_eq!(find("workers"), "must be at least 1");
        assert!(find("tasks").contains("not a whole number"));
        assert_eq!(find("numbers_per_task"), "required");
        assert!(find("seed").contains("not a whole number"));
        let too_many = SpecForm {
            workers: "99999999999".into(),
            ..SpecForm::default()
        };
        assert!(
            too_many.parse().unwrap_err()[0]
                .message
                .contains("limit of 1024")
        );
    }

    #[test]
    fn a_switch_interval_must_be_a_finite_non_negative_number() {
        for bad in ["-1", "inf", "-inf", "NaN", "soon"] {
            let form = SpecForm {
                backend: BackendKind::Gil,
                switch_interval_ms: bad.into(),
                ..SpecForm::default()
            };
            let problems = form.parse().unwrap_err();
            let p = problems
                .iter()
                .find(|p| p.field == "switch_interval")
                .unwrap_or_else(|| panic!("`{bad}` accepted: {problems:?}"));
            assert_eq!(
                p.message,
                format!("`{bad}` is not a number of milliseconds")
            );
        }
        let form = SpecForm {
            backend: BackendKind::Gil,
            switch_interval_ms: "2.5".into(),
            ..SpecForm::default()
        };
        assert_eq!(form.parse().unwrap().gil.switch_interval_us, 2_500);
    }

    #[test]
    fn the_bus_token_typed_is_the_runs_token() {
        let form = SpecForm {
            backend: BackendKind::Bus,
            bus_token: "  s3cret ".into(),
            ..SpecForm::default()
        };
        assert_eq!(form.parse().unwrap().bus.token.as_deref(), Some("s3cret"));
        // An empty field: the run makes a fresh token of its own.
        let form = SpecForm {
            backend: BackendKind::Bus,
            bus_token: "  ".into(),
            ..SpecForm::default()
        };
        assert_eq!(form.parse().unwrap().bus.token, None);
    }

    #[test]
    fn the_encrypt_box_asks_for_curve_and_unticked_leaves_it_to_the_bind() {
        let ticked = SpecForm {
            backend: BackendKind::Bus,
            bus_encrypt: true,
            ..SpecForm::default()
        };
        let spec = ticked.parse().unwrap();
        assert_eq!(spec.bus.encrypt, Some(true));
        assert!(spec.bus.encrypted());
        assert_eq!(SpecForm::from_spec(&spec), ticked);
        let exposed = SpecForm {
            backend: BackendKind::Bus,
            bus_bind: "tcp://0.0.0.0:5555".into(),
            ..SpecForm::default()
        };
        let spec = exposed.parse().unwrap();
        assert_eq!(spec.bus.encrypt, None);
        assert!(spec.bus.encrypted(), "beyond loopback it is on anyway");
        assert!(!SpecForm::default().parse().unwrap().bus.encrypted());
    }
}
