//! Deterministic parameter initialisation (DINO's): truncated normal(0, 0.02) for linear weights,
//! position embedding and class token, zeros for biases, ones for norm weights.
//! Drawn with procmem's own RNG so a seed gives the same model on every machine.

use candle_core::{Device, Result, Tensor};

use crate::rng::Rng;

/// Normal(0, std) truncated to ±2 std by resampling (timm's `trunc_normal_` with a=-2σ, b=2σ).
pub(crate) fn trunc_normal(shape: &[usize], std: f64, rng: &mut Rng) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            loop {
                let v = rng.normal();
                if v.abs() <= 2.0 {
                    break (v * std) as f32;
                }
            }
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}
