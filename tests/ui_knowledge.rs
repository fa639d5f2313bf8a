//! The Memory, Query and Privacy panels with egui_kittest, on a tiny random-init model and a
//! memory built in the test: drop an image → its neighbours are shown; unlearn a neighbour →
//! the watch list updates (and the flip is shown); delete and undo in the Memory panel; run the
//! privacy analysis; draw a lasso on the Map and unlearn what it holds.

#[path = "common/ui.rs"]
mod ui_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use procmem::app::knowledge::{Knowledge, Perception};
use procmem::app::map::{ColourBy, MapPanel};
use procmem::app::memory::MemoryPanel;
use procmem::app::privacy::PrivacyPanel;
use procmem::app::query::QueryPanel;
use procmem::embed::FeatureSource;
use procmem::memory::{Memory, import::thumbnail_png};
use procmem::rng::Rng;
use ui_common::wait;

/// A colour-dominated noise image.
fn picture(seed: u64, rgb: [u8; 3]) -> image::RgbImage {
    let mut rng = Rng::new(seed);
    image::RgbImage::from_fn(32, 32, |_, _| {
        image::Rgb(rgb.map(|c| c.saturating_add(rng.below(60) as u8)))
    })
}

fn embed(source: &FeatureSource, img: &image::RgbImage) -> Vec<f32> {
    source
        .embed_rgb(std::slice::from_ref(img), |_| {})
        .unwrap()
        .0
}

/// Adds `img` to `m` as `label`, embedded by `source`, with a 32-px thumbnail.
fn add_picture(m: &mut Memory, source: &FeatureSource, label: &str, img: &image::RgbImage) {
    let (fp, thumbnail) = (source.fingerprint(), thumbnail_png(img, 32));
    m.add(
        &fp,
        label,
        &format!("test/{label}.png"),
        0,
        thumbnail,
        embed(source, img),
    )
    .unwrap();
}

/// A random-init micro ViT's knowledge of `memory`, watching `watch`, voting with `k` neighbours.
fn micro_knowledge(source: FeatureSource, memory: Memory, watch: Memory, k: usize) -> Knowledge {
    let perception = Perception {
        source: Arc::new(source),
        path: PathBuf::from("random-init micro"),
        description: "random-init micro ViT".into(),
    };
    Knowledge::new(
        perception,
        memory,
        None,
        PathBuf::from("test.pmem"),
        Some(watch),
        k,
    )
    .unwrap()
}

/// Memory: one red picture, five blue, five green. Watch list: the red picture itself (so
/// unlearning the red entry must flip it) and one blue picture.
fn knowledge(k: usize) -> (Knowledge, image::RgbImage) {
    let cfg = procmem::model::VitConfig::preset("micro").unwrap();
    let source = FeatureSource::random_like(&cfg).unwrap();
    let fp = source.fingerprint();
    let red = picture(1, [180, 20, 20]);
    let mut memory = Memory::new(&fp, cfg.embed_dim);
    let add =
        |m: &mut Memory, label: &str, img: &image::RgbImage| add_picture(m, &source, label, img);
    add(&mut memory, "red", &red);
    for i in 0..5 {
        add(&mut memory, "blue", &picture(10 + i, [20, 20, 180]));
        add(&mut memory, "green", &picture(20 + i, [20, 180, 20]));
    }
    let mut watch = Memory::new(&fp, cfg.embed_dim);
    add(&mut watch, "red", &red);
    add(&mut watch, "blue", &picture(30, [20, 20, 180]));
    (micro_knowledge(source, memory, watch, k), red)
}

