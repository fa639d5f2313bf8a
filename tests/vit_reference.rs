//! procmem's ViT against PyTorch: tests/fixtures/vit_micro.safetensors holds a small randomly
//! initialised ViT written with facebookresearch/dino's structure and parameter names, inputs and
//! its outputs, made by tools/make_vit_fixture.py. Loading goes through the timm-style path.

use std::path::Path;

use candle_core::{Device, Tensor};
use procmem::model::weights::{Which, load_backbone};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn cls_and_patch_tokens_match_pytorch_within_1e_4() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit_micro.safetensors");
    // The inputs and PyTorch's outputs sit in a file of their own: the weights file holds only
    // the ViT's tensors (procmem refuses tensors a model does not use).
    let fixture = candle_core::safetensors::load(
        path.with_file_name("vit_micro_io.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let loaded = load_backbone(&path, Which::Teacher, Some(2)).unwrap();
    assert_eq!(loaded.vit.cfg.embed_dim, 32);
    assert_eq!(loaded.vit.cfg.depth, 2);
    for case in ["square", "other"] {
        let input = &fixture[&format!("fixture.input_{case}")];
        let expected = &fixture[&format!("fixture.output_{case}")];
        let tokens = loaded.vit.forward_tokens(input, None).unwrap();
        assert_eq!(tokens.dims(), expected.dims(), "{case}");
        let diff = max_abs_diff(&tokens, expected);
        assert!(diff < 1e-4, "{case}: max |procmem - pytorch| = {diff}");
    }
}

#[test]
fn a_dino_pth_checkpoint_loads_its_teacher_with_prefixes_stripped() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fixture =
        candle_core::safetensors::load(dir.join("vit_micro_io.safetensors"), &Device::Cpu).unwrap();
    let teacher = load_backbone(&dir.join("vit_micro_dino.pth"), Which::Teacher, Some(2)).unwrap();
    let tokens = teacher
        .vit
        .forward_tokens(&fixture["fixture.input_square"], None)
        .unwrap();
    assert!(max_abs_diff(&tokens, &fixture["fixture.output_square"]) < 1e-4);
    // The student entry holds other weights: it must not give the teacher's outputs.
    let student = load_backbone(&dir.join("vit_micro_dino.pth"), Which::Student, Some(2)).unwrap();
    let other = student
        .vit
        .forward_tokens(&fixture["fixture.input_square"], None)
        .unwrap();
    assert!(max_abs_diff(&other, &fixture["fixture.output_square"]) > 1e-2);
    assert_ne!(teacher.fingerprint, student.fingerprint);
}
