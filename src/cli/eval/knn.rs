//! `procmem eval knn`: kNN classification, train = memory and test = queries, for each k.

use super::*;
use procmem::eval::knn;

/// The header of a kNN table: features, best top-1, its k, then top-1 for each k.
fn knn_table_header(ks: &[usize]) -> String {
    format!(
        "| features | best top-1 | k | {} |\n|---|---:|---:|{}\n",
        k_column_names(ks),
        "---:|".repeat(ks.len())
    )
}

/// One kNN table row (the best top-1, its k, then top-1 for each k).
fn knn_table_row(name: &str, r: &knn::KnnReport) -> String {
    format!(
        "| {name} | {:.2} % | {} | {} |\n",
        r.best_top1 * 100.0,
        r.best_k,
        r.top1
            .iter()
            .map(|a| format!("{:.2} %", a * 100.0))
            .collect::<Vec<_>>()
            .join(" | ")
    )
}

/// `procmem eval knn`.
#[derive(clap::Args)]
pub struct KnnArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sources: Sources,
    #[arg(long, value_delimiter = ',', default_value = "10,20,100,200")]
    pub k: Vec<usize>,
    /// Append each source's best top-1 to this JSON-lines file (the Models panel shows them).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Add per-class accuracy and the confusion matrix of each source.
    #[arg(long)]
    pub details: bool,
}

impl KnnArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        let mut markdown = format!(
            "## kNN classification, {} ({})\n\nCommand: `procmem {}`\n\n",
            data.describe(),
            VoteRule::default().describe(),
            command_line()
        );
        let mut summary = knn_table_header(&self.k);
        let mut details = String::new();
        for source in &sources {
            let e = data.embed(source)?;
            let r = knn::evaluate(
                &source.name(),
                &e.index,
                &e.queries,
                &e.truths,
                &self.k,
                VoteRule::default(),
            );
            eprintln!(
                "{}{}: best top-1 {:.2} % at k = {}",
                short_label(source),
                e.note,
                r.best_top1 * 100.0,
                r.best_k
            );
            summary += &knn_table_row(&format!("{}{}", short_label(source), e.note), &r);
            append_results(
                &self.results,
                &[record(source, &data, "knn", r.best_top1, Some(r.best_k))],
            )?;
            details += &r.markdown();
            details += "\n";
        }
        markdown += &summary;
        if self.details {
            markdown += "\n";
            markdown += &details;
        }
        write_report(self.sources.report, &markdown)
    }
}
