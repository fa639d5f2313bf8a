//! `procmem regenerate`: a set of procedural images, exactly, from its manifest.json.

use std::path::PathBuf;

use procmem::generate::manifest;

use super::progress_bar;

/// `procmem regenerate`.
#[derive(clap::Args)]
pub struct RegenerateArgs {
    /// The manifest.json of the set.
    manifest: PathBuf,
    /// Folder to write the regenerated images to.
    #[arg(long)]
    out: PathBuf,
}

impl RegenerateArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let bar = progress_bar(0, "regenerate");
        let (m, written) = manifest::regenerate(&self.manifest, &self.out, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
            true
        })?;
        bar.finish();
        eprintln!(
            "regenerated {} images; manifest at {}",
            m.count,
            written.display()
        );
        Ok(())
    }
}
