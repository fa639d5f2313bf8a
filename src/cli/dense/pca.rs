//! `procmem dense pca`: PCA of patch tokens as RGB overlays with one basis shared by all images.

use super::*;

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
