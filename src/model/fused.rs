//! Fused CPU kernels with hand-written backward passes for the ops that dominate a ViT training
//! step: the linear layer, layer norm, exact GELU, the last-dimension softmax and the attention
//! core, as candle custom ops on the slice kernels of [`super::kernels`].
//!
//! candle's composite versions build a graph of many element-wise ops (each a pass over memory,
//! most single-threaded) and its fast versions have no backward pass at all. These run one pass
//! per direction, parallel over rows with rayon. Values and gradients are tested against the
//! composite reference ops in `layers.rs`.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail,
};
use rayon::prelude::*;

use super::kernels::{self, AttentionDims, LinearDims, alloc_uninit, row_chunks_par};

pub(crate) fn f32s<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

fn last_dim(l: &Layout) -> usize {
    l.shape().dims().last().copied().unwrap_or(1).max(1)
}

// ---------------------------------------------------------------- GELU (erf) ---------------

/// Exact GELU, x·Φ(x).
pub struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "procmem-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l, self.name())?;
        // SAFETY: written completely by gelu_forward.
        let mut out = unsafe { alloc_uninit(x.len()) };
        kernels::gelu_forward(x, &mut out);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?,
        ))
    }
}

struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "procmem-gelu-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let mut g = f32s(s2, l2, self.name())?.to_vec();
        kernels::gelu_backward_in_place(x, &mut g);
        Ok((CpuStorage::F32(g), l1.shape().clone()))
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
        let cols = last_dim(l);
        let mut out = x.to_vec();
        row_chunks_par(&mut out, cols).for_each(|(_, o)| kernels::softmax_rows(o, cols));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "procmem-softmax-bwd"
    }
    /// dx = y ⊙ (g − Σ g⊙y)
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = f32s(s1, l1, self.name())?;
        let cols = last_dim(l1);
        let mut g = f32s(s2, l2, self.name())?.to_vec();
        row_chunks_par(&mut g, cols).for_each(|(r, o)| {
            kernels::softmax_grad_rows(&y[r * cols..r * cols + o.len()], o, cols, 1.0)
        });
        Ok((CpuStorage::F32(g), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------- layer norm ----------------

/// Layer norm over the last dimension with weight and bias (PyTorch semantics, biased variance).
pub struct LayerNorm {
    pub eps: f32,
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
            bail!(
                "layer norm: input {:?} does not match weight {cols} / bias {}",
                l1.shape(),
                b.len()
            );
        }
        // SAFETY: written completely by layer_norm_forward.
        let mut out = unsafe { alloc_uninit(x.len()) };
        kernels::layer_norm_forward(x, w, b, self.eps, &mut out);
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
        Ok((
            Some(dx),
            Some(dwb.narrow(0, 0, 1)?.reshape(cols)?),
            Some(dwb.narrow(0, 1, 1)?.reshape(cols)?),
        ))
    }
}

struct LayerNormBackwardInput {
    eps: f32,
}

