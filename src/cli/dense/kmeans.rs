//! `procmem dense kmeans`: K-means clusters of each image's patch tokens, drawn over it.

use super::*;

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
