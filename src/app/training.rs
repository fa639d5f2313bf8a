//! The Training panel: configure a DINO run, start / pause / resume / cancel it on a worker
//! thread, and watch its curves, throughput, augmented crops and checkpoints live.

use std::path::PathBuf;
use std::time::Instant;

use egui::{Color32, RichText, TextureHandle, TextureOptions};
use egui_plot::{Legend, Line, Plot, PlotPoints};
use serde::{Deserialize, Serialize};

use super::jobs::Job;
use crate::generate::Process;
use crate::model::VitConfig;
use crate::train::trainer::StepMetrics;
use crate::train::{DataSource, TeacherCentering, TrainConfig, TrainEvent, Trainer};

/// What the panel remembers between sessions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TrainingState {
    pub config: TrainConfig,
    /// Folder for checkpoints and metrics.
    pub out_dir: PathBuf,
}

/// The bundled model's training log, beside it in `models/`.
pub const BUNDLED_METRICS: &str = "models/procmem-kml-mixup.metrics.jsonl";

impl Default for TrainingState {
    fn default() -> Self {
        Self {
            config: TrainConfig::default(),
            out_dir: PathBuf::from("runs/app"),
        }
    }
}

/// A run in progress: the trainer as a [`Job`] streaming its events (a panic in it is caught and
/// shown as the run's failure; a worker that dies is noticed).
struct Run {
    job: Job<(), TrainEvent>,
    started: Instant,
    steps_at_start: u64,
}

/// A checkpoint found in the output folder.
#[derive(Clone, Debug)]
pub struct CheckpointEntry {
    pub path: PathBuf,
    pub step: u64,
    pub provenance: String,
}

pub struct TrainingPanel {
    pub state: TrainingState,
    run: Option<Run>,
    pub metrics: Vec<StepMetrics>,
    crops: Vec<TextureHandle>,
    pub checkpoints: Vec<CheckpointEntry>,
    pub status: String,
    /// Commands for the app, taken once per frame ([`super::Panel::show`]).
    outbox: Vec<super::AppCommand>,
    /// The bundled model's own training curve, shown while no run has reported.
    bundled_metrics: Vec<StepMetrics>,
}

