//! The one image loader. Every entry point that reads an image a user gives — memory import,
//! `memory query`, drag-and-drop and dialogs in the app, dense commands, evaluation sets, training
//! folders — decodes it here, so the same bytes give the same pixels everywhere:
//!
//! 1. **Limits before allocation**: the file is at most [`MAX_FILE_BYTES`]; the decoder reads the
//!    header's dimensions and refuses sides over [`MAX_SIDE`] or more than [`MAX_PIXELS`] pixels
//!    before any pixel buffer exists (a 200-byte PNG declaring 100,000² pixels, or a
//!    10,000,000×1 strip, is an error, not an allocation).
//! 2. **Format by content**, never by extension: a PNG named `.jpg` or without an extension
//!    decodes as the PNG it is (image-rs/image#1318).
//! 3. **EXIF orientation applied** (JPEG, WebP, TIFF), so a phone photo is embedded upright, as
//!    every viewer shows it (emilk/egui#8239).
//! 4. **Alpha composited onto white**, the one documented way ([`flatten_on_white`]): colour
//!    hidden under fully transparent pixels never reaches an embedding.
//! 5. **Truncated files are errors**: decoders report truncated PNG/GIF/WebP data; a JPEG with
//!    no end-of-image marker after its last scan is refused, since JPEG decoders fill missing
//!    data with grey instead of failing (etemesi254/zune-image#312).
//! 6. Animated GIF/WebP: the first frame.
//!
//! Formats: PNG, JPEG, GIF, BMP, WebP, TIFF ([`EXTENSIONS`], what dialogs and folder imports
//! offer).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest image file read, in bytes (256 MiB).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Longest image side, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest image, in pixels (64 megapixels: a 16-bit RGBA buffer of it is 512 MiB).
pub const MAX_PIXELS: u64 = 64_000_000;
/// Largest buffer a decoder may allocate, in bytes (1 GiB).
pub const MAX_DECODER_ALLOC: u64 = 1 << 30;

/// File extensions of the formats this loader decodes (lower case); folder imports and file
/// dialogs use this list. Decoding itself ignores the extension.
pub const EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"];

