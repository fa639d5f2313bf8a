//! A whole pre-norm transformer block as one candle graph node, with a hand-written backward
//! pass:
//!
//! ```text
//! x1 = x  + s1 · proj(attention(qkv(LN1(x))))
//! y  = x1 + s2 · fc2(GELU(fc1(LN2(x1))))
//! ```
//!
//! where s1, s2 are the per-sample stochastic-depth scales (0 or 1/(1−p); 1 without drop path).
//!
//! Why: candle's backward pass gives every graph node's inputs a zero-filled gradient buffer and
//! then adds into it, and each residual add, mask and reshape is a node of its own. For the block
//! built from the separate fused ops that was ~15 activation-sized allocations, fills and adds per
//! block in the backward pass, mostly on one thread: half of the step's time beside the matrix
//! products. Here the forward pass keeps its intermediate activations in the op (only when a
//! gradient can be asked for), and the backward pass runs the chain rule over them directly,
//! writing each gradient once.
//!
//! The block's twelve parameters arrive as one flat vector (`Tensor::cat` of the flattened
//! parameters, in [`BLOCK_PARAMS`] order): a custom op takes at most three tensors, and candle's
//! backward of `cat` hands each parameter its slice of the flat gradient. The result is the same
//! function as the composed block in `vit.rs`, which the tests compare it with, in value and in
//! every gradient.

use std::borrow::Cow;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, bail};
use rayon::prelude::*;

use super::fused::f32s;
use super::kernels::{self, AttentionDims, LinearDims, alloc_uninit};

/// The block's parameters in the order of the flat parameter vector (names under `blocks.N.`).
pub const BLOCK_PARAMS: [&str; 12] = [
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
];

/// The fused block: width `dim`, MLP width `hidden`, `heads` heads, layer-norm `eps`, and the
/// stochastic-depth scales per sample ([s1, s2] for each, or empty for none).
pub struct FusedBlock {
    pub dim: usize,
    pub hidden: usize,
    pub heads: usize,
    pub eps: f32,
    pub scales: Vec<f32>,
    /// Keep the forward pass's activations for the backward pass. Without them (inference), a
    /// backward pass still works: it recomputes them.
    pub keep_activations: bool,
    /// Compute the CLS token's output only ([B, 1, D]); see [`FusedBlock::cls_only`].
    pub cls_only: bool,
    saved: Mutex<Option<Saved>>,
}

/// What the forward pass kept for the backward pass.
enum Saved {
    All(Activations),
    Cls(ClsActivations),
}

/// The forward pass's intermediate values, [rows, width] each.
struct Activations {
    ln1: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    x1: Vec<f32>,
    ln2: Vec<f32>,
    /// GELU′ at the MLP's hidden pre-activations (computed with GELU in the forward pass).
    gelu_grad: Vec<f32>,
    a: Vec<f32>,
}

/// The CLS-only forward pass's intermediate values: `ln1` and `kv` for all rows, the rest
/// [batch, width] for the CLS rows (`probs`: [batch, heads, tokens]).
struct ClsActivations {
    ln1: Vec<f32>,
    ln1_cls: Vec<f32>,
    kv: Vec<f32>,
    q: Vec<f32>,
    probs: Vec<f32>,
    att: Vec<f32>,
    x1: Vec<f32>,
    ln2: Vec<f32>,
    gelu_grad: Vec<f32>,
    a: Vec<f32>,
}

/// A bias-free product y = x·Wᵀ: gemm's, or the row-wise one for the CLS rows.
type Product = fn(LinearDims, &[f32], &[f32], &mut [f32]) -> Result<()>;

/// The first row of each sample's `tokens` rows of width `d`.
fn cls_rows(x: &[f32], tokens: usize, d: usize) -> Vec<f32> {
    x.chunks(tokens * d)
        .flat_map(|sample| &sample[..d])
        .copied()
        .collect()
}

