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
    Model { vit: VisionTransformer, name: String },
}

impl FeatureSource {
    pub fn name(&self) -> String {
        match self {
            FeatureSource::Pixels => "raw pixels".into(),
            FeatureSource::Model { name, .. } => name.clone(),
        }
    }

    /// Embeds grayscale images (replicated to RGB for models); `progress(done)` after each batch.
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
            FeatureSource::Model { vit, .. } => {
                let size = vit.cfg.img_size as u32;
                let dim = vit.cfg.embed_dim;
                let mut out = Vec::with_capacity(images.len() * dim);
                for (b, chunk) in images.chunks(256).enumerate() {
                    let pixels: Vec<f32> = chunk
                        .par_iter()
                        .flat_map_iter(|g| {
                            let rgb = image::DynamicImage::ImageLuma8(g.clone()).to_rgb8();
                            eval_preprocess(&rgb, size)
                        })
                        .collect();
                    let x = Tensor::from_vec(pixels, (chunk.len(), 3, size as usize, size as usize), &Device::Cpu)
                        .map_err(|e| Error::Model(e.to_string()))?;
                    let (cls, _) = vit.embed(&x).map_err(|e| Error::Model(e.to_string()))?;
                    out.extend(cls.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| Error::Model(e.to_string()))?);
                    progress((b * 256 + chunk.len()).min(images.len()));
                }
                Ok((out, dim))
            }
        }
    }
}
