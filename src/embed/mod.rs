//! Turning labelled images into embeddings: a ViT with DINO's evaluation preprocessing, or the
//! raw-pixels baseline. Embeddings are L2-normalised, so dot product = cosine similarity.

pub mod cache;
pub mod preprocess;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::VisionTransformer;
use preprocess::eval_preprocess;

/// A batch ready for [`FeatureSource::embed_prepared`].
pub enum Prepared {
    /// Raw-pixel features, already final: `(values, dim)`.
    Embedded(Vec<f32>, usize),
    /// `n × 3 × size × size` preprocessed pixels for the model.
    ModelInput { pixels: Vec<f32>, n: usize },
}

#[allow(clippy::large_enum_variant)] // one per job, mostly the model: boxing would buy nothing
pub enum FeatureSource {
    /// Raw pixel values, flattened and L2-normalised (the paper's "RGB" reference).
    Pixels,
    /// A ViT's L2-normalised CLS embedding at the model's resolution.
    Model {
        vit: VisionTransformer,
        name: String,
        fingerprint: String,
    },
}

impl FeatureSource {
    pub fn name(&self) -> String {
        match self {
            FeatureSource::Pixels => "raw pixels".into(),
            FeatureSource::Model { name, .. } => name.clone(),
        }
    }

    /// A stable identity of the embedding function, recorded by memories so embeddings of
    /// different models never mix.
    pub fn fingerprint(&self) -> String {
        match self {
            FeatureSource::Pixels => "raw-pixels".into(),
            FeatureSource::Model { fingerprint, .. } => fingerprint.clone(),
        }
    }

    /// The identity of the patch features the dense tasks read ([`crate::model::VisionTransformer::patch_features`]):
    /// [`Self::fingerprint`], which leaves the patch tokens' standardisation out, plus a digest
    /// of that standardisation when the model has one and the block the tokens are read after
    /// ([`crate::model::VisionTransformer::patch_block`]). Dense results cached under it never
    /// outlive a change of the patch statistics.
    pub fn dense_fingerprint(&self) -> String {
        match self.vit() {
            Some(v) => match v.patch_standardisation() {
                Some(s) => format!(
                    "{}+patches:{:016x}@{}",
                    self.fingerprint(),
                    s.digest(),
                    v.patch_block()
                ),
                // An earlier block without statistics still reads other features.
                None if v.patch_block() != v.cfg.depth => {
                    format!("{}+patches@{}", self.fingerprint(), v.patch_block())
                }
                None => self.fingerprint(),
            },
            None => self.fingerprint(),
        }
    }

