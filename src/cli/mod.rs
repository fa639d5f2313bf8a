//! CLI helpers shared by the subcommands; the evaluation commands live in `eval`.

pub mod dense;
pub mod eval;
pub mod standardise;

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
