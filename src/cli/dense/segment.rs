//! `procmem dense segment`: in-context segmentation, prompt image(s) with mask(s) to the query's
//! soft mask.

use super::*;

/// `procmem dense segment`: in-context segmentation of a query from one or more prompt/mask pairs.
#[derive(clap::Args)]
pub struct SegmentArgs {
    /// Prompt image; repeat with a --prompt-mask for each.
    #[arg(long, required = true)]
    prompt: Vec<PathBuf>,
    /// The prompt's mask (white = object).
    #[arg(long, required = true)]
    prompt_mask: Vec<PathBuf>,
    #[arg(long)]
    query: PathBuf,
    /// The query's true mask: prints soft and thresholded IoU.
    #[arg(long)]
    truth: Option<PathBuf>,
    #[arg(long, default_value_t = 0.2)]
    threshold: f32,
    /// Multiplies the attention logits ⟨z_prompt, z_query⟩ / C. 1 is the paper's scale, which
    /// for a model whose attention scale was fitted (`procmem standardise`, as the bundled
    /// model's) is that fit; a model without one attends nearly uniformly at 1: try 10. Below 1
    /// softens the mask.
    #[arg(long, default_value_t = 1.0)]
    sharpness: f32,
    #[command(flatten)]
    args: DenseArgs,
}

impl SegmentArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let SegmentArgs {
            prompt: prompts,
            prompt_mask: masks,
            query,
            truth,
            threshold,
            sharpness,
            args:
                DenseArgs {
                    features,
                    grid,
                    out,
                },
        } = self;
        if prompts.is_empty() || prompts.len() != masks.len() {
            bail!(
                "give each --prompt its --prompt-mask ({} prompts, {} masks)",
                prompts.len(),
                masks.len()
            );
        }
        let source = source(features.as_deref())?;
        let block = patch_size(&source);
        let q = open_rgb(&query)?;
        let qgrid = extract_one(&source, &q, grid)?;
        let mut grids = Vec::new();
        let mut resized = Vec::new();
        for (p, m) in prompts.iter().zip(&masks) {
            let g = extract_one(&source, &open_rgb(p)?, grid)?;
            resized.push(open_mask(m)?.resize(g.cols * block, g.rows * block));
            grids.push(g);
        }
        let prompt_list: Vec<Prompt> = grids
            .iter()
            .zip(&resized)
            .map(|(features, mask)| Prompt { features, mask })
            .collect();
        let pred = in_context(&prompt_list, &qgrid, block, sharpness)?
            .resize(q.width() as usize, q.height() as usize);
        save_mask(&pred, &out)?;
        println!(
            "soft mask of {} written to {}",
            query.display(),
            out.display()
        );
        if let Some(t) = truth {
            let gt = open_mask(&t)?;
            if (gt.width, gt.height) != (pred.width, pred.height) {
                bail!(
                    "the ground truth {} is {}×{}, the query {}×{}",
                    t.display(),
                    gt.width,
                    gt.height,
                    pred.width,
                    pred.height
                );
            }
            let gt = SoftMask {
                values: gt
                    .values
                    .iter()
                    .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                    .collect(),
                ..gt
            };
            let show = |v: Option<f64>| {
                v.map_or("undefined (both empty)".to_string(), |v| format!("{v:.3}"))
            };
            println!(
                "soft IoU {}; thresholded (th {threshold}) {}",
                show(soft_iou(&pred.values, &gt.values)),
                show(soft_iou(&pred.thresholded(threshold).values, &gt.values))
            );
        }
        Ok(())
    }
}
