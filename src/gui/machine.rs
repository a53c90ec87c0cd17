//! The *Machine* control: run here, or on a `scalelab serve` given by URL and
//! token. Attaching asks the server for its machine on a thread of its own;
//! the UI thread only sends the command and draws the answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use egui::{Color32, RichText, Ui};

use super::command::Command;
use crate::server::client::Remote;
use crate::server::machine::Machine;

/// A server the window is attached to, and what it said of its machine.
#[derive(Debug, Clone)]
pub struct Attached {
    pub remote: Remote,
    pub machine: Machine,
}

impl Attached {
    /// Asks the server at `url` for its machine (blocks: call off the UI thread).
    pub fn probe(url: &str, token: &str) -> Result<Self, String> {
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not a server URL (http://HOST:PORT)"));
        }
        let remote = Remote::new(url, token.trim());
        let machine = remote.machine().map_err(|e| e.to_string())?;
        Ok(Self { remote, machine })
    }

    /// Where a sweep's runs go to run on this server: its host and cores,
    /// and a starter that sends each run there (the window's *Scaling
    /// curves…* and `scalelab sweep --server` alike).
    pub fn sweep_target(&self) -> crate::measure::sweep::Target {
        let (remote, machine) = (self.remote.clone(), self.machine.clone());
        crate::measure::sweep::Target {
            host: machine.host.clone(),
            cores: machine.cores,
            start: Arc::new(move |spec| {
                crate::server::client::start(remote.clone(), spec, &machine, None)
            }),
        }
    }

    /// "HOST (N cores, CPU)".
    pub fn describe(&self) -> String {
        let m = &self.machine;
        format!("{} ({} cores, {})", m.host, m.cores, m.cpu_model)
    }
}

/// The server's cores as `/api/v1/cores` streams them, read on a thread of
/// its own while the window is attached, so that the bar shows how busy the
/// server is before a run starts (someone else's job, a build). Dropping it
/// ends the thread within a sample (100 ms).
#[derive(Debug)]
pub struct CoreWatch {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

/// What the watching thread last saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Seen {
    #[default]
    Nothing,
    /// Percent busy, one per core.
    Cores(Vec<f32>),
    /// The stream ended: why.
    Lost(String),
}

impl CoreWatch {
    /// Starts watching; never blocks.
    pub fn start(remote: crate::server::client::Remote) -> Self {
        let seen = Arc::new(Mutex::new(Seen::Nothing));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (seen.clone(), stop.clone());
        let put = move |s: Seen| *into.lock().unwrap_or_else(|p| p.into_inner()) = s;
        let spawned = std::thread::Builder::new()
            .name("scalelab-server-cores".into())
            .spawn(move || {
                let samples = match remote.cores() {
                    Ok(s) => s,
                    Err(e) => return put(Seen::Lost(e.to_string())),
                };
                for s in samples {
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    match s {
                        Ok(s) => put(Seen::Cores(s.cores)),
                        Err(e) => return put(Seen::Lost(e.to_string())),
                    }
                }
                put(Seen::Lost("the server ended the stream".into()));
            });
        if let Err(e) = spawned {
            *seen.lock().unwrap_or_else(|p| p.into_inner()) = Seen::Lost(e.to_string());
        }
        Self { seen, stop }
    }

    /// What was seen last.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for CoreWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One small bar per core, filled to its utilisation, and the mean.
fn core_bars(ui: &mut Ui, cores: &[f32]) {
    if cores.is_empty() {
        return;
    }
    let w = (240.0 / cores.len() as f32).clamp(1.5, 6.0);
    let h = 14.0;
    let (rect, resp) =
        ui.allocate_exact_size(egui::vec2(w * cores.len() as f32, h), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let back = ui.visuals().extreme_bg_color;
    painter.rect_filled(rect, 0.0, back);
    for (i, &pct) in cores.iter().enumerate() {
        let x = rect.left() + w * i as f32;
        let fill = h * (pct.clamp(0.0, 100.0) / 100.0);
        let bar = egui::Rect::from_min_max(
            egui::pos2(x + 0.5, rect.bottom() - fill),
            egui::pos2(x + w - 0.5, rect.bottom()),
        );
        painter.rect_filled(bar, 0.0, Color32::from_rgb(230, 190, 60));
    }
    let mean = cores.iter().sum::<f32>() / cores.len() as f32;
    resp.on_hover_text(format!(
        "The server's {} cores now, 0–100 % each; {mean:.0} % busy on average",
        cores.len()
    ));
    ui.label(RichText::new(format!("{mean:.0} % busy")).small());
}

/// What the control's fields hold.
#[derive(Debug, Clone, Default)]
pub struct MachineForm {
    /// Runs go to a server rather than this machine.
    pub use_server: bool,
    pub url: String,
    /// Not saved with the settings: it is a password.
    pub token: String,
    /// An attach is under way.
    pub probing: bool,
}

/// The control, on one line of the top bar. `busy`: a run or a job goes, and
/// the machine cannot change under it.
pub fn machine_bar(
    ui: &mut Ui,
    form: &mut MachineForm,
    attached: Option<&Attached>,
    busy: bool,
    cores: Option<Seen>,
) -> Option<Command> {
    let mut out = None;
    ui.label("Machine:");
    ui.add_enabled_ui(!busy && !form.probing, |ui| {
        let here = ui.radio_value(&mut form.use_server, false, "this machine");
        if here.clicked() && attached.is_some() {
            out = Some(Command::Detach);
        }
        ui.radio_value(&mut form.use_server, true, "server")
            .on_hover_text("Runs go to a `scalelab serve` (docs/API.md), charts show its cores");
    });
    if !form.use_server {
        return out;
    }
    ui.add_enabled_ui(!busy && !form.probing, |ui| {
        let url = ui.label("URL");
        ui.add(
            egui::TextEdit::singleline(&mut form.url)
                .hint_text("http://HOST:7878")
                .desired_width(170.0),
        )
        .labelled_by(url.id);
        let token = ui.label("Token");
        ui.add(
            egui::TextEdit::singleline(&mut form.token)
                .hint_text("as serve printed it")
                .password(true)
                .desired_width(110.0),
        )
        .labelled_by(token.id);
        let label = if attached.is_some() {
            "Reattach"
        } else {
            "Attach"
        };
        if ui.button(label).clicked() {
            out = Some(Command::Attach {
                url: form.url.clone(),
                token: form.token.clone(),
            });
        }
    });
    match (form.probing, attached) {
        (true, _) => {
            ui.spinner();
            ui.label("asking the server…");
        }
        (false, Some(a)) => {
            ui.label(RichText::new(format!("on {}", a.describe())).strong());
            match cores {
                Some(Seen::Cores(c)) => core_bars(ui, &c),
                Some(Seen::Lost(why)) => {
                    ui.label(
                        RichText::new("no word from the server").color(ui.visuals().error_fg_color),
                    )
                    .on_hover_text(why);
                }
                _ => {}
            }
        }
        (false, None) => {
            ui.label(RichText::new("not attached: runs go nowhere until you attach").weak());
        }
    }
    out
}