/// The block's parameters as slices of the flat vector.
struct Params<'a> {
    norm1_w: &'a [f32],
    norm1_b: &'a [f32],
    qkv_w: &'a [f32],
    qkv_b: &'a [f32],
    proj_w: &'a [f32],
    proj_b: &'a [f32],
    norm2_w: &'a [f32],
    norm2_b: &'a [f32],
    fc1_w: &'a [f32],
    fc1_b: &'a [f32],
    fc2_w: &'a [f32],
    fc2_b: &'a [f32],
}

impl FusedBlock {
    pub fn new(
        dim: usize,
        hidden: usize,
        heads: usize,
        eps: f32,
        scales: Vec<f32>,
        keep_activations: bool,
    ) -> Self {
        Self {
            dim,
            hidden,
            heads,
            eps,
            scales,
            keep_activations,
            cls_only: false,
            saved: Mutex::new(None),
        }
    }

    /// Output only each sample's CLS token, [B, 1, D]: for a last block whose patch outputs
    /// nobody reads (DINO training and kNN embeddings use the CLS token alone). The other
    /// tokens still enter as keys and values, so the CLS output is the same function, but
    /// their queries, attention rows, projection and MLP are skipped: ~80 % of the block's
    /// products.
    pub(crate) fn cls_only(mut self) -> Self {
        self.cls_only = true;
        self
    }

    /// Element counts of the parameters, in [`BLOCK_PARAMS`] order.
    pub(crate) fn param_sizes(&self) -> [usize; 12] {
        let (d, h) = (self.dim, self.hidden);
        [d, d, 3 * d * d, 3 * d, d * d, d, d, d, h * d, h, d * h, d]
    }

