//! `procmem bench memory`: memory search, unlearning and privacy speed (peer:
//! tools/bench_memory_faiss.py on the same files).

use std::path::PathBuf;

/// `procmem bench memory`.
#[derive(clap::Args)]
pub struct BenchMemoryArgs {
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
}

impl BenchMemoryArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let BenchMemoryArgs {
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
        } = self;
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
}

/// Writes Fashion-MNIST embedded by `spec` into `dir` as base.npy (60k training images) and
/// queries.npy (the first `queries` test images), replacing what is there.
fn write_real_embeddings(spec: &str, dir: &std::path::Path, queries: usize) -> anyhow::Result<()> {
    use crate::cli::eval::{Dataset, SetArgs, embed_split, load_split};
    use procmem::memory::bench::write_f32_npy;
    let source = crate::cli::sources_with_baselines(&[spec.to_string()], false)?.remove(0);
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
