//! The desktop app: one file per panel — Generators, Training, Models, Memory, Map, Query,
//! Privacy, Segmentation — and the
//! knowledge they share (`knowledge`: model, memory, index, watch list, undo). At start the app
//! loads the bundled model and demo memory on a worker; a model that does not match the memory
//! is refused with a message, never replaced by other weights.

pub mod generators;
pub mod jobs;
pub mod knowledge;
pub mod map;
pub mod memory;
pub mod models;
pub mod privacy;
pub mod query;
pub mod segmentation;
pub mod training;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, RichText};
use serde::{Deserialize, Serialize};

use generators::{GeneratorsPanel, GeneratorsState};
use jobs::Job;
use knowledge::{Knowledge, KnowledgeState};
use map::MapPanel;
use memory::MemoryPanel;
use models::{ModelsPanel, ModelsState};
use privacy::PrivacyPanel;
use query::QueryPanel;
use segmentation::{SegmentationPanel, SegmentationState};
use training::{TrainingPanel, TrainingState};

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Tab {
    Generators,
    Training,
    Models,
    Memory,
    Map,
    #[default]
    Query,
    Privacy,
    Segmentation,
}

const STATE_KEY: &str = "procmem-app-state";

/// Why loading a model and memory failed, as the UI shows it. `model_mismatch` comes from the
/// error's variant ([`crate::Error::ModelMismatch`]), never from its text: it offers re-embedding.
#[derive(Clone, Debug)]
pub struct LoadFailure {
    pub message: String,
    pub model_mismatch: bool,
}

impl From<&crate::Error> for LoadFailure {
    fn from(e: &crate::Error) -> Self {
        Self {
            message: e.to_string(),
            model_mismatch: matches!(e, crate::Error::ModelMismatch { .. }),
        }
    }
}

/// Persisted UI state: settings only, never handles or images.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppState {
    pub tab: Tab,
    pub generators: GeneratorsState,
    pub training: TrainingState,
    pub knowledge: KnowledgeState,
    pub segmentation: SegmentationState,
    pub models: ModelsState,
}

/// What a panel asks of the app (egui_demo_app's `Command`): collected while the panels draw and
/// applied once per frame, after them.
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// Query with this memory entry and show the Query tab (Memory, Map).
    QueryEntry(u64),
    /// Make this model the perception, re-embedding the memory (Models).
    UseModel(PathBuf),
    /// Load this model with the current memory and show the Memory tab (a training checkpoint).
    LoadModel(PathBuf),
}

/// What a panel sees while it draws.
pub struct PanelContext<'a> {
    /// The loaded model and memory; always `Some` for a panel that [`Panel::needs_knowledge`].
    pub knowledge: Option<&'a mut Knowledge>,
    /// A model and memory are being loaded.
    pub loading: bool,
    /// The Query panel's current query embedding (the Map draws where it lands).
    pub query: Option<&'a [f32]>,
    /// The Privacy panel's report at its shown k, while it describes this memory (the Map
    /// colours by it).
    pub influence: Option<Arc<crate::memory::privacy::PrivacyReport>>,
    /// Commands for the app, applied after the panels have drawn.
    pub commands: &'a mut Vec<AppCommand>,
}

/// One tab of the app. The tab bar, the polling of hidden panels and the app's drawing all
/// iterate [`Panels::iter_mut`]: adding a panel is one file with this impl and one entry there.
pub trait Panel {
    fn tab(&self) -> Tab;
    /// The tab bar's label (it may show state, e.g. a run in progress).
    fn title(&self) -> String;
    /// Drawn only while a model and memory are loaded.
    fn needs_knowledge(&self) -> bool {
        true
    }
    /// Shows the model-and-memory bar above the panel.
    fn shows_knowledge_bar(&self) -> bool {
        self.needs_knowledge()
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>);
    /// Called every frame while the panel is hidden, so its background work keeps reporting.
    fn poll_hidden(&mut self, _ctx: &egui::Context) {}
}

/// The app's panels, in tab-bar order.
pub struct Panels {
    pub generators: GeneratorsPanel,
    pub training: TrainingPanel,
    pub models: ModelsPanel,
    pub memory: MemoryPanel,
    pub map: MapPanel,
    pub query: QueryPanel,
    pub privacy: PrivacyPanel,
    pub segmentation: SegmentationPanel,
}

impl Panels {
    /// Every panel, in tab-bar order: the one list of them.
    pub fn iter_mut(&mut self) -> [&mut dyn Panel; 8] {
        [
            &mut self.generators,
            &mut self.training,
            &mut self.models,
            &mut self.memory,
            &mut self.map,
            &mut self.query,
            &mut self.privacy,
            &mut self.segmentation,
        ]
    }
}