    /// Parses a feature spec: `pixels`, `random:<preset>` (random-init ViT, seed 0) or a weights
    /// path (a checkpoint's teacher, DINO `.pth` or timm `.safetensors`).
    pub fn from_spec(spec: &str) -> Result<Self> {
        use crate::model::weights::Which;
        if spec == "pixels" {
            return Ok(FeatureSource::Pixels);
        }
        if let Some(preset) = spec.strip_prefix("random:") {
            let cfg = crate::model::VitConfig::preset(preset).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "unknown preset `{preset}` (one of {})",
                    crate::model::VitConfig::PRESETS.join(", ")
                ))
            })?;
            return Self::random(&cfg, format!("random-init ViT ({preset}, seed 0)"));
        }
        // `student:PATH` picks a procmem checkpoint's student; the teacher is the default.
        match spec.strip_prefix("student:") {
            Some(path) => Self::from_path(std::path::Path::new(path), Which::Student),
            None => Self::from_path(std::path::Path::new(spec), Which::Teacher),
        }
    }

    /// Loads the model file at `path` (a checkpoint's `which` backbone, an exported model, DINO
    /// `.pth` or timm `.safetensors`), never reading the path as a spec: a file named `pixels`
    /// is a file. Errors: the file's, as [`crate::model::weights::load_backbone`] reports them.
    pub fn from_path(path: &std::path::Path, which: crate::model::weights::Which) -> Result<Self> {
        use crate::model::weights::{Which, load_backbone};
        let role = match which {
            Which::Student => "student",
            Which::Teacher => "teacher",
        };
        let loaded = load_backbone(path, which, None)?;
        let name =
            match &loaded.meta {
                Some(m) => {
                    let standardised =
                        m.standardisation
                            .as_ref()
                            .map(|s| format!("; standardised on {}", s.describe()))
                            .into_iter()
                            .chain(m.patch_standardisation.as_ref().map(|s| {
                                format!("; patch tokens standardised on {}", s.describe())
                            }))
                            .collect::<String>();
                    format!(
                        "{} ({}, step {}, {}{standardised})",
                        path.display(),
                        m.exported_backbone.as_deref().unwrap_or(role),
                        m.step,
                        m.provenance.sources.join(", ")
                    )
                }
                None => path.display().to_string(),
            };
        Ok(FeatureSource::Model {
            vit: loaded.vit,
            name,
            fingerprint: loaded.fingerprint,
        })
    }

    /// The random-init baseline for a model: the same architecture, weights from seed 0.
    pub fn random_like(cfg: &crate::model::VitConfig) -> Result<Self> {
        let name = format!(
            "random-init ViT ({}×{} px, patch {}, width {}, depth {}, seed 0)",
            cfg.img_size, cfg.img_size, cfg.patch_size, cfg.embed_dim, cfg.depth
        );
        Self::random(cfg, name)
    }

    fn random(cfg: &crate::model::VitConfig, name: String) -> Result<Self> {
        use crate::model::weights::{fingerprint, new_backbone, var_tensors};
        let (vit, vars) = new_backbone(cfg, 0)?;
        let fingerprint = fingerprint(&var_tensors(&vars)?)?;
        Ok(FeatureSource::Model {
            vit,
            name,
            fingerprint,
        })
    }

    /// The ViT, for model sources.
    pub fn vit(&self) -> Option<&VisionTransformer> {
        match self {
            FeatureSource::Model { vit, .. } => Some(vit),
            FeatureSource::Pixels => None,
        }
    }

    /// Embeds RGB images: a model at its resolution with DINO's evaluation preprocessing, raw
    /// pixels after resizing to 32×32. `progress(done)` after each batch of 256.
    pub fn embed_rgb(
        &self,
        images: &[impl std::borrow::Borrow<image::RgbImage>],
        mut progress: impl FnMut(usize),
    ) -> Result<(Vec<f32>, usize)> {
        let mut out = Vec::new();
        let mut dim = self.vit().map_or(32 * 32 * 3, |v| v.embedding_dim());
        for (b, chunk) in images.chunks(Self::BATCH).enumerate() {
            let (values, d) = self.embed_prepared(
                self.prepare_rgb(
                    &chunk
                        .iter()
                        .map(std::borrow::Borrow::borrow)
                        .collect::<Vec<_>>(),
                ),
            )?;
            out.extend(values);
            dim = d;
            progress((b * Self::BATCH + chunk.len()).min(images.len()));
        }
        Ok((out, dim))
    }

    /// Images per forward pass.
    pub const BATCH: usize = 256;

    /// The CPU work before the model, on rayon's pool: DINO's evaluation preprocessing for a
    /// model, the whole embedding for raw pixels. Split from [`FeatureSource::embed_prepared`] so
    /// that a pipeline can prepare the next batch while the model runs
    /// (`memory::embedding::embed_pipelined`); the two together equal [`FeatureSource::embed_rgb`]
    /// on at most [`FeatureSource::BATCH`] images, bit for bit.
    pub(crate) fn prepare_rgb(&self, images: &[&image::RgbImage]) -> Prepared {
        match self {
            FeatureSource::Pixels => Prepared::Embedded(
                images
                    .par_iter()
                    .flat_map_iter(|img| {
                        let small = image::imageops::resize(
                            *img,
                            32,
                            32,
                            image::imageops::FilterType::Triangle,
                        );
                        let v: Vec<f32> =
                            small.as_raw().iter().map(|&p| p as f32 / 255.0).collect();
                        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        v.into_iter().map(move |x| x / n)
                    })
                    .collect(),
                32 * 32 * 3,
            ),
            FeatureSource::Model { vit, .. } => {
                let size = vit.cfg.img_size as u32;
                Prepared::ModelInput {
                    pixels: images
                        .par_iter()
                        .flat_map_iter(|img| eval_preprocess(img, size))
                        .collect(),
                    n: images.len(),
                }
            }
        }
    }

    /// Embeds what [`FeatureSource::prepare_rgb`] made: `(n × dim values, dim)`. Errors: a
    /// model failure, or input prepared by another kind of source.
    pub(crate) fn embed_prepared(&self, prepared: Prepared) -> Result<(Vec<f32>, usize)> {
        match (self, prepared) {
            (FeatureSource::Pixels, Prepared::Embedded(values, dim)) => Ok((values, dim)),
            (FeatureSource::Model { vit, .. }, Prepared::ModelInput { pixels, n }) => {
                let size = vit.cfg.img_size;
                let x = Tensor::from_vec(pixels, (n, 3, size, size), &Device::Cpu)?;
                let embedding = vit.embedding(&x)?;
                Ok((
                    embedding.flatten_all().and_then(|t| t.to_vec1::<f32>())?,
                    vit.embedding_dim(),
                ))
            }
            _ => Err(Error::InvalidConfig(
                "input prepared by another kind of feature source".into(),
            )),
        }
    }

    /// Embeds grayscale images (replicated to RGB for models; raw 28×28-style pixels as they are
    /// for the pixel baseline); `progress(done)` after each batch.
    pub fn embed_gray(
        &self,
        images: &[image::GrayImage],
        mut progress: impl FnMut(usize),
    ) -> Result<(Vec<f32>, usize)> {
        match self {
            FeatureSource::Pixels => {
                let dim = images.first().map_or(0, |i| i.as_raw().len());
                let out: Vec<f32> = images
                    .par_iter()
                    .flat_map_iter(|img| {
                        let v: Vec<f32> = img.as_raw().iter().map(|&p| p as f32 / 255.0).collect();
                        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        v.into_iter().map(move |x| x / n)
                    })
                    .collect();
                progress(images.len());
                Ok((out, dim))
            }
            FeatureSource::Model { .. } => {
                let rgb: Vec<image::RgbImage> = images
                    .par_iter()
                    .map(|g| image::DynamicImage::ImageLuma8(g.clone()).to_rgb8())
                    .collect();
                self.embed_rgb(&rgb, progress)
            }
        }
    }
}