    fn params<'a>(&self, flat: &'a [f32]) -> Result<Params<'a>> {
        let sizes = self.param_sizes();
        if flat.len() != sizes.iter().sum::<usize>() {
            bail!(
                "fused block: {} parameters for width {} and MLP width {}, expected {}",
                flat.len(),
                self.dim,
                self.hidden,
                sizes.iter().sum::<usize>()
            );
        }
        let mut rest = flat;
        let mut next = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head
        };
        Ok(Params {
            norm1_w: next(sizes[0]),
            norm1_b: next(sizes[1]),
            qkv_w: next(sizes[2]),
            qkv_b: next(sizes[3]),
            proj_w: next(sizes[4]),
            proj_b: next(sizes[5]),
            norm2_w: next(sizes[6]),
            norm2_b: next(sizes[7]),
            fc1_w: next(sizes[8]),
            fc1_b: next(sizes[9]),
            fc2_w: next(sizes[10]),
            fc2_b: next(sizes[11]),
        })
    }

    /// (batch, tokens) of an input [B, N, D], checked against the block and the scales.
    fn input_dims(&self, shape: &Shape) -> Result<(usize, usize)> {
        let (batch, tokens, dim) = shape.dims3()?;
        if dim != self.dim {
            bail!("fused block: input width {dim}, block width {}", self.dim);
        }
        if !self.scales.is_empty() && self.scales.len() != 2 * batch {
            bail!(
                "fused block: {} drop-path scales for {batch} samples",
                self.scales.len()
            );
        }
        Ok((batch, tokens))
    }

    /// The per-sample scale of branch `branch` (0: attention, 1: MLP).
    fn scale(&self, sample: usize, branch: usize) -> f32 {
        self.scales.get(2 * sample + branch).copied().unwrap_or(1.0)
    }

    /// out ← base + s · (out + bias): the residual around a bias-free product, row by row with
    /// the sample's scale for `branch`.
    fn add_branch(
        &self,
        base: &[f32],
        out: &mut [f32],
        bias: &[f32],
        tokens: usize,
        branch: usize,
    ) {
        let per_sample = (tokens * self.dim).max(1);
        out.par_chunks_mut(per_sample)
            .zip(base.par_chunks(per_sample))
            .enumerate()
            .for_each(|(b, (o, x))| {
                kernels::residual_bias_rows(o, x, bias, self.scale(b, branch));
            });
    }

    /// g · s per sample, for `branch`, into a new buffer; g itself without drop path.
    fn scale_rows<'a>(&self, g: &'a [f32], tokens: usize, branch: usize) -> Cow<'a, [f32]> {
        if self.scales.is_empty() {
            return Cow::Borrowed(g);
        }
        let per_sample = (tokens * self.dim).max(1);
        // SAFETY: written completely, sample by sample.
        let mut out = unsafe { alloc_uninit(g.len()) };
        out.par_chunks_mut(per_sample)
            .zip(g.par_chunks(per_sample))
            .enumerate()
            .for_each(|(b, (o, g))| {
                kernels::scale_into(o, g, self.scale(b, branch));
            });
        Cow::Owned(out)
    }

    /// y and the activations; `for_backward`: also GELU′ (else that field holds the pre-activations).
    fn forward(
        &self,
        x: &[f32],
        flat: &[f32],
        batch: usize,
        tokens: usize,
        for_backward: bool,
    ) -> Result<(Vec<f32>, Activations)> {
        let p = self.params(flat)?;
        let d = self.dim;
        let rows = batch * tokens;
        if x.len() != rows * d {
            bail!(
                "fused block: input of {} floats for [{batch}, {tokens}, {d}]",
                x.len()
            );
        }
        // Every buffer below is written completely by the kernel named beside it.
        // SAFETY: layer_norm_forward writes all of `ln1` before it is read.
        let mut ln1 = unsafe { alloc_uninit(rows * d) };
        kernels::layer_norm_forward(x, p.norm1_w, p.norm1_b, self.eps, &mut ln1);
        // The products are bias-free; each bias is added by the next pass over its output.
        // SAFETY: matmul_transposed writes all of `qkv` before it is read.
        let mut qkv = unsafe { alloc_uninit(rows * 3 * d) };
        kernels::matmul_transposed(
            LinearDims {
                rows,
                input: d,
                output: 3 * d,
            },
            &ln1,
            p.qkv_w,
            &mut qkv,
        )?;
        // SAFETY: bias_attention_forward writes all of `att` before it is read.
        let mut att = unsafe { alloc_uninit(rows * d) };
        kernels::bias_attention_forward(
            &AttentionDims::new(batch, tokens, 3 * d, self.heads)?,
            &mut qkv,
            p.qkv_b,
            &mut att,
        )?;
        // SAFETY: matmul_transposed, then bias and residual in place writes all of `x1` before it is read.
        let mut x1 = unsafe { alloc_uninit(rows * d) };
        kernels::matmul_transposed(
            LinearDims {
                rows,
                input: d,
                output: d,
            },
            &att,
            p.proj_w,
            &mut x1,
        )?;
        self.add_branch(x, &mut x1, p.proj_b, tokens, 0);
        let (y, ln2, gelu_grad, a) = self.mlp_forward(
            &p,
            &x1,
            rows,
            tokens,
            for_backward,
            kernels::matmul_transposed,
        )?;
        Ok((
            y,
            Activations {
                ln1,
                qkv,
                att,
                x1,
                ln2,
                gelu_grad,
                a,
            },
        ))
    }

    fn take_saved(&self) -> Option<Saved> {
        match self.saved.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        }
    }

    /// (dx, flat parameter gradient) from the output gradient `gy`.
    fn backward(
        &self,
        x: &[f32],
        flat: &[f32],
        gy: &[f32],
        batch: usize,
        tokens: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let act = match self.take_saved() {
            Some(Saved::All(act)) => act,
            _ => self.forward(x, flat, batch, tokens, true)?.1,
        };
        let p = self.params(flat)?;
        let (d, eps) = (self.dim, self.eps);
        let rows = batch * tokens;
        if gy.len() != rows * d {
            bail!(
                "fused block backward: gradient of {} floats for [{batch}, {tokens}, {d}]",
                gy.len()
            );
        }
        let proj = LinearDims {
            rows,
            input: d,
            output: d,
        };
        let qkv = LinearDims {
            rows,
            input: d,
            output: 3 * d,
        };

        // MLP branch: y = x1 + s2 · fc2(GELU(fc1(LN2(x1)))).
        let (dx1, d_ln, mlp) = self.mlp_backward(
            &p,
            gy,
            &act.x1,
            &act.ln2,
            act.gelu_grad,
            act.a,
            rows,
            tokens,
        )?;

        // Attention branch: x1 = x + s1 · proj(attention(qkv(LN1(x)))).
        let g1 = self.scale_rows(&dx1, tokens, 0);
        let mut d_att = d_ln; // reused: linear_backward_input overwrites it (accumulate = false)
        kernels::linear_backward_input(proj, &g1, p.proj_w, &mut d_att, false)?;
        let d_proj_w = kernels::linear_backward_weight(proj, &g1, &act.att)?;
        let d_proj_b = kernels::column_sums(&g1, d);
        // SAFETY: attention_backward writes all of `d_qkv` before it is read.
        let mut d_qkv = unsafe { alloc_uninit(rows * 3 * d) };
        kernels::attention_backward(
            &AttentionDims::new(batch, tokens, 3 * d, self.heads)?,
            &act.qkv,
            &d_att,
            &mut d_qkv,
        )?;
        let mut d_ln = d_att; // reused, overwritten
        kernels::linear_backward_input(qkv, &d_qkv, p.qkv_w, &mut d_ln, false)?;
        let d_qkv_w = kernels::linear_backward_weight(qkv, &d_qkv, &act.ln1)?;
        let d_qkv_b = kernels::column_sums(&d_qkv, 3 * d);
        let mut dx = dx1;
        kernels::layer_norm_backward_input(x, p.norm1_w, &d_ln, eps, &mut dx, true);
        let d_norm1 = kernels::layer_norm_backward_params(x, &d_ln, d, eps);
        Ok((
            dx,
            flat_gradient(d, &d_norm1, &d_qkv_w, &d_qkv_b, &d_proj_w, &d_proj_b, &mlp),
        ))
    }

    /// The MLP half's backward pass over `rows` rows (`tokens` per sample): the gradient at x1
    /// (the output gradient plus the branch's), a spare [rows, D] buffer, and the MLP's
    /// parameter gradients. `gelu_grad` and `a` are dropped as soon as they are used.
    #[allow(clippy::too_many_arguments)]
    fn mlp_backward(
        &self,
        p: &Params,
        gy: &[f32],
        x1: &[f32],
        ln2: &[f32],
        gelu_grad: Vec<f32>,
        a: Vec<f32>,
        rows: usize,
        tokens: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, MlpGradients)> {
        let (d, hidden, eps) = (self.dim, self.hidden, self.eps);
        let fc1 = LinearDims {
            rows,
            input: d,
            output: hidden,
        };
        let fc2 = LinearDims {
            rows,
            input: hidden,
            output: d,
        };
        let g2 = self.scale_rows(gy, tokens, 1);
        // SAFETY: linear_backward_input (accumulate = false) writes all of `dh` before it is read.
        let mut dh = unsafe { alloc_uninit(rows * hidden) };
        kernels::linear_backward_input(fc2, &g2, p.fc2_w, &mut dh, false)?;
        let fc2_w = kernels::linear_backward_weight(fc2, &g2, &a)?;
        let fc2_b = kernels::column_sums(&g2, d);
        drop(a);
        kernels::mul_in_place(&mut dh, &gelu_grad);
        drop(gelu_grad);
        // SAFETY: linear_backward_input (accumulate = false) writes all of `d_ln` before it is read.
        let mut d_ln = unsafe { alloc_uninit(rows * d) };
        kernels::linear_backward_input(fc1, &dh, p.fc1_w, &mut d_ln, false)?;
        let fc1_w = kernels::linear_backward_weight(fc1, &dh, ln2)?;
        let fc1_b = kernels::column_sums(&dh, hidden);
        drop(dh);
        let mut dx1 = gy.to_vec();
        kernels::layer_norm_backward_input(x1, p.norm2_w, &d_ln, eps, &mut dx1, true);
        let norm2 = kernels::layer_norm_backward_params(x1, &d_ln, d, eps);
        Ok((
            dx1,
            d_ln,
            MlpGradients {
                norm2,
                fc1_w,
                fc1_b,
                fc2_w,
                fc2_b,
            },
        ))
    }

    /// The MLP half on `rows` rows: y = x1 + s2 · fc2(GELU(fc1(LN2(x1)))), with `tokens` rows
    /// per sample; returns (y, ln2, GELU′ or the pre-activations, a).
    #[allow(clippy::type_complexity)]
    fn mlp_forward(
        &self,
        p: &Params,
        x1: &[f32],
        rows: usize,
        tokens: usize,
        for_backward: bool,
        product: Product,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (d, hidden) = (self.dim, self.hidden);
        // SAFETY: layer_norm_forward writes all of `ln2` before it is read.
        let mut ln2 = unsafe { alloc_uninit(rows * d) };
        kernels::layer_norm_forward(x1, p.norm2_w, p.norm2_b, self.eps, &mut ln2);
        // SAFETY: matmul_transposed writes all of `h` before it is read.
        let mut h = unsafe { alloc_uninit(rows * hidden) };
        product(
            LinearDims {
                rows,
                input: d,
                output: hidden,
            },
            &ln2,
            p.fc1_w,
            &mut h,
        )?;
        // SAFETY: bias_gelu_forward writes all of `a` before it is read.
        let mut a = unsafe { alloc_uninit(rows * hidden) };
        kernels::bias_gelu_forward(&mut h, p.fc1_b, &mut a, for_backward);
        // SAFETY: matmul_transposed, then bias and residual in place writes all of `y` before it is read.
        let mut y = unsafe { alloc_uninit(rows * d) };
        product(
            LinearDims {
                rows,
                input: hidden,
                output: d,
            },
            &a,
            p.fc2_w,
            &mut y,
        )?;
        self.add_branch(x1, &mut y, p.fc2_b, tokens, 1);
        Ok((y, ln2, h, a))
    }

    /// The CLS-only forward pass ([`FusedBlock::cls_only`]): y [B, D] and the activations.
    fn forward_cls(
        &self,
        x: &[f32],
        flat: &[f32],
        batch: usize,
        tokens: usize,
        for_backward: bool,
    ) -> Result<(Vec<f32>, ClsActivations)> {
        let p = self.params(flat)?;
        let d = self.dim;
        let rows = batch * tokens;
        if x.len() != rows * d {
            bail!(
                "fused block: input of {} floats for [{batch}, {tokens}, {d}]",
                x.len()
            );
        }
        let (w_q, w_kv) = p.qkv_w.split_at(d * d);
        let (b_q, b_kv) = p.qkv_b.split_at(d);
        // Every buffer below is written completely by the kernel named beside it.
        // SAFETY: layer_norm_forward writes all of `ln1` before it is read.
        let mut ln1 = unsafe { alloc_uninit(rows * d) };
        kernels::layer_norm_forward(x, p.norm1_w, p.norm1_b, self.eps, &mut ln1);
        // SAFETY: linear_forward writes all of `kv` before it is read.
        let mut kv = unsafe { alloc_uninit(rows * 2 * d) };
        kernels::linear_forward(
            LinearDims {
                rows,
                input: d,
                output: 2 * d,
            },
            &ln1,
            w_kv,
            b_kv,
            &mut kv,
        )?;
        let ln1_cls = cls_rows(&ln1, tokens, d);
        // The products over the CLS rows (one per image) are row-wise, so that an image's
        // output does not depend on its batch (see rowwise_matmul_transposed).
        // SAFETY: rowwise_matmul_transposed, then the bias writes all of `q` before it is read.
        let mut q = unsafe { alloc_uninit(batch * d) };
        kernels::rowwise_matmul_transposed(
            LinearDims {
                rows: batch,
                input: d,
                output: d,
            },
            &ln1_cls,
            w_q,
            &mut q,
        )?;
        for row in q.chunks_mut(d) {
            kernels::add_assign(row, b_q);
        }
        let dims = AttentionDims::new(batch, tokens, 3 * d, self.heads)?;
        // SAFETY: cls_attention_forward writes all of `probs` before it is read.
        let mut probs = unsafe { alloc_uninit(batch * self.heads * tokens) };
        // SAFETY: cls_attention_forward writes all of `att` before it is read.
        let mut att = unsafe { alloc_uninit(batch * d) };
        kernels::cls_attention_forward(&dims, &q, &kv, &mut probs, &mut att)?;
        // SAFETY: matmul_transposed, then bias and residual in place writes all of `x1` before it is read.
        let mut x1 = unsafe { alloc_uninit(batch * d) };
        kernels::rowwise_matmul_transposed(
            LinearDims {
                rows: batch,
                input: d,
                output: d,
            },
            &att,
            p.proj_w,
            &mut x1,
        )?;
        self.add_branch(&cls_rows(x, tokens, d), &mut x1, p.proj_b, 1, 0);
        let (y, ln2, gelu_grad, a) = self.mlp_forward(
            &p,
            &x1,
            batch,
            1,
            for_backward,
            kernels::rowwise_matmul_transposed,
        )?;
        Ok((
            y,
            ClsActivations {
                ln1,
                ln1_cls,
                kv,
                q,
                probs,
                att,
                x1,
                ln2,
                gelu_grad,
                a,
            },
        ))
    }

    /// The CLS-only backward pass: dx [B, N, D] and the flat parameter gradient from `gy` [B, D].
    fn backward_cls(
        &self,
        x: &[f32],
        flat: &[f32],
        gy: &[f32],
        batch: usize,
        tokens: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let act = match self.take_saved() {
            Some(Saved::Cls(act)) => act,
            _ => self.forward_cls(x, flat, batch, tokens, true)?.1,
        };
        let p = self.params(flat)?;
        let (d, eps) = (self.dim, self.eps);
        let rows = batch * tokens;
        if gy.len() != batch * d {
            bail!(
                "fused block backward: gradient of {} floats for [{batch}, 1, {d}]",
                gy.len()
            );
        }
        let (w_q, w_kv) = p.qkv_w.split_at(d * d);
        let proj = LinearDims {
            rows: batch,
            input: d,
            output: d,
        };
        let q_dims = LinearDims {
            rows: batch,
            input: d,
            output: d,
        };
        let kv_dims = LinearDims {
            rows,
            input: d,
            output: 2 * d,
        };

        // MLP branch on the CLS rows.
        let (dx1, d_ln2, mlp) =
            self.mlp_backward(&p, gy, &act.x1, &act.ln2, act.gelu_grad, act.a, batch, 1)?;

        // Attention branch: the CLS queries attend over every token's keys and values.
        let g1 = self.scale_rows(&dx1, 1, 0);
        let mut d_att = d_ln2; // reused: linear_backward_input overwrites it (accumulate = false)
        kernels::linear_backward_input(proj, &g1, p.proj_w, &mut d_att, false)?;
        let d_proj_w = kernels::linear_backward_weight(proj, &g1, &act.att)?;
        let d_proj_b = kernels::column_sums(&g1, d);
        let dims = AttentionDims::new(batch, tokens, 3 * d, self.heads)?;
        // SAFETY: cls_attention_backward writes all of `dq` before it is read.
        let mut dq = unsafe { alloc_uninit(batch * d) };
        // SAFETY: cls_attention_backward writes all of `dkv` before it is read.
        let mut dkv = unsafe { alloc_uninit(rows * 2 * d) };
        kernels::cls_attention_backward(
            &dims, &act.q, &act.kv, &act.probs, &d_att, &mut dq, &mut dkv,
        )?;
        // SAFETY: linear_backward_input (accumulate = false) writes all of `d_ln1` before it is read.
        let mut d_ln1 = unsafe { alloc_uninit(rows * d) };
        kernels::linear_backward_input(kv_dims, &dkv, w_kv, &mut d_ln1, false)?;
        let mut d_ln1_cls = d_att; // reused, overwritten
        kernels::linear_backward_input(q_dims, &dq, w_q, &mut d_ln1_cls, false)?;
        for (sample, g) in d_ln1.chunks_mut(tokens * d).zip(d_ln1_cls.chunks(d)) {
            kernels::add_assign(&mut sample[..d], g);
        }
        let mut d_qkv_w = kernels::linear_backward_weight(q_dims, &dq, &act.ln1_cls)?;
        d_qkv_w.extend_from_slice(&kernels::linear_backward_weight(kv_dims, &dkv, &act.ln1)?);
        let mut d_qkv_b = kernels::column_sums(&dq, d);
        d_qkv_b.extend_from_slice(&kernels::column_sums(&dkv, 2 * d));
        // Only the CLS rows reach the output directly; every row reaches it through LN1.
        // SAFETY: layer_norm_backward_input (accumulate = false) writes all of `dx` before it is read.
        let mut dx = unsafe { alloc_uninit(rows * d) };
        kernels::layer_norm_backward_input(x, p.norm1_w, &d_ln1, eps, &mut dx, false);
        for (sample, g) in dx.chunks_mut(tokens * d).zip(dx1.chunks(d)) {
            kernels::add_assign(&mut sample[..d], g);
        }
        let d_norm1 = kernels::layer_norm_backward_params(x, &d_ln1, d, eps);
        Ok((
            dx,
            flat_gradient(d, &d_norm1, &d_qkv_w, &d_qkv_b, &d_proj_w, &d_proj_b, &mlp),
        ))
    }
}

