//! Small dense linear algebra shared by the stages that need it (the procedural standardisation
//! of the embedding, the PCA of patch features and of the memory map): row-major; the
//! eigen-decomposition and the standardisation's covariance in f64 (the PCA's covariance is an
//! f32 product, accumulated by candle).
//!
//! The principal axes come from an exact eigen-decomposition of the covariance (faer's
//! self-adjoint eigensolver: Householder tridiagonalisation, then a divide-and-conquer /
//! QR step, sequential so the result does not depend on the thread count), not from
//! linfa-reduction's `Pca`: its truncated SVD (linfa-linalg's LOBPCG) panics with "NaN values
//! in array" on bilinearly upsampled token maps — the input of the paper's R². A test in
//! `dense::pca` checks this implementation against linfa-reduction's where the latter works.
//! (Until session 15 this was a cyclic Jacobi of our own: exact, but minutes at 768 dimensions
//! and far longer at the 3,072 of a 4×4 grid; faer takes seconds there.)

use faer::{Mat, Par, Side};

use crate::error::{Error, Result};

/// Eigen-decomposition of a symmetric `dim`×`dim` matrix (row-major; the lower triangle is
/// read): (eigenvalues in increasing order, eigenvectors as the columns of a row-major matrix).
/// Errors on non-finite input, or when the solver does not converge.
///
/// Sequential because faer's `rayon` feature is off (`Cargo.toml`): the solver then reads the
/// global parallelism as `Par::Seq`, so results do not depend on the thread count.
pub(crate) fn symmetric_eigen(a: Vec<f64>, dim: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::Model(
            "eigen-decomposition of a matrix holding NaN or Inf".into(),
        ));
    }
    let m = Mat::<f64>::from_fn(dim, dim, |i, j| a[i * dim + j]);
    let eigen = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Model(format!("eigen-decomposition failed: {e:?}")))?;
    let (u, s) = (eigen.U(), eigen.S());
    let values: Vec<f64> = (0..dim).map(|k| s[k]).collect();
    let mut vectors = vec![0.0f64; dim * dim];
    for i in 0..dim {
        for k in 0..dim {
            vectors[i * dim + k] = u[(i, k)];
        }
    }
    Ok((values, vectors))
}

/// Mean and sample covariance (row-major `dim`×`dim`) of `rows` (n ≥ 2 rows of `dim` values),
/// in f64 throughout: the centred product XᵀX by faer's matrix product, sequential.
pub(crate) fn mean_and_covariance(rows: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() / dim.max(1);
    let (mean, x) = centred(rows, dim);
    let cov = product(x.transpose(), x.as_ref(), 1.0 / (n.max(2) - 1) as f64);
    let cov = (0..dim * dim).map(|i| cov[(i / dim, i % dim)]).collect();
    (mean, cov)
}

/// (mean, the kept eigenvalues by decreasing size, their unit axes, the covariance's trace).
pub(crate) type LeadingAxes = (Vec<f64>, Vec<f64>, Vec<Vec<f64>>, f64);

/// The `m` leading principal axes of `rows` (n rows of `dim` values, n ≤ dim) by the Gram form:
/// the eigenpairs (λ, u) of G = X̃·X̃ᵀ/(n − 1) for the centred rows X̃ are the nonzero ones of
/// the covariance, with axes v = X̃ᵀ·u/√((n − 1)·λ). Returns (mean, the m eigenvalues by
/// decreasing size, the m unit axes, the covariance's trace). An n×n problem instead of
/// dim×dim. Errors when m ≥ n, on non-finite input, or when a kept eigenvalue is not positive
/// (the rows span fewer than m directions).
pub(crate) fn leading_axes_by_gram(rows: &[f32], dim: usize, m: usize) -> Result<LeadingAxes> {
    let n = rows.len() / dim.max(1);
    if m == 0 || m >= n {
        return Err(Error::Model(format!(
            "{m} leading axes of {n} rows: need 1 ≤ m < rows"
        )));
    }
    let (mean, x) = centred(rows, dim);
    let gram = product(x.as_ref(), x.transpose(), 1.0 / (n - 1) as f64);
    let trace: f64 = (0..n).map(|i| gram[(i, i)]).sum();
    let (values, vectors) = symmetric_eigen((0..n * n).map(|i| gram[(i / n, i % n)]).collect(), n)?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let kept = &order[..m];
    if kept.iter().any(|&k| values[k] <= 0.0) {
        return Err(Error::Model(format!(
            "the rows span fewer than {m} directions"
        )));
    }
    let u = Mat::<f64>::from_fn(n, m, |i, j| vectors[i * n + kept[j]]);
    let v = product(x.transpose(), u.as_ref(), 1.0);
    let axes = (0..m)
        .map(|j| {
            let norm = ((n - 1) as f64 * values[kept[j]]).sqrt();
            (0..dim).map(|i| v[(i, j)] / norm).collect()
        })
        .collect();
    Ok((mean, kept.iter().map(|&k| values[k]).collect(), axes, trace))
}

