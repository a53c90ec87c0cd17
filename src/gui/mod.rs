//! The desktop app (eframe/egui). It draws what the engine reports and asks the
//! engine for runs; it computes nothing itself.

pub mod app;
pub mod charts;
pub mod command;
pub mod compare_view;
pub mod controls;
pub mod frame_stats;
pub mod history;
pub mod live;
pub mod machine;
pub mod screenshot;
pub mod scripted;
pub mod state;
pub mod state_log;
pub mod sweep_view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use egui::Color32;

use crate::engine::EngineOptions;
use crate::engine::calibrate::Calibration;
use crate::spec::BackendKind;
use app::ScalelabApp;
use scripted::{Script, ScriptConfig};

/// The window's icon (assets/scalelab.svg at 128 px, built in).
pub fn app_icon() -> egui::IconData {
    eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icons/scalelab-128.png"))
        .expect("the built-in icon is a valid PNG")
}

/// How to start the window.
#[derive(Debug, Clone, Default)]
pub struct LaunchConfig {
    /// Scripted mode, when given.
    pub script: Option<ScriptConfig>,
    pub options: EngineOptions,
    /// Runs go to this server from the start (scripted `--server`).
    pub attached: Option<machine::Attached>,
}

/// Opens the window and returns when it closes; in scripted mode, with the script's outcome.
pub fn launch(config: LaunchConfig) -> Result<(), String> {
    let slot: app::OutcomeSlot = Arc::new(Mutex::new(None));
    let scripted = config.script.is_some();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("scalelab")
            .with_app_id("scalelab")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([960.0, 640.0])
            .with_icon(app_icon()),
        persist_window: !scripted,
        // Dithering runs per pixel on every frame; on a software renderer
        // (llvmpipe: VMs, remote desktops, machines without a GPU) that is CPU
        // taken from the run being measured, for banding egui's flat colours do not have.
        dithering: false,
        ..Default::default()
    };
    let (options, script, app_slot) = (config.options, config.script, slot.clone());
    let attached = config.attached;
    // Some 20 ms, before the window opens: sizes a first run that lasts long
    // enough to watch (the chapter's 8 × 1,000,000 is over before a sample).
    let calibration = Calibration::measure();
    let result = eframe::run_native(
        "scalelab",
        native,
        Box::new(move |cc| {
            let app = match script {
                Some(s) => ScalelabApp::scripted(Script::new(s), options, app_slot),
                None => {
                    let backup = eframe::storage_dir("scalelab").unwrap_or_else(std::env::temp_dir);
                    let fresh = cc
                        .storage
                        .and_then(|s| s.get_string(app::STATE_KEY))
                        .is_none();
                    ScalelabApp::from_storage(cc.storage, options, &backup)
                        .with_calibration(calibration, fresh)
                }
            };
            Ok(Box::new(match attached {
                Some(a) => app.attached_to(a, &cc.egui_ctx),
                None => app,
            }))
        }),
    );
    if let Err(e) = result {
        let hint = if std::env::var_os("DISPLAY").is_none()
            && std::env::var_os("WAYLAND_DISPLAY").is_none()
        {
            " (no display: DISPLAY and WAYLAND_DISPLAY are unset; on a headless machine run it under `xvfb-run -a`)"
        } else {
            ""
        };
        return Err(format!("cannot open the window: {e}{hint}"));
    }
    let outcome = slot.lock().expect("outcome lock").take();
    match outcome {
        Some(r) => r,
        None if scripted => Err("the window was closed before the scripted runs were done".into()),
        None => Ok(()),
    }
}

/// The colour a backend has in every chart and table.
pub fn backend_color(b: BackendKind) -> Color32 {
    let [r, g, bl] = b.rgb();
    Color32::from_rgb(r, g, bl)
}

/// The user's home folder (the default export folder), or the current folder.
pub fn home_dir() -> String {
    std::env::var("HOME").unwrap_or_else(|_| ".".into())
}

/// `~/x` as `$HOME/x`.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(format!("{}{rest}", home_dir()))
        }
        _ => PathBuf::from(path),
    }
}

/// Local time as `YYYYMMDD-HHMMSS`, for file names.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: localtime_r only writes the tm we hand it.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return format!("{now}");
        }
        tm
    };
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_dates() {
        let t = timestamp();
        assert_eq!(t.len(), 15, "{t}");
        assert_eq!(&t[8..9], "-");
        assert!(t.starts_with("20"), "{t}");
    }

    #[test]
    fn home_is_expanded() {
        let home = home_dir();
        assert_eq!(expand_home("~/x"), PathBuf::from(format!("{home}/x")));
        assert_eq!(expand_home("/tmp"), PathBuf::from("/tmp"));
        assert_eq!(expand_home("~x"), PathBuf::from("~x"));
    }
}
