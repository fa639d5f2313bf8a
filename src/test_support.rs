//! Helpers shared by the unit tests (compiled only for `cargo test`): seeded random inputs and
//! the largest absolute difference between two tensors, so every numeric test draws and compares
//! the same way.

use candle_core::{Device, Tensor};

use crate::rng::Rng;

/// `n` draws of N(0, 1) from [`Rng`] seeded with `seed`.
pub fn normal_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// A CPU f32 tensor of `shape` holding N(0, std²) draws seeded with `seed`.
pub fn normal_tensor(shape: &[usize], seed: u64, std: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).expect("shape matches the values")
}

/// max |a − b| over all elements (tensors of one shape, f32).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of one shape, f32")
}