#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn drop_an_image_see_neighbours_unlearn_one_and_watch_the_list_update() {
    let (k, red) = knowledge(1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.png");
    red.save(&file).unwrap();
    let red_id = 0;

    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 900.0))
        .build_ui_state(
            |ui, (p, k): &mut (QueryPanel, Knowledge)| p.ui(ui, k),
            (QueryPanel::default(), k),
        );
    h.run_steps(2);
    // On first show the panel answers the first watched query.
    assert!(
        h.state()
            .0
            .query
            .as_ref()
            .is_some_and(|q| q.name.starts_with("test query"))
    );
    h.state_mut().0.query = None;
    h.state_mut().0.answer = None;
    assert_eq!(
        h.state().1.watch().queries[0].vote.prediction,
        Some(
            h.state()
                .1
                .labels()
                .iter()
                .position(|l| l == "red")
                .unwrap() as u32
        )
    );

    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(file)));
    wait(&mut h, "the dropped query's answer", |(p, _)| {
        p.answer.is_some()
    });
    let answer = h.state().0.answer.clone().unwrap();
    assert_eq!(
        answer.neighbours[0].id, red_id,
        "the identical picture is the nearest neighbour"
    );
    h.get_by_label("prediction: red");

    // Click the neighbour, unlearn it.
    h.get_by_label("neighbour #0").click();
    h.run_steps(2);
    h.get_by_label("Unlearn neighbour").click();
    h.run_steps(3);
    let (p, k) = h.state();
    assert!(k.memory().get(red_id).is_none(), "unlearned");
    assert!(
        p.answer
            .as_ref()
            .unwrap()
            .neighbours
            .iter()
            .all(|n| n.id != red_id),
        "the answer follows the edit"
    );
    let edit = k.last_edit().unwrap();
    assert_eq!(
        edit.update.flipped,
        vec![0],
        "the watched red query flips: no red entry is left"
    );
    assert_ne!(
        k.watch().queries[0].vote.prediction,
        k.watch().queries[0].initial_prediction
    );
    assert!(
        h.query_by_label_contains("flipped by the last edit")
            .is_some()
    );

    // Undo restores the prediction.
    h.get_by_label("Undo last unlearning").click();
    h.run_steps(3);
    let (_, k) = h.state();
    assert!(k.memory().get(red_id).is_some());
    assert_eq!(
        k.watch().queries[0].vote.prediction,
        k.watch().queries[0].initial_prediction
    );
}

#[test]
fn a_query_unlike_the_memory_is_answered_not_in_memory_when_asked() {
    let (mut k, _) = knowledge(3);
    // A grey query, unlike the red, blue and green memory.
    let grey = embed(&k.perception().source, &picture(99, [120, 120, 120]));
    let suggested = k.suggest_abstain_threshold().expect("11 entries > k = 3");
    let answer = k.answer(&grey, None);
    let score = answer.in_memory.expect("3 neighbours");
    assert_eq!(
        score, answer.neighbours[2].similarity,
        "the score is the k-th neighbour's similarity"
    );
    k.abstain_below = None;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 900.0))
        .build_ui_state(
            |ui, (p, k): &mut (QueryPanel, Knowledge)| p.ui(ui, k),
            (QueryPanel::default(), k),
        );
    h.run_steps(2);
    h.state_mut().0.query = Some(procmem::app::query::Query::new(
        "grey.png".into(),
        grey.clone(),
    ));
    h.state_mut().0.answer = None;
    h.run_steps(3);
    assert!(
        h.query_by_label_contains("prediction:").is_some(),
        "off by default: a label is forced"
    );
    assert!(h.query_by_label("not in memory").is_none());

    // Switched on, the threshold starts at the suggestion; above the query's score it abstains.
    h.get_by_label_contains("say “not in memory”").click();
    h.run_steps(2);
    assert_eq!(h.state().1.abstain_below, Some(suggested));
    h.state_mut().1.abstain_below = Some(score + 0.001);
    h.run_steps(2);
    h.get_by_label("not in memory");
    assert!(h.query_by_label_contains("prediction:").is_none());
    h.state_mut().1.abstain_below = Some(score - 0.001);
    h.run_steps(2);
    assert!(h.query_by_label_contains("prediction:").is_some());
}

#[test]
fn memory_panel_computes_data_values_and_sorts_lowest_first() {
    let (k, _) = knowledge(3);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (MemoryPanel::default(), k),
        );
    h.run_steps(2);
    assert_eq!(
        h.state().0.shown_ids(),
        (0..11).collect::<Vec<u64>>(),
        "memory order before"
    );
    h.get_by_label("Compute data values").click();
    wait(&mut h, "the data values", |(p, k)| {
        p.value_of(k, 0).is_some()
    });
    let (p, k) = h.state();
    let values: Vec<f64> = (0..11).map(|id| p.value_of(k, id).unwrap()).collect();
    // The watched red query has the red entry as its only same-class neighbour.
    assert!(values[0] > 0.0, "{values:?}");
    h.get_by_label("lowest value first").click();
    h.run_steps(3);
    let shown = h.state().0.shown_ids().to_vec();
    assert_eq!(shown.len(), 11);
    for pair in shown.windows(2) {
        assert!(
            values[pair[0] as usize] <= values[pair[1] as usize],
            "{shown:?} {values:?}"
        );
    }
    // A deletion makes the values stale: the grid goes back to memory order.
    h.state_mut().1.delete(shown[0]);
    h.run_steps(3);
    assert!(h.query_by_label_contains("recompute").is_some());
    let (p, k) = h.state();
    assert_eq!(
        p.shown_ids(),
        k.memory()
            .entries()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<u64>>()
    );
}

