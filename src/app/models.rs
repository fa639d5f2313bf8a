//! The Models panel: the zoo (one model per data source, `zoo/`), the bundled model (`models/`)
//! and any model file added, each with its provenance and headline numbers from the evaluation
//! results (`zoo/results.jsonl`, written by `procmem eval … --results`). "Use" makes a model the
//! app's perception: the memory is re-embedded on a worker with a progress bar, and the
//! embeddings are cached per model fingerprint, so switching back is immediate.

use std::path::{Path, PathBuf};

use egui::{Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::eval::results::{self, ResultRecord};
use crate::model::weights::CheckpointMeta;

/// Persisted: where models are listed from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ModelsState {
    /// Folders scanned for model files (`*.json` procmem models). Default: `models/`, `zoo/`.
    pub folders: Vec<PathBuf>,
    /// Extra model files added with "Add model…".
    pub extra: Vec<PathBuf>,
    /// The results file the headline numbers come from. Default: `zoo/results.jsonl`.
    pub results: PathBuf,
}

/// The bundled model's measured numbers (`procmem eval … --results models/results.jsonl`).
pub const SHIPPED_RESULTS: &str = "models/results.jsonl";

impl Default for ModelsState {
    fn default() -> Self {
        let dir = super::knowledge::bundled_dir();
        Self {
            folders: vec![dir.join("models"), dir.join("zoo")],
            extra: Vec::new(),
            results: dir.join("zoo").join("results.jsonl"),
        }
    }
}

/// One listed model: its metadata as written beside its weights.
#[derive(Clone, Debug)]
pub struct ModelEntry {
    pub path: PathBuf,
    pub name: String,
    pub meta: CheckpointMeta,
}

/// Reads a model's JSON half only (the weights load when it is used).
pub(crate) fn read_meta(path: &Path) -> Result<CheckpointMeta, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a procmem model ({e})", path.display()))?;
    if meta.format != crate::model::weights::CHECKPOINT_FORMAT {
        return Err(format!(
            "{}: format `{}` is not a procmem model",
            path.display(),
            meta.format
        ));
    }
    Ok(meta)
}

