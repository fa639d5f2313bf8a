//! Helpers shared by the egui_kittest UI tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use procmem::model::weights::{
    CHECKPOINT_FORMAT, CheckpointMeta, Provenance, fingerprint, new_backbone, save_checkpoint,
    var_tensors,
};

/// Steps the harness until `done` holds (a background job finished), then two more frames.
pub fn wait<S>(h: &mut Harness<'_, S>, what: &str, done: impl Fn(&S) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        h.step();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

/// A micro ViT from `seed`, written as a procmem model export; returns its fingerprint.
#[allow(dead_code)] // used by the test binaries that list models, not by every one that includes this file
pub fn write_model(path: &Path, seed: u64, sources: &str, procedural: bool) -> String {
    let cfg = procmem::model::VitConfig::preset("micro").unwrap();
    let (_, vars) = new_backbone(&cfg, seed).unwrap();
    let backbone = var_tensors(&vars).unwrap();
    let fp = fingerprint(&backbone).unwrap();
    let tensors: BTreeMap<String, candle_core::Tensor> = backbone
        .into_iter()
        .map(|(k, v)| (format!("teacher.backbone.{k}"), v))
        .collect();
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT.into(),
        version: 1,
        vit: cfg,
        train_config: serde_json::json!({"trainer": "test"}),
        step: 7,
        seed,
        provenance: Provenance {
            sources: vec![sources.into()],
            procedural_only: procedural,
            images_seen: 448,
        },
        fingerprint: fp.clone(),
        procmem_version: "test".into(),
        exported_backbone: Some("teacher".into()),
        standardisation: None,
        patch_standardisation: None,
        pooling: Default::default(),
    };
    save_checkpoint(path, &tensors, &meta).unwrap();
    fp
}
