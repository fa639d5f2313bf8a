//! The CLI's commands, one file per command group (`generate`, `train`, `memory`, `eval`,
//! `dense`, `standardise`), and the helpers they share.

pub mod bench;
pub mod dense;
pub mod eval;
pub mod generate;
pub mod memory;
pub mod standardise;
pub mod train;

use indicatif::{ProgressBar, ProgressStyle};

pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})").expect("valid template").progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// [`procmem::paths::data_dir`], or an error saying how to set it.
pub fn data_dir() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    procmem::paths::data_dir().context("set PROCMEM_DATA (or HOME) to find the evaluation data")
}

/// Reads a TOML config file (a generator or training config), naming the file in errors.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
