//! Fused CPU kernels with hand-written backward passes for the ops that dominate a ViT training
//! step: the linear layer, layer norm, exact GELU, the last-dimension softmax and the attention
//! core.
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

/// Σ over all rows of a per-row contribution of `width` values: rows are split into chunks
/// across threads, each accumulating into its own buffer, and the buffers are added.
fn sum_over_rows(rows: usize, cols: usize, width: usize, add_row: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let chunk = (PARALLEL_MIN / cols.max(1)).max(1);
    (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0f32; width];
            for r in c * chunk..((c + 1) * chunk).min(rows) {
                add_row(r, &mut acc);
            }
            acc
        })
        .reduce(
            || vec![0f32; width],
            |mut a, b| {
                for (a, b) in a.iter_mut().zip(b) {
                    *a += b;
                }
                a
            },
        )
}

// ---------------------------------------------------------------- GELU (erf) ---------------

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// e^y for y in [−87, 88] (clamped), branch-free so that loops over it vectorise: y = n·ln 2 + r
/// with |r| ≤ ln 2 / 2, e^r by its degree-6 Taylor polynomial (relative error < 2e-7), 2ⁿ from
/// the exponent bits.
#[inline(always)]
fn exp_approx(y: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let y = y.clamp(-87.0, 88.0);
    let z = y * std::f32::consts::LOG2_E + ROUND;
    let n = z - ROUND;
    let r = y - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let exponent = (z.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23;
    p * f32::from_bits(exponent as u32)
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), vectorisable; `libm::erff` is
/// scalar and branchy, and took 5 % of a training step.
#[inline(always)]
fn erf_approx(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * exp_approx(-ax * ax)).copysign(x)
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_approx(x * FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    0.5 * (1.0 + erf_approx(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * exp_approx(-0.5 * x * x)
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

/// Softmax of one row, in place.
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// The softmax gradient of one row, in place: g ← scale · y ⊙ (g − Σ g⊙y).
fn softmax_grad_in_place(y: &[f32], g: &mut [f32], scale: f32) {
    let dot: f32 = y.iter().zip(g.iter()).map(|(a, b)| a * b).sum();
    for (g, y) in g.iter_mut().zip(y) {
        *g = y * (*g - dot) * scale;
    }
}

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
            o.copy_from_slice(&x[r * cols..(r + 1) * cols]);
            softmax_in_place(o);
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
            o.copy_from_slice(&g[r * cols..(r + 1) * cols]);
            softmax_grad_in_place(&y[r * cols..(r + 1) * cols], o, 1.0);
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
        let out = sum_over_rows(rows, cols, 2 * cols, |r, acc| {
            let row = &x[r * cols..(r + 1) * cols];
            let gr = &g[r * cols..(r + 1) * cols];
            let (mean, rstd) = row_stats(row, self.eps);
            for j in 0..cols {
                acc[j] += gr[j] * (row[j] - mean) * rstd;
                acc[cols + j] += gr[j];
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((2, cols))))
    }
}

// ---------------------------------------------------------------- linear -------------------

/// y = x·Wᵀ + b over the last dimension of `x` (any leading dimensions), as one node.
///
/// candle's composition (reshape, transpose, matmul, broadcast add, reshape) is five graph nodes,
/// and candle's backward pass materialises every node's gradient as a zero-filled tensor plus an
/// addition: four extra passes over an activation-sized buffer per layer. Here the bias is the
/// initial value of the product's destination, and the backward pass is three direct products.
pub struct Linear;

fn gemm_threads() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// dst[m×n] = beta · lhs[m×k] · rhs[k×n] (+ dst when `accumulate`), every matrix given as
/// (pointer, column step, row step).
///
/// Safety: the pointers must address matrices of these sizes and steps; dst must not alias.
unsafe fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    accumulate: bool,
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    beta: f32,
    parallelism: gemm::Parallelism,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.1,
            dst.2,
            accumulate,
            lhs.0,
            lhs.1,
            lhs.2,
            rhs.0,
            rhs.1,
            rhs.2,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// (rows, in, out) of a linear layer, checked.
fn linear_dims(x: &Layout, w: &Layout) -> Result<(usize, usize, usize)> {
    let (out, in_dim) = w.shape().dims2()?;
    let dims = x.shape().dims();
    match dims.last() {
        Some(&d) if d == in_dim => Ok((x.shape().elem_count() / in_dim.max(1), in_dim, out)),
        _ => bail!("linear: input {:?} does not end in the weight's input width {in_dim}", x.shape()),
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "procmem-linear"
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
        let (rows, in_dim, out) = linear_dims(l1, l2)?;
        if b.len() != out {
            bail!("linear: bias of {} for {out} outputs", b.len());
        }
        let mut y = Vec::with_capacity(rows * out);
        for _ in 0..rows {
            y.extend_from_slice(b);
        }
        // SAFETY: x is [rows, in], w is [out, in] (read as Wᵀ: column step in, row step 1), y is [rows, out].
        unsafe {
            gemm_f32(
                (rows, out, in_dim),
                (y.as_mut_ptr(), 1, out as isize),
                true,
                (x.as_ptr(), 1, in_dim as isize),
                (w.as_ptr(), in_dim as isize, 1),
                1.0,
                gemm_threads(),
            )
        };
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
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
        let dx = grad.apply_op2_no_bwd(w, &LinearBackward::Input)?;
        let dw = grad.apply_op2_no_bwd(x, &LinearBackward::Weight)?;
        let db = grad.apply_op1_no_bwd(&ColumnSums)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The gradients of [`Linear`] from its output gradient g [rows, out]: dx = g·W, dW = gᵀ·x.
enum LinearBackward {
    Input,
    Weight,
}

impl CustomOp2 for LinearBackward {
    fn name(&self) -> &'static str {
        match self {
            Self::Input => "procmem-linear-bwd-x",
            Self::Weight => "procmem-linear-bwd-w",
        }
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32s(s1, l1, self.name())?;
        let other = f32s(s2, l2, self.name())?;
        let out = l1.shape().dims().last().copied().unwrap_or(1);
        let rows = g.len() / out.max(1);
        match self {
            Self::Input => {
                let (w_out, in_dim) = l2.shape().dims2()?;
                if w_out != out {
                    bail!("linear backward: gradient width {out} for a weight of {w_out} outputs");
                }
                let mut dx = vec![0f32; rows * in_dim];
                // SAFETY: g is [rows, out], w is [out, in], dx is [rows, in].
                unsafe {
                    gemm_f32(
                        (rows, in_dim, out),
                        (dx.as_mut_ptr(), 1, in_dim as isize),
                        false,
                        (g.as_ptr(), 1, out as isize),
                        (other.as_ptr(), 1, in_dim as isize),
                        1.0,
                        gemm_threads(),
                    )
                };
                let mut dims = l1.shape().dims().to_vec();
                if let Some(last) = dims.last_mut() {
                    *last = in_dim;
                }
                Ok((CpuStorage::F32(dx), Shape::from(dims)))
            }
            Self::Weight => {
                let in_dim = l2.shape().dims().last().copied().unwrap_or(1);
                if other.len() != rows * in_dim {
                    bail!("linear backward: input {:?} does not have the gradient's {rows} rows", l2.shape());
                }
                let mut dw = vec![0f32; out * in_dim];
                // SAFETY: gᵀ is [out, rows] (column step out, row step 1), x is [rows, in], dW is [out, in].
                unsafe {
                    gemm_f32(
                        (out, in_dim, rows),
                        (dw.as_mut_ptr(), 1, in_dim as isize),
                        false,
                        (g.as_ptr(), out as isize, 1),
                        (other.as_ptr(), 1, in_dim as isize),
                        1.0,
                        gemm_threads(),
                    )
                };
                Ok((CpuStorage::F32(dw), Shape::from((out, in_dim))))
            }
        }
    }
}

/// Σ over rows of a [rows, cols] (or [..., cols]) tensor: the bias gradient.
struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "procmem-column-sums"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32s(s, l, self.name())?;
        let cols = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let rows = g.len() / cols;
        let sums = sum_over_rows(rows, cols, cols, |r, acc| {
            for (a, v) in acc.iter_mut().zip(&g[r * cols..(r + 1) * cols]) {
                *a += v;
            }
        });
        Ok((CpuStorage::F32(sums), Shape::from(cols)))
    }
}

// ---------------------------------------------------------------- attention ----------------

/// The multi-head attention core, softmax(q·kᵀ/√d_h)·v, read straight from the packed output of
/// the qkv linear ([B, N, 3·D]: q, k, v, each with the heads side by side) and written as
/// [B, N, D] with the heads concatenated: the layout the projection reads.
///
/// candle's composite version copies q, k and v out of that layout (reshape, permute,
/// contiguous), runs batched [N, N] matmuls, scales, softmaxes and copies the result back, and its
/// backward copies again. Here every product is one strided `gemm` call per (sample, head) with no
/// copy; the attention matrix is a per-thread scratch buffer, recomputed in the backward pass
/// instead of being kept (as flash attention does) — at N = 65 the recomputation costs less than
/// storing and re-reading it.
pub struct Attention {
    pub heads: usize,
}

struct AttentionDims {
    batch: usize,
    tokens: usize,
    dim: usize,
    head_dim: usize,
    scale: f32,
}

impl Attention {
    fn dims(&self, l: &Layout) -> Result<AttentionDims> {
        let (batch, tokens, three_d) = l.shape().dims3()?;
        if self.heads == 0 || three_d % (3 * self.heads) != 0 {
            bail!("attention: packed qkv width {three_d} is not 3 × heads ({}) × head dim", self.heads);
        }
        let dim = three_d / 3;
        let head_dim = dim / self.heads;
        Ok(AttentionDims { batch, tokens, dim, head_dim, scale: (head_dim as f32).powf(-0.5) })
    }
}

/// The attention's products: one (sample, head) each, single-threaded because the callers
/// parallelise over samples.
///
/// Safety: as [`gemm_f32`].
unsafe fn gemm_head(
    dims: (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    beta: f32,
) {
    unsafe { gemm_f32(dims, dst, false, lhs, rhs, beta, gemm::Parallelism::None) }
}

/// P = softmax(scale · q·kᵀ) for one (sample, head), into `p` ([N, N], row-major). `q` and `k`
/// point at the head's first element in the packed qkv (row step 3·D).
///
/// Safety: `q` and `k` must address N rows of `head_dim` floats at row step 3·D.
unsafe fn attention_probs(p: &mut [f32], q: *const f32, k: *const f32, d: &AttentionDims) {
    let (n, hd, row) = (d.tokens, d.head_dim, 3 * d.dim as isize);
    // Kᵀ as a [hd, N] matrix: element (i, j) = K[j, i], i.e. column step = row step of K.
    unsafe { gemm_head((n, n, hd), (p.as_mut_ptr(), 1, n as isize), (q, 1, row), (k, row, 1), d.scale) };
    p.chunks_mut(n).for_each(softmax_in_place);
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "procmem-attention"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(s, l, self.name())?;
        let d = self.dims(l)?;
        let (n, dim, hd) = (d.tokens, d.dim, d.head_dim);
        let mut out = vec![0f32; d.batch * n * dim];
        out.par_chunks_mut((n * dim).max(1)).enumerate().for_each_init(
            || vec![0f32; n * n],
            |p, (b, out_b)| {
                let base = qkv[b * n * 3 * dim..].as_ptr();
                for h in 0..self.heads {
                    // SAFETY: q, k, v of head h lie within sample b's [N, 3·D] rows; out_b is
                    // this sample's [N, D] block, written at the head's columns.
                    unsafe {
                        let (q, k, v) = (base.add(h * hd), base.add(dim + h * hd), base.add(2 * dim + h * hd));
                        attention_probs(p, q, k, &d);
                        gemm_head(
                            (n, hd, n),
                            (out_b.as_mut_ptr().add(h * hd), 1, dim as isize),
                            (p.as_ptr(), 1, n as isize),
                            (v, 1, 3 * dim as isize),
                            1.0,
                        );
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((d.batch, n, dim))))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &AttentionBackward { heads: self.heads })?))
    }
}

struct AttentionBackward {
    heads: usize,
}

impl CustomOp2 for AttentionBackward {
    fn name(&self) -> &'static str {
        "procmem-attention-bwd"
    }
    /// With P recomputed and dO the output gradient of one head:
    /// dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − rowsum(P ⊙ dO·Vᵀ)) · scale, dQ = dS·K, dK = dSᵀ·Q,
    /// written into the packed [B, N, 3·D] layout of the input.
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(s1, l1, self.name())?;
        let grad = f32s(s2, l2, self.name())?;
        let d = Attention { heads: self.heads }.dims(l1)?;
        let (n, dim, hd) = (d.tokens, d.dim, d.head_dim);
        if l2.shape().dims() != [d.batch, n, dim] {
            bail!("attention backward: gradient {:?} does not match the output [{}, {n}, {dim}]", l2.shape(), d.batch);
        }
        let row = 3 * dim as isize;
        let mut dqkv = vec![0f32; qkv.len()];
        dqkv.par_chunks_mut((n * 3 * dim).max(1)).enumerate().for_each_init(
            || (vec![0f32; n * n], vec![0f32; n * n]),
            |(p, ds), (b, dqkv_b)| {
                let base = qkv[b * n * 3 * dim..].as_ptr();
                let dout = grad[b * n * dim..].as_ptr();
                for h in 0..self.heads {
                    // SAFETY: as in the forward pass; dqkv_b is this sample's [N, 3·D] block and
                    // each product writes the head's own columns of q, k or v.
                    unsafe {
                        let (q, k, v) = (base.add(h * hd), base.add(dim + h * hd), base.add(2 * dim + h * hd));
                        let go = dout.add(h * hd);
                        attention_probs(p, q, k, &d);
                        let dst = dqkv_b.as_mut_ptr();
                        // dV = Pᵀ·dO
                        gemm_head((n, hd, n), (dst.add(2 * dim + h * hd), 1, row), (p.as_ptr(), n as isize, 1), (go, 1, dim as isize), 1.0);
                        // dP = dO·Vᵀ
                        gemm_head((n, n, hd), (ds.as_mut_ptr(), 1, n as isize), (go, 1, dim as isize), (v, row, 1), 1.0);
                        for (dr, pr) in ds.chunks_mut(n).zip(p.chunks(n)) {
                            softmax_grad_in_place(pr, dr, d.scale);
                        }
                        // dQ = dS·K, dK = dSᵀ·Q
                        gemm_head((n, hd, n), (dst.add(h * hd), 1, row), (ds.as_ptr(), 1, n as isize), (k, 1, row), 1.0);
                        gemm_head((n, hd, n), (dst.add(dim + h * hd), 1, row), (ds.as_ptr(), n as isize, 1), (q, 1, row), 1.0);
                    }
                }
            },
        );
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
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
    fn exp_and_erf_approximations_match_libm() {
        let mut worst = (0f32, 0f32);
        for i in -20_000..=20_000 {
            let x = i as f32 * 5e-4; // [-10, 10]
            let e = (exp_approx(x) - x.exp()).abs() / x.exp();
            let f = (erf_approx(x) - libm::erff(x)).abs();
            worst = (worst.0.max(e), worst.1.max(f));
        }
        assert!(worst.0 < 5e-7 && worst.1 < 5e-7, "worst relative exp error {}, absolute erf error {}", worst.0, worst.1);
        assert!((exp_approx(-200.0) / (-87f32).exp() - 1.0).abs() < 1e-6, "clamped below");
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

    #[test]
    fn attention_matches_reference_in_value_and_gradient() {
        // 17 tokens (a 32² local crop at patch 8, with the class token), 3 heads of width 16.
        check(
            |t| t[0].apply_op1(Attention { heads: 3 }).unwrap(),
            |t| reference::attention(&t[0], 3).unwrap(),
            vec![random(&[4, 17, 3 * 48], 6)],
            1e-4,
        );
    }

    #[test]
    fn attention_rejects_a_width_that_is_not_three_heads() {
        let err = random(&[2, 5, 50], 7).apply_op1(Attention { heads: 3 }).unwrap_err();
        assert!(err.to_string().contains("packed qkv width 50"), "{err}");
    }

    #[test]
    fn linear_matches_reference_in_value_and_gradients() {
        check(
            |t| t[0].apply_op3(&t[1], &t[2], Linear).unwrap(),
            |t| reference::linear(&t[0], &t[1], Some(&t[2])).unwrap(),
            vec![random(&[3, 37, 48], 8), random(&[20, 48], 9), random(&[20], 10)],
            1e-4,
        );
    }
}
