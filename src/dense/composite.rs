//! A segmentation set with exact masks, made offline: objects with alpha channels (emoji PNGs
//! from the npm `emoji-datasource-*` packages) pasted at random positions and scales onto
//! procedural backgrounds (procmem's synthesized shader programs, evaluated on the CPU), several
//! per image. Beside each `NNNNN.png` lies `NNNNN.mask.png`: one byte per pixel, the class id
//! (0 = background, then the emoji categories, later objects painted over earlier ones as COCO
//! annotations are). `composite.json` records the config, the classes, the source and every
//! placed object, so a set is reproducible from its seed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generate::synth::SynthProgram;
use crate::rng::{Rng, derive};
use rayon::prelude::*;

/// How a composite set is made. Defaults suit the CPU models (128² → a 16×16 patch grid).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompositeConfig {
    /// Images to make (default 200). `eval seg` uses the first half as kNN memory and prompts,
    /// the second half as queries.
    pub count: usize,
    /// Image side in pixels (default 128).
    pub size: u32,
    /// Objects per image, at least (default 1).
    pub min_objects: usize,
    /// Objects per image, at most (default 3).
    pub max_objects: usize,
    /// Object side as a fraction of the image side, smallest (default 0.3).
    pub min_scale: f32,
    /// Object side as a fraction of the image side, largest (default 0.6).
    pub max_scale: f32,
    /// Seed of backgrounds, object choice and placement (default 0).
    pub seed: u64,
}

impl Default for CompositeConfig {
    fn default() -> Self {
        Self {
            count: 200,
            size: 128,
            min_objects: 1,
            max_objects: 3,
            min_scale: 0.3,
            max_scale: 0.6,
            seed: 0,
        }
    }
}

impl CompositeConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if self.count == 0 || self.size < 16 {
            return bad("a composite set needs at least one image of at least 16 pixels");
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects {
            return bad("objects per image: need 1 ≤ min_objects ≤ max_objects");
        }
        if !(0.0 < self.min_scale && self.min_scale <= self.max_scale && self.max_scale <= 1.0) {
            return bad("object scale: need 0 < min_scale ≤ max_scale ≤ 1");
        }
        Ok(())
    }
}

pub use crate::datasets::{ObjectImage, load_emoji};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlacedObject {
    pub name: String,
    pub class: u32,
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CompositeItem {
    pub image: String,
    pub mask: String,
    /// Seed of the synthesized background program.
    pub background: u64,
    pub objects: Vec<PlacedObject>,
}

/// `composite.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CompositeManifest {
    pub version: u32,
    pub config: CompositeConfig,
    /// Class names by id; 0 is "background".
    pub classes: Vec<String>,
    /// Where the objects came from.
    pub source: String,
    pub items: Vec<CompositeItem>,
}

const MANIFEST: &str = "composite.json";

/// A procedural background: a synthesized program evaluated on the CPU.
pub fn background(seed: u64, size: u32) -> image::RgbImage {
    let program = SynthProgram::generate(seed);
    image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb(program.eval_pixel(x, y, size, 0.0))
    })
}

/// Objects per class of the procedural sets `procmem data composite --procedural-classes` and the
/// attention calibration make.
pub const PROCEDURAL_OBJECTS_PER_CLASS: usize = 8;

/// Side in pixels of those objects (resampled to 30–60 % of the image side when pasted).
pub const PROCEDURAL_OBJECT_SIDE: u32 = 96;

