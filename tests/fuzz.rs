//! Mutation fuzzing on stable Rust: valid files of every parser are damaged byte-wise
//! (truncated, bits flipped, length fields set huge, garbage appended, chunks repeated) and fed
//! back. Each parser must answer Ok or an error naming the file — never panic, never abort on an
//! allocation (the size checks of docs/reliability.md run before any buffer is made).
//!
//! Deterministic: case `i` of a target uses seed `i`, so a failure names its reproducible seed.

use std::path::{Path, PathBuf};

use procmem::rng::Rng;

/// One damaged copy of `valid`.
fn mutate(valid: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = valid.to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(rng.next_u32() as u8);
            continue;
        }
        match rng.below(6) {
            0 => b.truncate(rng.below(b.len())),
            1 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            2 => {
                // A length or count field made huge: 4 or 8 bytes of 0xFF (or 0x7F…) anywhere.
                let width = if rng.bernoulli(0.5) { 4 } else { 8 };
                let at = rng.below(b.len());
                for (k, byte) in b.iter_mut().skip(at).take(width).enumerate() {
                    *byte = if k + 1 == width && rng.bernoulli(0.5) {
                        0x7F
                    } else {
                        0xFF
                    };
                }
            }
            3 => {
                let extra = rng.below(64);
                b.extend((0..extra).map(|_| rng.next_u32() as u8));
            }
            4 => {
                let start = rng.below(b.len());
                let len = rng.below((b.len() - start).min(256)) + 1;
                let chunk = b[start..start + len].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, chunk);
            }
            _ => {
                let i = rng.below(b.len());
                b[i] = rng.next_u32() as u8;
            }
        }
    }
    b
}

/// Runs `cases` mutations of `valid` through `parse`; a panic fails with the case's seed.
fn fuzz(
    target: &str,
    valid: &[u8],
    cases: u64,
    parse: impl Fn(&[u8], u64) -> Result<(), String> + std::panic::RefUnwindSafe,
) {
    let mut accepted = 0;
    for seed in 0..cases {
        let damaged = mutate(valid, &mut Rng::new(seed ^ 0xF022));
        match std::panic::catch_unwind(|| parse(&damaged, seed)) {
            Ok(Ok(())) => accepted += 1,
            Ok(Err(message)) => assert!(
                !message.is_empty(),
                "{target}, seed {seed}: an empty error message"
            ),
            Err(_) => panic!(
                "{target}: case with seed {seed} panicked ({} bytes)",
                damaged.len()
            ),
        }
    }
    // The unmutated file parses (so the damage, not the seed file, is what is being refused).
    assert!(
        std::panic::catch_unwind(|| parse(valid, u64::MAX)).is_ok_and(|r| r.is_ok()),
        "{target}: the valid file is refused"
    );
    eprintln!(
        "{target}: {cases} damaged files, {accepted} still parsed, the rest refused with an error, none panicked"
    );
}

/// [`fuzz`] for parsers that read a file: each damaged copy is written as `name-<seed>.<ext>` in
/// a temporary folder, parsed, and removed; an error must name that file.
fn fuzz_file<T>(
    target: &str,
    valid: &[u8],
    cases: u64,
    ext: &str,
    parse: impl Fn(&Path) -> procmem::Result<T> + std::panic::RefUnwindSafe,
) {
    let dir = tempfile::tempdir().unwrap();
    fuzz(target, valid, cases, |bytes, seed| {
        let path = dir.path().join(format!("fuzz-{seed}.{ext}"));
        std::fs::write(&path, bytes).unwrap();
        let r = parse(&path);
        std::fs::remove_file(&path).unwrap();
        match r {
            Ok(_) => Ok(()),
            Err(e) => names_file(&e.to_string(), &path),
        }
    });
}

fn names_file(message: &str, path: &Path) -> Result<(), String> {
    let name = path.file_name().unwrap().to_string_lossy();
    if message.contains(name.as_ref()) {
        Err(message.to_string())
    } else {
        panic!("the error does not name {name}: {message}")
    }
}

