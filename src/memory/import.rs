//! Bringing real images into a memory: an ImageFolder tree (one folder per class), a CSV of
//! `path,label`, IDX files (MNIST / Fashion-MNIST), MedMNIST `.npz`, or single files. Unreadable files are listed and skipped; one bad file never
//! aborts an import.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::hash::fnv1a;

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

/// Every visible file is offered to the decoder, which decides by content: a PNG without an
/// extension is imported, a text file is listed as skipped with its reason, none is silently left out.
fn is_candidate(p: &Path) -> bool {
    !p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// A class folder's name as a label, losslessly: a UTF-8 name without a backslash is kept as
/// it is; any other name is escaped (`\\` for a backslash, `\xNN` for each byte that is not
/// UTF-8). Two distinct folder names never become one label (`cls\xff` and `cls\xfe` stay two
/// classes, where a lossy conversion made both `cls�`).
pub(crate) fn label_from_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\\') => s.to_string(),
        _ => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    if c == '\\' {
                        out.push_str("\\\\");
                    } else {
                        out.push(c);
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// `(file, label)` for every image in `root/<label>/...` (sorted, so imports are repeatable).
pub fn list_image_folder(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut classes: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::BadFile {
            path: root.into(),
            message: "no class folders: expected root/<label>/<image files>".into(),
        });
    }
    for class in classes {
        let label = class.file_name().map(label_from_name).unwrap_or_default();
        let mut stack = vec![class];
        let mut files = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                let p = entry.map_err(|e| Error::io(&dir, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if is_candidate(&p) {
                    files.push(p);
                }
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|f| (f, label.clone())));
    }
    Ok(out)
}

/// Files and their labels, and the lines or files that were skipped.
pub type Listing = (Vec<(PathBuf, String)>, Vec<Skipped>);

/// `(file, label)` from a CSV of `path,label` lines; relative paths are relative to the CSV. A
/// first line `path,label` is treated as a header. Malformed lines are reported as skipped.
pub fn list_csv(csv: &Path) -> Result<Listing> {
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
                items.push((
                    if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        base.join(p)
                    },
                    label.trim().trim_matches('"').to_string(),
                ));
            }
            _ => skipped.push(Skipped {
                source: format!("{}:{}", csv.display(), i + 1),
                reason: format!("expected `path,label`, got `{line}`"),
            }),
        }
    }
    Ok((items, skipped))
}

