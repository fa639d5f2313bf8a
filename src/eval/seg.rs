//! `eval seg`: the paper's three segmentation evaluations (Table 2; docs/protocols.md §7) on
//! a composite set (`dense::composite`), one row per feature source.
//!
//! Split: the first half of the set is the kNN memory and the prompt pool, the second half the
//! queries.
//! - **PCA R²** on each query image: features bilinearly resized to 4× the patch grid (the
//!   paper: 28 → 112), per-image PCA, the paper's and the standard R² (`dense::pca`).
//! - **In-context IoU**: for each query image, its largest object class c; the prompt is the
//!   next memory-half image (cyclically from the query's index) that contains c, its mask the
//!   pixels of c. Soft IoU and the paper's thresholded soft IoU (th = 0.2) against the query's
//!   exact mask of c.
//! - **kNN segmentation**: every memory-half patch with its majority label; each query patch
//!   labelled by the paper's attention vote (softmax of q·k/√C over all memory patches); patch
//!   accuracy overall and on foreground patches; beside it the Hummingbird-style vote (top-30
//!   patches, softmax(cos / 0.02)), because at CPU scale the paper's softmax over every memory
//!   patch is nearly uniform and predicts the majority class (background) everywhere.

use crate::dense::composite::Example;
use crate::dense::features::{extract, patch_size};
use crate::dense::pca::image_r2;
use crate::dense::segment::{
    PatchMemory, PatchVote, in_context_pairs, patch_labels, pixel_accuracy, soft_iou,
};
use crate::embed::FeatureSource;
use crate::error::{Error, Result};
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct SegEvalConfig {
    /// Patches per image side (default 16).
    pub grid: usize,
    /// Threshold of the thresholded IoU (default 0.2, the paper's example).
    pub threshold: f32,
    /// kNN vote (default the paper's attention over all memory patches).
    pub vote: PatchVote,
    /// Multiplier of the in-context attention logits ⟨z_prompt, z_query⟩/C (default 1, the
    /// paper's scale, as the Segmentation panel and `dense segment`; a model with a fitted
    /// attention scale, `dense::calibrate`, carries its own).
    pub sharpness: f32,
}

