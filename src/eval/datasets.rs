//! Labelled image sets read from offline files: IDX (MNIST / Fashion-MNIST, optionally gzipped).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Grayscale images with labels.
pub struct LabelledImages {
    pub images: Vec<image::GrayImage>,
    pub labels: Vec<u32>,
    pub class_names: Vec<String>,
}

pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::BadFile { path: path.into(), message: format!("bad gzip data: {e}") })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads an IDX image file (magic 0x00000803) and its label file (0x00000801).
pub fn read_idx(images: &Path, labels: &Path, class_names: &[&str]) -> Result<LabelledImages> {
    let bad = |p: &Path, m: String| Error::BadFile { path: p.into(), message: m };
    let ib = read_maybe_gz(images)?;
    let lb = read_maybe_gz(labels)?;
    if ib.len() < 16 || be_u32(&ib, 0) != 0x803 {
        return Err(bad(images, "not an IDX image file (magic 0x803)".into()));
    }
    if lb.len() < 8 || be_u32(&lb, 0) != 0x801 {
        return Err(bad(labels, "not an IDX label file (magic 0x801)".into()));
    }
    let (n, rows, cols) = (be_u32(&ib, 4) as usize, be_u32(&ib, 8) as usize, be_u32(&ib, 12) as usize);
    if ib.len() != 16 + n * rows * cols {
        return Err(bad(images, format!("expected {} bytes for {n} images of {rows}x{cols}, found {}", 16 + n * rows * cols, ib.len())));
    }
    let nl = be_u32(&lb, 4) as usize;
    if nl != n || lb.len() != 8 + n {
        return Err(bad(labels, format!("{nl} labels for {n} images")));
    }
    let images = (0..n)
        .map(|i| {
            let px = ib[16 + i * rows * cols..16 + (i + 1) * rows * cols].to_vec();
            image::GrayImage::from_raw(cols as u32, rows as u32, px).expect("size checked")
        })
        .collect();
    let labels: Vec<u32> = lb[8..].iter().map(|&l| l as u32).collect();
    let max = labels.iter().copied().max().unwrap_or(0) as usize;
    let class_names = (0..=max).map(|c| class_names.get(c).map_or(c.to_string(), |s| s.to_string())).collect();
    Ok(LabelledImages { images, labels, class_names })
}

/// Fashion-MNIST's (train, test) from a folder written by `scripts/fetch-eval-data.sh`.
pub fn fashion_mnist(dir: &Path) -> Result<(LabelledImages, LabelledImages)> {
    let f = |n: &str| dir.join(n);
    if !f("train-images-idx3-ubyte.gz").exists() {
        return Err(Error::BadFile { path: dir.into(), message: "no Fashion-MNIST here: run scripts/fetch-eval-data.sh".into() });
    }
    Ok((
        read_idx(&f("train-images-idx3-ubyte.gz"), &f("train-labels-idx1-ubyte.gz"), &FASHION_MNIST_CLASSES)?,
        read_idx(&f("t10k-images-idx3-ubyte.gz"), &f("t10k-labels-idx1-ubyte.gz"), &FASHION_MNIST_CLASSES)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_images(n: u32, r: u32, c: u32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, 3];
        for x in [n, r, c] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_idx_and_rejects_truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
        std::fs::write(&ip, idx_images(2, 1, 2, &[1, 2, 3, 4])).unwrap();
        std::fs::write(&lp, [0, 0, 8, 1, 0, 0, 0, 2, 7, 1]).unwrap();
        let set = read_idx(&ip, &lp, &FASHION_MNIST_CLASSES).unwrap();
        assert_eq!(set.images[1].as_raw(), &vec![3, 4]);
        assert_eq!(set.labels, vec![7, 1]);
        assert_eq!(set.class_names[7], "Sneaker");
        std::fs::write(&ip, idx_images(2, 1, 2, &[1, 2, 3])).unwrap();
        let err = read_idx(&ip, &lp, &[]).err().unwrap().to_string();
        assert!(err.contains("expected 20 bytes"), "{err}");
    }
}
