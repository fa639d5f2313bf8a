//! Procedural standardisation of the embedding and of the patch tokens: centring and whitening
//! fitted on procedural images only, stored in the model file and applied wherever the model
//! embeds (the embedding) or the dense tasks read its tokens (the patch tokens).
//!
//! A small DINO model trained for minutes puts every image in a narrow cone (random pairs of
//! real images at mean cosine ≈ 0.97 for the bundled model before this step), so cosine
//! similarities — and the kNN votes built on them — are dominated by one shared direction.
//! Whitening with statistics of the model's own *procedural* training distribution removes that
//! direction without any real image touching the model (the compartmentalisation of Rodríguez-
//! Muñoz et al., ICML 2025, holds: the statistics are part of the perception model).
//!
//! The transform, on the unit CLS embedding x̂ ∈ ℝᴰ:
//!
//! ```text
//! y = normalise(W·(x̂ − μ)),   W = V·diag((λᵢ + ε)^(−1/2))·Vᵀ,   ε = shrinkage · mean(λ)
//! ```
//!
//! with μ and Σ = V·diag(λ)·Vᵀ the mean and covariance of the procedural images' x̂ (ZCA
//! whitening with Ledoit–Wolf-style shrinkage towards the mean eigenvalue; shrinkage → ∞ is
//! centring alone). With M < D components kept ([`Standardisation::fit_components`], session 15)
//! W = diag((λᵢ + ε)^(−1/2))·V_Mᵀ over the M largest eigenvalues, [M, D]: for cosine similarity
//! the ZCA form with its weakest axes dropped, so a wide embedding (every patch token: 12,288
//! values) keeps a memory of 384, the bundle's since session 16. Deviation from the paper: the
//! paper evaluates raw DINO CLS features; this step is procmem's, measured in `docs/training.md`.
//!
//! The same transform, fitted separately and without the final normalisation, standardises the
//! final-norm **patch tokens** the dense tasks read (`dense::features`): z' = c·W_p·(z − μ_p),
//! with μ_p and Σ_p over every patch token of procedural images at the dense grid, and c the
//! scale that gives the fitted tokens unit variance per dimension on average (the scale of
//! ImageNet-normalised pixels; [`Standardisation::fit_unit_variance`]). The shrinkage chosen for
//! patches is large (mostly centring): full whitening helped the kNN votes but hurt in-context
//! attention. Stored under [`PATCH_MEAN_KEY`] / [`PATCH_WHITENING_KEY`]. Deviation from the
//! paper, measured in `docs/dense.md`. The model's fingerprint leaves the patch tensors out
//! (`model::weights`): the embedding a memory stores never reads them.
//!
//! Applying it is a fixed-order product per row, so an image embeds to the same bits alone and
//! in any batch (the memory's exact unlearning relies on it).

use std::collections::HashMap;

use candle_core::{Device, Result, Tensor, bail};
use rayon::prelude::*;

use super::kernels::matvec_rows_in_order;

/// Checkpoint key of μ, shape [D] (inside the backbone's prefix, so the fingerprint covers it).
pub const MEAN_KEY: &str = "standardise.mean";
/// Checkpoint key of W: shape [D, D], symmetric (ZCA), or [M, D] with M < D (PCA whitening
/// keeping M axes, [`Standardisation::fit_components`]).
pub const WHITENING_KEY: &str = "standardise.whitening";
/// Checkpoint key of the patch tokens' μ, shape [D] (the model's width).
pub const PATCH_MEAN_KEY: &str = "standardise_patches.mean";
/// Checkpoint key of the patch tokens' W, shape [D, D], symmetric.
pub const PATCH_WHITENING_KEY: &str = "standardise_patches.whitening";

/// Where a standardisation's two tensors are stored in a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardisationKeys {
    pub mean: &'static str,
    pub whitening: &'static str,
}

