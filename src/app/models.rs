//! The Models panel: the zoo (one model per data source, `zoo/`), the bundled model (`models/`)
//! and any model file added, each with its provenance and headline numbers from the evaluation
//! results (`zoo/results.jsonl`, written by `procmem eval … --results`). "Use" makes a model the
//! app's perception: the memory is re-embedded on a worker with a progress bar, and the
//! embeddings are cached per model fingerprint, so switching back is immediate. "Evaluate"
//! measures a model with the proxy protocol (`eval::proxy`: kNN on Fashion-MNIST's validation
//! split, seconds) on a worker, and keeps the number in the user's results file.

use std::path::{Path, PathBuf};

use egui::{Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::eval::proxy;
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
    /// The Fashion-MNIST folder the proxy evaluation reads. None: `$PROCMEM_DATA/fashion-mnist`
    /// ([`crate::paths::data_dir`]).
    pub proxy_data: Option<PathBuf>,
    /// Where proxy results are appended. None: `results.jsonl` in the user data folder.
    pub proxy_results: Option<PathBuf>,
    /// The running proxy evaluation: (model name, fingerprint, job).
    proxy_job: Option<(String, String, super::jobs::Job<f64>)>,
    /// The last proxy evaluation's outcome, or its error.
    pub message: String,
}

/// The user's own results file (proxy evaluations from the app).
fn user_results() -> PathBuf {
    crate::paths::user_data_dir().join("results.jsonl")
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
        let own = self.proxy_results.clone().unwrap_or_else(user_results);
        for r in results::read(&own) {
            self.keep(r);
        }
        self.scanned = true;
    }

    /// Adds a record, replacing one of the same model, set and task.
    fn keep(&mut self, r: ResultRecord) {
        self.results.retain(|o| {
            !(o.fingerprint == r.fingerprint && o.dataset == r.dataset && o.task == r.task)
        });
        self.results.push(r);
    }

    /// Starts the proxy evaluation of a model on a worker.
    fn start_proxy(&mut self, ctx: &egui::Context, model: &ModelEntry) {
        let dir = match self.proxy_data.clone() {
            Some(d) => d,
            None => match crate::paths::data_dir() {
                Some(d) => d.join("fashion-mnist"),
                None => {
                    self.message = "set PROCMEM_DATA (or HOME) to find Fashion-MNIST".into();
                    return;
                }
            },
        };
        let path = model.path.clone();
        let job = super::jobs::Job::spawn(ctx, "proxy evaluation", move |h| {
            h.progress(0.0, "loading the model and Fashion-MNIST");
            let source = crate::embed::FeatureSource::from_path(
                &path,
                crate::model::weights::Which::Teacher,
            )
            .map_err(|e| e.to_string())?;
            proxy::fashion_mnist_val(
                &source,
                &dir,
                |f| h.progress(f, "embedding"),
                || h.cancelled(),
            )
            .map_err(|e| e.to_string())
        });
        self.message.clear();
        self.proxy_job = Some((model.name.clone(), model.meta.fingerprint.clone(), job));
    }

    /// Takes a finished proxy evaluation: its number joins the results and the user's file.
    fn poll_proxy(&mut self) {
        let Some((name, fingerprint, job)) = &mut self.proxy_job else {
            return;
        };
        let Some(outcome) = job.poll() else {
            return;
        };
        let (name, fingerprint) = (name.clone(), fingerprint.clone());
        self.proxy_job = None;
        match outcome {
            Ok(value) => {
                let record = ResultRecord {
                    fingerprint,
                    features: name.clone(),
                    dataset: proxy::DATASET.into(),
                    task: "knn".into(),
                    value,
                    k: Some(proxy::K),
                };
                let file = self.proxy_results.clone().unwrap_or_else(user_results);
                self.message = match results::append(&file, std::slice::from_ref(&record)) {
                    Ok(()) => format!(
                        "{name}: {:.2} % kNN top-1 on the validation proxy (saved to {})",
                        value * 100.0,
                        file.display()
                    ),
                    Err(e) => format!("{name}: {:.2} %, not saved: {e}", value * 100.0),
                };
                self.keep(record);
            }
            Err(e) => self.message = format!("proxy evaluation of {name}: {e}"),
        }
    }

    fn headline(&self, fingerprint: &str) -> Vec<String> {
        let pick = |dataset: &str, task: &str| {
            self.results
                .iter()
                .find(|r| r.fingerprint == fingerprint && r.dataset == dataset && r.task == task)
        };
        let mut out = Vec::new();
        if let Some(r) = pick(proxy::DATASET, "knn") {
            out.push(format!("FMNIST val proxy {:.1} %", r.value * 100.0));
        }
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
        if let Some(r) = pick(results::EMOJI_PAIRS, results::RECALL_AT_1) {
            out.push(format!("emoji R@1 {:.1} %", r.value * 100.0));
        }
        out
    }

    /// `current`: the fingerprint of the app's model; `busy`: a load is running.
    pub fn ui(&mut self, ui: &mut egui::Ui, current: Option<&str>, busy: bool) {
        if !self.scanned {
            self.rescan();
        }
        self.poll_proxy();
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
                ui.label("No models found. The zoo is made by scripts/zoo-cpu.sh (see docs/results.md).");
            }
            if let Some((name, _, job)) = &self.proxy_job {
                ui.label(format!("Evaluating {name}:"));
                job.ui(ui);
            }
            if !self.message.is_empty() {
                ui.label(&self.message);
            }
            ui.separator();
            let mut request = None;
            let mut evaluate = None;
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
                                ui.label(RichText::new(format!("standardised on {} ({} images)", st.describe(), st.images)).small())
                                    .on_hover_text("centring and whitening of the embedding, fitted on procedural images only");
                            }
                            if let Some(st) = &m.meta.patch_standardisation {
                                ui.label(RichText::new(format!("patch tokens standardised on {} ({} images)", st.describe(), st.images)).small())
                                    .on_hover_text("centring and whitening of the patch tokens the segmentation and PCA read, fitted on procedural images only");
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
                            m.meta.embedding_dim()
                        ))
                        .small())
                        .wrap_mode(egui::TextWrapMode::Extend));
                        let headline = self.headline(&m.meta.fingerprint);
                        ui.label(RichText::new(if headline.is_empty() { "not evaluated".to_string() } else { headline.join("\n") }).small());
                        ui.vertical(|ui| {
                            if is_current {
                                ui.label("current");
                            } else if ui.add_enabled(!busy, egui::Button::new("Use")).on_hover_text("Make this the app's perception model").clicked() {
                                request = Some(m.path.clone());
                            }
                            let hover = format!(
                                "kNN (k = {}) on Fashion-MNIST's validation split: {} training images as memory, {} others as queries; the test set is not used. Seconds on a worker; the full protocol is `procmem eval knn`.",
                                proxy::K,
                                proxy::MEMORY,
                                proxy::QUERIES
                            );
                            if ui.add_enabled(self.proxy_job.is_none(), egui::Button::new("Evaluate")).on_hover_text(hover).clicked() {
                                evaluate = Some(m.clone());
                            }
                        });
                        ui.end_row();
                    }
                });
            });
            if let Some(model) = request {
                self.outbox.push(super::AppCommand::UseModel(model));
            }
            if let Some(model) = evaluate {
                self.start_proxy(ui.ctx(), &model);
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
    fn poll_hidden(&mut self, _ctx: &egui::Context) {
        self.poll_proxy();
    }
}
