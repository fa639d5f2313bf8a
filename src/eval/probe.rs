//! Linear probe (the paper's Table 5 beside kNN): a multinomial logistic regression on frozen
//! embeddings.
//!
//! Deviation from DINO's `eval_linear.py` (SGD over augmented crops for 100 epochs): the probe
//! sees each image's one embedding, standardised with the memory's mean and standard deviation,
//! and is fitted full-batch with Adam (lr 0.01, 300 steps) on the cross-entropy plus
//! `l2`·‖W‖²/2. The problem is convex, so this is a deterministic function of the embeddings.

use candle_core::{D, DType, Device, Tensor};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    pub steps: usize,
    pub lr: f64,
    pub l2: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            lr: 0.01,
            l2: 1e-4,
        }
    }
}

pub struct ProbeReport {
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub final_loss: f64,
}

fn err(e: candle_core::Error) -> Error {
    Error::Model(e.to_string())
}

/// Fits on (`train`, `train_labels`) and scores top-1 on (`test`, `test_labels`); rows of `dim`.
pub fn fit_and_score(
    train: &[f32],
    train_labels: &[u32],
    test: &[f32],
    test_labels: &[u32],
    dim: usize,
    classes: usize,
    cfg: &ProbeConfig,
) -> Result<ProbeReport> {
    let n = train_labels.len();
    if dim == 0 || n == 0 || train.len() != n * dim || test.len() != test_labels.len() * dim {
        return Err(Error::Model(format!(
            "probe: {} train values for {n} labels of dim {dim}",
            train.len()
        )));
    }
    if let Some(&bad) = train_labels
        .iter()
        .chain(test_labels)
        .find(|&&l| l as usize >= classes)
    {
        return Err(Error::Model(format!(
            "probe: label {bad} outside {classes} classes"
        )));
    }
    let dev = Device::Cpu;
    let x = Tensor::from_slice(train, (n, dim), &dev).map_err(err)?;
    let mean = x.mean_keepdim(0).map_err(err)?;
    let std = x
        .broadcast_sub(&mean)
        .and_then(|c| c.sqr())
        .and_then(|s| s.mean_keepdim(0))
        .and_then(|v| (v + 1e-6)?.sqrt())
        .map_err(err)?;
    let standardise = |t: &Tensor| t.broadcast_sub(&mean).and_then(|c| c.broadcast_div(&std));
    let x = standardise(&x).map_err(err)?;
    let xt = x.t().and_then(|t| t.contiguous()).map_err(err)?;
    let onehot = {
        let mut v = vec![0f32; n * classes];
        for (i, &l) in train_labels.iter().enumerate() {
            v[i * classes + l as usize] = 1.0;
        }
        Tensor::from_vec(v, (n, classes), &dev).map_err(err)?
    };
    let mut w = Tensor::zeros((dim, classes), DType::F32, &dev).map_err(err)?;
    let mut b = Tensor::zeros((1, classes), DType::F32, &dev).map_err(err)?;
    let (mut mw, mut vw) = (w.zeros_like().map_err(err)?, w.zeros_like().map_err(err)?);
    let (mut mb, mut vb) = (b.zeros_like().map_err(err)?, b.zeros_like().map_err(err)?);
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut final_loss = f64::NAN;
    for step in 1..=cfg.steps {
        let logits = x
            .matmul(&w)
            .and_then(|l| l.broadcast_add(&b))
            .map_err(err)?;
        let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1).map_err(err)?;
        final_loss = (log_p
            .mul(&onehot)
            .and_then(|t| t.sum_all())
            .and_then(|s| s.to_scalar::<f32>())
            .map_err(err)? as f64)
            / -(n as f64);
        // d(mean CE)/d logits = softmax − onehot, over n.
        let g_logits =
            (log_p.exp().and_then(|p| p - &onehot).map_err(err)? / n as f64).map_err(err)?;
        let gw = xt
            .matmul(&g_logits)
            .and_then(|g| g + (&w * cfg.l2)?)
            .map_err(err)?;
        let gb = g_logits.sum_keepdim(0).map_err(err)?;
        let t = step as i32;
        let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        let adam = |p: &Tensor,
                    g: &Tensor,
                    m: &mut Tensor,
                    v: &mut Tensor|
         -> candle_core::Result<Tensor> {
            *m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
            *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + eps)?)?;
            p - (update * cfg.lr)?
        };
        w = adam(&w, &gw, &mut mw, &mut vw).map_err(err)?;
        b = adam(&b, &gb, &mut mb, &mut vb).map_err(err)?;
    }
    let accuracy = |x: &Tensor, labels: &[u32]| -> Result<f64> {
        if labels.is_empty() {
            return Ok(0.0);
        }
        let pred: Vec<u32> = x
            .matmul(&w)
            .and_then(|l| l.broadcast_add(&b))
            .and_then(|l| l.argmax(D::Minus1))
            .and_then(|p| p.to_vec1())
            .map_err(err)?;
        Ok(pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64)
    };
    let test_x = Tensor::from_slice(test, (test_labels.len(), dim), &dev)
        .and_then(|t| standardise(&t))
        .map_err(err)?;
    Ok(ProbeReport {
        train_accuracy: accuracy(&x, train_labels)?,
        test_accuracy: accuracy(&test_x, test_labels)?,
        final_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three Gaussian clusters in 4-D that a linear classifier separates; a nearest-class-mean
    /// reference on the same data bounds what the probe must reach.
    #[test]
    fn separates_linearly_separable_classes_and_rejects_bad_labels() {
        let mut rng = crate::rng::Rng::new(7);
        let centres = [
            [2.0f32, 0.0, 0.0, 1.0],
            [0.0, 2.0, 0.0, -1.0],
            [0.0, 0.0, 2.0, 0.0],
        ];
        let mut make = |n: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let c = i % 3;
                for &m in &centres[c] {
                    x.push(m + 0.5 * (rng.uniform() as f32 - 0.5));
                }
                y.push(c as u32);
            }
            (x, y)
        };
        let (tx, ty) = make(300);
        let (qx, qy) = make(90);
        let r = fit_and_score(&tx, &ty, &qx, &qy, 4, 3, &ProbeConfig::default()).unwrap();
        assert_eq!(
            r.test_accuracy, 1.0,
            "clusters 2 apart with noise ±0.25 are separable"
        );
        assert!(r.final_loss < 0.2, "loss {}", r.final_loss);
        // Features without class signal: the probe stays near chance on new queries.
        let mut noise = crate::rng::Rng::new(8);
        let mut random = |n: usize| {
            (0..n * 4)
                .map(|_| noise.uniform() as f32)
                .collect::<Vec<f32>>()
        };
        let (nx, nq) = (random(300), random(90));
        let s = fit_and_score(&nx, &ty, &nq, &qy, 4, 3, &ProbeConfig::default()).unwrap();
        assert!(s.test_accuracy < 0.55, "{}", s.test_accuracy);
        assert!(fit_and_score(&tx, &ty, &qx, &qy, 4, 2, &ProbeConfig::default()).is_err());
    }
}
