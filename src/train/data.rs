//! The training data stream: a producer thread renders (or reads) images and augments them on
//! rayon threads, a couple of batches ahead of the trainer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::augment::{Crops, multi_crop};
use super::config::{DataSource, TrainConfig};
use crate::error::{Error, Result};
use crate::generate::Generator;
use crate::rng::{Rng, derive};

/// One step's crops as tensors: 2 global [B,3,G,G] and n local [B,3,L,L].
pub struct PreparedBatch {
    pub step: u64,
    pub global: Vec<Tensor>,
    pub local: Vec<Tensor>,
    /// The first image's crops (global then local), CHW normalised, for the UI's crop strip.
    pub preview: Crops,
    /// Images skipped because they could not be read (folder sources).
    pub skipped: u64,
}

pub struct BatchStream {
    rx: Receiver<Result<PreparedBatch>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const AUGMENT_STREAM: u64 = 0xa06;

/// Image files under `root`, sorted (so a seed picks the same images every time).
pub(crate) fn list_images(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if crate::imageio::has_image_extension(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::BadFile {
            path: root.into(),
            message: "no PNG or JPEG images under this folder".into(),
        });
    }
    Ok(out)
}

fn stack(crops: &[Vec<f32>], size: u32) -> Result<Tensor> {
    let s = size as usize;
    let data: Vec<f32> = crops.iter().flatten().copied().collect();
    Tensor::from_vec(data, (crops.len(), 3, s, s), &Device::Cpu).map_err(Error::from)
}

#[allow(clippy::large_enum_variant)] // one per training run
enum Source {
    Procedural(Generator),
    Folder(Vec<PathBuf>),
}

impl BatchStream {
    /// Starts producing batches from `first_step` on.
    pub fn start(cfg: &TrainConfig, first_step: u64) -> Result<Self> {
        let source = match &cfg.data {
            DataSource::Procedural { generator } => {
                Source::Procedural(Generator::open_default(generator.clone())?)
            }
            DataSource::Folder { path } => Source::Folder(list_images(path)?),
        };
        let (tx, rx) = sync_channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("procmem-data".into())
            .spawn(move || produce(source, cfg, first_step, tx, stop2))
            .map_err(|e| Error::Model(format!("could not start the data thread: {e}")))?;
        Ok(Self {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    pub fn next(&self) -> Result<PreparedBatch> {
        self.rx
            .recv()
            .map_err(|_| Error::Model("the data stream stopped".into()))?
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Dropping the receiver makes a producer blocked on a full channel fail its send and exit.
        drop(std::mem::replace(&mut self.rx, sync_channel(1).1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn produce(
    mut source: Source,
    cfg: TrainConfig,
    first_step: u64,
    tx: SyncSender<Result<PreparedBatch>>,
    stop: Arc<AtomicBool>,
) {
    let b = cfg.batch_size as u64;
    let mut step = first_step;
    while !stop.load(Ordering::SeqCst) {
        let result = (|| -> Result<PreparedBatch> {
            let mut skipped = 0;
            let images: Vec<(u64, image::RgbImage)> = match &mut source {
                Source::Procedural(generator) => generator
                    .generate(derive(cfg.seed, 0xda7a), step * b..(step + 1) * b, false)?
                    .into_iter()
                    .map(|s| (s.index, s.image))
                    .collect(),
                Source::Folder(paths) => {
                    let mut rng = Rng::for_sample(derive(cfg.seed, 0xf01d), step);
                    let mut out = Vec::with_capacity(b as usize);
                    let mut tries = 0;
                    while (out.len() as u64) < b {
                        tries += 1;
                        if tries > 20 * b {
                            return Err(Error::Model(
                                "too many unreadable images in the training folder".into(),
                            ));
                        }
                        let i = rng.below(paths.len());
                        match crate::imageio::load_rgb(&paths[i]) {
                            Ok(img) => out.push((step * b + out.len() as u64, img)),
                            Err(e) => {
                                skipped += 1;
                                log::warn!("skipping {e}");
                            }
                        }
                    }
                    out
                }
            };
            let crops: Vec<Crops> = images
                .par_iter()
                .map(|(index, img)| {
                    multi_crop(
                        img,
                        &cfg.augment,
                        &mut Rng::for_sample(derive(cfg.seed, AUGMENT_STREAM), *index),
                    )
                })
                .collect();
            let global = (0..2)
                .map(|g| {
                    stack(
                        &crops
                            .iter()
                            .map(|c| c.global[g].clone())
                            .collect::<Vec<_>>(),
                        cfg.augment.global_size,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let local = (0..cfg.augment.local_crops)
                .map(|l| {
                    stack(
                        &crops.iter().map(|c| c.local[l].clone()).collect::<Vec<_>>(),
                        cfg.augment.local_size,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let preview = crops.into_iter().next().expect("batch_size > 0");
            Ok(PreparedBatch {
                step,
                global,
                local,
                preview,
                skipped,
            })
        })();
        let failed = result.is_err();
        if tx.send(result).is_err() || failed {
            return;
        }
        step += 1;
    }
}
