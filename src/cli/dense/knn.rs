//! `procmem dense knn`: kNN segmentation from a patch memory of a composite set's first images.

use super::*;

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
