//! The Segmentation panel: paint a mask on a prompt image and see the query's in-context mask
//! follow each stroke; PCA overlays (one basis shared by both images), the first-component
//! foreground mask, K-means clusters and kNN segmentation from the painted patches.
//!
//! Heavy work — patch features, attention, PCA, K-means for every k — runs on a worker
//! ([`Analysis`]) once per image pair and model. A stroke then only re-averages mask blocks with
//! the fixed attention (query patches × prompt patches × block², well under a millisecond at the
//! default grid) and re-votes the precomputed kNN neighbours, so the query mask updates while
//! painting. Mask textures are rebuilt only when a mask changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::{Color32, RichText, TextureHandle, TextureOptions};
use serde::{Deserialize, Serialize};

use super::jobs::Job;
use super::knowledge::{IMAGE_EXTENSIONS, Knowledge, bundled_dir, dropped_files};
use crate::dense::PatchGrid;
use crate::dense::features::{extract, patch_size};
use crate::dense::pca::{PcaColours, shared_overlays};
use crate::dense::segment::{
    Attention, Neighbours, SoftMask, fold_blocks, kmeans, mask_blocks, soft_iou,
};
use crate::embed::FeatureSource;
use crate::palette::class_rgb;

/// The demo pair shipped in `assets/demo/segmentation/`.
pub const DEMO_PROMPT: &str = "assets/demo/segmentation/prompt.png";
pub const DEMO_QUERY: &str = "assets/demo/segmentation/query.png";

/// What is drawn over the images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overlay {
    #[default]
    None,
    Pca,
    Foreground,
    KMeans,
    /// kNN segmentation of the query from the prompt's painted patches.
    Knn,
}

/// Persisted settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SegmentationState {
    /// Brush radius in image pixels.
    pub brush: f32,
    pub overlay: Overlay,
    pub opacity: f32,
    pub threshold: f32,
    pub k: usize,
    /// Patches per side (the image is resized to grid × patch pixels).
    pub grid: usize,
    /// Multiplier of the attention logits <z_prompt, z_query> / C. Default 1, the paper's
    /// scale, which is the model's fitted attention scale when it has one (the bundled model's);
    /// a model without one attends nearly uniformly at 1 (try 10). Persisted under a new name
    /// since session 18, so a saved ×10 (the old default) does not stack on a fitted scale.
    pub attention_sharpness: f32,
}

impl Default for SegmentationState {
    fn default() -> Self {
        Self {
            brush: 8.0,
            overlay: Overlay::None,
            opacity: 0.6,
            threshold: 0.5,
            k: 4,
            grid: crate::dense::DEFAULT_GRID,
            attention_sharpness: 1.0,
        }
    }
}

/// An image in the panel, with its true class map when one lies beside it (`X.mask.png`).
pub struct Picture {
    pub name: String,
    pub image: image::RgbImage,
    pub truth: Option<Vec<u32>>,
    texture: Option<TextureHandle>,
}

impl Picture {
    pub fn new(name: String, image: image::RgbImage, truth: Option<Vec<u32>>) -> Self {
        Self {
            name,
            image,
            truth,
            texture: None,
        }
    }

    /// Opens an image file and its `.mask.png` sibling if present and the right size.
    pub fn open(path: &Path) -> Result<Self, String> {
        let image = crate::imageio::load_rgb(path).map_err(|e| e.to_string())?;
        let truth = truth_beside(path, &image);
        Ok(Self::new(file_name(path), image, truth))
    }

    fn from_bytes(name: String, bytes: &[u8]) -> Result<Self, String> {
        let image =
            crate::imageio::decode_rgb(bytes, Path::new(&name)).map_err(|e| e.to_string())?;
        Ok(Self::new(name, image, None))
    }

