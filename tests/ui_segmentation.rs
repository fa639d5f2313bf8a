//! The Segmentation panel with egui_kittest on a tiny random-init model: painting strokes on
//! the prompt changes the query's predicted mask (and undo restores it); toggling PCA shows the
//! overlay; the demo pair opens at start.

#[path = "common/ui.rs"]
mod ui_common;

use std::path::PathBuf;
use std::sync::Arc;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use procmem::app::knowledge::{Knowledge, Perception};
use procmem::app::segmentation::{Picture, SegmentationPanel, SegmentationState};
use procmem::embed::FeatureSource;
use procmem::memory::Memory;
use ui_common::wait;

fn knowledge() -> Knowledge {
    let cfg = procmem::model::VitConfig::preset("micro").unwrap();
    let source = FeatureSource::random_like(&cfg).unwrap();
    let memory = Memory::new(&source.fingerprint(), cfg.embed_dim);
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
        None,
        10,
    )
    .unwrap()
}

/// A red square on a blue-gray ground, at (x, y).
fn picture(x: u32, y: u32) -> image::RgbImage {
    image::RgbImage::from_fn(64, 64, |px, py| {
        if (x..x + 24).contains(&px) && (y..y + 24).contains(&py) {
            image::Rgb([220, 30, 30])
        } else {
            image::Rgb([60, 70, 90 + (px % 7) as u8])
        }
    })
}

type State = (SegmentationPanel, Knowledge);

fn harness(panel: SegmentationPanel) -> Harness<'static, State> {
    Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui_state(|ui, (p, k): &mut State| p.ui(ui, k), (panel, knowledge()))
}

fn predicted_sum(s: &State) -> f32 {
    s.0.predicted
        .as_ref()
        .map_or(0.0, |m| m.values.iter().sum())
}

#[test]
fn painting_the_prompt_changes_the_query_mask_and_undo_restores_it() {
    let mut panel = SegmentationPanel::new(SegmentationState {
        grid: 4,
        ..Default::default()
    });
    panel.set_prompt(Picture::new("prompt".into(), picture(8, 8), None));
    panel.set_query(Picture::new("query".into(), picture(30, 30), None));
    let mut h = harness(panel);
    wait(&mut h, "the patch features", |(p, _)| p.analysis.is_some());
    assert_eq!(
        predicted_sum(h.state()),
        0.0,
        "nothing painted, nothing predicted"
    );

    // A stroke across the prompt's red square.
    let rect = h.get_by_label("prompt image").rect();
    let at = |fx: f32, fy: f32| rect.min + egui::vec2(rect.width() * fx, rect.height() * fy);
    h.hover_at(at(0.2, 0.3));
    h.drag_at(at(0.2, 0.3));
    h.step();
    for i in 0..6 {
        h.hover_at(at(0.2 + 0.03 * i as f32, 0.3));
        h.step();
    }
    h.drop_at(at(0.38, 0.3));
    h.run_steps(2);
    let (p, _) = h.state();
    let painted: f32 = p.mask.as_ref().unwrap().values.iter().sum();
    assert!(painted > 0.0, "the stroke painted the prompt mask");
    let after_stroke = predicted_sum(h.state());
    assert!(after_stroke > 0.0, "the query's mask follows the stroke");

    // The in-context prediction equals a direct computation from the painted mask.
    let (p, _) = h.state();
    let a = p.analysis.as_ref().unwrap();
    let mask = p
        .mask
        .as_ref()
        .unwrap()
        .resize(a.prompt.cols * a.block, a.prompt.rows * a.block);
    let direct = procmem::dense::segment::in_context(
        &[procmem::dense::segment::Prompt {
            features: &a.prompt,
            mask: &mask,
        }],
        &a.query,
        a.block,
        p.state.attention_sharpness,
    )
    .unwrap()
    .resize(64, 64);
    for (x, y) in direct
        .values
        .iter()
        .zip(&p.predicted.as_ref().unwrap().values)
    {
        assert!((x - y).abs() < 1e-5);
    }

    h.get_by_label("Undo").click();
    h.run_steps(2);
    assert_eq!(
        predicted_sum(h.state()),
        0.0,
        "undo removes the stroke and its prediction"
    );
}

#[test]
fn toggling_pca_shows_the_overlay_and_kmeans_swaps_it() {
    let mut panel = SegmentationPanel::new(SegmentationState {
        grid: 4,
        ..Default::default()
    });
    panel.set_prompt(Picture::new("prompt".into(), picture(8, 8), None));
    panel.set_query(Picture::new("query".into(), picture(30, 30), None));
    let mut h = harness(panel);
    wait(&mut h, "the patch features", |(p, _)| p.analysis.is_some());
    assert!(!h.state().0.overlay_shown(0) && !h.state().0.overlay_shown(1));
    h.get_by_label("PCA").click();
    h.run_steps(2);
    assert!(
        h.state().0.overlay_shown(0) && h.state().0.overlay_shown(1),
        "PCA over both images"
    );
    h.get_by_label("K-means").click();
    h.run_steps(2);
    assert!(h.state().0.overlay_shown(1));
    h.get_by_label("None").click();
    h.run_steps(2);
    assert!(!h.state().0.overlay_shown(1));
}

#[test]
fn the_demo_pair_opens_with_its_true_masks() {
    let mut h = harness(SegmentationPanel::new(SegmentationState {
        grid: 4,
        ..Default::default()
    }));
    h.run_steps(2);
    wait(&mut h, "the demo pair's features", |(p, _)| {
        p.analysis.is_some()
    });
    let (p, _) = h.state();
    assert!(
        p.prompt.as_ref().unwrap().truth.is_some() && p.query.as_ref().unwrap().truth.is_some()
    );
    h.get_by_label("True mask 2").click();
    h.run_steps(2);
    let (p, _) = h.state();
    assert!(predicted_sum(h.state()) > 0.0);
    let (class, iou) = p.iou().expect("the query has a true mask");
    assert_eq!(class, 2);
    assert!(iou > 0.0 && iou <= 1.0);
}
