//! Vision Transformer (Dosovitskiy et al. 2021) as DINO uses it (Caron et al. 2021), in candle.
//!
//! Follows facebookresearch/dino's `vision_transformer.py`: pre-norm blocks, qkv with bias,
//! LayerNorm eps 1e-6, exact (erf) GELU, learned position embedding interpolated bicubically
//! (with DINO's +0.1 in the scale factor) for other input sizes, stochastic depth on the student.
//! Parameter names equal the DINO/timm checkpoint keys.
//!
//! Deviation: the patch embedding is computed as a reshape + matmul instead of a strided
//! convolution (the same function with kernel = stride = patch, and the same weight layout).

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, IndexOp, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use super::block::FusedBlock;
use super::layers::l2_normalise;
use super::layers::{attention, gelu, layer_norm, linear};
use super::pooling::Pooling;
use super::standardise::Standardisation;
use crate::rng::Rng;

/// The architecture. Presets: [`VitConfig::vit_tiny`], [`VitConfig::vit_small`],
/// [`VitConfig::vit_base`] (patch 16 at 224², as DINO) and CPU-scale ones for this machine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VitConfig {
    /// Training image side; the position embedding has (img_size / patch_size)² + 1 entries.
    pub img_size: usize,
    pub patch_size: usize,
    pub in_chans: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub layer_norm_eps: f64,
}

impl VitConfig {
    fn with(
        img_size: usize,
        patch_size: usize,
        embed_dim: usize,
        depth: usize,
        num_heads: usize,
    ) -> Self {
        Self {
            img_size,
            patch_size,
            in_chans: 3,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            layer_norm_eps: 1e-6,
        }
    }
    /// ViT-Tiny/16 (DINO's `vit_tiny`).
    pub(crate) fn vit_tiny() -> Self {
        Self::with(224, 16, 192, 12, 3)
    }
    /// ViT-Small/16 (DINO's `vit_small`, the paper's model).
    pub(crate) fn vit_small() -> Self {
        Self::with(224, 16, 384, 12, 6)
    }
    /// ViT-Base/16.
    pub(crate) fn vit_base() -> Self {
        Self::with(224, 16, 768, 12, 12)
    }
    /// CPU scale: 64² input, patch 8 (64 tokens), width 192, 6 blocks, 3 heads.
    pub(crate) fn cpu_tiny() -> Self {
        Self::with(64, 8, 192, 6, 3)
    }
    /// CPU scale, wider and deeper: 64² input, patch 8, width 192, 12 blocks.
    pub(crate) fn cpu_small() -> Self {
        Self::with(64, 8, 192, 12, 3)
    }
    /// A very small model for tests and quick checks: 32² input, patch 8, width 32, 2 blocks.
    pub fn micro() -> Self {
        Self::with(32, 8, 32, 2, 2)
    }

    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "vit-tiny" => Self::vit_tiny(),
            "vit-small" => Self::vit_small(),
            "vit-base" => Self::vit_base(),
            "cpu-tiny" => Self::cpu_tiny(),
            "cpu-small" => Self::cpu_small(),
            "micro" => Self::micro(),
            _ => return None,
        })
    }

    /// The checkpoint keys of every parameter this architecture has, in no particular order
    /// (the names [`VisionTransformer::new`] reads).
    pub fn parameter_names(&self) -> Vec<String> {
        let mut names: Vec<String> = [
            "cls_token",
            "pos_embed",
            "patch_embed.proj.weight",
            "patch_embed.proj.bias",
            "norm.weight",
            "norm.bias",
        ]
        .map(String::from)
        .into();
        for i in 0..self.depth {
            for part in [
                "norm1",
                "attn.qkv",
                "attn.proj",
                "norm2",
                "mlp.fc1",
                "mlp.fc2",
            ] {
                names.push(format!("blocks.{i}.{part}.weight"));
                if part != "attn.qkv" || self.qkv_bias {
                    names.push(format!("blocks.{i}.{part}.bias"));
                }
            }
        }
        names
    }

    pub const PRESETS: [&'static str; 6] = [
        "cpu-tiny",
        "cpu-small",
        "micro",
        "vit-tiny",
        "vit-small",
        "vit-base",
    ];

    pub(crate) fn num_patches(&self) -> usize {
        (self.img_size / self.patch_size).pow(2)
    }

    pub(crate) fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
        })
    }
    fn forward(&self, x: &Tensor, eps: f64) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, eps)
    }
}

struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn new(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", Init::Const(0.0))?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, self.bias.as_ref())
    }
}

struct Block {
    norm1: Norm,
    qkv: Linear,
    proj: Linear,
    norm2: Norm,
    fc1: Linear,
    fc2: Linear,
    num_heads: usize,
    eps: f64,
}