#[test]
fn memory_panel_deletes_with_undo_and_saves_without_the_deleted_bytes() {
    let (k, _) = knowledge(3);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (MemoryPanel::default(), k),
        );
    h.run_steps(2);
    h.get_by_label("blue (5)");
    h.get_by_label("entry #3").click();
    h.run_steps(2);
    assert_eq!(h.state().0.selected, Some(3));
    h.get_by_label("Unlearn (delete)").click();
    h.run_steps(2);
    assert!(h.state().1.memory().get(3).is_none());
    assert_eq!(h.state().1.memory().len(), 10);
    h.get_by_label("Undo").click();
    h.run_steps(2);
    assert!(h.state().1.memory().get(3).is_some());

    // Delete again and save to a file: the entry's bytes are gone from it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.pmem");
    h.state_mut().1.set_memory_path(path.clone());
    let source = h.state().1.memory().get(3).unwrap().source.clone();
    h.get_by_label("entry #3").click();
    h.run_steps(2);
    h.get_by_label("Unlearn (delete)").click();
    h.run_steps(2);
    h.get_by_label("Save").click();
    h.run_steps(2);
    let bytes = std::fs::read(&path).unwrap();
    let saved = Memory::open(&path).unwrap();
    assert_eq!(saved.len(), 10);
    assert!(saved.get(3).is_none());
    // Other entries share the source path prefix; the deleted one's embedding must be absent.
    let _ = source;
    let (k, _) = knowledge(3);
    let emb: Vec<u8> = k
        .memory()
        .get(3)
        .unwrap()
        .embedding
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    assert!(
        !bytes.windows(emb.len()).any(|w| w == emb.as_slice()),
        "the deleted embedding's bytes are not in the file"
    );
}

#[test]
fn privacy_panel_runs_the_analysis_and_lists_influential_entries() {
    let (k, _) = knowledge(1);
    let expected = procmem::memory::privacy::analyse(
        k.index(),
        &k.watch()
            .queries
            .iter()
            .flat_map(|q| q.embedding.clone())
            .collect::<Vec<_>>(),
        1,
        k.watch().rule,
    );
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 800.0))
        .build_ui_state(
            |ui, (p, k): &mut (PrivacyPanel, Knowledge)| p.ui(ui, k),
            (PrivacyPanel::default(), k),
        );
    h.run_steps(2);
    h.get_by_label("Run analysis").click();
    wait(&mut h, "the analysis", |(p, _)| {
        !p.reports.is_empty() && !p.is_busy()
    });
    let report = h
        .state()
        .0
        .reports
        .iter()
        .find(|r| r.k == 1)
        .map(|r| (**r).clone())
        .unwrap();
    assert_eq!(report, expected);
    assert!(
        report.influence.contains_key(&0),
        "the only red entry decides the red query"
    );
    h.get_by_label("1").click();
    h.run_steps(2);
    h.get_by_label("influential #0").click();
    h.run_steps(2);
    h.get_by_label("Unlearn it").click();
    h.run_steps(2);
    assert!(h.state().1.memory().get(0).is_none());
    h.get_by_label_contains("run again");
}

#[test]
fn the_app_starts_with_the_bundled_model_and_demo_memory() {
    use procmem::app::{AppState, ProcmemApp, Tab};
    let ctx = egui::Context::default();
    let app = ProcmemApp::new(
        &ctx,
        AppState {
            tab: Tab::Query,
            ..Default::default()
        },
    );
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 900.0))
        .build_ui_state(|ui, app: &mut ProcmemApp| app.show(ui), app);
    wait(&mut h, "the bundled model and demo memory", |app| {
        !app.is_loading()
    });
    let app = h.state();
    assert!(app.load_error.is_none(), "{:?}", app.load_error);
    let k = app.knowledge.as_ref().unwrap();
    assert_eq!(k.memory().len(), 3000);
    assert_eq!(k.watch().queries.len(), 200);
    assert!(
        k.perception().description.contains("procedural data only"),
        "{}",
        k.perception().description
    );
    assert!(
        k.watch().accuracy().unwrap() > 0.3,
        "the demo classifies well above chance (10 classes)"
    );
    h.get_by_label("Memory").click();
    h.run_steps(3);
    h.get_by_label_contains("Ankle boot (");

    // Every panel in the one list has its tab, and its tab draws it.
    let tabs: Vec<(Tab, String)> = h
        .state_mut()
        .panels
        .iter_mut()
        .iter()
        .map(|p| (p.tab(), p.title()))
        .collect();
    assert_eq!(tabs.len(), 8);
    for (tab, title) in tabs {
        h.get_by_label(&title).click();
        h.run_steps(2);
        assert_eq!(h.state().tab, tab, "{title}");
    }
    // A panel's command is applied once, after the panels drew: query with entry 5.
    let ctx = h.ctx.clone();
    h.state_mut()
        .apply(&ctx, procmem::app::AppCommand::QueryEntry(5));
    h.run_steps(2);
    assert_eq!(h.state().tab, Tab::Query);
    assert!(
        h.state()
            .panels
            .query
            .query
            .as_ref()
            .is_some_and(|q| q.name.starts_with("memory #5 ")),
        "the Query panel queries entry #5"
    );
}

