//! An unlearning certificate: evidence that entries deleted from a memory are gone, in three
//! independent checks (issue 18, part 5), written as JSON with content hashes.
//!
//! - **Equivalence.** Every neighbour list (ids and similarity bits) and every prediction of the
//!   edited memory equals that of a memory rebuilt from the original without the deleted
//!   entries, for every probe query; and the edited file holds exactly the original's other
//!   entries, byte for byte.
//! - **Byte scan.** No file procmem wrote — the edited memory, embedding caches, the app's saved
//!   copies, exports, any path given — still contains a deleted entry's embedding (its 4·dim
//!   bytes, or any 64-byte window of them), its thumbnail (any 64-byte window of the PNG's image
//!   data) or its source name. One pass per file (Aho–Corasick over all needles).
//! - **Membership test.** A deleted image's similarity to the edited memory (its top-1 cosine)
//!   should look like that of images never added: the AUROC of deleted vs never-added scores,
//!   with a bootstrap 95 % interval, near 0.5; members vs never-added, for contrast, near 1.0
//!   (each member finds itself). The test passes when the interval contains 0.5 or lies below
//!   it; with fewer than 20 deleted or never-added images it is inconclusive (reported, not
//!   counted). A near-duplicate left in the memory can legitimately fail it — delete those too.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::hash::fnv1a;
use crate::memory::{ExactIndex, Memory, Neighbour, VoteRule, vote::vote};
use crate::rng::Rng;

/// Bytes of each window searched for (a partial copy of this length is found).
pub const WINDOW: usize = 64;

