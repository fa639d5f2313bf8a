//! `procmem bench generate`: images per second for every process and size.

use std::time::Instant;

use super::{Generator, GeneratorConfig, Process};
use crate::error::Result;

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    pub process: Process,
    pub size: u32,
    pub kml_resolution: Option<u32>,
    pub images: u64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Measures throughput of `process` at `size`: one warm-up batch (compiles the pipelines), then
/// batches until `min_seconds` have passed. Returns images per second.
pub fn measure(
    generator: &mut Generator,
    config: GeneratorConfig,
    min_seconds: f64,
) -> Result<BenchRow> {
    let batch = super::manifest::batch_size(&config);
    let process = config.process;
    let size = config.size;
    let kml_resolution =
        matches!(process, Process::ShadersKml | Process::KmlMixup).then_some(config.kml.resolution);
    generator.set_config(config)?;
    // Warm-up: compile every program of the pool and the baselines.
    let pool_len = generator.pool().len() as u64;
    generator.generate(1, 0..batch.max(pool_len * 3), false)?;
    let start = Instant::now();
    let mut images = 0;
    let mut seed = 100;
    while start.elapsed().as_secs_f64() < min_seconds {
        images += generator.generate(seed, 0..batch, false)?.len() as u64;
        seed += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(BenchRow {
        process,
        size,
        kml_resolution,
        images,
        seconds,
        images_per_second: images as f64 / seconds,
    })
}
