//! `procmem train` and `bench train`: DINO on procedural images, headless.

use std::path::PathBuf;

use procmem::generate::{GeneratorConfig, Process};

use super::progress_bar;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// A TOML training config (see docs/training.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder for checkpoints and metrics.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Resume from this checkpoint (its config is used; --steps may extend its run, never shorten
    /// it: `Trainer::resume_to`, the policy the Training panel shares).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Architecture preset (cpu-tiny, cpu-small, micro, vit-tiny, vit-small, vit-base).
    #[arg(long)]
    preset: Option<String>,
    /// Data process for the procedural stream.
    #[arg(long, value_enum)]
    process: Option<Process>,
    /// Train on real images under this folder instead (a baseline; not procedural).
    #[arg(long)]
    folder: Option<PathBuf>,
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    use procmem::train::{DataSource, TrainConfig, TrainEvent, Trainer};
    let mut trainer = match &args.resume {
        Some(ckpt) => {
            let t = Trainer::resume_to(ckpt, &args.out, args.steps)?;
            eprintln!("resuming at step {} of {}", t.step, t.cfg.steps);
            t
        }
        None => {
            let mut cfg: TrainConfig = match &args.config {
                Some(path) => super::read_toml(path)?,
                None => TrainConfig::default(),
            };
            if let Some(p) = &args.preset {
                cfg.preset = p.clone();
                cfg.vit = None;
            }
            if let Some(p) = args.process {
                let mut generator = match &cfg.data {
                    DataSource::Procedural { generator } => generator.clone(),
                    DataSource::Folder { .. } => GeneratorConfig::default(),
                };
                generator.process = p;
                cfg.data = DataSource::Procedural { generator };
            }
            if let Some(folder) = &args.folder {
                cfg.data = DataSource::Folder {
                    path: folder.clone(),
                };
            }
            if let Some(v) = args.steps {
                cfg.steps = v;
            }
            if let Some(v) = args.batch_size {
                cfg.batch_size = v;
            }
            if let Some(v) = args.seed {
                cfg.seed = v;
            }
            Trainer::new(cfg, &args.out)?
        }
    };
    std::fs::create_dir_all(&args.out)?;
    procmem::fsio::write_atomic(
        &args.out.join("config.toml"),
        toml::to_string(&trainer.cfg)?.as_bytes(),
    )?;
    let bar = progress_bar(trainer.cfg.steps, "train");
    bar.set_position(trainer.step);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    trainer.run(&cancel, |event| match event {
        TrainEvent::Step(m) => {
            bar.set_position(m.step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} H(teacher) {:.2} {:.1} img/s",
                m.loss, m.lr, m.teacher_entropy, m.images_per_second
            ));
        }
        TrainEvent::Checkpoint(p) => bar.println(format!("checkpoint {}", p.display())),
        TrainEvent::Crops(_) => {}
    })?;
    bar.finish();
    Ok(())
}

pub fn bench_train(config: Option<PathBuf>, steps: u64, embed_batch: usize) -> anyhow::Result<()> {
    use candle_core::{Device, Tensor};
    use procmem::train::augment::Crops;
    use procmem::train::data::PreparedBatch;
    use procmem::train::{TrainConfig, Trainer};
    let cfg: TrainConfig = match config {
        Some(path) => super::read_toml(&path)?,
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
