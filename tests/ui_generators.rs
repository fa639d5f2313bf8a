//! The Generators panel, driven like a user would with egui_kittest (fixed seeds, tiny sizes).

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{By, Queryable};
use procmem::app::generators::{GeneratorsPanel, GeneratorsState};

fn wait_until_rendered(harness: &mut Harness<'_, GeneratorsPanel>) {
    let start = Instant::now();
    loop {
        harness.step();
        if harness.state().is_up_to_date() {
            harness.run_steps(2);
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the preview never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn images(panel: &GeneratorsPanel) -> Vec<Vec<u8>> {
    panel.samples().map(|s| s.image.as_raw().clone()).collect()
}

fn harness(state: GeneratorsState) -> Harness<'static, GeneratorsPanel> {
    let ctx = egui::Context::default();
    let panel = GeneratorsPanel::new(&ctx, state);
    Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui_state(|ui, panel: &mut GeneratorsPanel| panel.ui(ui), panel)
}

fn small_kml_state() -> GeneratorsState {
    let mut state = GeneratorsState {
        seed: 5,
        count: 4,
        ..Default::default()
    };
    state.config.process = procmem::generate::Process::ShadersKml;
    state.config.size = 32;
    state.config.kml.resolution = 48;
    state
}

#[test]
fn changing_k_or_the_seed_changes_the_preview() {
    let mut h = harness(small_kml_state());
    wait_until_rendered(&mut h);
    let before = images(h.state());
    assert_eq!(before.len(), 4);

    // Raise k with the k field.
    let k = h.get_by_label("k");
    k.set_value_accesskit(3.0);
    h.run_steps(2);
    assert_eq!(h.state().state.config.kml.k, 3);
    wait_until_rendered(&mut h);
    let with_k3 = images(h.state());
    assert_ne!(before, with_k3, "k = 3 gave the same images as k = 2");

    // Re-roll the seed.
    h.get_by_label("Re-roll").click();
    h.run_steps(1);
    assert_ne!(h.state().state.seed, 5);
    wait_until_rendered(&mut h);
    assert_ne!(
        with_k3,
        images(h.state()),
        "a new seed gave the same images"
    );
}

#[test]
fn clicking_a_sample_shows_its_decomposition() {
    let mut h = harness(small_kml_state());
    wait_until_rendered(&mut h);
    assert!(h.query_by_label("Decomposition").is_none());
    h.get_by_label("sample 1").click();
    h.run_steps(2);
    assert_eq!(h.state().selected, Some(1));
    h.get_by_label("Decomposition");
    // KML decomposition: s1, its k-means mask, s2, s3 and the result, with program names.
    assert_eq!(h.query_all(By::new().label_contains("s1: ")).count(), 1);
    h.get_by_label("k-means mask of texture 1 (white = s2)");
    assert_eq!(h.query_all(By::new().label_contains("s2: ")).count(), 1);
    assert_eq!(h.query_all(By::new().label_contains("s3: ")).count(), 1);
    h.get_by_label("KML result");
}
