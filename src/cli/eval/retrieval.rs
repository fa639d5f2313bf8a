//! `procmem eval retrieval`: recall@1/5 between paired sets.

use super::*;
use procmem::eval::retrieval;

/// `procmem eval retrieval`.
#[derive(clap::Args)]
pub struct RetrievalArgs {
    /// Folder of query images (PNG/JPEG) [default: $PROCMEM_DATA/emoji-google/img/google/64].
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Folder of gallery images; a query's counterpart is the gallery image of the same file
    /// name, and unpaired files are left out [default: $PROCMEM_DATA/emoji-twitter/img/twitter/64].
    #[arg(long)]
    gallery: Option<PathBuf>,
    #[command(flatten)]
    sources: Sources,
    /// Append each source's recall@1 to this JSON-lines file (the Models panel shows it). The
    /// set is named `emoji-google-twitter` for the default pairs, `pairs:<queries>|<gallery>`
    /// (canonical folders) otherwise.
    #[arg(long)]
    results: Option<PathBuf>,
}

impl RetrievalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let RetrievalArgs {
            queries,
            gallery,
            results,
            sources:
                Sources {
                    features,
                    report,
                    no_baselines,
                },
        } = self;
        let baselines = !no_baselines;
        let custom = queries.is_some() || gallery.is_some();
        let queries = match queries {
            Some(q) => q,
            None => data_dir()?.join("emoji-google/img/google/64"),
        };
        let gallery = match gallery {
            Some(g) => g,
            None => data_dir()?.join("emoji-twitter/img/twitter/64"),
        };
        let dataset = if custom {
            format!(
                "pairs:{}|{}",
                canonical_or_given(&queries).display(),
                canonical_or_given(&gallery).display()
            )
        } else {
            procmem::eval::results::EMOJI_PAIRS.into()
        };
        let pairs = retrieval::paired_files(&queries, &gallery)?;
        let load = |paths: Vec<&PathBuf>| -> anyhow::Result<Vec<image::RgbImage>> {
            paths
                .into_iter()
                .map(|p| procmem::imageio::load_rgb(p).map_err(anyhow::Error::from))
                .collect()
        };
        let q_images = load(pairs.iter().map(|p| &p.0).collect())?;
        let g_images = load(pairs.iter().map(|p| &p.1).collect())?;
        let ks = [1, 5];
        let mut markdown = format!(
            "## Retrieval: {} queries ({}) against their counterparts ({})\n\nCommand: `procmem {}`\n\n| features | recall@1 | recall@5 |\n|---|---:|---:|\n",
            pairs.len(),
            queries.display(),
            gallery.display(),
            command_line()
        );
        for source in sources_with_baselines(&features, baselines)? {
            let (q, dim) = source.embed_rgb(&q_images, |_| {})?;
            let (g, _) = source.embed_rgb(&g_images, |_| {})?;
            let r = retrieval::evaluate(&source.name(), &q, &g, dim, &ks);
            eprintln!(
                "{}: recall@1 {:.2} %, recall@5 {:.2} %",
                r.source,
                r.recall[0].1 * 100.0,
                r.recall[1].1 * 100.0
            );
            markdown += &r.markdown_row();
            append_results(
                &results,
                &[ResultRecord {
                    fingerprint: source.fingerprint(),
                    features: short_label(&source),
                    dataset: dataset.clone(),
                    task: procmem::eval::results::RECALL_AT_1.into(),
                    value: r.recall[0].1,
                    k: Some(1),
                }],
            )?;
        }
        write_report(report, &markdown)
    }
}