/// Procedural objects, no real image involved: `classes` classes of `per_class` objects of
/// `side`² pixels. A class is one synthesized program (its texture); each object is that program
/// seen through its own window (offset and zoom) inside a blob of its own shape, a radius
/// r(θ) = R·(1 + Σₖ aₖ cos(kθ + φₖ)), k = 2…4, with a one-pixel soft edge. Composites of them on
/// procedural backgrounds are an in-context segmentation task (same texture, new shape, place and
/// scale) that a perception model can be calibrated on without seeing a real image.
pub fn procedural_objects(
    classes: usize,
    per_class: usize,
    side: u32,
    seed: u64,
) -> Vec<ObjectImage> {
    let mut objects = Vec::with_capacity(classes * per_class);
    for class in 0..classes {
        let program = SynthProgram::generate(derive(seed, 2_000_000 + class as u64));
        for j in 0..per_class {
            let mut rng = Rng::for_sample(derive(seed, 3_000_000 + class as u64), j as u64);
            // The program's window: a zoom of 1–2 and an offset inside the zoomed canvas.
            let zoomed = (side as f32 * rng.range_f32(1.0, 2.0)).round() as u32;
            let (ox, oy) = (
                rng.below((zoomed - side + 1) as usize) as u32,
                rng.below((zoomed - side + 1) as usize) as u32,
            );
            let harmonics: Vec<(f32, f32)> = (0..3)
                .map(|_| {
                    (
                        rng.range_f32(0.0, 0.18),
                        rng.range_f32(0.0, std::f32::consts::TAU),
                    )
                })
                .collect();
            let radius = 0.5 * side as f32 / 1.6;
            let centre = 0.5 * side as f32;
            let rgba = image::RgbaImage::from_fn(side, side, |x, y| {
                let (dx, dy) = (x as f32 + 0.5 - centre, y as f32 + 0.5 - centre);
                let theta = dy.atan2(dx);
                let r = radius
                    * (1.0
                        + harmonics
                            .iter()
                            .enumerate()
                            .map(|(k, &(a, phase))| a * ((k + 2) as f32 * theta + phase).cos())
                            .sum::<f32>());
                let alpha = (r - (dx * dx + dy * dy).sqrt() + 0.5).clamp(0.0, 1.0);
                let [red, green, blue] = program.eval_pixel(x + ox, y + oy, zoomed, 0.0);
                image::Rgba([red, green, blue, (alpha * 255.0).round() as u8])
            });
            objects.push(ObjectImage {
                name: format!("program {class} window {j}"),
                class: format!("program {class}"),
                rgba,
            });
        }
    }
    objects
}

/// Pastes `object` with its alpha at (x, y), scaled to `size`; paints `class` where alpha ≥ ½.
fn paste(
    img: &mut image::RgbImage,
    labels: &mut [u8],
    object: &image::RgbaImage,
    x: u32,
    y: u32,
    size: u32,
    class: u8,
) {
    // Resample with premultiplied alpha, so transparent pixels' colour never bleeds into edges.
    let premultiplied = image::Rgba32FImage::from_fn(object.width(), object.height(), |x, y| {
        let p = object.get_pixel(x, y).0.map(|v| v as f32 / 255.0);
        image::Rgba([p[0] * p[3], p[1] * p[3], p[2] * p[3], p[3]])
    });
    let scaled = image::imageops::resize(
        &premultiplied,
        size,
        size,
        image::imageops::FilterType::CatmullRom,
    );
    let width = img.width();
    for (ox, oy, px) in scaled.enumerate_pixels() {
        let (tx, ty) = (x + ox, y + oy);
        if tx >= width || ty >= img.height() {
            continue;
        }
        let a = px.0[3].clamp(0.0, 1.0);
        if a <= 0.0 {
            continue;
        }
        let dst = img.get_pixel_mut(tx, ty);
        for k in 0..3 {
            let over = px.0[k].clamp(0.0, 1.0) * 255.0 + (1.0 - a) * dst.0[k] as f32;
            dst.0[k] = over.round().clamp(0.0, 255.0) as u8;
        }
        if a >= 0.5 {
            labels[(ty * width + tx) as usize] = class;
        }
    }
}

/// The classes of `objects` in first-seen order after "background", and the objects of each.
fn classes_of(objects: &[ObjectImage]) -> Result<(Vec<String>, Vec<Vec<&ObjectImage>>)> {
    let mut classes: Vec<String> = vec!["background".into()];
    for o in objects {
        if !classes.contains(&o.class) {
            classes.push(o.class.clone());
        }
    }
    if classes.len() > 255 {
        return Err(Error::InvalidConfig(
            "more than 255 object classes do not fit a byte mask".into(),
        ));
    }
    let by_class: Vec<Vec<&ObjectImage>> = classes[1..]
        .iter()
        .map(|c| objects.iter().filter(|o| &o.class == c).collect())
        .collect();
    if by_class.is_empty() {
        return Err(Error::InvalidConfig("no objects to paste".into()));
    }
    Ok((classes, by_class))
}

/// Image `i` of the set `cfg` describes: the image, its class-id mask (one byte per pixel), the
/// background's seed and the placed objects.
fn compose(
    cfg: &CompositeConfig,
    by_class: &[Vec<&ObjectImage>],
    i: usize,
) -> (image::RgbImage, Vec<u8>, u64, Vec<PlacedObject>) {
    let mut rng = Rng::for_sample(cfg.seed, i as u64);
    let bg_seed = derive(cfg.seed, 1_000_000 + i as u64);
    let mut img = background(bg_seed, cfg.size);
    let mut labels = vec![0u8; (cfg.size * cfg.size) as usize];
    let n = cfg.min_objects + rng.below(cfg.max_objects - cfg.min_objects + 1);
    let mut placed = Vec::with_capacity(n);
    for _ in 0..n {
        // A class first, then one of its objects: classes stay balanced.
        let class = rng.below(by_class.len());
        let object = by_class[class][rng.below(by_class[class].len())];
        let size = ((rng.range_f32(cfg.min_scale, cfg.max_scale) * cfg.size as f32).round() as u32)
            .clamp(4, cfg.size);
        let x = rng.below((cfg.size - size + 1) as usize) as u32;
        let y = rng.below((cfg.size - size + 1) as usize) as u32;
        paste(
            &mut img,
            &mut labels,
            &object.rgba,
            x,
            y,
            size,
            class as u8 + 1,
        );
        placed.push(PlacedObject {
            name: object.name.clone(),
            class: class as u32 + 1,
            x,
            y,
            size,
        });
    }
    (img, labels, bg_seed, placed)
}

