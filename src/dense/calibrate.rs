//! The patch tokens' attention scale, fitted on procedural in-context pairs: no real image.
//!
//! The in-context attention is softmax(⟨z_prompt, z_query⟩ / C) (the paper's, `segment`), so
//! its sharpness is the tokens' scale. The paper's ViT-S sets that scale itself (its final
//! LayerNorm's learned gain); procmem's patch standardisation fixes it by convention (unit
//! variance per dimension on procedural images), where a small CPU model's attention is nearly
//! uniform. This step fits it instead: procedural composites (synthesized-program textures in
//! blobs of varied shape, `composite::procedural_objects`, on procedural backgrounds) give
//! prompt/query pairs that share a texture; the tokens' dot products are multiplied by each
//! scale of [`SCALES`] in turn, and the smallest scale whose mean soft IoU (the task's metric)
//! is within [`TOLERANCE`] of the best is kept, folded into the patch whitening (tokens ×
//! √scale). The mean log loss of the soft masks is recorded beside it: temperature scaling's
//! criterion (Guo et al. 2017, "On Calibration of Modern Neural Networks") would keep a far
//! softer scale (×2 for the bundled model), i.e. the masks at the kept scale are confident
//! beyond their accuracy (docs/dense.md, "Attention scale").
//! Deviation from the paper: the paper has no such step; it changes nothing but the dense
//! tasks' attention temperature (cosine votes, PCA and K-means are scale-free), and the
//! embedding and its fingerprint are untouched (docs/dense.md, "Attention scale").

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;

use super::composite::{self, CompositeConfig};
use super::features::{extract, patch_size};
use super::segment::{in_context_pairs, soft_iou};
use crate::embed::FeatureSource;
use crate::error::{Error, Result};
use crate::model::standardise::StandardisationKeys;
use crate::model::weights::{AttentionCalibration, Which, read_checkpoint, save_checkpoint};

/// The attention scales tried, multipliers of ⟨z, z'⟩ / C.
pub const SCALES: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// The kept scale is the smallest whose mean soft IoU reaches (1 − TOLERANCE) × the best: past
/// the knee the curve is flat, and a softer attention keeps soft masks soft.
pub const TOLERANCE: f64 = 0.01;

/// Predicted probabilities are clamped to [ε, 1 − ε] in the log loss: a wrong hard mask costs
/// ln(1/ε) ≈ 13.8 per pixel, not infinity.
pub const LOG_LOSS_EPSILON: f64 = 1e-6;

