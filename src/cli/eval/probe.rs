//! `procmem eval probe`: a linear probe beside kNN (the paper's Table 5).

use super::*;
use procmem::eval::knn;

/// `procmem eval probe`.
#[derive(clap::Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sources: Sources,
    /// The ks of the kNN column.
    #[arg(long, value_delimiter = ',', default_value = "10,20,100,200")]
    pub k: Vec<usize>,
    /// Append each source's probe accuracy to this JSON-lines file.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

impl ProbeArgs {
    /// Linear probe beside kNN (the paper's Table 5), on the same embeddings.
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::eval::probe::{ProbeConfig, fit_and_score};
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        let cfg = ProbeConfig::default();
        let mut markdown = format!(
            "## Linear probe beside kNN, {}\n\nLogistic regression on standardised frozen embeddings (Adam, lr {}, {} full-batch steps, L2 {}).\n\nCommand: `procmem {}`\n\n\
             | features | linear probe top-1 | probe train top-1 | kNN best top-1 (k) |\n|---|---:|---:|---:|\n",
            data.describe(),
            cfg.lr,
            cfg.steps,
            cfg.l2,
            command_line()
        );
        for source in &sources {
            let e = data.embed(source)?;
            let train: Vec<f32> = e
                .index
                .rows()
                .flat_map(|(_, _, v)| v.iter().copied())
                .collect();
            let t = std::time::Instant::now();
            let r = fit_and_score(
                &train,
                &e.train_labels,
                &e.queries,
                &e.truths,
                e.index.dim,
                e.index.labels.len(),
                &cfg,
            )?;
            let k = knn::evaluate(
                &source.name(),
                &e.index,
                &e.queries,
                &e.truths,
                &self.k,
                VoteRule::default(),
            );
            eprintln!(
                "{}{}: probe {:.2} % (train {:.2} %, {:.1} s), kNN {:.2} %",
                short_label(source),
                e.note,
                r.test_accuracy * 100.0,
                r.train_accuracy * 100.0,
                t.elapsed().as_secs_f64(),
                k.best_top1 * 100.0
            );
            markdown += &format!(
                "| {}{} | {:.2} % | {:.2} % | {:.2} % ({}) |\n",
                short_label(source),
                e.note,
                r.test_accuracy * 100.0,
                r.train_accuracy * 100.0,
                k.best_top1 * 100.0,
                k.best_k
            );
            append_results(
                &self.results,
                &[record(source, &data, "linear-probe", r.test_accuracy, None)],
            )?;
        }
        write_report(self.sources.report, &markdown)
    }
}