/// The set [`build`] would write, in memory: for fitting on procedural composites without
/// touching the disk.
pub fn examples(cfg: &CompositeConfig, objects: &[ObjectImage]) -> Result<Vec<Example>> {
    cfg.validate()?;
    let (_, by_class) = classes_of(objects)?;
    Ok((0..cfg.count)
        .into_par_iter()
        .map(|i| {
            let (image, labels, _, _) = compose(cfg, &by_class, i);
            Example {
                image,
                labels: labels.into_iter().map(u32::from).collect(),
            }
        })
        .collect())
}

/// Builds a composite set into `out` (created; an existing set there is refused).
/// `progress(done, total)` after each image.
pub fn build(
    cfg: &CompositeConfig,
    objects: &[ObjectImage],
    source: &str,
    out: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<CompositeManifest> {
    cfg.validate()?;
    if out.join(MANIFEST).exists() {
        return Err(Error::InvalidConfig(format!(
            "{} already holds a composite set; choose another folder",
            out.display()
        )));
    }
    let (classes, by_class) = classes_of(objects)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut items = Vec::with_capacity(cfg.count);
    for i in 0..cfg.count {
        let (img, labels, bg_seed, placed) = compose(cfg, &by_class, i);
        let name = format!("{i:05}");
        let image_path = out.join(format!("{name}.png"));
        let mask_path = out.join(format!("{name}.mask.png"));
        img.save(&image_path).map_err(|e| Error::BadFile {
            path: image_path.clone(),
            message: e.to_string(),
        })?;
        image::GrayImage::from_raw(cfg.size, cfg.size, labels)
            .expect("mask buffer matches the image")
            .save(&mask_path)
            .map_err(|e| Error::BadFile {
                path: mask_path.clone(),
                message: e.to_string(),
            })?;
        items.push(CompositeItem {
            image: format!("{name}.png"),
            mask: format!("{name}.mask.png"),
            background: bg_seed,
            objects: placed,
        });
        progress(i + 1, cfg.count);
    }
    let manifest = CompositeManifest {
        version: 1,
        config: cfg.clone(),
        classes,
        source: source.to_string(),
        items,
    };
    let path = out.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest)?;
    crate::fsio::write_atomic(&path, text.as_bytes())?;
    Ok(manifest)
}

/// An opened composite set.
pub struct CompositeSet {
    pub dir: PathBuf,
    pub manifest: CompositeManifest,
}

/// One loaded example: the image and its per-pixel class ids.
#[derive(Debug)]
pub struct Example {
    pub image: image::RgbImage,
    pub labels: Vec<u32>,
}

impl Example {
    pub fn width(&self) -> usize {
        self.image.width() as usize
    }
    pub fn height(&self) -> usize {
        self.image.height() as usize
    }
}

