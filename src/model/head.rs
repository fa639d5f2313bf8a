//! DINO's projection head (`DINOHead` in facebookresearch/dino): a 3-layer MLP with GELU to a
//! bottleneck, L2 normalisation, then a weight-normalised linear layer without bias whose norm
//! (`weight_g`) is fixed at 1 when `norm_last_layer` is true (the default, and the paper's).

use candle_core::{D, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use super::layers::{gelu, l2_normalise, linear};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HeadConfig {
    /// Prototypes (the softmax size). DINO: 65536. CPU default 4096: far fewer images are seen,
    /// and the last layer's cost grows with it.
    pub out_dim: usize,
    /// Hidden width of the MLP. DINO: 2048. CPU default 512.
    pub hidden_dim: usize,
    /// Bottleneck before the last layer. DINO: 256.
    pub bottleneck_dim: usize,
    /// Keep the last layer's weight norm fixed at 1. DINO: true.
    pub norm_last_layer: bool,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            out_dim: 4096,
            hidden_dim: 512,
            bottleneck_dim: 256,
            norm_last_layer: true,
        }
    }
}

pub struct DinoHead {
    pub cfg: HeadConfig,
    layers: Vec<(Tensor, Tensor)>,
    weight_v: Tensor,
    weight_g: Tensor,
}

impl DinoHead {
    pub fn new(in_dim: usize, cfg: &HeadConfig, vb: VarBuilder) -> Result<Self> {
        let dims = [
            (in_dim, cfg.hidden_dim),
            (cfg.hidden_dim, cfg.hidden_dim),
            (cfg.hidden_dim, cfg.bottleneck_dim),
        ];
        let layers = dims
            .iter()
            .enumerate()
            .map(|(i, (a, b))| {
                let vb = vb.pp(format!("mlp.{}", 2 * i));
                Ok((
                    vb.get_with_hints((*b, *a), "weight", Init::Const(0.0))?,
                    vb.get_with_hints(*b, "bias", Init::Const(0.0))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            layers,
            weight_v: vb.get_with_hints(
                (cfg.out_dim, cfg.bottleneck_dim),
                "last_layer.weight_v",
                Init::Const(0.0),
            )?,
            weight_g: vb.get_with_hints(
                (cfg.out_dim, 1),
                "last_layer.weight_g",
                Init::Const(1.0),
            )?,
        })
    }

    /// Logits over the prototypes: [B, out_dim].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = linear(&h, w, Some(b))?;
            if i + 1 < self.layers.len() {
                h = gelu(&h)?;
            }
        }
        let h = l2_normalise(&h)?;
        // weight_norm(dim=0): each prototype row is v / ‖v‖ · g.
        let v_norm = self.weight_v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
        let mut w = self.weight_v.broadcast_div(&v_norm)?;
        if !self.cfg.norm_last_layer {
            w = w.broadcast_mul(&self.weight_g)?;
        }
        h.matmul(&w.t()?)
    }
}