impl Block {
    fn new(cfg: &VitConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.embed_dim;
        Ok(Self {
            norm1: Norm::new(d, vb.pp("norm1"))?,
            qkv: Linear::new(d, 3 * d, cfg.qkv_bias, vb.pp("attn.qkv"))?,
            proj: Linear::new(d, d, true, vb.pp("attn.proj"))?,
            norm2: Norm::new(d, vb.pp("norm2"))?,
            fc1: Linear::new(d, cfg.mlp_hidden(), true, vb.pp("mlp.fc1"))?,
            fc2: Linear::new(cfg.mlp_hidden(), d, true, vb.pp("mlp.fc2"))?,
            num_heads: cfg.num_heads,
            eps: cfg.layer_norm_eps,
        })
    }

    fn attention(&self, x: &Tensor) -> Result<Tensor> {
        self.proj
            .forward(&attention(&self.qkv.forward(x)?, self.num_heads)?)
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&gelu(&self.fc1.forward(x)?)?)
    }

    /// The block as one fused node ([`FusedBlock`]) when it has a qkv bias and runs in f32 on
    /// the CPU, else composed of the separate ops. `track`: a gradient may be asked for (the
    /// fused node then keeps its activations for the backward pass). `cls_only`: return only the
    /// CLS token's output, [B, 1, D] ([`FusedBlock::cls_only`]; the same values as the CLS row
    /// of the whole output).
    fn forward(
        &self,
        x: &Tensor,
        drop: Option<(&mut Rng, f64)>,
        track: bool,
        cls_only: bool,
    ) -> Result<Tensor> {
        let batch = x.dim(0)?;
        let scales = match drop {
            Some((rng, p)) if p > 0.0 => Some((
                drop_path_scales(batch, p, rng),
                drop_path_scales(batch, p, rng),
            )),
            _ => None,
        };
        match self.fused_params(x, track)? {
            Some(params) => {
                let scales = match &scales {
                    Some((s1, s2)) => s1.iter().zip(s2).flat_map(|(a, b)| [*a, *b]).collect(),
                    None => Vec::new(),
                };
                let op = FusedBlock::new(
                    self.norm1.weight.dim(0)?,
                    self.fc1.weight.dim(0)?,
                    self.num_heads,
                    self.eps as f32,
                    scales,
                    track,
                );
                let op = if cls_only { op.cls_only() } else { op };
                x.contiguous()?.apply_op2(&params, op)
            }
            None => {
                let (mask1, mask2) = match &scales {
                    Some((s1, s2)) => (Some(drop_path_mask(s1)?), Some(drop_path_mask(s2)?)),
                    None => (None, None),
                };
                let y = self.forward_composed(x, mask1.as_ref(), mask2.as_ref())?;
                if cls_only { y.narrow(1, 0, 1) } else { Ok(y) }
            }
        }
    }

    /// The flattened parameters in [`super::block::BLOCK_PARAMS`] order, when the fused block applies.
    fn fused_params(&self, x: &Tensor, track: bool) -> Result<Option<Tensor>> {
        let (Some(qkv_b), Some(proj_b), Some(fc1_b), Some(fc2_b)) = (
            &self.qkv.bias,
            &self.proj.bias,
            &self.fc1.bias,
            &self.fc2.bias,
        ) else {
            return Ok(None);
        };
        if x.dtype() != DType::F32
            || !x.device().is_cpu()
            || self.norm1.weight.dtype() != DType::F32
        {
            return Ok(None);
        }
        let parts = [
            &self.norm1.weight,
            &self.norm1.bias,
            &self.qkv.weight,
            qkv_b,
            &self.proj.weight,
            proj_b,
            &self.norm2.weight,
            &self.norm2.bias,
            &self.fc1.weight,
            fc1_b,
            &self.fc2.weight,
            fc2_b,
        ];
        let flat = parts
            .iter()
            .map(|t| {
                if track {
                    t.flatten_all()
                } else {
                    t.detach().flatten_all()
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Tensor::cat(&flat, 0)?))
    }

    /// The block from the separate fused ops: the reference for [`FusedBlock`], and the path
    /// for blocks it does not cover (no qkv bias, other dtypes or devices).
    fn forward_composed(
        &self,
        x: &Tensor,
        mask1: Option<&Tensor>,
        mask2: Option<&Tensor>,
    ) -> Result<Tensor> {
        let branch = self.attention(&self.norm1.forward(x, self.eps)?)?;
        let x = match mask1 {
            Some(m) => (x + branch.broadcast_mul(m)?)?,
            None => (x + branch)?,
        };
        let branch = self.mlp(&self.norm2.forward(&x, self.eps)?)?;
        match mask2 {
            Some(m) => x + branch.broadcast_mul(m)?,
            None => x + branch,
        }
    }
}