#[test]
fn the_memory_grid_decodes_only_visible_thumbnails_of_a_100k_entry_memory() {
    let cfg = procmem::model::VitConfig::preset("micro").unwrap();
    let source = FeatureSource::random_like(&cfg).unwrap();
    let fp = source.fingerprint();
    let thumb = thumbnail_png(&picture(1, [100, 100, 100]), 8);
    let mut rng = Rng::new(3);
    let mut memory = Memory::new(&fp, cfg.embed_dim);
    for i in 0..100_000 {
        let e: Vec<f32> = (0..cfg.embed_dim)
            .map(|_| rng.normal() as f32 * 0.1)
            .collect();
        memory
            .add(&fp, &format!("c{}", i % 7), "", i, thumb.clone(), e)
            .unwrap();
    }
    let perception = Perception {
        source: Arc::new(source),
        path: PathBuf::from("random-init micro"),
        description: "micro".into(),
    };
    let k = Knowledge::new(
        perception,
        memory,
        None,
        PathBuf::from("big.pmem"),
        None,
        10,
    )
    .unwrap();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 800.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (MemoryPanel::default(), k),
        );
    h.run_steps(3);
    h.get_by_label("c5 (14285)");
    let decoded = h.state().1.cached_thumbnails();
    assert!(
        decoded > 0 && decoded < 1_000,
        "{decoded} thumbnails decoded for one screen"
    );
    h.get_by_label("c5 (14285)").click();
    h.run_steps(2);
    h.get_by_label("entry #5"); // the first c5 entry heads the filtered grid
}

#[test]
fn a_memory_of_another_model_is_refused_and_can_be_reembedded_from_its_thumbnails() {
    let (k, _) = knowledge(3);
    let other_cfg = procmem::model::VitConfig::preset("cpu-tiny").unwrap();
    let other = FeatureSource::random_like(&other_cfg).unwrap();
    assert_ne!(other.fingerprint(), k.memory().model_fingerprint());
    let perception = Perception {
        source: Arc::new(other),
        path: PathBuf::from("cpu-tiny"),
        description: "cpu-tiny".into(),
    };
    let refused = Knowledge::new(
        perception,
        k.memory().clone(),
        None,
        PathBuf::from("m.pmem"),
        None,
        3,
    );
    assert!(matches!(
        refused.err().unwrap(),
        procmem::Error::ModelMismatch { .. }
    ));

    let other = FeatureSource::random_like(&other_cfg).unwrap();
    let again = procmem::app::knowledge::reembed_memory(k.memory(), &other, |_| {}).unwrap();
    assert_eq!(again.model_fingerprint(), other.fingerprint());
    assert_eq!(again.len(), k.memory().len());
    for (a, b) in again.entries().iter().zip(k.memory().entries()) {
        assert_eq!(
            (a.id, &a.label, &a.thumbnail),
            (b.id, &b.label, &b.thumbnail)
        );
        let img = image::load_from_memory(&b.thumbnail).unwrap().to_rgb8();
        assert_eq!(a.embedding, embed(&other, &img));
    }
}