/// The reason of a skip, without the path the skip already names.
fn reason(e: Error) -> String {
    match e {
        Error::BadFile { message, .. } => message,
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Reads and decodes files in parallel; failures become [`Skipped`] entries.
pub fn load(files: &[(PathBuf, String)]) -> (Vec<ImportItem>, Vec<Skipped>) {
    let results: Vec<std::result::Result<ImportItem, Skipped>> = files
        .par_iter()
        .map(|(path, label)| {
            let source = path.display().to_string();
            let skip = |e: Error| Skipped {
                source: source.clone(),
                reason: reason(e),
            };
            let bytes = crate::imageio::read_image_bytes(path).map_err(skip)?;
            let image = crate::imageio::decode_rgb(&bytes, path).map_err(skip)?;
            Ok(ImportItem {
                label: label.clone(),
                source,
                content_hash: fnv1a(&bytes),
                image,
            })
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
    let set = crate::datasets::read_idx(images, labels, class_names)?;
    let base = images.display().to_string();
    Ok(set
        .images
        .into_par_iter()
        .zip(set.labels.into_par_iter())
        .enumerate()
        .map(|(i, (img, label))| ImportItem {
            label: set
                .class_names
                .get(label as usize)
                .cloned()
                .unwrap_or_else(|| label.to_string()),
            source: format!("{base}#{i}"),
            content_hash: fnv1a(img.as_raw()),
            image: image::DynamicImage::ImageLuma8(img).to_rgb8(),
        })
        .collect())
}

/// One split (`train`, `val` or `test`) of a MedMNIST `.npz`: `<split>_images` (N×H×W or
/// N×H×W×3, uint8) and `<split>_labels` (N or N×1 integers; multi-label rows are refused).
pub fn load_npz(path: &Path, split: &str) -> Result<Vec<ImportItem>> {
    let bad = |m: String| Error::BadFile {
        path: path.into(),
        message: m,
    };
    let arrays = super::npz::read_npz(path)?;
    let find = |name: String| {
        arrays
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a)
            .ok_or_else(|| {
                bad(format!(
                    "no `{name}` array (it has: {})",
                    arrays
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    };
    let images = find(format!("{split}_images"))?;
    let labels = find(format!("{split}_labels"))?;
    if images.descr.trim_start_matches(['<', '|', '=']) != "u1" {
        return Err(bad(format!(
            "{split}_images has dtype {}, expected uint8",
            images.descr
        )));
    }
    let (n, h, w, c) = match images.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, 3] => (n, h, w, 3),
        _ => {
            return Err(bad(format!(
                "{split}_images has shape {:?}, expected N×H×W or N×H×W×3",
                images.shape
            )));
        }
    };
    let values = labels.to_i64().map_err(bad)?;
    if values.len() != n {
        return Err(bad(format!(
            "{} labels for {n} images (multi-label sets are not supported)",
            values.len()
        )));
    }
    let base = path.display().to_string();
    let px = h * w * c;
    Ok((0..n)
        .into_par_iter()
        .map(|i| {
            let raw = &images.data[i * px..(i + 1) * px];
            let image = if c == 1 {
                image::DynamicImage::ImageLuma8(
                    image::GrayImage::from_raw(w as u32, h as u32, raw.to_vec())
                        .expect("sized above"),
                )
                .to_rgb8()
            } else {
                image::RgbImage::from_raw(w as u32, h as u32, raw.to_vec()).expect("sized above")
            };
            ImportItem {
                label: values[i].to_string(),
                source: format!("{base}#{split}/{i}"),
                content_hash: fnv1a(raw),
                image,
            }
        })
        .collect())
}

/// Labelled images named by one path, the way every `--memory-data` / `--queries` argument
/// takes them. [`LabelledSource::from_path`] tells the kinds apart by content, not by extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelledSource {
    /// An ImageFolder tree: one sub-folder per class.
    Folder(PathBuf),
    /// A CSV of `path,label` lines ([`list_csv`]).
    Csv(PathBuf),
    /// An IDX image file (MNIST layout, optionally gzipped) and its label file.
    Idx { images: PathBuf, labels: PathBuf },
    /// One split of a MedMNIST `.npz` ([`load_npz`]).
    Npz { path: PathBuf, split: String },
}

/// The first 16 bytes of a file, through gzip when it is gzipped (IDX sets ship as `.gz`).
fn leading_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut inner = Vec::new();
        // A stream too short or corrupt to give its first bytes is simply not IDX.
        let _ = flate2::read::GzDecoder::new(f)
            .take(16)
            .read_to_end(&mut inner);
        return Ok(inner);
    }
    Ok(head)
}

impl LabelledSource {
    /// Recognises `path`:
    /// - a folder → [`LabelledSource::Folder`];
    /// - a ZIP archive (`.npz`) → [`LabelledSource::Npz`], split `train` unless the path ends in
    ///   `#val` / `#test` / `#train` (`pneumoniamnist.npz#test`);
    /// - an IDX image file (magic 0x803, gzipped or not) → [`LabelledSource::Idx`], its labels
    ///   the file of the same name with `images-idx3` replaced by `labels-idx1` (the MNIST and
    ///   Fashion-MNIST naming);
    /// - any other file → [`LabelledSource::Csv`].
    ///
    /// Memory files (`PMEM`) are not sources: callers that accept them check first; here they
    /// are refused, as is a single image file. Errors: those two, a missing file, an IDX file
    /// whose label file is not beside it.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(Self::Folder(path.into()));
        }
        let text = path.to_string_lossy();
        if let Some((file, split)) = text.rsplit_once('#')
            && !path.exists()
            && ["train", "val", "test"].contains(&split)
        {
            return Ok(Self::Npz {
                path: file.into(),
                split: split.into(),
            });
        }
        let head = leading_bytes(path)?;
        if head.starts_with(b"PK\x03\x04") {
            return Ok(Self::Npz {
                path: path.into(),
                split: "train".into(),
            });
        }
        let not_a_set = |what: &str| Error::BadFile {
            path: path.into(),
            message: format!(
                "{what}, not labelled images: {}",
                "give a class-per-folder tree, a CSV of path,label lines, an IDX image file or an .npz"
            ),
        };
        if head.starts_with(b"PMEM") {
            return Err(not_a_set("a memory file (evaluations take it as --memory)"));
        }
        if image::guess_format(&head).is_ok() {
            return Err(not_a_set("a single image"));
        }
        if head.starts_with(&[0, 0, 8, 3]) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let labels = path.with_file_name(name.replace("images-idx3", "labels-idx1"));
            if labels == path || !labels.is_file() {
                return Err(Error::BadFile {
                    path: path.into(),
                    message: format!(
                        "an IDX image file, but its label file {} is not beside it (name it like train-images-idx3-ubyte → train-labels-idx1-ubyte)",
                        labels.display()
                    ),
                });
            }
            return Ok(Self::Idx {
                images: path.into(),
                labels,
            });
        }
        Ok(Self::Csv(path.into()))
    }

    /// Every image and its label, decoded; files that cannot be read or decoded are
    /// [`Skipped`] with their reasons (a folder or CSV), never imported as blanks. Errors: the
    /// source itself unreadable or malformed (an IDX or npz whose sizes disagree, a missing
    /// folder).
    pub fn load(&self) -> Result<(Vec<ImportItem>, Vec<Skipped>)> {
        match self {
            Self::Folder(root) => Ok(load(&list_image_folder(root)?)),
            Self::Csv(csv) => {
                let (files, mut skipped) = list_csv(csv)?;
                let (items, bad) = load(&files);
                skipped.extend(bad);
                Ok((items, skipped))
            }
            Self::Idx { images, labels } => Ok((load_idx(images, labels, &[])?, Vec::new())),
            Self::Npz { path, split } => Ok((load_npz(path, split)?, Vec::new())),
        }
    }
}

