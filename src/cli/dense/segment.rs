//! `procmem dense segment`: in-context segmentation, prompt image(s) with mask(s) to the query's
//! soft mask.

use super::*;

/// `procmem dense segment`: in-context segmentation of a query from one or more prompt/mask pairs.
#[derive(clap::Args)]
pub struct SegmentArgs {
    /// Prompt image; repeat with a --prompt-mask for each.
    #[arg(long, required = true)]
    prompt: Vec<PathBuf>,
    /// The prompt's mask (white = object), or with --class a class-id map.
    #[arg(long, required = true)]
    prompt_mask: Vec<PathBuf>,
    /// Read the masks (prompt masks and --truth) as class-id maps, one byte per pixel as a
    /// composite set's `NNNNN.mask.png`, whose object is this class. Without it a prompt mask is
    /// gray (white = object) and the truth is every non-zero pixel.
    #[arg(long)]
    class: Option<u8>,
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
            class,
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
        // Every mask is read before any features are computed, so a bad one fails at once.
        let masks: Vec<SoftMask> = masks
            .iter()
            .map(|m| open_mask(m, class))
            .collect::<anyhow::Result<_>>()?;
        let truth = match truth {
            Some(t) => Some((open_truth(&t, class)?, t)),
            None => None,
        };
        let source = source(features.as_deref())?;
        let block = patch_size(&source);
        let q = open_rgb(&query)?;
        if let Some((gt, t)) = &truth
            && (gt.width, gt.height) != (q.width() as usize, q.height() as usize)
        {
            bail!(
                "the ground truth {} is {}×{}, the query {}×{}",
                t.display(),
                gt.width,
                gt.height,
                q.width(),
                q.height()
            );
        }
        let qgrid = extract_one(&source, &q, grid)?;
        let mut grids = Vec::new();
        let mut resized = Vec::new();
        for (p, m) in prompts.iter().zip(&masks) {
            let g = extract_one(&source, &open_rgb(p)?, grid)?;
            resized.push(m.resize(g.cols * block, g.rows * block));
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
        if let Some((gt, _)) = truth {
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
