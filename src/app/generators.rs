//! The Generators panel: live preview grids of every procedural process, with every parameter
//! at hand, a decomposition view of any sample, and export of what is shown.

use std::time::Duration;

use egui::{Color32, RichText, TextureHandle, TextureOptions};
use serde::{Deserialize, Serialize};

use super::worker::{GeneratorWorker, ProgramInfo, Reply, Request};
use crate::generate::gpu::AdapterSummary;
use crate::generate::{GeneratorConfig, Process, Recipe, Sample};

/// What the panel remembers between sessions (no handles, no images).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GeneratorsState {
    pub config: GeneratorConfig,
    pub seed: u64,
    /// Samples per grid row.
    pub count: u64,
    /// Show one row per process instead of the selected process only.
    pub all_processes: bool,
    /// Advance the shader time continuously.
    pub animate: bool,
    /// Time units per second while animating.
    pub animation_speed: f32,
    /// Displayed thumbnail side in points.
    pub thumbnail: f32,
    /// The program whose parameters are being edited.
    pub selected_program: Option<String>,
}

impl Default for GeneratorsState {
    fn default() -> Self {
        Self {
            config: GeneratorConfig::default(),
            seed: 0,
            count: 12,
            all_processes: false,
            animate: false,
            animation_speed: 0.5,
            thumbnail: 96.0,
            selected_program: None,
        }
    }
}

/// Status of the worker, as the user sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerStatus {
    Starting,
    Ready,
    Unavailable(String),
}

struct Shown {
    sample: Sample,
    texture: TextureHandle,
    row: usize,
}

/// The panel with its transient state.
pub struct GeneratorsPanel {
    pub state: GeneratorsState,
    worker: GeneratorWorker,
    pub status: WorkerStatus,
    adapter: Option<AdapterSummary>,
    programs: Vec<ProgramInfo>,
    rejected: Vec<(String, String)>,
    /// The request the grid should show (config, seed, count, all) and its id.
    requested: Option<(GeneratorsState, u64)>,
    next_id: u64,
    /// Id of the preview on screen, if any.
    shown_id: Option<u64>,
    shown: Vec<Shown>,
    row_processes: Vec<Process>,
    /// Index into `shown` of the sample whose decomposition is open.
    pub selected: Option<usize>,
    part_textures: Vec<(String, TextureHandle)>,
    last_render: Option<Duration>,
    error: Option<String>,
    export: Option<(u64, u64)>,
    export_message: Option<String>,
}

