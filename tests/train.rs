//! DINO training on the real path (procedural stream on lavapipe, candle on the CPU), with a
//! micro model so it runs in seconds.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use procmem::generate::{GeneratorConfig, Process};
use procmem::model::weights::{Which, load_backbone};
use procmem::model::{HeadConfig, Pooling};
use procmem::train::augment::AugmentConfig;
use procmem::train::data::BatchStream;
use procmem::train::trainer::StepMetrics;
use procmem::train::{DataSource, TeacherCentering, TrainConfig, TrainEvent, Trainer};

fn micro_config(steps: u64) -> TrainConfig {
    let mut generator = GeneratorConfig {
        process: Process::ShadersKml,
        size: 32,
        ..Default::default()
    };
    generator.kml.resolution = 32;
    TrainConfig {
        preset: "micro".into(),
        head: HeadConfig {
            out_dim: 64,
            hidden_dim: 32,
            bottleneck_dim: 16,
            norm_last_layer: true,
        },
        augment: AugmentConfig {
            global_size: 32,
            local_size: 16,
            local_crops: 2,
            ..Default::default()
        },
        data: DataSource::Procedural { generator },
        batch_size: 4,
        steps,
        warmup_steps: 2,
        // The last layer stays frozen past the resume point: its optimiser state starts later.
        freeze_last_layer_steps: 3,
        checkpoint_every: 2,
        ..Default::default()
    }
}

fn run(trainer: &mut Trainer) -> Vec<StepMetrics> {
    run_until(trainer, u64::MAX)
}

/// Runs, cancelling once `stop_at` steps are done (as the UI's Pause does).
fn run_until(trainer: &mut Trainer, stop_at: u64) -> Vec<StepMetrics> {
    let mut metrics = Vec::new();
    let cancel = AtomicBool::new(false);
    trainer
        .run(&cancel, |e| {
            if let TrainEvent::Step(m) = e {
                if m.step >= stop_at {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                metrics.push(m);
            }
        })
        .unwrap();
    metrics
}

/// Asserts that every trainable parameter of `trainer` gets a gradient on the first batch of
/// `cfg`, then runs `cfg` from the start in `dir` and returns its metrics (`cfg.steps` lines).
fn assert_every_parameter_learns_then_run(
    trainer: &mut Trainer,
    cfg: &TrainConfig,
    dir: &Path,
) -> Vec<StepMetrics> {
    let stream = BatchStream::start(cfg, 0).unwrap();
    let missing = trainer
        .parameters_without_gradient(&stream.next().unwrap())
        .unwrap();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    drop(stream);
    let whole = run(&mut Trainer::new(cfg.clone(), dir).unwrap());
    assert_eq!(whole.len() as u64, cfg.steps);
    whole
}

/// Runs `cfg` again, stopped after step 2 and resumed from its checkpoint, and asserts that the
/// resumed steps repeat `whole` (the uninterrupted run's metrics): the loss and `term` (a
/// logged loss term, present in every step) to 1e-5. Returns the resumed run's folder.
fn assert_resume_repeats(
    cfg: &TrainConfig,
    whole: &[StepMetrics],
    term: impl Fn(&StepMetrics) -> Option<f64>,
) -> tempfile::TempDir {
    let resumed_dir = tempfile::tempdir().unwrap();
    run_until(
        &mut Trainer::new(cfg.clone(), resumed_dir.path()).unwrap(),
        2,
    );
    let rest = run(&mut Trainer::resume(
        &resumed_dir.path().join("step_000002.json"),
        resumed_dir.path(),
    )
    .unwrap());
    assert_eq!(rest.len(), whole.len() - 2);
    for (a, b) in whole[2..].iter().zip(&rest) {
        let term_gap = (term(a).unwrap() - term(b).unwrap()).abs();
        assert!(
            (a.loss - b.loss).abs() < 1e-5 && term_gap < 1e-5,
            "step {}: {a:?} vs {b:?}",
            a.step
        );
    }
    resumed_dir
}

#[test]
fn every_trainable_parameter_receives_a_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = micro_config(1);
    let mut trainer = Trainer::new(cfg.clone(), dir.path()).unwrap();
    let stream = BatchStream::start(&cfg, 0).unwrap();
    let batch = stream.next().unwrap();
    let names = trainer.trainable_parameter_names();
    // backbone: cls, pos, patch w+b, final norm w+b, 2 blocks × 12; head: 3 × 2 + weight_v
    assert_eq!(names.len(), 6 + 2 * 12 + 7, "{names:?}");
    let missing = trainer.parameters_without_gradient(&batch).unwrap();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

#[test]
fn ibot_trains_every_parameter_and_the_mask_token_and_resumes_the_same_curve() {
    // iBOT's masked-patch loss: every backbone and head parameter and the mask token learn, the
    // term is logged, a resume (masks drawn from the seed and the step, the patch centre saved)
    // continues the same curve, and an export keeps the backbone's keys only.
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        ibot_weight: 1.0,
        ibot_mask_probability: 1.0,
        ..micro_config(4)
    };
    let mut trainer = Trainer::new(cfg.clone(), dir.path()).unwrap();
    let names = trainer.trainable_parameter_names();
    assert!(names.iter().any(|n| n == "ibot.mask_token"), "{names:?}");
    assert_eq!(names.len(), 6 + 2 * 12 + 7 + 1, "{names:?}");
    let whole = assert_every_parameter_learns_then_run(&mut trainer, &cfg, dir.path());
    assert!(
        whole
            .iter()
            .all(|m| m.loss.is_finite() && m.ibot.is_some_and(|v| v.is_finite() && v > 0.0)),
        "{whole:?}"
    );
    assert_resume_repeats(&cfg, &whole, |m| m.ibot);
    let export = dir.path().join("export");
    procmem::model::weights::export_backbone(
        &dir.path().join("last.json"),
        Which::Student,
        procmem::model::weights::Precision::F32,
        &export,
    )
    .unwrap();
    let loaded = load_backbone(&export.with_extension("json"), Which::Student, None).unwrap();
    assert_eq!(loaded.vit.cfg.depth, 2);
    // Bad settings are refused before anything runs.
    for bad in [
        TrainConfig {
            ibot_weight: -1.0,
            ..cfg.clone()
        },
        TrainConfig {
            ibot_mask_probability: 1.5,
            ..cfg.clone()
        },
        TrainConfig {
            ibot_mask_ratio: [0.6, 0.2],
            ..cfg.clone()
        },
        // Settings that would never mask a patch: no crop (⌊8 · 0.1⌋ = 0) or no patch (⌊16 · 0.05⌋).
        TrainConfig {
            ibot_mask_probability: 0.1,
            ..cfg.clone()
        },
        TrainConfig {
            ibot_mask_ratio: [0.0, 0.05],
            ..cfg.clone()
        },
    ] {
        let err = Trainer::new(bad, dir.path()).err().expect("refused");
        assert!(
            matches!(&err, procmem::Error::InvalidConfig(m) if m.contains("ibot")),
            "{err}"
        );
    }
}

