//! `procmem memory info`: entries per class, model fingerprint, size.

use super::*;

/// `procmem memory info`.
#[derive(clap::Args)]
pub struct InfoArgs {
    memory: PathBuf,
}

impl InfoArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let InfoArgs { memory } = self;
        let m = Memory::open(&memory)?;
        println!(
            "{}: {} entries, dimension {}, model {}",
            memory.display(),
            m.len(),
            m.dim(),
            m.model_fingerprint()
        );
        for label in m.labels() {
            println!(
                "  {label}: {}",
                m.entries().iter().filter(|e| e.label == label).count()
            );
        }
        Ok(())
    }
}