/// The metric lines of a `metrics.jsonl` (unreadable lines are left out).
pub(crate) fn read_metrics(path: &std::path::Path) -> Vec<StepMetrics> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl TrainingPanel {
    pub fn new(state: TrainingState) -> Self {
        let mut p = Self {
            state,
            run: None,
            metrics: Vec::new(),
            crops: Vec::new(),
            checkpoints: Vec::new(),
            status: String::new(),
            outbox: Vec::new(),
            bundled_metrics: read_metrics(&super::knowledge::bundled_dir().join(BUNDLED_METRICS)),
        };
        p.scan_checkpoints();
        p
    }

    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    fn scan_checkpoints(&mut self) {
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.state.out_dir) {
            for e in entries.flatten() {
                let path = e.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("step_")
                    && name.ends_with(".json")
                    && let Ok(text) = std::fs::read_to_string(&path)
                    && let Ok(meta) =
                        serde_json::from_str::<crate::model::weights::CheckpointMeta>(&text)
                {
                    found.push(CheckpointEntry {
                        path: path.clone(),
                        step: meta.step,
                        provenance: format!(
                            "{}{}",
                            meta.provenance.sources.join(", "),
                            if meta.provenance.procedural_only {
                                " (procedural only)"
                            } else {
                                " (REAL images)"
                            }
                        ),
                    });
                }
            }
        }
        found.sort_by_key(|c| c.step);
        self.checkpoints = found;
    }

    /// Starts a new run (or resumes from `resume`) on a worker thread.
    pub fn start(&mut self, ctx: &egui::Context, resume: Option<PathBuf>) {
        if self.run.is_some() {
            return;
        }
        let cfg = self.state.config.clone();
        let out = self.state.out_dir.clone();
        if resume.is_none() {
            self.metrics.clear();
        }
        let steps_at_start = self.metrics.last().map_or(0, |m| m.step);
        let job = Job::spawn(ctx, "training", move |h| {
            let mut trainer = match resume {
                Some(ckpt) => {
                    Trainer::resume_to(&ckpt, &out, Some(cfg.steps)).map_err(|e| e.to_string())?
                }
                None => Trainer::new(cfg, &out).map_err(|e| e.to_string())?,
            };
            trainer
                .run(h.cancel_flag(), |event| h.send(event))
                .map_err(|e| e.to_string())
        });
        self.status = "starting...".into();
        self.run = Some(Run {
            job,
            started: Instant::now(),
            steps_at_start,
        });
    }

    /// Stops the run after the current step; it saves a checkpoint, so it can be resumed.
    pub fn stop(&mut self) {
        if let Some(run) = &self.run {
            run.job.cancel();
            self.status = "stopping after this step...".into();
        }
    }

    pub(crate) fn poll(&mut self, ctx: &egui::Context) {
        let Some(run) = &mut self.run else { return };
        let finished = run.job.poll();
        for event in run.job.take_events() {
            match event {
                TrainEvent::Step(m) => {
                    self.status = format!("step {} of {}", m.step, self.state.config.steps);
                    self.metrics.push(m);
                }
                TrainEvent::Crops(images) => {
                    self.crops = images
                        .iter()
                        .enumerate()
                        .map(|(i, img)| {
                            let ci = egui::ColorImage::from_rgb(
                                [img.width() as usize, img.height() as usize],
                                img.as_raw(),
                            );
                            ctx.load_texture(format!("crop-{i}"), ci, TextureOptions::NEAREST)
                        })
                        .collect();
                }
                TrainEvent::Checkpoint(_) => self.scan_checkpoints(),
            }
        }
        if let Some(r) = finished {
            self.status = match r {
                Ok(()) => format!(
                    "stopped at step {}",
                    self.metrics.last().map_or(0, |m| m.step)
                ),
                Err(e) => format!("failed: {e}"),
            };
            self.run = None;
            self.scan_checkpoints();
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll(&ctx);
        egui::Panel::left("training controls")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui, &ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| self.progress(ui));
    }

    fn controls(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        ui.heading("Training");
        let running = self.run.is_some();
        ui.add_enabled_ui(!running, |ui| {
            let c = &mut self.state.config;
            egui::ComboBox::from_label("Model").selected_text(&c.preset).show_ui(ui, |ui| {
                for p in VitConfig::PRESETS {
                    ui.selectable_value(&mut c.preset, p.to_string(), p);
                }
            });
            let mut process = match &c.data {
                DataSource::Procedural { generator } => Some(generator.process),
                DataSource::Folder { .. } => None,
            };
            egui::ComboBox::from_label("Data").selected_text(process.map_or("image folder", |p| p.label())).show_ui(ui, |ui| {
                for p in Process::ALL {
                    ui.selectable_value(&mut process, Some(p), p.label());
                }
                ui.selectable_value(&mut process, None, "image folder (real images)");
            });
            match (process, &mut c.data) {
                (Some(p), DataSource::Procedural { generator }) => generator.process = p,
                (Some(p), data) => {
                    *data = DataSource::Procedural { generator: crate::generate::GeneratorConfig { process: p, ..Default::default() } }
                }
                (None, DataSource::Folder { path }) => {
                    ui.horizontal(|ui| {
                        ui.label(path.display().to_string());
                        if ui.button("Choose...").clicked()
                            && let Some(p) = rfd::FileDialog::new().pick_folder()
                        {
                            *path = p;
                        }
                    });
                }
                (None, data) => *data = DataSource::Folder { path: PathBuf::from(".") },
            }
            ui.add(egui::Slider::new(&mut c.batch_size, 2..=256).text("batch size"));
            ui.add(egui::Slider::new(&mut c.steps, 10..=100_000).logarithmic(true).text("steps"));
            ui.add(egui::Slider::new(&mut c.head.out_dim, 64..=65_536).logarithmic(true).text("head out_dim"));
            ui.add(egui::Slider::new(&mut c.augment.local_crops, 0..=10).text("local crops"));
            ui.add(egui::Slider::new(&mut c.momentum_teacher, 0.9..=0.9999).text("teacher momentum"));
            ui.horizontal(|ui| {
                ui.label("teacher centring").on_hover_text("DINO's EMA centre, or DINOv2's Sinkhorn-Knopp (balanced targets)");
                ui.selectable_value(&mut c.teacher_centering, TeacherCentering::Centre, "centre (DINO)");
                ui.selectable_value(&mut c.teacher_centering, TeacherCentering::SinkhornKnopp, "Sinkhorn-Knopp (DINOv2)");
            });
            ui.add(egui::Slider::new(&mut c.koleo_weight, 0.0..=1.0).text("KoLeo weight"))
                .on_hover_text("DINOv2's KoLeo regulariser on the student's CLS embeddings (0 = off; DINOv2: 0.1)");
            ui.add(egui::Slider::new(&mut c.ibot_weight, 0.0..=2.0).text("iBOT weight"))
                .on_hover_text("iBOT's masked-patch loss: the student predicts the teacher's view of masked patches, which trains the patch tokens segmentation reads (0 = off; DINOv2: 1.0)");
            ui.horizontal(|ui| {
                let label = ui.label("seed");
                ui.add(egui::DragValue::new(&mut c.seed)).labelled_by(label.id);
            });
            ui.horizontal(|ui| {
                let label = ui.label("output");
                let mut text = self.state.out_dir.display().to_string();
                if ui.text_edit_singleline(&mut text).labelled_by(label.id).changed() {
                    self.state.out_dir = PathBuf::from(text);
                }
            });
        });
        ui.separator();
        ui.horizontal(|ui| {
            if running {
                if ui
                    .button("Pause")
                    .on_hover_text("Stop after this step and save a checkpoint")
                    .clicked()
                {
                    self.stop();
                }
            } else {
                if ui.button("Start").clicked() {
                    self.start(ctx, None);
                }
                let last = self.state.out_dir.join("last.json");
                if ui
                    .add_enabled(last.exists(), egui::Button::new("Resume"))
                    .on_hover_text("Continue from the last checkpoint")
                    .clicked()
                {
                    self.start(ctx, Some(last));
                }
            }
        });
        if !self.status.is_empty() {
            let colour = if self.status.starts_with("failed") {
                Color32::RED
            } else {
                ui.visuals().text_color()
            };
            ui.label(RichText::new(&self.status).color(colour));
        }
        ui.separator();
        ui.label(RichText::new("Checkpoints").strong());
        if self.checkpoints.is_empty() {
            ui.label("none yet");
        }
        let mut chosen = None;
        for c in &self.checkpoints {
            ui.horizontal(|ui| {
                ui.label(format!("step {}: {}", c.step, c.provenance))
                    .on_hover_text(c.path.display().to_string());
                if ui
                    .small_button("Use as app model")
                    .on_hover_text("Load this checkpoint's teacher as the perception model")
                    .clicked()
                {
                    chosen = Some(c.path.clone());
                }
            });
        }
        if let Some(model) = chosen {
            self.outbox.push(super::AppCommand::LoadModel(model));
        }
    }

    fn progress(&mut self, ui: &mut egui::Ui) {
        if let Some(last) = self.metrics.last() {
            let total = self.state.config.steps.max(1);
            let rate = match &self.run {
                Some(run) if last.step > run.steps_at_start => {
                    (last.step - run.steps_at_start) as f64 / run.started.elapsed().as_secs_f64()
                }
                _ => 0.0,
            };
            let eta = if rate > 0.0 {
                format!("{:.0} s", (total.saturating_sub(last.step)) as f64 / rate)
            } else {
                "-".into()
            };
            ui.add(
                egui::ProgressBar::new(last.step as f32 / total as f32)
                    .text(format!("step {} / {}", last.step, total)),
            );
            ui.label(format!(
                "loss {:.4}   lr {:.2e}   teacher entropy {:.3}   {:.1} images/s   ETA {eta}",
                last.loss, last.lr, last.teacher_entropy, last.images_per_second
            ));
        } else if self.bundled_metrics.is_empty() {
            ui.label("Start a run to see its curves.");
        } else {
            ui.label(format!(
                "No run yet: the curves below are the bundled model's own training run ({} steps, {BUNDLED_METRICS}). Start a run to see yours.",
                self.bundled_metrics.len()
            ));
        }
        if !self.crops.is_empty() {
            ui.label("Augmented crops of the current batch's first image (2 global, then local):");
            ui.horizontal_wrapped(|ui| {
                for t in &self.crops {
                    ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(64.0, 64.0)));
                }
            });
        }
        let (metrics, whose) = if self.metrics.is_empty() {
            (&self.bundled_metrics, "bundled model")
        } else {
            (&self.metrics, "this run")
        };
        let series = |f: &dyn Fn(&StepMetrics) -> Option<f64>| -> PlotPoints<'static> {
            metrics
                .iter()
                .filter_map(|m| f(m).map(|v| [m.step as f64, v]))
                .collect()
        };
        let has_koleo = metrics.iter().any(|m| m.koleo.is_some());
        let has_ibot = metrics.iter().any(|m| m.ibot.is_some());
        let plots = 3.0 + f32::from(u8::from(has_koleo) + u8::from(has_ibot));
        let height = (ui.available_height() / plots - 24.0).max(80.0);
        let titled =
            |ui: &mut egui::Ui, title: &str, y: &str, id: &str, points: PlotPoints<'static>| {
                ui.label(RichText::new(title).strong());
                Plot::new(id)
                    .height(height)
                    .x_axis_label("step")
                    .y_axis_label(y)
                    .legend(Legend::default())
                    .show(ui, |p| {
                        p.line(Line::new(whose, points));
                    });
            };
        titled(
            ui,
            "DINO loss (cross-entropy, nats; log K is uniform)",
            "loss",
            "loss",
            series(&|m| Some(m.loss)),
        );
        titled(
            ui,
            "Teacher entropy (nats; near log K = uniform, near 0 = collapse)",
            "entropy",
            "teacher entropy",
            series(&|m| Some(m.teacher_entropy)),
        );
        titled(
            ui,
            "Learning rate (warm-up, then cosine)",
            "learning rate",
            "learning rate",
            series(&|m| Some(m.lr)),
        );
        if has_koleo {
            titled(
                ui,
                "KoLeo term (summed over the two global views, before weighting)",
                "KoLeo",
                "koleo",
                series(&|m| m.koleo),
            );
        }
        if has_ibot {
            titled(
                ui,
                "iBOT masked-patch term (cross-entropy, nats, before weighting)",
                "iBOT",
                "ibot",
                series(&|m| m.ibot),
            );
        }
    }
}

impl super::Panel for TrainingPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Training
    }
    fn title(&self) -> String {
        if self.is_running() {
            "Training (running)"
        } else {
            "Training"
        }
        .into()
    }
    fn needs_knowledge(&self) -> bool {
        false
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        self.ui(ui);
        cx.commands.append(&mut self.outbox);
    }
    /// A run keeps reporting while its tab is hidden.
    fn poll_hidden(&mut self, ctx: &egui::Context) {
        self.poll(ctx);
    }
}
