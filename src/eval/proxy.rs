//! The proxy protocol: a kNN measurement of a model in seconds, on Fashion-MNIST's *validation*
//! split, for comparing models while choosing a recipe; the full protocols
//! (`procmem eval knn`, docs/protocols.md §5) report the test set once per final model.
//!
//! The training set is split as the study in docs/training.md does: its first five sixths
//! (50,000 of 60,000 images) hold the memory, its last sixth (10,000) the queries; the test set
//! is never used (it is decoded with the training set by [`datasets::fashion_mnist`], not
//! embedded). The memory is [`MEMORY`] images and the queries [`QUERIES`], evenly spaced in
//! their part (fewer when the part is smaller); k = [`K`] with DINO's vote. For the bundled model
//! that is 6,000 embeddings, about 15 s on 2 cores.

use std::path::Path;

use crate::datasets;
use crate::embed::FeatureSource;
use crate::error::{Error, Result};
use crate::eval::knn;
use crate::memory::{ExactIndex, VoteRule};

/// The `dataset` name of a proxy result in a results file.
pub const DATASET: &str = "fashion-mnist-val-proxy";
/// Memory images, at most.
pub const MEMORY: usize = 5_000;
/// Query images, at most.
pub const QUERIES: usize = 1_000;
/// Neighbours that vote.
pub const K: usize = 10;

/// `n` indices evenly spaced over `start..end` (all of them when the range is shorter).
fn spread(start: usize, end: usize, n: usize) -> Vec<usize> {
    let len = end - start;
    let n = n.min(len);
    (0..n).map(|i| start + i * len / n).collect()
}

/// kNN top-1 (0–1) of `source` on the proxy split of the Fashion-MNIST folder `dir` (the one
/// `scripts/fetch-eval-data.sh` writes). `progress(fraction)` follows the embedding;
/// `cancelled()` is asked between the memory and the queries ([`Error::Cancelled`]).
/// Errors: the folder holds no readable Fashion-MNIST, or fewer than 12 training images.
pub fn fashion_mnist_val(
    source: &FeatureSource,
    dir: &Path,
    mut progress: impl FnMut(f32),
    cancelled: impl Fn() -> bool,
) -> Result<f64> {
    let (train, _test) = datasets::fashion_mnist(dir)?;
    let n = train.images.len();
    if n < 12 {
        return Err(Error::BadFile {
            path: dir.to_path_buf(),
            message: format!("{n} training images; the proxy split needs at least 12"),
        });
    }
    let split = n - n / 6;
    let memory = spread(0, split, MEMORY);
    let queries = spread(split, n, QUERIES);
    let total = (memory.len() + queries.len()) as f32;
    let images = |ids: &[usize]| -> Vec<image::GrayImage> {
        ids.iter().map(|&i| train.images[i].clone()).collect()
    };
    let labels = |ids: &[usize]| -> Vec<u32> { ids.iter().map(|&i| train.labels[i]).collect() };
    let (memory_values, dim) =
        source.embed_gray(&images(&memory), |d| progress(d as f32 / total))?;
    if cancelled() {
        return Err(Error::Cancelled);
    }
    let (query_values, _) = source.embed_gray(&images(&queries), |d| {
        progress((memory.len() + d) as f32 / total)
    })?;
    let index = ExactIndex::from_embeddings(
        dim,
        train.class_names.clone(),
        labels(&memory),
        memory_values,
    );
    let report = knn::evaluate(
        "proxy",
        &index,
        &query_values,
        &labels(&queries),
        &[K],
        VoteRule::default(),
    );
    Ok(report.best_top1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a small Fashion-MNIST-shaped folder: `n` training (and 10 test) 28×28 images
    /// whose class is their brightness band, so raw pixels classify them perfectly.
    pub(crate) fn write_fake_fashion_mnist(dir: &Path, n: usize) {
        use std::io::Write;
        let write_gz = |name: &str, bytes: &[u8]| {
            let f = std::fs::File::create(dir.join(name)).unwrap();
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            gz.write_all(bytes).unwrap();
            gz.finish().unwrap();
        };
        for (prefix, count) in [("train", n), ("t10k", 10)] {
            let mut images = vec![0, 0, 8, 3];
            images.extend((count as u32).to_be_bytes());
            images.extend(28u32.to_be_bytes());
            images.extend(28u32.to_be_bytes());
            let mut labels = vec![0, 0, 8, 1];
            labels.extend((count as u32).to_be_bytes());
            for i in 0..count {
                let class = (i % 3) as u8;
                // Class c lights the c-th third of the rows.
                images.extend((0..28 * 28).map(|p| {
                    if p / 28 / 10 == class as usize {
                        200 + (i % 7) as u8
                    } else {
                        (i % 5) as u8
                    }
                }));
                labels.push(class);
            }
            write_gz(&format!("{prefix}-images-idx3-ubyte.gz"), &images);
            write_gz(&format!("{prefix}-labels-idx1-ubyte.gz"), &labels);
        }
    }

    #[test]
    fn the_proxy_reads_only_the_training_set_and_measures_knn() {
        let dir = tempfile::tempdir().unwrap();
        write_fake_fashion_mnist(dir.path(), 120);
        let mut seen = Vec::new();
        let top1 = fashion_mnist_val(
            &FeatureSource::Pixels,
            dir.path(),
            |f| seen.push(f),
            || false,
        )
        .unwrap();
        assert_eq!(top1, 1.0);
        assert_eq!(seen.last().copied(), Some(1.0));
        // Queries come from the last sixth of the training set, the memory from the rest.
        assert_eq!(spread(100, 120, QUERIES), (100..120).collect::<Vec<_>>());
        assert_eq!(spread(0, 50_000, MEMORY)[1], 10);
        // Cancelled between the parts; a missing folder is a clear error naming it.
        let cancelled = fashion_mnist_val(&FeatureSource::Pixels, dir.path(), |_| {}, || true);
        assert!(matches!(cancelled, Err(Error::Cancelled)));
        let missing = dir.path().join("nothing-here");
        let err = fashion_mnist_val(&FeatureSource::Pixels, &missing, |_| {}, || false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nothing-here") && err.contains("fetch-eval-data"),
            "{err}"
        );
    }
}
