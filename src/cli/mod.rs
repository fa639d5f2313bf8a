//! The CLI's commands, one file per command (rerun's `commands/` layout): a `clap::Args` struct
//! with `fn run(self) -> anyhow::Result<()>`. A command family with subcommands is a folder
//! (`memory/`, `eval/`, `dense/`, `bench/`) whose `mod.rs` holds the subcommand enum and what
//! its commands share; this file holds what every command shares (progress bars, the data
//! folder, TOML configs, feature sources with their baselines, reports).

pub mod bench;
pub mod data;
pub mod dense;
pub mod eval;
pub mod export;
pub mod generate;
pub mod memory;
pub mod programs;
pub mod regenerate;
pub mod standardise;
pub mod train;

use indicatif::{ProgressBar, ProgressStyle};
use procmem::embed::FeatureSource;

pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
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
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The requested sources, then the baselines: raw pixels and a random-init ViT shaped like the
/// first model (cpu-tiny when there is none). A spec already present is not repeated.
pub fn sources_with_baselines(
    specs: &[String],
    baselines: bool,
) -> anyhow::Result<Vec<FeatureSource>> {
    use anyhow::Context;
    let mut out = Vec::new();
    for spec in specs {
        out.push(
            FeatureSource::from_spec(spec).with_context(|| format!("feature source `{spec}`"))?,
        );
    }
    if baselines {
        if !out.iter().any(|s| matches!(s, FeatureSource::Pixels)) {
            out.push(FeatureSource::Pixels);
        }
        let cfg = match out.iter().find_map(|s| s.vit()) {
            Some(vit) => vit.cfg.clone(),
            None => procmem::model::VitConfig::preset("cpu-tiny").context("the cpu-tiny preset")?,
        };
        let random = FeatureSource::random_like(&cfg)?;
        if !out.iter().any(|s| s.fingerprint() == random.fingerprint()) {
            out.push(random);
        }
    }
    Ok(out)
}

/// The command as typed (without the program name), for report headers.
pub fn command_line() -> String {
    std::env::args().skip(1).collect::<Vec<_>>().join(" ")
}

/// Prints a Markdown report and, when asked, writes it to `report` as well.
pub fn write_report(report: Option<std::path::PathBuf>, markdown: &str) -> anyhow::Result<()> {
    print!("{markdown}");
    if let Some(path) = report {
        procmem::fsio::write_atomic(&path, markdown.as_bytes())?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}