#[test]
fn the_app_offers_re_embedding_on_a_model_mismatch_and_it_works() {
    use procmem::app::knowledge::{BUNDLED_MODEL, KnowledgeState, bundled_dir};
    use procmem::app::{AppState, ProcmemApp, Tab};
    let dir = tempfile::tempdir().unwrap();
    // Re-embedded memories are cached under XDG_DATA_HOME; keep them in the test's folder.
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("XDG_DATA_HOME", dir.path().join("xdg")) };
    // A memory embedded by another model (a random-init micro ViT), with thumbnails to re-embed from.
    let cfg = procmem::model::VitConfig::preset("micro").unwrap();
    let other = FeatureSource::random_like(&cfg).unwrap();
    let mut memory = Memory::new(&other.fingerprint(), cfg.embed_dim);
    for (i, rgb) in [[200, 30, 30], [30, 200, 30], [30, 30, 200]]
        .into_iter()
        .enumerate()
    {
        let img = picture(i as u64, rgb);
        memory
            .add(
                &other.fingerprint(),
                &format!("c{i}"),
                &format!("p{i}.png"),
                i as u64,
                thumbnail_png(&img, 64),
                embed(&other, &img),
            )
            .unwrap();
    }
    let path = dir.path().join("other.pmem");
    memory.save(&path).unwrap();
    let knowledge = KnowledgeState {
        model: bundled_dir().join(BUNDLED_MODEL),
        memory: path,
        watch: None,
        k: 3,
        abstain_below: None,
    };
    let ctx = egui::Context::default();
    let app = ProcmemApp::new(
        &ctx,
        AppState {
            tab: Tab::Query,
            knowledge,
            ..Default::default()
        },
    );
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 900.0))
        .build_ui_state(|ui, app: &mut ProcmemApp| app.show(ui), app);
    wait(&mut h, "the refused load", |app| !app.is_loading());
    let failure = h
        .state()
        .load_error
        .clone()
        .expect("a memory of another model is refused");
    assert!(
        failure.model_mismatch && h.state().knowledge.is_none(),
        "{failure:?}"
    );
    h.get_by_label("Re-embed the memory with this model")
        .click();
    h.run_steps(2);
    wait(&mut h, "the re-embedding", |app| !app.is_loading());
    let app = h.state();
    assert!(app.load_error.is_none(), "{:?}", app.load_error);
    let k = app.knowledge.as_ref().unwrap();
    assert_eq!(
        k.memory().model_fingerprint(),
        k.perception().source.fingerprint()
    );
    assert_eq!(
        (k.memory().len(), k.memory().dim()),
        (3, k.perception().source.vit().unwrap().embedding_dim())
    );
}

/// Presses, drags through `path` and releases the primary button, one frame per point.
fn drag_path<S>(h: &mut Harness<'_, S>, path: &[egui::Pos2]) {
    let button = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: Default::default(),
    };
    h.input_mut()
        .events
        .push(egui::Event::PointerMoved(path[0]));
    h.input_mut().events.push(button(path[0], true));
    h.step();
    for &p in &path[1..] {
        h.input_mut().events.push(egui::Event::PointerMoved(p));
        h.step();
    }
    h.input_mut()
        .events
        .push(button(path[path.len() - 1], false));
    h.run_steps(2);
}

#[test]
fn a_lasso_on_the_map_unlearns_what_it_holds_and_the_watch_list_follows() {
    let (k, _) = knowledge(1);
    let red_id = 0;
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 800.0))
        .build_ui_state(
            |ui, (p, k): &mut (MapPanel, Knowledge)| p.ui(ui, k, None, None),
            (MapPanel::default(), k),
        );
    wait(&mut h, "the map", |(p, _)| {
        p.map.is_some() && p.transform.is_some()
    });
    assert_eq!(h.state().0.map.as_ref().unwrap().ids.len(), 11);

    // Pan/zoom by default; in lasso mode a drag around the red entry selects it.
    h.get_by_label("Lasso").click();
    h.run_steps(2);
    let c = h
        .state()
        .0
        .screen_position(red_id)
        .expect("the red entry is drawn");
    let r = 5.0;
    let square: Vec<egui::Pos2> = [(-r, -r), (r, -r), (r, r), (-r, r), (-r, -r + 1.0)]
        .iter()
        .map(|&(dx, dy)| c + egui::vec2(dx, dy))
        .collect();
    drag_path(&mut h, &square);
    let (p, k) = h.state();
    let selection = p.selection.clone();
    assert!(selection.contains(&red_id), "{selection:?}");
    // Exactly the entries inside the lasso as drawn, whatever else lies that close.
    assert_eq!(selection, p.map.as_ref().unwrap().inside(&p.lasso));
    assert!(selection.iter().all(|&id| k.memory().get(id).is_some()));

    h.get_by_label(&format!("Unlearn {} selected", selection.len()))
        .click();
    h.run_steps(3);
    let (p, k) = h.state();
    assert!(
        selection.iter().all(|&id| k.memory().get(id).is_none()),
        "unlearned"
    );
    assert!(p.selection.is_empty());
    let edit = k.last_edit().unwrap();
    assert!(
        edit.update.flipped.contains(&0),
        "the watched red query flips: no red entry is left"
    );
    assert_ne!(
        k.watch().queries[0].vote.prediction,
        k.watch().queries[0].initial_prediction
    );

    // One Undo restores the whole selection and the prediction.
    h.get_by_label("Undo").click();
    h.run_steps(3);
    let (_, k) = h.state();
    assert!(selection.iter().all(|&id| k.memory().get(id).is_some()));
    assert_eq!(
        k.watch().queries[0].vote.prediction,
        k.watch().queries[0].initial_prediction
    );
}