/// A small PNG of the image (longest side at most `size`) for the UI.
pub fn thumbnail_png(img: &image::RgbImage, size: u32) -> Vec<u8> {
    // Small images are kept as they are (never upscaled); gray ones are stored as gray.
    let thumb = if img.width() <= size && img.height() <= size {
        img.clone()
    } else {
        image::imageops::thumbnail(img, size, size)
    };
    if thumb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]) {
        let gray = image::GrayImage::from_fn(thumb.width(), thumb.height(), |x, y| {
            image::Luma([thumb.get_pixel(x, y)[0]])
        });
        let mut out = Vec::new();
        let _ = image::DynamicImage::ImageLuma8(gray)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
        return out;
    }
    let mut out = Vec::new();
    let _ = image::DynamicImage::ImageRgb8(thumb)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_sources_are_told_apart_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // An IDX pair, gzipped images, plain labels: two 2×2 images of classes 0 and 1.
        let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        idx.extend_from_slice(&[0, 50, 100, 150, 200, 250, 10, 20]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &idx).unwrap();
        std::fs::write(d.join("t10k-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte.gz"),
            [0, 0, 8, 1, 0, 0, 0, 2, 0, 1],
        )
        .unwrap();
        let source = LabelledSource::from_path(&d.join("t10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!(
            source,
            LabelledSource::Idx {
                images: d.join("t10k-images-idx3-ubyte.gz"),
                labels: d.join("t10k-labels-idx1-ubyte.gz")
            }
        );
        let (items, skipped) = source.load().unwrap();
        assert_eq!((items.len(), skipped.len()), (2, 0));
        assert_eq!(
            (items[0].label.as_str(), items[1].label.as_str()),
            ("0", "1")
        );
        // An IDX image file without its label file is an error naming the missing file.
        std::fs::copy(
            d.join("t10k-images-idx3-ubyte.gz"),
            d.join("lonely-images-idx3-ubyte"),
        )
        .unwrap();
        let err = LabelledSource::from_path(&d.join("lonely-images-idx3-ubyte"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lonely-labels-idx1-ubyte"), "{err}");
        // A zip is an npz (split train unless `#split` follows the name); a folder an ImageFolder.
        let npz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.npz");
        assert_eq!(
            LabelledSource::from_path(&npz).unwrap(),
            LabelledSource::Npz {
                path: npz.clone(),
                split: "train".into()
            }
        );
        let with_split = PathBuf::from(format!("{}#test", npz.display()));
        assert_eq!(
            LabelledSource::from_path(&with_split).unwrap(),
            LabelledSource::Npz {
                path: npz,
                split: "test".into()
            }
        );
        assert_eq!(
            LabelledSource::from_path(d).unwrap(),
            LabelledSource::Folder(d.into())
        );
        // Anything else is a CSV; its bad lines and unreadable files are skipped with reasons.
        image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]))
            .save(d.join("a.png"))
            .unwrap();
        std::fs::write(d.join("not-an-image.png"), b"hello").unwrap();
        std::fs::write(
            d.join("list.txt"),
            "path,label\na.png,grey\nnot-an-image.png,grey\nno comma here\n",
        )
        .unwrap();
        let source = LabelledSource::from_path(&d.join("list.txt")).unwrap();
        assert_eq!(source, LabelledSource::Csv(d.join("list.txt")));
        let (items, skipped) = source.load().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(LabelledSource::from_path(&d.join("missing.csv")).is_err());
        // A single image and a memory file are refused by name, not read as a broken CSV.
        let err = LabelledSource::from_path(&d.join("a.png"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a single image") && err.contains("a.png"),
            "{err}"
        );
        std::fs::write(d.join("m.pmem"), b"PMEM\x01\x00\x00\x00").unwrap();
        let err = LabelledSource::from_path(&d.join("m.pmem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a memory file"), "{err}");
    }

    #[test]
    fn folder_names_become_distinct_labels_losslessly() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let names: Vec<&OsStr> = vec![
            OsStr::from_bytes(b"cls\xff"),
            OsStr::from_bytes(b"cls\xfe"),
            OsStr::new("caf\u{e9}"),
            OsStr::new("cafe\u{301}"),
            OsStr::new("cls\\xff"),
            OsStr::new("shoes"),
        ];
        let labels: Vec<String> = names.iter().map(|n| label_from_name(n)).collect();
        assert_eq!(labels[0], "cls\\xff");
        assert_eq!(labels[5], "shoes");
        let unique: std::collections::HashSet<&String> = labels.iter().collect();
        assert_eq!(unique.len(), names.len(), "{labels:?}");
    }

    #[test]
    fn every_file_of_a_mixed_folder_is_imported_or_skipped_with_its_reason() {
        // bugcase 07's kind: other formats decode, broken files are named with a reason, a file
        // without an extension is decoded by content, nothing is silently left out.
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("mixed");
        std::fs::create_dir_all(&class).unwrap();
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([(x * 10) as u8, (y * 15) as u8, 77])
        }));
        let encode = |format: image::ImageFormat| {
            let mut out = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut out), format)
                .unwrap();
            out
        };
        let png = encode(image::ImageFormat::Png);
        let jpg = encode(image::ImageFormat::Jpeg);
        let files: Vec<(&str, Vec<u8>, bool)> = vec![
            ("a_ok.png", png.clone(), true),
            ("b.gif", encode(image::ImageFormat::Gif), true),
            ("c.bmp", encode(image::ImageFormat::Bmp), true),
            ("d.webp", encode(image::ImageFormat::WebP), true),
            ("e.tiff", encode(image::ImageFormat::Tiff), true),
            ("f_zero_bytes.png", Vec::new(), false),
            ("g_truncated.png", png[..png.len() * 6 / 10].to_vec(), false),
            ("h_truncated.jpg", jpg[..jpg.len() / 2].to_vec(), false),
            ("i_upper.PNG", png.clone(), true),
            ("j_no_extension", png.clone(), true),
            ("k_notes.txt", b"not an image".to_vec(), false),
        ];
        for (name, bytes, _) in &files {
            std::fs::write(class.join(name), bytes).unwrap();
        }
        let listed = list_image_folder(dir.path()).unwrap();
        assert_eq!(
            listed.len(),
            files.len(),
            "every file is offered to the decoder"
        );
        let (items, skipped) = load(&listed);
        let imported: Vec<String> = items
            .iter()
            .map(|i| {
                Path::new(&i.source)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let want: Vec<&str> = files.iter().filter(|f| f.2).map(|f| f.0).collect();
        assert_eq!(imported, want);
        for (name, _, ok) in &files {
            if !ok {
                let s = skipped
                    .iter()
                    .find(|s| s.source.ends_with(name))
                    .unwrap_or_else(|| panic!("{name} is not listed: {skipped:?}"));
                assert!(
                    s.reason.contains("not a readable image"),
                    "{name}: {}",
                    s.reason
                );
            }
        }
        assert_eq!(items.len() + skipped.len(), files.len());
    }

    #[test]
    fn image_folder_and_csv_imports_skip_bad_files_and_keep_going() {
        let dir = tempfile::tempdir().unwrap();
        for (class, name, ok) in [
            ("cat", "a.png", true),
            ("cat", "broken.png", false),
            ("dog", "b.png", true),
        ] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            let path = dir.path().join(class).join(name);
            if ok {
                image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]))
                    .save(&path)
                    .unwrap();
            } else {
                std::fs::write(&path, b"not a png").unwrap();
            }
        }
        let files = list_image_folder(dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let (items, skipped) = load(&files);
        assert_eq!(items.len(), 2);
        assert_eq!(
            items.iter().map(|i| i.label.as_str()).collect::<Vec<_>>(),
            vec!["cat", "dog"]
        );
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].source.ends_with("broken.png")
                && skipped[0].reason.contains("not a readable image")
        );

        let csv = dir.path().join("list.csv");
        std::fs::write(
            &csv,
            "path,label\ncat/a.png,cat\nnonsense line\ndog/b.png,dog\nmissing.png,x\n",
        )
        .unwrap();
        let (files, bad_lines) = list_csv(&csv).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(bad_lines.len(), 1);
        let (items, skipped) = load(&files);
        assert_eq!(items.len(), 2);
        assert_eq!(skipped.len(), 1, "the missing file is listed");
        assert!(!thumbnail_png(&items[0].image, 48).is_empty());
    }
}
