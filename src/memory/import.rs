//! Bringing real images into a memory: an ImageFolder tree (one folder per class), a CSV of
//! `path,label`, IDX files (MNIST / Fashion-MNIST), MedMNIST `.npz`, or single files. Unreadable files are listed and skipped; one bad file never
//! aborts an import.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::generate::programs::fnv1a;

/// A decoded image ready to embed.
pub struct ImportItem {
    pub label: String,
    pub source: String,
    pub content_hash: u64,
    pub image: image::RgbImage,
}

/// A file that could not be imported, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "bmp" | "gif" | "webp"))
}

/// `(file, label)` for every image in `root/<label>/...` (sorted, so imports are repeatable).
pub fn list_image_folder(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut classes: Vec<PathBuf> =
        std::fs::read_dir(root).map_err(|e| Error::io(root, e))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::BadFile { path: root.into(), message: "no class folders: expected root/<label>/<image files>".into() });
    }
    for class in classes {
        let label = class.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut stack = vec![class];
        let mut files = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let p = entry.map_err(|e| Error::io(&dir, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if is_image(&p) {
                    files.push(p);
                }
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|f| (f, label.clone())));
    }
    Ok(out)
}

/// `(file, label)` from a CSV of `path,label` lines; relative paths are relative to the CSV. A
/// first line `path,label` is treated as a header. Malformed lines are reported as skipped.
pub fn list_csv(csv: &Path) -> Result<(Vec<(PathBuf, String)>, Vec<Skipped>)> {
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let base = csv.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.eq_ignore_ascii_case("path,label")) {
            continue;
        }
        match line.rsplit_once(',') {
            Some((path, label)) if !path.trim().is_empty() && !label.trim().is_empty() => {
                let p = Path::new(path.trim().trim_matches('"'));
                items.push((if p.is_absolute() { p.to_path_buf() } else { base.join(p) }, label.trim().trim_matches('"').to_string()));
            }
            _ => skipped
                .push(Skipped { source: format!("{}:{}", csv.display(), i + 1), reason: format!("expected `path,label`, got `{line}`") }),
        }
    }
    Ok((items, skipped))
}

/// Reads and decodes files in parallel; failures become [`Skipped`] entries.
pub fn load(files: &[(PathBuf, String)]) -> (Vec<ImportItem>, Vec<Skipped>) {
    let results: Vec<std::result::Result<ImportItem, Skipped>> = files
        .par_iter()
        .map(|(path, label)| {
            let source = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| Skipped { source: source.clone(), reason: e.to_string() })?;
            let image = image::load_from_memory(&bytes)
                .map_err(|e| Skipped { source: source.clone(), reason: format!("not a readable image: {e}") })?;
            Ok(ImportItem { label: label.clone(), source, content_hash: fnv1a(&bytes), image: image.to_rgb8() })
        })
        .collect();
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    for r in results {
        match r {
            Ok(i) => items.push(i),
            Err(s) => skipped.push(s),
        }
    }
    (items, skipped)
}

/// Every image of an IDX pair (MNIST / Fashion-MNIST layout). Labels are the class names given,
/// or the label numbers when none are.
pub fn load_idx(images: &Path, labels: &Path, class_names: &[&str]) -> Result<Vec<ImportItem>> {
    let set = crate::eval::datasets::read_idx(images, labels, class_names)?;
    let base = images.display().to_string();
    Ok(set
        .images
        .into_par_iter()
        .zip(set.labels.into_par_iter())
        .enumerate()
        .map(|(i, (img, label))| ImportItem {
            label: set.class_names.get(label as usize).cloned().unwrap_or_else(|| label.to_string()),
            source: format!("{base}#{i}"),
            content_hash: fnv1a(img.as_raw()),
            image: image::DynamicImage::ImageLuma8(img).to_rgb8(),
        })
        .collect())
}

