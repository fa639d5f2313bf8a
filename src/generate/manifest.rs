//! Writing generated sets to disk with a manifest that regenerates them exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::gpu::AdapterSummary;
use super::{Generator, GeneratorConfig, Recipe, Sample};
use crate::error::{Error, Result};

pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: &str = "procmem-generated-set";
const VERSION: u32 = 1;

/// One written image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifestImage {
    pub index: u64,
    pub file: String,
    pub recipe: Recipe,
}

/// Everything needed to regenerate a set: config, seed, count, and the hashes of the programs
/// that were used (a changed program makes exact regeneration impossible, and is detected).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub procmem_version: String,
    pub seed: u64,
    pub count: u64,
    pub config: GeneratorConfig,
    /// The adapter that rendered the set (bit-exactness is promised on the same adapter).
    pub adapter: AdapterSummary,
    /// FNV-1a hashes (hex) of the sources of every program used.
    pub programs: BTreeMap<String, String>,
    pub images: Vec<ManifestImage>,
}

/// Largest manifest file read, in bytes (64 MiB: a 100,000-image set's manifest is ≈ 20 MB).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

impl Manifest {
    /// Reads and checks a manifest: its size against [`MAX_MANIFEST_BYTES`] before reading, the
    /// format and version, the generator config's ranges, and that `count` equals the images
    /// listed, numbered 0.. with their file names — so regenerating never trusts a count or a
    /// config the file does not back. Errors name the file.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |message: String| Error::BadFile {
            path: path.into(),
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if len > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "{len} bytes, more than the {} MiB a manifest may have",
                MAX_MANIFEST_BYTES >> 20
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a procmem manifest: {e}")))?;
        if m.format != FORMAT || m.version != VERSION {
            return Err(bad(format!(
                "format {} v{} is not {FORMAT} v{VERSION}",
                m.format, m.version
            )));
        }
        m.config
            .validate()
            .map_err(|e| bad(format!("bad generator config: {e}")))?;
        if m.count != m.images.len() as u64 {
            return Err(bad(format!(
                "count {} but {} images listed",
                m.count,
                m.images.len()
            )));
        }
        if let Some((i, image)) = m
            .images
            .iter()
            .enumerate()
            .find(|(i, im)| im.index != *i as u64 || im.file != image_file(*i as u64))
        {
            return Err(bad(format!(
                "image {i} is listed as index {} file `{}`",
                image.index, image.file
            )));
        }
        Ok(m)
    }
}

fn image_file(index: u64) -> String {
    format!("{index:08}.png")
}

/// Generates `count` images with `seed` into `out_dir` (PNG files plus `manifest.json`).
/// `progress(done, total)` is called after every batch and may return false to cancel.
pub fn write_set(
    generator: &mut Generator,
    seed: u64,
    count: u64,
    out_dir: &Path,
    mut progress: impl FnMut(u64, u64) -> bool,
) -> Result<Manifest> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let batch = batch_size(generator.config());
    // Grows as images are written: `count` may be large, and nothing is reserved up front.
    let mut images = Vec::new();
    let mut used = BTreeMap::new();
    let mut start = 0;
    while start < count {
        let end = (start + batch).min(count);
        let samples = generator.generate(seed, start..end, false)?;
        save_samples(&samples, out_dir)?;
        for s in samples {
            let mut ids = Vec::new();
            s.recipe.program_ids(&mut ids);
            for id in ids {
                if let Some(p) = generator.program(&id) {
                    used.insert(id, format!("{:016x}", p.hash));
                }
            }
            images.push(ManifestImage {
                index: s.index,
                file: image_file(s.index),
                recipe: s.recipe,
            });
        }
        start = end;
        if !progress(start, count) {
            return Err(Error::Cancelled);
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        procmem_version: env!("CARGO_PKG_VERSION").into(),
        seed,
        count,
        config: generator.config().clone(),
        adapter: generator.renderer().adapter().clone(),
        programs: used,
        images,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    crate::fsio::write_atomic(&out_dir.join(MANIFEST_FILE), &json)?;
    Ok(manifest)
}

/// Saves samples as `<index>.png` in `dir` (in parallel).
pub(crate) fn save_samples(samples: &[Sample], dir: &Path) -> Result<()> {
    use rayon::prelude::*;
    samples.par_iter().try_for_each(|s| {
        let path = dir.join(image_file(s.index));
        s.image.save(&path).map_err(|e| Error::BadFile {
            path: path.clone(),
            message: e.to_string(),
        })
    })
}

/// Images per GPU batch: large enough to amortise a submission, small enough for memory.
pub fn batch_size(config: &GeneratorConfig) -> u64 {
    let px = (config.size as u64)
        .pow(2)
        .max((config.kml.resolution as u64).pow(2));
    ((1u64 << 24) / px).clamp(8, 512)
}

/// Regenerates the set described by `manifest_path` into `out_dir`, refusing when a program
/// it used has changed since.
pub fn regenerate(
    manifest_path: &Path,
    out_dir: &Path,
    progress: impl FnMut(u64, u64) -> bool,
) -> Result<(Manifest, PathBuf)> {
    let manifest = Manifest::read(manifest_path)?;
    let mut generator = Generator::open_default(manifest.config.clone())?;
    for (id, hash) in &manifest.programs {
        match generator.program(id) {
            None => {
                return Err(Error::InvalidConfig(format!(
                    "the manifest uses program `{id}`, which is not available here"
                )));
            }
            Some(p) if format!("{:016x}", p.hash) != *hash => {
                return Err(Error::InvalidConfig(format!(
                    "program `{id}` has changed since the set was made (hash {:016x}, manifest {hash}): the set cannot be reproduced exactly",
                    p.hash
                )));
            }
            Some(_) => {}
        }
    }
    if generator.renderer().adapter() != &manifest.adapter {
        log::warn!(
            "the set was rendered on {}, this is {}: images may differ in the last bits",
            manifest.adapter,
            generator.renderer().adapter()
        );
    }
    let m = write_set(
        &mut generator,
        manifest.seed,
        manifest.count,
        out_dir,
        progress,
    )?;
    Ok((m, out_dir.join(MANIFEST_FILE)))
}
