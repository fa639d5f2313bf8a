//! `procmem data …`: evaluation sets built from the offline data. `procmem data composite`: a
//! segmentation set with exact masks.

use std::path::PathBuf;

use anyhow::Context;
use procmem::dense::composite::{self, CompositeConfig};

use super::{data_dir, progress_bar};

pub fn composite(
    emoji: Option<PathBuf>,
    procedural_classes: usize,
    out: PathBuf,
    cfg: CompositeConfig,
) -> anyhow::Result<()> {
    // A byte mask holds 255 ids, the background and 254 classes; refused before any image is made.
    anyhow::ensure!(
        procedural_classes <= 254,
        "--procedural-classes {procedural_classes}: a composite set holds at most 254 object classes"
    );
    let (objects, source) = if procedural_classes > 0 {
        let objects = composite::procedural_objects(
            procedural_classes,
            composite::PROCEDURAL_OBJECTS_PER_CLASS,
            composite::PROCEDURAL_OBJECT_SIDE,
            cfg.seed,
        );
        (
            objects,
            "procedural objects (synthesized programs in blobs)".to_string(),
        )
    } else {
        let dir = match emoji {
            Some(d) => d,
            None => data_dir()?.join("emoji-google"),
        };
        composite::load_emoji(&dir).with_context(|| {
            format!(
                "emoji objects in {} (run scripts/fetch-eval-data.sh)",
                dir.display()
            )
        })?
    };
    let bar = progress_bar(cfg.count as u64, "composite");
    let manifest = composite::build(
        &cfg,
        &objects,
        &format!("{source} ({} objects)", objects.len()),
        &out,
        |d, _| bar.set_position(d as u64),
    )?;
    bar.finish_and_clear();
    println!(
        "{} images with exact class masks in {} — classes: {}",
        manifest.items.len(),
        out.display(),
        manifest.classes.join(", ")
    );
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// A segmentation set with exact masks: emoji (with alpha) pasted onto procedural
    /// backgrounds, several per image; NNNNN.png + NNNNN.mask.png (class ids) + composite.json.
    Composite(CompositeArgs),
}

/// `procmem data composite`.
#[derive(clap::Args)]
pub struct CompositeArgs {
    /// An emoji-datasource-<style> package folder [default: $PROCMEM_DATA/emoji-google].
    #[arg(long, conflicts_with = "procedural_classes")]
    emoji: Option<PathBuf>,
    /// Paste procedural objects instead of emoji: this many classes, each a synthesized
    /// program's texture in blobs of varied shape (0 = emoji). A set with no real image.
    #[arg(long, default_value_t = 0)]
    procedural_classes: usize,
    /// Output folder (an existing set there is refused).
    #[arg(long)]
    out: PathBuf,
    /// Number of images (the first half serves as memory and prompts in `eval seg`).
    #[arg(long, default_value_t = 200)]
    count: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 128)]
    size: u32,
    /// Objects per image, at most.
    #[arg(long, default_value_t = 3)]
    max_objects: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl CompositeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let CompositeArgs {
            emoji,
            procedural_classes,
            out,
            count,
            size,
            max_objects,
            seed,
        } = self;
        let cfg = CompositeConfig {
            count,
            size,
            max_objects,
            seed,
            ..Default::default()
        };
        composite(emoji, procedural_classes, out, cfg)
    }
}

impl DataCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            DataCommand::Composite(args) => args.run(),
        }
    }
}