#[test]
fn map_colours_by_leave_one_out_prediction_and_relabelling_is_one_undoable_edit() {
    let (k, _) = knowledge(1);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 800.0))
        .build_ui_state(
            |ui, (p, k): &mut (MapPanel, Knowledge)| p.ui(ui, k, None, None),
            (MapPanel::default(), k),
        );
    wait(&mut h, "the map", |(p, _)| p.map.is_some());
    h.get_by_label("leave-one-out prediction").click();
    wait(&mut h, "the predictions", |(p, _)| p.predictions.is_some());
    assert_eq!(h.state().0.colour_by, ColourBy::Prediction);
    let (p, k) = h.state();
    let predictions = &p.predictions.as_ref().unwrap().1;
    assert_eq!(predictions.len(), 11);
    // k = 1: the lone red entry's nearest other entry is blue or green, so it is wrong.
    let red = k.labels().iter().position(|l| l == "red").unwrap() as u32;
    assert_ne!(predictions[&0], Some(red));
    assert!(h.query_by_label_contains("wrong (").is_some());

    // Relabel two entries, then undo both at once.
    let blue: Vec<u64> = k
        .memory()
        .entries()
        .iter()
        .filter(|e| e.label == "blue")
        .map(|e| e.id)
        .take(2)
        .collect();
    h.state_mut().0.selection = blue.clone();
    h.state_mut().0.new_label = "navy".into();
    h.run_steps(2);
    h.get_by_label("Relabel").click();
    h.run_steps(2);
    let (p, k) = h.state();
    assert!(
        blue.iter()
            .all(|&id| k.memory().get(id).unwrap().label == "navy")
    );
    assert!(k.labels().contains(&"navy".to_string()));
    assert!(
        p.predictions.as_ref().unwrap().0 != k.generation(),
        "predictions are stale after the edit"
    );
    h.get_by_label("Undo").click();
    h.run_steps(2);
    assert!(
        blue.iter()
            .all(|&id| h.state().1.memory().get(id).unwrap().label == "blue")
    );
}

/// Makes entries of one picture (embedded once) under any source name.
fn new_entries(
    k: &Knowledge,
    img: &image::RgbImage,
    label: &str,
    content_hash: u64,
) -> impl Fn(&str) -> procmem::memory::embedding::NewEntry + use<> {
    let (embedding, thumbnail, label) = (
        embed(&k.perception().source, img),
        thumbnail_png(img, 32),
        label.to_string(),
    );
    move |source: &str| procmem::memory::embedding::NewEntry {
        label: label.clone(),
        source: source.into(),
        content_hash,
        thumbnail: thumbnail.clone(),
        embedding: embedding.clone(),
    }
}

#[test]
fn adding_a_new_class_names_it_and_reports_the_watched_accuracy_before_and_after() {
    let (mut k, _) = knowledge(3);
    let before = k.watch().accuracy().unwrap();
    // Three more pictures like the red one, under a new label: the red watched query's
    // neighbours are now mostly "crimson".
    let entries: Vec<_> = (0..3)
        .map(|i| {
            new_entries(&k, &picture(60 + i, [180, 20, 20]), "crimson", 0x100 + i)("crimson.png")
        })
        .collect();
    let (ids, _) = k.add(entries, false).unwrap();
    assert_eq!(ids.len(), 3);
    let after = k.watch().accuracy().unwrap();
    assert!(
        after < before,
        "the red query now votes crimson: {before} -> {after}"
    );
    let what = &k.last_edit().unwrap().what;
    assert_eq!(
        what,
        &format!(
            "added 3 image(s) with new class(es) crimson; watched top-1 {:.1} % before, {:.1} % after",
            before * 100.0,
            after * 100.0
        )
    );
}

#[test]
fn an_unlearned_image_is_refused_on_re_adding_unless_overridden_and_its_near_duplicates_are_found()
{
    use procmem::memory::{NEAR_DUPLICATE_COSINE, near_duplicates};
    let (mut k, _) = knowledge(3);
    let entry = new_entries(&k, &picture(50, [200, 200, 20]), "yellow", 0xfeed);
    let (ids, refused) = k
        .add(vec![entry("yellow.png"), entry("yellow-copy.png")], false)
        .unwrap();
    assert_eq!((ids.len(), refused.len()), (2, 0));
    // The copy is a near-duplicate of the first: same bytes, cosine 1.
    let e = k.memory().get(ids[0]).unwrap().clone();
    let dups = near_duplicates(
        k.memory(),
        k.index(),
        &e.embedding,
        e.content_hash,
        e.id,
        NEAR_DUPLICATE_COSINE,
    );
    assert_eq!(
        dups.iter()
            .map(|d| (d.id, d.same_content))
            .collect::<Vec<_>>(),
        [(ids[1], true)]
    );

    k.delete_many(&ids);
    let generation = k.generation();
    let (added, refused) = k.add(vec![entry("yellow-again.png")], false).unwrap();
    assert!(added.is_empty() && refused == ["yellow-again.png"]);
    assert_eq!(k.generation(), generation, "a refused add is no edit");
    let (added, _) = k.add(vec![entry("yellow-again.png")], true).unwrap();
    assert_eq!(added.len(), 1, "the override adds it");
    assert!(!k.memory().is_denied(0xfeed));
}

