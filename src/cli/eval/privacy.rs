//! `procmem privacy`: which memory entries would change a prediction if removed alone.

use super::*;
use procmem::eval::knn;

/// `procmem privacy`.
#[derive(clap::Args)]
pub struct PrivacyArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub sources: Sources,
    #[arg(long, value_delimiter = ',', default_value = "1,10,20,100")]
    pub k: Vec<usize>,
    /// List this many of the most influential entries.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Draw non-private fraction against kNN top-1 (one line per source, a point per k) as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl PrivacyArgs {
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::eval::plot::{PlotSpec, Series, render};
        use procmem::memory::privacy::analyse;
        let sources = sources_with_baselines(&self.sources.features, !self.sources.no_baselines)?;
        let data = EvalData::load(self.data)?;
        data.check_sources(&sources)?;
        let ks = &self.k;
        let mut markdown = format!(
            "## Privacy analysis, {} ({})\n\n\
             An entry is non-private when removing it alone changes at least one query's prediction. Each cell: non-private fraction of the memory / kNN top-1.\n\nCommand: `procmem {}`\n\n",
            data.describe(),
            VoteRule::default().describe(),
            command_line()
        );
        markdown += &format!(
            "| features | {} |\n|---|{}\n",
            k_column_names(ks),
            "---:|".repeat(ks.len())
        );
        let mut details = String::new();
        let mut series = Vec::new();
        for source in &sources {
            let e = data.embed(source)?;
            let label = format!("{}{}", short_label(source), e.note);
            let accuracy = knn::evaluate(
                &source.name(),
                &e.index,
                &e.queries,
                &e.truths,
                ks,
                VoteRule::default(),
            );
            let mut cells = Vec::new();
            let mut points = Vec::new();
            for (i, &k) in ks.iter().enumerate() {
                let t = std::time::Instant::now();
                let r = analyse(&e.index, &e.queries, k, VoteRule::default());
                let acc = accuracy.top1[i];
                eprintln!(
                    "{label} k = {k}: {:.2} % non-private, top-1 {:.2} % ({:.2} s)",
                    r.non_private_fraction * 100.0,
                    acc * 100.0,
                    t.elapsed().as_secs_f64()
                );
                cells.push(format!(
                    "{:.2} % / {:.2} %",
                    r.non_private_fraction * 100.0,
                    acc * 100.0
                ));
                points.push((r.non_private_fraction * 100.0, acc * 100.0));
                if k == ks[0] {
                    let mut ranked: Vec<(u64, usize)> =
                        r.influence.iter().map(|(&id, &c)| (id, c)).collect();
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    details += &format!("\nMost influential entries for {label} (k = {k}): ");
                    details += &ranked
                        .iter()
                        .take(self.top)
                        .map(|(id, c)| {
                            format!(
                                "#{id} ({}, {c} queries)",
                                e.index.labels[e.train_labels[*id as usize] as usize]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    details += "\n";
                }
            }
            markdown += &format!("| {label} | {} |\n", cells.join(" | "));
            series.push(Series {
                label,
                points,
                point_labels: ks.iter().map(|k| format!("k={k}")).collect(),
            });
        }
        markdown += &details;
        if let Some(path) = &self.plot {
            let title = format!("Privacy vs accuracy, {}", data.id());
            let img = render(
                &PlotSpec {
                    title: &title,
                    x_label: "non-private fraction of the memory (%)",
                    y_label: "kNN top-1 (%)",
                    width: 960,
                    height: 600,
                },
                &series,
            );
            img.save(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("plot written to {}", path.display());
            markdown += &format!(
                "\n![privacy plot]({})\n",
                path.file_name()
                    .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
            );
        }
        write_report(self.sources.report, &markdown)
    }
}
