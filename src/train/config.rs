//! The training job's configuration: one struct for the CLI (`--config train.toml`), the
//! Training panel and checkpoints. Field docs give DINO's value and the CPU default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::augment::AugmentConfig;
use crate::generate::GeneratorConfig;
use crate::model::{HeadConfig, VitConfig};

/// Where training images come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DataSource {
    /// An on-the-fly stream from a generator process; nothing is written to disk.
    Procedural { generator: GeneratorConfig },
    /// Every PNG/JPEG under a folder (recursively): real images, for baselines.
    Folder { path: PathBuf },
}

/// How the teacher's output becomes the DINO loss's targets.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TeacherCentering {
    /// softmax((t − c)/τ) with c the EMA of the teacher's mean output (DINO).
    #[default]
    Centre,
    /// Sinkhorn-Knopp normalisation of exp(t/τ) over the batch, 3 iterations (DINOv2).
    SinkhornKnopp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TrainConfig {
    /// Architecture preset (`cpu-tiny`, `cpu-small`, `micro`, `vit-tiny`, `vit-small`,
    /// `vit-base`). Default `cpu-tiny`: 64² input, patch 8, width 192, 6 blocks.
    pub preset: String,
    /// Explicit architecture; overrides `preset` when set.
    pub vit: Option<VitConfig>,
    /// Projection head. DINO: out_dim 65536, hidden 2048; CPU default 4096 / 512.
    pub head: HeadConfig,
    /// Multi-crop augmentation. CPU default: 2 global 64² + 6 local 32² crops (DINO: 224/96, 8).
    pub augment: AugmentConfig,
    /// Training data. Default: the KML Mixup stream at 64².
    pub data: DataSource,
    /// Images per step. DINO: 64 per GPU. Default 64.
    pub batch_size: usize,
    /// Optimisation steps. Default 1000.
    pub steps: u64,
    /// Linear learning-rate warm-up steps. DINO: 10 epochs of 100. Default 100.
    pub warmup_steps: u64,
    /// Peak learning rate per 256 images (scaled by batch/256). DINO: 0.0005.
    pub base_lr: f64,
    /// Final learning rate of the cosine. DINO: 1e-6.
    pub min_lr: f64,
    /// Weight decay, cosine from this... DINO: 0.04.
    pub weight_decay: f64,
    /// ...to this. DINO: 0.4.
    pub weight_decay_end: f64,
    /// Teacher EMA momentum, cosine to 1. DINO: 0.996 (for 100 epochs; lower, e.g. 0.99, learns
    /// faster on small budgets).
    pub momentum_teacher: f64,
    /// Teacher temperature after warm-up. DINO: 0.04.
    pub teacher_temp: f64,
    /// Teacher temperature at step 0. DINO: 0.04 (no warm-up).
    pub warmup_teacher_temp: f64,
    /// Steps of linear teacher-temperature warm-up. DINO: 0.
    pub warmup_teacher_temp_steps: u64,
    /// Student temperature. DINO: 0.1.
    pub student_temp: f64,
    /// Centre EMA momentum. DINO: 0.9.
    pub center_momentum: f64,
    /// How the teacher's targets are centred: `centre` (DINO's EMA centre, the default) or
    /// `sinkhorn-knopp` (DINOv2: balanced assignments to the prototypes, 3 iterations; it
    /// fights both collapses from the first step, where the EMA centre needs ~10 steps to warm
    /// up). DINOv2 pairs it with a teacher temperature warm-up 0.04 → 0.07.
    pub teacher_centering: TeacherCentering,
    /// Weight of DINOv2's KoLeo regulariser on the student's CLS embeddings of each global view
    /// (0 disables, the default; DINOv2: 0.1). Spreads the embeddings over the sphere, against
    /// the narrow cone a short run leaves.
    pub koleo_weight: f64,
    /// Weight of iBOT's masked-patch loss (Zhou et al. 2022, as in DINOv2's `ibot_patch_loss`):
    /// the student sees some global crops with patches replaced by a learned mask token and
    /// predicts, through the DINO head, the teacher's centred distribution of those patches
    /// (the teacher sees them unmasked). 0 disables, the default; DINOv2: 1.0. It trains the
    /// patch tokens the dense tasks read; each step then also computes every global crop's
    /// patch tokens in the last block (the CLS-only shortcut is off).
    pub ibot_weight: f64,
    /// Fraction of global crops whose patches are masked when iBOT is on. DINOv2: 0.5.
    pub ibot_mask_probability: f64,
    /// Range of the masked fraction of a masked crop's patches: the masked crops' ratios are
    /// spread over it in equal strata, as DINOv2's collate does. DINOv2: [0.1, 0.5]. The patches
    /// are drawn uniformly at random (DINOv2 and iBOT mask blocks of patches: a deviation).
    pub ibot_mask_ratio: [f64; 2],
    /// Per-tensor gradient clipping (0 disables). DINO: 3.0.
    pub clip_grad: f64,
    /// Steps during which the last layer is frozen. DINO: 1 epoch. Default 100.
    pub freeze_last_layer_steps: u64,
    /// Maximum stochastic-depth rate of the student. DINO: 0.1.
    pub drop_path_rate: f64,
    /// Seed of the initialisation, the data stream and the augmentations. DINO: 0.
    pub seed: u64,
    /// Save a checkpoint every this many steps (and at the end). Default 200.
    pub checkpoint_every: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            preset: "cpu-tiny".into(),
            vit: None,
            head: HeadConfig::default(),
            augment: AugmentConfig::default(),
            data: DataSource::Procedural {
                generator: GeneratorConfig::default(),
            },
            batch_size: 64,
            steps: 1000,
            warmup_steps: 100,
            base_lr: 0.0005,
            min_lr: 1e-6,
            weight_decay: 0.04,
            weight_decay_end: 0.4,
            momentum_teacher: 0.996,
            teacher_temp: 0.04,
            warmup_teacher_temp: 0.04,
            warmup_teacher_temp_steps: 0,
            student_temp: 0.1,
            center_momentum: 0.9,
            teacher_centering: TeacherCentering::Centre,
            koleo_weight: 0.0,
            ibot_weight: 0.0,
            ibot_mask_probability: 0.5,
            ibot_mask_ratio: [0.1, 0.5],
            clip_grad: 3.0,
            freeze_last_layer_steps: 100,
            drop_path_rate: 0.1,
            seed: 0,
            checkpoint_every: 200,
        }
    }
}