/// The most patches per side [`StandardiseConfig::patch_grid`] accepts (512² pixels at patch 8).
pub const MAX_PATCH_GRID: usize = 64;

/// The procedural standardisation job (`procmem standardise`): its one config.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct StandardiseConfig {
    /// The procedural process whose images give the mean and covariance. Default `kml-mixup`,
    /// the bundled model's training data. Never real images: the statistics become part of the
    /// perception model.
    pub process: crate::generate::Process,
    /// Images to fit on. Default 8,000: fewer than the 12,288 values of every patch token
    /// (`grid8`), so the fit takes the Gram form (8,000 × 8,000) and finds the 384 leading axes
    /// the default keeps; ≈ 2.6 covariance samples per dimension at the 4×4 grid's 3,072, ≈ 10
    /// at the 2×2 grid's 768; 2,000 suffice for the CLS token's 192. With the defaults `procmem
    /// standardise` took 4 min 6 s on 2 cores (generation and embedding of 9,000 images included).
    pub images: usize,
    /// Seed of the generated set. Default 1 (the training stream derives its own from the
    /// training seed, so the sets differ).
    pub seed: u64,
    /// ε relative to the mean eigenvalue (0 = full whitening, with a 1e-12 floor). Default 0:
    /// on the Fashion-MNIST validation split (docs/training.md, "Pooling") full whitening of the
    /// 2×2 grid scored 80.60 % against 79.93 % at 0.001 and 79.19 % at 0.01; for the 4×4 grid at
    /// 768 axes 0 and 0.01 were level (83.57 % and 83.60 %). Raise it (0.01) if a model's
    /// procedural covariance is near-singular.
    pub shrinkage: f64,
    /// How the tokens are pooled into the embedding the standardisation is fitted to, and which
    /// the written model then uses ([`crate::model::pooling`]). Default `grid8`: on the CPU
    /// presets' 8×8 patch grid, every patch token kept in place (12,288 values at width 192);
    /// the model's patch grid must divide by 8 (a ViT-S/16's 14×14 does not: choose `grid2`
    /// or `grid7` there). On the Fashion-MNIST validation split (docs/training.md, "Every
    /// patch token") it beat `grid4` by 2.4 points, `grid2` by 5.6 and the CLS token by 13.
    pub pooling: crate::model::Pooling,
    /// Keep at most this many leading procedural axes of the pooled embedding (PCA whitening,
    /// [`crate::model::standardise::Standardisation::fit_components`]); `None`, or a number
    /// at least the pooled width, keeps them all (ZCA whitening). Default 384: with the default
    /// `grid8` pooling, 12,288 values kept at half the `grid2` width, which halves a memory's
    /// size and search time. On the Fashion-MNIST validation split (docs/training.md, "Every
    /// patch token") `grid8` scored 84.90 % with 128 axes, 85.97 % with 256, **86.22 %** with
    /// 384, 86.02 % with 512, 85.97 % with 768 and 85.32 % with 3,072: the procedural
    /// covariance's weak axes are noise for real images.
    pub components: Option<usize>,
    /// Procedural images whose patch tokens fit the patch-token standardisation the dense tasks
    /// read (segmentation, PCA, patch kNN); 0 = none. Default 1,000 (256,000 tokens at the
    /// default 16×16 grid, over 1,000 samples per dimension at width 192; ≈ 15 s here).
    pub patch_images: usize,
    /// Patches per side of the images the patch statistics come from. Default 16, the dense
    /// tasks' default grid (`dense::DEFAULT_GRID`): 128² pixels for patch-8 models.
    pub patch_grid: usize,
    /// ε of the patch-token whitening, relative to the mean eigenvalue (0 = full whitening;
    /// large = centring alone). The result is scaled to unit variance per dimension on average
    /// either way. Default 30: mostly centring with a mild decorrelation. On a validation
    /// composite set (seed 1) full whitening helped the kNN votes but hurt in-context attention;
    /// ε = 30 improved all four dense scores over the raw tokens and kept the most kNN-vote gain
    /// of the values that did (docs/dense.md).
    pub patch_shrinkage: f64,
    /// The block (1 = first) whose output tokens, through the final norm, the dense tasks read
    /// and the patch statistics are fitted on; 0 = the last block (the paper's). Stored with the
    /// patch statistics; a model without them reads the last block. Default 1: on a validation
    /// composite set (seed 1) the bundled model's first block led or tied its six on all four dense
    /// scores (in-context soft IoU 0.070 against 0.068 for the last, top-30 kNN foreground 15.8 %
    /// against 13.7 %), and its later blocks are not computed (docs/dense.md, "Which block").
    pub patch_block: usize,
    /// Fit the patch tokens' standardisation only, keeping the model's pooling and its
    /// embedding's standardisation bit for bit (so its fingerprint and a memory's entries stay
    /// as they are). Default false.
    pub patches_only: bool,
}