#[test]
fn memory_files() {
    let mut m = procmem::memory::Memory::new("fp", 4);
    for i in 0..5u64 {
        let e: Vec<f32> = (0..4).map(|j| ((i * 4 + j) as f32).sin()).collect();
        m.add(
            "fp",
            if i % 2 == 0 { "cat" } else { "dog" },
            &format!("/data/{i}.png"),
            i,
            vec![i as u8; 3],
            e,
        )
        .unwrap();
    }
    let path = PathBuf::from("fuzz.pmem");
    fuzz(
        "pmem",
        &m.to_bytes(),
        3000,
        |bytes, _| match procmem::memory::Memory::from_bytes(bytes, &path) {
            Ok(_) => Ok(()),
            Err(e) => names_file(&e.to_string(), &path),
        },
    );
}

#[test]
fn image_loader() {
    let img = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(12, 10, |x, y| {
        image::Rgba([x as u8 * 20, y as u8 * 25, 90, 200])
    }));
    for format in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
        image::ImageFormat::Bmp,
        image::ImageFormat::WebP,
        image::ImageFormat::Tiff,
    ] {
        let img = if format == image::ImageFormat::Jpeg {
            image::DynamicImage::ImageRgb8(img.to_rgb8())
        } else {
            img.clone()
        };
        let mut valid = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut valid), format)
            .unwrap();
        let path = PathBuf::from(format!("fuzz.{}", format.extensions_str()[0]));
        fuzz(
            &format!("image loader, {format:?}"),
            &valid,
            600,
            |bytes, _| match procmem::imageio::decode_rgb(bytes, &path) {
                Ok(_) => Ok(()),
                Err(e) => names_file(&e.to_string(), &path),
            },
        );
    }
}

fn npy(shape: &[usize], descr: &str, data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_and_npz_arrays() {
    let valid = npy(&[3, 2, 2], "|u1", &(0..12).collect::<Vec<u8>>());
    fuzz("npy", &valid, 3000, |bytes, _| {
        procmem::memory::npz::parse_npy(bytes).map(drop)
    });

    let fixture =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.npz"))
            .unwrap();
    fuzz_file("npz", &fixture, 800, "npz", procmem::memory::npz::read_npz);
}

#[test]
fn idx_sets() {
    let mut images = vec![0, 0, 8, 3];
    for v in [3u32, 4, 4] {
        images.extend_from_slice(&v.to_be_bytes());
    }
    images.extend((0..48).map(|i| i as u8 * 5));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&3u32.to_be_bytes());
    labels.extend([0, 1, 2]);
    let dir = tempfile::tempdir().unwrap();
    let labels_path = dir.path().join("labels.idx");
    std::fs::write(&labels_path, &labels).unwrap();
    fuzz_file("IDX images", &images, 2000, "idx", |path| {
        procmem::datasets::read_idx(path, &labels_path, &[])
    });
}

#[test]
fn weights_files() {
    // A procmem model file (safetensors + JSON) of a micro ViT; each half damaged in turn.
    use procmem::model::weights::{Which, load_backbone};
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit_micro.safetensors");
    let valid = std::fs::read(&fixture).unwrap();
    fuzz_file("timm safetensors", &valid, 600, "safetensors", |path| {
        load_backbone(path, Which::Teacher, Some(2))
    });
}

#[test]
fn csv_lists() {
    let valid = b"path,label\ncat/a.png,cat\n\"dog/b.png\",dog\nx.png,bird\n".to_vec();
    fuzz_file(
        "CSV import list",
        &valid,
        2000,
        "csv",
        procmem::memory::import::list_csv,
    );
}

#[test]
fn nights_csv() {
    let mut valid = String::from(
        "id,ref_path,left_path,right_path,prompt,votes,left_vote,right_vote,split,is_imagenet\n",
    );
    for i in 0..4 {
        valid += &format!(
            "{i},ref/{i}.png,distort/{i}_0.png,distort/{i}_1.png,a prompt,6,x,0.5,test_imagenet,True\n"
        );
    }
    fuzz_file("NIGHTS CSV", valid.as_bytes(), 2000, "csv", |path| {
        procmem::eval::twoafc::read_triplets(path, None, 0.0)
    });
}

