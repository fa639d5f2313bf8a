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
            BenchCommand::Memory { data, entries, queries, dim, k, ef_construction, ef_search, large, only_large, no_hnsw } => {
                use procmem::memory::{HnswParams, bench};
                let mut log = |m: &str| eprintln!("{m}");
                let mut md = String::from("| measurement | time | result |\n|---|---|---|\n");
                if !only_large {
                    let (base, q, d) = bench::bench_vectors(&data, entries, queries, dim)?;
                    let params = HnswParams { ef_construction, ef_search, seed: 0 };
                    md += &bench::run(&base, &q, d, k, (!no_hnsw).then_some(params), &mut log)?;
                }
                if let Some(n) = large {
                    std::fs::create_dir_all(&data)?;
                    md += &bench::large(n, dim, &data, &mut log)?;
                }
                println!("{md}");
                Ok(())
            }
            BenchCommand::Train { config, steps, embed_batch } => super::train::bench_train(config, steps, embed_batch),
            BenchCommand::Generate { sizes, seconds, processes, kml_at_output_resolution } => {
                super::generate::bench_generate(sizes, seconds, processes, kml_at_output_resolution)
            }
        }
    }
}
