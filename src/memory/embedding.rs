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

/// Decodes (through [`crate::imageio`]), embeds and thumbnails `(name, bytes)` images, all
/// labelled `label`, 32 at a time, decoding the next batch while the current one is embedded
/// ([`embed_pipelined`]). Returns the entries and, for every file that did not decode, its error
/// (naming the file). Errors: [`Error::Cancelled`] when `cancelled()` turns true (checked after
/// each batch); an embedding failure.
pub fn embed_images(
    source: &FeatureSource,
    images: Vec<(String, Vec<u8>)>,
    label: &str,
    cancelled: impl Fn() -> bool,
    progress: impl Fn(f32, &str),
) -> Result<(Vec<NewEntry>, Vec<String>)> {
    use super::import::{ImportItem, Skipped};
    use rayon::prelude::*;
    if cancelled() {
        return Err(Error::Cancelled);
    }
    let total = images.len().max(1);
    let started = std::time::Instant::now();
    let batches = images.chunks(32).map(|chunk| {
        let decoded: Vec<std::result::Result<ImportItem, Skipped>> = chunk
            .par_iter()
            .map(
                |(name, bytes)| match crate::imageio::decode_rgb(bytes, Path::new(name)) {
                    Ok(image) => Ok(ImportItem {
                        label: label.to_string(),
                        source: name.clone(),
                        content_hash: crate::hash::fnv1a(bytes),
                        image,
                    }),
                    Err(e) => Err(Skipped {
                        source: name.clone(),
                        reason: e.to_string(),
                    }),
                },
            )
            .collect();
        let (mut items, mut skipped) = (Vec::new(), Vec::new());
        for d in decoded {
            match d {
                Ok(item) => items.push(item),
                Err(s) => skipped.push(s),
            }
        }
        (items, skipped)
    });
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    embed_pipelined(source, batches, |new, bad| {
        entries.extend(new);
        skipped.extend(bad.into_iter().map(|s| s.reason));
        let done = (entries.len() + skipped.len()).min(total);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        progress(
            done as f32 / total as f32,
            &format!("{done} of {total}, {rate:.0} images/s"),
        );
        if cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    })?;
    Ok((entries, skipped))
}

/// Embeds batches of decoded images into [`NewEntry`]s, preparing the next batch on a second
/// thread while the model embeds the current one: `batches` (e.g. reading and decoding files,
/// itself parallel) and the thumbnails (parallel) overlap with the embedding instead of
/// waiting for it. `on_batch` receives each batch's entries and the files skipped on the way,
/// in order. Errors: the first error of the embedding or of `on_batch` (the producer stops at
/// the next batch).
pub fn embed_pipelined<B>(
    source: &FeatureSource,
    batches: B,
    mut on_batch: impl FnMut(Vec<NewEntry>, Vec<super::import::Skipped>) -> Result<()>,
) -> Result<()>
where
    B: Iterator<Item = (Vec<super::import::ImportItem>, Vec<super::import::Skipped>)> + Send,
{
    use rayon::prelude::*;
    type Ready = (
        Vec<(String, String, u64)>,
        Vec<Vec<u8>>,
        crate::embed::Prepared,
        Vec<super::import::Skipped>,
    );
    // One batch in flight: enough to overlap, and memory stays at two batches of images.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Ready>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (items, skipped) in batches {
                // Everything but the model's forward pass: thumbnails and the model's input. The
                // decoded images stay here; only the (small) model input goes on.
                let mut skipped = Some(skipped);
                for chunk in items.chunks(crate::embed::FeatureSource::BATCH) {
                    let thumbnails = chunk
                        .par_iter()
                        .map(|i| super::import::thumbnail_png(&i.image, THUMBNAIL_SIDE))
                        .collect();
                    let prepared =
                        source.prepare_rgb(&chunk.iter().map(|i| &i.image).collect::<Vec<_>>());
                    let names = chunk
                        .iter()
                        .map(|i| (i.label.clone(), i.source.clone(), i.content_hash))
                        .collect();
                    if tx
                        .send((
                            names,
                            thumbnails,
                            prepared,
                            skipped.take().unwrap_or_default(),
                        ))
                        .is_err()
                    {
                        return; // the consumer stopped on an error
                    }
                }
                if let Some(skipped) = skipped
                    && tx
                        .send((
                            Vec::new(),
                            Vec::new(),
                            crate::embed::Prepared::Embedded(Vec::new(), 0),
                            skipped,
                        ))
                        .is_err()
                {
                    return;
                }
            }
        });
        for (names, thumbnails, prepared, skipped) in rx {
            let (emb, dim) = if names.is_empty() {
                (Vec::new(), 0)
            } else {
                source.embed_prepared(prepared)?
            };
            let entries = names
                .into_iter()
                .zip(thumbnails)
                .zip(emb.chunks_exact(dim.max(1)))
                .map(|(((label, source, content_hash), thumbnail), e)| NewEntry {
                    label,
                    source,
                    content_hash,
                    thumbnail,
                    embedding: e.to_vec(),
                })
                .collect();
            on_batch(entries, skipped)?;
        }
        Ok(())
    })
}