#[test]
fn dinov2_options_train_every_parameter_and_log_koleo() {
    // Sinkhorn-Knopp targets and the KoLeo term: every parameter still learns, the loss stays
    // finite, the KoLeo term is logged, and a resume continues the same curve.
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        teacher_centering: TeacherCentering::SinkhornKnopp,
        koleo_weight: 0.1,
        ..micro_config(4)
    };
    let mut trainer = Trainer::new(cfg.clone(), dir.path()).unwrap();
    let whole = assert_every_parameter_learns_then_run(&mut trainer, &cfg, dir.path());
    assert!(
        whole
            .iter()
            .all(|m| m.loss.is_finite() && m.koleo.is_some_and(f64::is_finite)),
        "{whole:?}"
    );
    let resumed_dir = assert_resume_repeats(&cfg, &whole, |m| m.koleo);
    // The one resume policy (CLI and app): a requested length extends the run, never shortens it.
    let ckpt = resumed_dir.path().join("step_000002.json");
    assert_eq!(
        Trainer::resume_to(&ckpt, resumed_dir.path(), Some(3))
            .unwrap()
            .cfg
            .steps,
        4
    );
    assert_eq!(
        Trainer::resume_to(&ckpt, resumed_dir.path(), Some(9))
            .unwrap()
            .cfg
            .steps,
        9
    );
    assert_eq!(
        Trainer::resume_to(&ckpt, resumed_dir.path(), None)
            .unwrap()
            .cfg
            .steps,
        4
    );
}

/// `count` 32×32 Shaders images from `seed`, as `procmem standardise` generates them.
/// One step of the micro model in `dir`, its student exported in f32 as `dir/plain`: the path
/// stem and its fingerprint.
fn micro_export(dir: &Path) -> (std::path::PathBuf, String) {
    use procmem::model::weights::{Precision, export_backbone};
    run(&mut Trainer::new(micro_config(1), dir).unwrap());
    let plain = dir.join("plain");
    let fp = export_backbone(
        &dir.join("last.json"),
        Which::Student,
        Precision::F32,
        &plain,
    )
    .unwrap();
    (plain, fp)
}

fn shader_images(seed: u64, count: u64) -> Vec<image::RgbImage> {
    let mut generator = procmem::generate::Generator::open_default(GeneratorConfig {
        process: Process::Shaders,
        size: 32,
        ..Default::default()
    })
    .unwrap();
    generator
        .generate(seed, 0..count, false)
        .unwrap()
        .into_iter()
        .map(|s| s.image)
        .collect()
}