impl CustomOp3 for LayerNormBackwardInput {
    fn name(&self) -> &'static str {
        "procmem-layer-norm-bwd-x"
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
        let g = f32s(s3, l3, self.name())?;
        // SAFETY: written completely (accumulate = false).
        let mut out = unsafe { alloc_uninit(x.len()) };
        kernels::layer_norm_backward_input(x, w, g, self.eps, &mut out, false);
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
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let g = f32s(s2, l2, self.name())?;
        let cols = last_dim(l1);
        Ok((
            CpuStorage::F32(kernels::layer_norm_backward_params(x, g, cols, self.eps)),
            Shape::from((2, cols)),
        ))
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

/// The sizes of a linear layer from the layouts of x and W, checked.
fn linear_dims(x: &Layout, w: &Layout) -> Result<LinearDims> {
    let (output, input) = w.shape().dims2()?;
    match x.shape().dims().last() {
        Some(&d) if d == input => Ok(LinearDims {
            rows: x.shape().elem_count() / input.max(1),
            input,
            output,
        }),
        _ => bail!(
            "linear: input {:?} does not end in the weight's input width {input}",
            x.shape()
        ),
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
        let d = linear_dims(l1, l2)?;
        // SAFETY: written completely: the bias rows first, then the product added.
        let mut y = unsafe { alloc_uninit(d.rows * d.output) };
        kernels::linear_forward(d, x, w, b, &mut y)?;
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = d.output;
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
        // An input that no variable feeds (the image patches) needs no gradient.
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &LinearBackward::Input)?)
        } else {
            None
        };
        let dw = grad.apply_op2_no_bwd(x, &LinearBackward::Weight)?;
        let db = grad.apply_op1_no_bwd(&ColumnSums)?;
        Ok((dx, Some(dw), Some(db)))
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
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32s(s1, l1, self.name())?;
        let other = f32s(s2, l2, self.name())?;
        let output = last_dim(l1);
        let rows = g.len() / output;
        match self {
            Self::Input => {
                let (w_out, input) = l2.shape().dims2()?;
                if w_out != output {
                    bail!(
                        "linear backward: gradient width {output} for a weight of {w_out} outputs"
                    );
                }
                // SAFETY: written completely (accumulate = false).
                let mut dx = unsafe { alloc_uninit(rows * input) };
                kernels::linear_backward_input(
                    LinearDims {
                        rows,
                        input,
                        output,
                    },
                    g,
                    other,
                    &mut dx,
                    false,
                )?;
                let mut dims = l1.shape().dims().to_vec();
                if let Some(last) = dims.last_mut() {
                    *last = input;
                }
                Ok((CpuStorage::F32(dx), Shape::from(dims)))
            }
            Self::Weight => {
                let input = last_dim(l2);
                if other.len() != rows * input {
                    bail!(
                        "linear backward: input {:?} does not have the gradient's {rows} rows",
                        l2.shape()
                    );
                }
                let dw = kernels::linear_backward_weight(
                    LinearDims {
                        rows,
                        input,
                        output,
                    },
                    g,
                    other,
                )?;
                Ok((CpuStorage::F32(dw), Shape::from((output, input))))
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
        let cols = last_dim(l);
        Ok((
            CpuStorage::F32(kernels::column_sums(g, cols)),
            Shape::from(cols),
        ))
    }
}

// ---------------------------------------------------------------- attention ----------------

/// The multi-head attention core, softmax(q·kᵀ/√d_h)·v, read straight from the packed output of
/// the qkv linear ([B, N, 3·D]: q, k, v, each with the heads side by side) and written as
/// [B, N, D] with the heads concatenated: the layout the projection reads.
///
/// candle's composite version copies q, k and v out of that layout (reshape, permute,
/// contiguous), runs batched [N, N] matmuls, scales, softmaxes and copies the result back, and its
/// backward copies again. Here every product is one strided `gemm` call per (sample, head) with
/// no copy ([`kernels::attention_forward`]).
pub struct Attention {
    pub heads: usize,
}

impl Attention {
    fn dims(&self, l: &Layout) -> Result<AttentionDims> {
        let (batch, tokens, three_d) = l.shape().dims3()?;
        AttentionDims::new(batch, tokens, three_d, self.heads)
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "procmem-attention"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(s, l, self.name())?;
        let d = self.dims(l)?;
        // SAFETY: written completely: every head's columns of every row.
        let mut out = unsafe { alloc_uninit(d.batch * d.tokens * d.dim) };
        kernels::attention_forward(&d, qkv, &mut out)?;
        Ok((
            CpuStorage::F32(out),
            Shape::from((d.batch, d.tokens, d.dim)),
        ))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad.contiguous()?,
            &AttentionBackward { heads: self.heads },
        )?))
    }
}

struct AttentionBackward {
    heads: usize,
}