/// Mean per-pixel binary cross-entropy −[t·ln p + (1 − t)·ln(1 − p)] of a soft mask `pred`
/// against a mask `truth` (same length, values in [0, 1]); p clamped by [`LOG_LOSS_EPSILON`].
pub fn log_loss(pred: &[f32], truth: &[f32]) -> f64 {
    let n = pred.len().max(1) as f64;
    pred.iter()
        .zip(truth)
        .map(|(&p, &t)| {
            let p = (p as f64).clamp(LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON);
            let t = t as f64;
            -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / n
}

/// The calibration's procedural set: its own job's config (`procmem standardise` runs it after
/// [`crate::embed::standardise_model`] when the model has patch statistics).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionCalibrationConfig {
    /// Procedural composite images, at least 2: the first half are prompts, the second queries.
    /// Default 200 (100 pairs; 2.5 s here with the bundled model). `procmem standardise
    /// --attention-images 0` skips the fit and keeps unit variance.
    pub images: usize,
    /// Texture classes (synthesized programs), [`composite::PROCEDURAL_OBJECTS_PER_CLASS`]
    /// objects each. Default 8, about the emoji composite set's 9 categories.
    pub classes: usize,
    /// Seed of the programs, shapes and placements. Default 11 (not a composite set's seed used
    /// for evaluation).
    pub seed: u64,
    /// Patches per image side. Default 16, the dense tasks' default grid.
    pub grid: usize,
}

impl Default for AttentionCalibrationConfig {
    fn default() -> Self {
        Self {
            images: 200,
            classes: 8,
            seed: 11,
            grid: super::DEFAULT_GRID,
        }
    }
}

impl AttentionCalibrationConfig {
    /// Errors: fewer than 2 images, no class or no patch per side.
    pub fn validate(&self) -> Result<()> {
        if self.images < 2 || self.classes == 0 || self.grid == 0 {
            return Err(Error::InvalidConfig(format!(
                "the attention calibration needs at least 2 images, 1 class and 1 patch per side, got {} images, {} classes, grid {}",
                self.images, self.classes, self.grid
            )));
        }
        Ok(())
    }
}

/// Mean in-context soft IoU and log loss of `source`'s patch tokens on the procedural pairs of
/// `cfg`, at each of [`SCALES`], and the scale kept (by soft IoU, [`TOLERANCE`]).
/// `progress(done, total)` counts images embedded. Errors: a config with fewer than 2 images, no
/// class or no patch; a set without a single prompt/query pair.
pub fn fit_attention_scale(
    source: &FeatureSource,
    cfg: &AttentionCalibrationConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<AttentionCalibration> {
    cfg.validate()?;
    let block = patch_size(source);
    let set = CompositeConfig {
        count: cfg.images,
        size: (cfg.grid * block) as u32,
        seed: cfg.seed,
        ..Default::default()
    };
    let objects = composite::procedural_objects(
        cfg.classes,
        composite::PROCEDURAL_OBJECTS_PER_CLASS,
        composite::PROCEDURAL_OBJECT_SIDE,
        cfg.seed,
    );
    let examples = composite::examples(&set, &objects)?;
    let images: Vec<&image::RgbImage> = examples.iter().map(|e| &e.image).collect();
    let features = extract(source, &images, cfg.grid, |done| {
        progress(done, images.len())
    })?;
    let split = examples.len() / 2;
    let (prompts, queries) = examples.split_at(split);
    let pairs = in_context_pairs(prompts, queries);
    if pairs.is_empty() {
        return Err(Error::InvalidConfig(
            "the attention calibration found no prompt/query pair: use more images".into(),
        ));
    }
    let mut scores = Vec::with_capacity(SCALES.len());
    for &scale in &SCALES {
        let (mut iou_sum, mut loss_sum, mut count) = (0.0, 0.0, 0usize);
        for pair in &pairs {
            let (pred, truth) = pair.predict(
                prompts,
                queries,
                &features[pair.prompt],
                &features[split + pair.query],
                block,
                scale as f32,
            )?;
            if let Some(iou) = soft_iou(&pred.values, &truth.values) {
                iou_sum += iou;
                loss_sum += log_loss(&pred.values, &truth.values);
                count += 1;
            }
        }
        let mean = |sum: f64| {
            if count == 0 {
                f64::NAN
            } else {
                sum / count as f64
            }
        };
        scores.push([scale, mean(iou_sum), mean(loss_sum)]);
    }
    let best = scores
        .iter()
        .map(|s| s[1])
        .filter(|v| v.is_finite())
        .fold(f64::MIN, f64::max);
    let scale = scores
        .iter()
        .find(|s| s[1] >= (1.0 - TOLERANCE) * best)
        .map_or(1.0, |s| s[0]);
    Ok(AttentionCalibration {
        scale,
        source: format!(
            "procedural composites (seed {}, {} images at {}x{}, {} program classes)",
            cfg.seed, cfg.images, set.size, set.size, cfg.classes
        ),
        pairs: pairs.len(),
        scores,
    })
}

/// Fits the attention scale of the model at `model` (its patch standardisation must be there:
/// `procmem standardise` fits it first) and writes the model with the scale folded into the
/// patch whitening as `out` (may be `model`). A model already calibrated is calibrated again
/// from its current scale, the stored scale being the product. Returns the calibration.
pub fn calibrate_model(
    model: &Path,
    which: Which,
    cfg: &AttentionCalibrationConfig,
    out: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<AttentionCalibration> {
    let (mut meta, tensors) = read_checkpoint(model)?;
    let key = format!(
        "{}.backbone.{}",
        meta.backbone_role(which),
        StandardisationKeys::PATCH_TOKENS.whitening
    );
    let Some(patches) = meta.patch_standardisation.as_mut() else {
        return Err(Error::InvalidConfig(format!(
            "{} has no patch-token standardisation to calibrate: run `procmem standardise` on it",
            model.display()
        )));
    };
    // Loaded through the model reader for its checks and name; the file is read twice, which
    // costs well under the fit's seconds.
    let source = FeatureSource::from_path(model, which)?;
    let mut fitted = fit_attention_scale(&source, cfg, progress)?;
    let factor = fitted.scale.sqrt();
    let mut stored: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let whitening = stored.get(&key).ok_or_else(|| Error::BadFile {
        path: model.into(),
        message: format!("no `{key}` tensor beside its patch-standardisation record"),
    })?;
    let scaled = whitening.affine(factor, 0.0)?;
    stored.insert(key, scaled);
    if let Some(previous) = &patches.attention {
        fitted.scale *= previous.scale;
    }
    patches.attention = Some(fitted.clone());
    save_checkpoint(out, &stored, &meta)?;
    Ok(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_loss_against_hand_computed_values() {
        // −[ln 0.8 + ln 0.9] / 2 for a right-leaning mask; a certain right mask costs nothing;
        // a certain wrong one is capped at ln(1/ε).
        let loss = log_loss(&[0.8, 0.1], &[1.0, 0.0]);
        assert!(
            (loss - 0.5 * (-(0.8f64.ln()) - 0.9f64.ln())).abs() < 1e-7,
            "{loss}"
        );
        assert!(log_loss(&[1.0, 0.0], &[1.0, 0.0]) < 1e-5);
        let capped = log_loss(&[0.0], &[1.0]);
        assert!((capped + LOG_LOSS_EPSILON.ln()).abs() < 1e-9, "{capped}");
    }

    #[test]
    fn raw_pixels_calibrate_deterministically_and_bad_configs_are_refused() {
        let cfg = AttentionCalibrationConfig {
            images: 16,
            classes: 2,
            seed: 3,
            grid: 4,
        };
        let fitted = fit_attention_scale(&FeatureSource::Pixels, &cfg, |_, _| {}).unwrap();
        assert_eq!(
            fitted,
            fit_attention_scale(&FeatureSource::Pixels, &cfg, |_, _| {}).unwrap()
        );
        assert!(fitted.pairs > 0 && fitted.scores.len() == SCALES.len());
        let best = fitted.scores.iter().map(|s| s[1]).fold(f64::MIN, f64::max);
        let first_near_best = fitted
            .scores
            .iter()
            .find(|s| s[1] >= (1.0 - TOLERANCE) * best);
        assert_eq!(first_near_best.map(|s| s[0]), Some(fitted.scale));
        for bad in [
            AttentionCalibrationConfig {
                images: 1,
                ..cfg.clone()
            },
            AttentionCalibrationConfig {
                classes: 0,
                ..cfg.clone()
            },
            AttentionCalibrationConfig {
                grid: 0,
                ..cfg.clone()
            },
        ] {
            let err = fit_attention_scale(&FeatureSource::Pixels, &bad, |_, _| {
                panic!("nothing is embedded for a bad config")
            })
            .unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        }
    }
}