    fn size(&self) -> (usize, usize) {
        (self.image.width() as usize, self.image.height() as usize)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("image")
        .to_string()
}

fn truth_beside(path: &Path, image: &image::RgbImage) -> Option<Vec<u32>> {
    let stem = path.file_stem()?.to_str()?;
    let mask = crate::imageio::load(&path.with_file_name(format!("{stem}.mask.png")))
        .ok()?
        .to_luma8();
    (mask.dimensions() == image.dimensions())
        .then(|| mask.as_raw().iter().map(|&v| v as u32).collect())
}

/// Everything computed from an image pair and a model, on a worker.
pub struct Analysis {
    /// [`FeatureSource::dense_fingerprint`] of the features it was computed from.
    pub fingerprint: String,
    pub grid: usize,
    pub block: usize,
    pub prompt: PatchGrid,
    pub query: PatchGrid,
    pub attention: Attention,
    /// Shared-basis PCA colours: [prompt, query].
    pub pca: Vec<PcaColours>,
    /// K-means labels for k = 2..=8: [k − 2][prompt, query].
    pub kmeans: Vec<[Vec<u32>; 2]>,
    /// Each query patch's 5 most similar prompt patches: the kNN vote with the painted labels.
    pub neighbours: Neighbours,
}

impl Analysis {
    pub fn compute(
        source: &FeatureSource,
        prompt: &image::RgbImage,
        query: &image::RgbImage,
        grid: usize,
        sharpness: f32,
    ) -> crate::Result<Self> {
        let grids = extract(source, &[prompt, query], grid, |_| {})?;
        let [p, q]: [PatchGrid; 2] = grids
            .try_into()
            .map_err(|_| crate::Error::Model("expected two feature grids".into()))?;
        let attention = Attention::with_sharpness(&[&p], &q, sharpness)?;
        let (pca, _) = shared_overlays(&[&p, &q])?;
        let kmeans = (2..=8)
            .map(|k| Ok([kmeans(&p, k, 0)?, kmeans(&q, k, 0)?]))
            .collect::<crate::Result<_>>()?;
        let neighbours = Neighbours::new(
            &p.data,
            &q.data,
            p.dim,
            5,
            crate::dense::segment::PATCH_VOTE_TEMPERATURE,
        )?;
        Ok(Self {
            fingerprint: source.dense_fingerprint(),
            grid,
            block: patch_size(source),
            prompt: p,
            query: q,
            attention,
            pca,
            kmeans,
            neighbours,
        })
    }
}

pub struct SegmentationPanel {
    pub state: SegmentationState,
    pub prompt: Option<Picture>,
    pub query: Option<Picture>,
    /// The painted prompt mask at the prompt's pixel size, values in [0, 1].
    pub mask: Option<SoftMask>,
    undo: Vec<SoftMask>,
    pub eraser: bool,
    pub analysis: Option<Analysis>,
    job: Option<Job<Analysis>>,
    /// The query's predicted soft mask (query pixel size), after the last stroke.
    pub predicted: Option<SoftMask>,
    /// Per-patch kNN labels of the query (1 = painted), when the prompt has painted patches.
    pub knn: Option<Vec<u32>>,
    overlay_textures: [Option<TextureHandle>; 2],
    overlay_dirty: bool,
    /// The painted mask and the predicted mask as textures, rebuilt only after they change.
    mask_textures: [Option<TextureHandle>; 3],
    masks_dirty: bool,
    pub message: String,
    started: bool,
}

impl SegmentationPanel {
    pub fn new(state: SegmentationState) -> Self {
        Self {
            state,
            prompt: None,
            query: None,
            mask: None,
            undo: Vec::new(),
            eraser: false,
            analysis: None,
            job: None,
            predicted: None,
            knn: None,
            overlay_textures: [None, None],
            overlay_dirty: true,
            mask_textures: [None, None, None],
            masks_dirty: true,
            message: String::new(),
            started: false,
        }
    }

    pub fn set_prompt(&mut self, picture: Picture) {
        self.mask = Some(SoftMask::zeros(
            picture.image.width() as usize,
            picture.image.height() as usize,
        ));
        self.undo.clear();
        self.prompt = Some(picture);
        self.invalidate();
    }

    pub fn set_query(&mut self, picture: Picture) {
        self.query = Some(picture);
        self.invalidate();
    }