/// True when `path`'s extension (any case) is one of [`EXTENSIONS`].
pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads a file's bytes, refusing files over [`MAX_FILE_BYTES`] before reading them.
pub(crate) fn read_image_bytes(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(bad(
            path,
            format!(
                "{} bytes, over the {} MiB limit for an image file",
                meta.len(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Decodes an image file (see the module docs), orientation applied, alpha kept.
pub fn load(path: &Path) -> Result<DynamicImage> {
    decode(&read_image_bytes(path)?, path)
}

/// Decodes an image file to RGB: orientation applied, alpha composited onto white.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    load(path).map(flatten_on_white)
}

/// [`load_rgb`] for bytes already in memory (drag-and-drop); `name` names them in errors.
pub fn decode_rgb(bytes: &[u8], name: &Path) -> Result<RgbImage> {
    decode(bytes, name).map(flatten_on_white)
}

/// Decodes `bytes` by content with the limits of the module docs and applies the EXIF
/// orientation; `name` names the image in errors.
pub(crate) fn decode(bytes: &[u8], name: &Path) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(bad(
            name,
            "not a readable image: empty file (0 bytes)".into(),
        ));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(
            name,
            format!(
                "{} bytes, over the {} MiB limit for an image file",
                bytes.len(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(name, e))?;
    let Some(format) = reader.format() else {
        return Err(bad(
            name,
            "not a readable image: its content is none of PNG, JPEG, GIF, BMP, WebP or TIFF".into(),
        ));
    };
    if format == image::ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        return Err(bad(
            name,
            "not a readable image: truncated JPEG (no end-of-image marker after the last scan)"
                .into(),
        ));
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(name, format, e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(bad(
            name,
            format!("{w}×{h} pixels: an image needs at least one pixel"),
        ));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(bad(
            name,
            format!(
                "{w}×{h} pixels, over the limit of {} megapixels",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(name, format, e))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// RGB with any alpha composited onto white: c' = round((c·a + 255·(255 − a)) / 255) per
/// channel. Images without alpha are only converted.
pub(crate) fn flatten_on_white(img: DynamicImage) -> RgbImage {
    if img.color().has_alpha() {
        on_white(&img.to_rgba8())
    } else {
        img.to_rgb8()
    }
}

/// Composites an RGBA image onto white (the formula of [`flatten_on_white`]).
pub(crate) fn on_white(img: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        let a = p[3] as u32;
        image::Rgb([0, 1, 2].map(|c| ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8))
    })
}

/// A JPEG is whole when an end-of-image marker (FF D9) follows its last start-of-scan (FF DA).
/// (An EXIF thumbnail's own markers sit before the main image's scans.)
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(s) => bytes[s..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

fn bad(path: &Path, message: String) -> Error {
    Error::BadFile {
        path: path.into(),
        message,
    }
}

fn decode_error(path: &Path, format: image::ImageFormat, e: image::ImageError) -> Error {
    let what = match &e {
        image::ImageError::Limits(_) => "over the decoder's limits",
        image::ImageError::Unsupported(_) => "unsupported",
        _ => "not decodable (corrupt or truncated)",
    };
    bad(
        path,
        format!("not a readable image: {format:?} {what}: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    fn jpeg(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 90])
        })
    }

    #[test]
    fn decodes_by_content_whatever_the_name() {
        let img = DynamicImage::ImageRgb8(gradient(9, 7));
        let bytes = png(&img);
        for name in ["a.png", "a.jpg", "no_extension", "A.PNG"] {
            assert_eq!(
                decode_rgb(&bytes, Path::new(name)).unwrap(),
                img.to_rgb8(),
                "{name}"
            );
        }
    }

    #[test]
    fn hidden_colour_under_transparency_never_matters() {
        let disc = |hidden: [u8; 3]| {
            image::RgbaImage::from_fn(16, 16, |x, y| {
                let inside = (x as i32 - 8).pow(2) + (y as i32 - 8).pow(2) < 25;
                if inside {
                    image::Rgba([240, 120, 20, 255])
                } else {
                    image::Rgba([hidden[0], hidden[1], hidden[2], 0])
                }
            })
        };
        let black = decode_rgb(
            &png(&DynamicImage::ImageRgba8(disc([0, 0, 0]))),
            Path::new("b.png"),
        )
        .unwrap();
        let green = decode_rgb(
            &png(&DynamicImage::ImageRgba8(disc([0, 255, 0]))),
            Path::new("g.png"),
        )
        .unwrap();
        assert_eq!(black, green);
        assert_eq!(
            black.get_pixel(0, 0).0,
            [255, 255, 255],
            "transparent is white"
        );
        // Grey + alpha too.
        let ga = |hidden: u8| {
            DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_fn(8, 8, |x, _| {
                image::LumaA(if x < 4 { [hidden, 0] } else { [30, 255] })
            }))
        };
        assert_eq!(
            decode_rgb(&png(&ga(0)), Path::new("a")).unwrap(),
            decode_rgb(&png(&ga(255)), Path::new("b")).unwrap()
        );
    }

    #[test]
    fn truncated_and_empty_files_are_errors_naming_the_file() {
        let jpg = jpeg(&gradient(64, 48));
        let whole = decode_rgb(&jpg, Path::new("whole.jpg"));
        assert!(whole.is_ok(), "{whole:?}");
        let err = decode_rgb(&jpg[..jpg.len() / 2], Path::new("half.jpg"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("half.jpg") && err.contains("truncated"),
            "{err}"
        );
        let p = png(&DynamicImage::ImageRgb8(gradient(64, 48)));
        let err = decode_rgb(&p[..p.len() * 6 / 10], Path::new("cut.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.png"), "{err}");
        assert!(
            decode_rgb(&[], Path::new("zero.png"))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(
            decode_rgb(b"hello, not an image", Path::new("t.png"))
                .unwrap_err()
                .to_string()
                .contains("not a readable image")
        );
    }

    /// A PNG whose IHDR declares `w`×`h` (valid CRCs) and that holds no pixel data.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        // An empty IDAT, so that the decoder reads the header through to the image data.
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(b"IDAT");
        out.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn dimension_bombs_are_refused_before_allocation() {
        for (w, h) in [(100_000, 100_000), (10_000_000, 1), (16_000, 16_000)] {
            let err = decode_rgb(&png_header_only(w, h), Path::new("bomb.png"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("bomb.png") && (err.contains("limit") || err.contains("megapixels")),
                "{w}×{h}: {err}"
            );
        }
    }
}
