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

/// `$PROCMEM_DATA`, else `~/.cache/procmem/data` (where scripts/fetch-eval-data.sh writes).
pub fn data_dir() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    std::env::var_os("PROCMEM_DATA")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/procmem/data")))
        .context("set PROCMEM_DATA (or HOME) to find the evaluation data")
}