impl StandardisationKeys {
    /// The pooled embedding's standardisation ([`MEAN_KEY`], [`WHITENING_KEY`]).
    pub const EMBEDDING: Self = Self {
        mean: MEAN_KEY,
        whitening: WHITENING_KEY,
    };
    /// The patch tokens' standardisation, read by the dense tasks ([`PATCH_MEAN_KEY`],
    /// [`PATCH_WHITENING_KEY`]).
    pub const PATCH_TOKENS: Self = Self {
        mean: PATCH_MEAN_KEY,
        whitening: PATCH_WHITENING_KEY,
    };

    /// Both keys.
    pub fn names(self) -> [&'static str; 2] {
        [self.mean, self.whitening]
    }
}

/// μ and W of the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardisation {
    /// Input width D.
    dim: usize,
    /// Output width M ≤ D: D for ZCA whitening, fewer for a PCA whitening that keeps only the
    /// leading procedural axes ([`Self::fit_components`]).
    out_dim: usize,
    mean: Vec<f32>,
    /// Row-major [out_dim, dim].
    whitening: Vec<f32>,
    /// W transposed (row-major [dim, out_dim]), the layout [`Standardisation::apply`]'s kernel
    /// reads.
    whitening_t: Vec<f32>,
}

/// The transpose of a row-major [rows, cols] matrix.
fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| m[(i % rows) * cols + i / rows])
        .collect()
}

/// (λ + ε)^(−1/2), the whitening scale of an axis of variance λ (negative round-off clamped).
fn whitening_scale(l: f64, eps: f64) -> f64 {
    1.0 / (l.max(0.0) + eps).sqrt()
}

/// W = diag((λₖ + ε)^(−1/2))·V_Mᵀ, row-major [M, dim], from unit `axes` (M of them, by
/// decreasing eigenvalue) and their eigenvalues; each axis signed so its largest entry is
/// positive (a deterministic choice among ±v).
fn pca_whitening(axes: &[Vec<f64>], values: &[f64], dim: usize, eps: f64) -> Vec<f32> {
    let mut w = vec![0f32; axes.len() * dim];
    for ((row, axis), &l) in w.chunks_exact_mut(dim).zip(axes).zip(values) {
        let s = whitening_scale(l, eps);
        let big = axis
            .iter()
            .copied()
            .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        for (w, v) in row.iter_mut().zip(axis) {
            *w = (sign * s * v) as f32;
        }
    }
    w
}

impl Standardisation {
    /// Fits μ and W on `embeddings`, rows of `dim` values (at least 2 rows): unit embeddings,
    /// or patch tokens for the dense tasks' standardisation.
    /// `shrinkage` ≥ 0 is ε relative to the mean eigenvalue (0 = full whitening).
    pub fn fit(embeddings: &[f32], dim: usize, shrinkage: f64) -> Result<Self> {
        Self::fit_with_spread(embeddings, dim, shrinkage, None).map(|(s, _)| s)
    }

    /// [`Self::fit`] keeping only the `components` leading axes of the procedural covariance:
    /// W = diag((λᵢ + ε)^(−1/2))·V_Mᵀ, [components, dim] (PCA whitening; each axis signed so its
    /// largest entry is positive). For cosine similarity it equals ZCA whitening followed by
    /// dropping the weakest axes, so a wide pooling (`grid8`, 12,288 values) keeps a memory
    /// of the usual width or less. `components` = `dim` is [`Self::fit`]. With fewer rows than
    /// `dim` (every patch token: 12,288 values from 8,000 images) the axes come from the n×n Gram
    /// matrix instead of the covariance ([`crate::linalg::leading_axes_by_gram`]). Errors when
    /// `components` is 0, exceeds `dim`, or (in the Gram form) is not below the row count.
    pub fn fit_components(
        embeddings: &[f32],
        dim: usize,
        shrinkage: f64,
        components: usize,
    ) -> Result<Self> {
        if components == 0 || components > dim {
            bail!("standardisation: {components} components of a width-{dim} embedding");
        }
        let reduce = (components < dim).then_some(components);
        Self::fit_with_spread(embeddings, dim, shrinkage, reduce).map(|(s, _)| s)
    }

