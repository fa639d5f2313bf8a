//! `procmem export`: one backbone of a training checkpoint as a small model file.

use std::path::PathBuf;

/// `procmem export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The checkpoint (.json or .safetensors of a step).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Export the student instead of the teacher.
    #[arg(long)]
    student: bool,
    /// Output path stem: writes <out>.safetensors and <out>.json.
    #[arg(long)]
    out: PathBuf,
}

impl ExportArgs {
    pub fn run(self) -> anyhow::Result<()> {
        use procmem::model::weights::{Which, export_backbone};
        let ExportArgs {
            checkpoint,
            student,
            out,
        } = self;
        let which = if student {
            Which::Student
        } else {
            Which::Teacher
        };
        let fp = export_backbone(&checkpoint, which, &out)?;
        eprintln!(
            "exported the {} backbone of {} to {} (fingerprint {fp})",
            if student { "student" } else { "teacher" },
            checkpoint.display(),
            out.display()
        );
        Ok(())
    }
}