    fn invalidate(&mut self) {
        self.analysis = None;
        self.predicted = None;
        self.knn = None;
        self.overlay_dirty = true;
        self.masks_dirty = true;
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Starts the analysis when both images are there and it is missing or stale.
    fn ensure_analysis(&mut self, ctx: &egui::Context, source: &Arc<FeatureSource>) {
        let stale = self.analysis.as_ref().is_none_or(|a| {
            a.fingerprint != source.dense_fingerprint() || a.grid != self.state.grid
        });
        if !stale || self.job.is_some() {
            return;
        }
        let (Some(p), Some(q)) = (&self.prompt, &self.query) else {
            return;
        };
        let (p, q, source, grid, sharpness) = (
            p.image.clone(),
            q.image.clone(),
            source.clone(),
            self.state.grid,
            self.state.attention_sharpness,
        );
        self.job = Some(Job::spawn(ctx, "patch features", move |h| {
            h.progress(0.1, "features, attention, PCA, K-means");
            Analysis::compute(&source, &p, &q, grid, sharpness).map_err(|e| e.to_string())
        }));
    }

    fn poll(&mut self) {
        if let Some(job) = &mut self.job
            && let Some(r) = job.poll()
        {
            self.job = None;
            match r {
                Ok(a) => {
                    self.analysis = Some(a);
                    self.message.clear();
                    self.update_prediction();
                }
                Err(e) => self.message = format!("could not analyse the images: {e}"),
            }
        }
    }

    /// Re-propagates the painted mask through the attention (cheap), and the kNN labels.
    pub(crate) fn update_prediction(&mut self) {
        self.overlay_dirty = true;
        self.masks_dirty = true;
        let (Some(a), Some(mask), Some(q)) = (&self.analysis, &self.mask, &self.query) else {
            return;
        };
        let b = a.block;
        let small = mask.resize(a.prompt.cols * b, a.prompt.rows * b);
        let Ok(blocks) = mask_blocks(&small, a.prompt.rows, a.prompt.cols, b) else {
            return;
        };
        let Ok(out) = a.attention.propagate(&blocks, b * b) else {
            return;
        };
        let (w, h) = q.size();
        self.predicted = Some(fold_blocks(&out, a.query.rows, a.query.cols, b).resize(w, h));
        // kNN: the prompt's patches labelled painted (majority of the block ≥ ½) or not.
        let labels: Vec<u32> = blocks
            .chunks_exact(b * b)
            .map(|blk| u32::from(blk.iter().sum::<f32>() / (b * b) as f32 >= 0.5))
            .collect();
        self.knn = labels
            .contains(&1)
            .then(|| a.neighbours.segment(&labels, 2));
    }

    /// Paints a disc at image pixel (x, y).
    pub(crate) fn paint(&mut self, x: f32, y: f32) {
        self.masks_dirty = true;
        let Some(mask) = &mut self.mask else { return };
        let r = self.state.brush.max(0.5);
        let value = if self.eraser { 0.0 } else { 1.0 };
        let (x0, x1) = (
            (x - r).floor().max(0.0) as usize,
            ((x + r).ceil() as usize).min(mask.width),
        );
        let (y0, y1) = (
            (y - r).floor().max(0.0) as usize,
            ((y + r).ceil() as usize).min(mask.height),
        );
        for py in y0..y1 {
            for px in x0..x1 {
                if (px as f32 + 0.5 - x).powi(2) + (py as f32 + 0.5 - y).powi(2) <= r * r {
                    mask.values[py * mask.width + px] = value;
                }
            }
        }
    }

    pub fn undo(&mut self) {
        if let Some(m) = self.undo.pop() {
            self.mask = Some(m);
            self.update_prediction();
        }
    }

    pub fn clear(&mut self) {
        if let Some(m) = &self.mask {
            self.undo.push(m.clone());
            self.mask = Some(SoftMask::zeros(m.width, m.height));
            self.update_prediction();
        }
    }

    /// Replaces the painted mask by the prompt's true mask of `class` (when it has one).
    pub(crate) fn use_true_mask(&mut self, class: u32) {
        let Some(p) = &self.prompt else { return };
        let Some(t) = &p.truth else { return };
        let (w, h) = p.size();
        if let Some(m) = &self.mask {
            self.undo.push(m.clone());
        }
        self.mask = Some(SoftMask::of_class(t, w, h, class));
        self.update_prediction();
    }

    /// Soft IoU of the prediction against the query's true class that overlaps it most.
    pub fn iou(&self) -> Option<(u32, f64)> {
        let (pred, q) = (self.predicted.as_ref()?, self.query.as_ref()?);
        let truth = q.truth.as_ref()?;
        let mut best: Option<(u32, f64)> = None;
        let mut classes: Vec<u32> = truth.iter().copied().filter(|&c| c != 0).collect();
        classes.sort_unstable();
        classes.dedup();
        for c in classes {
            let gt = SoftMask::of_class(truth, pred.width, pred.height, c);
            if let Some(iou) = soft_iou(&pred.values, &gt.values)
                && best.is_none_or(|(_, b)| iou > b)
            {
                best = Some((c, iou));
            }
        }
        best
    }

    /// Loads the bundled demo pair (once, at first show).
    fn load_demo(&mut self) {
        let dir = bundled_dir();
        match (
            Picture::open(&dir.join(DEMO_PROMPT)),
            Picture::open(&dir.join(DEMO_QUERY)),
        ) {
            (Ok(p), Ok(q)) => {
                self.set_prompt(p);
                self.set_query(q);
            }
            (Err(e), _) | (_, Err(e)) => self.message = format!("demo images missing: {e}"),
        }
    }

    fn overlay_image(&self, which: usize) -> Option<image::RgbaImage> {
        let a = self.analysis.as_ref()?;
        let (rows, cols) = (a.prompt.rows, a.prompt.cols);
        let alpha = (self.state.opacity.clamp(0.0, 1.0) * 255.0) as u8;
        let cells: Vec<[u8; 4]> = match self.state.overlay {
            Overlay::None => return None,
            Overlay::Pca => a.pca[which]
                .rgb
                .iter()
                .map(|c| [c[0], c[1], c[2], 1.0].map(|v| (v * 255.0) as u8))
                .map(|mut c| {
                    c[3] = alpha;
                    c
                })
                .collect(),
            Overlay::Foreground => a.pca[which]
                .foreground(self.state.threshold)
                .iter()
                .map(|&f| {
                    if f {
                        [255, 255, 255, alpha]
                    } else {
                        [0, 0, 0, alpha]
                    }
                })
                .collect(),
            Overlay::KMeans => {
                let k = self.state.k.clamp(2, 8);
                a.kmeans[k - 2][which]
                    .iter()
                    .map(|&l| {
                        let c = class_rgb(l);
                        [c[0], c[1], c[2], alpha]
                    })
                    .collect()
            }
            Overlay::Knn => {
                if which == 0 {
                    return None;
                }
                self.knn
                    .as_ref()?
                    .iter()
                    .map(|&l| {
                        if l == 1 {
                            [40, 220, 90, alpha]
                        } else {
                            [0, 0, 0, 0]
                        }
                    })
                    .collect()
            }
        };
        // Bilinear-looking upsampling is left to the texture sampler (LINEAR).
        let mut img = image::RgbaImage::new(cols as u32, rows as u32);
        for (i, c) in cells.iter().enumerate() {
            img.put_pixel((i % cols) as u32, (i / cols) as u32, image::Rgba(*c));
        }
        Some(img)
    }

    fn refresh_overlays(&mut self, ctx: &egui::Context) {
        if !self.overlay_dirty {
            return;
        }
        self.overlay_dirty = false;
        for which in 0..2 {
            self.overlay_textures[which] = self.overlay_image(which).map(|img| {
                let color = egui::ColorImage::from_rgba_unmultiplied(
                    [img.width() as usize, img.height() as usize],
                    img.as_raw(),
                );
                ctx.load_texture(
                    format!("segmentation overlay {which}"),
                    color,
                    TextureOptions::LINEAR,
                )
            });
        }
    }

    /// Whether an overlay is currently drawn over image `which` (0 prompt, 1 query).
    pub fn overlay_shown(&self, which: usize) -> bool {
        self.overlay_textures[which].is_some()
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, k: &Knowledge) {
        let ctx = ui.ctx().clone();
        if !self.started {
            self.started = true;
            if self.prompt.is_none() && self.query.is_none() {
                self.load_demo();
            }
        }
        for (i, (name, bytes)) in dropped_files(&ctx).into_iter().enumerate() {
            match Picture::from_bytes(name, &bytes) {
                // Two files: prompt then query; one file: the query (the prompt keeps its mask).
                Ok(p) if i == 0 && self.query.is_some() && self.prompt.is_none() => {
                    self.set_prompt(p)
                }
                Ok(p) => self.set_query(p),
                Err(e) => self.message = e,
            }
        }
        self.poll();
        self.ensure_analysis(&ctx, &k.perception().source);
        self.refresh_overlays(&ctx);
        self.refresh_masks(&ctx);

        egui::Panel::top("segmentation controls").show(ui, |ui| self.controls(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(job) = &self.job {
                job.ui(ui);
            }
            if !self.message.is_empty() {
                ui.colored_label(Color32::LIGHT_RED, &self.message);
            }
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.strong("Prompt — paint the object");
                    self.prompt_view(ui);
                });
                ui.add_space(16.0);
                ui.vertical(|ui| {
                    ui.strong("Query — predicted mask");
                    self.query_view(ui);
                });
                ui.add_space(16.0);
                ui.vertical(|ui| {
                    ui.strong("Predicted soft mask");
                    if let Some(p) = &self.predicted {
                        let side = 240.0;
                        let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side * p.height as f32 / p.width.max(1) as f32), egui::Sense::hover());
                        ui.painter().rect_filled(rect, 0.0, Color32::BLACK);
                        if let Some(t) = &self.mask_textures[2] {
                            draw_texture(ui, t, rect);
                        }
                        let max = p.values.iter().copied().fold(0.0f32, f32::max);
                        ui.label(format!("values 0 to {max:.2}"));
                    }
                });
            });
            ui.add_space(8.0);
            ui.label(
                RichText::new(format!(
                    "In-context: attention = softmax over prompt patches of <z_prompt, z_query> / C; each query patch averages the prompt mask's blocks. Model: {}",
                    k.perception().description
                ))
                .weak()
                .small(),
            );
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if ui.button("Open prompt…").clicked()
                && let Some(p) = pick_image()
            {
                match Picture::open(&p) {
                    Ok(pic) => self.set_prompt(pic),
                    Err(e) => self.message = e,
                }
            }
            if ui.button("Open query…").clicked()
                && let Some(p) = pick_image()
            {
                match Picture::open(&p) {
                    Ok(pic) => self.set_query(pic),
                    Err(e) => self.message = e,
                }
            }
            if ui.button("Demo pair").clicked() {
                self.load_demo();
            }
            ui.separator();
            ui.add(egui::Slider::new(&mut self.state.brush, 1.0..=40.0).text("brush"));
            ui.toggle_value(&mut self.eraser, "Eraser");
            if ui
                .add_enabled(!self.undo.is_empty(), egui::Button::new("Undo"))
                .clicked()
            {
                self.undo();
            }
            if ui.button("Clear").clicked() {
                self.clear();
            }
            let classes: Vec<u32> =
                self.prompt
                    .as_ref()
                    .and_then(|p| p.truth.as_ref())
                    .map_or(Vec::new(), |t| {
                        let mut c: Vec<u32> = t.iter().copied().filter(|&c| c != 0).collect();
                        c.sort_unstable();
                        c.dedup();
                        c
                    });
            for c in classes {
                if ui
                    .button(format!("True mask {c}"))
                    .on_hover_text("Replace the painting by the prompt's exact mask of this class")
                    .clicked()
                {
                    self.use_true_mask(c);
                }
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Overlay:");
            let before = self.state.overlay;
            ui.selectable_value(&mut self.state.overlay, Overlay::None, "None");
            ui.selectable_value(&mut self.state.overlay, Overlay::Pca, "PCA")
                .on_hover_text("3 principal components of the patch tokens as RGB, one basis for both images");
            ui.selectable_value(&mut self.state.overlay, Overlay::Foreground, "Foreground")
                .on_hover_text("First PCA component above the threshold");
            ui.selectable_value(&mut self.state.overlay, Overlay::KMeans, "K-means");
            ui.selectable_value(&mut self.state.overlay, Overlay::Knn, "kNN")
                .on_hover_text("Each query patch votes among its 5 most similar prompt patches (painted or not)");
            let mut changed = before != self.state.overlay;
            changed |= ui.add(egui::Slider::new(&mut self.state.opacity, 0.0..=1.0).text("opacity")).changed();
            changed |= ui.add(egui::Slider::new(&mut self.state.threshold, 0.0..=1.0).text("threshold")).changed();
            changed |= ui.add(egui::Slider::new(&mut self.state.k, 2..=8).text("k")).changed();
            if changed {
                self.overlay_dirty = true;
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Slider::new(&mut self.state.grid, 4..=32).text("patches per side"))
                .on_hover_text("Higher is finer and slower; recomputes features");
            let sharp = ui
                .add(
                    egui::Slider::new(&mut self.state.attention_sharpness, 0.01..=100.0)
                        .logarithmic(true)
                        .text("attention sharpness"),
                )
                .on_hover_text(
                    "Multiplies <z_prompt, z_query> / C; 1 is the paper's scale (the model's \
                     fitted attention scale when it has one). Lower gives softer masks; a model \
                     without a fitted scale needs about 10",
                );
            if sharp.changed() {
                if let Some(a) = &mut self.analysis {
                    match Attention::with_sharpness(
                        &[&a.prompt],
                        &a.query,
                        self.state.attention_sharpness,
                    ) {
                        Ok(att) => a.attention = att,
                        Err(e) => self.message = e.to_string(),
                    }
                }
                self.update_prediction();
            }
        });
    }

    fn image_rect(
        ui: &mut egui::Ui,
        picture: &Picture,
        sense: egui::Sense,
        label: &str,
    ) -> (egui::Response, egui::Rect) {
        let (w, h) = picture.size();
        let scale = (360.0 / w.max(h) as f32).max(0.5);
        let (rect, response) =
            ui.allocate_exact_size(egui::vec2(w as f32 * scale, h as f32 * scale), sense);
        let label = label.to_string();
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &label));
        (response, rect)
    }

    fn draw_picture(ui: &egui::Ui, picture: &mut Picture, rect: egui::Rect, slot: &str) {
        let texture = picture.texture.get_or_insert_with(|| {
            let (w, h) = (
                picture.image.width() as usize,
                picture.image.height() as usize,
            );
            ui.ctx().load_texture(
                format!("segmentation {slot}"),
                egui::ColorImage::from_rgb([w, h], picture.image.as_raw()),
                TextureOptions::LINEAR,
            )
        });
        draw_texture(ui, texture, rect);
    }

    /// Rebuilds the mask textures after the painted or predicted mask changed.
    fn refresh_masks(&mut self, ctx: &egui::Context) {
        if !self.masks_dirty {
            return;
        }
        self.masks_dirty = false;
        let texture = |mask: &SoftMask, colour: [u8; 3], max_alpha: f32, name: &str| {
            let rgba: Vec<u8> = mask
                .values
                .iter()
                .flat_map(|v| {
                    [
                        colour[0],
                        colour[1],
                        colour[2],
                        (v.clamp(0.0, 1.0) * max_alpha) as u8,
                    ]
                })
                .collect();
            ctx.load_texture(
                name,
                egui::ColorImage::from_rgba_unmultiplied([mask.width, mask.height], &rgba),
                TextureOptions::LINEAR,
            )
        };
        self.mask_textures = [
            self.mask
                .as_ref()
                .map(|m| texture(m, [255, 60, 60], 150.0, "segmentation prompt mask")),
            self.predicted
                .as_ref()
                .map(|m| texture(m, [60, 160, 255], 150.0, "segmentation predicted mask")),
            self.predicted.as_ref().map(|m| {
                texture(
                    m,
                    [255, 255, 255],
                    255.0,
                    "segmentation predicted mask alone",
                )
            }),
        ];
    }

    fn prompt_view(&mut self, ui: &mut egui::Ui) {
        let Some(mut picture) = self.prompt.take() else {
            ui.label("Open or drop a prompt image.");
            return;
        };
        let (response, rect) = Self::image_rect(ui, &picture, egui::Sense::drag(), "prompt image");
        Self::draw_picture(ui, &mut picture, rect, "prompt");
        if let Some(t) = &self.overlay_textures[0] {
            draw_texture(ui, t, rect);
        }
        let (w, h) = picture.size();
        self.prompt = Some(picture);
        if response.drag_started()
            && let Some(m) = &self.mask
        {
            self.undo.push(m.clone());
        }
        if (response.dragged() || response.drag_started())
            && let Some(pos) = response.interact_pointer_pos()
        {
            let x = (pos.x - rect.left()) / rect.width() * w as f32;
            let y = (pos.y - rect.top()) / rect.height() * h as f32;
            self.paint(x, y);
            self.update_prediction();
        }
        // A stroke above changed the masks: rebuild their textures before drawing this frame.
        self.refresh_masks(ui.ctx());
        if let Some(t) = &self.mask_textures[0] {
            draw_texture(ui, t, rect);
        }
        if let Some(pos) = response.hover_pos() {
            let r = self.state.brush * rect.width() / w as f32;
            ui.painter().circle_stroke(
                pos,
                r,
                egui::Stroke::new(
                    1.0,
                    if self.eraser {
                        Color32::WHITE
                    } else {
                        Color32::RED
                    },
                ),
            );
        }
        let painted = self.mask.as_ref().map_or(0.0, |m| {
            m.values.iter().sum::<f32>() / m.values.len().max(1) as f32
        });
        ui.label(format!(
            "{} — {:.1} % painted",
            self.prompt.as_ref().map_or("", |p| p.name.as_str()),
            painted * 100.0
        ));
    }

    fn query_view(&mut self, ui: &mut egui::Ui) {
        let Some(mut picture) = self.query.take() else {
            ui.label("Open or drop a query image.");
            return;
        };
        let (_, rect) = Self::image_rect(ui, &picture, egui::Sense::hover(), "query image");
        Self::draw_picture(ui, &mut picture, rect, "query");
        let name = picture.name.clone();
        self.query = Some(picture);
        if let Some(t) = &self.overlay_textures[1] {
            draw_texture(ui, t, rect);
        }
        if let Some(t) = &self.mask_textures[1] {
            draw_texture(ui, t, rect);
        }
        let mut line = name;
        let painted = self
            .mask
            .as_ref()
            .is_some_and(|m| m.values.iter().any(|&v| v > 0.0));
        if let Some((c, iou)) = self.iou().filter(|_| painted) {
            line += &format!(" — soft IoU {iou:.3} against true class {c}");
        }
        ui.label(line);
    }
}

/// Draws a whole texture stretched over `rect`.
fn draw_texture(ui: &egui::Ui, texture: &TextureHandle, rect: egui::Rect) {
    ui.painter().image(
        texture.id(),
        rect,
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        Color32::WHITE,
    );
}

fn pick_image() -> Option<PathBuf> {
    rfd::FileDialog::new()
        .add_filter("image", &IMAGE_EXTENSIONS)
        .pick_file()
}

impl super::Panel for SegmentationPanel {
    fn tab(&self) -> super::Tab {
        super::Tab::Segmentation
    }
    fn title(&self) -> String {
        "Segmentation".into()
    }
    fn show(&mut self, ui: &mut egui::Ui, cx: &mut super::PanelContext<'_>) {
        if let Some(k) = cx.knowledge.as_deref() {
            self.ui(ui, k);
        }
    }
}