impl StandardiseConfig {
    /// The `total` that [`standardise_model`]'s progress counts to: each image is generated,
    /// then embedded.
    pub fn progress_total(&self) -> usize {
        let embedding_images = if self.patches_only { 0 } else { self.images };
        2 * (self.patch_images + embedding_images)
    }
}

impl Default for StandardiseConfig {
    fn default() -> Self {
        Self {
            process: crate::generate::Process::KmlMixup,
            images: 8000,
            seed: 1,
            shrinkage: 0.0,
            pooling: crate::model::Pooling::PatchGrid { side: 8 },
            components: Some(384),
            patch_images: 1000,
            patch_grid: 16,
            patch_shrinkage: 30.0,
            patch_block: 1,
            patches_only: false,
        }
    }
}

/// `count` images of `process` at `size`² from `seed`, in batches of 256; `progress(done)`.
fn procedural_images(
    process: crate::generate::Process,
    size: u32,
    seed: u64,
    count: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<image::RgbImage>> {
    let mut generator =
        crate::generate::Generator::open_default(crate::generate::GeneratorConfig {
            process,
            size,
            ..Default::default()
        })?;
    let mut images = Vec::with_capacity(count);
    for start in (0..count as u64).step_by(256) {
        let end = (start + 256).min(count as u64);
        images.extend(
            generator
                .generate(seed, start..end, false)?
                .into_iter()
                .map(|s| s.image),
        );
        progress(images.len());
    }
    Ok(images)
}

/// The patch features of `images` (each resized whole to `side`²), concatenated:
/// [images · (side/patch)², D] row-major; `progress(done)` per batch. Raw final-norm tokens
/// for a `vit` without a patch standardisation, as [`standardise_model`] builds it.
fn patch_tokens(
    vit: &VisionTransformer,
    images: &[image::RgbImage],
    side: u32,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>> {
    let batch = 16;
    let mut tokens = Vec::new();
    for (i, chunk) in images.chunks(batch).enumerate() {
        let pixels: Vec<f32> = chunk
            .par_iter()
            .flat_map_iter(|img| preprocess::resize_normalise(img, side, side))
            .collect();
        let x = Tensor::from_vec(
            pixels,
            (chunk.len(), 3, side as usize, side as usize),
            &Device::Cpu,
        )?;
        tokens.extend(vit.patch_features(&x)?.flatten_all()?.to_vec1::<f32>()?);
        progress(i * batch + chunk.len());
    }
    Ok(tokens)
}

/// Fits a procedural standardisation for the model at `model` (an exported model or a training
/// checkpoint's `which` backbone) and writes the model with it as `out` (`.safetensors` +
/// `.json`): the pooled embedding's, and with `cfg.patch_images > 0` the patch tokens' (a
/// separate set of images, generated at `cfg.patch_grid` patches per side); with
/// `cfg.patches_only`, the patch tokens' alone. Standardisations already in the model are
/// replaced, not compounded. Returns the new fingerprint.
/// `progress(done, total)` reports generation and embedding.
pub fn standardise_model(
    model: &std::path::Path,
    which: crate::model::weights::Which,
    cfg: &StandardiseConfig,
    out: &std::path::Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<String> {
    use std::collections::{BTreeMap, HashMap};

    use crate::model::standardise::{Standardisation, StandardisationKeys};
    use crate::model::weights::{
        StandardisationMeta, backbone_from_tensors, embedding_fingerprint, read_checkpoint,
        save_checkpoint,
    };

    if cfg.images < 2 && !cfg.patches_only {
        return Err(Error::InvalidConfig(format!(
            "standardisation needs at least 2 images, got {}",
            cfg.images
        )));
    }
    if cfg.patches_only && cfg.patch_images == 0 {
        return Err(Error::InvalidConfig(
            "fitting the patch tokens only needs at least 1 patch image".into(),
        ));
    }
    if cfg.patch_images > 0 && !(1..=MAX_PATCH_GRID).contains(&cfg.patch_grid) {
        return Err(Error::InvalidConfig(format!(
            "the patch-token standardisation needs 1 to {MAX_PATCH_GRID} patches per side, got {}",
            cfg.patch_grid
        )));
    }
    for (what, shrinkage) in [
        ("shrinkage", cfg.shrinkage),
        ("patch shrinkage", cfg.patch_shrinkage),
    ] {
        if !(shrinkage.is_finite() && shrinkage >= 0.0) {
            return Err(Error::InvalidConfig(format!(
                "the {what} must be finite and ≥ 0, got {shrinkage}"
            )));
        }
    }
    let replaced: Vec<&str> = if cfg.patches_only {
        StandardisationKeys::PATCH_TOKENS.names().to_vec()
    } else {
        StandardisationKeys::EMBEDDING
            .names()
            .into_iter()
            .chain(StandardisationKeys::PATCH_TOKENS.names())
            .collect()
    };
    let (mut meta, tensors) = read_checkpoint(model)?;
    let pooling = if cfg.patches_only {
        meta.pooling
    } else {
        cfg.pooling
    };
    let role = meta.backbone_role(which).to_string();
    let prefix = format!("{role}.backbone.");
    let mut backbone: BTreeMap<String, Tensor> = tensors
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v)))
        .filter(|(k, _)| !replaced.contains(&k.as_str()))
        .collect();
    if backbone.is_empty() {
        return Err(Error::BadFile {
            path: model.into(),
            message: format!("no `{prefix}*` tensors in the checkpoint"),
        });
    }
    let plain: HashMap<String, Tensor> = backbone
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let side = meta.vit.img_size / meta.vit.patch_size.max(1);
    if pooling.check_grid(side, side).is_err() {
        let fitting: Vec<String> = std::iter::once("cls".to_string())
            .chain(
                (1..=side)
                    .filter(|s| side.is_multiple_of(*s))
                    .map(|s| format!("grid{s}")),
            )
            .collect();
        return Err(Error::InvalidConfig(format!(
            "the {} pooling needs a patch grid divisible by its side; {} has {side}×{side} patches: choose a pooling that fits it ({})",
            pooling.name(),
            model.display(),
            fitting.join(", ")
        )));
    }
    let depth = meta.vit.depth;
    let patch_block = match cfg.patch_block {
        0 => depth,
        k => k,
    };
    if cfg.patch_images > 0 && patch_block > depth {
        return Err(Error::InvalidConfig(format!(
            "patch block {patch_block} of a model with {depth} blocks: choose 1 to {depth}, or 0 for the last"
        )));
    }
    // The embedding reads the last block whatever the patch block.
    let vit = backbone_from_tensors(&meta.vit, pooling, plain, model)?
        .0
        .with_patch_block(Some(patch_block.min(depth)).filter(|&k| k > 0))?;
    let total = cfg.progress_total();
    if cfg.components == Some(0) && !cfg.patches_only {
        return Err(Error::InvalidConfig(
            "the standardisation must keep at least 1 component".into(),
        ));
    }
    // At most the pooled width; all of it is the ZCA whitening.
    let width = pooling.dim(vit.cfg.embed_dim);
    let components = cfg.components.filter(|&m| m < width);
    // With fewer images than values the axes come from the images' Gram matrix, whose rank
    // bounds them: refused here, before minutes of generation, not after.
    if let Some(m) =
        components.filter(|&m| !cfg.patches_only && cfg.images < width && m >= cfg.images)
    {
        return Err(Error::InvalidConfig(format!(
            "keeping {m} components of the {}-value {} embedding needs more than {m} images to fit on, got {}: raise --images or lower --components",
            width,
            pooling.name(),
            cfg.images
        )));
    }

    // The patch tokens' standardisation first, from images of their own (another seed) at the
    // dense tasks' grid.
    meta.patch_standardisation = None;
    if cfg.patch_images > 0 {
        let side = (cfg.patch_grid * vit.cfg.patch_size) as u32;
        let patch_seed = cfg.seed.wrapping_add(1_000_003);
        let images = procedural_images(cfg.process, side, patch_seed, cfg.patch_images, |done| {
            progress(done, total)
        })?;
        let tokens = patch_tokens(&vit, &images, side, |done| {
            progress(cfg.patch_images + done, total)
        })?;
        let patches =
            Standardisation::fit_unit_variance(&tokens, vit.cfg.embed_dim, cfg.patch_shrinkage)?;
        for (key, tensor) in patches.to_tensors(StandardisationKeys::PATCH_TOKENS)? {
            backbone.insert(key.to_string(), tensor);
        }
        meta.patch_standardisation = Some(StandardisationMeta {
            source: format!(
                "procedural:{} (seed {patch_seed}, {side}x{side})",
                cfg.process.cli_name(),
            ),
            images: cfg.patch_images,
            shrinkage: cfg.patch_shrinkage,
            components: None,
            block: Some(patch_block).filter(|&k| k > 0),
            attention: None,
        });
    }

    if !cfg.patches_only {
        let size = vit.cfg.img_size as u32;
        let source = FeatureSource::Model {
            vit,
            name: "unstandardised".into(),
            fingerprint: String::new(),
        };
        let done_before = 2 * cfg.patch_images;
        let images = procedural_images(cfg.process, size, cfg.seed, cfg.images, |done| {
            progress(done_before + done, total)
        })?;
        let (embeddings, dim) = source.embed_rgb(&images, |done| {
            progress(done_before + cfg.images + done, total)
        })?;
        let standardisation = match components {
            Some(m) => Standardisation::fit_components(&embeddings, dim, cfg.shrinkage, m)?,
            None => Standardisation::fit(&embeddings, dim, cfg.shrinkage)?,
        };
        for (key, tensor) in standardisation.to_tensors(StandardisationKeys::EMBEDDING)? {
            backbone.insert(key.to_string(), tensor);
        }
        meta.standardisation = Some(StandardisationMeta {
            source: format!(
                "procedural:{} (seed {}, {size}x{size})",
                cfg.process.cli_name(),
                cfg.seed
            ),
            images: cfg.images,
            shrinkage: cfg.shrinkage,
            components,
            block: None,
            attention: None,
        });
    }
    meta.fingerprint = embedding_fingerprint(pooling, &backbone)?;
    meta.pooling = pooling;
    meta.exported_backbone = Some(role);
    let stored: BTreeMap<String, Tensor> = backbone
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect();
    save_checkpoint(out, &stored, &meta)?;
    Ok(meta.fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::Which;

    #[test]
    fn the_default_standardisation_fits_the_cpu_presets() {
        // The defaults were chosen for the CPU presets' 8×8 patch grid (docs/training.md,
        // "Every patch token"): the pooling must divide it, and the whitening must reduce,
        // keeping fewer axes than the pooled values and than the fit images (the Gram form's
        // rank, which bounds how many axes a fit can find).
        let cfg = StandardiseConfig::default();
        for name in ["cpu-tiny", "cpu-small"] {
            let vit = crate::model::vit::VitConfig::preset(name).unwrap();
            let side = vit.img_size / vit.patch_size;
            cfg.pooling.check_grid(side, side).unwrap();
            let width = cfg.pooling.dim(vit.embed_dim);
            let kept = cfg.components.unwrap();
            assert!(
                kept < width && kept < cfg.images,
                "{name}: {kept} of {width}"
            );
        }
        // A ViT-S/16's 14×14 grid is refused by the default, as its field docs say.
        let vit_small = crate::model::vit::VitConfig::preset("vit-small").unwrap();
        let side = vit_small.img_size / vit_small.patch_size;
        assert!(cfg.pooling.check_grid(side, side).is_err(), "{side}×{side}");
    }

    #[test]
    fn a_path_is_a_file_even_when_it_reads_like_a_spec() {
        assert!(matches!(
            FeatureSource::from_spec("pixels"),
            Ok(FeatureSource::Pixels)
        ));
        let dir = tempfile::tempdir().unwrap();
        for name in ["pixels", "random:micro"] {
            let path = dir.path().join(name);
            let err = FeatureSource::from_path(&path, Which::Teacher)
                .err()
                .unwrap_or_else(|| panic!("`{name}` was not read as a missing file"));
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
