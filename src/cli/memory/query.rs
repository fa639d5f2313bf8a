//! `procmem memory query`: neighbours and vote for query images.

use super::*;

/// `procmem memory query`.
#[derive(clap::Args)]
pub struct QueryArgs {
    /// The memory file to search (`procmem memory build`).
    memory: PathBuf,
    /// The model that built the memory (its fingerprint must match).
    #[arg(long)]
    features: String,
    /// Query images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Neighbours that vote on each query's label (and are listed).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Write the neighbour records (image_id, neighbor_image_ids, …) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Search with an HNSW graph instead of the exact index (large memories).
    #[arg(long)]
    hnsw: bool,
}

impl QueryArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let QueryArgs {
            memory,
            features,
            images,
            k,
            json,
            hnsw,
        } = self;
        use procmem::memory::{
            Answer, ExactIndex, NeighbourRecord, VoteRule, query::write_records,
        };
        if k == 0 {
            bail!("--k 0 asks for no neighbours: give k ≥ 1 (10 is the default)");
        }
        let m = Memory::open(&memory)?;
        if m.is_empty() {
            bail!(
                "{} is empty (no entries): there is nothing to search (build one with `procmem memory build`)",
                memory.display()
            );
        }
        if k > m.len() {
            eprintln!(
                "note: k = {k} but {} holds {} entries: all of them are listed",
                memory.display(),
                m.len()
            );
        }
        let source = FeatureSource::from_spec(&features)?;
        if source.fingerprint() != m.model_fingerprint() {
            bail!(
                "{} was embedded by model {}, but --features {features} is model {}: embeddings of different models never mix",
                memory.display(),
                m.model_fingerprint(),
                source.fingerprint()
            );
        }
        let labels = m.labels();
        let index = ExactIndex::build(&m, &labels);
        let graph = if hnsw {
            Some(procmem::memory::HnswIndex::build(
                &index,
                Default::default(),
            )?)
        } else {
            None
        };
        let mut records = Vec::new();
        // An unreadable query is reported and skipped, so the others are still answered and
        // written; the command fails at the end.
        let mut unreadable = 0;
        for path in &images {
            let img = match procmem::imageio::load_rgb(path) {
                Ok(img) => img,
                Err(e) => {
                    eprintln!("error: {e}");
                    unreadable += 1;
                    continue;
                }
            };
            let (q, _) = source.embed_rgb(std::slice::from_ref(&img), |_| {})?;
            let neighbours = match &graph {
                Some(g) => g.search(&q, k),
                None => index.search(&q, k),
            }
            .pop()
            .unwrap_or_default();
            let answer = Answer::new(neighbours, k, labels.len(), VoteRule::default());
            let predicted = answer
                .vote
                .prediction
                .map_or("-".to_string(), |c| labels[c as usize].clone());
            println!("{}: {predicted}", path.display());
            for n in &answer.neighbours {
                let e = m.get(n.id).context("neighbour in memory")?;
                println!(
                    "  #{:<6} {:<14} similarity {:.4}  {}",
                    n.id, labels[n.label as usize], n.similarity, e.source
                );
            }
            records.push(NeighbourRecord::new(
                &source.name(),
                &path.display().to_string(),
                None,
                &answer.neighbours,
                &labels,
            ));
        }
        if let Some(json) = json.filter(|_| !records.is_empty()) {
            write_records(&json, &records)?;
            eprintln!("neighbour records written to {}", json.display());
        }
        if unreadable > 0 {
            bail!(
                "{unreadable} of {} query images could not be read (named above); the others were answered",
                images.len()
            );
        }
        Ok(())
    }
}
