//! Crash safety, measured: `procmem` is killed with SIGKILL at random moments while it saves a
//! memory (`memory delete`) and a model file (`export`), dozens of times; after each kill the
//! file opens with a valid checksum and holds either the old or the new content. Nothing is lost.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use procmem::memory::Memory;
use procmem::rng::Rng;

const BIN: &str = env!("CARGO_BIN_EXE_procmem");

/// How long a command takes when left alone: the median of `runs` (three of them).
fn runtime(runs: &[Vec<&str>]) -> Duration {
    let mut times: Vec<Duration> = runs
        .iter()
        .map(|args| {
            let start = Instant::now();
            let status = Command::new(BIN)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "procmem {args:?} fails on its own");
            start.elapsed()
        })
        .collect();
    times.sort();
    times[1]
}

/// Starts `args`, sleeps a random time up to `max`, then SIGKILLs the process (if still alive).
/// Returns whether it was killed before it finished.
fn run_and_kill(args: &[&str], max: Duration, rng: &mut Rng) -> bool {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait = max.mul_f64(rng.uniform());
    let start = Instant::now();
    while start.elapsed() < wait {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    child.kill().ok(); // SIGKILL on Unix
    child.wait().unwrap();
    killed
}

#[test]
fn a_killed_memory_save_leaves_the_old_or_the_new_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.pmem");
    // ~15 MB, so a save takes long enough to be interrupted in the middle.
    let dim = 384;
    let mut m = Memory::new("fp", dim);
    let mut rng = Rng::new(1);
    for i in 0..10_000u64 {
        let e: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        m.add(
            "fp",
            if i % 2 == 0 { "a" } else { "b" },
            &format!("img/{i}.png"),
            i,
            vec![7; 64],
            e,
        )
        .unwrap();
    }
    m.save(&path).unwrap();
    // Calibrate on a copy: kills land uniformly over the command's own run time.
    let probe = dir.path().join("probe.pmem");
    std::fs::copy(&path, &probe).unwrap();
    let probe_str = probe.to_str().unwrap();
    let window =
        runtime(&["1", "3", "5"].map(|id| vec!["memory", "delete", probe_str, "--id", id]))
            .mul_f64(1.2);
    let mut live = m.len();
    let (mut killed, mut finished) = (0, 0);
    for round in 0..30u64 {
        let id = (round * 97) % 10_000;
        let path_str = path.to_str().unwrap();
        let was_killed = run_and_kill(
            &["memory", "delete", path_str, "--id", &id.to_string()],
            window,
            &mut rng,
        );
        let reopened = Memory::open(&path).unwrap_or_else(|e| {
            panic!("round {round}: the memory does not open after a kill: {e}")
        });
        // Old content (the delete did not land) or new (it did): nothing else.
        assert!(
            reopened.len() == live || reopened.len() == live - 1,
            "round {round}: {} entries, {live} before",
            reopened.len()
        );
        if reopened.len() == live - 1 {
            assert!(reopened.get(id).is_none());
            live -= 1;
        } else {
            assert!(reopened.get(id).is_some());
        }
        if was_killed {
            killed += 1
        } else {
            finished += 1
        }
    }
    eprintln!(
        "30 saves: {killed} killed mid-run, {finished} finished; every file opened with a valid checksum"
    );
    assert!(
        killed >= 5,
        "the test must actually interrupt saves ({killed} of 30 were killed)"
    );
}

#[test]
fn a_killed_model_export_leaves_no_half_written_model() {
    // `procmem export` writes the tensors, then the JSON that makes them visible.
    use procmem::model::weights::{Which, load_backbone};
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit_micro.safetensors");
    let tensors = candle_core::safetensors::load(&fixture, &candle_core::Device::Cpu).unwrap();
    let ckpt = dir.path().join("ckpt");
    let cfg = procmem::model::weights::infer_config(&tensors, Some(2), &fixture).unwrap();
    let stored: std::collections::BTreeMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (format!("teacher.backbone.{k}"), v))
        .collect();
    let meta = procmem::model::weights::CheckpointMeta {
        format: procmem::model::weights::CHECKPOINT_FORMAT.into(),
        version: 1,
        vit: cfg,
        train_config: serde_json::json!({}),
        step: 1,
        seed: 0,
        provenance: procmem::model::weights::Provenance {
            sources: vec!["procedural:test".into()],
            procedural_only: true,
            images_seen: 1,
        },
        fingerprint: String::new(),
        procmem_version: "test".into(),
        exported_backbone: None,
        standardisation: None,
        patch_standardisation: None,
        pooling: Default::default(),
    };
    procmem::model::weights::save_checkpoint(&ckpt, &stored, &meta).unwrap();
    let out = dir.path().join("model");
    let ckpt_json = ckpt.with_extension("json");
    let args = [
        "export",
        "--checkpoint",
        ckpt_json.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let window = runtime(&[args.to_vec(), args.to_vec(), args.to_vec()]).mul_f64(1.2);
    std::fs::remove_file(out.with_extension("json")).unwrap();
    std::fs::remove_file(out.with_extension("safetensors")).unwrap();
    let mut rng = Rng::new(2);
    let mut killed = 0;
    for round in 0..30 {
        if run_and_kill(&args, window, &mut rng) {
            killed += 1;
        }
        // Either no model yet, or a whole one: a visible JSON always has its tensors.
        if out.with_extension("json").exists() {
            load_backbone(&out.with_extension("json"), Which::Teacher, None)
                .unwrap_or_else(|e| panic!("round {round}: half-written model: {e}"));
        }
    }
    eprintln!("30 exports, {killed} killed mid-run; every visible model loaded");
}
