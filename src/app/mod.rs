//! The desktop app: one file per panel. Today it has the Generators and Training panels; the
//! Memory, Query, Privacy, Segmentation and Models panels arrive with their capabilities.

pub mod generators;
pub mod training;
pub mod worker;

use serde::{Deserialize, Serialize};

use generators::{GeneratorsPanel, GeneratorsState};
use training::{TrainingPanel, TrainingState};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Tab {
    #[default]
    Generators,
    Training,
}

const STATE_KEY: &str = "procmem-app-state";

/// Persisted UI state: settings only, never handles or images.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppState {
    pub tab: Tab,
    pub generators: GeneratorsState,
    pub training: TrainingState,
}

pub struct ProcmemApp {
    pub tab: Tab,
    pub generators: GeneratorsPanel,
    pub training: TrainingPanel,
}

impl ProcmemApp {
    pub fn new(ctx: &egui::Context, state: AppState) -> Self {
        Self { tab: state.tab, generators: GeneratorsPanel::new(ctx, state.generators), training: TrainingPanel::new(state.training) }
    }

    pub fn from_creation_context(cc: &eframe::CreationContext<'_>) -> Self {
        let state = cc.storage.and_then(|s| eframe::get_value::<AppState>(s, STATE_KEY)).unwrap_or_default();
        Self::new(&cc.egui_ctx, state)
    }

    pub fn state(&self) -> AppState {
        AppState { tab: self.tab, training: self.training.state.clone(), generators: self.generators.state.clone() }
    }

    /// The whole window's UI (also driven directly by the UI tests).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("top bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("procmem");
                ui.separator();
                ui.selectable_value(&mut self.tab, Tab::Generators, "Generators");
                let training_label = if self.training.is_running() { "Training (running)" } else { "Training" };
                ui.selectable_value(&mut self.tab, Tab::Training, training_label);
                ui.separator();
                ui.label(egui::RichText::new("perception from procedural data, knowledge in an editable memory").weak());
            });
        });
        match self.tab {
            Tab::Generators => self.generators.ui(ui),
            Tab::Training => self.training.ui(ui),
        }
        // A run keeps reporting while its tab is hidden.
        if self.tab != Tab::Training {
            let ctx = ui.ctx().clone();
            self.training.poll(&ctx);
        }
    }
}

impl eframe::App for ProcmemApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STATE_KEY, &self.state());
    }
}

/// Opens the app window.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default().with_inner_size([1280.0, 800.0]).with_title("procmem"),
        ..Default::default()
    };
    eframe::run_native("procmem", options, Box::new(|cc| Ok(Box::new(ProcmemApp::from_creation_context(cc)))))
        .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
