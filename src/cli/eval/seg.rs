//! `procmem eval seg`: segmentation on a composite set, for a model and the baselines.

use std::path::PathBuf;

use procmem::dense::composite::CompositeSet;
use procmem::eval::seg::{self, SegEvalConfig, SegScores};

use super::*;

/// `procmem eval seg`: segmentation on a composite set (`procmem data composite`): PCA R²
/// (paper's and standard), in-context IoU and kNN segmentation accuracy, for a model and the
/// baselines.
#[derive(clap::Args)]
pub struct SegArgs {
    /// The composite set's folder.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    sources: super::Sources,
    /// Patches per image side.
    #[arg(long, default_value_t = procmem::dense::DEFAULT_GRID)]
    grid: usize,
    /// Use only the first N images of the set.
    #[arg(long)]
    limit: Option<usize>,
    /// Multiplier of the in-context attention logits (1 = the paper's ⟨z, z'⟩/C, which for a
    /// model with a fitted attention scale is that fit; a model without one needs about 10).
    #[arg(long, default_value_t = SegEvalConfig::default().sharpness)]
    sharpness: f32,
}

impl SegArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let SegArgs {
            data,
            sources:
                super::Sources {
                    features: specs,
                    report,
                    no_baselines,
                },
            grid,
            limit,
            sharpness,
        } = self;
        if !(sharpness.is_finite() && sharpness > 0.0) {
            anyhow::bail!("--sharpness must be a positive number, got {sharpness}");
        }
        let baselines = !no_baselines;
        let set = CompositeSet::open(&data).with_context(|| {
            format!(
                "composite set in {} (make one with `procmem data composite`)",
                data.display()
            )
        })?;
        let n = limit.unwrap_or(set.len()).min(set.len());
        let examples: Vec<_> = (0..n).map(|i| set.load(i)).collect::<Result<_, _>>()?;
        let cfg = SegEvalConfig {
            grid,
            sharpness,
            ..Default::default()
        };
        let mut markdown = format!(
            "## Segmentation on the composite set {} ({} images: {} memory / prompts, {} queries; {}×{} patch grid{})\n\nCommand: `procmem {}`\n\n{}",
            data.display(),
            n,
            n / 2,
            n - n / 2,
            grid,
            grid,
            if sharpness == 1.0 {
                String::new()
            } else {
                format!("; in-context attention sharpness {sharpness}")
            },
            command_line(),
            SegScores::MARKDOWN_HEADER
        );
        let mut notes = String::new();
        for source in sources_with_baselines(&specs, baselines)? {
            let bar = progress_bar(n as u64, &source.name());
            let scores = seg::evaluate(&source, &examples, &cfg, |stage, done, total| {
                bar.set_message(format!("{}: {stage}", source.name()));
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            eprintln!("{}", scores.markdown_row().trim());
            notes += &format!(
                "- {}: R² over {} images, in-context over {} prompt/query pairs, kNN over {} memory and {} query patches\n",
                scores.source,
                scores.r2_images,
                scores.pairs,
                scores.memory_patches,
                scores.query_patches
            );
            markdown += &scores.markdown_row();
        }
        markdown += "\n";
        markdown += &notes;
        write_report(report, &markdown)
    }
}