/// The mean of `rows` (row-major, `dim` columns, at least one row), accumulated in f64 in row
/// order.
fn column_mean(rows: &[f32], dim: usize) -> Vec<f64> {
    let n = rows.len() / dim.max(1);
    let mut mean = vec![0f64; dim];
    for row in rows.chunks_exact(dim) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    mean
}

/// [`column_mean`] and the centred rows as an f64 matrix (n × `dim`).
fn centred(rows: &[f32], dim: usize) -> (Vec<f64>, Mat<f64>) {
    let mean = column_mean(rows, dim);
    let n = rows.len() / dim.max(1);
    let x = Mat::<f64>::from_fn(n, dim, |r, c| rows[r * dim + c] as f64 - mean[c]);
    (mean, x)
}

/// `scale`·a·b by faer's matrix product, sequential.
fn product(a: faer::MatRef<'_, f64>, b: faer::MatRef<'_, f64>, scale: f64) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    faer::linalg::matmul::matmul(out.as_mut(), faer::Accum::Replace, a, b, scale, Par::Seq);
    out
}

/// V·diag(`scales`)·Vᵀ as f32, row-major, for `vectors` the columns of a row-major
/// `dim`×`dim` matrix V (the form of a ZCA whitening).
pub(crate) fn scaled_gram(vectors: &[f64], dim: usize, scales: &[f64]) -> Vec<f32> {
    let v = Mat::<f64>::from_fn(dim, dim, |i, k| vectors[i * dim + k]);
    let vs = Mat::<f64>::from_fn(dim, dim, |i, k| vectors[i * dim + k] * scales[k]);
    let w = product(vs.as_ref(), v.transpose(), 1.0);
    (0..dim * dim)
        .map(|i| w[(i / dim, i % dim)] as f32)
        .collect()
}

/// A fitted projection: `components[k]` is the k-th principal axis (unit length).
#[derive(Clone, Debug)]
pub struct Projection {
    pub mean: Vec<f32>,
    pub components: Vec<Vec<f32>>,
    /// Fraction of the variance each component explains.
    pub explained: Vec<f64>,
}

impl Projection {
    /// Fits `n_components` principal axes to `rows` (n × dim, row-major): the top eigenvectors
    /// of the covariance matrix ([`symmetric_eigen`], exact and deterministic), each signed so
    /// its largest entry is positive.
    pub fn fit(rows: &[f32], dim: usize, n_components: usize) -> Result<Self> {
        let (mean, cov) = covariance(rows, dim, n_components)?;
        let (values, vectors) = symmetric_eigen(cov.clone(), dim)?;
        Ok(Self::from_eigen(
            mean,
            &cov,
            dim,
            &values,
            &vectors,
            dim,
            n_components,
        ))
    }

    /// Like [`fit`](Self::fit) for a few leading axes of a wide covariance: block power
    /// (subspace) iteration with 8 extra vectors and a Rayleigh–Ritz step, instead of an eigen-
    /// decomposition of the whole `dim`×`dim` matrix. Deterministic
    /// (fixed start); iterates until the leading subspace moves less than 1e-10, at most 500
    /// times. Agrees with [`fit`](Self::fit) to the eigen-gap's precision (test below).
    pub(crate) fn fit_leading(rows: &[f32], dim: usize, n_components: usize) -> Result<Self> {
        let (mean, cov) = covariance(rows, dim, n_components)?;
        let p = (n_components + 8).min(dim);
        let mut rng = crate::rng::Rng::new(0x5eed);
        // q: p column vectors of length dim, stored vector by vector.
        let mut q: Vec<Vec<f64>> = (0..p)
            .map(|_| (0..dim).map(|_| rng.normal()).collect())
            .collect();
        orthonormalise(&mut q);
        for _ in 0..500 {
            let mut z: Vec<Vec<f64>> = q.iter().map(|v| mat_vec(&cov, dim, v)).collect();
            orthonormalise(&mut z);
            let moved = (0..n_components)
                .map(|j| 1.0 - dot64(&z[j], &q[j]).abs())
                .fold(0.0f64, f64::max);
            q = z;
            if moved < 1e-10 {
                break;
            }
        }
        // Rayleigh–Ritz: the p×p projected covariance, diagonalised exactly.
        let cq: Vec<Vec<f64>> = q.iter().map(|v| mat_vec(&cov, dim, v)).collect();
        let t: Vec<f64> = (0..p)
            .flat_map(|a| (0..p).map(|b| dot64(&q[a], &cq[b])).collect::<Vec<_>>())
            .collect();
        let (values, small) = symmetric_eigen(t, p)?;
        // Ritz vectors as the columns of a row-major dim × p matrix.
        let mut vectors = vec![0.0f64; dim * p];
        for i in 0..dim {
            for j in 0..p {
                vectors[i * p + j] = (0..p).map(|a| q[a][i] * small[a * p + j]).sum();
            }
        }
        Ok(Self::from_eigen(
            mean,
            &cov,
            dim,
            &values,
            &vectors,
            p,
            n_components,
        ))
    }

