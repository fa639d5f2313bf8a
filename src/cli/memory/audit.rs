//! `procmem memory audit`: an unlearning certificate for a deletion.

use super::*;

/// `procmem memory audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    original: PathBuf,
    edited: PathBuf,
    /// Certificate (JSON).
    #[arg(long)]
    out: PathBuf,
    /// A memory file of images never added (same model), for the membership test; e.g. the
    /// demo's `assets/demo/queries.pmem`.
    #[arg(long)]
    never_added: Option<PathBuf>,
    /// More files or folders to scan (exports, neighbour JSON, copies).
    #[arg(long)]
    scan: Vec<PathBuf>,
    /// Scan only EDITED and --scan paths, not procmem's own folders (the app's saved copies
    /// and re-embedding cache, the evaluation embedding cache).
    #[arg(long)]
    no_default_scan: bool,
    /// Delete the cache files (under procmem's cache folders only) in which deleted bytes were
    /// found, then audit again. Memory files and --scan paths are never deleted.
    #[arg(long)]
    purge_caches: bool,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl AuditArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let AuditArgs {
            original,
            edited,
            out,
            never_added,
            mut scan,
            no_default_scan,
            purge_caches,
            k,
            seed,
        } = self;
        let (original, edited, out, never_added) = (
            original.as_path(),
            edited.as_path(),
            out.as_path(),
            never_added.as_deref(),
        );
        use procmem::eval::audit::{AuditInput, audit};
        use procmem::memory::Memory;
        let never = never_added.map(Memory::open).transpose()?;
        if !no_default_scan {
            scan.push(procmem::paths::user_data_dir());
            if let Some(d) = procmem::paths::data_dir() {
                scan.push(d.join("cache"));
            }
        }
        let caches: Vec<PathBuf> = std::iter::once(procmem::paths::user_data_dir().join("cache"))
            .chain(procmem::paths::data_dir().map(|d| d.join("cache")))
            .collect();
        let input = AuditInput {
            original,
            edited,
            never_added: never.as_ref(),
            scan,
            k,
            seed,
        };
        let mut cert = audit(&input, |s| eprintln!("{s}"))?;
        if purge_caches && !cert.byte_scan.findings.is_empty() {
            let mut purged = std::collections::BTreeSet::new();
            for f in &cert.byte_scan.findings {
                if caches.iter().any(|c| f.path.starts_with(c)) && purged.insert(f.path.clone()) {
                    std::fs::remove_file(&f.path)
                        .with_context(|| format!("could not delete {}", f.path.display()))?;
                    eprintln!(
                        "deleted cache file {} (it held deleted bytes; it is rebuilt on demand)",
                        f.path.display()
                    );
                }
            }
            if !purged.is_empty() {
                cert = audit(&input, |s| eprintln!("{s}"))?;
            }
        }
        procmem::fsio::write_atomic(out, &serde_json::to_vec_pretty(&cert)?)?;
        let verdict = |ok: bool| if ok { "passed" } else { "FAILED" };
        println!(
            "unlearning audit of {} deleted entr{} ({} -> {})",
            cert.deleted.len(),
            if cert.deleted.len() == 1 { "y" } else { "ies" },
            original.display(),
            edited.display()
        );
        let e = &cert.equivalence;
        println!(
            "  (a) equivalence: {} — entries byte-identical: {}, {} of {} probe queries differ from a rebuilt memory (k = {})",
            verdict(e.passed),
            e.entries_identical,
            e.mismatched_queries.len(),
            e.probe_queries,
            e.k
        );
        let b = &cert.byte_scan;
        println!(
            "  (b) byte scan: {} — {} files, {:.1} MB scanned for {} needles ({} shared with kept entries dropped), {} finding(s)",
            verdict(b.passed),
            b.files,
            b.bytes as f64 / 1e6,
            b.needles,
            b.shared_needles,
            b.findings.len()
        );
        if !b.unsearchable.is_empty() {
            println!(
                "      entries {:?} have exact duplicates still in the memory: nothing of theirs can be told apart",
                b.unsearchable
            );
        }
        for u in &b.unreadable {
            println!("      could not read {u}");
        }
        for f in b.findings.iter().take(20) {
            println!(
                "      {} at byte {}: the {} of deleted entry {}",
                f.path.display(),
                f.offset,
                f.what,
                f.id
            );
        }
        match &cert.membership {
            Some(m) => println!(
                "  (c) membership: {}{} — AUROC deleted vs never-added {:.3} (95 % interval {:.3}–{:.3}; 0.5 = indistinguishable), members vs never-added {:.3}",
                verdict(m.passed),
                if m.inconclusive {
                    " but inconclusive (fewer than 20 deleted or never-added images; not counted)"
                } else {
                    ""
                },
                m.auroc_deleted,
                m.interval_deleted[0],
                m.interval_deleted[1],
                m.auroc_members
            ),
            None => println!("  (c) membership: not run (give --never-added)"),
        }
        println!("certificate: {} — {}", out.display(), verdict(cert.passed));
        if !cert.passed {
            anyhow::bail!("the audit failed: see {}", out.display());
        }
        Ok(())
    }
}