/// A deleted entry, as the certificate names it.
#[derive(Clone, Debug, Serialize)]
pub struct DeletedEntry {
    pub id: u64,
    pub label: String,
    /// FNV-1a 64 of the image's bytes as imported (the memory's content hash), hex.
    pub content_hash: String,
    /// FNV-1a 64 of the embedding's f32 LE bytes, hex.
    pub embedding_hash: String,
    /// FNV-1a 64 of the thumbnail PNG, hex.
    pub thumbnail_hash: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Equivalence {
    pub probe_queries: usize,
    pub k: usize,
    /// The edited file holds exactly the original's entries minus the deleted, byte for byte.
    pub entries_identical: bool,
    /// Probe queries whose neighbour list or prediction differs from the rebuilt memory's.
    pub mismatched_queries: Vec<usize>,
    pub passed: bool,
}

/// One deleted entry's bytes found in a file.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub path: PathBuf,
    pub offset: u64,
    pub id: u64,
    /// "embedding", "thumbnail" or "source".
    pub what: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct ByteScan {
    pub files: usize,
    pub bytes: u64,
    /// Paths scanned (folders recursively).
    pub roots: Vec<PathBuf>,
    /// Needles searched for, and needles dropped because a kept entry holds the same bytes.
    pub needles: usize,
    pub shared_needles: usize,
    /// Deleted entries all of whose bytes a kept entry shares (exact duplicates still in the
    /// memory): the scan cannot tell them apart; delete the duplicates too.
    pub unsearchable: Vec<u64>,
    pub findings: Vec<Finding>,
    /// Files that could not be read (each fails the scan: it may hold anything).
    pub unreadable: Vec<String>,
    pub passed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Membership {
    pub deleted: usize,
    pub never_added: usize,
    pub members: usize,
    /// AUROC of deleted (positive) vs never-added top-1 similarities, and its 95 % interval.
    pub auroc_deleted: f64,
    pub interval_deleted: [f64; 2],
    /// The same for members (sampled), for contrast.
    pub auroc_members: f64,
    /// Fewer than [`MIN_GROUP`] deleted or never-added images: the interval is too wide to
    /// tell anything; the test neither passes nor fails the certificate.
    pub inconclusive: bool,
    pub passed: bool,
}

/// The smallest group the membership test draws a conclusion from.
pub const MIN_GROUP: usize = 20;

#[derive(Clone, Debug, Serialize)]
pub struct Certificate {
    pub procmem: &'static str,
    pub original: PathBuf,
    pub original_hash: String,
    pub edited: PathBuf,
    pub edited_hash: String,
    pub model_fingerprint: String,
    pub deleted: Vec<DeletedEntry>,
    pub equivalence: Equivalence,
    pub byte_scan: ByteScan,
    /// Absent without never-added queries.
    pub membership: Option<Membership>,
    pub passed: bool,
}

/// What to audit.
pub struct AuditInput<'a> {
    pub original: &'a Path,
    pub edited: &'a Path,
    /// Embeddings (same model) of images never added to either memory.
    pub never_added: Option<&'a Memory>,
    /// Files and folders to scan besides the edited memory.
    pub scan: Vec<PathBuf>,
    pub k: usize,
    pub seed: u64,
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// Runs the three checks.
///
/// # Errors
/// Unreadable or damaged memory files; memories of different models or dimensions; an edited
/// memory holding entries the original does not (then it is not a deletion).
pub fn audit(input: &AuditInput, progress: impl Fn(&str)) -> Result<Certificate> {
    let original_bytes = std::fs::read(input.original).map_err(|e| Error::io(input.original, e))?;
    let edited_bytes = std::fs::read(input.edited).map_err(|e| Error::io(input.edited, e))?;
    let original = Memory::from_bytes(&original_bytes, input.original)?;
    let edited = Memory::from_bytes(&edited_bytes, input.edited)?;
    if original.model_fingerprint() != edited.model_fingerprint() || original.dim() != edited.dim()
    {
        return Err(Error::Memory(format!(
            "{} and {} are memories of different models ({} vs {}): an audit compares a memory with its own edit",
            input.original.display(),
            input.edited.display(),
            original.model_fingerprint(),
            edited.model_fingerprint()
        )));
    }
    if let Some(e) = edited
        .entries()
        .iter()
        .find(|e| original.get(e.id).is_none())
    {
        return Err(Error::Memory(format!(
            "entry {} of {} is not in {}: not a deletion",
            e.id,
            input.edited.display(),
            input.original.display()
        )));
    }
    let deleted: Vec<&crate::memory::Entry> = original
        .entries()
        .iter()
        .filter(|e| edited.get(e.id).is_none())
        .collect();
    progress(&format!("{} deleted entries", deleted.len()));

    // Equivalence.
    let entries_identical = edited
        .entries()
        .iter()
        .all(|e| original.get(e.id) == Some(e));
    let mut rebuilt = original.clone();
    for e in &deleted {
        rebuilt.delete(e.id);
    }
    // Both memories' labels: an edit may have relabelled entries to a class the original lacks.
    let mut labels = original.labels();
    labels.extend(edited.labels());
    labels.sort();
    labels.dedup();
    let edited_index = ExactIndex::build(&edited, &labels);
    let rebuilt_index = ExactIndex::build(&rebuilt, &labels);
    // Probes: the deleted entries themselves (where a trace would show first), every remaining
    // entry up to 2,000 evenly spaced, and the never-added queries.
    let step = edited.len().div_ceil(2000).max(1);
    let mut probes: Vec<f32> = deleted
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    probes.extend(
        edited
            .entries()
            .iter()
            .step_by(step)
            .flat_map(|e| e.embedding.iter().copied()),
    );
    if let Some(q) = input.never_added {
        probes.extend(q.entries().iter().flat_map(|e| e.embedding.iter().copied()));
    }
    let n_probes = probes.len() / original.dim().max(1);
    progress(&format!("equivalence over {n_probes} probe queries"));
    let k = input.k.max(1);
    let rule = VoteRule::default();
    let same = |a: &[Neighbour], b: &[Neighbour]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.id == y.id && x.similarity.to_bits() == y.similarity.to_bits())
    };
    let mismatched_queries: Vec<usize> = edited_index
        .search(&probes, k)
        .iter()
        .zip(rebuilt_index.search(&probes, k))
        .enumerate()
        .filter(|(_, (a, b))| {
            !same(a, b)
                || vote(a, k, labels.len(), rule).prediction
                    != vote(b, k, labels.len(), rule).prediction
        })
        .map(|(i, _)| i)
        .collect();
    let equivalence = Equivalence {
        probe_queries: n_probes,
        k,
        entries_identical,
        passed: entries_identical && mismatched_queries.is_empty(),
        mismatched_queries,
    };

