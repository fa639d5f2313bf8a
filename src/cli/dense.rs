//! `procmem data composite`, `procmem dense …` (PCA overlays, in-context, kNN and K-means
//! segmentation of image files) and `procmem eval seg`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use procmem::dense::composite::{self, CompositeConfig, CompositeSet};
use procmem::dense::features::{extract, extract_one, patch_size};
use procmem::dense::pca::{overlay, shared_overlays};
use procmem::dense::segment::{
    PatchMemory, PatchVote, Prompt, SoftMask, in_context, kmeans, patch_labels, soft_iou,
};
use procmem::embed::FeatureSource;
use procmem::eval::seg::{self, SegEvalConfig, SegScores};
use procmem::palette::class_rgb;

use super::{command_line, sources_with_baselines, write_report};
use super::{data_dir, progress_bar};

/// The feature source of a dense command: the given spec, else the bundled model.
pub fn source(spec: Option<&str>) -> anyhow::Result<FeatureSource> {
    let bundled = procmem::paths::bundled_dir().join(procmem::paths::BUNDLED_MODEL);
    let spec = spec
        .map(str::to_string)
        .unwrap_or_else(|| bundled.display().to_string());
    FeatureSource::from_spec(&spec).with_context(|| format!("feature source `{spec}`"))
}

fn open_rgb(path: &Path) -> anyhow::Result<image::RgbImage> {
    Ok(procmem::imageio::load_rgb(path)?)
}

/// A mask image → soft values in [0, 1] (gray ÷ 255; any non-zero alpha-less pixel counts).
fn open_mask(path: &Path) -> anyhow::Result<SoftMask> {
    let m = procmem::imageio::load(path)?.to_luma8();
    Ok(SoftMask {
        width: m.width() as usize,
        height: m.height() as usize,
        values: m.as_raw().iter().map(|&v| v as f32 / 255.0).collect(),
    })
}

fn save_mask(mask: &SoftMask, path: &Path) -> anyhow::Result<()> {
    let bytes: Vec<u8> = mask
        .values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    image::GrayImage::from_raw(mask.width as u32, mask.height as u32, bytes)
        .context("mask size")?
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Output stems for `inputs`, one per input and all distinct: the file stem, or, where two
/// inputs share one (`a/img.png`, `b/img.png`), the stem with the input's 1-based position
/// (`img-1`, `img-2`). Outputs never overwrite each other silently.
pub fn output_stems(inputs: &[PathBuf]) -> Vec<String> {
    let stems: Vec<String> = inputs
        .iter()
        .map(|p| {
            p.file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned())
        })
        .collect();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(stems.len());
    for (i, stem) in stems.iter().enumerate() {
        let shared = stems.iter().filter(|s| *s == stem).count() > 1;
        let mut name = if shared {
            format!("{stem}-{}", i + 1)
        } else {
            stem.clone()
        };
        while !taken.insert(name.clone()) {
            name.push('_');
        }
        out.push(name);
    }
    out
}

fn out_name(out: &Path, stem: &str, suffix: &str) -> PathBuf {
    out.join(format!("{stem}.{suffix}.png"))
}