    /// The leading `n_components` of eigenpairs (`vectors` row-major `dim` × `cols`, one pair
    /// per column), each signed so its largest entry is positive.
    fn from_eigen(
        mean: Vec<f64>,
        cov: &[f64],
        dim: usize,
        values: &[f64],
        vectors: &[f64],
        cols: usize,
        n_components: usize,
    ) -> Self {
        let total: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
        let mut order: Vec<usize> = (0..cols).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let components = order[..n_components]
            .iter()
            .map(|&j| {
                let mut v: Vec<f32> = (0..dim).map(|i| vectors[i * cols + j] as f32).collect();
                let big = v
                    .iter()
                    .copied()
                    .fold(0.0f32, |a, b| if b.abs() > a.abs() { b } else { a });
                if big < 0.0 {
                    v.iter_mut().for_each(|x| *x = -*x);
                }
                v
            })
            .collect();
        let explained = order[..n_components]
            .iter()
            .map(|&j| {
                if total > 0.0 {
                    values[j].max(0.0) / total
                } else {
                    0.0
                }
            })
            .collect();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            components,
            explained,
        }
    }

    /// Projections of each row (n × components).
    pub(crate) fn project(&self, rows: &[f32]) -> Vec<Vec<f32>> {
        let dim = self.mean.len();
        rows.chunks_exact(dim)
            .map(|r| {
                self.components
                    .iter()
                    .map(|c| {
                        c.iter()
                            .zip(r)
                            .zip(&self.mean)
                            .map(|((a, x), m)| a * (x - m))
                            .sum()
                    })
                    .collect()
            })
            .collect()
    }
}

/// Mean and sample covariance (row-major `dim`×`dim`, f64) of `rows` (n × dim).
fn covariance(rows: &[f32], dim: usize, n_components: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = rows.len().checked_div(dim).unwrap_or(0);
    if n < 2 || dim < n_components {
        return Err(Error::InvalidConfig(format!(
            "PCA needs at least 2 tokens of at least {n_components} values (got {n} of {dim})"
        )));
    }
    let mean = column_mean(rows, dim);
    let centred: Vec<f32> = rows
        .chunks_exact(dim)
        .flat_map(|r| r.iter().zip(&mean).map(|(&v, m)| (v as f64 - m) as f32))
        .collect();
    let model = |e: candle_core::Error| Error::Model(format!("PCA: {e}"));
    let x = candle_core::Tensor::from_vec(centred, (n, dim), &candle_core::Device::Cpu)
        .map_err(model)?;
    let cov: Vec<f64> = x
        .t()
        .and_then(|t| t.matmul(&x))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(model)?
        .into_iter()
        .map(|v| v as f64 / (n - 1) as f64)
        .collect();
    Ok((mean, cov))
}

fn dot64(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn mat_vec(m: &[f64], dim: usize, v: &[f64]) -> Vec<f64> {
    m.chunks_exact(dim).map(|row| dot64(row, v)).collect()
}

/// Modified Gram–Schmidt, in place; a vector that vanishes is left at zero.
fn orthonormalise(vs: &mut [Vec<f64>]) {
    for i in 0..vs.len() {
        let (done, rest) = vs.split_at_mut(i);
        let v = &mut rest[0];
        for u in done.iter() {
            let d = dot64(u, v);
            v.iter_mut().zip(u).for_each(|(x, y)| *x -= d * y);
        }
        let norm = dot64(v, v).sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// Divides each row of `rows` (row-major, `dim` columns) by its L2 norm, clamped at 1e-12 as
/// PyTorch's `F.normalize` does; the slice counterpart of `model::layers::l2_normalise`.
pub fn l2_normalise_rows(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_exact_mut(dim.max(1)) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        r.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn symmetric_eigen_reconstructs_a_symmetric_matrix() {
        let n = 7;
        let mut rng = Rng::new(3);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut m = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum();
            }
        }
        let (l, v) = symmetric_eigen(m.clone(), n).unwrap();
        let mut nan = m.clone();
        nan[1] = f64::NAN;
        assert!(symmetric_eigen(nan, n).is_err());
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * l[k] * v[j * n + k]).sum();
                assert!(
                    (r - m[i * n + j]).abs() < 1e-9,
                    "({i},{j}): {r} vs {}",
                    m[i * n + j]
                );
                let o: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                assert!((o - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn leading_axes_by_subspace_iteration_match_the_full_decomposition() {
        let (n, dim) = (400, 40);
        let mut rng = Rng::new(3);
        // Decaying spectrum with clear gaps on the first axes.
        let rows: Vec<f32> = (0..n)
            .flat_map(|_| {
                (0..dim)
                    .map(|j| (rng.normal() * 3.0 / (1.0 + j as f64)) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let exact = Projection::fit(&rows, dim, 2).unwrap();
        let fast = Projection::fit_leading(&rows, dim, 2).unwrap();
        for c in 0..2 {
            let d: f32 = exact.components[c]
                .iter()
                .zip(&fast.components[c])
                .map(|(a, b)| a * b)
                .sum();
            assert!((d - 1.0).abs() < 1e-5, "component {c}: cosine {d}");
            assert!((exact.explained[c] - fast.explained[c]).abs() < 1e-9);
        }
    }
}