impl TrainConfig {
    pub fn vit_config(&self) -> crate::Result<VitConfig> {
        match &self.vit {
            Some(v) => Ok(v.clone()),
            None => VitConfig::preset(&self.preset).ok_or_else(|| {
                crate::Error::InvalidConfig(format!(
                    "unknown preset `{}` (one of {})",
                    self.preset,
                    VitConfig::PRESETS.join(", ")
                ))
            }),
        }
    }

    pub fn validate(&self) -> crate::Result<()> {
        let vit = self.vit_config()?;
        let bad = |m: String| Err(crate::Error::InvalidConfig(m));
        if !(self.koleo_weight.is_finite() && self.koleo_weight >= 0.0) {
            return bad(format!(
                "koleo_weight must be finite and ≥ 0, got {}",
                self.koleo_weight
            ));
        }
        if !(self.ibot_weight.is_finite() && self.ibot_weight >= 0.0) {
            return bad(format!(
                "ibot_weight must be finite and ≥ 0, got {}",
                self.ibot_weight
            ));
        }
        if !(0.0..=1.0).contains(&self.ibot_mask_probability) {
            return bad(format!(
                "ibot_mask_probability must be in [0, 1], got {}",
                self.ibot_mask_probability
            ));
        }
        let [low, high] = self.ibot_mask_ratio;
        if !(0.0 <= low && low <= high && high <= 1.0) {
            return bad(format!(
                "ibot_mask_ratio must be [min, max] with 0 ≤ min ≤ max ≤ 1, got [{low}, {high}]"
            ));
        }
        if self.ibot_weight > 0.0 {
            // A setting that never masks a patch would pay for the full-token passes and learn
            // nothing from them.
            let crops = 2.0 * self.batch_size as f64;
            let side = self.augment.global_size as usize / vit.patch_size.max(1);
            let patches = (side * side) as f64;
            if (crops * self.ibot_mask_probability).floor() < 1.0 || (patches * high).floor() < 1.0
            {
                return bad(format!(
                    "iBOT would mask no patch: ⌊{crops} global crops × ibot_mask_probability {}⌋ crops, ⌊{patches} patches × {high}⌋ patches at most; raise ibot_mask_probability or ibot_mask_ratio, or set ibot_weight to 0",
                    self.ibot_mask_probability
                ));
            }
        }
        if self.koleo_weight > 0.0 && self.batch_size < 2 {
            return bad("KoLeo needs a batch of at least 2 images".into());
        }
        if self.batch_size == 0 || self.steps == 0 {
            return bad("batch_size and steps must be positive".into());
        }
        for (name, size) in [
            ("global", self.augment.global_size),
            ("local", self.augment.local_size),
        ] {
            if !(size as usize).is_multiple_of(vit.patch_size) {
                return bad(format!(
                    "{name} crop size {size} is not a multiple of the patch size {}",
                    vit.patch_size
                ));
            }
        }
        if let DataSource::Procedural { generator } = &self.data {
            generator.validate()?;
        }
        Ok(())
    }

    /// Peak learning rate after DINO's linear scaling rule.
    pub(crate) fn peak_lr(&self) -> f64 {
        self.base_lr * self.batch_size as f64 / 256.0
    }
}
