//! Retrieval between paired sets: each query has exactly one counterpart in the gallery (e.g. the
//! same emoji drawn by Google and by Twitter); recall@k is the fraction of queries whose
//! counterpart is among their k nearest gallery images.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::memory::ExactIndex;

#[derive(Clone, Debug)]
pub struct RetrievalReport {
    pub source: String,
    pub pairs: usize,
    /// (k, recall@k)
    pub recall: Vec<(usize, f64)>,
}

/// `queries` and `gallery` are n × dim, row i of each forming a pair.
pub fn evaluate(
    source: &str,
    queries: &[f32],
    gallery: &[f32],
    dim: usize,
    ks: &[usize],
) -> RetrievalReport {
    let n = gallery.len() / dim.max(1);
    let index = ExactIndex::from_embeddings(dim, vec!["item".into()], vec![0; n], gallery.to_vec());
    let kmax = ks.iter().copied().max().unwrap_or(1);
    let found = index.search(queries, kmax);
    let recall = ks
        .iter()
        .map(|&k| {
            let hits = found
                .iter()
                .enumerate()
                .filter(|(qi, nb)| nb.iter().take(k).any(|x| x.id == *qi as u64))
                .count();
            (k, hits as f64 / found.len().max(1) as f64)
        })
        .collect();
    RetrievalReport {
        source: source.to_string(),
        pairs: found.len(),
        recall,
    }
}

/// Pairs of files with the same name in two folders (sorted by name).
pub fn paired_files(a: &Path, b: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut pairs = Vec::new();
    let entries = std::fs::read_dir(a).map_err(|e| Error::io(a, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(a, e))?.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"));
        if let Some(name) = path.file_name().filter(|_| is_image) {
            let other = b.join(name);
            if other.is_file() {
                pairs.push((path.clone(), other));
            }
        }
    }
    pairs.sort();
    if pairs.is_empty() {
        return Err(Error::BadFile {
            path: a.into(),
            message: format!("no image shares its file name with one in {}", b.display()),
        });
    }
    Ok(pairs)
}

impl RetrievalReport {
    pub fn markdown_row(&self) -> String {
        let cells: Vec<String> = self
            .recall
            .iter()
            .map(|(_, r)| format!("{:.2} %", r * 100.0))
            .collect();
        format!("| {} | {} |\n", self.source, cells.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_the_counterpart_in_the_top_k() {
        // Query 0 is nearest its pair; query 1's pair is second.
        let g = [1.0, 0.0, 0.6, 0.8];
        let q = [1.0, 0.0, 1.0, 0.0];
        let r = evaluate("t", &q, &g, 2, &[1, 2]);
        assert_eq!(r.recall, vec![(1, 0.5), (2, 1.0)]);
    }
}
