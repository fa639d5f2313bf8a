//! `procmem standardise`: choose the pooling of the tokens ([`procmem::model::pooling`]), fit a
//! procedural standardisation of the pooled embedding and one of the patch tokens the dense tasks
//! read (centring + whitening, [`procmem::model::standardise`]), and write the model with them.

use std::path::PathBuf;

use procmem::dense::calibrate::{AttentionCalibrationConfig, calibrate_model};
use procmem::embed::{StandardiseConfig, standardise_model};
use procmem::model::Pooling;
use procmem::model::weights::Which;

fn parse_pooling(spec: &str) -> Result<String, String> {
    Pooling::parse(spec)
        .map(|p| p.name())
        .ok_or_else(|| format!("`{spec}` is not a pooling: use `cls` or `grid<S>`, e.g. `grid2`"))
}

/// Fit centring and whitening of a model's embedding on procedural images and write the model
/// with it (the statistics become part of the perception model; no real image is used).
#[derive(clap::Args, Debug)]
pub struct StandardiseArgs {
    /// The model: an exported model or a training checkpoint (.json or .safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// For a training checkpoint: use the student instead of the teacher.
    #[arg(long)]
    pub student: bool,
    /// The procedural process to fit on.
    #[arg(long, value_enum, default_value = "kml-mixup")]
    pub process: procmem::generate::Process,
    /// Images to fit on.
    #[arg(long, default_value_t = StandardiseConfig::default().images)]
    pub images: usize,
    /// Seed of the generated set.
    #[arg(long, default_value_t = StandardiseConfig::default().seed)]
    pub seed: u64,
    /// ε relative to the mean eigenvalue (0 = full whitening).
    #[arg(long, allow_negative_numbers = true, default_value_t = StandardiseConfig::default().shrinkage)]
    pub shrinkage: f64,
    /// How tokens are pooled into the embedding: `cls` (DINO's CLS token) or `grid<S>` (patch
    /// tokens mean-pooled over an S×S grid, e.g. `grid2`; see docs/training.md, "Pooling").
    #[arg(long, default_value_t = StandardiseConfig::default().pooling.name(), value_parser = parse_pooling)]
    pub pooling: String,
    /// Keep at most this many leading procedural axes of the pooled embedding (PCA whitening;
    /// 0 = all of them, ZCA whitening).
    #[arg(long, default_value_t = StandardiseConfig::default().components.unwrap_or(0))]
    pub components: usize,
    /// Images whose patch tokens fit the dense tasks' patch-token standardisation (0 = none).
    #[arg(long, default_value_t = StandardiseConfig::default().patch_images)]
    pub patch_images: usize,
    /// Patches per side of those images (the dense tasks' grid).
    #[arg(long, default_value_t = StandardiseConfig::default().patch_grid)]
    pub patch_grid: usize,
    /// ε of the patch-token whitening, relative to the mean eigenvalue.
    #[arg(long, allow_negative_numbers = true, default_value_t = StandardiseConfig::default().patch_shrinkage)]
    pub patch_shrinkage: f64,
    /// The block (1 = first) whose output tokens the dense tasks read and the patch statistics
    /// are fitted on; 0 = the last block (the paper's).
    #[arg(long, default_value_t = StandardiseConfig::default().patch_block)]
    pub patch_block: usize,
    /// Procedural in-context images the patch tokens' attention scale is fitted on (after the
    /// patch statistics; `procmem::dense::calibrate`); 0 = keep unit variance.
    #[arg(long, default_value_t = AttentionCalibrationConfig::default().images)]
    pub attention_images: usize,
    /// Fit only the patch tokens' standardisation; keep the model's pooling and embedding
    /// standardisation bit for bit (so `--images`, `--shrinkage`, `--pooling` and `--components`
    /// cannot be given).
    #[arg(long, conflicts_with_all = ["images", "shrinkage", "pooling", "components"])]
    pub patches_only: bool,
    /// Output path stem: writes <out>.safetensors and <out>.json.
    #[arg(long)]
    pub out: PathBuf,
}

impl StandardiseArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let pooling = Pooling::parse(&self.pooling)
            .ok_or_else(|| anyhow::anyhow!("unknown pooling `{}`", self.pooling))?;
        let cfg = StandardiseConfig {
            process: self.process,
            images: self.images,
            seed: self.seed,
            shrinkage: self.shrinkage,
            pooling,
            components: (self.components > 0).then_some(self.components),
            patch_images: self.patch_images,
            patch_grid: self.patch_grid,
            patch_shrinkage: self.patch_shrinkage,
            patch_block: self.patch_block,
            patches_only: self.patches_only,
        };
        let calibration = AttentionCalibrationConfig {
            images: self.attention_images,
            grid: cfg.patch_grid,
            ..Default::default()
        };
        // Refused before minutes of standardisation, not after.
        if calibration.images > 0 && cfg.patch_images > 0 {
            calibration.validate()?;
        }
        let bar = super::progress_bar(cfg.progress_total() as u64, "generating and embedding");
        let which = if self.student {
            Which::Student
        } else {
            Which::Teacher
        };
        let fp = standardise_model(&self.model, which, &cfg, &self.out, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        if cfg.patches_only {
            eprintln!(
                "wrote {}, its pooling and embedding unchanged; fingerprint {fp}",
                self.out.display()
            );
        } else {
            eprintln!(
                "wrote {} with {} pooling{} and a standardisation fitted on {} {} images (seed {}, shrinkage {}); fingerprint {fp}",
                self.out.display(),
                cfg.pooling.name(),
                cfg.components
                    .map(|m| format!(" (at most {m} leading axes kept)"))
                    .unwrap_or_default(),
                cfg.images,
                cfg.process.cli_name(),
                cfg.seed,
                cfg.shrinkage
            );
        }
        if cfg.patch_images > 0 {
            eprintln!(
                "patch tokens standardised on {} {} images at a {}×{} patch grid (shrinkage {})",
                cfg.patch_images,
                cfg.process.cli_name(),
                cfg.patch_grid,
                cfg.patch_grid,
                cfg.patch_shrinkage
            );
            if calibration.images > 0 {
                let bar = super::progress_bar(calibration.images as u64, "attention scale");
                let fitted =
                    calibrate_model(&self.out, which, &calibration, &self.out, |done, _| {
                        bar.set_position(done as u64)
                    })?;
                bar.finish_and_clear();
                let curve: Vec<String> = fitted
                    .scores
                    .iter()
                    .map(|[scale, iou, loss]| format!("×{scale} {iou:.3} / {loss:.3}"))
                    .collect();
                eprintln!(
                    "attention scale ×{} fitted on {} ({} pairs; mean in-context soft IoU / log loss: {})",
                    fitted.scale,
                    fitted.source,
                    fitted.pairs,
                    curve.join(", ")
                );
            }
        }
        Ok(())
    }
}
