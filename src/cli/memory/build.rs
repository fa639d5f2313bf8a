//! `procmem memory build`: embed labelled images into a new memory file.

use super::*;

/// `procmem memory build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Feature source: a weights path, `random:<preset>` or `pixels`.
    #[arg(long)]
    features: String,
    /// An ImageFolder tree: one sub-folder per class.
    #[arg(long, conflicts_with = "csv")]
    folder: Option<PathBuf>,
    /// A CSV of `path,label` lines.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// An IDX image file (MNIST / Fashion-MNIST layout, optionally .gz); needs --idx-labels.
    #[arg(long, requires = "idx_labels")]
    idx_images: Option<PathBuf>,
    #[arg(long)]
    idx_labels: Option<PathBuf>,
    /// Name Fashion-MNIST's classes instead of using label numbers (with --idx-images).
    #[arg(long)]
    fashion_mnist_names: bool,
    /// A MedMNIST .npz file; --split picks train, val or test.
    #[arg(long)]
    npz: Option<PathBuf>,
    #[arg(long, default_value = "train")]
    split: String,
    /// Import at most this many images (the first ones).
    #[arg(long)]
    limit: Option<usize>,
    /// Fail, writing nothing, if any file is skipped (unreadable, not an image, over limits).
    #[arg(long)]
    strict: bool,
    /// The memory file to write.
    #[arg(long)]
    out: PathBuf,
}

impl BuildArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let BuildArgs {
            features,
            folder,
            csv,
            idx_images,
            idx_labels,
            fashion_mnist_names,
            npz,
            split,
            limit,
            strict,
            out,
        } = self;
        let source = FeatureSource::from_spec(&features)?;
        let fingerprint = source.fingerprint();
        let mut memory: Option<Memory> = None;
        let mut skipped = Vec::new();
        let mut listing_skipped = Vec::new(); // bad CSV lines, reported first
        let limit = limit.unwrap_or(usize::MAX);
        let in_memory_items = match (&folder, &csv, &idx_images, &npz) {
            (Some(_), None, None, None) | (None, Some(_), None, None) => None,
            (None, None, Some(images), None) => {
                let labels = idx_labels
                    .as_deref()
                    .context("--idx-images needs --idx-labels")?;
                let names: &[&str] = if fashion_mnist_names {
                    &procmem::datasets::FASHION_MNIST_CLASSES
                } else {
                    &[]
                };
                Some(import::load_idx(images, labels, names)?)
            }
            (None, None, None, Some(npz)) => Some(import::load_npz(npz, &split)?),
            _ => bail!("give exactly one of --folder, --csv, --idx-images, --npz"),
        };
        // Decoding and thumbnails of the next batch overlap with embedding the current one.
        let mut add = |entries: Vec<procmem::memory::embedding::NewEntry>,
                       bad: Vec<import::Skipped>,
                       bar: &indicatif::ProgressBar| {
            bar.inc((entries.len() + bad.len()) as u64);
            skipped.extend(bad);
            let Some(first) = entries.first() else {
                return Ok(());
            };
            let m = memory.get_or_insert_with(|| Memory::new(&fingerprint, first.embedding.len()));
            for e in entries {
                m.add(
                    &fingerprint,
                    &e.label,
                    &e.source,
                    e.content_hash,
                    e.thumbnail,
                    e.embedding,
                )?;
            }
            Ok(())
        };
        // Images per batch; files may be multi-megapixel photos, so their batches are smaller
        // (two batches are in memory at once).
        const BATCH: usize = 256;
        const FILE_BATCH: usize = 32;
        match in_memory_items {
            Some(mut items) => {
                items.truncate(limit);
                let bar = progress_bar(items.len() as u64, "embed");
                let mut batches = Vec::new();
                while !items.is_empty() {
                    let rest = items.split_off(items.len().min(BATCH));
                    batches.push((std::mem::replace(&mut items, rest), Vec::new()));
                }
                embed_pipelined(&source, batches.into_iter(), |entries, bad| {
                    add(entries, bad, &bar)
                })?;
                bar.finish_and_clear();
            }
            None => {
                let (mut files, bad_lines) = match (&folder, &csv) {
                    (Some(dir), _) => (import::list_image_folder(dir)?, Vec::new()),
                    (_, Some(csv)) => import::list_csv(csv)?,
                    _ => unreachable!("checked above"),
                };
                files.truncate(limit);
                listing_skipped = bad_lines;
                let bar = progress_bar(files.len() as u64, "import");
                embed_pipelined(
                    &source,
                    files.chunks(FILE_BATCH).map(import::load),
                    |entries, bad| add(entries, bad, &bar),
                )?;
                bar.finish_and_clear();
            }
        }
        skipped.splice(0..0, listing_skipped);
        for s in &skipped {
            eprintln!("  skipped {}: {}", s.source, s.reason);
        }
        if strict && !skipped.is_empty() {
            bail!(
                "--strict: {} file(s) skipped (listed above); {} was not written",
                skipped.len(),
                out.display()
            );
        }
        let memory = memory.context("no readable images to import")?;
        memory.save(&out)?;
        eprintln!(
            "{} entries written to {} ({} skipped)",
            memory.len(),
            out.display(),
            skipped.len()
        );
        Ok(())
    }
}