/// What marks re-embedded memories among the cache's files (`<fingerprint>-memory-<hash>…`), so
/// that unlearning can purge them.
pub const MEMORY_SET_PREFIX: &str = "-memory-";

/// The cache key of a memory's contents: FNV-1a over each entry's id and thumbnail (what the
/// embeddings are computed from), as `memory-<16 hex digits>`.
pub(crate) fn memory_set_key(memory: &Memory) -> String {
    let mut bytes = Vec::new();
    for e in memory.entries() {
        bytes.extend_from_slice(&e.id.to_le_bytes());
        bytes.extend_from_slice(&crate::hash::fnv1a(&e.thumbnail).to_le_bytes());
    }
    format!(
        "{}{:016x}",
        &MEMORY_SET_PREFIX[1..],
        crate::hash::fnv1a(&bytes)
    )
}

/// What marks cached embeddings of labelled image sets a user gave an evaluation
/// (`--memory-data`, `--queries`; `<fingerprint>-labelled-<hash>…`).
pub const LABELLED_SET_PREFIX: &str = "-labelled-";

/// The cache key of labelled images: FNV-1a over each item's label and content hash, in order,
/// as `labelled-<16 hex digits>`.
pub(crate) fn labelled_set_key(items: &[super::import::ImportItem]) -> String {
    let mut bytes = Vec::new();
    for item in items {
        bytes.extend_from_slice(&(item.label.len() as u64).to_le_bytes());
        bytes.extend_from_slice(item.label.as_bytes());
        bytes.extend_from_slice(&item.content_hash.to_le_bytes());
    }
    format!(
        "{}{:016x}",
        &LABELLED_SET_PREFIX[1..],
        crate::hash::fnv1a(&bytes)
    )
}

/// Embeddings (`items.len() × dim`, row-major) and `dim` of decoded labelled images, through
/// `cache` (keyed by the model's fingerprint and [`labelled_set_key`]). `progress` gets the
/// number of images embedded so far. A cache that cannot be written is logged, not an error.
/// Errors: an embedding failure.
pub fn embed_items_cached(
    items: &[super::import::ImportItem],
    source: &FeatureSource,
    cache: &EmbeddingCache,
    progress: impl Fn(usize),
) -> Result<(Vec<f32>, usize)> {
    let (fp, key) = (source.fingerprint(), labelled_set_key(items));
    if let Some(hit) = cache.get(&fp, &key, items.len()) {
        return Ok(hit);
    }
    let images: Vec<image::RgbImage> = items.iter().map(|i| i.image.clone()).collect();
    let (values, dim) = source.embed_rgb(&images, progress)?;
    if let Err(e) = cache.put(&fp, &key, &values, dim) {
        log::warn!("could not cache the embeddings of labelled images: {e}");
    }
    Ok((values, dim))
}

/// Deletes every cached embedding of user data (re-embedded memories and labelled sets), as a
/// deletion from any memory must: an entry's embedding may sit in either. Returns how many went.
pub(crate) fn purge_user_sets(cache: &EmbeddingCache) -> usize {
    cache.purge_matching(MEMORY_SET_PREFIX) + cache.purge_matching(LABELLED_SET_PREFIX)
}

