//! `procmem train`: DINO on procedural images, headless.

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

impl TrainArgs {
    pub fn run(self) -> anyhow::Result<()> {
        train(self)
    }
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
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
