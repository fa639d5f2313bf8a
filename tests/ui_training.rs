//! The Training panel with egui_kittest on a tiny config: start, a few steps, the curve grows,
//! pause (which checkpoints), resume.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use procmem::app::training::{TrainingPanel, TrainingState};
use procmem::generate::{GeneratorConfig, Process};
use procmem::model::HeadConfig;
use procmem::train::augment::AugmentConfig;
use procmem::train::{DataSource, TrainConfig};

fn tiny_state(out: &std::path::Path) -> TrainingState {
    let mut generator = GeneratorConfig {
        process: Process::KmlMixup,
        size: 32,
        ..Default::default()
    };
    generator.kml.resolution = 32;
    TrainingState {
        config: TrainConfig {
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
            steps: 1000,
            checkpoint_every: 1000,
            ..Default::default()
        },
        out_dir: out.to_path_buf(),
    }
}

fn wait_for(h: &mut Harness<'_, TrainingPanel>, what: &str, done: impl Fn(&TrainingPanel) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        h.step();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; status: {}",
            h.state().status
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn start_watch_the_curve_grow_pause_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let panel = TrainingPanel::new(tiny_state(dir.path()));
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 800.0))
        .build_ui_state(|ui, p: &mut TrainingPanel| p.ui(ui), panel);
    h.run_steps(2);
    assert!(
        h.query_by_label("Pause").is_none(),
        "nothing runs before Start"
    );

    h.get_by_label("Start").click();
    h.run_steps(1);
    assert!(h.state().is_running());
    wait_for(&mut h, "two steps", |p| p.metrics.len() >= 2);
    let seen = h.state().metrics.len();
    wait_for(&mut h, "more steps", |p| p.metrics.len() > seen);
    assert!(
        h.state()
            .metrics
            .windows(2)
            .all(|w| w[1].step == w[0].step + 1)
    );

    h.get_by_label("Pause").click();
    wait_for(&mut h, "the run to stop", |p| !p.is_running());
    let stopped_at = h.state().metrics.last().unwrap().step;
    assert!(stopped_at < 1000);
    assert!(
        dir.path().join("last.json").exists(),
        "pausing saves a checkpoint"
    );
    assert_eq!(
        h.state().checkpoints.last().map(|c| c.step),
        Some(stopped_at)
    );
    assert!(
        h.state().checkpoints[0]
            .provenance
            .contains("procedural only")
    );

    h.get_by_label("Resume").click();
    h.run_steps(1);
    wait_for(&mut h, "a resumed step", |p| {
        p.metrics.last().is_some_and(|m| m.step > stopped_at)
    });
    h.get_by_label("Pause").click();
    wait_for(&mut h, "the run to stop again", |p| !p.is_running());
}

#[test]
fn before_any_run_the_panel_shows_the_bundled_models_titled_curves() {
    let dir = tempfile::tempdir().unwrap();
    let panel = TrainingPanel::new(tiny_state(dir.path()));
    let mut h = Harness::builder()
        .with_size(egui::vec2(1200.0, 1400.0))
        .build_ui_state(|ui, p: &mut TrainingPanel| p.ui(ui), panel);
    h.run_steps(2);
    h.get_by_label_contains("the bundled model's own training run (1000 steps");
    h.get_by_label_contains("DINO loss");
    h.get_by_label_contains("Teacher entropy");
    h.get_by_label_contains("Learning rate");
}
