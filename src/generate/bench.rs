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

/// Measures the CPU half of K-means Leaves alone (k-means on `resolution`² s1, masks, blend to
/// `size`²) on pre-made smooth random inputs, on all rayon threads. This is the work the paper's
/// numpy code does per image (`tools/bench_kml_numpy.py` measures that peer).
pub fn measure_kml_compose(resolution: u32, size: u32, min_seconds: f64) -> BenchRow {
    use rayon::prelude::*;

    use super::imageops::{Plane, resize_bilinear};
    use super::kml::{KmlConfig, compose};
    use crate::rng::Rng;

    let smooth = |rng: &mut Rng, n: u32| {
        let coarse = (n / 8).max(2) as usize;
        let channels: Vec<Plane> = (0..3)
            .map(|_| {
                let p = Plane {
                    width: coarse,
                    height: coarse,
                    data: (0..coarse * coarse).map(|_| rng.uniform() as f32).collect(),
                };
                resize_bilinear(&p, n as usize, n as usize)
            })
            .collect();
        image::RgbImage::from_fn(n, n, |x, y| {
            let i = (y * n + x) as usize;
            image::Rgb([0, 1, 2].map(|c| (channels[c].data[i].clamp(0.0, 1.0) * 255.0) as u8))
        })
    };
    let mut rng = Rng::new(0);
    let inputs: Vec<(image::RgbImage, [image::RgbImage; 2])> = (0..16)
        .map(|_| {
            (
                smooth(&mut rng, resolution),
                [smooth(&mut rng, size), smooth(&mut rng, size)],
            )
        })
        .collect();
    let cfg = KmlConfig {
        resolution,
        ..Default::default()
    };
    let batch = 64;
    let start = Instant::now();
    let mut images = 0u64;
    while start.elapsed().as_secs_f64() < min_seconds {
        (0..batch).into_par_iter().for_each(|i| {
            let (s1, tex) = &inputs[i % inputs.len()];
            std::hint::black_box(compose(s1, tex, &cfg, size));
        });
        images += batch as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    BenchRow {
        process: Process::ShadersKml,
        size,
        kml_resolution: Some(resolution),
        images,
        seconds,
        images_per_second: images as f64 / seconds,
    }
}