/// One split (`train`, `val` or `test`) of a MedMNIST `.npz`: `<split>_images` (N×H×W or
/// N×H×W×3, uint8) and `<split>_labels` (N or N×1 integers; multi-label rows are refused).
pub fn load_npz(path: &Path, split: &str) -> Result<Vec<ImportItem>> {
    let bad = |m: String| Error::BadFile { path: path.into(), message: m };
    let arrays = super::npz::read_npz(path)?;
    let find = |name: String| {
        arrays.iter().find(|(n, _)| *n == name).map(|(_, a)| a).ok_or_else(|| {
            bad(format!("no `{name}` array (it has: {})", arrays.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")))
        })
    };
    let images = find(format!("{split}_images"))?;
    let labels = find(format!("{split}_labels"))?;
    if images.descr.trim_start_matches(['<', '|', '=']) != "u1" {
        return Err(bad(format!("{split}_images has dtype {}, expected uint8", images.descr)));
    }
    let (n, h, w, c) = match images.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, 3] => (n, h, w, 3),
        _ => return Err(bad(format!("{split}_images has shape {:?}, expected N×H×W or N×H×W×3", images.shape))),
    };
    let values = labels.to_i64().map_err(bad)?;
    if values.len() != n {
        return Err(bad(format!("{} labels for {n} images (multi-label sets are not supported)", values.len())));
    }
    let base = path.display().to_string();
    let px = h * w * c;
    Ok((0..n)
        .into_par_iter()
        .map(|i| {
            let raw = &images.data[i * px..(i + 1) * px];
            let image = if c == 1 {
                image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w as u32, h as u32, raw.to_vec()).expect("sized above"))
                    .to_rgb8()
            } else {
                image::RgbImage::from_raw(w as u32, h as u32, raw.to_vec()).expect("sized above")
            };
            ImportItem { label: values[i].to_string(), source: format!("{base}#{split}/{i}"), content_hash: fnv1a(raw), image }
        })
        .collect())
}

/// A small PNG of the image (longest side at most `size`) for the UI.
pub fn thumbnail_png(img: &image::RgbImage, size: u32) -> Vec<u8> {
    // Small images are kept as they are (never upscaled); gray ones are stored as gray.
    let thumb = if img.width() <= size && img.height() <= size { img.clone() } else { image::imageops::thumbnail(img, size, size) };
    if thumb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]) {
        let gray = image::GrayImage::from_fn(thumb.width(), thumb.height(), |x, y| image::Luma([thumb.get_pixel(x, y)[0]]));
        let mut out = Vec::new();
        let _ = image::DynamicImage::ImageLuma8(gray).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
        return out;
    }
    let mut out = Vec::new();
    let _ = image::DynamicImage::ImageRgb8(thumb).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_folder_and_csv_imports_skip_bad_files_and_keep_going() {
        let dir = tempfile::tempdir().unwrap();
        for (class, name, ok) in [("cat", "a.png", true), ("cat", "broken.png", false), ("dog", "b.png", true)] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            let path = dir.path().join(class).join(name);
            if ok {
                image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9])).save(&path).unwrap();
            } else {
                std::fs::write(&path, b"not a png").unwrap();
            }
        }
        let files = list_image_folder(dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let (items, skipped) = load(&files);
        assert_eq!(items.len(), 2);
        assert_eq!(items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>(), vec!["cat", "dog"]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].source.ends_with("broken.png") && skipped[0].reason.contains("not a readable image"));

        let csv = dir.path().join("list.csv");
        std::fs::write(&csv, "path,label\ncat/a.png,cat\nnonsense line\ndog/b.png,dog\nmissing.png,x\n").unwrap();
        let (files, bad_lines) = list_csv(&csv).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(bad_lines.len(), 1);
        let (items, skipped) = load(&files);
        assert_eq!(items.len(), 2);
        assert_eq!(skipped.len(), 1, "the missing file is listed");
        assert!(!thumbnail_png(&items[0].image, 48).is_empty());
    }
}
