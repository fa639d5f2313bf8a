//! Measured numbers as JSON lines (`procmem eval … --results FILE`), one record per model, set
//! and task, keyed by the model's fingerprint; the Models panel shows them beside each model.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The set name of `procmem eval retrieval`'s default pairs (Google-style emoji as queries,
/// their Twitter-style counterparts as the gallery).
pub const EMOJI_PAIRS: &str = "emoji-google-twitter";

/// The task name of a retrieval record: the fraction of queries whose counterpart is the
/// nearest gallery image.
pub const RECALL_AT_1: &str = "recall@1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultRecord {
    pub fingerprint: String,
    /// A short name of the features (model file stem, `raw pixels`, `random init`).
    pub features: String,
    /// `fashion-mnist`, `mnist`, `emoji-categories`, …
    pub dataset: String,
    /// `knn` (best top-1 over k), `linear-probe` or [`RECALL_AT_1`].
    pub task: String,
    /// Accuracy (or recall) in 0–1.
    pub value: f64,
    pub k: Option<usize>,
}

/// Appends records to a results file (created if missing), one JSON line each.
/// Errors: the file cannot be opened or written ([`Error::Io`]).
pub fn append(path: &Path, records: &[ResultRecord]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    for r in records {
        text += &serde_json::to_string(r)?;
        text.push('\n');
    }
    f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// Every readable record of a results file, the last one winning per (fingerprint, dataset,
/// task); a missing file is no records, unreadable lines are skipped.
pub fn read(path: &Path) -> Vec<ResultRecord> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out: Vec<ResultRecord> = Vec::new();
    for r in text
        .lines()
        .filter_map(|l| serde_json::from_str::<ResultRecord>(l).ok())
    {
        out.retain(|o| {
            !(o.fingerprint == r.fingerprint && o.dataset == r.dataset && o.task == r.task)
        });
        out.push(r);
    }
    out
}
