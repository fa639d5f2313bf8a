//! `procmem export`: one backbone of a training checkpoint as a small model file, or an exported
//! model stored again (in half precision with `--half`).

use std::path::PathBuf;

/// `procmem export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The checkpoint (.json or .safetensors of a step), or an exported model to store again.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Export the student instead of the teacher (a training checkpoint holds both; an exported
    /// model holds one, which is taken either way).
    #[arg(long)]
    student: bool,
    /// Store the floats in half precision (f16): half the file, values rounded to 11
    /// significant bits, computed in f32 after loading; the fingerprint changes with the
    /// rounding, so measure the file you keep. Refused, naming the tensor, when a value exceeds
    /// ±65,504.
    #[arg(long)]
    half: bool,
    /// Output path stem: writes <out>.safetensors and <out>.json.
    #[arg(long)]
    out: PathBuf,
}

impl ExportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::model::weights::{Precision, Which, export_backbone};
        let ExportArgs {
            checkpoint,
            student,
            half,
            out,
        } = self;
        let which = if student {
            Which::Student
        } else {
            Which::Teacher
        };
        let precision = if half { Precision::F16 } else { Precision::F32 };
        let fp = export_backbone(&checkpoint, which, precision, &out)?;
        eprintln!(
            "exported {} to {} in {} (fingerprint {fp})",
            checkpoint.display(),
            out.display(),
            if half { "f16" } else { "f32" }
        );
        Ok(())
    }
}