#[test]
fn memory_panel_offers_the_near_duplicates_a_deletion_leaves_behind() {
    let (mut k, _) = knowledge(3);
    let entry = new_entries(&k, &picture(60, [220, 120, 20]), "orange", 0);
    let (ids, _) = k
        .add(
            vec![entry("orange.png"), entry("orange-resaved.png")],
            false,
        )
        .unwrap();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (MemoryPanel::default(), k),
        );
    h.run_steps(2);
    h.get_by_label(&format!("entry #{}", ids[0])).click();
    h.run_steps(2);
    assert_eq!(h.state().0.selected, Some(ids[0]), "ids {ids:?}");
    h.get_by_label("Unlearn (delete)").click();
    h.run_steps(2);
    assert!(
        h.query_by_label_contains(&format!(
            "#{} left 1 near-duplicate(s): #{} (cosine 1.000)",
            ids[0], ids[1]
        ))
        .is_some()
    );
    h.get_by_label("Unlearn them too").click();
    h.run_steps(2);
    assert!(ids.iter().all(|&id| h.state().1.memory().get(id).is_none()));
    assert!(h.query_by_label("Unlearn them too").is_none());
    h.get_by_label("Undo").click();
    h.run_steps(2);
    assert!(
        h.state().1.memory().get(ids[1]).is_some() && h.state().1.memory().get(ids[0]).is_none()
    );
}

#[test]
fn memory_panel_audits_the_unlearning_and_writes_a_certificate() {
    let (mut k, _) = knowledge(3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loaded.pmem");
    k.memory().save(&file).unwrap();
    k.set_memory_path(file.clone());
    let scanned = dir.path().join("scanned");
    std::fs::create_dir_all(&scanned).unwrap();
    let mut panel = MemoryPanel::default();
    panel.audit_scan = Some(vec![scanned.clone()]);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (panel, k),
        );
    h.run_steps(2);
    h.get_by_label("entry #3").click();
    h.run_steps(2);
    h.get_by_label("Unlearn (delete)").click();
    h.run_steps(2);
    // Unsaved, the deleted entry is still in the file Save writes: the audit says so.
    h.get_by_label("Audit the unlearning").click();
    wait(&mut h, "the audit", |(p, _)| {
        p.audit_report.iter().any(|l| l.starts_with("certificate:"))
    });
    let report = h.state().0.audit_report.join("\n");
    assert!(
        report.contains("(a) equivalence passed")
            && report.contains("(b) byte scan FAILED")
            && report.contains("loaded.pmem"),
        "{report}"
    );
    // Saved, it passes.
    h.get_by_label("Save").click();
    h.run_steps(1);
    h.get_by_label("Audit the unlearning").click();
    h.run_steps(1);
    wait(&mut h, "the audit after saving", |(p, _)| {
        p.audit_report.iter().any(|l| l.starts_with("certificate:"))
    });
    let report = h.state().0.audit_report.join("\n");
    assert!(report.contains("1 deleted entries: passed"), "{report}");
    let cert = std::fs::read_dir(&scanned)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .max()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(cert).unwrap()).unwrap();
    assert_eq!(v["deleted"][0]["id"], 3);

    // A copy of the memory as it was, left in a scanned folder, fails the next audit.
    let mut old = h.state().1.memory().clone();
    old.restore(h.state().1.memory_before_edits().get(3).unwrap().clone())
        .unwrap();
    old.save(&scanned.join("old-copy.pmem")).unwrap();
    h.get_by_label("Audit the unlearning").click();
    h.run_steps(1);
    wait(&mut h, "the second audit", |(p, _)| {
        p.audit_report.iter().any(|l| l.starts_with("certificate:"))
    });
    let report = h.state().0.audit_report.join("\n");
    assert!(
        report.contains("(b) byte scan FAILED") && report.contains("old-copy.pmem"),
        "{report}"
    );
}

