//! The Models panel with egui_kittest: two tiny models in a folder (as the zoo is), one with a
//! patch-token standardisation shown with its provenance, headline numbers from a results file, "Use" on the other model re-embeds the memory on a worker (the
//! embeddings equal a direct computation with that model), the re-embedding is cached per
//! fingerprint, and deleting a memory entry purges that cache.

#[path = "common/ui.rs"]
mod ui_common;

use std::path::PathBuf;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use procmem::app::knowledge::KnowledgeState;
use procmem::app::models::ModelsState;
use procmem::app::{AppState, ProcmemApp, Tab};
use procmem::embed::FeatureSource;
use procmem::memory::{Memory, import::thumbnail_png};
use ui_common::{wait, write_model};

fn picture(seed: u64) -> image::RgbImage {
    let mut rng = procmem::rng::Rng::new(seed);
    image::RgbImage::from_fn(32, 32, |_, _| {
        image::Rgb([rng.below(255) as u8, 90, rng.below(255) as u8])
    })
}

#[test]
fn models_panel_lists_the_zoo_and_switching_re_embeds_the_memory_with_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    // The caches of re-embedded memories live under XDG_DATA_HOME (this test binary's only test).
    // SAFETY: this binary's only test, before it starts any thread.
    unsafe { std::env::set_var("XDG_DATA_HOME", dir.path().join("xdg")) };
    let zoo = dir.path().join("zoo");
    std::fs::create_dir_all(&zoo).unwrap();
    let fp_a = write_model(
        &zoo.join("model-a.json"),
        1,
        "procedural:kml-mixup (test)",
        true,
    );
    write_model(&zoo.join("model-b.json"), 2, "real:test photographs", false);
    // Model B carries a procedural standardisation of its patch tokens (fitted in place).
    let fp_b = procmem::embed::standardise_model(
        &zoo.join("model-b.json"),
        procmem::model::weights::Which::Teacher,
        &procmem::embed::StandardiseConfig {
            process: procmem::generate::Process::Shaders,
            patch_images: 8,
            patch_grid: 4,
            patches_only: true,
            ..Default::default()
        },
        &zoo.join("model-b"),
        |_, _| {},
    )
    .unwrap();
    std::fs::write(zoo.join("notes.json"), "{}").unwrap(); // not a model: no weights beside it, not listed
    let results = zoo.join("results.jsonl");
    std::fs::write(
        &results,
        format!(
            "{{\"fingerprint\":\"{fp_a}\",\"features\":\"model-a\",\"dataset\":\"fashion-mnist\",\"task\":\"knn\",\"value\":0.6123,\"k\":20}}\nnot json\n{{\"fingerprint\":\"{fp_a}\",\"features\":\"model-a\",\"dataset\":\"emoji-google-twitter\",\"task\":\"recall@1\",\"value\":0.2414,\"k\":1}}\n"
        ),
    )
    .unwrap();

    // A memory of 6 pictures embedded by model A.
    let source_a = FeatureSource::from_spec(zoo.join("model-a.json").to_str().unwrap()).unwrap();
    assert_eq!(source_a.fingerprint(), fp_a);
    let dim = source_a.vit().unwrap().cfg.embed_dim;
    let mut memory = Memory::new(&fp_a, dim);
    let pictures: Vec<image::RgbImage> = (0..6).map(picture).collect();
    for (i, p) in pictures.iter().enumerate() {
        let thumb = thumbnail_png(p, 32);
        let decoded = image::load_from_memory(&thumb).unwrap().to_rgb8();
        let e = source_a
            .embed_rgb(std::slice::from_ref(&decoded), |_| {})
            .unwrap()
            .0;
        memory
            .add(
                &fp_a,
                if i % 2 == 0 { "even" } else { "odd" },
                &format!("p{i}"),
                i as u64,
                thumb,
                e,
            )
            .unwrap();
    }
    let memory_path = dir.path().join("memory.pmem");
    memory.save(&memory_path).unwrap();

    let state = AppState {
        tab: Tab::Models,
        knowledge: KnowledgeState {
            model: zoo.join("model-a.json"),
            memory: memory_path.clone(),
            watch: None,
            k: 3,
            abstain_below: None,
        },
        models: ModelsState {
            folders: vec![zoo.clone()],
            extra: Vec::new(),
            results: results.clone(),
        },
        ..Default::default()
    };
    let ctx = egui::Context::default();
    let app = ProcmemApp::new(&ctx, state);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_ui_state(|ui, app: &mut ProcmemApp| app.show(ui), app);
    wait(&mut h, "model A and the memory", |app| !app.is_loading());
    assert!(h.state().load_error.is_none(), "{:?}", h.state().load_error);
    h.run_steps(2);
    h.get_by_label("model-a (in use)");
    h.get_by_label("model-b");
    h.get_by_label("procedural data only");
    h.get_by_label("trained on real images");
    h.get_by_label(
        "patch tokens standardised on procedural:shaders (seed 1000004, 32x32), block 1 (8 images)",
    );
    // One label per model, a line per measured number.
    h.get_by_label("FMNIST kNN 61.2 %\nemoji R@1 24.1 %");
    h.get_by_label("not evaluated");
    assert_eq!(
        h.state().panels.models.entries.len(),
        2,
        "notes.json is not a model"
    );

    // Use model B: the memory is re-embedded on a worker.
    h.get_by_label("Use").click();
    h.run_steps(1);
    assert!(h.state().is_loading(), "the switch runs on a worker");
    wait(&mut h, "re-embedding with model B", |app| !app.is_loading());
    let app = h.state();
    assert!(app.load_error.is_none(), "{:?}", app.load_error);
    let k = app.knowledge.as_ref().unwrap();
    assert_eq!(k.perception().source.fingerprint(), fp_b);
    assert_eq!(k.memory().model_fingerprint(), fp_b);
    let source_b = FeatureSource::from_spec(zoo.join("model-b.json").to_str().unwrap()).unwrap();
    for e in k.memory().entries() {
        let decoded = image::load_from_memory(&e.thumbnail).unwrap().to_rgb8();
        let direct = source_b
            .embed_rgb(std::slice::from_ref(&decoded), |_| {})
            .unwrap()
            .0;
        let diff = e
            .embedding
            .iter()
            .zip(&direct)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-5,
            "entry {} differs from model B's embedding by {diff}",
            e.id
        );
    }
    let cache_dir = dir.path().join("xdg/procmem/cache/embeddings");
    let cached = |fp: &str| -> Vec<PathBuf> {
        std::fs::read_dir(&cache_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().contains(fp))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        cached(&fp_b).len(),
        1,
        "model B's embeddings of this memory are cached"
    );
    h.run_steps(2);
    h.get_by_label("model-b (in use)");

    // Deleting an entry purges the cached re-embeddings that held it.
    h.state_mut().knowledge.as_mut().unwrap().delete(0);
    assert!(
        cached(&fp_b).is_empty(),
        "a deleted entry's cached embeddings are gone"
    );
}