pub struct ProcmemApp {
    pub tab: Tab,
    pub panels: Panels,
    pub knowledge_state: KnowledgeState,
    pub knowledge: Option<Knowledge>,
    loading: Option<Job<Result<Knowledge, crate::Error>>>,
    /// Why the last load failed (the previous knowledge, if any, stays loaded).
    pub load_error: Option<LoadFailure>,
    /// What the last load asked for (offered again with re-embedding after a model mismatch).
    pending: Option<KnowledgeState>,
}

impl ProcmemApp {
    pub fn new(ctx: &egui::Context, state: AppState) -> Self {
        let mut app = Self {
            tab: state.tab,
            panels: Panels {
                generators: GeneratorsPanel::new(ctx, state.generators),
                training: TrainingPanel::new(state.training),
                models: ModelsPanel::new(state.models),
                memory: MemoryPanel::default(),
                map: MapPanel::default(),
                query: QueryPanel::default(),
                privacy: PrivacyPanel::default(),
                segmentation: SegmentationPanel::new(state.segmentation),
            },
            knowledge_state: state.knowledge.clone(),
            knowledge: None,
            loading: None,
            load_error: None,
            pending: None,
        };
        app.load_knowledge(ctx, state.knowledge);
        app
    }

    /// Loads model + memory on a worker; replaces the current knowledge only on success.
    pub(crate) fn load_knowledge(&mut self, ctx: &egui::Context, state: KnowledgeState) {
        self.load_with(ctx, state, false);
    }

