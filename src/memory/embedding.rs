//! Embedding images into a memory: new entries from image files (decode, embed, thumbnail), and
//! a whole memory embedded again by another model from its stored thumbnails. The app's "add
//! images" and "re-embed with this model" run these on a worker.

use std::path::Path;

use super::Memory;
use crate::embed::FeatureSource;
use crate::embed::cache::EmbeddingCache;
use crate::error::{Error, Result};

/// One image embedded and ready to add to the memory.
pub struct NewEntry {
    pub label: String,
    pub source: String,
    pub content_hash: u64,
    pub thumbnail: Vec<u8>,
    pub embedding: Vec<f32>,
}

/// Side of the thumbnails stored for added images, in pixels.
pub const THUMBNAIL_SIDE: u32 = 48;

/// Decodes (through [`crate::imageio`]), embeds and thumbnails `(name, bytes)` images, 64 at a
/// time, all labelled `label`. Returns the entries and, for every file that did not decode, its
/// error (naming the file). Errors: [`Error::Cancelled`] when `cancelled()` turns true between
/// batches; an embedding failure.
pub fn embed_images(
    source: &FeatureSource,
    images: Vec<(String, Vec<u8>)>,
    label: &str,
    cancelled: impl Fn() -> bool,
    progress: impl Fn(f32, &str),
) -> Result<(Vec<NewEntry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let total = images.len().max(1);
    for (i, chunk) in images.chunks(64).enumerate() {
        if cancelled() {
            return Err(Error::Cancelled);
        }
        let mut decoded = Vec::new();
        for (name, bytes) in chunk {
            match crate::imageio::decode_rgb(bytes, Path::new(name)) {
                Ok(img) => decoded.push((name.clone(), crate::hash::fnv1a(bytes), img)),
                Err(e) => skipped.push(e.to_string()),
            }
        }
        let rgb: Vec<image::RgbImage> = decoded.iter().map(|d| d.2.clone()).collect();
        let (emb, dim) = source.embed_rgb(&rgb, |_| {})?;
        for ((name, hash, img), e) in decoded.into_iter().zip(emb.chunks_exact(dim.max(1))) {
            entries.push(NewEntry {
                label: label.to_string(),
                source: name,
                content_hash: hash,
                thumbnail: super::import::thumbnail_png(&img, THUMBNAIL_SIDE),
                embedding: e.to_vec(),
            });
        }
        progress(((i + 1) * 64).min(total) as f32 / total as f32, &format!("{} of {total}", ((i + 1) * 64).min(total)));
    }
    Ok((entries, skipped))
}

/// What marks re-embedded memories among the cache's files (`<fingerprint>-memory-<hash>…`), so
/// that unlearning can purge them.
pub const MEMORY_SET_PREFIX: &str = "-memory-";

/// The cache key of a memory's contents: FNV-1a over each entry's id and thumbnail (what the
/// embeddings are computed from), as `memory-<16 hex digits>`.
pub fn memory_set_key(memory: &Memory) -> String {
    let mut bytes = Vec::new();
    for e in &memory.entries {
        bytes.extend_from_slice(&e.id.to_le_bytes());
        bytes.extend_from_slice(&crate::hash::fnv1a(&e.thumbnail).to_le_bytes());
    }
    format!("{}{:016x}", &MEMORY_SET_PREFIX[1..], crate::hash::fnv1a(&bytes))
}

/// A copy of `memory` with every entry embedded again from its thumbnail by `source` (same ids,
/// labels, sources and thumbnails; exact for images no larger than their thumbnails). Errors: an
/// unreadable thumbnail (naming the entry), an embedding failure.
pub fn reembed_memory(memory: &Memory, source: &FeatureSource, progress: impl Fn(f32)) -> Result<Memory> {
    let fp = source.fingerprint();
    let mut out: Option<Memory> = None;
    let total = memory.entries.len().max(1);
    for (i, chunk) in memory.entries.chunks(256).enumerate() {
        let images: Vec<image::RgbImage> = chunk
            .iter()
            .map(|e| {
                image::load_from_memory(&e.thumbnail)
                    .map(|i| i.to_rgb8())
                    .map_err(|err| Error::Memory(format!("entry #{}: unreadable thumbnail ({err})", e.id)))
            })
            .collect::<Result<_>>()?;
        let (emb, dim) = source.embed_rgb(&images, |_| {})?;
        let m = out.get_or_insert_with(|| Memory::new(&fp, dim));
        for (e, v) in chunk.iter().zip(emb.chunks_exact(dim.max(1))) {
            let mut entry = e.clone();
            entry.embedding = v.to_vec();
            m.restore(entry)?;
        }
        progress(((i + 1) * 256).min(total) as f32 / total as f32);
    }
    Ok(out.unwrap_or_else(|| Memory::new(&fp, memory.dim)))
}

/// [`reembed_memory`] through `cache`: a memory seen before with this model is not re-embedded
/// (keyed by the model's fingerprint and [`memory_set_key`]). A cache that cannot be written
/// is logged, not an error.
pub fn reembed_memory_cached(memory: &Memory, source: &FeatureSource, cache: &EmbeddingCache, progress: impl Fn(f32)) -> Result<Memory> {
    let fp = source.fingerprint();
    let key = memory_set_key(memory);
    if let Some((values, dim)) = cache.get(&fp, &key, memory.entries.len()) {
        let mut out = Memory::new(&fp, dim);
        for (e, v) in memory.entries.iter().zip(values.chunks_exact(dim.max(1))) {
            let mut entry = e.clone();
            entry.embedding = v.to_vec();
            out.restore(entry)?;
        }
        progress(1.0);
        return Ok(out);
    }
    let out = reembed_memory(memory, source, progress)?;
    let values: Vec<f32> = out.entries.iter().flat_map(|e| e.embedding.iter().copied()).collect();
    if let Err(e) = cache.put(&fp, &key, &values, out.dim) {
        log::warn!("could not cache the re-embedded memory: {e}");
    }
    Ok(out)
}