impl CustomOp2 for AttentionBackward {
    fn name(&self) -> &'static str {
        "procmem-attention-bwd"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = f32s(s1, l1, self.name())?;
        let grad = f32s(s2, l2, self.name())?;
        let d = Attention { heads: self.heads }.dims(l1)?;
        if l2.shape().dims() != [d.batch, d.tokens, d.dim] {
            bail!(
                "attention backward: gradient {:?} does not match the output [{}, {}, {}]",
                l2.shape(),
                d.batch,
                d.tokens,
                d.dim
            );
        }
        // SAFETY: written completely: q, k and v columns of every head.
        let mut dqkv = unsafe { alloc_uninit(qkv.len()) };
        kernels::attention_backward(&d, qkv, grad, &mut dqkv)?;
        Ok((CpuStorage::F32(dqkv), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::{erf_approx, exp_approx};
    use crate::model::layers::reference;
    use crate::test_support::{max_abs_diff, normal_tensor};
    use candle_core::Var;

    /// Checks values and the gradient of Σ f(x)·r against the reference op, for all inputs.
    fn check(
        fused: impl Fn(&[Tensor]) -> Tensor,
        reference: impl Fn(&[Tensor]) -> Tensor,
        inputs: Vec<Tensor>,
        tol: f32,
    ) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y_fused = fused(&ts);
        let y_ref = reference(&ts);
        assert!(
            max_abs_diff(&y_fused, &y_ref) < tol,
            "values differ by {}",
            max_abs_diff(&y_fused, &y_ref)
        );
        let r = normal_tensor(y_ref.dims(), 99, 1.0);
        let g_fused = (&y_fused * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_ref = (&y_ref * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, v) in vars.iter().enumerate() {
            let a = g_fused
                .get(v)
                .unwrap_or_else(|| panic!("fused op gave no gradient for input {i}"));
            let b = g_ref.get(v).unwrap();
            assert!(
                max_abs_diff(a, b) < tol,
                "gradient {i} differs by {}",
                max_abs_diff(a, b)
            );
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
        assert!(
            worst.0 < 5e-7 && worst.1 < 5e-7,
            "worst relative exp error {}, absolute erf error {}",
            worst.0,
            worst.1
        );
        assert!(
            (exp_approx(-200.0) / (-87f32).exp() - 1.0).abs() < 1e-6,
            "clamped below"
        );
    }

    #[test]
    fn gelu_matches_candle_gelu_erf_in_value_and_gradient() {
        check(
            |t| t[0].apply_op1(Gelu).unwrap(),
            |t| t[0].gelu_erf().unwrap(),
            vec![normal_tensor(&[7, 300], 1, 1.0)],
            1e-5,
        );
    }

    #[test]
    fn softmax_matches_reference_in_value_and_gradient() {
        check(
            |t| t[0].apply_op1(SoftmaxLast).unwrap(),
            |t| reference::softmax_last(&t[0]).unwrap(),
            vec![normal_tensor(&[3, 5, 65], 2, 1.0)],
            1e-5,
        );
    }

    #[test]
    fn layer_norm_matches_reference_in_value_and_gradients() {
        let eps = 1e-6;
        check(
            |t| {
                t[0].apply_op3(&t[1], &t[2], LayerNorm { eps: eps as f32 })
                    .unwrap()
            },
            |t| reference::layer_norm(&t[0], &t[1], &t[2], eps).unwrap(),
            vec![
                normal_tensor(&[4, 33, 48], 3, 1.0),
                normal_tensor(&[48], 4, 1.0),
                normal_tensor(&[48], 5, 1.0),
            ],
            2e-4,
        );
    }

    #[test]
    fn attention_matches_reference_in_value_and_gradient() {
        // 17 tokens (a 32² local crop at patch 8, with the class token), 3 heads of width 16;
        // 65 tokens (a 64² crop), 3 heads of width 64 (cpu-tiny); 2 heads of width 12.
        for (tokens, heads, head_dim) in [(17, 3, 16), (65, 3, 64), (9, 2, 12)] {
            check(
                |t| t[0].apply_op1(Attention { heads }).unwrap(),
                |t| reference::attention(&t[0], heads).unwrap(),
                vec![normal_tensor(&[3, tokens, 3 * heads * head_dim], 6, 1.0)],
                1e-4,
            );
        }
    }

    #[test]
    fn attention_rejects_a_width_that_is_not_three_heads() {
        let err = normal_tensor(&[2, 5, 50], 7, 1.0)
            .apply_op1(Attention { heads: 3 })
            .unwrap_err();
        assert!(err.to_string().contains("packed qkv width 50"), "{err}");
    }

    #[test]
    fn linear_matches_reference_in_value_and_gradients() {
        check(
            |t| t[0].apply_op3(&t[1], &t[2], Linear).unwrap(),
            |t| reference::linear(&t[0], &t[1], Some(&t[2])).unwrap(),
            vec![
                normal_tensor(&[3, 37, 48], 8, 1.0),
                normal_tensor(&[20, 48], 9, 1.0),
                normal_tensor(&[20], 10, 1.0),
            ],
            1e-4,
        );
    }
}