pub fn composite(emoji: Option<PathBuf>, out: PathBuf, cfg: CompositeConfig) -> anyhow::Result<()> {
    let dir = match emoji {
        Some(d) => d,
        None => data_dir()?.join("emoji-google"),
    };
    let (objects, source) = composite::load_emoji(&dir).with_context(|| {
        format!(
            "emoji objects in {} (run scripts/fetch-eval-data.sh)",
            dir.display()
        )
    })?;
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

/// `procmem eval seg`: segmentation on a composite set (`procmem data composite`): PCA R²
/// (paper's and standard), in-context IoU and kNN segmentation accuracy, for a model and the
/// baselines.
#[derive(clap::Args)]
pub struct SegArgs {
    /// The composite set's folder.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    sources: super::eval::Sources,
    /// Patches per image side.
    #[arg(long, default_value_t = procmem::dense::DEFAULT_GRID)]
    grid: usize,
    /// Use only the first N images of the set.
    #[arg(long)]
    limit: Option<usize>,
}

impl SegArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let SegArgs {
            data,
            sources:
                super::eval::Sources {
                    features: specs,
                    report,
                    no_baselines,
                },
            grid,
            limit,
        } = self;
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
            ..Default::default()
        };
        let mut markdown = format!(
            "## Segmentation on the composite set {} ({} images: {} memory / prompts, {} queries; {}×{} patch grid)\n\nCommand: `procmem {}`\n\n{}",
            data.display(),
            n,
            n / 2,
            n - n / 2,
            grid,
            grid,
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

/// `procmem dense pca`: PCA overlays (one shared basis) and first-component foreground masks.
#[derive(clap::Args)]
pub struct PcaArgs {
    images: Vec<PathBuf>,
    #[command(flatten)]
    args: DenseArgs,
    #[arg(long, default_value_t = 0.7)]
    opacity: f32,
    /// Foreground threshold on the first component (scaled to [0, 1]).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
}

impl PcaArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let PcaArgs {
            images,
            args:
                DenseArgs {
                    features,
                    grid,
                    out,
                },
            opacity,
            threshold,
        } = self;
        if images.is_empty() {
            bail!("give at least one image");
        }
        let source = source(features.as_deref())?;
        let loaded: Vec<_> = images
            .iter()
            .map(|p| open_rgb(p))
            .collect::<anyhow::Result<_>>()?;
        let grids = extract(&source, &loaded, grid, |_| {})?;
        let (colours, proj) = shared_overlays(&grids.iter().collect::<Vec<_>>())?;
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let stems = output_stems(&images);
        for (((path, img), c), stem) in images.iter().zip(&loaded).zip(&colours).zip(&stems) {
            let o = out_name(&out, stem, "pca");
            overlay(img, c, opacity)
                .save(&o)
                .with_context(|| format!("writing {}", o.display()))?;
            let fg = c.foreground(threshold);
            let (w, h) = img.dimensions();
            let m = out_name(&out, stem, "foreground");
            image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([
                    if fg[(y as usize * c.rows / h as usize) * c.cols
                        + x as usize * c.cols / w as usize]
                    {
                        255
                    } else {
                        0
                    },
                ])
            })
            .save(&m)
            .with_context(|| format!("writing {}", m.display()))?;
            println!(
                "{} → {}, {} ({:.1} % foreground)",
                path.display(),
                o.display(),
                m.display(),
                100.0 * fg.iter().filter(|&&f| f).count() as f64 / fg.len() as f64
            );
        }
        println!(
            "shared basis over {} images; explained variance {:.1} / {:.1} / {:.1} % ({})",
            images.len(),
            proj.explained[0] * 100.0,
            proj.explained[1] * 100.0,
            proj.explained[2] * 100.0,
            source.name()
        );
        Ok(())
    }
}

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
    /// Multiplies the attention logits ⟨z_prompt, z_query⟩ / C. 1 is the paper's scale, nearly
    /// uniform attention for the small CPU models; 10 focuses it (`eval seg` keeps 1).
    #[arg(long, default_value_t = 10.0)]
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

fn save_labels(
    img: &image::RgbImage,
    labels: &[u32],
    rows: usize,
    cols: usize,
    path: &Path,
) -> anyhow::Result<()> {
    let (w, h) = img.dimensions();
    image::RgbImage::from_fn(w, h, |x, y| {
        let l = labels[(y as usize * rows / h as usize) * cols + x as usize * cols / w as usize];
        let (c, p) = (class_rgb(l), img.get_pixel(x, y).0);
        image::Rgb([0, 1, 2].map(|k| ((p[k] as u16 + c[k] as u16 * 2) / 3) as u8))
    })
    .save(path)
    .with_context(|| format!("writing {}", path.display()))
}

/// `procmem dense kmeans`.
#[derive(clap::Args)]
pub struct KmeansArgs {
    images: Vec<PathBuf>,
    #[command(flatten)]
    args: DenseArgs,
    #[arg(long, default_value_t = 4)]
    k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl KmeansArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let KmeansArgs {
            images,
            args:
                DenseArgs {
                    features,
                    grid,
                    out,
                },
            k,
            seed,
        } = self;
        let source = source(features.as_deref())?;
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        for (path, stem) in images.iter().zip(output_stems(&images)) {
            let img = open_rgb(path)?;
            let g = extract_one(&source, &img, grid)?;
            let labels = kmeans(&g, k, seed)?;
            let o = out_name(&out, &stem, &format!("kmeans{k}"));
            save_labels(&img, &labels, g.rows, g.cols, &o)?;
            println!("{} → {}", path.display(), o.display());
        }
        Ok(())
    }
}

