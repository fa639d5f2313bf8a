//! Turning labelled images into embeddings: a ViT with DINO's evaluation preprocessing, or the
//! raw-pixels baseline. Embeddings are L2-normalised, so dot product = cosine similarity.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::VisionTransformer;
use crate::train::augment::eval_preprocess;

pub enum FeatureSource {
    /// Raw pixel values, flattened and L2-normalised (the paper's "RGB" reference).
    Pixels,
    /// A ViT's L2-normalised CLS embedding at the model's resolution.
    Model { vit: VisionTransformer, name: String, fingerprint: String },
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

    /// Parses a feature spec: `pixels`, `random:<preset>` (random-init ViT, seed 0) or a weights
    /// path (a checkpoint's teacher, DINO `.pth` or timm `.safetensors`).
    pub fn from_spec(spec: &str) -> Result<Self> {
        use crate::model::weights::{Which, load_backbone};
        if spec == "pixels" {
            return Ok(FeatureSource::Pixels);
        }
        if let Some(preset) = spec.strip_prefix("random:") {
            let cfg = crate::model::VitConfig::preset(preset).ok_or_else(|| {
                Error::InvalidConfig(format!("unknown preset `{preset}` (one of {})", crate::model::VitConfig::PRESETS.join(", ")))
            })?;
            return Self::random(&cfg, format!("random-init ViT ({preset}, seed 0)"));
        }
        // `student:PATH` picks a procmem checkpoint's student; the teacher is the default.
        let (which, path, role) = match spec.strip_prefix("student:") {
            Some(path) => (Which::Student, path, "student"),
            None => (Which::Teacher, spec, "teacher"),
        };
        let loaded = load_backbone(std::path::Path::new(path), which, None)?;
        let name = match &loaded.meta {
            Some(m) => {
                format!("{path} ({}, step {}, {})", m.exported_backbone.as_deref().unwrap_or(role), m.step, m.provenance.sources.join(", "))
            }
            None => spec.to_string(),
        };
        Ok(FeatureSource::Model { vit: loaded.vit, name, fingerprint: loaded.fingerprint })
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
        Ok(FeatureSource::Model { vit, name, fingerprint })
    }

    /// The ViT, for model sources.
    pub fn vit(&self) -> Option<&VisionTransformer> {
        match self {
            FeatureSource::Model { vit, .. } => Some(vit),
            FeatureSource::Pixels => None,
        }
    }

    /// Embeds RGB images: a model at its resolution with DINO's evaluation preprocessing, raw
    /// pixels after resizing to 32×32.
    pub fn embed_rgb(&self, images: &[image::RgbImage], mut progress: impl FnMut(usize)) -> Result<(Vec<f32>, usize)> {
        match self {
            FeatureSource::Pixels => {
                let out: Vec<f32> = images
                    .par_iter()
                    .flat_map_iter(|img| {
                        let small = image::imageops::resize(img, 32, 32, image::imageops::FilterType::Triangle);
                        let v: Vec<f32> = small.as_raw().iter().map(|&p| p as f32 / 255.0).collect();
                        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        v.into_iter().map(move |x| x / n)
                    })
                    .collect();
                progress(images.len());
                Ok((out, 32 * 32 * 3))
            }
            FeatureSource::Model { vit, .. } => {
                let size = vit.cfg.img_size as u32;
                let dim = vit.cfg.embed_dim;
                let mut out = Vec::with_capacity(images.len() * dim);
                for (b, chunk) in images.chunks(256).enumerate() {
                    let pixels: Vec<f32> = chunk.par_iter().flat_map_iter(|img| eval_preprocess(img, size)).collect();
                    let x = Tensor::from_vec(pixels, (chunk.len(), 3, size as usize, size as usize), &Device::Cpu)
                        .map_err(|e| Error::Model(e.to_string()))?;
                    let cls = vit.embed_cls(&x).map_err(|e| Error::Model(e.to_string()))?;
                    out.extend(cls.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| Error::Model(e.to_string()))?);
                    progress((b * 256 + chunk.len()).min(images.len()));
                }
                Ok((out, dim))
            }
        }
    }

    /// Embeds grayscale images (replicated to RGB for models; raw 28×28-style pixels as they are
    /// for the pixel baseline); `progress(done)` after each batch.
    pub fn embed_gray(&self, images: &[image::GrayImage], mut progress: impl FnMut(usize)) -> Result<(Vec<f32>, usize)> {
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
                let rgb: Vec<image::RgbImage> = images.par_iter().map(|g| image::DynamicImage::ImageLuma8(g.clone()).to_rgb8()).collect();
                self.embed_rgb(&rgb, progress)
            }
        }
    }
}
