//! `procmem generate` (and `bench generate`'s generation loop): procedural images on disk.

use std::path::PathBuf;

use anyhow::bail;
use procmem::generate::{Generator, GeneratorConfig, Process, manifest};

use super::progress_bar;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Data process.
    #[arg(long, value_enum)]
    process: Option<Process>,
    /// Number of images.
    #[arg(long, default_value_t = 64)]
    count: u64,
    /// Image side in pixels [default: 64].
    #[arg(long)]
    size: Option<u32>,
    /// Seed: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// A TOML generator config (see docs/generators.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// K-means Leaves: clusters [default: 2].
    #[arg(long)]
    kml_k: Option<usize>,
    /// K-means Leaves: Lloyd iterations [default: 3].
    #[arg(long)]
    kml_iterations: Option<usize>,
    /// K-means Leaves: box-blur size [default: 3].
    #[arg(long)]
    kml_blur: Option<usize>,
    /// K-means Leaves: clustering resolution [default: 256].
    #[arg(long)]
    kml_resolution: Option<u32>,
    /// Synthesized programs in the pool [default: 16].
    #[arg(long)]
    synthesized: Option<usize>,
}

impl GenerateArgs {
    pub fn run(self) -> anyhow::Result<()> {
        generate(self)
    }
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let mut config: GeneratorConfig = match &args.config {
        Some(path) => super::read_toml(path)?,
        None => GeneratorConfig::default(),
    };
    if let Some(p) = args.process {
        config.process = p;
    }
    if let Some(s) = args.size {
        config.size = s;
    }
    if let Some(v) = args.kml_k {
        config.kml.k = v;
    }
    if let Some(v) = args.kml_iterations {
        config.kml.iterations = v;
    }
    if let Some(v) = args.kml_blur {
        config.kml.blur = v;
    }
    if let Some(v) = args.kml_resolution {
        config.kml.resolution = v;
    }
    if let Some(v) = args.synthesized {
        config.synthesized = v;
    }
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let mut generator = Generator::open_default(config)?;
    eprintln!("rendering on {}", generator.renderer().adapter());
    let bar = progress_bar(args.count, generator.config().process.cli_name());
    let m = manifest::write_set(
        &mut generator,
        args.seed,
        args.count,
        &args.out,
        |done, _| {
            bar.set_position(done);
            true
        },
    )?;
    bar.finish();
    eprintln!(
        "wrote {} images and {}",
        m.count,
        args.out.join(manifest::MANIFEST_FILE).display()
    );
    Ok(())
}
