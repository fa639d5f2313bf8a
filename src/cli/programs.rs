//! `procmem programs`: list the procedural programs, compile every one, report those that fail.

use procmem::generate::programs::ProgramLibrary;

/// `procmem programs`.
#[derive(clap::Args)]
pub struct ProgramsArgs {
    /// Also compile each program on the GPU adapter (not only validate it).
    #[arg(long)]
    compile: bool,
}

impl ProgramsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let compile = self.compile;
        let library = ProgramLibrary::load(ProgramLibrary::default_user_dir().as_deref());
        let mut renderer = if compile {
            Some(procmem::generate::gpu::GpuRenderer::new()?)
        } else {
            None
        };
        let mut failures = library.rejected.len();
        for p in &library.programs {
            let status = match renderer.as_mut().map(|r| r.pipeline(p)) {
                Some(Err(e)) => {
                    failures += 1;
                    format!("FAILED: {e}")
                }
                _ => "ok".to_string(),
            };
            let params: Vec<&str> = p.params.iter().map(|q| q.name.as_str()).collect();
            println!(
                "{:<28} {:<10} {:<34} [{}] {}",
                p.id,
                p.family,
                p.name,
                params.join(", "),
                status
            );
        }
        for r in &library.rejected {
            println!("{:<28} SKIPPED\n{}", r.id, r.message);
        }
        println!("{} programs, {} skipped", library.programs.len(), failures);
        Ok(())
    }
}