    /// [`Self::fit`] (or, with `components`, [`Self::fit_components`]) and the mean squared
    /// norm of W·(x − μ) over the fitted rows, Σₖ λₖ·sₖ²·(n − 1)/n with sₖ = (λₖ + ε)^(−1/2)
    /// over the kept axes (computed from the spectrum, not by transforming the rows again).
    fn fit_with_spread(
        embeddings: &[f32],
        dim: usize,
        shrinkage: f64,
        components: Option<usize>,
    ) -> Result<(Self, f64)> {
        if dim == 0 || !embeddings.len().is_multiple_of(dim) || embeddings.len() / dim < 2 {
            bail!(
                "standardisation: {} values are not ≥ 2 rows of {dim}",
                embeddings.len()
            );
        }
        if !(shrinkage.is_finite() && shrinkage >= 0.0) {
            bail!("standardisation: shrinkage must be finite and ≥ 0, got {shrinkage}");
        }
        if embeddings.iter().any(|v| !v.is_finite()) {
            bail!("standardisation: the embeddings contain NaN or Inf");
        }
        let n = embeddings.len() / dim;
        let model_err = |e: crate::Error| candle_core::Error::Msg(format!("standardisation: {e}"));
        // (mean, the kept axes' eigenvalues by decreasing size, their unit axes, mean eigenvalue
        // over all `dim`, W).
        let (mean, kept_values, whitening) = match components {
            // Fewer rows than dimensions: the n×n Gram form, not the dim×dim covariance
            // (12,288 dimensions from 8,000 images: an 8,000² problem instead of 12,288²).
            Some(m) if n < dim => {
                if m >= n {
                    bail!(
                        "standardisation: {m} components need more than {m} images to fit on, got {n}"
                    );
                }
                let (mean, values, axes, trace) =
                    crate::linalg::leading_axes_by_gram(embeddings, dim, m).map_err(model_err)?;
                let eps = (shrinkage * trace / dim as f64).max(1e-12);
                let w = pca_whitening(&axes, &values, dim, eps);
                (mean, values.iter().map(|&l| (l, eps)).collect(), w)
            }
            _ => {
                let (mean, cov) = crate::linalg::mean_and_covariance(embeddings, dim);
                let (eigenvalues, eigenvectors) =
                    crate::linalg::symmetric_eigen(cov, dim).map_err(model_err)?;
                let mean_eigenvalue =
                    eigenvalues.iter().map(|l| l.max(0.0)).sum::<f64>() / dim as f64;
                let eps = (shrinkage * mean_eigenvalue).max(1e-12);
                // Axes by decreasing eigenvalue; the ZCA form sums over all of them.
                let mut order: Vec<usize> = (0..dim).collect();
                order.sort_by(|&a, &b| eigenvalues[b].total_cmp(&eigenvalues[a]));
                let kept = &order[..components.unwrap_or(dim)];
                let w = match components {
                    // W = V·diag(scale)·Vᵀ, eigenvectors in the columns of V.
                    None => {
                        let scales: Vec<f64> = eigenvalues
                            .iter()
                            .map(|&l| whitening_scale(l, eps))
                            .collect();
                        crate::linalg::scaled_gram(&eigenvectors, dim, &scales)
                    }
                    Some(_) => {
                        let axes: Vec<Vec<f64>> = kept
                            .iter()
                            .map(|&k| (0..dim).map(|i| eigenvectors[i * dim + k]).collect())
                            .collect();
                        let values: Vec<f64> = kept.iter().map(|&k| eigenvalues[k]).collect();
                        pca_whitening(&axes, &values, dim, eps)
                    }
                };
                (
                    mean,
                    kept.iter()
                        .map(|&k| (eigenvalues[k], eps))
                        .collect::<Vec<_>>(),
                    w,
                )
            }
        };
        let spread = kept_values
            .iter()
            .map(|&(l, eps)| l.max(0.0) * whitening_scale(l, eps).powi(2))
            .sum::<f64>()
            * (n - 1) as f64
            / n as f64;
        let out_dim = kept_values.len();
        Ok((
            Self {
                dim,
                out_dim,
                mean: mean.into_iter().map(|m| m as f32).collect(),
                whitening_t: transposed(&whitening, out_dim, dim),
                whitening,
            },
            spread,
        ))
    }