fn to_color_image(img: &image::RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

impl GeneratorsPanel {
    pub fn new(ctx: &egui::Context, state: GeneratorsState) -> Self {
        let repaint = ctx.clone();
        Self {
            state,
            worker: GeneratorWorker::spawn(move || repaint.request_repaint()),
            status: WorkerStatus::Starting,
            adapter: None,
            programs: Vec::new(),
            rejected: Vec::new(),
            requested: None,
            next_id: 0,
            shown_id: None,
            shown: Vec::new(),
            row_processes: Vec::new(),
            selected: None,
            part_textures: Vec::new(),
            last_render: None,
            error: None,
            export: None,
            export_message: None,
        }
    }

    /// True when the grid shows what the controls ask for.
    pub fn is_up_to_date(&self) -> bool {
        matches!(&self.requested, Some((_, id)) if Some(*id) == self.shown_id)
            && self.status == WorkerStatus::Ready
    }

    /// The samples on screen, in grid order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.shown.iter().map(|s| &s.sample)
    }

    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.adapter.as_ref()
    }

    fn configs(&self) -> (Vec<GeneratorConfig>, Vec<Process>) {
        let processes: Vec<Process> = if self.state.all_processes {
            Process::ALL.to_vec()
        } else {
            vec![self.state.config.process]
        };
        let configs = processes
            .iter()
            .map(|p| GeneratorConfig {
                process: *p,
                ..self.state.config.clone()
            })
            .collect();
        (configs, processes)
    }

    fn poll_worker(&mut self, ctx: &egui::Context) {
        while let Some(reply) = self.worker.try_recv() {
            match reply {
                Reply::Ready {
                    adapter,
                    programs,
                    rejected,
                } => {
                    self.status = WorkerStatus::Ready;
                    self.adapter = Some(adapter);
                    self.programs = programs;
                    self.rejected = rejected;
                    // Force a fresh preview with the (possibly new) programs.
                    self.requested = None;
                }
                Reply::Preview { id, rows, elapsed } => {
                    if matches!(&self.requested, Some((_, want)) if *want == id) {
                        self.shown.clear();
                        for (r, row) in rows.into_iter().enumerate() {
                            for sample in row {
                                let texture = ctx.load_texture(
                                    format!("gen-{id}-{r}-{}", sample.index),
                                    to_color_image(&sample.image),
                                    TextureOptions::NEAREST,
                                );
                                self.shown.push(Shown {
                                    sample,
                                    texture,
                                    row: r,
                                });
                            }
                        }
                        self.shown_id = Some(id);
                        self.last_render = Some(elapsed);
                        self.error = None;
                        if let Some(i) = self.selected {
                            if i < self.shown.len() {
                                self.load_parts(ctx, i);
                            } else {
                                self.selected = None;
                            }
                        }
                    }
                }
                Reply::Failed { id, message } => {
                    if id.is_none()
                        || matches!(&self.requested, Some((_, want)) if Some(*want) == id)
                    {
                        self.error = Some(message);
                        if let Some(id) = id {
                            self.shown_id = Some(id);
                        }
                    }
                }
                Reply::ExportProgress { done, total } => self.export = Some((done, total)),
                Reply::ExportDone(result) => {
                    self.export = None;
                    self.export_message = Some(match result {
                        Ok(dir) => format!("Exported to {}", dir.display()),
                        Err(e) => format!("Export failed: {e}"),
                    });
                }
                Reply::Fatal(message) => self.status = WorkerStatus::Unavailable(message),
            }
        }
    }

    fn request_if_changed(&mut self) {
        if self.status != WorkerStatus::Ready {
            return;
        }
        if matches!(&self.requested, Some((s, _)) if *s == self.state) {
            return;
        }
        self.next_id += 1;
        let (configs, processes) = self.configs();
        self.row_processes = processes;
        self.worker.send(Request::Preview {
            id: self.next_id,
            configs,
            seed: self.state.seed,
            count: self.state.count,
        });
        self.requested = Some((self.state.clone(), self.next_id));
    }

    fn load_parts(&mut self, ctx: &egui::Context, index: usize) {
        self.part_textures = self.shown[index]
            .sample
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.label.clone(),
                    ctx.load_texture(
                        format!("part-{i}"),
                        to_color_image(&p.image),
                        TextureOptions::NEAREST,
                    ),
                )
            })
            .collect();
    }

    /// Shows the panel; call every frame.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_worker(&ctx);
        if self.state.animate {
            let dt = ui.input(|i| i.stable_dt).min(0.1);
            self.state.config.time_shift =
                (self.state.config.time_shift + dt * self.state.animation_speed) % 1000.0;
            ctx.request_repaint();
        }
        self.request_if_changed();

        egui::Panel::left("generator controls")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
            });
        if self.selected.is_some() {
            egui::Panel::right("decomposition")
                .resizable(true)
                .default_size(320.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| self.decomposition(ui));
                });
        }
        egui::CentralPanel::default().show(ui, |ui| self.grid(ui));
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("Generators");
        match &self.status {
            WorkerStatus::Starting => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Opening the GPU adapter...");
                });
            }
            WorkerStatus::Unavailable(msg) => {
                ui.colored_label(Color32::RED, msg);
            }
            WorkerStatus::Ready => {
                if let Some(a) = &self.adapter {
                    ui.label(RichText::new(format!("Adapter: {a}")).small().weak());
                }
            }
        }
        ui.separator();
        let s = &mut self.state;
        ui.checkbox(&mut s.all_processes, "All processes (one row each)");
        ui.add_enabled_ui(!s.all_processes, |ui| {
            egui::ComboBox::from_label("Process")
                .selected_text(s.config.process.label())
                .show_ui(ui, |ui| {
                    for p in Process::ALL {
                        ui.selectable_value(&mut s.config.process, p, p.label());
                    }
                });
        });
        ui.horizontal(|ui| {
            let label = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut s.seed))
                .labelled_by(label.id);
            if ui
                .button("Re-roll")
                .on_hover_text("Draw a new random seed")
                .clicked()
            {
                s.seed = crate::rng::mix64(s.seed ^ 0xa5a5) % 1_000_000;
            }
        });
        ui.add(egui::Slider::new(&mut s.count, 1..=48).text("Samples"));
        ui.add(egui::Slider::new(&mut s.config.size, 16..=256).text("Size (px)"));
        ui.add(egui::Slider::new(&mut s.thumbnail, 48.0..=256.0).text("Thumbnail"));
        ui.horizontal(|ui| {
            ui.checkbox(&mut s.animate, "Animate time");
            ui.add(
                egui::DragValue::new(&mut s.animation_speed)
                    .speed(0.05)
                    .range(0.0..=5.0)
                    .suffix(" /s"),
            );
        });
        if s.config.time_shift != 0.0 {
            ui.horizontal(|ui| {
                ui.label(format!("time shift {:.2}", s.config.time_shift));
                if ui.small_button("reset").clicked() {
                    s.config.time_shift = 0.0;
                }
            });
        }

        let process = s.config.process;
        let uses_shaders =
            s.all_processes || !matches!(process, Process::DeadLeaves | Process::SpectralNoise);
        if uses_shaders {
            egui::CollapsingHeader::new("Shader sampling")
                .default_open(true)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.label("Time in");
                        ui.add(
                            egui::DragValue::new(&mut s.config.time_min)
                                .speed(0.05)
                                .range(0.0..=s.config.time_max),
                        );
                        ui.add(
                            egui::DragValue::new(&mut s.config.time_max)
                                .speed(0.05)
                                .range(s.config.time_min..=100.0),
                        );
                    });
                    ui.horizontal(|ui| {
                        ui.label("Synthesized programs");
                        ui.add(egui::DragValue::new(&mut s.config.synthesized).range(0..=256));
                    });
                    ui.horizontal(|ui| {
                        ui.label("Synthesis seed");
                        ui.add(egui::DragValue::new(&mut s.config.synth_seed));
                    });
                });
        }
        if s.all_processes || process == Process::ShadersMixup {
            egui::CollapsingHeader::new("Shaders Mixup")
                .default_open(true)
                .show(ui, |ui| {
                    ui.add(
                        egui::Slider::new(&mut s.config.mixup_count, 1..=16).text("images mixed"),
                    );
                    ui.add(
                        egui::Slider::new(&mut s.config.mixup_alpha, 0.05..=10.0)
                            .logarithmic(true)
                            .text("Dirichlet alpha"),
                    );
                });
        }
        if s.all_processes || matches!(process, Process::ShadersKml | Process::KmlMixup) {
            egui::CollapsingHeader::new("K-means Leaves").default_open(true).show(ui, |ui| {
                ui.horizontal(|ui| {
                    let label = ui.label("k");
                    ui.add(egui::DragValue::new(&mut s.config.kml.k).range(1..=16))
                        .labelled_by(label.id)
                        .on_hover_text("k-means clusters (paper: 2)");
                });
                ui.add(egui::Slider::new(&mut s.config.kml.iterations, 1..=20).text("iterations"));
                ui.add(egui::Slider::new(&mut s.config.kml.blur, 1..=15).text("blur"));
                ui.add(egui::Slider::new(&mut s.config.kml.resolution, 16..=512).text("clustering res."));
                let mut text = s.config.kml.assignment.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
                ui.horizontal(|ui| {
                    ui.label("cluster -> texture");
                    if ui
                        .text_edit_singleline(&mut text)
                        .on_hover_text("e.g. 0,1,0,1: texture per cluster; empty = one texture per cluster")
                        .changed()
                    {
                        s.config.kml.assignment = text.split(',').filter_map(|t| t.trim().parse().ok()).collect();
                    }
                });
                if process == Process::KmlMixup || s.all_processes {
                    ui.add(egui::Slider::new(&mut s.config.kml_mixup_count, 1..=8).text("KML images averaged"));
                }
                if ui.small_button("Paper defaults").clicked() {
                    s.config.kml = Default::default();
                    s.config.kml_mixup_count = 2;
                }
            });
        }

        egui::CollapsingHeader::new(format!("Programs ({})", self.programs.len()))
            .default_open(false)
            .show(ui, |ui| {
                ui.label(
                    RichText::new(
                        "Untick to leave a program out of the pool; select one to tune it.",
                    )
                    .small(),
                );
                for p in &self.programs {
                    let is_baseline = p.family == "baseline";
                    ui.horizontal(|ui| {
                        if !is_baseline {
                            let mut enabled = !s.config.disabled_programs.contains(&p.id);
                            if ui.checkbox(&mut enabled, "").changed() {
                                if enabled {
                                    s.config.disabled_programs.retain(|d| d != &p.id);
                                } else {
                                    s.config.disabled_programs.push(p.id.clone());
                                }
                            }
                        }
                        let selected = s.selected_program.as_deref() == Some(&p.id);
                        if ui
                            .selectable_label(selected, format!("{} - {}", p.name, p.family))
                            .clicked()
                        {
                            s.selected_program = if selected { None } else { Some(p.id.clone()) };
                        }
                    });
                    if s.selected_program.as_deref() == Some(&p.id) {
                        ui.indent(&p.id, |ui| {
                            if p.params.is_empty() {
                                ui.label("no parameters");
                            }
                            let values = s
                                .config
                                .program_params
                                .entry(p.id.clone())
                                .or_insert_with(|| p.params.iter().map(|q| q.default).collect());
                            values.resize(p.params.len(), 0.0);
                            for (v, spec) in values.iter_mut().zip(&p.params) {
                                ui.add(egui::Slider::new(v, spec.min..=spec.max).text(&spec.name))
                                    .on_hover_text(&spec.description);
                            }
                            if ui.small_button("Defaults").clicked() {
                                s.config.program_params.remove(&p.id);
                            }
                        });
                    }
                }
                if ui
                    .button("Reload programs")
                    .on_hover_text("Pick up new or edited .wgsl files in shaders/programs")
                    .clicked()
                {
                    self.worker.send(Request::ReloadLibrary);
                }
            });
        if !self.rejected.is_empty() {
            egui::CollapsingHeader::new(
                RichText::new(format!("{} program(s) skipped", self.rejected.len()))
                    .color(Color32::ORANGE),
            )
            .default_open(true)
            .show(ui, |ui| {
                for (id, msg) in &self.rejected {
                    ui.label(RichText::new(id).strong());
                    ui.label(RichText::new(msg).monospace().small());
                }
            });
        }

        ui.separator();
        match self.export {
            Some((done, total)) => {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .text(format!("exporting {done}/{total}")),
                );
                if ui.button("Cancel export").clicked() {
                    self.worker.cancel_export();
                }
            }
            None => {
                if ui
                    .button("Export visible samples...")
                    .on_hover_text("PNGs and a manifest that regenerates them")
                    .clicked()
                    && let Some(dir) = rfd::FileDialog::new()
                        .set_title("Export samples to folder")
                        .pick_folder()
                {
                    let (configs, _) = self.configs();
                    for config in configs {
                        let sub = if self.state.all_processes {
                            dir.join(config.process.cli_name())
                        } else {
                            dir.clone()
                        };
                        self.worker.send(Request::Export {
                            config,
                            seed: self.state.seed,
                            count: self.state.count,
                            dir: sub,
                        });
                    }
                }
            }
        }
        if let Some(m) = &self.export_message {
            ui.label(m);
        }
    }

    fn grid(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if !self.is_up_to_date() && self.status == WorkerStatus::Ready {
                ui.spinner();
                ui.label("rendering...");
            } else if let Some(t) = self.last_render {
                ui.label(format!(
                    "{} samples rendered in {:.0} ms",
                    self.shown.len(),
                    t.as_secs_f64() * 1e3
                ));
            }
        });
        if let Some(e) = &self.error {
            ui.colored_label(Color32::RED, e);
        }
        let thumb = egui::vec2(self.state.thumbnail, self.state.thumbnail);
        let mut clicked = None;
        egui::ScrollArea::both().show(ui, |ui| {
            let mut row_start = 0;
            while row_start < self.shown.len() {
                let row = self.shown[row_start].row;
                let row_end = self.shown[row_start..]
                    .iter()
                    .position(|s| s.row != row)
                    .map_or(self.shown.len(), |p| row_start + p);
                if let Some(p) = self.row_processes.get(row) {
                    ui.label(RichText::new(p.label()).strong());
                }
                ui.horizontal_wrapped(|ui| {
                    for i in row_start..row_end {
                        let s = &self.shown[i];
                        let selected = self.selected == Some(i);
                        let image = egui::Image::new(&s.texture)
                            .fit_to_exact_size(thumb)
                            .sense(egui::Sense::click());
                        let response = ui.add(image).on_hover_text(s.sample.recipe.summary());
                        let response = response.on_hover_cursor(egui::CursorIcon::PointingHand);
                        if selected {
                            ui.painter().rect_stroke(
                                response.rect,
                                2.0,
                                egui::Stroke::new(3.0, Color32::YELLOW),
                                egui::StrokeKind::Outside,
                            );
                        }
                        if response.clicked() {
                            clicked = Some(i);
                        }
                        // An accessible handle for tests and screen readers.
                        response.widget_info(|| {
                            egui::WidgetInfo::labeled(
                                egui::Role::Button,
                                true,
                                format!("sample {}", i),
                            )
                        });
                    }
                });
                row_start = row_end;
            }
        });
        if let Some(i) = clicked {
            self.selected = Some(i);
            self.load_parts(ui.ctx(), i);
        }
    }

    fn decomposition(&mut self, ui: &mut egui::Ui) {
        let Some(i) = self.selected else { return };
        let Some(shown) = self.shown.get(i) else {
            self.selected = None;
            return;
        };
        ui.horizontal(|ui| {
            ui.heading(format!("Sample {}", shown.sample.index));
            if ui.button("Close").clicked() {
                self.selected = None;
            }
        });
        ui.label(describe(&shown.sample.recipe));
        ui.add(egui::Image::new(&shown.texture).fit_to_exact_size(egui::vec2(192.0, 192.0)));
        ui.separator();
        ui.label(RichText::new("Decomposition").strong());
        if self.part_textures.is_empty() {
            ui.label("A single program render: nothing to decompose.");
        }
        for (label, tex) in &self.part_textures {
            ui.label(label);
            ui.add(egui::Image::new(tex).fit_to_exact_size(egui::vec2(128.0, 128.0)));
        }
        egui::CollapsingHeader::new("Recipe (JSON)").show(ui, |ui| {
            let json = serde_json::to_string_pretty(&shown.sample.recipe).unwrap_or_default();
            ui.label(RichText::new(json).monospace().small());
        });
    }
}

fn describe(recipe: &Recipe) -> String {
    match recipe {
        Recipe::Program { program, time } => format!("Program {program} at t = {time:.3}"),
        Recipe::Generator { generator, seed } => format!("{generator} with seed {seed}"),
        Recipe::Mixup { weights, .. } => {
            format!(
                "Convex mixup of {} images, weights {}",
                weights.len(),
                weights
                    .iter()
                    .map(|w| format!("{w:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        Recipe::Kml { textures, .. } => format!(
            "K-means Leaves: s1's clusters blend {} textures",
            textures.len()
        ),
        Recipe::KmlMixup { components } => format!("Plain mean of {} KML images", components.len()),
    }
}

impl super::Panel for GeneratorsPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Generators
    }
    fn title(&self) -> String {
        "Generators".into()
    }
    fn needs_knowledge(&self) -> bool {
        false
    }
    fn show(&mut self, ui: &mut egui::Ui, _cx: &mut super::PanelContext<'_>) {
        self.ui(ui);
    }
}
