//! `procmem eval new-class`: adding a class to a memory, in miniature.

use super::*;

/// `procmem eval new-class`.
#[derive(clap::Args)]
pub struct NewClassArgs {
    /// The memory before (a memory file).
    #[arg(long)]
    memory: PathBuf,
    /// Labelled queries of the memory's classes (a memory file or an ImageFolder tree).
    #[arg(long)]
    queries: PathBuf,
    /// The new class's images to add (a memory file or an ImageFolder tree; any labels in it
    /// that the memory lacks are new classes).
    #[arg(long)]
    add: PathBuf,
    /// Held-out queries of the new class(es), not among --add.
    #[arg(long)]
    new_queries: PathBuf,
    #[command(flatten)]
    sources: Sources,
    #[arg(long, default_value_t = 10)]
    k: usize,
}

/// Accuracy of `truths` under kNN voting in `index`, and each query's prediction.
fn knn_predictions(
    index: &ExactIndex,
    queries: &[f32],
    truths: &[u32],
    k: usize,
) -> (f64, Vec<Option<u32>>) {
    let predictions: Vec<Option<u32>> = index
        .search(queries, k)
        .iter()
        .map(|n| {
            procmem::memory::vote::vote(n, k, index.labels.len(), VoteRule::default()).prediction
        })
        .collect();
    let right = predictions
        .iter()
        .zip(truths)
        .filter(|(p, t)| **p == Some(**t))
        .count();
    (right as f64 / truths.len().max(1) as f64, predictions)
}

impl NewClassArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let memory = procmem::memory::Memory::open(&self.memory)?;
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        own_model_given(&sources, &memory, &self.memory)?;
        let memory = Labelled::Memory(memory);
        let (queries, add, new_queries) = (
            Labelled::load(&self.queries, None)?,
            Labelled::load(&self.add, None)?,
            Labelled::load(&self.new_queries, None)?,
        );
        let k = self.k.max(1);
        let mut markdown = format!(
            "## Adding a class: memory {} ({} entries) + {} ({} images), k = {k}\n\n\
             Old-class queries: {} ({}); new-class queries: {} ({}).\n\nCommand: `procmem {}`\n\n\
             | features | old classes before | old classes after | change | new class(es) | old queries now voted a new class |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.memory.display(),
            memory.len(),
            self.add.display(),
            add.len(),
            self.queries.display(),
            queries.len(),
            self.new_queries.display(),
            new_queries.len(),
            command_line()
        );
        for source in &sources {
            let mut classes = Vec::new();
            let (data, dim, labels, _) = memory.embed(source, &mut classes)?;
            let old_classes = classes.len() as u32;
            let (q, d, truths, _) = queries.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                self.queries.display()
            );
            if let Some(&t) = truths.iter().find(|&&t| t >= old_classes) {
                anyhow::bail!(
                    "{} holds queries of class {:?}, which the memory lacks: give them as --new-queries",
                    self.queries.display(),
                    classes[t as usize]
                );
            }
            let (a, d, add_labels, _) = add.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                self.add.display()
            );
            anyhow::ensure!(
                add_labels.iter().any(|&c| c >= old_classes),
                "{} adds no class the memory lacks (its labels are all among the memory's)",
                self.add.display()
            );
            let (t, d, new_truths, _) = new_queries.embed(source, &mut classes)?;
            anyhow::ensure!(
                d == dim,
                "{}: dimension {d}, the memory {dim}",
                self.new_queries.display()
            );
            let before =
                ExactIndex::from_embeddings(dim, classes.clone(), labels.clone(), data.clone());
            let (acc_before, _) = knn_predictions(&before, &q, &truths, k);
            let mut grown_data = data;
            grown_data.extend_from_slice(&a);
            let mut grown_labels = labels;
            grown_labels.extend_from_slice(&add_labels);
            let after = ExactIndex::from_embeddings(dim, classes.clone(), grown_labels, grown_data);
            let (acc_after, predictions) = knn_predictions(&after, &q, &truths, k);
            let (acc_new, _) = knn_predictions(&after, &t, &new_truths, k);
            let taken = predictions
                .iter()
                .filter(|p| p.is_some_and(|c| c >= old_classes))
                .count();
            eprintln!(
                "{}: old classes {:.2} % -> {:.2} %, new class {:.2} %",
                short_label(source),
                acc_before * 100.0,
                acc_after * 100.0,
                acc_new * 100.0
            );
            markdown += &format!(
                "| {} | {:.2} % | {:.2} % | {:+.2} points | {:.2} % | {} of {} |\n",
                short_label(source),
                acc_before * 100.0,
                acc_after * 100.0,
                (acc_after - acc_before) * 100.0,
                acc_new * 100.0,
                taken,
                truths.len()
            );
        }
        write_report(self.sources.report, &markdown)
    }
}
