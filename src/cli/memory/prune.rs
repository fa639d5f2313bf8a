//! `procmem memory prune`: entries that hurt more than they help on labelled queries.

use super::*;

/// `procmem memory prune`.
#[derive(clap::Args)]
pub struct PruneArgs {
    memory: PathBuf,
    /// Labelled queries embedded by the same model: a memory file (e.g. built with
    /// `memory build` from a held-out folder). Every second one chooses, the others judge.
    #[arg(long)]
    queries: PathBuf,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// An entry is harmful when it hurt at least this many queries, and more than it helped.
    #[arg(long, default_value_t = procmem::memory::prune::DEFAULT_MIN_HURT)]
    min_hurt: usize,
    /// Delete the harmful entries and save (to --out, or in place).
    #[arg(long)]
    apply: bool,
    /// Where --apply writes [default: the memory file itself].
    #[arg(long, requires = "apply")]
    out: Option<PathBuf>,
    /// Write the evidence (id, label, helped, hurt, harmful) as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

impl PruneArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let PruneArgs {
            memory: path,
            queries,
            k,
            min_hurt,
            apply,
            out,
            csv,
        } = self;
        let (mut memory, labels, index, flat, truths) = memory_and_queries(&path, &queries)?;
        let plan = procmem::memory::prune::plan(
            &index,
            &flat,
            &truths,
            k,
            min_hurt,
            procmem::memory::VoteRule::default(),
        );
        println!(
            "{} of {} entries are harmful (hurt >= {min_hurt} and more than they helped, k = {k}, {} choosing queries)",
            plan.harmful.len(),
            memory.len(),
            plan.choosing
        );
        println!("| id | label | source | helped | hurt |\n|---:|---|---|---:|---:|");
        for e in plan
            .evidence
            .iter()
            .filter(|e| e.is_harmful(min_hurt))
            .take(50)
        {
            let entry = memory
                .get(e.id)
                .context("an indexed entry is in the memory")?;
            println!(
                "| {} | {} | {} | {} | {} |",
                e.id, labels[e.label as usize], entry.source, e.helped, e.hurt
            );
        }
        if plan.harmful.len() > 50 {
            println!(
                "… and {} more (all of them with --csv)",
                plan.harmful.len() - 50
            );
        }
        println!(
            "kNN accuracy on the {} judging queries (not used to choose): {:.2} % before, {:.2} % after pruning",
            plan.judging,
            100.0 * plan.accuracy_before,
            100.0 * plan.accuracy_after
        );
        if let Some(csv) = csv {
            let mut text = String::from("id,label,helped,hurt,harmful\n");
            for e in &plan.evidence {
                text += &format!(
                    "{},{},{},{},{}\n",
                    e.id,
                    labels[e.label as usize],
                    e.helped,
                    e.hurt,
                    e.is_harmful(min_hurt)
                );
            }
            procmem::fsio::write_atomic(&csv, text.as_bytes())?;
        }
        if apply {
            // The normal unlearning path: deny-listed, and cached embeddings of user data purged.
            memory.delete_many(&plan.harmful.iter().copied().collect());
            let target = out.unwrap_or_else(|| path.to_path_buf());
            memory.save(&target)?;
            procmem::memory::embedding::purge_user_sets_everywhere();
            eprintln!(
                "deleted {} entries; {} remain in {}",
                plan.harmful.len(),
                memory.len(),
                target.display()
            );
        } else if !plan.harmful.is_empty() {
            eprintln!("dry run: nothing was changed (add --apply to delete them)");
        }
        Ok(())
    }
}