/// Every procmem model in `folders` (non-recursive) and `extra`, sorted by name; files that
/// are not procmem models are skipped, and reported.
pub fn scan(folders: &[PathBuf], extra: &[PathBuf]) -> (Vec<ModelEntry>, Vec<String>) {
    let mut paths: Vec<PathBuf> = Vec::new();
    for f in folders {
        if let Ok(rd) = std::fs::read_dir(f) {
            paths.extend(rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && p.with_extension("safetensors").exists()
            }));
        }
    }
    paths.extend(extra.iter().cloned());
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match read_meta(&p) {
            Ok(meta) => {
                let name = p.file_stem().map_or_else(
                    || p.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                );
                out.push(ModelEntry {
                    path: p,
                    name,
                    meta,
                });
            }
            Err(e) => errors.push(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    (out, errors)
}

#[derive(Default)]
pub struct ModelsPanel {
    pub state: ModelsState,
    pub entries: Vec<ModelEntry>,
    pub results: Vec<ResultRecord>,
    pub errors: Vec<String>,
    scanned: bool,
    /// Set when the user asks to use a model; the app loads it (re-embedding the memory).
    /// Commands for the app, taken once per frame ([`super::Panel::show`]).
    outbox: Vec<super::AppCommand>,
}

impl ModelsPanel {
    pub fn new(state: ModelsState) -> Self {
        Self {
            state,
            ..Default::default()
        }
    }

    pub(crate) fn rescan(&mut self) {
        let (entries, errors) = scan(&self.state.folders, &self.state.extra);
        self.entries = entries;
        self.errors = errors;
        self.results = results::read(&self.state.results);
        // The bundled model's own numbers ship beside it, so they show before any zoo exists.
        let shipped = super::knowledge::bundled_dir().join(SHIPPED_RESULTS);
        if shipped != self.state.results {
            self.results.extend(results::read(&shipped));
        }
        self.scanned = true;
    }

    fn headline(&self, fingerprint: &str) -> Vec<String> {
        let pick = |dataset: &str, task: &str| {
            self.results
                .iter()
                .find(|r| r.fingerprint == fingerprint && r.dataset == dataset && r.task == task)
        };
        let mut out = Vec::new();
        for (dataset, short) in [
            ("fashion-mnist", "FMNIST"),
            ("mnist", "MNIST"),
            ("emoji-categories", "emoji"),
        ] {
            if let Some(r) = pick(dataset, "knn") {
                out.push(format!("{short} kNN {:.1} %", r.value * 100.0));
            }
            if let Some(r) = pick(dataset, "linear-probe") {
                out.push(format!("{short} probe {:.1} %", r.value * 100.0));
            }
        }
        out
    }

    /// `current`: the fingerprint of the app's model; `busy`: a load is running.
    pub fn ui(&mut self, ui: &mut egui::Ui, current: Option<&str>, busy: bool) {
        if !self.scanned {
            self.rescan();
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Models");
                if ui.button("Rescan").clicked() {
                    self.rescan();
                }
                if ui.button("Add model…").on_hover_text("A procmem model (.json beside its .safetensors)").clicked()
                    && let Some(p) = rfd::FileDialog::new().add_filter("procmem model", &["json"]).pick_file() {
                        self.state.extra.push(p);
                        self.rescan();
                    }
            });
            ui.label(
                RichText::new(format!(
                    "From {}. Numbers: {} (procmem eval … --results). Using a model re-embeds the memory on a worker; embeddings are cached per model.",
                    self.state.folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
                    self.state.results.display()
                ))
                .small()
                .weak(),
            );
            for e in &self.errors {
                ui.colored_label(Color32::LIGHT_RED, e);
            }
            if self.entries.is_empty() {
                ui.label("No models found. The zoo is made by scripts/zoo-gpu.sh (see docs/results.md).");
            }
            ui.separator();
            let mut request = None;
            egui::ScrollArea::vertical().show(ui, |ui| {
                egui::Grid::new("models grid").striped(true).num_columns(5).spacing([12.0, 6.0]).show(ui, |ui| {
                    ui.strong("model");
                    ui.strong("data (provenance)");
                    ui.strong("training");
                    ui.strong("measured");
                    ui.strong("");
                    ui.end_row();
                    for m in &self.entries {
                        let is_current = current == Some(m.meta.fingerprint.as_str());
                        let name = if is_current { RichText::new(format!("{} (in use)", m.name)).strong() } else { RichText::new(&m.name) };
                        ui.label(name).on_hover_text(format!("{}\nfingerprint {}", m.path.display(), m.meta.fingerprint));
                        ui.vertical(|ui| {
                            ui.set_width(420.0); // one line per source where the window allows
                            let (badge, colour) = if m.meta.provenance.procedural_only {
                                ("procedural data only", Color32::from_rgb(90, 170, 90))
                            } else {
                                ("trained on real images", Color32::from_rgb(220, 150, 60))
                            };
                            ui.colored_label(colour, badge);
                            for s in &m.meta.provenance.sources {
                                ui.label(RichText::new(s).small());
                            }
                            if let Some(st) = &m.meta.standardisation {
                                ui.label(RichText::new(format!("standardised on {} ({} images)", st.source, st.images)).small())
                                    .on_hover_text("centring and whitening of the embedding, fitted on procedural images only");
                            }
                        });
                        let trainer = m.meta.train_config.get("trainer").and_then(|t| t.as_str()).unwrap_or("procmem train");
                        let trainer = trainer.split(" (").next().unwrap_or(trainer);
                        ui.add(egui::Label::new(RichText::new(format!(
                            "{} steps, {} images seen\n{}×{} px, patch {}, width {}, depth {}\nembedding: {} pooling, {}-d\n{trainer}",
                            m.meta.step,
                            m.meta.provenance.images_seen,
                            m.meta.vit.img_size,
                            m.meta.vit.img_size,
                            m.meta.vit.patch_size,
                            m.meta.vit.embed_dim,
                            m.meta.vit.depth,
                            m.meta.pooling.name(),
                            m.meta.pooling.dim(m.meta.vit.embed_dim)
                        ))
                        .small())
                        .wrap_mode(egui::TextWrapMode::Extend));
                        let headline = self.headline(&m.meta.fingerprint);
                        ui.label(RichText::new(if headline.is_empty() { "not evaluated".to_string() } else { headline.join("\n") }).small());
                        if is_current {
                            ui.label("current");
                        } else if ui.add_enabled(!busy, egui::Button::new("Use")).on_hover_text("Make this the app's perception model").clicked() {
                            request = Some(m.path.clone());
                        }
                        ui.end_row();
                    }
                });
            });
            if let Some(model) = request {
                self.outbox.push(super::AppCommand::UseModel(model));
            }
        });
    }
}

impl super::Panel for ModelsPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Models
    }
    fn title(&self) -> String {
        "Models".into()
    }
    fn needs_knowledge(&self) -> bool {
        false
    }
    fn shows_knowledge_bar(&self) -> bool {
        true
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        let current = cx
            .knowledge
            .as_ref()
            .map(|k| k.perception().source.fingerprint());
        self.ui(ui, current.as_deref(), cx.loading);
        cx.commands.append(&mut self.outbox);
    }
}
