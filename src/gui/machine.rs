//! The *Machine* control: run here, or on a `scalelab serve` given by URL and
//! token. Attaching asks the server for its machine on a thread of its own;
//! the UI thread only sends the command and draws the answer.

use egui::{RichText, Ui};

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

    /// "HOST (N cores, CPU)".
    pub fn describe(&self) -> String {
        let m = &self.machine;
        format!("{} ({} cores, {})", m.host, m.cores, m.cpu_model)
    }
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
        }
        (false, None) => {
            ui.label(RichText::new("not attached: runs go nowhere until you attach").weak());
        }
    }
    out
}