#[test]
fn checkpoint_json() {
    // A procmem model pair: the JSON damaged, its tensors whole beside it.
    use procmem::model::weights::{
        CHECKPOINT_FORMAT, CheckpointMeta, Provenance, Which, infer_config, load_backbone,
        save_checkpoint,
    };
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit_micro.safetensors");
    let tensors = candle_core::safetensors::load(&fixture, &candle_core::Device::Cpu).unwrap();
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT.into(),
        version: 1,
        vit: infer_config(&tensors, Some(2), &fixture).unwrap(),
        train_config: serde_json::json!({"steps": 1}),
        step: 1,
        seed: 0,
        provenance: Provenance {
            sources: vec!["procedural:test".into()],
            procedural_only: true,
            images_seen: 1,
        },
        fingerprint: String::new(),
        procmem_version: "test".into(),
        exported_backbone: Some("teacher".into()),
        standardisation: None,
        patch_standardisation: None,
        pooling: Default::default(),
    };
    let stored: std::collections::BTreeMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (format!("teacher.backbone.{k}"), v))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("model");
    save_checkpoint(&stem, &stored, &meta).unwrap();
    let json = std::fs::read(stem.with_extension("json")).unwrap();
    let tensors_path = stem.with_extension("safetensors");
    fuzz_file("checkpoint JSON", &json, 1500, "json", |path| {
        std::fs::copy(&tensors_path, path.with_extension("safetensors")).unwrap();
        let r = load_backbone(path, Which::Teacher, None);
        std::fs::remove_file(path.with_extension("safetensors")).unwrap();
        r
    });
}

#[test]
fn wgsl_programs() {
    use procmem::generate::programs::{Program, ProgramLibrary, ProgramOrigin};
    let library = ProgramLibrary::load(None);
    let valid = library
        .programs
        .first()
        .expect("shipped programs")
        .source
        .clone();
    fuzz("WGSL program", valid.as_bytes(), 1000, |bytes, seed| {
        let id = format!("fuzz-{seed}");
        let Ok(source) = std::str::from_utf8(bytes) else {
            return Err("not UTF-8".into());
        };
        match Program::parse(&id, source, ProgramOrigin::Synthesized { seed }).and_then(|p| {
            procmem::generate::programs::validate_wgsl(&p.id, &p.module_source())?;
            Ok(p)
        }) {
            Ok(_) => Ok(()),
            Err(e) => names_file(&e.to_string(), Path::new(&id)),
        }
    });
}

#[test]
fn generated_set_manifests() {
    // A real set of 4 images (wgpu on lavapipe here), its manifest damaged.
    use procmem::generate::manifest::{MANIFEST_FILE, Manifest, write_set};
    use procmem::generate::{Generator, GeneratorConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut generator = Generator::open_default(GeneratorConfig {
        size: 32,
        ..Default::default()
    })
    .unwrap();
    write_set(&mut generator, 3, 4, dir.path(), |_, _| true).unwrap();
    let valid = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
    fuzz_file(
        "generated-set manifest",
        &valid,
        1500,
        "json",
        Manifest::read,
    );
    // The kinds named by the checks, each refused.
    let text = String::from_utf8(valid).unwrap();
    for (what, damaged) in [
        (
            "count",
            text.replacen("\"count\": 4", "\"count\": 1000000000000", 1),
        ),
        (
            "config",
            text.replacen("\"size\": 32", "\"size\": 100000", 1),
        ),
        (
            "image 2",
            text.replacen("00000002.png", "../../etc/passwd", 1),
        ),
    ] {
        assert_ne!(damaged, text, "{what}: the edit applies");
        let path = dir.path().join(format!("{}.json", what.replace(' ', "-")));
        std::fs::write(&path, damaged).unwrap();
        let err = Manifest::read(&path).unwrap_err().to_string();
        assert!(
            err.contains(what) && err.contains(path.file_name().unwrap().to_str().unwrap()),
            "{what}: {err}"
        );
    }
}
