//! Small dense linear algebra shared by the stages that need it (the procedural standardisation
//! of the embedding, the PCA of patch features): f64, row-major, no dependencies.

/// Eigen-decomposition of a symmetric `dim`×`dim` matrix (row-major) by cyclic Jacobi
/// rotations: (eigenvalues, eigenvectors as the columns of a row-major matrix).
pub fn symmetric_eigen(mut a: Vec<f64>, dim: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; dim * dim];
    (0..dim).for_each(|i| v[i * dim + i] = 1.0);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..50 {
        let off: f64 =
            (0..dim).flat_map(|i| (0..dim).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * dim + j].powi(2)).sum();
        if off.sqrt() <= 1e-14 * scale.max(1e-300) {
            break;
        }
        for p in 0..dim {
            for q in p + 1..dim {
                let apq = a[p * dim + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * dim + q] - a[p * dim + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..dim {
                    let (akp, akq) = (a[k * dim + p], a[k * dim + q]);
                    a[k * dim + p] = c * akp - s * akq;
                    a[k * dim + q] = s * akp + c * akq;
                }
                for k in 0..dim {
                    let (apk, aqk) = (a[p * dim + k], a[q * dim + k]);
                    a[p * dim + k] = c * apk - s * aqk;
                    a[q * dim + k] = s * apk + c * aqk;
                }
                for k in 0..dim {
                    let (vkp, vkq) = (v[k * dim + p], v[k * dim + q]);
                    v[k * dim + p] = c * vkp - s * vkq;
                    v[k * dim + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..dim).map(|i| a[i * dim + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let n = 7;
        let mut rng = Rng::new(3);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut m = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum();
            }
        }
        let (l, v) = symmetric_eigen(m.clone(), n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * l[k] * v[j * n + k]).sum();
                assert!((r - m[i * n + j]).abs() < 1e-9, "({i},{j}): {r} vs {}", m[i * n + j]);
                let o: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                assert!((o - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }
}
