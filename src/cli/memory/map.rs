//! `procmem memory map`: every entry on the memory's first two principal axes.

use super::*;

/// `procmem memory map`.
#[derive(clap::Args)]
pub struct MapArgs {
    memory: PathBuf,
    /// Coordinates file (.csv or .json).
    #[arg(long)]
    out: PathBuf,
    /// Also draw the map here (PNG).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Width and height of the PNG, pixels.
    #[arg(long, default_value_t = 1024)]
    size: u32,
}

impl MapArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let MapArgs {
            memory,
            out,
            png,
            size,
        } = self;
        use procmem::memory::map::MemoryMap;
        use procmem::palette::class_rgb;
        let m = Memory::open(&memory)?;
        let map = MemoryMap::fit(&m)?;
        let rows = map.export(&m, None, &out)?;
        let e = &map.projection.explained;
        eprintln!(
            "{rows} entries of {} on PC1/PC2 ({:.1} % + {:.1} % of the variance) -> {}",
            memory.display(),
            e[0] * 100.0,
            e[1] * 100.0,
            out.display()
        );
        if let Some(png) = png {
            map.render(size)
                .save(&png)
                .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
            eprintln!("map drawn to {}; colours:", png.display());
            for (i, label) in map.labels.iter().enumerate() {
                let [r, g, b] = class_rgb(i as u32);
                eprintln!("  #{r:02x}{g:02x}{b:02x} {label}");
            }
        }
        Ok(())
    }
}