#[test]
fn procedural_standardisation_is_part_of_the_model() {
    use procmem::embed::{FeatureSource, StandardiseConfig, standardise_model};
    let dir = tempfile::tempdir().unwrap();
    let (plain, plain_fp) = micro_export(dir.path());
    let mut fingerprints = vec![plain_fp.clone()];
    for (pooling, components) in [
        (Pooling::Cls, None),
        (Pooling::PatchGrid { side: 2 }, None),
        // A wide pooling (4×4 regions: 512 values) kept at its 40 leading procedural axes.
        (Pooling::PatchGrid { side: 4 }, Some(40)),
        // At most: more axes than the pooling has keeps them all (the ZCA whitening).
        (Pooling::PatchGrid { side: 2 }, Some(10_000)),
    ] {
        let cfg = StandardiseConfig {
            process: Process::Shaders,
            images: 96,
            seed: 3,
            shrinkage: 0.1,
            pooling,
            components,
            patch_images: 0,
            ..Default::default()
        };
        let std_path = dir.path().join(format!(
            "standardised-{}-{}",
            pooling.name(),
            components.unwrap_or(0)
        ));
        let fp = standardise_model(
            &plain.with_extension("json"),
            Which::Teacher,
            &cfg,
            &std_path,
            |_, _| {},
        )
        .unwrap();
        let keeps_all = components.is_some_and(|m| m >= pooling.dim(32));
        assert_eq!(
            fingerprints.contains(&fp),
            keeps_all,
            "{pooling:?}, {components:?}: the fingerprint covers the standardisation and the pooling; keeping every axis is the ZCA model itself"
        );
        fingerprints.push(fp.clone());
        let loaded = load_backbone(&std_path.with_extension("json"), Which::Teacher, None).unwrap();
        assert_eq!(loaded.fingerprint, fp);
        let meta = loaded.meta.as_ref().unwrap();
        assert_eq!(
            (meta.fingerprint.as_str(), meta.pooling),
            (fp.as_str(), pooling)
        );
        let recorded = meta
            .standardisation
            .as_ref()
            .expect("provenance of the standardisation");
        assert_eq!(
            (
                recorded.images,
                recorded.source.starts_with("procedural:shaders")
            ),
            (96, true)
        );
        assert!(loaded.vit.standardisation().is_some());
        assert!(
            meta.patch_standardisation.is_none() && loaded.vit.patch_standardisation().is_none()
        );
        let reduced = components.filter(|&m| m < pooling.dim(32));
        let width = reduced.unwrap_or(pooling.dim(32));
        assert_eq!(
            (loaded.vit.pooling(), loaded.vit.embedding_dim()),
            (pooling, width)
        );
        assert_eq!(
            (meta.embedding_dim(), recorded.components),
            (width, reduced)
        );
        // Fitting again on the standardised model replaces the statistics, it does not compound them.
        let again = dir.path().join(format!(
            "again-{}-{}",
            pooling.name(),
            components.unwrap_or(0)
        ));
        assert_eq!(
            standardise_model(
                &std_path.with_extension("json"),
                Which::Teacher,
                &cfg,
                &again,
                |_, _| {}
            )
            .unwrap(),
            fp
        );

        // On the procedural images it was fitted on, the embedding is centred: mean cosine of pairs near 0.
        let images = shader_images(3, 96);
        let mean_cos = |source: FeatureSource| {
            let (e, d) = source.embed_rgb(&images, |_| {}).unwrap();
            assert_eq!(e.len(), 96 * d);
            let rows: Vec<&[f32]> = e.chunks(d).collect();
            let pairs: Vec<f32> = (0..48)
                .map(|i| {
                    rows[2 * i]
                        .iter()
                        .zip(rows[2 * i + 1])
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect();
            pairs.iter().sum::<f32>() / pairs.len() as f32
        };
        let before = mean_cos(
            FeatureSource::from_spec(plain.with_extension("json").to_str().unwrap()).unwrap(),
        );
        let after = mean_cos(
            FeatureSource::from_spec(std_path.with_extension("json").to_str().unwrap()).unwrap(),
        );
        assert!(
            after.abs() < 0.2 && after < before,
            "{pooling:?}: mean cosine {before} before, {after} after"
        );
    }
    // Bad configs are refused before any image is generated, as config errors that name the
    // problem: keeping no axis, more axes than 50 fit images can give (the Gram form, micro's
    // grid2 being 128 values wide), and a pooling grid that does not divide the model's patch
    // grid (3 into micro's 4×4; the error lists the poolings that fit).
    for (components, side, named) in [
        (Some(0), 2, "component"),
        (Some(100), 2, "needs more than 100 images"),
        (None, 3, "grid3"),
        (None, 3, "(cls, grid1, grid2, grid4)"),
    ] {
        let bad = StandardiseConfig {
            pooling: Pooling::PatchGrid { side },
            components,
            images: 50,
            patch_images: 0,
            ..Default::default()
        };
        let err = standardise_model(
            &plain.with_extension("json"),
            Which::Teacher,
            &bad,
            &dir.path().join("bad"),
            |_, _| panic!("nothing is generated for a bad config"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, procmem::Error::InvalidConfig(m) if m.contains(named)),
            "{err}"
        );
    }
}

#[test]
fn half_precision_export_halves_the_file_and_keeps_the_embedding() {
    // `procmem export --half` of a standardised model (both standardisations): half the bytes,
    // the provenance kept, the embedding within f16's rounding of the f32 model's, a new
    // fingerprint that is the loader's, and f16 → f16 is a fixed point. A value beyond f16's
    // range is refused by name and nothing is written.
    use procmem::embed::{FeatureSource, StandardiseConfig, standardise_model};
    use procmem::model::weights::{CheckpointMeta, Precision, export_backbone, save_checkpoint};
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = micro_export(dir.path());
    let full = dir.path().join("full");
    let cfg = StandardiseConfig {
        process: Process::Shaders,
        images: 64,
        seed: 3,
        shrinkage: 0.1,
        pooling: Pooling::PatchGrid { side: 2 },
        components: None,
        patch_images: 32,
        patch_grid: 4,
        patch_shrinkage: 0.1,
        patch_block: 0,
        patches_only: false,
    };
    let full_fp = standardise_model(
        &plain.with_extension("json"),
        Which::Teacher,
        &cfg,
        &full,
        |_, _| {},
    )
    .unwrap();
    let half = dir.path().join("half");
    let half_fp = export_backbone(
        &full.with_extension("json"),
        Which::Teacher,
        Precision::F16,
        &half,
    )
    .unwrap();
    assert_ne!(half_fp, full_fp, "the fingerprint is of the rounded values");
    let size = |p: &Path| {
        std::fs::metadata(p.with_extension("safetensors"))
            .unwrap()
            .len()
    };
    assert!(
        (size(&half) as f64) < 0.6 * size(&full) as f64,
        "{} bytes in f16, {} in f32",
        size(&half),
        size(&full)
    );
    let loaded = load_backbone(&half.with_extension("json"), Which::Teacher, None).unwrap();
    let meta = loaded.meta.as_ref().unwrap();
    assert_eq!(loaded.fingerprint, half_fp);
    assert_eq!(meta.fingerprint, half_fp);
    assert_eq!(meta.pooling, cfg.pooling);
    assert!(meta.standardisation.is_some() && meta.patch_standardisation.is_some());
    assert!(loaded.vit.standardisation().is_some() && loaded.vit.patch_standardisation().is_some());
    let images = shader_images(5, 24);
    let embed = |p: &Path| {
        FeatureSource::from_spec(p.with_extension("json").to_str().unwrap())
            .unwrap()
            .embed_rgb(&images, |_| {})
            .unwrap()
    };
    let ((e32, d32), (e16, d16)) = (embed(&full), embed(&half));
    assert_eq!(d32, d16);
    for (a, b) in e32.chunks(d32).zip(e16.chunks(d16)) {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cosine = dot / (norm(a) * norm(b));
        assert!(
            cosine > 0.999,
            "cosine {cosine} between the f32 and f16 embeddings"
        );
    }
    let again = dir.path().join("again");
    assert_eq!(
        export_backbone(
            &half.with_extension("json"),
            Which::Teacher,
            Precision::F16,
            &again,
        )
        .unwrap(),
        half_fp
    );

    // One weight beyond ±65,504: refused, naming the tensor, and nothing written.
    let meta: CheckpointMeta =
        serde_json::from_str(&std::fs::read_to_string(full.with_extension("json")).unwrap())
            .unwrap();
    let mut tensors: std::collections::BTreeMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(
            full.with_extension("safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap()
        .into_iter()
        .collect();
    let key = format!("{}.backbone.pos_embed", meta.backbone_role(Which::Teacher));
    let big = (tensors[&key].clone() * 1e9).unwrap();
    tensors.insert(key.clone(), big);
    let huge = dir.path().join("huge");
    save_checkpoint(&huge, &tensors, &meta).unwrap();
    let refused = dir.path().join("refused");
    let err = export_backbone(
        &huge.with_extension("json"),
        Which::Teacher,
        Precision::F16,
        &refused,
    )
    .unwrap_err();
    assert!(
        matches!(&err, procmem::Error::BadFile { message, .. } if message.contains(&key) && message.contains("65,504")),
        "{err}"
    );
    assert!(
        !refused.with_extension("json").exists() && !refused.with_extension("safetensors").exists()
    );
}

#[test]
fn patch_token_standardisation_whitens_the_dense_features_and_leaves_the_embedding() {
    use procmem::dense::features::extract;
    use procmem::embed::{FeatureSource, StandardiseConfig, standardise_model};
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = micro_export(dir.path());
    let base = StandardiseConfig {
        process: Process::Shaders,
        images: 64,
        seed: 3,
        shrinkage: 0.1,
        pooling: Pooling::Cls,
        components: None,
        patch_images: 48,
        patch_grid: 4,
        patch_shrinkage: 0.0,
        patch_block: 0,
        patches_only: false,
    };
    let fit = |from: &std::path::Path, cfg: &StandardiseConfig, name: &str| {
        let out = dir.path().join(name);
        let fp = standardise_model(
            &from.with_extension("json"),
            Which::Teacher,
            cfg,
            &out,
            |_, _| {},
        )
        .unwrap();
        (fp, out.with_extension("json"))
    };
    let embedding_only = StandardiseConfig {
        patch_images: 0,
        ..base.clone()
    };
    let (fp_without, without) = fit(&plain, &embedding_only, "embedding-only");
    let (fp_with, with) = fit(&plain, &base, "with-patches");
    assert_eq!(
        fp_without, fp_with,
        "the fingerprint is the embedding's: the patch statistics, which it never reads, are left out"
    );
    // Fitting the patches alone onto the embedding-only model keeps its pooling and embedding
    // statistics bit for bit, whatever the embedding settings say (here all different), and gives
    // the same file as fitting both at once.
    let patches_only = StandardiseConfig {
        images: 9,
        shrinkage: 3.0,
        pooling: Pooling::PatchGrid { side: 2 },
        patches_only: true,
        ..base.clone()
    };
    let (fp_added, added) = fit(&without, &patches_only, "patches-added");
    assert_eq!(fp_added, fp_with);
    assert_eq!(
        std::fs::read(added.with_extension("safetensors")).unwrap(),
        std::fs::read(with.with_extension("safetensors")).unwrap()
    );
    let loaded = load_backbone(&with, Which::Teacher, None).unwrap();
    let recorded = loaded.meta.as_ref().unwrap().patch_standardisation.as_ref();
    let recorded = recorded.expect("provenance of the patch standardisation");
    assert_eq!(recorded.images, 48);
    assert!(
        recorded.source.starts_with("procedural:shaders") && recorded.source.contains("32x32"),
        "{}",
        recorded.source
    );
    assert_eq!(
        loaded.vit.patch_standardisation().map(|s| s.dim()),
        Some(32)
    );
    // 0 = the last block, recorded as its number.
    let depth = loaded.vit.cfg.depth;
    assert_eq!(recorded.block, Some(depth));
    assert_eq!(loaded.vit.patch_block(), depth);

    // The dense features can be read after an earlier block: fitted there, recorded, applied
    // on load, and keyed apart from the last block's; the embedding stays the last block's.
    let first_block = StandardiseConfig {
        patch_block: 1,
        ..patches_only.clone()
    };
    let (fp_first, first) = fit(&without, &first_block, "block-1");
    assert_eq!(fp_first, fp_with);
    let first_loaded = load_backbone(&first, Which::Teacher, None).unwrap();
    let first_meta = first_loaded.meta.as_ref().unwrap();
    assert_eq!(
        first_meta.patch_standardisation.as_ref().unwrap().block,
        Some(1)
    );
    assert!(
        first_meta
            .patch_standardisation
            .as_ref()
            .unwrap()
            .describe()
            .ends_with(", block 1")
    );
    assert_eq!(first_loaded.vit.patch_block(), 1);
    let x = candle_core::Tensor::zeros(
        (1, 3, 32, 32),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let layers = first_loaded.vit.intermediate_layers(&x, depth).unwrap();
    let expected = first_loaded
        .vit
        .patch_standardisation()
        .unwrap()
        .apply(&layers[0].narrow(1, 1, 16).unwrap().squeeze(0).unwrap())
        .unwrap();
    let got = first_loaded
        .vit
        .patch_features(&x)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let diff = (expected - got)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
    let too_deep = StandardiseConfig {
        patch_block: depth + 1,
        ..patches_only.clone()
    };
    let err = standardise_model(
        &without,
        Which::Teacher,
        &too_deep,
        &dir.path().join("too-deep"),
        |_, _| panic!("nothing is generated for a bad config"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, procmem::Error::InvalidConfig(m) if m.contains(&format!("patch block {}", depth + 1))),
        "{err}"
    );

    let source = |path: &std::path::Path| FeatureSource::from_spec(path.to_str().unwrap()).unwrap();
    let (with, without, first) = (source(&with), source(&without), source(&first));
    // The block is part of the dense key, beside the statistics' digest.
    assert!(first.dense_fingerprint().ends_with("@1"));
    assert!(with.dense_fingerprint().ends_with(&format!("@{depth}")));
    // Dense results are keyed apart although the embedding fingerprint is shared.
    assert_eq!(with.fingerprint(), without.fingerprint());
    assert_eq!(without.dense_fingerprint(), without.fingerprint());
    assert_ne!(with.dense_fingerprint(), without.dense_fingerprint());
    // Procedural images of the fit's own distribution (its seed is the config's + 1,000,003).
    let images = shader_images(3 + 1_000_003, 48);
    // The memory's embedding does not change: the patch statistics act on the dense features only.
    assert_eq!(
        with.embed_rgb(&images, |_| {}).unwrap(),
        without.embed_rgb(&images, |_| {}).unwrap()
    );
    // On the images it was fitted on, the whitened patches have mean 0 and a total variance of D
    // (unit variance per dimension on average). Full whitening gives every direction the same
    // variance but at most one: LayerNorm's output satisfies one linear constraint per token,
    // which leaves a (near-)null direction of the covariance.
    let grids = extract(&with, &images, 4, |_| {}).unwrap();
    let raw = extract(&without, &images, 4, |_| {}).unwrap();
    assert_ne!(grids, raw);
    let rows: Vec<&[f32]> = grids.iter().flat_map(|g| g.data.chunks(g.dim)).collect();
    assert_eq!(rows.len(), 48 * 16);
    let n = rows.len() as f64;
    let mut total = 0.0;
    for j in 0..32 {
        let mean = rows.iter().map(|r| r[j] as f64).sum::<f64>() / n;
        let var = rows
            .iter()
            .map(|r| (r[j] as f64 - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        assert!(mean.abs() < 1e-2, "dimension {j}: mean {mean}");
        assert!(var < 1.1, "dimension {j}: variance {var}");
        total += var;
    }
    assert!((31.9..32.1).contains(&total), "total variance {total}");

    // The attention scale: fitted on procedural in-context pairs, folded into the patch
    // whitening (tokens × √scale), recorded, and outside the embedding's fingerprint.
    use procmem::dense::calibrate::{
        AttentionCalibrationConfig, SCALES, TOLERANCE, calibrate_model,
    };
    let calibration = AttentionCalibrationConfig {
        images: 24,
        classes: 3,
        seed: 5,
        grid: 4,
    };
    let with_path = dir.path().join("with-patches.json");
    let calibrated_path = dir.path().join("calibrated.json");
    let fitted = calibrate_model(
        &with_path,
        Which::Teacher,
        &calibration,
        &calibrated_path,
        |_, _| {},
    )
    .unwrap();
    let tried: Vec<f64> = fitted.scores.iter().map(|s| s[0]).collect();
    assert_eq!(tried, SCALES);
    let best = fitted.scores.iter().map(|s| s[1]).fold(f64::MIN, f64::max);
    let kept = fitted
        .scores
        .iter()
        .find(|s| s[1] >= (1.0 - TOLERANCE) * best);
    assert_eq!(
        kept.map(|s| s[0]),
        Some(fitted.scale),
        "{:?}",
        fitted.scores
    );
    assert!(fitted.pairs > 0 && fitted.source.starts_with("procedural composites"));
    assert!(
        fitted.scores.iter().all(|s| s[2].is_finite() && s[2] > 0.0),
        "the log loss of soft masks: {:?}",
        fitted.scores
    );
    let calibrated = source(&calibrated_path);
    assert_eq!(calibrated.fingerprint(), with.fingerprint());
    // Unit variance leaves this model's attention nearly uniform: the fit sharpens it.
    assert!(fitted.scale > 1.0, "{:?}", fitted.scores);
    assert_ne!(calibrated.dense_fingerprint(), with.dense_fingerprint());
    let meta = load_backbone(&calibrated_path, Which::Teacher, None)
        .unwrap()
        .meta
        .unwrap();
    let recorded = meta.patch_standardisation.unwrap();
    // As written (JSON floats round-trip to the last bit or so).
    let stored = recorded
        .attention
        .as_ref()
        .expect("the calibration is recorded");
    assert_eq!(
        (
            stored.scale,
            &stored.source,
            stored.pairs,
            stored.scores.len()
        ),
        (
            fitted.scale,
            &fitted.source,
            fitted.pairs,
            fitted.scores.len()
        )
    );
    for (a, b) in stored.scores.iter().zip(&fitted.scores) {
        assert!(
            a[0] == b[0] && (a[1] - b[1]).abs() < 1e-12,
            "{a:?} against {b:?}"
        );
    }
    assert!(
        recorded
            .describe()
            .ends_with(&format!(", attention ×{}", fitted.scale))
    );
    // W_p scaled by √scale: checked on inputs free of cancellation (this micro model's full
    // whitening has a near-null direction with huge weights, so on its own tokens the f32 sums
    // round differently at each scale).
    let plain_whitening = load_backbone(&with_path, Which::Teacher, None).unwrap();
    let scaled_by = |path: &std::path::Path, scale: f64| {
        let factor = scale.sqrt() as f32;
        let scaled_whitening = load_backbone(path, Which::Teacher, None).unwrap();
        for value in [1.0f32, 0.5, -2.0] {
            let x = candle_core::Tensor::full(value, (1, 32), &candle_core::Device::Cpu).unwrap();
            let apply = |m: &procmem::model::weights::LoadedBackbone| -> Vec<f32> {
                let s = m.vit.patch_standardisation().unwrap();
                s.apply(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            for (x, y) in apply(&scaled_whitening).iter().zip(apply(&plain_whitening)) {
                assert!(
                    (x - factor * y).abs() <= 1e-5 * (x.abs() + 1.0),
                    "{x} against {factor}·{y}"
                );
            }
        }
    };
    scaled_by(&calibrated_path, fitted.scale);
    // Calibrating again starts from the current scale and records the product.
    let again = calibrate_model(
        &calibrated_path,
        Which::Teacher,
        &calibration,
        &dir.path().join("calibrated-again.json"),
        |_, _| {},
    )
    .unwrap();
    let best_again = again.scores.iter().map(|s| s[1]).fold(f64::MIN, f64::max);
    let kept_again = again
        .scores
        .iter()
        .find(|s| s[1] >= (1.0 - TOLERANCE) * best_again)
        .map(|s| s[0]);
    assert_eq!(Some(again.scale), kept_again.map(|k| k * fitted.scale));
    // The stored whitening is the first fit's scaled by the product.
    scaled_by(&dir.path().join("calibrated-again.json"), again.scale);
    // A model without patch statistics is refused, by name, before anything is generated.
    let err = calibrate_model(
        &dir.path().join("embedding-only.json"),
        Which::Teacher,
        &calibration,
        &dir.path().join("never.json"),
        |_, _| panic!("nothing is embedded for a model without patch statistics"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, procmem::Error::InvalidConfig(m) if m.contains("embedding-only.json")),
        "{err}"
    );
    assert!(!dir.path().join("never.json").exists());
}

#[test]
fn training_runs_checkpoints_and_resumes_the_same_curve() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let split = dir.path().join("split");

    let mut t = Trainer::new(micro_config(4), &straight).unwrap();
    let full = run(&mut t);
    assert_eq!(full.len(), 4);
    assert!(full.iter().all(|m| m.loss.is_finite() && m.loss > 0.0));
    assert!(straight.join("step_000004.json").exists());
    assert_eq!(
        std::fs::read_to_string(straight.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );

    let mut first = Trainer::new(micro_config(4), &split).unwrap();
    let a = run_until(&mut first, 2);
    assert_eq!(a.len(), 2);
    let mut resumed = Trainer::resume(&split.join("last.json"), &split).unwrap();
    assert_eq!(resumed.step, 2);
    // A run killed after its checkpoint logged a step that the resume will compute again.
    use std::io::Write;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(split.join("metrics.jsonl"))
        .unwrap();
    writeln!(log, "{{\"step\":3,\"loss\":99.0}}").unwrap();
    let b = run(&mut resumed);
    let steps: Vec<u64> = std::fs::read_to_string(split.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4], "the curve has every step once");
    let joined: Vec<f64> = a.iter().chain(&b).map(|m| m.loss).collect();
    let straight_losses: Vec<f64> = full.iter().map(|m| m.loss).collect();
    for (x, y) in joined.iter().zip(&straight_losses) {
        assert!(
            (x - y).abs() < 1e-5,
            "resumed curve {joined:?} differs from {straight_losses:?}"
        );
    }

    // The checkpoint loads as a backbone and records its provenance.
    let loaded = load_backbone(&straight.join("last.json"), Which::Teacher, None).unwrap();
    let meta = loaded.meta.unwrap();
    assert!(meta.provenance.procedural_only);
    assert_eq!(meta.provenance.images_seen, 16);
    assert!(meta.provenance.sources[0].contains("shaders-kml"));
    assert_eq!(loaded.fingerprint, meta.fingerprint);
    let x = candle_core::Tensor::zeros(
        (2, 3, 32, 32),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let (cls, patches) = loaded.vit.embed(&x).unwrap();
    assert_eq!(cls.dims(), &[2, 32]);
    assert_eq!(patches.dims(), &[2, 16, 32]);
    // Any multiple of the patch size works (interpolated position embeddings).
    let y = candle_core::Tensor::zeros(
        (1, 3, 48, 40),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(loaded.vit.embed(&y).unwrap().1.dims(), &[1, 30, 32]);
}

#[test]
fn bad_weights_are_clear_errors_and_never_substituted() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_backbone(&dir.path().join("nope.safetensors"), Which::Teacher, None)
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("no such weights file"), "{missing}");

    let mut t = Trainer::new(micro_config(1), dir.path()).unwrap();
    run(&mut t);
    let st = dir.path().join("last.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let truncated = load_backbone(
        Path::new(&dir.path().join("last.json")),
        Which::Teacher,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        truncated.contains("truncated") || truncated.contains("unreadable"),
        "{truncated}"
    );

    // A timm-style state dict missing a block's weights names the tensor.
    let good = dir.path().join("step_000001.safetensors");
    let tensors = candle_core::safetensors::load(&good, &candle_core::Device::Cpu).unwrap();
    let mut partial: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("teacher.backbone.")
                .map(|s| (s.to_string(), v))
        })
        .collect();
    partial.remove("blocks.1.mlp.fc2.weight");
    let partial_path = dir.path().join("partial.safetensors");
    candle_core::safetensors::save(&partial, &partial_path).unwrap();
    let err = load_backbone(&partial_path, Which::Teacher, Some(2))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("blocks.1.mlp.fc2.weight"), "{err}");

    // bugcases 10, 11, 22: each variant of the good state dict is refused naming the tensor.
    let whole: std::collections::HashMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(&good, &candle_core::Device::Cpu)
            .unwrap()
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("teacher.backbone.")
                    .map(|s| (s.to_string(), v))
            })
            .collect();
    let refused =
        |name: &str, edit: &dyn Fn(&mut std::collections::HashMap<String, candle_core::Tensor>)| {
            let mut variant = whole.clone();
            edit(&mut variant);
            let path = dir.path().join(format!("{name}.safetensors"));
            candle_core::safetensors::save(&variant, &path).unwrap();
            load_backbone(&path, Which::Teacher, Some(2))
                .err()
                .map(|e| e.to_string())
        };
    let control = dir.path().join("control.safetensors");
    candle_core::safetensors::save(&whole, &control).unwrap();
    assert!(
        load_backbone(&control, Which::Teacher, Some(2)).is_ok(),
        "the unedited state dict loads"
    );
    let nan = refused("nan", &|m| {
        let mut w: Vec<f32> = m["norm.weight"].to_vec1().unwrap();
        w[3] = f32::NAN;
        m.insert(
            "norm.weight".into(),
            candle_core::Tensor::new(w, &candle_core::Device::Cpu).unwrap(),
        );
    });
    assert!(
        nan.as_deref()
            .is_some_and(|e| e.contains("non-finite") && e.contains("norm.weight")),
        "{nan:?}"
    );
    let layerscale = refused("layerscale", &|m| {
        m.insert(
            "blocks.0.ls1.gamma".into(),
            candle_core::Tensor::ones(32, candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap(),
        );
    });
    assert!(
        layerscale
            .as_deref()
            .is_some_and(|e| e.contains("blocks.0.ls1.gamma")),
        "{layerscale:?}"
    );
    let integers = refused("i32", &|m| {
        for v in m.values_mut() {
            *v = v.to_dtype(candle_core::DType::I64).unwrap();
        }
    });
    assert!(
        integers
            .as_deref()
            .is_some_and(|e| e.contains("not floating point")),
        "{integers:?}"
    );
    let half = refused("f16", &|m| {
        for v in m.values_mut() {
            *v = v.to_dtype(candle_core::DType::F16).unwrap();
        }
    });
    assert!(
        half.is_none(),
        "F16 weights are a legitimate encoding: {half:?}"
    );
}

#[test]
fn parameter_names_are_exactly_the_models_variables() {
    for qkv_bias in [true, false] {
        let cfg = procmem::model::VitConfig {
            qkv_bias,
            ..procmem::model::VitConfig::micro()
        };
        let (_, vars) = procmem::model::weights::new_backbone(&cfg, 0).unwrap();
        let mut want: Vec<String> = procmem::model::weights::var_tensors(&vars)
            .unwrap()
            .into_keys()
            .collect();
        let mut got = cfg.parameter_names();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}

#[test]
fn shipped_training_configs_parse_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg: TrainConfig = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cfg.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 1);
}
