//! `procmem bench train`: seconds per DINO training step and embedding images/s (peer:
//! tools/bench_train_torch.py).

use std::path::PathBuf;

/// `procmem bench train`.
#[derive(clap::Args)]
pub struct BenchTrainArgs {
    /// A TOML training config; default: the built-in CPU config (cpu-tiny, batch 64).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Timed steps after one warm-up step.
    #[arg(long, default_value_t = 5)]
    steps: u64,
    /// Batch size of the embedding measurement.
    #[arg(long, default_value_t = 256)]
    embed_batch: usize,
}

impl BenchTrainArgs {
    pub fn run(self) -> anyhow::Result<()> {
        bench_train(self.config, self.steps, self.embed_batch)
    }
}

pub fn bench_train(config: Option<PathBuf>, steps: u64, embed_batch: usize) -> anyhow::Result<()> {
    use candle_core::{Device, Tensor};
    use procmem::train::augment::Crops;
    use procmem::train::data::PreparedBatch;
    use procmem::train::{TrainConfig, Trainer};
    let cfg: TrainConfig = match config {
        Some(path) => crate::cli::read_toml(&path)?,
        None => TrainConfig::default(),
    };
    let vit = cfg.vit_config()?;
    let dir = tempfile_dir()?;
    let mut trainer = Trainer::new(cfg.clone(), &dir)?;
    let b = cfg.batch_size;
    let (g, l) = (
        cfg.augment.global_size as usize,
        cfg.augment.local_size as usize,
    );
    let randn = |n: usize, s: usize| Tensor::randn(0f32, 1.0, (n, 3, s, s), &Device::Cpu);
    let batch = PreparedBatch {
        step: 0,
        global: vec![randn(b, g)?, randn(b, g)?],
        local: (0..cfg.augment.local_crops)
            .map(|_| randn(b, l))
            .collect::<candle_core::Result<Vec<_>>>()?,
        preview: Crops {
            global: vec![],
            local: vec![],
        },
        skipped: 0,
    };
    println!(
        "threads: {} (rayon), model {} (dim {}, depth {}, heads {}, patch {}), batch {b}, crops 2x{g}² + {}x{l}², out_dim {}",
        rayon::current_num_threads(),
        cfg.preset,
        vit.embed_dim,
        vit.depth,
        vit.num_heads,
        vit.patch_size,
        cfg.augment.local_crops,
        cfg.head.out_dim
    );
    trainer.train_step(&batch)?;
    let mut total = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..steps {
        let m = trainer.train_step(&batch)?;
        total.0 += m.seconds;
        total.1 += m.forward_seconds;
        total.2 += m.backward_seconds;
        total.3 += m.update_seconds;
    }
    let n = steps as f64;
    println!(
        "train step: {:.3} s (forward {:.3} s, backward {:.3} s, update {:.3} s) = {:.1} images/s",
        total.0 / n,
        total.1 / n,
        total.2 / n,
        total.3 / n,
        b as f64 * n / total.0
    );
    let (model, _) = procmem::model::weights::new_backbone(&vit, 0)?;
    let x = randn(embed_batch, vit.img_size)?;
    let images_per_second = |f: &dyn Fn() -> candle_core::Result<()>| -> anyhow::Result<f64> {
        f()?;
        let start = std::time::Instant::now();
        let reps = 3;
        for _ in 0..reps {
            f()?;
        }
        Ok(embed_batch as f64 * reps as f64 / start.elapsed().as_secs_f64())
    };
    // The CLS embedding is what memories store; the patch tokens are for dense tasks only.
    let cls = images_per_second(&|| model.embedding(&x).map(drop))?;
    let all = images_per_second(&|| model.embed(&x).map(drop))?;
    println!(
        "embedding: {cls:.1} images/s at {}² (batch {embed_batch}, forward only, CLS embedding)",
        vit.img_size
    );
    println!("embedding with patch tokens: {all:.1} images/s (every token through the last block)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("procmem-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