/// `procmem dense knn`: kNN segmentation of images with a patch memory made from (part of) a
/// composite set.
#[derive(clap::Args)]
pub struct KnnSegArgs {
    images: Vec<PathBuf>,
    /// The composite set giving labelled patches.
    #[arg(long)]
    data: PathBuf,
    /// How many of its images make the memory.
    #[arg(long, default_value_t = 100)]
    memory_images: usize,
    /// Vote of the k most similar patches (softmax of cos/0.02) instead of the paper's
    /// attention over all memory patches.
    #[arg(long)]
    top_k: Option<usize>,
    #[command(flatten)]
    args: DenseArgs,
}

impl KnnSegArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let KnnSegArgs {
            images,
            data,
            memory_images,
            top_k,
            args:
                DenseArgs {
                    features,
                    grid,
                    out,
                },
        } = self;
        let source = source(features.as_deref())?;
        let set = CompositeSet::open(&data)
            .with_context(|| format!("composite set in {}", data.display()))?;
        let n = memory_images.min(set.len());
        let examples: Vec<_> = (0..n).map(|i| set.load(i)).collect::<Result<_, _>>()?;
        let grids = extract(
            &source,
            &examples.iter().map(|e| &e.image).collect::<Vec<_>>(),
            grid,
            |_| {},
        )?;
        let mut memory = PatchMemory::default();
        for (e, g) in examples.iter().zip(&grids) {
            memory.add(
                g,
                &patch_labels(&e.labels, e.width(), e.height(), g.rows, g.cols),
            )?;
        }
        memory.num_classes = set.manifest.classes.len();
        let vote = match top_k {
            Some(k) => PatchVote::TopK {
                k,
                temperature: procmem::dense::segment::PATCH_VOTE_TEMPERATURE,
            },
            None => PatchVote::Attention,
        };
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        for (path, stem) in images.iter().zip(output_stems(&images)) {
            let img = open_rgb(path)?;
            let g = extract_one(&source, &img, grid)?;
            let labels = memory.segment(&g, vote)?;
            let o = out_name(&out, &stem, "knnseg");
            save_labels(&img, &labels, g.rows, g.cols, &o)?;
            let mut found: Vec<u32> = labels.clone();
            found.sort();
            found.dedup();
            let names: Vec<&str> = found
                .iter()
                .map(|&l| {
                    set.manifest
                        .classes
                        .get(l as usize)
                        .map_or("?", |s| s.as_str())
                })
                .collect();
            println!(
                "{} → {} (classes: {})",
                path.display(),
                o.display(),
                names.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_sharing_a_file_name_get_distinct_outputs() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            output_stems(&[p("a/img.png"), p("b/img.png"), p("c/other.jpg")]),
            vec!["img-1", "img-2", "other"]
        );
        // A stem that already looks like a disambiguated one stays distinct too.
        let stems = output_stems(&[p("a/img.png"), p("img-2.png"), p("b/img.png")]);
        let unique: std::collections::HashSet<&String> = stems.iter().collect();
        assert_eq!(unique.len(), 3, "{stems:?}");
    }
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
    #[arg(long)]
    emoji: Option<PathBuf>,
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
        composite(emoji, out, cfg)
    }
}

/// Options shared by the dense commands.
#[derive(clap::Args)]
pub struct DenseArgs {
    /// Feature source (a model path, `random:<preset>` or `pixels`) [default: the bundled model].
    #[arg(long)]
    pub features: Option<String>,
    /// Patches per image side (the image is resized to grid × patch pixels).
    #[arg(long, default_value_t = procmem::dense::DEFAULT_GRID)]
    pub grid: usize,
    /// Output folder (file for `segment`).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum DenseCommand {
    /// PCA of patch tokens → RGB overlays with one basis shared by all the images, and the first
    /// component thresholded as a foreground mask.
    Pca(PcaArgs),
    /// In-context segmentation: prompt image(s) with mask(s) → the query's soft mask (PNG).
    Segment(SegmentArgs),
    /// K-means clusters of each image's patch tokens, drawn over it.
    Kmeans(KmeansArgs),
    /// kNN segmentation: a patch memory from a composite set's first images labels each image's
    /// patches.
    Knn(KnnSegArgs),
}

impl DataCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            DataCommand::Composite(args) => args.run(),
        }
    }
}

impl DenseCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            DenseCommand::Pca(args) => args.run(),
            DenseCommand::Segment(args) => args.run(),
            DenseCommand::Kmeans(args) => args.run(),
            DenseCommand::Knn(args) => args.run(),
        }
    }
}