    // Byte scan.
    let mut roots = vec![input.edited.to_path_buf()];
    roots.extend(input.scan.iter().cloned());
    progress(&format!(
        "scanning {} path(s) for the deleted bytes",
        roots.len()
    ));
    // A needle shared with a kept entry (an identical thumbnail stretch, a duplicate image) is
    // no evidence of the deleted one: it is dropped, and counted.
    let mut kept = Vec::new();
    for e in edited.entries() {
        kept.extend_from_slice(&e.thumbnail);
        kept.push(0xff);
        kept.extend(embedding_bytes(&e.embedding));
        kept.extend_from_slice(e.source.as_bytes());
        kept.push(0xff);
    }
    let byte_scan = scan(&roots, &deleted, &[input.original], &kept)?;

    // Membership.
    let membership = match input.never_added {
        Some(q) if !deleted.is_empty() && !q.is_empty() && q.dim() == edited.dim() => {
            progress("membership test");
            Some(membership(&edited_index, &deleted, q, &edited, input.seed))
        }
        _ => None,
    };

    let passed = equivalence.passed
        && byte_scan.passed
        && membership
            .as_ref()
            .is_none_or(|m| m.passed || m.inconclusive);
    Ok(Certificate {
        procmem: env!("CARGO_PKG_VERSION"),
        original: input.original.to_path_buf(),
        original_hash: hex(fnv1a(&original_bytes)),
        edited: input.edited.to_path_buf(),
        edited_hash: hex(fnv1a(&edited_bytes)),
        model_fingerprint: original.model_fingerprint().to_string(),
        deleted: deleted
            .iter()
            .map(|e| DeletedEntry {
                id: e.id,
                label: e.label.clone(),
                content_hash: hex(e.content_hash),
                embedding_hash: hex(fnv1a(&embedding_bytes(&e.embedding))),
                thumbnail_hash: hex(fnv1a(&e.thumbnail)),
            })
            .collect(),
        equivalence,
        byte_scan,
        membership,
        passed,
    })
}