/// The MLP half's parameter gradients (`norm2`: weight then bias).
struct MlpGradients {
    norm2: Vec<f32>,
    fc1_w: Vec<f32>,
    fc1_b: Vec<f32>,
    fc2_w: Vec<f32>,
    fc2_b: Vec<f32>,
}

/// The flat parameter gradient in [`BLOCK_PARAMS`] order (`norm1`: weight then bias).
fn flat_gradient(
    d: usize,
    norm1: &[f32],
    qkv_w: &[f32],
    qkv_b: &[f32],
    proj_w: &[f32],
    proj_b: &[f32],
    mlp: &MlpGradients,
) -> Vec<f32> {
    let (norm1_w, norm1_b) = norm1.split_at(d);
    let (norm2_w, norm2_b) = mlp.norm2.split_at(d);
    [
        norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, &mlp.fc1_w, &mlp.fc1_b,
        &mlp.fc2_w, &mlp.fc2_b,
    ]
    .concat()
}

/// The f32 contents of a contiguous CPU tensor, to `f` (the tensor stays read-locked meanwhile).
fn with_f32s<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(f32s(cpu, layout, what)?),
        _ => bail!("{what}: only CPU tensors are supported"),
    }
}

impl CustomOp2 for FusedBlock {
    fn name(&self) -> &'static str {
        "procmem-block"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s1, l1, self.name())?;
        let flat = f32s(s2, l2, self.name())?;
        let (batch, tokens) = self.input_dims(l1.shape())?;
        let (y, saved, shape) = if self.cls_only {
            let (y, act) = self.forward_cls(x, flat, batch, tokens, self.keep_activations)?;
            (y, Saved::Cls(act), Shape::from((batch, 1, self.dim)))
        } else {
            let (y, act) = self.forward(x, flat, batch, tokens, self.keep_activations)?;
            (y, Saved::All(act), l1.shape().clone())
        };
        if self.keep_activations
            && let Ok(mut slot) = self.saved.lock()
        {
            *slot = Some(saved);
        }
        Ok((CpuStorage::F32(y), shape))
    }
    fn bwd(
        &self,
        x: &Tensor,
        flat: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (batch, tokens) = self.input_dims(x.shape())?;
        let grad = grad.contiguous()?;
        let (dx, dflat) = with_f32s(x, "fused block backward", |x| {
            with_f32s(flat, "fused block backward", |flat| {
                with_f32s(&grad, "fused block backward", |gy| {
                    if self.cls_only {
                        self.backward_cls(x, flat, gy, batch, tokens)
                    } else {
                        self.backward(x, flat, gy, batch, tokens)
                    }
                })
            })
        })?;
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        let dflat = Tensor::from_vec(dflat, flat.shape(), flat.device())?;
        Ok((Some(dx), Some(dflat)))
    }
}