impl CompositeSet {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: CompositeManifest =
            serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: path.clone(),
                message: format!("not a composite manifest: {e}"),
            })?;
        if manifest.version != 1 {
            return Err(Error::BadFile {
                path,
                message: format!(
                    "composite format version {} is not supported",
                    manifest.version
                ),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn len(&self) -> usize {
        self.manifest.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.items.is_empty()
    }

    /// Loads example `i`, checking the mask against the image and the class list.
    pub fn load(&self, i: usize) -> Result<Example> {
        let item = self
            .manifest
            .items
            .get(i)
            .ok_or_else(|| Error::InvalidConfig(format!("no example {i}")))?;
        let image_path = self.dir.join(&item.image);
        let mask_path = self.dir.join(&item.mask);
        let image = crate::imageio::load_rgb(&image_path)?;
        let mask = crate::imageio::load(&mask_path)?.to_luma8();
        if mask.dimensions() != image.dimensions() {
            return Err(Error::BadFile {
                path: mask_path,
                message: "the mask's size differs from the image's".into(),
            });
        }
        let classes = self.manifest.classes.len() as u32;
        let labels: Vec<u32> = mask.as_raw().iter().map(|&v| v as u32).collect();
        if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::BadFile {
                path: mask_path,
                message: format!("class id {bad} is outside the {classes} classes"),
            });
        }
        Ok(Example { image, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(colour: [u8; 3]) -> image::RgbaImage {
        // An opaque disc on a transparent square.
        image::RgbaImage::from_fn(16, 16, |x, y| {
            let d = (x as f32 - 7.5).powi(2) + (y as f32 - 7.5).powi(2);
            if d < 36.0 {
                image::Rgba([colour[0], colour[1], colour[2], 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        })
    }

    #[test]
    fn build_then_open_gives_exact_masks() {
        let dir = tempfile::tempdir().unwrap();
        let objects = vec![
            ObjectImage {
                name: "red".into(),
                class: "A".into(),
                rgba: square([255, 0, 0]),
            },
            ObjectImage {
                name: "blue".into(),
                class: "B".into(),
                rgba: square([0, 0, 255]),
            },
        ];
        let cfg = CompositeConfig {
            count: 4,
            size: 32,
            max_objects: 1,
            ..Default::default()
        };
        let m = build(&cfg, &objects, "test discs", dir.path(), |_, _| {}).unwrap();
        assert_eq!(m.classes, vec!["background", "A", "B"]);
        let set = CompositeSet::open(dir.path()).unwrap();
        for (i, item) in set.manifest.items.iter().enumerate() {
            let ex = set.load(i).unwrap();
            let o = &item.objects[0];
            let colour = if o.class == 1 {
                [255, 0, 0]
            } else {
                [0, 0, 255]
            };
            // Every labelled pixel lies in the object's box and shows the object's colour.
            for (p, &l) in ex.labels.iter().enumerate() {
                let (x, y) = ((p % 32) as u32, (p / 32) as u32);
                if l != 0 {
                    assert_eq!(l, o.class);
                    assert!(x >= o.x && x < o.x + o.size && y >= o.y && y < o.y + o.size);
                    let px = ex.image.get_pixel(x, y).0;
                    assert!(
                        (0..3).all(|k| (px[k] as i32 - colour[k]).abs() <= 128),
                        "{px:?}"
                    );
                }
            }
            assert!(ex.labels.iter().any(|&l| l != 0));
        }
        // Same seed, same set; an existing set is never overwritten.
        assert!(build(&cfg, &objects, "test discs", dir.path(), |_, _| {}).is_err());
        let again = tempfile::tempdir().unwrap();
        assert_eq!(
            build(&cfg, &objects, "test discs", again.path(), |_, _| {})
                .unwrap()
                .items,
            m.items
        );
        // The in-memory set is the written one, image for image and label for label.
        let in_memory = examples(&cfg, &objects).unwrap();
        assert_eq!(in_memory.len(), cfg.count);
        for (i, ex) in in_memory.iter().enumerate() {
            let loaded = set.load(i).unwrap();
            assert!(
                ex.image == loaded.image && ex.labels == loaded.labels,
                "image {i}"
            );
        }
        // A corrupt mask is a clear error.
        std::fs::write(dir.path().join(&m.items[0].mask), b"not a png").unwrap();
        let err = set.load(0).unwrap_err().to_string();
        assert!(err.contains("00000.mask.png"), "{err}");
    }

    #[test]
    fn procedural_objects_are_textured_blobs_one_program_per_class() {
        let objects = procedural_objects(3, 4, 32, 7);
        assert_eq!(objects.len(), 12);
        let again = procedural_objects(3, 4, 32, 7);
        assert!(
            objects
                .iter()
                .zip(&again)
                .all(|(a, b)| a.rgba == b.rgba && a.class == b.class),
            "deterministic"
        );
        let classes: Vec<&str> = objects.iter().map(|o| o.class.as_str()).collect();
        assert_eq!(classes[0..4], ["program 0"; 4]);
        assert_eq!(classes[4], "program 1");
        for o in &objects {
            let alpha: Vec<u8> = o.rgba.pixels().map(|p| p.0[3]).collect();
            // Opaque at the centre, transparent in the corners, a blob in between.
            assert_eq!(o.rgba.get_pixel(16, 16).0[3], 255, "{}", o.name);
            assert_eq!(o.rgba.get_pixel(0, 0).0[3], 0, "{}", o.name);
            let inside = alpha.iter().filter(|&&a| a >= 128).count() as f64 / alpha.len() as f64;
            assert!((0.15..0.65).contains(&inside), "{}: {inside}", o.name);
        }
        // Two objects of a class differ (their own window and shape), as do two classes.
        assert_ne!(objects[0].rgba, objects[1].rgba);
        assert_ne!(objects[0].rgba, objects[4].rgba);
    }
}