    fn load_with(&mut self, ctx: &egui::Context, state: KnowledgeState, reembed: bool) {
        self.load_error = None;
        self.pending = Some(state.clone());
        self.loading =
            // The job's own error is for a panic; the load's typed error travels inside its result.
            Some(Job::spawn(ctx, "loading model and memory", move |h| Ok(Knowledge::load_with(&state, reembed, |f, t| h.progress(f, t)))));
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    fn poll_loading(&mut self) {
        if let Some(job) = &mut self.loading
            && let Some(r) = job.poll()
        {
            self.loading = None;
            match r {
                Ok(Ok(k)) => {
                    self.knowledge_state.model = k.perception().path.clone();
                    self.knowledge_state.memory = k.loaded_from().to_path_buf();
                    self.knowledge = Some(k);
                    self.panels.query = QueryPanel::default();
                    self.panels.privacy = PrivacyPanel::default();
                    self.panels.map = MapPanel::default();
                    self.panels.memory.selected = None;
                }
                Ok(Err(e)) => self.load_error = Some(LoadFailure::from(&e)),
                Err(message) => {
                    self.load_error = Some(LoadFailure {
                        message,
                        model_mismatch: false,
                    })
                }
            }
        }
    }

    fn knowledge_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.knowledge {
                Some(k) => {
                    ui.label(
                        RichText::new(format!("model: {}", k.perception().description)).small(),
                    );
                    ui.separator();
                    let dirty = if k.is_dirty() { " (unsaved edits)" } else { "" };
                    ui.label(
                        RichText::new(format!(
                            "memory: {} — {} entries{dirty}",
                            k.loaded_from().display(),
                            k.memory().len()
                        ))
                        .small(),
                    );
                }
                None if self.loading.is_none() => {
                    ui.label(RichText::new("no model and memory loaded").small());
                }
                None => {}
            }
            if let Some(job) = &self.loading {
                job.ui(ui);
            }
            ui.separator();
            let idle = self.loading.is_none();
            if ui
                .add_enabled(idle, egui::Button::new("Load model…"))
                .on_hover_text("A procmem model or checkpoint (.json)")
                .clicked()
                && let Some(p) = rfd::FileDialog::new()
                    .add_filter("procmem model", &["json"])
                    .pick_file()
            {
                let mut st = self.knowledge_state.clone();
                st.model = p;
                self.load_knowledge(ui.ctx(), st);
            }
            if ui
                .add_enabled(idle, egui::Button::new("Open memory…"))
                .clicked()
                && let Some(p) = rfd::FileDialog::new()
                    .add_filter("procmem memory", &["pmem"])
                    .pick_file()
            {
                let mut st = self.knowledge_state.clone();
                st.memory = p;
                st.watch = None;
                self.load_knowledge(ui.ctx(), st);
            }
            if ui
                .add_enabled(idle, egui::Button::new("Bundled demo"))
                .on_hover_text("The bundled model and demo memory")
                .clicked()
            {
                self.load_knowledge(ui.ctx(), KnowledgeState::default());
            }
        });
        if let Some(e) = self.load_error.clone() {
            // The message may be long (it names both models): it wraps, and the action sits
            // below it where it is always on screen.
            ui.colored_label(Color32::LIGHT_RED, format!("could not load: {}", e.message));
            if e.model_mismatch
                && let Some(state) = self.pending.clone()
                && ui
                    .button("Re-embed the memory with this model")
                    .on_hover_text("From its stored thumbnails, on a worker")
                    .clicked()
            {
                self.load_with(ui.ctx(), state, true);
            }
        }
    }

    pub(crate) fn from_creation_context(cc: &eframe::CreationContext<'_>) -> Self {
        let state = cc
            .storage
            .and_then(|s| eframe::get_value::<AppState>(s, STATE_KEY))
            .unwrap_or_default();
        Self::new(&cc.egui_ctx, state)
    }

    pub fn state(&self) -> AppState {
        let mut knowledge = self.knowledge_state.clone();
        if let Some(k) = &self.knowledge {
            knowledge.k = k.k();
            knowledge.abstain_below = k.abstain_below;
            // A saved copy (e.g. the edited demo memory) is what the next start opens.
            if let Some(saved) = &k.memory_path() {
                knowledge.memory = saved.to_path_buf();
                knowledge.model = k.perception().path.clone();
            }
        }
        AppState {
            tab: self.tab,
            training: self.panels.training.state.clone(),
            generators: self.panels.generators.state.clone(),
            knowledge,
            segmentation: self.panels.segmentation.state.clone(),
            models: self.panels.models.state.clone(),
        }
    }

    /// Makes `model` the app's perception, re-embedding the current memory (and watch list)
    /// on a worker. Unsaved memory edits are saved first, so the switch loses nothing.
    pub(crate) fn use_model(&mut self, ctx: &egui::Context, model: std::path::PathBuf) {
        let mut st = self.knowledge_state.clone();
        if let Some(k) = &mut self.knowledge
            && k.is_dirty()
        {
            match k.save() {
                Ok(p) => st.memory = p,
                Err(e) => {
                    self.load_error = Some(LoadFailure {
                        message: format!(
                            "unsaved memory edits could not be saved, so the model stays: {e}"
                        ),
                        model_mismatch: false,
                    });
                    return;
                }
            }
        }
        st.model = model;
        self.load_with(ctx, st, true);
    }

    /// Applies one panel's command.
    pub fn apply(&mut self, ctx: &egui::Context, command: AppCommand) {
        match command {
            AppCommand::QueryEntry(id) => {
                if let Some(k) = &mut self.knowledge {
                    self.panels.query.query_entry(ctx, k, id);
                    self.tab = Tab::Query;
                }
            }
            AppCommand::UseModel(model) => self.use_model(ctx, model),
            AppCommand::LoadModel(model) => {
                let mut st = self.knowledge_state.clone();
                st.model = model;
                self.load_knowledge(ctx, st);
                self.tab = Tab::Memory;
            }
        }
    }

    /// The whole window's UI (also driven directly by the UI tests).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let tabs: Vec<(Tab, String)> = self
            .panels
            .iter_mut()
            .iter()
            .map(|p| (p.tab(), p.title()))
            .collect();
        egui::Panel::top("top bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("procmem");
                ui.separator();
                for (tab, title) in tabs {
                    ui.selectable_value(&mut self.tab, tab, title);
                }
                ui.separator();
                ui.label(
                    egui::RichText::new(
                        "perception from procedural data, knowledge in an editable memory",
                    )
                    .weak(),
                );
            });
        });
        self.poll_loading();
        let active = self.tab;
        if self
            .panels
            .iter_mut()
            .iter()
            .any(|p| p.tab() == active && p.shows_knowledge_bar())
        {
            egui::Panel::top("knowledge bar").show(ui, |ui| self.knowledge_bar(ui));
        }
        // What panels share, taken before they are borrowed one by one.
        let query = self
            .panels
            .query
            .query
            .as_ref()
            .map(|q| q.embedding.clone());
        let influence = self
            .knowledge
            .as_ref()
            .and_then(|k| self.panels.privacy.current_report(k.generation()));
        let mut commands = Vec::new();
        let mut cx = PanelContext {
            knowledge: self.knowledge.as_mut(),
            loading: self.loading.is_some(),
            query: query.as_deref(),
            influence,
            commands: &mut commands,
        };
        let ctx = ui.ctx().clone();
        for panel in self.panels.iter_mut() {
            if panel.tab() != active {
                panel.poll_hidden(&ctx);
            } else if panel.needs_knowledge() && cx.knowledge.is_none() {
                let waiting = if cx.loading {
                    "Loading…"
                } else {
                    "Load a model and a memory above."
                };
                egui::CentralPanel::default().show(ui, |ui| ui.label(waiting));
            } else {
                panel.show(ui, &mut cx);
            }
        }
        for command in commands {
            self.apply(&ctx, command);
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

    fn on_exit(&mut self) {
        // Nothing lost: unsaved memory edits are written (a bundled memory to the user folder).
        if let Some(k) = &mut self.knowledge
            && k.is_dirty()
        {
            match k.save() {
                Ok(p) => log::info!("memory edits saved to {}", p.display()),
                Err(e) => log::error!("could not save memory edits: {e}"),
            }
        }
    }
}

/// Opens the app window.
pub fn run() -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 800.0])
            .with_title("procmem"),
        ..Default::default()
    };
    eframe::run_native(
        "procmem",
        options,
        Box::new(|cc| Ok(Box::new(ProcmemApp::from_creation_context(cc)))),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
