//! `procmem eval 2afc`: two-alternative forced choice on NIGHTS-format triplets.

use super::*;
use procmem::eval::twoafc;

/// `procmem eval 2afc`.
#[derive(clap::Args)]
pub struct TwoAfcArgs {
    /// The triplets' data.csv (columns ref_path, left_path, right_path, votes, right_vote, split).
    #[arg(long)]
    csv: PathBuf,
    /// Keep one split (`test` = test_imagenet and test_no_imagenet); default: all rows.
    #[arg(long)]
    split: Option<String>,
    #[command(flatten)]
    sources: Sources,
}

impl TwoAfcArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let TwoAfcArgs {
            csv,
            split,
            sources:
                Sources {
                    features,
                    report,
                    no_baselines,
                },
        } = self;
        let baselines = !no_baselines;
        let triplets = twoafc::read_triplets(&csv, split.as_deref(), 6.0)?;
        anyhow::ensure!(
            !triplets.is_empty(),
            "{}: no triplet with at least 6 votes in the chosen split",
            csv.display()
        );
        let load =
            |f: &dyn Fn(&twoafc::Triplet) -> &PathBuf| -> anyhow::Result<Vec<image::RgbImage>> {
                triplets
                    .iter()
                    .map(|t| procmem::imageio::load_rgb(f(t)).map_err(anyhow::Error::from))
                    .collect()
            };
        let (refs, lefts, rights) = (
            load(&|t| &t.reference)?,
            load(&|t| &t.left)?,
            load(&|t| &t.right)?,
        );
        let p: Vec<f64> = triplets.iter().map(|t| t.p_right).collect();
        let mut markdown = format!(
            "## 2AFC (DreamSim protocol): {} triplets from {}\n\nCommand: `procmem {}`\n\n| features | 2AFC score |\n|---|---:|\n",
            triplets.len(),
            csv.display(),
            command_line()
        );
        for source in sources_with_baselines(&features, baselines)? {
            let (r, dim) = source.embed_rgb(&refs, |_| {})?;
            let (l, _) = source.embed_rgb(&lefts, |_| {})?;
            let (rt, _) = source.embed_rgb(&rights, |_| {})?;
            let score = twoafc::evaluate(&r, &l, &rt, dim, &p);
            eprintln!("{}: 2AFC {:.2} %", source.name(), score * 100.0);
            markdown += &format!("| {} | {:.2} % |\n", source.name(), score * 100.0);
        }
        write_report(report, &markdown)
    }
}
