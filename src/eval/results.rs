//! Measured numbers as JSON lines (`procmem eval … --results FILE`), one record per model, set
//! and task, keyed by the model's fingerprint; the Models panel shows them beside each model.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultRecord {
    pub fingerprint: String,
    /// A short name of the features (model file stem, `raw pixels`, `random init`).
    pub features: String,
    /// `fashion-mnist`, `mnist`, `emoji-categories`, …
    pub dataset: String,
    /// `knn` (best top-1 over k) or `linear-probe`.
    pub task: String,
    /// Accuracy in 0–1.
    pub value: f64,
    pub k: Option<usize>,
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
