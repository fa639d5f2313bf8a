//! `procmem memory delete`: delete entries by id, with their near-duplicates on request.

use super::*;

/// `procmem memory delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    memory: PathBuf,
    #[arg(long = "id", required = true)]
    ids: Vec<u64>,
    /// Also delete the near-duplicates of the deleted entries.
    #[arg(long)]
    with_near_duplicates: bool,
    /// Cosine similarity from which another entry counts as a near-duplicate.
    #[arg(long, default_value_t = procmem::memory::NEAR_DUPLICATE_COSINE)]
    near: f32,
}

impl DeleteArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let DeleteArgs {
            memory,
            ids,
            with_near_duplicates,
            near,
        } = self;
        use procmem::memory::{ExactIndex, near_duplicates};
        let mut m = Memory::open(&memory)?;
        for id in &ids {
            if m.get(*id).is_none() {
                bail!(
                    "no entry {id} in {} (nothing was changed)",
                    memory.display()
                );
            }
        }
        // Deleted in one pass; near-duplicates are then looked up among the entries that stay.
        let targets = m.delete_many(&ids.iter().copied().collect());
        let index = ExactIndex::build(&m, &m.labels());
        let mut extra: Vec<u64> = Vec::new();
        for t in &targets {
            for d in near_duplicates(&m, &index, &t.embedding, t.content_hash, t.id, near) {
                let how = if d.same_content {
                    "the same image bytes".to_string()
                } else {
                    format!("cosine {:.4}", d.similarity)
                };
                eprintln!("  #{} is a near-duplicate of #{} ({how})", d.id, t.id);
                if !extra.contains(&d.id) {
                    extra.push(d.id);
                }
            }
        }
        let mut all = ids.clone();
        if with_near_duplicates {
            m.delete_many(&extra.iter().copied().collect());
            all.extend(extra.iter().copied().filter(|id| !ids.contains(id)));
        }
        m.save(&memory)?;
        // Cached embeddings of user data (re-embedded memories, labelled sets given to
        // evaluations) may hold the deleted entries: they go, as when the app deletes.
        let purged = procmem::memory::embedding::purge_user_sets_everywhere();
        if purged > 0 {
            eprintln!(
                "purged {purged} cached embedding file(s) of user data (memories re-embedded, labelled sets)"
            );
        }
        eprintln!(
            "deleted {} entr{}; {} remain; {} content hash(es) on the memory's deny-list",
            all.len(),
            if all.len() == 1 { "y" } else { "ies" },
            m.len(),
            m.denied_count()
        );
        if !with_near_duplicates && !extra.is_empty() {
            eprintln!(
                "{} near-duplicate(s) remain; --with-near-duplicates deletes them too",
                extra.len()
            );
        }
        Ok(())
    }
}
