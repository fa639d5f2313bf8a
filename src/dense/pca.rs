//! PCA of patch tokens: the feature overlays of the paper's figures 9–10 and
//! its zero-shot PCA R² score (docs/protocols.md §7).
//!
//! Overlays: 3 components → RGB. Several images may share one basis (fitted on all their
//! tokens together) and one min-max range, so a colour means the same thing in each. PCA signs
//! are arbitrary; procmem orients each component so the image border (mostly background) scores
//! low, which makes "first component above a threshold" a foreground mask.
//!
//! R²: the paper's per-image score and the standard one beside it, see [`r2_scores`].
//!
//! The principal axes come from an exact eigen-decomposition of the covariance (`linalg::symmetric_eigen`), not
//! from linfa-reduction's `Pca`: its truncated SVD (linfa-linalg's LOBPCG) panics with "NaN
//! values in array" on bilinearly upsampled token maps — the input of the paper's R². A test
//! checks this implementation against linfa-reduction's on data where the latter works.

use super::features::{PatchGrid, bilinear_taps};
use crate::error::{Error, Result};
pub use crate::linalg::Projection;

/// Per-patch colours in [0, 1]³ for one image, on its patch grid.
#[derive(Clone, Debug, PartialEq)]
pub struct PcaColours {
    pub rows: usize,
    pub cols: usize,
    pub rgb: Vec<[f32; 3]>,
}

impl PcaColours {
    /// The first component above `threshold`: the foreground mask of the paper's figure 10.
    pub fn foreground(&self, threshold: f32) -> Vec<bool> {
        self.rgb.iter().map(|c| c[0] > threshold).collect()
    }
}

/// PCA overlays for a set of images sharing one basis and one min-max range.
pub fn shared_overlays(grids: &[&PatchGrid]) -> Result<(Vec<PcaColours>, Projection)> {
    let Some(first) = grids.first() else {
        return Ok((
            Vec::new(),
            Projection {
                mean: vec![],
                components: vec![],
                explained: vec![],
            },
        ));
    };
    if grids.iter().any(|g| g.dim != first.dim) {
        return Err(Error::InvalidConfig(
            "images for a shared PCA must come from the same features".into(),
        ));
    }
    let all: Vec<f32> = grids.iter().flat_map(|g| g.data.iter().copied()).collect();
    let mut proj = Projection::fit(&all, first.dim, 3)?;
    // Orient: border patches (mostly background) below the mean.
    let mut border_mean = [0.0f64; 3];
    let mut border_n = 0usize;
    let projected: Vec<Vec<Vec<f32>>> = grids.iter().map(|g| proj.project(&g.data)).collect();
    for (g, p) in grids.iter().zip(&projected) {
        for (i, v) in p.iter().enumerate() {
            let (r, c) = (i / g.cols, i % g.cols);
            if r == 0 || c == 0 || r + 1 == g.rows || c + 1 == g.cols {
                (0..3).for_each(|k| border_mean[k] += v[k] as f64);
                border_n += 1;
            }
        }
    }
    let flip: Vec<bool> = (0..3)
        .map(|k| border_n > 0 && border_mean[k] > 0.0)
        .collect();
    for (k, f) in flip.iter().enumerate() {
        if *f {
            proj.components[k].iter_mut().for_each(|v| *v = -*v);
        }
    }
    let sign = |k: usize| if flip[k] { -1.0 } else { 1.0 };
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for v in projected.iter().flatten() {
        for k in 0..3 {
            lo[k] = lo[k].min(sign(k) * v[k]);
            hi[k] = hi[k].max(sign(k) * v[k]);
        }
    }
    let colours = grids
        .iter()
        .zip(&projected)
        .map(|(g, p)| PcaColours {
            rows: g.rows,
            cols: g.cols,
            rgb: p
                .iter()
                .map(|v| {
                    [0, 1, 2].map(|k| {
                        ((sign(k) * v[k] - lo[k]) / (hi[k] - lo[k]).max(1e-12)).clamp(0.0, 1.0)
                    })
                })
                .collect(),
        })
        .collect();
    Ok((colours, proj))
}

