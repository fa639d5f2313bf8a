//! An on-disk cache of embeddings, keyed by the model's fingerprint, the data set, the split and
//! its size: the zoo's tables (kNN, linear probe, privacy, unlearning) embed each set once per
//! model, and the app re-embeds a memory for a model it has seen before without the model.
//!
//! File: `PMEMB001`, n (u64 LE), dim (u64 LE), then n·dim f32 LE. A file of the wrong length is
//! treated as absent (and rewritten), never trusted.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"PMEMB001";
/// Bump when the evaluation preprocessing changes: old entries are then ignored.
pub const PREPROCESSING_VERSION: u32 = 1;

pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, fingerprint: &str, set: &str, count: usize) -> PathBuf {
        let safe: String = set
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!(
            "{fingerprint}-{safe}-{count}-v{PREPROCESSING_VERSION}.emb"
        ))
    }

    /// The cached embeddings (values, dim) of `count` images of `set` for a model, if present and whole.
    pub fn get(&self, fingerprint: &str, set: &str, count: usize) -> Option<(Vec<f32>, usize)> {
        let bytes = std::fs::read(self.path(fingerprint, set, count)).ok()?;
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return None;
        }
        let n = u64::from_le_bytes(bytes[8..16].try_into().ok()?) as usize;
        let dim = u64::from_le_bytes(bytes[16..24].try_into().ok()?) as usize;
        if n != count || bytes.len() != 24 + n * dim * 4 {
            return None;
        }
        let values = bytes[24..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some((values, dim))
    }

    pub(crate) fn put(
        &self,
        fingerprint: &str,
        set: &str,
        values: &[f32],
        dim: usize,
    ) -> Result<()> {
        if dim == 0 || !values.len().is_multiple_of(dim) {
            return Err(Error::Model(format!(
                "{} values are not rows of {dim}",
                values.len()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let n = values.len() / dim;
        let mut bytes = Vec::with_capacity(24 + values.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(n as u64).to_le_bytes());
        bytes.extend_from_slice(&(dim as u64).to_le_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        crate::fsio::write_atomic(&self.path(fingerprint, set, n), &bytes)
    }

    /// Deletes every entry whose set name contains `needle` (e.g. after a memory entry is
    /// deleted, the cached embeddings of sets that held it go too). Returns how many went.
    pub(crate) fn purge_matching(&self, needle: &str) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(needle))
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Cached embeddings, or `embed()` once and stored.
    pub fn get_or_embed(
        &self,
        fingerprint: &str,
        set: &str,
        count: usize,
        embed: impl FnOnce() -> Result<(Vec<f32>, usize)>,
    ) -> Result<(Vec<f32>, usize)> {
        if let Some(hit) = self.get(fingerprint, set, count) {
            return Ok(hit);
        }
        let (values, dim) = embed()?;
        self.put(fingerprint, set, &values, dim)?;
        Ok((values, dim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_truncated_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::new(dir.path());
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let mut calls = 0;
        let got = cache
            .get_or_embed("abc", "set/train", 4, || {
                calls += 1;
                Ok((values.clone(), 3))
            })
            .unwrap();
        assert_eq!(got, (values.clone(), 3));
        let again = cache
            .get_or_embed("abc", "set/train", 4, || panic!("must come from the cache"))
            .unwrap();
        assert_eq!(again, (values.clone(), 3));
        assert_eq!(calls, 1);
        // Another model or size is another entry.
        assert!(cache.get("abd", "set/train", 4).is_none());
        assert!(cache.get("abc", "set/train", 5).is_none());
        // A truncated file is ignored, not read.
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 4]).unwrap();
        assert!(cache.get("abc", "set/train", 4).is_none());
    }
}
