//! Differentiable building blocks.
//!
//! candle's fast `candle_nn::LayerNorm`, `ops::layer_norm` and `ops::softmax_last_dim` have no
//! backward pass: `backward()` succeeds while the parameters behind them get no gradient. Layer
//! norm, softmax and GELU here are fused kernels with hand-written backward passes
//! ([`super::fused`]); [`reference`] keeps the same functions composed of candle ops that have
//! a backward pass, as the ground truth the kernels are tested against (a trainer test also
//! checks that every parameter gets a gradient).

use candle_core::{D, Result, Tensor};

use super::fused;

/// y = x·Wᵀ + b over the last dimension; `x` may have any number of leading dimensions.
/// With a bias it is one fused node ([`fused::Linear`]); without, a matmul.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => x.contiguous()?.apply_op3(weight, b, fused::Linear),
        None => reference::linear(x, weight, None),
    }
}

/// Layer normalisation over the last dimension (biased variance, as PyTorch).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(weight, bias, fused::LayerNorm { eps: eps as f32 })
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(fused::SoftmaxLast)
}

/// The attention core from the packed qkv [B, N, 3·D] to [B, N, D] ([`fused::Attention`]).
pub fn attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    qkv.contiguous()?.apply_op1(fused::Attention { heads })
}

/// Exact (erf) GELU.
pub(crate) fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(fused::Gelu)
}

/// The same functions from candle's differentiable basic ops: slower, the reference.
pub mod reference {
    use candle_core::{D, Result, Tensor};

    /// y = x·Wᵀ + b from candle ops.
    pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some(&in_dim) = dims.last() else {
            candle_core::bail!("linear: a scalar input has no features")
        };
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let y = x.reshape((rows, in_dim))?.matmul(&weight.t()?)?;
        let y = match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = weight.dim(0)?;
        y.reshape(out_dims)
    }

    pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
        normed.broadcast_mul(weight)?.broadcast_add(bias)
    }

    /// The attention core composed of candle ops: split the heads, scaled q·kᵀ, softmax, ·v.
    pub fn attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, n, three_d) = qkv.dims3()?;
        let d = three_d / 3;
        let hd = d / heads;
        let qkv = qkv
            .reshape((b, n, 3, heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
        softmax_last(&scores)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, n, d))
    }

    /// The max shift is detached: it does not change the result.
    pub(crate) fn softmax_last(x: &Tensor) -> Result<Tensor> {
        let max = x.max_keepdim(D::Minus1)?.detach();
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    }
}

/// log-softmax over the last dimension.
pub(crate) fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Rows divided by their L2 norm (with PyTorch's `F.normalize` eps of 1e-12).
pub(crate) fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&norm.clamp(1e-12, f64::MAX)?)
}