    /// Input width D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Output width: [`Self::dim`], or fewer for [`Self::fit_components`].
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// FNV-1a over μ's and W's f32 bytes: tells two standardisations apart.
    pub fn digest(&self) -> u64 {
        let bytes: Vec<u8> = self
            .mean
            .iter()
            .chain(&self.whitening)
            .flat_map(|v| v.to_le_bytes())
            .collect();
        crate::hash::fnv1a(&bytes)
    }

    /// The two tensors to store under `keys`' names.
    pub(crate) fn to_tensors(
        &self,
        keys: StandardisationKeys,
    ) -> Result<[(&'static str, Tensor); 2]> {
        Ok([
            (
                keys.mean,
                Tensor::from_vec(self.mean.clone(), self.dim, &Device::Cpu)?,
            ),
            (
                keys.whitening,
                Tensor::from_vec(
                    self.whitening.clone(),
                    (self.out_dim, self.dim),
                    &Device::Cpu,
                )?,
            ),
        ])
    }

    /// Reads μ and W stored under `keys` from a backbone's tensors: `None` when neither key is
    /// present, an error when only one is, when a shape is not [D] / [M, D] (M = D unless
    /// `reducible`, 1 ≤ M ≤ D if it is), or when a value is not finite.
    pub(crate) fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        keys: StandardisationKeys,
        dim: usize,
        reducible: bool,
    ) -> Result<Option<Self>> {
        let StandardisationKeys {
            mean: mean_key,
            whitening: whitening_key,
        } = keys;
        let (mean, whitening) = match (tensors.get(mean_key), tensors.get(whitening_key)) {
            (None, None) => return Ok(None),
            (Some(m), Some(w)) => (m, w),
            _ => bail!(
                "standardisation: `{mean_key}` and `{whitening_key}` must both be present or both absent"
            ),
        };
        let out_dim = match whitening.dims() {
            &[m, d] if d == dim && (m == dim || (reducible && (1..dim).contains(&m))) => m,
            _ => usize::MAX,
        };
        if mean.dims() != [dim] || out_dim == usize::MAX {
            let rows = if reducible { "M ≤ " } else { "" };
            bail!(
                "standardisation: `{mean_key}` is {:?} and `{whitening_key}` {:?}; the width {dim} needs [{dim}] and [{rows}{dim}, {dim}]",
                mean.dims(),
                whitening.dims()
            );
        }
        let mean: Vec<f32> = mean.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        let whitening: Vec<f32> = whitening
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        if mean.iter().chain(&whitening).any(|v| !v.is_finite()) {
            bail!("standardisation: `{mean_key}` or `{whitening_key}` holds NaN or Inf");
        }
        Ok(Some(Self {
            dim,
            out_dim,
            mean,
            whitening_t: transposed(&whitening, out_dim, dim),
            whitening,
        }))
    }

    /// W·(x − μ) for each row of `x`: [B, D] → [B, M] (not normalised; M = [`Self::out_dim`]).
    /// Each output is one dot product in a fixed order (k = 0, 1, …, separate multiply and
    /// add), independent of B, of the thread count and of the SIMD width
    /// ([`matvec_rows_in_order`]).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (b, d) = x.dims2()?;
        if d != self.dim {
            bail!("standardisation: input width {d}, fitted for {}", self.dim);
        }
        let m = self.out_dim;
        let values: Vec<f32> = x
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let mut centred = values;
        for row in centred.chunks_exact_mut(d) {
            for (c, m) in row.iter_mut().zip(&self.mean) {
                *c -= m;
            }
        }
        let mut out = vec![0f32; b * m];
        if out.is_empty() {
            return Tensor::from_vec(out, (b, m), x.device());
        }
        // Blocks of 32 rows on the pool; each output's arithmetic is the same in any block.
        centred
            .par_chunks(32 * d)
            .zip(out.par_chunks_mut(32 * m))
            .for_each(|(x, o)| matvec_rows_in_order(x, &self.whitening_t, d, m, o));
        Tensor::from_vec(out, (b, m), x.device())
    }
}

