//! What the app keeps: settings and history (persisted as JSON in eframe's
//! storage), the theme choice, and the export formats.

use egui::ThemePreference;
use serde::{Deserialize, Serialize};

use crate::report::export::{self, ExportRow};

use super::controls::SpecForm;
use super::live::LiveOptions;
use crate::report::history::RunHistory;

/// Dark, light, or whatever the system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ThemeChoice {
    #[default]
    System,
    Dark,
    Light,
}

impl ThemeChoice {
    pub const ALL: [ThemeChoice; 3] = [ThemeChoice::System, ThemeChoice::Dark, ThemeChoice::Light];

    pub fn label(self) -> &'static str {
        match self {
            ThemeChoice::System => "System",
            ThemeChoice::Dark => "Dark",
            ThemeChoice::Light => "Light",
        }
    }

    pub fn preference(self) -> ThemePreference {
        match self {
            ThemeChoice::System => ThemePreference::System,
            ThemeChoice::Dark => ThemePreference::Dark,
            ThemeChoice::Light => ThemePreference::Light,
        }
    }
}

/// Everything that survives a restart: settings and the run history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppState {
    pub form: SpecForm,
    pub live_options: LiveOptions,
    pub theme: ThemeChoice,
    /// Where exports and screenshots go.
    pub export_dir: String,
    pub history: RunHistory,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            form: SpecForm::default(),
            live_options: LiveOptions::default(),
            theme: ThemeChoice::default(),
            export_dir: super::home_dir(),
            history: RunHistory::default(),
        }
    }
}

impl AppState {
    /// Reads the stored state; a corrupt one gives the defaults and says why.
    pub fn from_stored(text: Option<&str>) -> (Self, Option<String>) {
        match text.map(serde_json::from_str::<AppState>) {
            None => (Self::default(), None),
            Some(Ok(state)) => (state, None),
            Some(Err(e)) => (
                Self::default(),
                Some(format!(
                    "The saved settings and history could not be read ({e}); started with defaults."
                )),
            ),
        }
    }

    /// Like `from_stored`, and keeps a copy of unreadable state in `backup_dir`
    /// (so the history in it is not lost), saying where.
    pub fn from_stored_keeping(
        text: Option<&str>,
        backup_dir: &std::path::Path,
    ) -> (Self, Option<String>) {
        let (state, problem) = Self::from_stored(text);
        let (Some(problem), Some(text)) = (problem, text) else {
            return (state, None);
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = backup_dir.join(format!("scalelab-state-unreadable-{secs}.json"));
        let kept = std::fs::create_dir_all(backup_dir).and_then(|()| std::fs::write(&path, text));
        let note = match kept {
            Ok(()) => format!("{problem} A copy of it is in {}.", path.display()),
            Err(e) => format!(
                "{problem} Keeping a copy in {} failed: {e}.",
                path.display()
            ),
        };
        (state, Some(note))
    }

    /// What gets written to storage: the history without its bulky timelines.
    pub fn to_stored(&self) -> String {
        let slim = AppState {
            history: self.history.without_timelines(),
            ..self.clone_settings()
        };
        serde_json::to_string(&slim).expect("the state always serializes")
    }

    fn clone_settings(&self) -> AppState {
        AppState {
            form: self.form.clone(),
            live_options: self.live_options.clone(),
            theme: self.theme,
            export_dir: self.export_dir.clone(),
            history: RunHistory::default(),
        }
    }
}

/// The export formats of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
    Markdown,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Csv,
        ExportFormat::Json,
        ExportFormat::Markdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ExportFormat::Csv => "CSV",
            ExportFormat::Json => "JSON",
            ExportFormat::Markdown => "Markdown",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Markdown => "md",
        }
    }

    pub fn render(self, rows: &[ExportRow<'_>]) -> Result<String, String> {
        match self {
            ExportFormat::Csv => export::to_csv(rows).map_err(|e| e.to_string()),
            ExportFormat::Json => Ok(export::to_json(rows)),
            ExportFormat::Markdown => Ok(export::to_markdown(rows)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_state_gives_defaults_and_says_so() {
        let (state, problem) = AppState::from_stored(Some("{ not json"));
        assert_eq!(state, AppState::default());
        assert!(problem.unwrap().contains("could not be read"));
        assert_eq!(AppState::from_stored(None).1, None);
    }

    #[test]
    fn unreadable_state_is_kept_in_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (state, problem) =
            AppState::from_stored_keeping(Some("{\"history\": [1, 2"), dir.path());
        assert_eq!(state, AppState::default());
        let problem = problem.unwrap();
        assert!(problem.contains("A copy of it is in"), "{problem}");
        let copies: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(copies.len(), 1);
        let kept = std::fs::read_to_string(copies[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(kept, "{\"history\": [1, 2");
        // Readable state leaves no copy.
        let (_, none) = AppState::from_stored_keeping(Some("{}"), dir.path());
        assert_eq!(none, None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn state_round_trips_and_missing_fields_default() {
        let mut state = AppState::default();
        state.form.workers = "3".into();
        state.theme = ThemeChoice::Light;
        let (back, problem) = AppState::from_stored(Some(&state.to_stored()));
        assert_eq!(problem, None);
        assert_eq!(back, state);
        let (partial, problem) = AppState::from_stored(Some(r#"{"theme":"Dark"}"#));
        assert_eq!(problem, None);
        assert_eq!(partial.theme, ThemeChoice::Dark);
        assert_eq!(partial.form, SpecForm::default());
    }
}
