//! The Models panel's "Evaluate" with egui_kittest: the proxy protocol (kNN on Fashion-MNIST's
//! validation split) runs on a worker for the chosen model, its number shows beside the model
//! and is appended to the user's results file, equal to a direct `eval::proxy` computation; a
//! missing data folder is a message naming it, and nothing is written.

#[path = "common/ui.rs"]
mod ui_common;

use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use procmem::app::models::{ModelsPanel, ModelsState};
use procmem::embed::FeatureSource;
use procmem::eval::{proxy, results};
use ui_common::{wait, write_model};

/// A Fashion-MNIST-shaped folder of `n` training images (and 6 test images) whose class is the
/// band of rows they light; IDX files left uncompressed under their `.gz` names (the reader
/// goes by content).
fn write_fake_fashion_mnist(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, count) in [("train", n), ("t10k", 6)] {
        let mut images = vec![0, 0, 8, 3];
        let mut labels = vec![0, 0, 8, 1];
        for header in [&mut images, &mut labels] {
            header.extend((count as u32).to_be_bytes());
        }
        images.extend(28u32.to_be_bytes());
        images.extend(28u32.to_be_bytes());
        for i in 0..count {
            let class = i % 3;
            images.extend((0..28 * 28).map(|p| if p / 28 / 10 == class { 220 } else { 10 }));
            labels.push(class as u8);
        }
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte.gz")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), labels).unwrap();
    }
}

#[test]
fn evaluate_runs_the_proxy_on_a_worker_and_keeps_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let model = models.join("tiny.json");
    let fp = write_model(&model, 3, "procedural:shaders (test)", true);
    let data = dir.path().join("fashion-mnist");
    write_fake_fashion_mnist(&data, 48);
    let own = dir.path().join("own-results.jsonl");

    let mut panel = ModelsPanel::new(ModelsState {
        folders: vec![models.clone()],
        extra: Vec::new(),
        results: dir.path().join("zoo-results.jsonl"),
    });
    panel.proxy_data = Some(data.clone());
    panel.proxy_results = Some(own.clone());
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 600.0))
        .build_ui_state(|ui, p: &mut ModelsPanel| p.ui(ui, None, false), panel);
    h.run_steps(2);
    h.get_by_label("not evaluated");
    h.get_by_label("Evaluate").click();
    wait(&mut h, "the proxy evaluation", |p| !p.message.is_empty());
    let message = h.state().message.clone();
    assert!(message.contains("validation proxy"), "{message}");

    let direct = proxy::fashion_mnist_val(
        &FeatureSource::from_spec(&model.to_string_lossy()).unwrap(),
        &data,
        |_| {},
        || false,
    )
    .unwrap();
    let saved = results::read(&own);
    assert_eq!(saved.len(), 1);
    assert_eq!(
        (saved[0].fingerprint.as_str(), saved[0].dataset.as_str()),
        (fp.as_str(), proxy::DATASET)
    );
    assert_eq!(saved[0].value, direct);
    h.get_by_label(&format!("FMNIST val proxy {:.1} %", direct * 100.0));

    // No data: a message naming the folder, nothing written.
    let missing = dir.path().join("no-data-here");
    h.state_mut().proxy_data = Some(missing);
    h.get_by_label("Evaluate").click();
    wait(&mut h, "the failed evaluation", |p| {
        p.message.contains("no-data-here")
    });
    assert!(
        h.state().message.contains("fetch-eval-data"),
        "{}",
        h.state().message
    );
    assert_eq!(results::read(&own).len(), 1);
}