/// [`purge_user_sets`] in every folder of [`crate::paths::embedding_cache_dirs`].
pub fn purge_user_sets_everywhere() -> usize {
    crate::paths::embedding_cache_dirs()
        .into_iter()
        .map(|d| purge_user_sets(&EmbeddingCache::new(d)))
        .sum()
}

/// A copy of `memory` with every entry embedded again from its thumbnail by `source` (same ids,
/// labels, sources and thumbnails; exact for images no larger than their thumbnails). Errors: an
/// unreadable thumbnail (naming the entry), an embedding failure.
pub fn reembed_memory(
    memory: &Memory,
    source: &FeatureSource,
    progress: impl Fn(f32),
) -> Result<Memory> {
    let fp = source.fingerprint();
    let mut out: Option<Memory> = None;
    let total = memory.entries().len().max(1);
    for (i, chunk) in memory.entries().chunks(256).enumerate() {
        let images: Vec<image::RgbImage> = chunk
            .iter()
            .map(|e| {
                image::load_from_memory(&e.thumbnail)
                    .map(|i| i.to_rgb8())
                    .map_err(|err| {
                        Error::Memory(format!("entry #{}: unreadable thumbnail ({err})", e.id))
                    })
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
    let mut out = out.unwrap_or_else(|| Memory::new(&fp, memory.dim()));
    out.inherit_bookkeeping(memory);
    Ok(out)
}

/// [`reembed_memory`] through `cache`: a memory seen before with this model is not re-embedded
/// (keyed by the model's fingerprint and [`memory_set_key`]). A cache that cannot be written
/// is logged, not an error.
pub fn reembed_memory_cached(
    memory: &Memory,
    source: &FeatureSource,
    cache: &EmbeddingCache,
    progress: impl Fn(f32),
) -> Result<Memory> {
    let fp = source.fingerprint();
    let key = memory_set_key(memory);
    if let Some((values, dim)) = cache.get(&fp, &key, memory.entries().len()) {
        let mut out = Memory::new(&fp, dim);
        for (e, v) in memory.entries().iter().zip(values.chunks_exact(dim.max(1))) {
            let mut entry = e.clone();
            entry.embedding = v.to_vec();
            out.restore(entry)?;
        }
        out.inherit_bookkeeping(memory);
        progress(1.0);
        return Ok(out);
    }
    let out = reembed_memory(memory, source, progress)?;
    let values: Vec<f32> = out
        .entries()
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    if let Err(e) = cache.put(&fp, &key, &values, out.dim()) {
        log::warn!("could not cache the re-embedded memory: {e}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::import::{ImportItem, Skipped};
    use super::*;

    #[test]
    fn a_re_embedded_memory_never_reuses_ids_and_keeps_its_deny_list() {
        let source = FeatureSource::Pixels;
        let fp = source.fingerprint();
        let mut m = Memory::new("other model", 3);
        for i in 0..3u8 {
            let img = image::RgbImage::from_pixel(4, 4, image::Rgb([i * 60, 10, 10]));
            m.add(
                "other model",
                "c",
                &format!("{i}.png"),
                100 + i as u64,
                super::super::import::thumbnail_png(&img, 4),
                vec![1.0, 0.0, 0.0],
            )
            .unwrap();
        }
        m.delete(2).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for cached in [false, true] {
            let mut out =
                reembed_memory_cached(&m, &source, &EmbeddingCache::new(dir.path()), |_| {})
                    .unwrap();
            assert_eq!(out.model_fingerprint(), fp);
            let dim = out.dim();
            assert!(out.is_denied(102), "cached: {cached}");
            let id = out
                .add(&fp, "c", "new.png", 7, vec![], vec![0.5; dim])
                .unwrap();
            assert_eq!(
                id, 3,
                "ids continue after the original's (cached: {cached})"
            );
        }
    }

    fn batch(b: usize) -> (Vec<ImportItem>, Vec<Skipped>) {
        let items = (0..5)
            .map(|i| ImportItem {
                label: format!("c{}", i % 2),
                source: format!("b{b}/i{i}.png"),
                content_hash: (b * 10 + i) as u64,
                image: image::RgbImage::from_fn(40 + i as u32, 30, |x, y| {
                    image::Rgb([(x * 5) as u8, (y * 7) as u8, (b * 40 + i) as u8])
                }),
            })
            .collect();
        (
            items,
            vec![Skipped {
                source: format!("b{b}/bad.jpg"),
                reason: "not an image".into(),
            }],
        )
    }

    #[test]
    fn added_files_keep_their_order_bad_ones_are_named_and_cancel_stops() {
        let png = |i: u8| {
            let mut out = Vec::new();
            image::RgbImage::from_pixel(20, 20, image::Rgb([i, 2 * i, 3]))
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
            out
        };
        let files: Vec<(String, Vec<u8>)> = (0..70u8)
            .map(|i| {
                if i % 23 == 5 {
                    (format!("bad{i}.png"), b"not a png".to_vec())
                } else {
                    (format!("ok{i}.png"), png(i))
                }
            })
            .collect();
        let (entries, skipped) = embed_images(
            &FeatureSource::Pixels,
            files.clone(),
            "mine",
            || false,
            |_, _| {},
        )
        .unwrap();
        let want: Vec<&str> = files
            .iter()
            .map(|f| f.0.as_str())
            .filter(|n| n.starts_with("ok"))
            .collect();
        assert_eq!(
            entries
                .iter()
                .map(|e| e.source.as_str())
                .collect::<Vec<_>>(),
            want
        );
        assert!(entries.iter().all(|e| e.label == "mine"));
        assert_eq!(skipped.len(), 3);
        for (s, name) in skipped.iter().zip(["bad5.png", "bad28.png", "bad51.png"]) {
            assert!(s.contains(name), "{s}");
        }
        let calls = std::cell::Cell::new(0);
        let cancel = || {
            calls.set(calls.get() + 1);
            calls.get() > 1
        };
        assert!(matches!(
            embed_images(&FeatureSource::Pixels, files, "mine", cancel, |_, _| {}),
            Err(Error::Cancelled)
        ));
    }

    #[test]
    fn the_pipeline_gives_the_serial_result_in_order_and_stops_on_an_error() {
        let micro = crate::model::VitConfig::preset("micro").unwrap();
        for source in [
            FeatureSource::Pixels,
            FeatureSource::random_like(&micro).unwrap(),
        ] {
            pipeline_equals_serial(&source);
        }
    }

    fn pipeline_equals_serial(source: &FeatureSource) {
        let mut got = Vec::new();
        let mut skipped = Vec::new();
        embed_pipelined(source, (0..4).map(batch), |entries, bad| {
            got.extend(entries);
            skipped.extend(bad);
            Ok(())
        })
        .unwrap();
        let want: Vec<ImportItem> = (0..4).flat_map(|b| batch(b).0).collect();
        assert_eq!(got.len(), want.len());
        let images: Vec<image::RgbImage> = want.iter().map(|i| i.image.clone()).collect();
        let (emb, dim) = source.embed_rgb(&images, |_| {}).unwrap();
        for ((g, w), e) in got.iter().zip(&want).zip(emb.chunks_exact(dim)) {
            assert_eq!(
                (&g.label, &g.source, g.content_hash),
                (&w.label, &w.source, w.content_hash)
            );
            assert_eq!(
                g.thumbnail,
                super::super::import::thumbnail_png(&w.image, THUMBNAIL_SIDE)
            );
            assert_eq!(g.embedding, e);
        }
        assert_eq!(
            skipped
                .iter()
                .map(|s| s.source.as_str())
                .collect::<Vec<_>>(),
            ["b0/bad.jpg", "b1/bad.jpg", "b2/bad.jpg", "b3/bad.jpg"]
        );

        // An error in the second batch is returned, and the producer (with 1,000 batches to go)
        // stops instead of blocking the caller.
        let mut calls = 0;
        let result = embed_pipelined(source, (0..1000).map(batch), |_, _| {
            calls += 1;
            if calls == 2 {
                Err(Error::Cancelled)
            } else {
                Ok(())
            }
        });
        assert!(
            matches!(result, Err(Error::Cancelled)),
            "{:?}",
            result.err()
        );
        assert_eq!(calls, 2);
    }
}