fn embedding_bytes(e: &[f32]) -> Vec<u8> {
    e.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The needles of one deleted entry: 64-byte windows tiling its embedding and its thumbnail's
/// image data (the PNG signature and header chunk are the same for every thumbnail of one size,
/// so they are skipped), and its source name when long enough to be specific.
fn needles(e: &crate::memory::Entry, out: &mut Vec<(Vec<u8>, u64, &'static str)>) {
    let emb = embedding_bytes(&e.embedding);
    // Windows every 64 bytes: any surviving copy of ≥ 128 contiguous bytes contains one.
    for w in emb.chunks(WINDOW).filter(|w| w.len() == WINDOW) {
        out.push((w.to_vec(), e.id, "embedding"));
    }
    let data = e
        .thumbnail
        .windows(4)
        .position(|w| w == b"IDAT")
        .map_or(e.thumbnail.len(), |p| p + 4);
    for w in e.thumbnail[data.min(e.thumbnail.len())..]
        .chunks(WINDOW)
        .filter(|w| w.len() == WINDOW)
    {
        out.push((w.to_vec(), e.id, "thumbnail"));
    }
    if e.source.len() >= 12 {
        out.push((e.source.as_bytes().to_vec(), e.id, "source"));
    }
}

/// Scans files and folders (recursively, symlinks not followed) for the deleted entries' bytes;
/// `skip` are files not to scan (the original, which holds them by definition).
/// Needles found in `shared` (the kept entries' bytes) are dropped first.
pub fn scan(
    roots: &[PathBuf],
    deleted: &[&crate::memory::Entry],
    skip: &[&Path],
    shared: &[u8],
) -> Result<ByteScan> {
    let mut patterns = Vec::new();
    for e in deleted {
        needles(e, &mut patterns);
    }
    let build = |p: &[(Vec<u8>, u64, &'static str)]| {
        aho_corasick::AhoCorasick::new(p.iter().map(|p| &p.0))
            .map_err(|e| Error::Memory(format!("could not build the byte scanner: {e}")))
    };
    let mut shared_needles = 0;
    if !patterns.is_empty() && !shared.is_empty() {
        let mut drop = vec![false; patterns.len()];
        for hit in build(&patterns)?.find_overlapping_iter(shared) {
            drop[hit.pattern().as_usize()] = true;
        }
        shared_needles = drop.iter().filter(|&&d| d).count();
        let mut i = 0;
        patterns.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
    }
    let searched: std::collections::BTreeSet<u64> = patterns.iter().map(|p| p.1).collect();
    let unsearchable: Vec<u64> = deleted
        .iter()
        .map(|e| e.id)
        .filter(|id| !searched.contains(id))
        .collect();
    let mut findings = Vec::new();
    let mut unreadable = Vec::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    let skip: Vec<PathBuf> = skip.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let mut stack: Vec<PathBuf> = roots.to_vec();
    let matcher = if patterns.is_empty() {
        None
    } else {
        Some(build(&patterns)?)
    };
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // A root that does not exist holds nothing (e.g. no cache was ever written).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| Error::io(&path, e))?
                .filter_map(|d| d.ok().map(|d| d.path()))
                .collect();
            children.sort();
            stack.extend(children.into_iter().rev());
            continue;
        }
        if !meta.is_file() || path.canonicalize().is_ok_and(|c| skip.contains(&c)) {
            continue;
        }
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            // An unreadable file may hold anything: it is a finding, not the end of the scan.
            Err(e) => {
                unreadable.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        files += 1;
        bytes += data.len() as u64;
        if let Some(m) = &matcher {
            let mut reported: std::collections::HashSet<(u64, &str)> =
                std::collections::HashSet::new();
            for hit in m.find_overlapping_iter(&data) {
                let (_, id, what) = &patterns[hit.pattern().as_usize()];
                // A source name is found only as a whole name ("…#12" is not inside "…#123").
                let name_char = |b: &u8| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b'#')
                };
                if *what == "source"
                    && (data.get(hit.end()).is_some_and(name_char)
                        || hit
                            .start()
                            .checked_sub(1)
                            .and_then(|i| data.get(i))
                            .is_some_and(name_char))
                {
                    continue;
                }
                // One finding per (file, entry, kind) is enough to fail; keep the first.
                if reported.insert((*id, *what)) {
                    findings.push(Finding {
                        path: path.clone(),
                        offset: hit.start() as u64,
                        id: *id,
                        what,
                    });
                }
            }
        }
    }
    Ok(ByteScan {
        files,
        bytes,
        roots: roots.to_vec(),
        needles: patterns.len(),
        shared_needles,
        unsearchable,
        passed: findings.is_empty() && unreadable.is_empty(),
        findings,
        unreadable,
    })
}

/// Top-1 similarity of each embedding to the index.
fn top1(index: &ExactIndex, rows: &[f32]) -> Vec<f32> {
    index
        .search(rows, 1)
        .iter()
        .map(|n| n.first().map_or(-1.0, |n| n.similarity))
        .collect()
}

/// AUROC of positives vs negatives, ties counting ½: [`super::ood::auroc`] (0.5 for an empty
/// group, which the membership test never passes).
pub fn auroc(pos: &[f32], neg: &[f32]) -> f64 {
    super::ood::auroc(pos, neg).unwrap_or(0.5)
}