impl Standardisation {
    /// [`Self::fit`] on `rows` ([N·dim] row-major, N ≥ 2), then W scaled so that the fitted
    /// rows' mean squared norm after the transform is `dim`: unit variance per dimension on
    /// average, the scale of ImageNet-normalised pixels, whatever the shrinkage. For features
    /// that are used unnormalised (the patch tokens, whose dot products set the dense tasks'
    /// attention).
    pub fn fit_unit_variance(rows: &[f32], dim: usize, shrinkage: f64) -> Result<Self> {
        let (mut s, mean_square) = Self::fit_with_spread(rows, dim, shrinkage, None)?;
        if !(mean_square.is_finite() && mean_square > 0.0) {
            bail!("standardisation: the rows do not vary");
        }
        let factor = (dim as f64 / mean_square).sqrt() as f32;
        s.whitening.iter_mut().for_each(|w| *w *= factor);
        s.whitening_t.iter_mut().for_each(|w| *w *= factor);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        // A narrow cone: a shared direction plus anisotropic noise, like an untrained ViT's CLS.
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut row: Vec<f64> = (0..dim)
                .map(|j| 3.0 + rng.normal() * (0.05 + 0.2 * j as f64 / dim as f64))
                .collect();
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
            out.extend(row.into_iter().map(|x| x as f32));
        }
        out
    }

    #[test]
    fn full_whitening_gives_zero_mean_and_identity_covariance() {
        let dim = 6;
        let x = unit_rows(4000, dim, 1);
        let s = Standardisation::fit(&x, dim, 0.0).unwrap();
        let t = Tensor::from_vec(x, (4000, dim), &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = s.apply(&t).unwrap().to_vec2().unwrap();
        let n = y.len() as f64;
        for i in 0..dim {
            let mi: f64 = y.iter().map(|r| r[i] as f64).sum::<f64>() / n;
            assert!(mi.abs() < 1e-3, "mean {i} = {mi}");
            for j in 0..dim {
                let cij: f64 = y.iter().map(|r| r[i] as f64 * r[j] as f64).sum::<f64>() / (n - 1.0);
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((cij - want).abs() < 2e-2, "cov ({i},{j}) = {cij}");
            }
        }
    }

    #[test]
    fn pca_whitening_keeps_the_leading_axes_whitened() {
        let (dim, m, n) = (8, 3, 4000);
        let x = unit_rows(n, dim, 11);
        let s = Standardisation::fit_components(&x, dim, 0.0, m).unwrap();
        assert_eq!((s.dim(), s.out_dim()), (dim, m));
        let y: Vec<Vec<f32>> = s
            .apply(&Tensor::from_vec(x.clone(), (n, dim), &Device::Cpu).unwrap())
            .unwrap()
            .to_vec2()
            .unwrap();
        assert_eq!(y[0].len(), m);
        for i in 0..m {
            for j in 0..m {
                let cij: f64 =
                    y.iter().map(|r| r[i] as f64 * r[j] as f64).sum::<f64>() / (n - 1) as f64;
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((cij - want).abs() < 2e-2, "cov ({i},{j}) = {cij}");
            }
        }
        // Keeping every axis is the ZCA whitening, bit for bit.
        let zca = Standardisation::fit(&x, dim, 0.0).unwrap();
        assert_eq!(
            Standardisation::fit_components(&x, dim, 0.0, dim).unwrap(),
            zca
        );
        assert!(Standardisation::fit_components(&x, dim, 0.0, 0).is_err());
        assert!(Standardisation::fit_components(&x, dim, 0.0, dim + 1).is_err());
        // Stored as [m, dim]: read back where a reduction is allowed, refused where it is not.
        let map: HashMap<String, Tensor> = s
            .to_tensors(StandardisationKeys::EMBEDDING)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let keys = StandardisationKeys::EMBEDDING;
        assert_eq!(
            Standardisation::from_tensors(&map, keys, dim, true).unwrap(),
            Some(s.clone())
        );
        assert!(Standardisation::from_tensors(&map, keys, dim, false).is_err());
    }

    #[test]
    fn the_gram_form_equals_the_covariance_form_with_fewer_rows_than_dimensions() {
        // 30 rows of 48 values: fit_components takes the 30×30 Gram form; the reference is the
        // 48×48 covariance's eigen-decomposition of the same rows.
        let (dim, n, m) = (48, 30, 6);
        let x = unit_rows(n, dim, 12);
        let s = Standardisation::fit_components(&x, dim, 0.0, m).unwrap();
        assert_eq!((s.dim(), s.out_dim()), (dim, m));
        let (mean, cov) = crate::linalg::mean_and_covariance(&x, dim);
        let (values, vectors) = crate::linalg::symmetric_eigen(cov, dim).unwrap();
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        for (k, row) in s.whitening.chunks_exact(dim).enumerate() {
            let j = order[k];
            let scale = 1.0 / (values[j] + 1e-12).sqrt();
            // The same axis up to sign, scaled by (λ + ε)^(−1/2).
            let dot: f64 = row
                .iter()
                .enumerate()
                .map(|(i, &w)| w as f64 * vectors[i * dim + j])
                .sum();
            assert!(
                (dot.abs() / scale - 1.0).abs() < 1e-4,
                "axis {k}: {dot} against {scale}"
            );
        }
        for (a, b) in s.mean.iter().zip(&mean) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
        // As many axes as rows cannot be fitted: n rows span n − 1 centred directions.
        assert!(Standardisation::fit_components(&x, dim, 0.0, n).is_err());
    }

    #[test]
    fn whitening_opens_the_cone() {
        let dim = 16;
        let x = unit_rows(2000, dim, 2);
        let mean_cos = |rows: &[Vec<f32>]| {
            let unit: Vec<Vec<f32>> = rows
                .iter()
                .map(|r| {
                    let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                    r.iter().map(|v| v / n).collect()
                })
                .collect();
            let pairs = 500;
            (0..pairs)
                .map(|i| {
                    unit[2 * i]
                        .iter()
                        .zip(&unit[2 * i + 1])
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                })
                .sum::<f32>()
                / pairs as f32
        };
        let before: Vec<Vec<f32>> = x.chunks(dim).map(|r| r.to_vec()).collect();
        let s = Standardisation::fit(&x, dim, 0.1).unwrap();
        let after: Vec<Vec<f32>> = s
            .apply(&Tensor::from_vec(x.clone(), (2000, dim), &Device::Cpu).unwrap())
            .unwrap()
            .to_vec2()
            .unwrap();
        assert!(mean_cos(&before) > 0.9, "the fixture is a cone");
        assert!(mean_cos(&after).abs() < 0.1, "after: {}", mean_cos(&after));
    }

    #[test]
    fn a_row_maps_to_the_same_bits_alone_and_in_a_batch() {
        let dim = 12;
        let x = unit_rows(9, dim, 4);
        let s = Standardisation::fit(&unit_rows(100, dim, 5), dim, 0.1).unwrap();
        let all: Vec<Vec<f32>> = s
            .apply(&Tensor::from_vec(x.clone(), (9, dim), &Device::Cpu).unwrap())
            .unwrap()
            .to_vec2()
            .unwrap();
        for (i, row) in x.chunks(dim).enumerate() {
            let alone: Vec<Vec<f32>> = s
                .apply(&Tensor::from_vec(row.to_vec(), (1, dim), &Device::Cpu).unwrap())
                .unwrap()
                .to_vec2()
                .unwrap();
            assert_eq!(alone[0], all[i]);
        }
    }

    #[test]
    fn unit_variance_fit_gives_the_fitted_rows_a_mean_squared_norm_of_dim() {
        // The scale comes from the spectrum; transforming the rows must agree, at any shrinkage.
        let dim = 10;
        let rows = unit_rows(500, dim, 9);
        for shrinkage in [0.0, 1.0, 1e6] {
            let s = Standardisation::fit_unit_variance(&rows, dim, shrinkage).unwrap();
            let y: Vec<f32> = s
                .apply(&Tensor::from_vec(rows.clone(), (500, dim), &Device::Cpu).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mean_square = y.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / 500.0;
            assert!(
                (mean_square - dim as f64).abs() < 1e-3 * dim as f64,
                "shrinkage {shrinkage}: {mean_square}"
            );
        }
        let flat = vec![0.5f32; 4 * dim];
        assert!(Standardisation::fit_unit_variance(&flat, dim, 0.1).is_err());
    }

    #[test]
    fn tensors_round_trip_and_bad_ones_are_refused() {
        let dim = 4;
        let s = Standardisation::fit(&unit_rows(50, dim, 6), dim, 0.5).unwrap();
        for (keys, other) in [
            (
                StandardisationKeys::EMBEDDING,
                StandardisationKeys::PATCH_TOKENS,
            ),
            (
                StandardisationKeys::PATCH_TOKENS,
                StandardisationKeys::EMBEDDING,
            ),
        ] {
            let map: HashMap<String, Tensor> = s
                .to_tensors(keys)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(
                Standardisation::from_tensors(&map, keys, dim, false).unwrap(),
                Some(s.clone())
            );
            assert_eq!(
                Standardisation::from_tensors(&map, other, dim, false).unwrap(),
                None,
                "the other key set is separate"
            );
            assert!(
                Standardisation::from_tensors(&map, keys, dim + 1, false).is_err(),
                "wrong width"
            );
            let mut half = map.clone();
            half.remove(keys.whitening);
            assert!(
                Standardisation::from_tensors(&half, keys, dim, false).is_err(),
                "one key alone"
            );
            let mut nan = map.clone();
            nan.insert(
                keys.mean.into(),
                Tensor::new(&[f32::NAN, 0.0, 0.0, 0.0], &Device::Cpu).unwrap(),
            );
            assert!(
                Standardisation::from_tensors(&nan, keys, dim, false).is_err(),
                "NaN"
            );
            assert_eq!(
                Standardisation::from_tensors(&HashMap::new(), keys, dim, false).unwrap(),
                None
            );
        }
    }

    #[test]
    fn apply_is_the_sequential_dot_product_bit_for_bit() {
        // The formula `apply` computed before its kernel: one sequential sum per output.
        for (dim, rows, kept) in [(37, 1, 37), (64, 9, 64), (130, 45, 130), (96, 17, 20)] {
            let x = unit_rows(rows, dim, 7);
            let s = Standardisation::fit_components(&unit_rows(3 * dim, dim, 8), dim, 0.1, kept)
                .unwrap();
            let got: Vec<f32> = s
                .apply(&Tensor::from_vec(x.clone(), (rows, dim), &Device::Cpu).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (row, got_row) in x.chunks_exact(dim).zip(got.chunks_exact(kept)) {
                let centred: Vec<f32> = row.iter().zip(&s.mean).map(|(v, m)| v - m).collect();
                for (g, w_row) in got_row.iter().zip(s.whitening.chunks_exact(dim)) {
                    let want: f32 = w_row.iter().zip(&centred).map(|(w, c)| w * c).sum();
                    assert_eq!(g.to_bits(), want.to_bits(), "dim {dim}");
                }
            }
        }
    }
}