#[test]
fn memory_panel_finds_a_mislabelled_entry_sorts_it_first_and_unlearns_it_undoably() {
    // Memory: five blue pictures, five green, and one more blue picture labelled "green"
    // (id 10). Watch list: eight blue pictures and four green, all labelled.
    let cfg = procmem::model::VitConfig::preset("micro").unwrap();
    let source = FeatureSource::random_like(&cfg).unwrap();
    let fp = source.fingerprint();
    let add =
        |m: &mut Memory, label: &str, img: &image::RgbImage| add_picture(m, &source, label, img);
    let mut memory = Memory::new(&fp, cfg.embed_dim);
    for i in 0..5 {
        add(&mut memory, "blue", &picture(10 + i, [20, 20, 180]));
        add(&mut memory, "green", &picture(20 + i, [20, 180, 20]));
    }
    add(&mut memory, "green", &picture(15, [20, 20, 180]));
    let mut watch = Memory::new(&fp, cfg.embed_dim);
    for i in 0..12 {
        if i % 3 == 2 {
            add(&mut watch, "green", &picture(40 + i, [20, 180, 20]));
        } else {
            add(&mut watch, "blue", &picture(40 + i, [20, 20, 180]));
        }
    }
    let k = micro_knowledge(source, memory, watch, 3);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 900.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (MemoryPanel::default(), k),
        );
    h.run_steps(2);
    h.get_by_label("Find harmful entries").click();
    wait(&mut h, "the pruning run", |(p, _)| p.prune.is_some());
    let plan = h.state().0.prune.as_ref().unwrap().1.clone();
    assert_eq!(plan.harmful, vec![10], "{plan:?}");
    assert_eq!((plan.choosing, plan.judging), (6, 6));
    assert!(plan.accuracy_after >= plan.accuracy_before, "{plan:?}");
    h.get_by_label("most harmful first").click();
    h.run_steps(3);
    assert_eq!(
        h.state().0.shown_ids()[0],
        10,
        "the harmful entry leads the grid"
    );
    h.get_by_label("Unlearn the 1 harmful entries").click();
    h.run_steps(2);
    assert!(h.state().1.memory().get(10).is_none());
    assert!(
        h.query_by_label_contains("run it again").is_some(),
        "the plan is stale after the edit"
    );
    h.state_mut().1.undo();
    h.run_steps(2);
    assert!(
        h.state().1.memory().get(10).is_some(),
        "one Undo restores it"
    );
}

#[test]
fn memory_panel_evaluates_the_model_on_a_labelled_folder() {
    let (k, _) = knowledge(3);
    let dir = tempfile::tempdir().unwrap();
    for (class, rgb) in [
        ("blue", [20, 20, 180]),
        ("green", [20, 180, 20]),
        ("purple", [150, 20, 150]),
    ] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..2 {
            picture(400 + i, rgb)
                .save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(dir.path().join("green").join("notes.png"), b"not an image").unwrap();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 900.0))
        .build_ui_state(
            |ui, (p, k): &mut (MemoryPanel, Knowledge)| p.ui(ui, k),
            (MemoryPanel::default(), k),
        );
    h.run_steps(2);
    h.get_by_label("Evaluate on a labelled folder…");
    let folder = dir.path().to_path_buf();
    let ctx = h.ctx.clone();
    let (p, k) = h.state_mut();
    p.start_folder_eval(&ctx, k, folder);
    wait(&mut h, "the evaluation", |(p, _)| {
        !p.folder_eval_report.is_empty()
    });
    let report = h.state().0.folder_eval_report.join("\n");
    // Blue and green pictures find their class (k = 3, five of each in the memory); purple is
    // no class of the memory, so it can only be wrong: 4 of 6 right.
    assert!(
        report.starts_with("top-1 66.67 % on 6 images of 3 classes"),
        "{report}"
    );
    assert!(
        report.contains("purple: 0.0 % of 2 (not a class of the memory)"),
        "{report}"
    );
    assert!(
        report.contains("skipped 1:") && report.contains("notes.png"),
        "{report}"
    );
    assert!(h.query_by_label_contains("top-1 66.67 %").is_some());

    // The same pictures listed in a CSV of `path,label` give the same answer.
    let csv: String = ["blue", "green", "purple"]
        .iter()
        .flat_map(|c| (0..2).map(move |i| format!("{c}/{i}.png,{c}\n")))
        .collect();
    std::fs::write(dir.path().join("list.csv"), csv).unwrap();
    h.get_by_label("…or a labelled file");
    let ctx = h.ctx.clone();
    let (p, k) = h.state_mut();
    p.start_folder_eval(&ctx, k, dir.path().join("list.csv"));
    p.folder_eval_report.clear();
    wait(&mut h, "the evaluation of the CSV", |(p, _)| {
        !p.folder_eval_report.is_empty()
    });
    let report = h.state().0.folder_eval_report.join("\n");
    assert!(
        report.starts_with("top-1 66.67 % on 6 images of 3 classes") && report.contains("list.csv"),
        "{report}"
    );
}