impl Default for SegEvalConfig {
    fn default() -> Self {
        Self {
            grid: crate::dense::DEFAULT_GRID,
            threshold: 0.2,
            vote: PatchVote::Attention,
            sharpness: 1.0,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SegScores {
    pub source: String,
    pub r2_paper: f64,
    pub r2_standard: f64,
    /// Query images with a defined R² (a flat image is skipped, as the paper's NaN).
    pub r2_images: usize,
    pub soft_iou: f64,
    pub soft_iou_thresholded: f64,
    pub pairs: usize,
    pub knn_accuracy: f64,
    pub knn_foreground: f64,
    /// The same with the Hummingbird-style vote: top-30 patches, softmax(cos / 0.02).
    pub topk_accuracy: f64,
    pub topk_foreground: f64,
    pub memory_patches: usize,
    pub query_patches: usize,
}

impl SegScores {
    pub const MARKDOWN_HEADER: &str = "| features | PCA R² (paper) | PCA R² (standard) | in-context soft IoU | in-context IoU (th 0.2) | kNN seg. accuracy | kNN seg. foreground | top-30 kNN accuracy | top-30 kNN foreground |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";

    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |\n",
            self.source,
            self.r2_paper,
            self.r2_standard,
            self.soft_iou,
            self.soft_iou_thresholded,
            self.knn_accuracy * 100.0,
            self.knn_foreground * 100.0,
            self.topk_accuracy * 100.0,
            self.topk_foreground * 100.0
        )
    }
}

/// Nearest-neighbour resize of a label map (pixel centres).
pub(crate) fn resize_labels(
    labels: &[u32],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(out_w * out_h);
    for y in 0..out_h {
        let sy = ((y as f64 + 0.5) * height as f64 / out_h as f64) as usize;
        for x in 0..out_w {
            let sx = ((x as f64 + 0.5) * width as f64 / out_w as f64) as usize;
            out.push(labels[sy.min(height - 1) * width + sx.min(width - 1)]);
        }
    }
    out
}

/// Runs the three evaluations for one source. `progress(stage, done, total)`.
pub fn evaluate(
    source: &FeatureSource,
    examples: &[Example],
    cfg: &SegEvalConfig,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<SegScores> {
    if examples.len() < 2 {
        return Err(Error::InvalidConfig(
            "the segmentation evaluation needs at least 2 images".into(),
        ));
    }
    let split = examples.len() / 2;
    let images: Vec<&image::RgbImage> = examples.iter().map(|e| &e.image).collect();
    let n = images.len();
    let features = extract(source, &images, cfg.grid, |d| progress("features", d, n))?;
    let block = patch_size(source);
    let (memory, queries) = (&examples[..split], &examples[split..]);

    // PCA R²: per image, independent → in parallel.
    let label_size = 4 * cfg.grid;
    progress("PCA R²", 0, queries.len());
    let r2: Vec<Option<crate::dense::pca::R2>> = queries
        .par_iter()
        .zip(&features[split..])
        .map(|(ex, grid)| {
            let labels = resize_labels(&ex.labels, ex.width(), ex.height(), label_size, label_size);
            image_r2(grid, &labels, label_size)
        })
        .collect::<Result<_>>()?;
    let defined: Vec<_> = r2.iter().flatten().collect();
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        let (s, c) = v.fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
        if c == 0 { f64::NAN } else { s / c as f64 }
    };
    let r2_paper = mean(&mut defined.iter().map(|r| r.paper));
    let r2_standard = mean(&mut defined.iter().map(|r| r.standard));

    // In-context.
    let mut ious = Vec::new();
    let mut ious_th = Vec::new();
    let pairs = in_context_pairs(memory, queries);
    for (done, pair) in pairs.iter().enumerate() {
        progress("in-context", done, pairs.len());
        let (pred, truth) = pair.predict(
            memory,
            queries,
            &features[pair.prompt],
            &features[split + pair.query],
            block,
            cfg.sharpness,
        )?;
        if let Some(iou) = soft_iou(&pred.values, &truth.values) {
            ious.push(iou);
        }
        if let Some(iou) = soft_iou(&pred.thresholded(cfg.threshold).values, &truth.values) {
            ious_th.push(iou);
        }
    }

    // kNN segmentation.
    progress("kNN segmentation", 0, queries.len());
    let mut patch_memory = PatchMemory::default();
    for (ex, grid) in memory.iter().zip(&features[..split]) {
        patch_memory.add(
            grid,
            &patch_labels(&ex.labels, ex.width(), ex.height(), grid.rows, grid.cols),
        )?;
    }
    patch_memory.num_classes = patch_memory.num_classes.max(
        examples
            .iter()
            .flat_map(|e| e.labels.iter())
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(1),
    );
    let mut predicted = Vec::new();
    let mut predicted_topk = Vec::new();
    let mut truth = Vec::new();
    for (qi, (ex, grid)) in queries.iter().zip(&features[split..]).enumerate() {
        predicted.extend(patch_memory.segment(grid, cfg.vote)?);
        predicted_topk.extend(patch_memory.segment(
            grid,
            PatchVote::TopK {
                k: 30,
                temperature: crate::dense::segment::PATCH_VOTE_TEMPERATURE,
            },
        )?);
        truth.extend(patch_labels(
            &ex.labels,
            ex.width(),
            ex.height(),
            grid.rows,
            grid.cols,
        ));
        progress("kNN segmentation", qi + 1, queries.len());
    }
    let (knn_accuracy, knn_foreground) = pixel_accuracy(&predicted, &truth);
    let (topk_accuracy, topk_foreground) = pixel_accuracy(&predicted_topk, &truth);
    Ok(SegScores {
        source: source.name(),
        r2_paper,
        r2_standard,
        r2_images: defined.len(),
        soft_iou: mean(&mut ious.iter().copied()),
        soft_iou_thresholded: mean(&mut ious_th.iter().copied()),
        pairs: ious.len(),
        knn_accuracy,
        knn_foreground: knn_foreground.unwrap_or(f64::NAN),
        topk_accuracy,
        topk_foreground: topk_foreground.unwrap_or(f64::NAN),
        memory_patches: patch_memory.len(),
        query_patches: truth.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_label_resize_samples_pixel_centres() {
        let labels = [0, 1, 2, 3];
        assert_eq!(
            resize_labels(&labels, 2, 2, 4, 4),
            vec![0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]
        );
        assert_eq!(
            resize_labels(
                &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
                4,
                4,
                2,
                2
            ),
            vec![5, 7, 13, 15]
        );
    }
}
