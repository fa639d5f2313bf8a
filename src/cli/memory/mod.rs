//! `procmem memory build | info | query | prune | value | map | audit | delete`: visual memories
//! on disk, one `clap::Args` struct with `run` per command.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use procmem::embed::FeatureSource;
use procmem::memory::embedding::embed_pipelined;
use procmem::memory::{Memory, import};

use super::progress_bar;

mod audit;
mod build;
mod delete;
mod info;
mod map;
mod prune;
mod query;
mod value;
pub use audit::AuditArgs;
pub use build::BuildArgs;
pub use delete::DeleteArgs;
pub use info::InfoArgs;
pub use map::MapArgs;
pub use prune::PruneArgs;
pub use query::QueryArgs;
pub use value::ValueArgs;

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Embed labelled images into a new memory file.
    Build(BuildArgs),
    /// Entries per class, model fingerprint, size.
    Info(InfoArgs),
    /// Neighbours and vote for query images; optionally export them as visual-memory JSON.
    Query(QueryArgs),
    /// Find entries that hurt more than they help on labelled queries (Geirhos et al. 2024's
    /// pruning): a dry run by default that lists them with the evidence and the accuracy before
    /// and after on the half of the queries that did not choose; --apply deletes them (their
    /// bytes leave the file, as with `delete`).
    Prune(PruneArgs),
    /// Exact KNN-Shapley data values (Jia et al. 2019) of every entry over labelled queries:
    /// the lowest first (negative: the entry lowers the accuracy it takes part in — often a
    /// wrong label). Changes nothing.
    Value(ValueArgs),
    /// The memory map: every entry on the memory's first two principal axes, as the app's Map
    /// panel draws it. Writes id, label, source and (x, y) as CSV (or JSON for a .json path),
    /// and optionally a PNG picture coloured by label.
    Map(MapArgs),
    /// An unlearning certificate for a deletion: ORIGINAL is the memory before, EDITED after.
    /// Checks (a) equivalence with a memory rebuilt without the deleted entries, (b) that no
    /// file procmem wrote still holds their bytes, (c) that they look never-added to the edited
    /// memory (with --never-added). Writes the certificate as JSON; exits non-zero on failure.
    Audit(AuditArgs),
    /// Delete entries by id; their bytes leave the file and their content goes on the
    /// memory's deny-list. Near-duplicates left behind (same image bytes, or cosine ≥ --near)
    /// are listed, and deleted too with --with-near-duplicates.
    Delete(DeleteArgs),
}

impl MemoryCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            MemoryCommand::Build(args) => args.run(),
            MemoryCommand::Query(args) => args.run(),
            MemoryCommand::Info(args) => args.run(),
            MemoryCommand::Prune(args) => args.run(),
            MemoryCommand::Value(args) => args.run(),
            MemoryCommand::Map(args) => args.run(),
            MemoryCommand::Audit(args) => args.run(),
            MemoryCommand::Delete(args) => args.run(),
        }
    }
}

/// A memory and labelled queries of the same model: the memory, the class names (the memory's,
/// then classes only queries have), the exact index, the queries (`nq × dim`) and their classes.
#[allow(clippy::type_complexity)]
fn memory_and_queries(
    path: &std::path::Path,
    queries: &std::path::Path,
) -> anyhow::Result<(
    procmem::memory::Memory,
    Vec<String>,
    procmem::memory::ExactIndex,
    Vec<f32>,
    Vec<u32>,
)> {
    use procmem::memory::{ExactIndex, Memory};
    let memory = Memory::open(path)?;
    let q = Memory::open(queries)?;
    if q.model_fingerprint() != memory.model_fingerprint() {
        bail!(
            "{} was embedded by model {}, the memory {} by model {}: embed the queries with the memory's model",
            queries.display(),
            q.model_fingerprint(),
            path.display(),
            memory.model_fingerprint()
        );
    }
    // Query classes outside the memory's labels count as a class no entry has.
    let mut labels = memory.labels();
    let truths: Vec<u32> = q
        .entries()
        .iter()
        .map(|e| super::eval::class_index(&mut labels, &e.label))
        .collect();
    let index = ExactIndex::build(&memory, &labels);
    let flat: Vec<f32> = q
        .entries()
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    Ok((memory, labels, index, flat, truths))
}
