//! Patch features: the last block's patch tokens after the final norm, CLS dropped — the
//! paper's `get_intermediate_layers(x)[0][:, 1:]` — or plain RGB patches as the reference.
//! When the model file carries a procedural standardisation of its patch tokens
//! (`model::standardise`, `procmem standardise`), the tokens are centred and whitened with it
//! (a deviation from the paper, measured in docs/dense.md).
//!
//! Images are resized whole (no crop) to `grid × patch` pixels per side, so a patch covers the
//! same part of the image as the matching block of its mask. The paper uses 448² inputs with
//! patch 16 (a 28×28 grid); procmem's CPU models have patch 8 and run at 128² by default (a
//! 16×16 grid), using the ViT's bicubic position-embedding interpolation.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::embed::FeatureSource;
use crate::embed::preprocess::resize_normalise;
use crate::error::{Error, Result};

/// Patch size used for the plain-RGB reference (the CPU presets' patch).
pub const RGB_PATCH: usize = 8;

/// Default patches per side: 16 (128² pixels for patch-8 models).
pub const DEFAULT_GRID: usize = 16;

/// A grid of patch features, row-major: patch (r, c) is `data[(r·cols + c)·dim ..][..dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchGrid {
    pub rows: usize,
    pub cols: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl PatchGrid {
    pub fn new(rows: usize, cols: usize, dim: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols * dim {
            return Err(Error::shape(
                format!("values of a {rows}×{cols}×{dim} patch grid"),
                rows * cols * dim,
                data.len(),
            ));
        }
        Ok(Self {
            rows,
            cols,
            dim,
            data,
        })
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn patch(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Bilinear resize of the feature map (PyTorch `interpolate(mode="bilinear",
    /// align_corners=False)`), as the paper does before its PCA.
    pub(crate) fn upsample_bilinear(&self, rows: usize, cols: usize) -> PatchGrid {
        let dim = self.dim;
        let mut data = vec![0.0f32; rows * cols * dim];
        let ys = bilinear_taps(self.rows, rows);
        let xs = bilinear_taps(self.cols, cols);
        data.par_chunks_mut(cols * dim)
            .zip(ys.par_iter())
            .for_each(|(row, &(y0, y1, fy))| {
                for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
                    let out = &mut row[x * dim..(x + 1) * dim];
                    let w = [
                        (1.0 - fy) * (1.0 - fx),
                        (1.0 - fy) * fx,
                        fy * (1.0 - fx),
                        fy * fx,
                    ];
                    let src = [
                        y0 * self.cols + x0,
                        y0 * self.cols + x1,
                        y1 * self.cols + x0,
                        y1 * self.cols + x1,
                    ];
                    for (wi, si) in w.iter().zip(src) {
                        for (o, v) in out.iter_mut().zip(self.patch(si)) {
                            *o += wi * v;
                        }
                    }
                }
            });
        PatchGrid {
            rows,
            cols,
            dim,
            data,
        }
    }

    /// The grid with every patch L2-normalised.
    pub(crate) fn normalised(&self) -> PatchGrid {
        let mut data = self.data.clone();
        crate::linalg::l2_normalise_rows(&mut data, self.dim);
        PatchGrid { data, ..*self }
    }
}

/// For each output index: (source index below, above, weight of above), half-pixel centres.
pub(crate) fn bilinear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// The patch size a source works at (the model's, or [`RGB_PATCH`] for raw pixels).
pub fn patch_size(source: &FeatureSource) -> usize {
    source.vit().map_or(RGB_PATCH, |v| v.cfg.patch_size)
}

/// The input side in pixels for a grid of `grid` patches per side.
pub fn input_size(source: &FeatureSource, grid: usize) -> usize {
    grid * patch_size(source)
}

/// Patch features of each image on a `grid`×`grid` patch grid; `progress(done)` per batch.
/// Raw pixels give each patch its ImageNet-normalised RGB values (3·8·8 = 192 numbers).
pub fn extract<I>(
    source: &FeatureSource,
    images: &[I],
    grid: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<PatchGrid>>
where
    I: std::borrow::Borrow<image::RgbImage> + Sync,
{
    if grid == 0 {
        return Err(Error::InvalidConfig(
            "the patch grid needs at least one patch per side".into(),
        ));
    }
    let p = patch_size(source);
    let size = grid * p;
    match source {
        FeatureSource::Pixels => {
            let out: Vec<PatchGrid> = images
                .par_iter()
                .map(|img| {
                    let chw = resize_normalise(img.borrow(), size as u32, size as u32);
                    let plane = size * size;
                    let mut data = Vec::with_capacity(grid * grid * 3 * p * p);
                    for r in 0..grid {
                        for c in 0..grid {
                            for ch in 0..3 {
                                for y in 0..p {
                                    let start = ch * plane + (r * p + y) * size + c * p;
                                    data.extend_from_slice(&chw[start..start + p]);
                                }
                            }
                        }
                    }
                    PatchGrid {
                        rows: grid,
                        cols: grid,
                        dim: 3 * p * p,
                        data,
                    }
                })
                .collect();
            progress(images.len());
            Ok(out)
        }
        FeatureSource::Model { vit, .. } => {
            let dim = vit.cfg.embed_dim;
            let batch = (4096 / (grid * grid)).clamp(1, 64);
            let mut out = Vec::with_capacity(images.len());
            for chunk in images.chunks(batch) {
                let pixels: Vec<f32> = chunk
                    .par_iter()
                    .flat_map_iter(|img| resize_normalise(img.borrow(), size as u32, size as u32))
                    .collect();
                let x = Tensor::from_vec(pixels, (chunk.len(), 3, size, size), &Device::Cpu)?;
                let patches = vit.patch_features(&x)?;
                let values = patches.flatten_all().and_then(|t| t.to_vec1::<f32>())?;
                for v in values.chunks_exact(grid * grid * dim) {
                    out.push(PatchGrid {
                        rows: grid,
                        cols: grid,
                        dim,
                        data: v.to_vec(),
                    });
                }
                progress(out.len());
            }
            Ok(out)
        }
    }
}

/// One image's features (for the app).
pub fn extract_one(
    source: &FeatureSource,
    image: &image::RgbImage,
    grid: usize,
) -> Result<PatchGrid> {
    extract(source, std::slice::from_ref(image), grid, |_| {})?
        .pop()
        .ok_or_else(|| Error::Model("no features".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_upsampling_matches_half_pixel_rule() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0.,1.],[2.,3.]]]]), size=(4,4),
        // mode="bilinear", align_corners=False)[0,0,0] = [0, .25, .75, 1]
        let g = PatchGrid::new(2, 2, 1, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        let up = g.upsample_bilinear(4, 4);
        assert_eq!(&up.data[0..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&up.data[12..16], &[2.0, 2.25, 2.75, 3.0]);
        // second row: y = 0.25 between rows → 0.5 added
        assert_eq!(&up.data[4..8], &[0.5, 0.75, 1.25, 1.5]);
    }

    #[test]
    fn rgb_patches_cover_their_block() {
        // Left half red, right half blue: every left patch has red's normalised value.
        let img = image::RgbImage::from_fn(32, 32, |x, _| {
            if x < 16 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let g = extract(&FeatureSource::Pixels, &[img], 4, |_| {})
            .unwrap()
            .remove(0);
        assert_eq!((g.rows, g.cols, g.dim), (4, 4, 192));
        let red0 = (1.0 - 0.485) / 0.229;
        assert!((g.patch(0)[0] - red0).abs() < 1e-5);
        assert!((g.patch(3)[0] - (0.0 - 0.485) / 0.229).abs() < 1e-5);
    }
}
