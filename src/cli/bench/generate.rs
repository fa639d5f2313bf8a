//! `procmem bench generate`: images per second for every process at each size.

use procmem::generate::{Generator, GeneratorConfig, Process, bench};

/// `procmem bench generate`.
#[derive(clap::Args)]
pub struct BenchGenerateArgs {
    /// Image sizes.
    #[arg(long, value_delimiter = ',', default_value = "64,128,224")]
    sizes: Vec<u32>,
    /// Seconds measured per cell (after a warm-up batch).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Processes (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    processes: Vec<Process>,
    /// Also measure KML processes with the clustering resolution equal to the image size.
    #[arg(long)]
    kml_at_output_resolution: bool,
}

impl BenchGenerateArgs {
    pub fn run(self) -> anyhow::Result<()> {
        bench_generate(
            self.sizes,
            self.seconds,
            self.processes,
            self.kml_at_output_resolution,
        )
    }
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
