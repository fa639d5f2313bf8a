//! `procmem generate`, `regenerate`, `programs` and `bench generate`: procedural images on disk.

use std::path::{Path, PathBuf};

use anyhow::bail;
use procmem::generate::{
    Generator, GeneratorConfig, Process, bench, manifest, programs::ProgramLibrary,
};

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

pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
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

/// `procmem regenerate`: a set exactly from its manifest.json.
pub fn regenerate(path: &Path, out: &Path) -> anyhow::Result<()> {
    let bar = progress_bar(0, "regenerate");
    let (m, written) = manifest::regenerate(path, out, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        true
    })?;
    bar.finish();
    eprintln!(
        "regenerated {} images; manifest at {}",
        m.count,
        written.display()
    );
    Ok(())
}

pub fn programs(compile: bool) -> anyhow::Result<()> {
    let library = ProgramLibrary::load(ProgramLibrary::default_user_dir().as_deref());
    let mut renderer = if compile {
        Some(procmem::generate::gpu::GpuRenderer::new()?)
    } else {
        None
    };
    let mut failures = library.rejected.len();
    for p in &library.programs {
        let status = match renderer.as_mut().map(|r| r.pipeline(p)) {
            Some(Err(e)) => {
                failures += 1;
                format!("FAILED: {e}")
            }
            _ => "ok".to_string(),
        };
        let params: Vec<&str> = p.params.iter().map(|q| q.name.as_str()).collect();
        println!(
            "{:<28} {:<10} {:<34} [{}] {}",
            p.id,
            p.family,
            p.name,
            params.join(", "),
            status
        );
    }
    for r in &library.rejected {
        println!("{:<28} SKIPPED\n{}", r.id, r.message);
    }
    println!("{} programs, {} skipped", library.programs.len(), failures);
    Ok(())
}

pub fn bench_generate(
    sizes: Vec<u32>,
    seconds: f64,
    processes: Vec<Process>,
    kml_at_output: bool,
) -> anyhow::Result<()> {
    let processes = if processes.is_empty() {
        Process::ALL.to_vec()
    } else {
        processes
    };
    let mut generator = Generator::open_default(GeneratorConfig::default())?;
    println!("adapter: {}", generator.renderer().adapter());
    println!("threads: {}", rayon::current_num_threads());
    println!("| process | size | KML clustering res. | images | seconds | images/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for &process in &processes {
        for &size in &sizes {
            let mut variants = vec![GeneratorConfig {
                process,
                size,
                ..Default::default()
            }];
            if kml_at_output && matches!(process, Process::ShadersKml | Process::KmlMixup) {
                let mut c = variants[0].clone();
                c.kml.resolution = size;
                variants.push(c);
            }
            for config in variants {
                let row = bench::measure(&mut generator, config, seconds)?;
                println!(
                    "| {} | {} | {} | {} | {:.1} | {:.0} |",
                    row.process.label(),
                    row.size,
                    row.kml_resolution
                        .map_or("–".to_string(), |r| r.to_string()),
                    row.images,
                    row.seconds,
                    row.images_per_second
                );
            }
        }
    }
    for &size in &sizes {
        let row = bench::measure_kml_compose(256, size, seconds);
        println!(
            "| KML compose only (CPU, pre-rendered inputs) | {} | 256 | {} | {:.1} | {:.0} |",
            row.size, row.images, row.seconds, row.images_per_second
        );
    }
    Ok(())
}
