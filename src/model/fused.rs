//! Fused CPU kernels with hand-written backward passes for the ops that dominate a ViT training
//! step: layer norm, exact GELU and the last-dimension softmax.
//!
//! candle's composite versions build a graph of many element-wise ops (each a pass over memory,
//! most single-threaded) and its fast versions have no backward pass at all. These run one pass
//! per direction, parallel over rows with rayon. Values and gradients are tested against the
//! composite reference ops in `layers.rs`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Rows of at least this many elements in total are split across threads.
const PARALLEL_MIN: usize = 1 << 14;

fn rows_par<'a>(out: &'a mut [f32], cols: usize) -> impl IndexedParallelIterator<Item = (usize, &'a mut [f32])> {
    out.par_chunks_mut(cols).with_min_len((PARALLEL_MIN / cols.max(1)).max(1)).enumerate()
}

// ---------------------------------------------------------------- GELU (erf) ---------------

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * FRAC_1_SQRT_2))
}

fn gelu_grad(x: f32) -> f32 {
    0.5 * (1.0 + libm::erff(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Exact GELU, x·Φ(x).
pub struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "procmem-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(4096).zip(x.par_chunks(4096)).for_each(|(o, i)| {
            for (o, i) in o.iter_mut().zip(i) {
                *o = gelu(*i);
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?))
    }
}

struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "procmem-gelu-bwd"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let g = f32s(s2, l2, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(4096).zip(x.par_chunks(4096).zip(g.par_chunks(4096))).for_each(|(o, (x, g))| {
            for ((o, x), g) in o.iter_mut().zip(x).zip(g) {
                *o = g * gelu_grad(*x);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------- softmax -------------------

/// Softmax over the last dimension.
pub struct SoftmaxLast;

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "procmem-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        let cols = l.shape().dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; x.len()];
        rows_par(&mut out, cols).for_each(|(r, o)| {
            let row = &x[r * cols..(r + 1) * cols];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for (o, v) in o.iter_mut().zip(row) {
                *o = (v - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            for o in o.iter_mut() {
                *o *= inv;
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?))
    }
}

struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "procmem-softmax-bwd"
    }
    /// dx = y ⊙ (g − Σ g⊙y)
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = f32s(s1, l1, self.name())?;
        let g = f32s(s2, l2, self.name())?;
        let cols = l1.shape().dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; y.len()];
        rows_par(&mut out, cols).for_each(|(r, o)| {
            let yr = &y[r * cols..(r + 1) * cols];
            let gr = &g[r * cols..(r + 1) * cols];
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, y), g) in o.iter_mut().zip(yr).zip(gr) {
                *o = y * (g - dot);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------- layer norm ----------------

/// Layer norm over the last dimension with weight and bias (PyTorch semantics, biased variance).
pub struct LayerNorm {
    pub eps: f32,
}

fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "procmem-layer-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let w = f32s(s2, l2, self.name())?;
        let b = f32s(s3, l3, self.name())?;
        let cols = w.len();
        if l1.shape().dims().last().copied() != Some(cols) || b.len() != cols {
            bail!("layer norm: input {:?} does not match weight {cols} / bias {}", l1.shape(), b.len());
        }
        let mut out = vec![0f32; x.len()];
        rows_par(&mut out, cols).for_each(|(r, o)| {
            let row = &x[r * cols..(r + 1) * cols];
            let (mean, rstd) = row_stats(row, self.eps);
            for (j, o) in o.iter_mut().enumerate() {
                *o = (row[j] - mean) * rstd * w[j] + b[j];
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &grad, &LayerNormBackwardInput { eps: self.eps })?;
        let dwb = x.apply_op2_no_bwd(&grad, &LayerNormBackwardParams { eps: self.eps })?;
        let cols = w.dim(0)?;
        Ok((Some(dx), Some(dwb.narrow(0, 0, 1)?.reshape(cols)?), Some(dwb.narrow(0, 1, 1)?.reshape(cols)?)))
    }
}

struct LayerNormBackwardInput {
    eps: f32,
}

impl CustomOp3 for LayerNormBackwardInput {
    fn name(&self) -> &'static str {
        "procmem-layer-norm-bwd-x"
    }
    /// dx = rstd · (g⊙w − mean(g⊙w) − x̂ · mean(g⊙w⊙x̂))
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let w = f32s(s2, l2, self.name())?;
        let g = f32s(s3, l3, self.name())?;
        let cols = w.len();
        let mut out = vec![0f32; x.len()];
        rows_par(&mut out, cols).for_each(|(r, o)| {
            let row = &x[r * cols..(r + 1) * cols];
            let gr = &g[r * cols..(r + 1) * cols];
            let (mean, rstd) = row_stats(row, self.eps);
            let (mut a, mut c) = (0.0f32, 0.0f32);
            for j in 0..cols {
                let gw = gr[j] * w[j];
                a += gw;
                c += gw * (row[j] - mean) * rstd;
            }
            let n = cols as f32;
            let (a, c) = (a / n, c / n);
            for j in 0..cols {
                let xhat = (row[j] - mean) * rstd;
                o[j] = rstd * (gr[j] * w[j] - a - xhat * c);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

struct LayerNormBackwardParams {
    eps: f32,
}

impl CustomOp2 for LayerNormBackwardParams {
    fn name(&self) -> &'static str {
        "procmem-layer-norm-bwd-wb"
    }
    /// [2, D]: dw = Σ g⊙x̂ and db = Σ g over all rows.
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let g = f32s(s2, l2, self.name())?;
        let cols = l1.shape().dims().last().copied().unwrap_or(1);
        let rows = x.len() / cols.max(1);
        let chunk = (PARALLEL_MIN / cols.max(1)).max(1);
        let partials: Vec<Vec<f32>> = (0..rows.div_ceil(chunk))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![0f32; 2 * cols];
                for r in c * chunk..((c + 1) * chunk).min(rows) {
                    let row = &x[r * cols..(r + 1) * cols];
                    let gr = &g[r * cols..(r + 1) * cols];
                    let (mean, rstd) = row_stats(row, self.eps);
                    for j in 0..cols {
                        acc[j] += gr[j] * (row[j] - mean) * rstd;
                        acc[cols + j] += gr[j];
                    }
                }
                acc
            })
            .collect();
        let mut out = vec![0f32; 2 * cols];
        for p in partials {
            for (o, v) in out.iter_mut().zip(p) {
                *o += v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((2, cols))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::rng::Rng;
    use crate::model::layers::reference;
    use candle_core::{Device, Var};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = Rng::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.normal() as f32).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Checks values and the gradient of Σ f(x)·r against the reference op, for all inputs.
    fn check(fused: impl Fn(&[Tensor]) -> Tensor, reference: impl Fn(&[Tensor]) -> Tensor, inputs: Vec<Tensor>, tol: f32) {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y_fused = fused(&ts);
        let y_ref = reference(&ts);
        assert!(max_diff(&y_fused, &y_ref) < tol, "values differ by {}", max_diff(&y_fused, &y_ref));
        let r = random(y_ref.dims(), 99);
        let g_fused = (&y_fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (&y_ref * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let a = g_fused.get(v).unwrap_or_else(|| panic!("fused op gave no gradient for input {i}"));
            let b = g_ref.get(v).unwrap();
            assert!(max_diff(a, b) < tol, "gradient {i} differs by {}", max_diff(a, b));
        }
    }

    #[test]
    fn gelu_matches_candle_gelu_erf_in_value_and_gradient() {
        check(|t| t[0].apply_op1(Gelu).unwrap(), |t| t[0].gelu_erf().unwrap(), vec![random(&[7, 300], 1)], 1e-5);
    }

    #[test]
    fn softmax_matches_reference_in_value_and_gradient() {
        check(|t| t[0].apply_op1(SoftmaxLast).unwrap(), |t| reference::softmax_last(&t[0]).unwrap(), vec![random(&[3, 5, 65], 2)], 1e-5);
    }

    #[test]
    fn layer_norm_matches_reference_in_value_and_gradients() {
        let eps = 1e-6;
        check(
            |t| t[0].apply_op3(&t[1], &t[2], LayerNorm { eps: eps as f32 }).unwrap(),
            |t| reference::layer_norm(&t[0], &t[1], &t[2], eps).unwrap(),
            vec![random(&[4, 33, 48], 3), random(&[48], 4), random(&[48], 5)],
            2e-4,
        );
    }
}
