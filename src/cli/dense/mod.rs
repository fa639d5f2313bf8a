//! `procmem dense …`: PCA overlays, in-context, kNN and K-means segmentation of image files.
//! One file per command; this file holds what they share (feature source, mask and label I/O,
//! output names).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use procmem::dense::composite::CompositeSet;
use procmem::dense::features::{extract, extract_one, patch_size};
use procmem::dense::pca::{overlay, shared_overlays};
use procmem::dense::segment::{
    PatchMemory, PatchVote, Prompt, SoftMask, in_context, kmeans, patch_labels, soft_iou,
};
use procmem::embed::FeatureSource;
use procmem::palette::class_rgb;

mod kmeans;
mod knn;
mod pca;
mod segment;
pub use kmeans::KmeansArgs;
pub use knn::KnnSegArgs;
pub use pca::PcaArgs;
pub use segment::SegmentArgs;

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

/// Raw class ids at or below this value, and nothing brighter, mark a mask as a class-id map
/// (a composite set's `NNNNN.mask.png`) rather than a painted mask.
const LABEL_MAP_MAX_ID: u8 = 32;

/// A mask image → soft values in [0, 1]. With `class`, the image is a class-id map (one byte per
/// pixel, as a composite set's `NNNNN.mask.png`) and the object is the pixels of that class;
/// otherwise gray ÷ 255 (white = object). Refuses, naming the file, a class that the map does not
/// hold, and a mask whose only values are small class ids when no class is given: read as gray,
/// such a mask is nearly black and the prompt would silently say "no object anywhere".
fn open_mask(path: &Path, class: Option<u8>) -> anyhow::Result<SoftMask> {
    let m = procmem::imageio::load(path)?.to_luma8();
    let raw = m.as_raw();
    match class {
        Some(c) => {
            if !raw.contains(&c) {
                let mut ids: Vec<u8> = raw.to_vec();
                ids.sort_unstable();
                ids.dedup();
                bail!(
                    "{}: no pixel of class {c} (the map holds class ids {ids:?})",
                    path.display()
                );
            }
            Ok(binary_mask(&m, |v| v == c))
        }
        None => {
            let brightest = raw.iter().copied().max().unwrap_or(0);
            if (1..=LABEL_MAP_MAX_ID).contains(&brightest) {
                bail!(
                    "{}: its brightest pixel is {brightest} of 255, so read as a mask (white = \
                     object) it marks almost nothing; it looks like a class-id map (a composite \
                     set's NNNNN.mask.png): pass --class <ID>",
                    path.display()
                );
            }
            Ok(SoftMask {
                width: m.width() as usize,
                height: m.height() as usize,
                values: raw.iter().map(|&v| v as f32 / 255.0).collect(),
            })
        }
    }
}

/// A query's true mask: with `class`, the pixels of that class (none is allowed: the query may
/// not hold it); otherwise every non-zero pixel, so a painted mask and a class-id map both work.
fn open_truth(path: &Path, class: Option<u8>) -> anyhow::Result<SoftMask> {
    let m = procmem::imageio::load(path)?.to_luma8();
    Ok(binary_mask(&m, |v| class.map_or(v > 0, |c| v == c)))
}

/// 1 where `object` holds for the pixel's byte, 0 elsewhere.
fn binary_mask(m: &image::GrayImage, object: impl Fn(u8) -> bool) -> SoftMask {
    SoftMask {
        width: m.width() as usize,
        height: m.height() as usize,
        values: m.as_raw().iter().map(|&v| f32::from(object(v))).collect(),
    }
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