fn membership(
    index: &ExactIndex,
    deleted: &[&crate::memory::Entry],
    never: &Memory,
    edited: &Memory,
    seed: u64,
) -> Membership {
    let deleted_rows: Vec<f32> = deleted
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    let never_rows: Vec<f32> = never
        .entries()
        .iter()
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    let step = edited
        .len()
        .div_ceil(deleted.len().max(never.len()).max(1))
        .max(1);
    let member_rows: Vec<f32> = edited
        .entries()
        .iter()
        .step_by(step)
        .flat_map(|e| e.embedding.iter().copied())
        .collect();
    let (d, q, m) = (
        top1(index, &deleted_rows),
        top1(index, &never_rows),
        top1(index, &member_rows),
    );
    let auroc_deleted = auroc(&d, &q);
    // Bootstrap: resample both groups with replacement, 1,000 times, seeded.
    let mut rng = Rng::new(seed);
    let mut boots: Vec<f64> = (0..1000)
        .map(|_| {
            let bd: Vec<f32> = (0..d.len()).map(|_| d[rng.below(d.len())]).collect();
            let bq: Vec<f32> = (0..q.len()).map(|_| q[rng.below(q.len())]).collect();
            auroc(&bd, &bq)
        })
        .collect();
    boots.sort_by(f64::total_cmp);
    let interval_deleted = [boots[25], boots[974]];
    Membership {
        deleted: d.len(),
        never_added: q.len(),
        members: m.len(),
        auroc_deleted,
        interval_deleted,
        auroc_members: auroc(&m, &q),
        inconclusive: d.len() < MIN_GROUP || q.len() < MIN_GROUP,
        passed: interval_deleted[0] <= 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cache::EmbeddingCache;
    use crate::memory::import::thumbnail_png;

    /// 40 entries in 4 classes of noise pictures (random unit embeddings, real PNG thumbnails
    /// with black borders, so thumbnails share their first compressed bytes).
    fn memory(seed: u64, n: usize, dim: usize) -> Memory {
        let mut rng = Rng::new(seed);
        let mut m = Memory::new("fp", dim);
        for i in 0..n {
            let img = image::RgbImage::from_fn(28, 28, |x, y| {
                let v = if (4..24).contains(&x) && (4..24).contains(&y) {
                    rng.below(256) as u8
                } else {
                    0
                };
                image::Rgb([v, v, v])
            });
            let mut e: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
            e.iter_mut().for_each(|x| *x /= norm);
            let source = format!("photos/class-{}/img-{seed}-{i}.png", i % 4);
            m.add(
                "fp",
                &format!("c{}", i % 4),
                &source,
                1000 + i as u64,
                thumbnail_png(&img, 28),
                e,
            )
            .unwrap();
        }
        m
    }

    #[test]
    fn a_clean_deletion_is_certified_and_a_stale_cache_fails_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let (orig_path, edited_path) =
            (dir.path().join("orig.pmem"), dir.path().join("edited.pmem"));
        let original = memory(1, 40, 32);
        original.save(&orig_path).unwrap();
        let mut edited = original.clone();
        for id in [3, 17] {
            edited.delete(id).unwrap();
        }
        edited.save(&edited_path).unwrap();
        let never = memory(2, 30, 32);
        let caches = dir.path().join("caches");
        std::fs::create_dir_all(&caches).unwrap();
        // A cache of the edited memory's embeddings only: clean.
        let cache = EmbeddingCache::new(&caches);
        let kept: Vec<f32> = edited
            .entries()
            .iter()
            .flat_map(|e| e.embedding.iter().copied())
            .collect();
        cache.put("fp", "kept", &kept, 32).unwrap();
        let input = AuditInput {
            original: &orig_path,
            edited: &edited_path,
            never_added: Some(&never),
            scan: vec![caches.clone()],
            k: 5,
            seed: 0,
        };
        let cert = audit(&input, |_| {}).unwrap();
        assert!(cert.passed, "{:#?}", cert.byte_scan);
        assert_eq!(
            cert.deleted.iter().map(|d| d.id).collect::<Vec<_>>(),
            [3, 17]
        );
        assert!(
            cert.equivalence.entries_identical && cert.equivalence.mismatched_queries.is_empty()
        );
        assert_eq!(cert.byte_scan.files, 2, "the edited memory and the cache");
        assert!(
            cert.byte_scan.shared_needles > 0,
            "the black-border thumbnail bytes all entries share are no evidence"
        );
        let m = cert.membership.as_ref().unwrap();
        assert!(
            m.inconclusive && m.auroc_members > 0.99,
            "two deleted entries are too few to conclude: {m:?}"
        );

        // A stale cache (written before the deletion: it still holds entry 17's embedding).
        let all: Vec<f32> = original
            .entries()
            .iter()
            .flat_map(|e| e.embedding.iter().copied())
            .collect();
        cache.put("fp", "stale", &all, 32).unwrap();
        let cert = audit(&input, |_| {}).unwrap();
        assert!(!cert.passed && !cert.byte_scan.passed);
        let found: std::collections::BTreeSet<(u64, &str)> = cert
            .byte_scan
            .findings
            .iter()
            .map(|f| (f.id, f.what))
            .collect();
        assert_eq!(
            found,
            [(3, "embedding"), (17, "embedding")].into_iter().collect()
        );
        assert!(
            cert.byte_scan
                .findings
                .iter()
                .all(|f| f.path.to_string_lossy().contains("stale"))
        );

        // An export naming a deleted entry's source is found too; a longer name is not it.
        std::fs::remove_file(
            cache
                .dir()
                .read_dir()
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().contains("stale"))
                .unwrap(),
        )
        .unwrap();
        std::fs::write(
            caches.join("export.csv"),
            "id,source\n17,photos/class-1/img-1-17.png\n",
        )
        .unwrap();
        std::fs::write(caches.join("other.csv"), "photos/class-1/img-1-170.png").unwrap();
        let cert = audit(&input, |_| {}).unwrap();
        let found: Vec<(u64, &str, bool)> = cert
            .byte_scan
            .findings
            .iter()
            .map(|f| (f.id, f.what, f.path.ends_with("export.csv")))
            .collect();
        assert_eq!(found, [(17, "source", true)]);
    }

    #[test]
    fn an_edit_that_changed_a_kept_entry_fails_equivalence() {
        let dir = tempfile::tempdir().unwrap();
        let (orig_path, edited_path) =
            (dir.path().join("orig.pmem"), dir.path().join("edited.pmem"));
        let original = memory(1, 40, 32);
        original.save(&orig_path).unwrap();
        let mut edited = original.clone();
        edited.delete(5).unwrap();
        let mut entries = edited.entries().to_vec();
        entries[0].embedding.reverse();
        let edited =
            Memory::from_entries(edited.model_fingerprint(), edited.dim(), entries).unwrap();
        edited.save(&edited_path).unwrap();
        let input = AuditInput {
            original: &orig_path,
            edited: &edited_path,
            never_added: None,
            scan: vec![],
            k: 5,
            seed: 0,
        };
        let cert = audit(&input, |_| {}).unwrap();
        assert!(
            !cert.equivalence.entries_identical
                && !cert.equivalence.mismatched_queries.is_empty()
                && !cert.passed
        );
        assert!(cert.membership.is_none());
        // Not a deletion at all: an entry the original never had.
        let mut grown = original.clone();
        grown
            .add(
                "fp",
                "c0",
                "new.png",
                1,
                Vec::new(),
                original.entries()[0].embedding.clone(),
            )
            .unwrap();
        grown.save(&edited_path).unwrap();
        assert!(matches!(audit(&input, |_| {}), Err(Error::Memory(_))));
    }

    #[test]
    fn auroc_counts_ties_half_and_orders() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(auroc(&[1.0], &[1.0]), 0.5);
        assert!((auroc(&[1.0, 3.0], &[2.0, 4.0]) - 0.25).abs() < 1e-12);
    }
}