/// The paper's score and the standard one, for one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct R2 {
    /// Paper (notebook) definition: the total spread is taken around the scalar mean of all
    /// entries, and the smallest label present is dropped (background when there is one).
    pub paper: f64,
    /// Standard definition: total spread around the per-channel mean, background (label 0)
    /// dropped.
    pub standard: f64,
}

/// R² = 1 − Σ_k Σ_{x∈k} ‖x − c_k‖² / Σ_x ‖x − x̄‖² of per-pixel PCA colours against labels,
/// c_k the mean colour of label k. `None` when no pixel counts or the spread is zero (the
/// paper skips those images as NaN).
pub(crate) fn r2_scores(colours: &[[f32; 3]], labels: &[u32]) -> Option<R2> {
    if colours.len() != labels.len() {
        return None;
    }
    let min_label = *labels.iter().min()?;
    let paper = r2(colours, labels, |l| l != min_label, true)?;
    let standard = r2(colours, labels, |l| l > 0, false)?;
    Some(R2 { paper, standard })
}

fn r2(
    colours: &[[f32; 3]],
    labels: &[u32],
    keep: impl Fn(u32) -> bool,
    scalar_mean: bool,
) -> Option<f64> {
    use std::collections::BTreeMap;
    let mut sums: BTreeMap<u32, ([f64; 3], usize)> = BTreeMap::new();
    let mut total = [0.0f64; 3];
    let mut n = 0usize;
    for (c, &l) in colours.iter().zip(labels) {
        if !keep(l) {
            continue;
        }
        let e = sums.entry(l).or_insert(([0.0; 3], 0));
        for k in 0..3 {
            e.0[k] += c[k] as f64;
            total[k] += c[k] as f64;
        }
        e.1 += 1;
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let mean: [f64; 3] = if scalar_mean {
        let m = total.iter().sum::<f64>() / (3 * n) as f64;
        [m; 3]
    } else {
        total.map(|t| t / n as f64)
    };
    let (mut within, mut spread) = (0.0f64, 0.0f64);
    for (c, &l) in colours.iter().zip(labels) {
        if !keep(l) {
            continue;
        }
        let (s, count) = sums[&l];
        for k in 0..3 {
            within += (c[k] as f64 - s[k] / count as f64).powi(2);
            spread += (c[k] as f64 - mean[k]).powi(2);
        }
    }
    (spread > 0.0).then(|| 1.0 - within / spread)
}

/// The paper's zero-shot PCA R² for one image: features bilinearly resized to the label map's
/// `size`×`size`, PCA fitted on all of them (background included), each component min-max
/// scaled within the image, scored against `labels` (row-major, `size`²).
pub(crate) fn image_r2(grid: &PatchGrid, labels: &[u32], size: usize) -> Result<Option<R2>> {
    if labels.len() != size * size {
        return Err(Error::shape(
            format!("pixels of a {size}×{size} label map"),
            size * size,
            labels.len(),
        ));
    }
    let up = grid.upsample_bilinear(size, size);
    let proj = Projection::fit(&up.data, up.dim, 3)?;
    let projected = proj.project(&up.data);
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for v in &projected {
        for k in 0..3 {
            lo[k] = lo[k].min(v[k]);
            hi[k] = hi[k].max(v[k]);
        }
    }
    let colours: Vec<[f32; 3]> = projected
        .iter()
        .map(|v| [0, 1, 2].map(|k| (v[k] - lo[k]) / (hi[k] - lo[k]).max(1e-12)))
        .collect();
    Ok(r2_scores(&colours, labels))
}

/// Per-pixel overlay: PCA colours bilinearly upsampled from the patch grid to the image, mixed
/// over it with `opacity` in [0, 1].
pub fn overlay(image: &image::RgbImage, colours: &PcaColours, opacity: f32) -> image::RgbImage {
    let (w, h) = image.dimensions();
    let xs = bilinear_taps(colours.cols, w as usize);
    let ys = bilinear_taps(colours.rows, h as usize);
    let at = |r: usize, c: usize| colours.rgb[r * colours.cols + c];
    image::RgbImage::from_fn(w, h, |x, y| {
        let (x0, x1, fx) = xs[x as usize];
        let (y0, y1, fy) = ys[y as usize];
        let px = image.get_pixel(x, y).0;
        image::Rgb([0, 1, 2].map(|k| {
            let v = (1.0 - fy) * ((1.0 - fx) * at(y0, x0)[k] + fx * at(y0, x1)[k])
                + fy * ((1.0 - fx) * at(y1, x0)[k] + fx * at(y1, x1)[k]);
            ((1.0 - opacity) * px[k] as f32 + opacity * v * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_on_hand_made_cases() {
        // Two labels, each colour exactly its class centroid: R² = 1 in both definitions.
        let colours = [
            [0.5, 0.5, 0.5],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0],
            [1.0, 1.0, 1.0],
        ];
        let r = r2_scores(&colours, &[0, 1, 1, 2, 2]).unwrap();
        assert_eq!((r.paper, r.standard), (1.0, 1.0));
        // With background present: drop 0 in both.
        let colours = [
            [0.5, 0.5, 0.5],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [1.0, 0.0, 1.0],
        ];
        let labels = [0, 1, 1, 2, 2];
        let r = r2_scores(&colours, &labels).unwrap();
        // Centroids: label 1 (0,0,.5), label 2 (1,0,.5); within = 4·0.25 = 1.
        // Standard: mean (.5,0,.5), spread = 4·(.25+.25) = 2 → R² = 0.5.
        assert!((r.standard - 0.5).abs() < 1e-12);
        // Paper: scalar mean of all entries = (0+0+1+0+0+0+1+0+0+1+0+1)/12 = 1/3;
        // spread = Σ (v − 1/3)² over 12 entries = 4·(2/3)² + 8·(1/3)² = 16/9 + 8/9 = 24/9.
        assert!((r.paper - (1.0 - 1.0 / (24.0 / 9.0))).abs() < 1e-12);
    }

    #[test]
    fn r2_is_none_without_spread() {
        assert_eq!(r2_scores(&[[0.2; 3], [0.2; 3]], &[0, 1]), None);
    }

    #[test]
    fn pca_finds_the_dominant_axis_and_orients_it() {
        // 8×8 grid: centre 4×4 block has features along +e0, border along −e0, small noise.
        let mut rng = crate::rng::Rng::new(3);
        let mut data = Vec::new();
        for r in 0..8 {
            for c in 0..8 {
                let inside = (2..6).contains(&r) && (2..6).contains(&c);
                let base = if inside { 1.0 } else { -1.0 };
                data.push(base + 0.01 * rng.normal() as f32);
                for _ in 1..6 {
                    data.push(0.05 * rng.normal() as f32);
                }
            }
        }
        let g = PatchGrid::new(8, 8, 6, data).unwrap();
        let (colours, proj) = shared_overlays(&[&g]).unwrap();
        assert!(proj.explained[0] > 0.9, "{:?}", proj.explained);
        assert!(proj.components[0][0].abs() > 0.99);
        let fg = colours[0].foreground(0.5);
        for r in 0..8 {
            for c in 0..8 {
                assert_eq!(fg[r * 8 + c], (2..6).contains(&r) && (2..6).contains(&c));
            }
        }
    }

    #[test]
    fn principal_axes_agree_with_linfa_reduction() {
        use linfa::traits::Fit;
        let mut rng = crate::rng::Rng::new(11);
        let (n, dim) = (300, 12);
        // Anisotropic Gaussian: axis scales 5, 3, 2, then 0.5.
        let rows: Vec<f32> = (0..n * dim)
            .map(|i| (rng.normal() * [5.0, 3.0, 2.0].get(i % dim).copied().unwrap_or(0.5)) as f32)
            .collect();
        let ours = Projection::fit(&rows, dim, 3).unwrap();
        let records =
            ndarray::Array2::from_shape_vec((n, dim), rows.iter().map(|&v| v as f64).collect())
                .unwrap();
        let reference = linfa_reduction::Pca::params(3)
            .fit(&linfa::DatasetBase::from(records))
            .unwrap();
        for (k, axis) in reference.components().outer_iter().enumerate() {
            let dot: f64 = axis
                .iter()
                .zip(&ours.components[k])
                .map(|(a, b)| a * *b as f64)
                .sum();
            assert!(dot.abs() > 0.9999, "component {k}: |cos| = {}", dot.abs());
        }
        // Explained variance as a fraction of the total.
        assert!(ours.explained[0] > 0.5 && ours.explained.iter().sum::<f64>() < 1.0);
    }
}
