//! `procmem bench generate | memory | train`: the benchmark commands (docs/benchmarks.md).

use std::path::PathBuf;

use clap::Subcommand;
use procmem::generate::Process;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Images per second for every process at each size.
    Generate {
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
    },
    /// Memory search, unlearning and privacy speed on clustered vectors (the same files
    /// tools/bench_memory_faiss.py gives faiss), and optionally a very large memory.
    Memory {
        /// Folder with base.npy and queries.npy (written on first use).
        #[arg(long, default_value = "target/bench-memory")]
        data: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        #[arg(long, default_value_t = 1_000)]
        queries: usize,
        #[arg(long, default_value_t = 384)]
        dim: usize,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long, default_value_t = 100)]
        ef_construction: usize,
        #[arg(long, default_value_t = 100)]
        ef_search: usize,
        /// Also build a memory of this many random entries (e.g. 1000000): add, search, delete, save, reopen.
        #[arg(long)]
        large: Option<usize>,
        /// Skip the search/unlearning/privacy part (only --large).
        #[arg(long)]
        only_large: bool,
        /// Skip the HNSW measurement (its deterministic one-thread build takes minutes).
        #[arg(long)]
        no_hnsw: bool,
        /// Real embeddings instead of clustered vectors: Fashion-MNIST embedded by this feature
        /// source (a model file, `pixels`, …; from the embedding cache when there), the 60k
        /// training images as the memory and the first --queries test images as queries. Written
        /// to --data as base.npy / queries.npy so faiss gets the same vectors (use another --data
        /// folder than the clustered one; --entries and --dim are ignored).
        #[arg(long)]
        embeddings: Option<String>,
    },
    /// Seconds per DINO training step and embedding images/s, on synthetic batches (no data
    /// loading), for a training config. Counterpart: tools/bench_train_torch.py.
    Train {
        /// A TOML training config; default: the built-in CPU config (cpu-tiny, batch 64).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Timed steps after one warm-up step.
        #[arg(long, default_value_t = 5)]
        steps: u64,
        /// Batch size of the embedding measurement.
        #[arg(long, default_value_t = 256)]
        embed_batch: usize,
    },
}

impl BenchCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            BenchCommand::Memory {
                data,
                entries,
                queries,
                dim,
                k,
                ef_construction,
                ef_search,
                large,
                only_large,
                no_hnsw,
                embeddings,
            } => {
                use procmem::memory::{HnswParams, bench};
                let mut log = |m: &str| eprintln!("{m}");
                let mut md = String::from("| measurement | time | result |\n|---|---|---|\n");
                if let Some(spec) = &embeddings {
                    write_real_embeddings(spec, &data, queries)?;
                }
                if !only_large {
                    let (base, q, d) = bench::bench_vectors(&data, entries, queries, dim)?;
                    let params = HnswParams {
                        ef_construction,
                        ef_search,
                        seed: 0,
                    };
                    md += &bench::run(&base, &q, d, k, (!no_hnsw).then_some(params), &mut log)?;
                }
                if let Some(n) = large {
                    std::fs::create_dir_all(&data)?;
                    md += &bench::large(n, dim, &data, &mut log)?;
                }
                println!("{md}");
                Ok(())
            }
            BenchCommand::Train {
                config,
                steps,
                embed_batch,
            } => super::train::bench_train(config, steps, embed_batch),
            BenchCommand::Generate {
                sizes,
                seconds,
                processes,
                kml_at_output_resolution,
            } => {
                super::generate::bench_generate(sizes, seconds, processes, kml_at_output_resolution)
            }
        }
    }
}

/// Writes Fashion-MNIST embedded by `spec` into `dir` as base.npy (60k training images) and
/// queries.npy (the first `queries` test images), replacing what is there.
fn write_real_embeddings(spec: &str, dir: &std::path::Path, queries: usize) -> anyhow::Result<()> {
    use super::eval::{Dataset, SetArgs, embed_split, load_split};
    use procmem::memory::bench::write_f32_npy;
    let source = super::sources_with_baselines(&[spec.to_string()], false)?.remove(0);
    let split = load_split(
        SetArgs {
            dataset: Dataset::FashionMnist,
            data: None,
        },
        None,
        None,
    )?;
    let (index, test) = embed_split(&source, &split)?;
    let d = index.dim;
    let base: Vec<f32> = index
        .rows()
        .flat_map(|(_, _, e)| e.iter().copied())
        .collect();
    std::fs::create_dir_all(dir)?;
    write_f32_npy(&dir.join("base.npy"), &base, d)?;
    write_f32_npy(
        &dir.join("queries.npy"),
        &test[..queries.min(test.len() / d) * d],
        d,
    )?;
    eprintln!(
        "real embeddings: {} memory entries, {} queries, dimension {d}",
        index.len(),
        queries.min(test.len() / d)
    );
    Ok(())
}