/// Rows of x [B, D] scaled to unit L2 norm (rows of norm below 1e-12 divided by 1e-12).
/// Stochastic depth: a per-sample keep scale, 0 or 1/(1−p).
fn drop_path_scales(batch: usize, p: f64, rng: &mut Rng) -> Vec<f32> {
    let keep = 1.0 - p;
    (0..batch)
        .map(|_| {
            if rng.bernoulli(keep) {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// The scales as a [B, 1, 1] mask for the composed block.
fn drop_path_mask(scales: &[f32]) -> Result<Tensor> {
    Tensor::from_vec(
        scales.to_vec(),
        (scales.len(), 1, 1),
        &candle_core::Device::Cpu,
    )
}

/// PyTorch's cubic convolution weights (A = −0.75) for fractional offset t.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let c1 = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t)]
}

/// 1-D bicubic interpolation matrix [out, input] with PyTorch's `interpolate(scale_factor=s,
/// mode='bicubic', align_corners=False)` coordinates: src = (dst + 0.5)/s − 0.5, borders clamped.
pub(crate) fn bicubic_matrix(input: usize, out: usize, scale: f64) -> Vec<Vec<f64>> {
    (0..out)
        .map(|o| {
            let src = (o as f64 + 0.5) / scale - 0.5;
            let base = src.floor();
            let w = cubic_weights(src - base);
            let mut row = vec![0.0; input];
            for (k, wk) in w.iter().enumerate() {
                let idx = (base as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
                row[idx] += wk;
            }
            row
        })
        .collect()
}

/// The backbone.
pub struct VisionTransformer {
    pub cfg: VitConfig,
    cls_token: Tensor,
    pos_embed: Tensor,
    patch_weight: Tensor,
    patch_bias: Tensor,
    blocks: Vec<Block>,
    norm: Norm,
    /// Position-embedding interpolation matrices per patch grid (h, w).
    interp_cache: Mutex<HashMap<(usize, usize), Tensor>>,
    /// How the final tokens become the embedding (the CLS token unless the model file says).
    pooling: Pooling,
    /// Procedural centring and whitening of the pooled embedding, when the model file has one.
    standardisation: Option<Standardisation>,
    /// Procedural centring and whitening of the patch tokens (the dense tasks' features), when
    /// the model file has one.
    patch_standardisation: Option<Standardisation>,
    /// The block (1 = first) whose output tokens, through the final norm, the dense tasks read;
    /// `None` = the last block (the paper's `get_intermediate_layers(x)[0]`).
    patch_block: Option<usize>,
}

impl VisionTransformer {
    pub fn new(cfg: &VitConfig, vb: VarBuilder) -> Result<Self> {
        if !cfg.embed_dim.is_multiple_of(cfg.num_heads) {
            bail!(
                "embed_dim {} is not divisible by num_heads {}",
                cfg.embed_dim,
                cfg.num_heads
            );
        }
        if !cfg.img_size.is_multiple_of(cfg.patch_size) {
            bail!(
                "img_size {} is not a multiple of patch_size {}",
                cfg.img_size,
                cfg.patch_size
            );
        }
        let d = cfg.embed_dim;
        let p = cfg.patch_size;
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            cls_token: vb.get_with_hints((1, 1, d), "cls_token", Init::Const(0.0))?,
            pos_embed: vb.get_with_hints(
                (1, cfg.num_patches() + 1, d),
                "pos_embed",
                Init::Const(0.0),
            )?,
            patch_weight: vb.get_with_hints(
                (d, cfg.in_chans, p, p),
                "patch_embed.proj.weight",
                Init::Const(0.0),
            )?,
            patch_bias: vb.get_with_hints(d, "patch_embed.proj.bias", Init::Const(0.0))?,
            blocks,
            norm: Norm::new(d, vb.pp("norm"))?,
            interp_cache: Mutex::new(HashMap::new()),
            pooling: Pooling::Cls,
            standardisation: None,
            patch_standardisation: None,
            patch_block: None,
        })
    }

    /// The model with another pooling of its tokens (see [`super::pooling`]); errors when the
    /// pooling cannot divide the model's patch grid or a standardisation of another width is set.
    pub(crate) fn with_pooling(mut self, pooling: Pooling) -> Result<Self> {
        let side = self.cfg.img_size / self.cfg.patch_size;
        pooling.check_grid(side, side)?;
        if let Some(s) = &self.standardisation
            && s.dim() != pooling.dim(self.cfg.embed_dim)
        {
            bail!(
                "a {} pooling gives width {}, the standardisation has width {}",
                pooling.name(),
                pooling.dim(self.cfg.embed_dim),
                s.dim()
            );
        }
        self.pooling = pooling;
        Ok(self)
    }

    /// The model with a procedural standardisation of its pooled embedding (see
    /// [`super::standardise`]); errors when its input width is not the pooling's width. Set the
    /// pooling first.
    pub(crate) fn with_standardisation(
        mut self,
        standardisation: Option<Standardisation>,
    ) -> Result<Self> {
        let pooled = self.pooling.dim(self.cfg.embed_dim);
        if let Some(s) = &standardisation
            && s.dim() != pooled
        {
            bail!(
                "standardisation of width {} for a pooled embedding of width {pooled}",
                s.dim(),
            );
        }
        self.standardisation = standardisation;
        Ok(self)
    }

    pub fn standardisation(&self) -> Option<&Standardisation> {
        self.standardisation.as_ref()
    }

    /// The model with a procedural standardisation of its patch tokens (see
    /// [`super::standardise`]); errors when its width is not the model's width.
    pub(crate) fn with_patch_standardisation(
        mut self,
        standardisation: Option<Standardisation>,
    ) -> Result<Self> {
        if let Some(s) = &standardisation
            && s.dim() != self.cfg.embed_dim
        {
            bail!(
                "patch-token standardisation of width {} for tokens of width {}",
                s.dim(),
                self.cfg.embed_dim
            );
        }
        self.patch_standardisation = standardisation;
        Ok(self)
    }

    /// The model whose dense features ([`Self::patch_features`]) are the tokens after block
    /// `block` (1 = first, through the final norm) instead of the last block's; `None` = the
    /// last. Errors when `block` is 0 or exceeds the depth.
    pub fn with_patch_block(mut self, block: Option<usize>) -> Result<Self> {
        let depth = self.blocks.len();
        if let Some(k) = block
            && !(1..=depth).contains(&k)
        {
            bail!("patch block {k} of a model with {depth} blocks (1 to {depth})");
        }
        self.patch_block = block.filter(|&k| k < depth);
        Ok(self)
    }

    /// The block the dense features are read after (1 = first): [`Self::with_patch_block`]'s,
    /// else the last.
    pub fn patch_block(&self) -> usize {
        self.patch_block.unwrap_or(self.blocks.len())
    }

    /// The procedural standardisation of the patch tokens, when the model file has one.
    pub fn patch_standardisation(&self) -> Option<&Standardisation> {
        self.patch_standardisation.as_ref()
    }

    /// The patch features of final tokens [B, 1 + P, D]: the final-norm patch tokens [B, P, D],
    /// standardised (W_p·(z − μ_p), not normalised) when the model has a patch standardisation.
    fn standardised_patches(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, n, d) = tokens.dims3()?;
        let patches = tokens.narrow(1, 1, n - 1)?;
        match &self.patch_standardisation {
            Some(s) => s
                .apply(&patches.reshape((b * (n - 1), d))?)?
                .reshape((b, n - 1, d)),
            None => Ok(patches),
        }
    }

    /// The patch features the dense tasks read: [B, P, D] for an input [B, C, H, W] with
    /// P = (H/patch)·(W/patch), row-major; the patch tokens after [`Self::patch_block`] through
    /// the final norm (for the last block the paper's `get_intermediate_layers(x)[0][:, 1:]`;
    /// for an earlier one DINO's `get_intermediate_layers(x, n)[0]`, and the blocks after it
    /// are not computed), standardised when the model has a patch standardisation.
    pub fn patch_features(&self, x: &Tensor) -> Result<Tensor> {
        let tokens = match self.patch_block {
            Some(k) => {
                let mut t = self.prepare_tokens(x)?;
                for block in &self.blocks[..k] {
                    t = block.forward(&t, None, false, false)?;
                }
                self.norm.forward(&t, self.cfg.layer_norm_eps)?
            }
            None => self.infer_tokens(x)?,
        };
        self.standardised_patches(&tokens)
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Width of [`Self::embedding`]: the standardisation's output width when it keeps fewer
    /// axes ([`Standardisation::fit_components`]); else the pooled width, the model's width for
    /// the CLS pooling and s²· that for an s×s grid.
    pub fn embedding_dim(&self) -> usize {
        self.standardisation
            .as_ref()
            .map_or(self.pooling.dim(self.cfg.embed_dim), |s| s.out_dim())
    }

    /// The embedding of final tokens ([B, 1 + rows·cols, D], or the CLS row alone for the CLS
    /// pooling): pooled to unit length, then standardised and normalised again when the model
    /// has a standardisation.
    fn pooled_embedding(&self, tokens: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
        let unit = self.pooling.apply(tokens, rows, cols)?;
        match &self.standardisation {
            Some(s) => l2_normalise(&s.apply(&unit)?),
            None => Ok(unit),
        }
    }

    /// Patch grid (rows, cols) of an input [B, C, H, W].
    fn patch_grid(&self, x: &Tensor) -> Result<(usize, usize)> {
        let (_, _, h, w) = x.dims4()?;
        Ok((h / self.cfg.patch_size, w / self.cfg.patch_size))
    }

    /// Position embeddings for an h×w patch grid (bicubic, DINO's `interpolate_pos_encoding`).
    fn pos_embed_for(&self, h: usize, w: usize) -> Result<Tensor> {
        let n = self.pos_embed.dim(1)? - 1;
        let gs = (n as f64).sqrt().round() as usize;
        if gs * gs != n {
            bail!("pos_embed has {n} patch entries, not a square grid");
        }
        if h == gs && w == gs {
            return Ok(self.pos_embed.clone());
        }
        let matrix = {
            let mut cache = self.interp_cache.lock().expect("cache lock");
            match cache.get(&(h, w)) {
                Some(m) => m.clone(),
                None => {
                    // DINO adds 0.1 to the target size to avoid floating point error in the
                    // scale factor; the coordinates then use that exact scale.
                    let mh = bicubic_matrix(gs, h, (h as f64 + 0.1) / gs as f64);
                    let mw = bicubic_matrix(gs, w, (w as f64 + 0.1) / gs as f64);
                    let mut data = Vec::with_capacity(h * w * n);
                    for i in 0..h {
                        for j in 0..w {
                            for a in 0..gs {
                                for b in 0..gs {
                                    data.push((mh[i][a] * mw[j][b]) as f32);
                                }
                            }
                        }
                    }
                    let m = Tensor::from_vec(data, (h * w, n), self.pos_embed.device())?;
                    cache.insert((h, w), m.clone());
                    m
                }
            }
        };
        let class_pos = self.pos_embed.narrow(1, 0, 1)?;
        let patch_pos = self.pos_embed.narrow(1, 1, n)?.squeeze(0)?;
        let interpolated = matrix.matmul(&patch_pos)?.unsqueeze(0)?;
        Tensor::cat(&[&class_pos, &interpolated], 1)
    }

    fn prepare_tokens(&self, x: &Tensor) -> Result<Tensor> {
        self.prepare_tokens_masked(x, None)
    }

    /// [`Self::prepare_tokens`] with iBOT's masking: `mask` = (`masks` [B, P], 1 where the patch
    /// is masked, else 0; `mask_token` [1, D]) replaces the masked patches' embeddings by the
    /// mask token before the position embeddings are added (DINOv2 `prepare_tokens_with_masks`).
    fn prepare_tokens_masked(
        &self,
        x: &Tensor,
        mask: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (b, c, hh, ww) = x.dims4()?;
        let p = self.cfg.patch_size;
        if c != self.cfg.in_chans {
            bail!(
                "input has {c} channels, the model takes {}",
                self.cfg.in_chans
            );
        }
        if hh % p != 0 || ww % p != 0 {
            bail!("input {hh}x{ww} is not a multiple of the patch size {p}");
        }
        let (h, w) = (hh / p, ww / p);
        let patches = x
            .reshape((b, c, h, p, w, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, h * w, c * p * p))?;
        let weight = self.patch_weight.reshape((self.cfg.embed_dim, c * p * p))?;
        let mut tokens = linear(&patches, &weight, Some(&self.patch_bias))?;
        if let Some((masks, mask_token)) = mask {
            let d = self.cfg.embed_dim;
            if masks.dims() != [b, h * w] || mask_token.dims() != [1, d] {
                bail!(
                    "masks {:?} and mask token {:?} for {b} images of {} patches, width {d}",
                    masks.dims(),
                    mask_token.dims(),
                    h * w
                );
            }
            let m = masks.unsqueeze(2)?;
            let kept = tokens.broadcast_mul(&(1.0 - &m)?)?;
            tokens = (kept + m.broadcast_mul(&mask_token.unsqueeze(0)?)?)?;
        }
        let cls = self.cls_token.broadcast_as((b, 1, self.cfg.embed_dim))?;
        let tokens = Tensor::cat(&[&cls, &tokens], 1)?;
        tokens.broadcast_add(&self.pos_embed_for(h, w)?)
    }

    /// All tokens after the final norm: [B, 1 + patches, D]. `drop` enables stochastic depth
    /// with the given maximum rate (linearly increasing over blocks, as DINO).
    pub fn forward_tokens(&self, x: &Tensor, drop: Option<(&mut Rng, f64)>) -> Result<Tensor> {
        self.tokens(x, drop, true, false)
    }

    /// [`Self::forward_tokens`] with iBOT's masked patches (see [`Self::prepare_tokens_masked`]):
    /// the student's pass over the global crops when the iBOT loss is on. [B, 1 + P, D].
    pub(crate) fn forward_tokens_masked(
        &self,
        x: &Tensor,
        masks: &Tensor,
        mask_token: &Tensor,
        drop: Option<(&mut Rng, f64)>,
    ) -> Result<Tensor> {
        let t = self.prepare_tokens_masked(x, Some((masks, mask_token)))?;
        self.run_blocks(t, drop, true, false)
    }

    /// [`Self::forward_tokens`] for inference: the blocks keep no activations for a backward pass
    /// and the result has no gradient path to the block parameters.
    pub fn infer_tokens(&self, x: &Tensor) -> Result<Tensor> {
        self.tokens(x, None, false, false)
    }

    /// The tokens after the final norm, [B, N, D], or with `cls_only` the CLS token alone,
    /// [B, 1, D]: the last block then computes that row only ([`FusedBlock::cls_only`]).
    fn tokens(
        &self,
        x: &Tensor,
        drop: Option<(&mut Rng, f64)>,
        track: bool,
        cls_only: bool,
    ) -> Result<Tensor> {
        let t = self.prepare_tokens(x)?;
        self.run_blocks(t, drop, track, cls_only)
    }

    /// The blocks and the final norm over prepared tokens (see [`Self::tokens`]).
    fn run_blocks(
        &self,
        mut t: Tensor,
        mut drop: Option<(&mut Rng, f64)>,
        track: bool,
        cls_only: bool,
    ) -> Result<Tensor> {
        let depth = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            let rate = |max: f64| {
                if depth > 1 {
                    max * i as f64 / (depth - 1) as f64
                } else {
                    0.0
                }
            };
            let last_cls_only = cls_only && i + 1 == depth;
            t = match drop.as_mut() {
                Some((rng, max)) => {
                    block.forward(&t, Some((&mut **rng, rate(*max))), track, last_cls_only)?
                }
                None => block.forward(&t, None, track, last_cls_only)?,
            };
        }
        if cls_only && depth == 0 {
            t = t.narrow(1, 0, 1)?;
        }
        self.norm.forward(&t, self.cfg.layer_norm_eps)
    }

    /// The tokens of the last `n` blocks, each through the final norm: `n` tensors [B, N, D],
    /// the deepest last (DINO's `get_intermediate_layers(x, n)`, facebookresearch/dino
    /// `vision_transformer.py`). Inference only: no activations are kept. Errors when `n` is 0
    /// or exceeds the depth.
    pub fn intermediate_layers(&self, x: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        let depth = self.blocks.len();
        if n == 0 || n > depth {
            bail!("asked for the last {n} of {depth} blocks");
        }
        let mut t = self.prepare_tokens(x)?;
        let mut out = Vec::with_capacity(n);
        for (i, block) in self.blocks.iter().enumerate() {
            t = block.forward(&t, None, false, false)?;
            if i + n >= depth {
                out.push(self.norm.forward(&t, self.cfg.layer_norm_eps)?);
            }
        }
        Ok(out)
    }

    /// The CLS token after the final norm: [B, D] (DINO's backbone output). The last block
    /// computes the CLS row only, as nothing else of it is read.
    pub(crate) fn forward_cls(&self, x: &Tensor, drop: Option<(&mut Rng, f64)>) -> Result<Tensor> {
        self.tokens(x, drop, true, true)?.i((.., 0))
    }

    /// [`Self::forward_cls`] for inference (no activations kept, no gradient path).
    pub(crate) fn infer_cls(&self, x: &Tensor) -> Result<Tensor> {
        self.tokens(x, None, false, true)?.i((.., 0))
    }

    /// The embedding [B, E] (E = [`Self::embedding_dim`]; unit length, pooled by
    /// [`Self::pooling`], standardised when the model has a standardisation) and the patch
    /// features [B, patches, D] ([`Self::patch_features`]).
    pub fn embed(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let tokens = self.infer_tokens(x)?;
        let (rows, cols) = self.patch_grid(x)?;
        let patches = match self.patch_block {
            None => self.standardised_patches(&tokens)?,
            // The dense features stop at an earlier block.
            Some(_) => self.patch_features(x)?,
        };
        Ok((self.pooled_embedding(&tokens, rows, cols)?, patches))
    }

    /// The embedding alone [B, E], as kNN memories store it: for the CLS pooling cheaper than
    /// [`Self::embed`], as the last block then computes the CLS row only.
    pub fn embedding(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, cols) = self.patch_grid(x)?;
        let tokens = self.tokens(x, None, false, self.pooling.reads_cls_only())?;
        self.pooled_embedding(&tokens, rows, cols)
    }

    pub fn dtype(&self) -> DType {
        self.cls_token.dtype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::new_backbone;
    use crate::test_support::{max_abs_diff, normal_tensor};
    use candle_core::Var;

    /// A micro ViT whose block 1 has random values in every parameter (biases and norms too, so
    /// that each gradient term matters), with its variables by name.
    fn perturbed_model() -> (VisionTransformer, Vec<(String, Var)>) {
        let (vit, varmap) = new_backbone(&VitConfig::micro(), 3).unwrap();
        let data = varmap.data().lock().unwrap();
        let mut vars: Vec<(String, Var)> = data
            .iter()
            .filter(|(n, _)| n.starts_with("blocks.1."))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, var)) in vars.iter().enumerate() {
            let std = if name.contains("norm") { 0.5 } else { 0.2 };
            let base = if name.ends_with("norm1.weight") || name.ends_with("norm2.weight") {
                1.0
            } else {
                0.0
            };
            var.set(&(normal_tensor(var.dims(), 100 + i as u64, std) + base).unwrap())
                .unwrap();
        }
        drop(data);
        (vit, vars)
    }

    #[test]
    fn fused_block_matches_the_composed_block_in_value_and_every_gradient() {
        let (vit, vars) = perturbed_model();
        let block = &vit.blocks[1];
        assert_eq!(
            vars.len(),
            12,
            "{:?}",
            vars.iter().map(|v| &v.0).collect::<Vec<_>>()
        );
        let x = Var::from_tensor(&normal_tensor(&[4, 17, 32], 1, 1.0)).unwrap();
        // Without drop path, and with a rate at which some samples drop a branch; the whole
        // output, and the CLS-only output compared with the composed block's CLS row.
        for (rate, cls_only) in [(0.0, false), (0.5, false), (0.0, true), (0.5, true)] {
            let r = normal_tensor(&[4, if cls_only { 1 } else { 17 }, 32], 2, 1.0);
            let mut drop_rng = Rng::new(7);
            let drop = if rate > 0.0 {
                Some((&mut drop_rng, rate))
            } else {
                None
            };
            let fused = block.forward(x.as_tensor(), drop, true, cls_only).unwrap();
            let mut rng = Rng::new(7);
            let masks = if rate > 0.0 {
                (
                    Some(drop_path_mask(&drop_path_scales(4, rate, &mut rng)).unwrap()),
                    Some(drop_path_mask(&drop_path_scales(4, rate, &mut rng)).unwrap()),
                )
            } else {
                (None, None)
            };
            if let Some(m) = &masks.0 {
                let m = m.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(
                    m.contains(&0.0) && m.contains(&2.0),
                    "the test wants dropped and kept samples: {m:?}"
                );
            }
            let composed = block
                .forward_composed(x.as_tensor(), masks.0.as_ref(), masks.1.as_ref())
                .unwrap();
            let composed = if cls_only {
                composed.narrow(1, 0, 1).unwrap()
            } else {
                composed
            };
            assert_eq!(fused.dims(), composed.dims());
            assert!(
                max_abs_diff(&fused, &composed) < 1e-4,
                "rate {rate}: values differ by {}",
                max_abs_diff(&fused, &composed)
            );
            let g_fused = (&fused * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g_composed = (&composed * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut checked = vec![("input".to_string(), x.clone())];
            checked.extend(vars.iter().cloned());
            for (name, var) in &checked {
                let a = g_fused.get(var).unwrap_or_else(|| {
                    panic!("rate {rate}, CLS only {cls_only}: no gradient for {name}")
                });
                let b = g_composed.get(var).unwrap();
                let scale = b
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    .max(1.0);
                let diff = max_abs_diff(a, b) / scale;
                assert!(
                    diff < 1e-4,
                    "rate {rate}, CLS only {cls_only}: gradient of {name} differs by {diff}"
                );
            }
        }
    }

    #[test]
    fn fused_block_recomputes_its_activations_when_it_kept_none() {
        let (vit, vars) = perturbed_model();
        let block = &vit.blocks[1];
        let x = Var::from_tensor(&normal_tensor(&[3, 17, 32], 4, 1.0)).unwrap();
        let grads = |track: bool| {
            let y = block.forward(x.as_tensor(), None, track, false).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            (g.get(&x).unwrap().clone(), y)
        };
        let (kept, y_kept) = grads(true);
        let (recomputed, y_recomputed) = grads(false);
        assert!(max_abs_diff(&y_kept, &y_recomputed) == 0.0);
        assert!(
            max_abs_diff(&kept, &recomputed) < 1e-6,
            "input gradients differ by {}",
            max_abs_diff(&kept, &recomputed)
        );
        assert!(!vars.is_empty());
    }

    #[test]
    fn the_cls_only_path_gives_the_cls_token_and_its_gradients() {
        let (vit, vars) = perturbed_model();
        let x = normal_tensor(&[3, 3, 32, 32], 6, 1.0);
        let r = normal_tensor(&[3, 32], 8, 1.0);
        let full = vit.forward_tokens(&x, None).unwrap().i((.., 0)).unwrap();
        let cls = vit.forward_cls(&x, None).unwrap();
        assert!(
            max_abs_diff(&full, &cls) < 1e-5,
            "CLS outputs differ by {}",
            max_abs_diff(&full, &cls)
        );
        assert_eq!(max_abs_diff(&cls, &vit.infer_cls(&x).unwrap()), 0.0);
        let (embedded, _) = vit.embed(&x).unwrap();
        assert!(max_abs_diff(&embedded, &vit.embedding(&x).unwrap()) < 1e-5);
        let grid = perturbed_model()
            .0
            .with_pooling(Pooling::PatchGrid { side: 2 })
            .unwrap();
        assert_eq!(
            max_abs_diff(&grid.embed(&x).unwrap().0, &grid.embedding(&x).unwrap()),
            0.0
        );
        assert!(
            perturbed_model()
                .0
                .with_pooling(Pooling::PatchGrid { side: 3 })
                .is_err(),
            "3 does not divide the 4×4 grid"
        );
        let g_full = (&full * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_cls = (&cls * &r).unwrap().sum_all().unwrap().backward().unwrap();
        // Block 1 is the micro model's last block; its parameters get the CLS-only gradients.
        assert_eq!(vit.blocks.len(), 2);
        for (name, var) in &vars {
            let (a, b) = (g_cls.get(var).unwrap(), g_full.get(var).unwrap());
            let scale = b
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .max(1.0);
            assert!(
                max_abs_diff(a, b) / scale < 1e-4,
                "gradient of {name} differs by {}",
                max_abs_diff(a, b)
            );
        }
    }

    #[test]
    fn an_image_embeds_the_same_alone_and_in_a_batch() {
        for (cfg, pooling) in [
            (VitConfig::micro(), Pooling::Cls),
            (VitConfig::cpu_tiny(), Pooling::Cls),
            (VitConfig::micro(), Pooling::PatchGrid { side: 2 }),
            (VitConfig::cpu_tiny(), Pooling::PatchGrid { side: 2 }),
        ] {
            let (vit, _) = new_backbone(&cfg, 4).unwrap();
            let vit = vit.with_pooling(pooling).unwrap();
            let x = normal_tensor(&[9, 3, cfg.img_size, cfg.img_size], 9, 1.0);
            for batch in [2, 3, 9] {
                let together = vit.embedding(&x.narrow(0, 0, batch).unwrap()).unwrap();
                assert_eq!(together.dims(), &[batch, pooling.dim(cfg.embed_dim)]);
                for i in [0, 1, batch - 1] {
                    let alone = vit.embedding(&x.narrow(0, i, 1).unwrap()).unwrap();
                    let diff = max_abs_diff(&alone, &together.narrow(0, i, 1).unwrap());
                    assert_eq!(
                        diff, 0.0,
                        "width {}, {pooling:?}: image {i} alone differs from its row in a batch of {batch} by {diff}",
                        cfg.embed_dim
                    );
                }
            }
        }
    }

    #[test]
    fn the_deepest_intermediate_layer_is_the_final_tokens() {
        let (vit, _) = perturbed_model();
        let x = normal_tensor(&[2, 3, 32, 32], 6, 1.0);
        let depth = vit.cfg.depth;
        let layers = vit.intermediate_layers(&x, depth).unwrap();
        assert_eq!(layers.len(), depth);
        let last = layers.last().unwrap();
        assert_eq!(max_abs_diff(last, &vit.infer_tokens(&x).unwrap()), 0.0);
        // Shallower blocks give other tokens, and asking for fewer gives the deepest ones.
        assert!(max_abs_diff(&layers[0], last) > 1e-3);
        let two = vit.intermediate_layers(&x, 2).unwrap();
        assert_eq!(max_abs_diff(&two[0], &layers[depth - 2]), 0.0);
        assert!(vit.intermediate_layers(&x, 0).is_err());
        assert!(vit.intermediate_layers(&x, depth + 1).is_err());
    }

    #[test]
    fn the_patch_block_picks_the_dense_features_of_that_intermediate_layer() {
        let (vit, _) = perturbed_model();
        let x = normal_tensor(&[2, 3, 32, 32], 7, 1.0);
        let depth = vit.cfg.depth;
        assert_eq!(vit.patch_block(), depth);
        let layers = vit.intermediate_layers(&x, depth).unwrap();
        let patches = |t: &Tensor| {
            let n = t.dim(1).unwrap();
            t.narrow(1, 1, n - 1).unwrap()
        };
        for k in 1..=depth {
            let read = perturbed_model().0.with_patch_block(Some(k)).unwrap();
            assert_eq!(read.patch_block(), k);
            let features = read.patch_features(&x).unwrap();
            assert_eq!(
                max_abs_diff(&features, &patches(&layers[k - 1])),
                0.0,
                "block {k}"
            );
            // `embed` gives the same dense features, and the embedding is the last block's.
            let (embedding, dense) = read.embed(&x).unwrap();
            assert_eq!(max_abs_diff(&dense, &features), 0.0);
            // (`embedding` computes the last block's CLS row alone: the same up to rounding.)
            assert!(max_abs_diff(&embedding, &vit.embedding(&x).unwrap()) < 1e-5);
        }
        assert!(max_abs_diff(&patches(&layers[0]), &patches(&layers[depth - 1])) > 1e-3);
        for bad in [0, depth + 1] {
            match perturbed_model().0.with_patch_block(Some(bad)) {
                Ok(_) => panic!("block {bad} of {depth} was accepted"),
                Err(err) => assert!(
                    err.to_string().contains(&format!("patch block {bad}")),
                    "{err}"
                ),
            }
        }
    }

    #[test]
    fn inference_tokens_equal_training_tokens_without_drop_path() {
        let (vit, _) = perturbed_model();
        let x = normal_tensor(&[2, 3, 32, 32], 5, 1.0);
        let a = vit.forward_tokens(&x, None).unwrap();
        let b = vit.infer_tokens(&x).unwrap();
        assert_eq!(max_abs_diff(&a, &b), 0.0);
    }
}
