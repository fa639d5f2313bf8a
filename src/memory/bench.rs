//! `procmem bench memory`: exact and HNSW search, unlearning latency with a watch list, the
//! privacy analysis, and a large memory (import, search, delete, save) — on the same vectors
//! that `tools/bench_memory_faiss.py` gives faiss, so the two can be compared in one run.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use super::{ExactIndex, HnswIndex, HnswParams, Memory, VoteRule, WatchList, npz};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Reads an (n × d) float32 `.npy` file.
pub(crate) fn read_f32_npy(path: &Path) -> Result<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let a = npz::parse_npy(&bytes).map_err(|m| Error::BadFile {
        path: path.into(),
        message: m,
    })?;
    if a.descr != "<f4" || a.shape.len() != 2 {
        return Err(Error::BadFile {
            path: path.into(),
            message: format!(
                "expected a 2-D float32 array, got {} {:?}",
                a.descr, a.shape
            ),
        });
    }
    Ok((
        a.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        a.shape[1],
    ))
}

/// Clustered unit vectors (like embeddings: classes around centres), deterministic in `seed`.
pub(crate) fn clustered_vectors(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.normal() as f32).collect();
    (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut r = Rng::new(crate::rng::derive(seed, i as u64 + 1));
            let c = r.below(clusters);
            let mut v: Vec<f32> = (0..dim)
                .map(|j| centres[c * dim + j] + 0.8 * r.normal() as f32)
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

fn labels_for(n: usize, classes: usize) -> Vec<u32> {
    (0..n)
        .map(|i| (crate::rng::derive(7, i as u64) % classes as u64) as u32)
        .collect()
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Runs the search / unlearning / privacy measurements; returns Markdown rows.
pub fn run(
    base: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    hnsw: Option<HnswParams>,
    log: &mut dyn FnMut(&str),
) -> Result<String> {
    let n = base.len() / dim.max(1);
    let nq = queries.len() / dim.max(1);
    if n <= k || nq == 0 {
        return Err(Error::Memory(format!(
            "the benchmark needs more than k = {k} entries and at least one query (got {n} and {nq})"
        )));
    }
    let labels: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
    let index = ExactIndex::from_embeddings(dim, labels.clone(), labels_for(n, 10), base.to_vec());
    let mut md = String::new();

    // Exact search (best of 3).
    let mut best = f64::MAX;
    let mut exact = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        exact = index.search(queries, k);
        best = best.min(secs(t));
    }
    log(&format!(
        "exact search: {nq} queries over {n} x {dim} in {best:.3} s"
    ));
    md += &format!(
        "| exact search, {nq} queries, k = {k} | {best:.3} s | {:.0} queries/s |\n",
        nq as f64 / best
    );
    // The canonical scan alone (what the int8 candidate pass must equal, bit for bit).
    let mut best_canonical = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let canonical = index.search_canonical(queries, k);
        best_canonical = best_canonical.min(secs(t));
        let same = canonical.iter().zip(&exact).all(|(c, e)| {
            c.len() == e.len()
                && c.iter()
                    .zip(e)
                    .all(|(c, e)| c.id == e.id && c.similarity.to_bits() == e.similarity.to_bits())
        });
        if !same {
            return Err(Error::Memory(
                "exact search differs from the canonical scan: a bug, please report it".into(),
            ));
        }
    }
    log(&format!(
        "canonical scan: {best_canonical:.3} s (identical answers)"
    ));
    md += &format!(
        "| exact search, canonical scan only | {best_canonical:.3} s | {:.0} queries/s |\n",
        nq as f64 / best_canonical
    );

    // HNSW: build, then recall@k against exact and latency per query (one thread, one query at a time).
    if let Some(hnsw) = hnsw {
        let t = Instant::now();
        let h = HnswIndex::build(&index, hnsw)?;
        let build = secs(t);
        let t = Instant::now();
        let approx: Vec<_> = queries
            .chunks(dim)
            .map(|q| h.search(q, k).pop().unwrap_or_default())
            .collect();
        let per_query = secs(t) / nq as f64;
        let hits: usize = exact
            .iter()
            .zip(&approx)
            .map(|(e, a)| a.iter().filter(|x| e.iter().any(|y| y.id == x.id)).count())
            .sum();
        let recall = hits as f64 / (nq * k) as f64;
        log(&format!(
            "hnsw: build {build:.1} s, recall@{k} {recall:.4}, {:.3} ms/query",
            per_query * 1e3
        ));
        md += &format!(
            "| HNSW (M 32, ef_construction {}, ef_search {}) | build {build:.1} s (all threads, deterministic) | recall@{k} {recall:.4}, {:.3} ms/query (sequential) |\n",
            hnsw.ef_construction,
            hnsw.ef_search,
            per_query * 1e3
        );
    }

    // Unlearning: a 1,000-query watch list; delete the top neighbour of one watched query at a
    // time; time from delete to updated predictions.
    let watch_n = nq.min(1000);
    let mut idx = index.clone();
    let mut watch = WatchList::new(k, VoteRule::default(), labels.len());
    watch.add(
        &idx,
        (0..watch_n)
            .map(|i| {
                (
                    format!("q{i}"),
                    None,
                    queries[i * dim..(i + 1) * dim].to_vec(),
                )
            })
            .collect(),
    );
    let mut times = Vec::new();
    let mut flips = 0;
    for i in 0..50.min(watch_n) {
        let id = watch.queries[i].neighbours[0].id;
        let t = Instant::now();
        idx.remove(id);
        let u = watch.on_delete(&idx, id);
        times.push(secs(t) * 1e3);
        flips += u.flipped.len();
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    log(&format!(
        "unlearning: median {median:.2} ms, worst {worst:.2} ms ({flips} flips in 50 deletions)"
    ));
    md += &format!(
        "| delete one entry → updated predictions of a {watch_n}-query watch list | median {median:.2} ms, worst {worst:.2} ms (50 deletions) | {flips} flips |\n"
    );

    // Privacy analysis over all queries.
    let t = Instant::now();
    let report = super::privacy::analyse(&index, queries, k, VoteRule::default());
    let p = secs(t);
    log(&format!(
        "privacy: {nq} queries in {p:.2} s, {:.3} % non-private",
        report.non_private_fraction * 100.0
    ));
    md += &format!(
        "| privacy analysis, {nq} queries, k = {k} | {p:.2} s | {:.3} % of entries non-private |\n",
        report.non_private_fraction * 100.0
    );
    Ok(md)
}

/// A large memory of random clustered vectors: add, search, delete, save, reopen.
pub fn large(n: usize, dim: usize, dir: &Path, log: &mut dyn FnMut(&str)) -> Result<String> {
    let t = Instant::now();
    let data = clustered_vectors(n, dim, 1000, 3);
    let mut memory = Memory::new("bench", dim);
    for (i, e) in data.chunks_exact(dim).enumerate() {
        memory.add(
            "bench",
            &format!("c{}", i % 10),
            "",
            i as u64,
            Vec::new(),
            e.to_vec(),
        )?;
    }
    drop(data);
    let import = secs(t);
    log(&format!("{n} entries added in {import:.1} s"));
    let t = Instant::now();
    let labels = memory.labels();
    let mut index = ExactIndex::build(&memory, &labels);
    let q = clustered_vectors(100, dim, 1000, 4);
    let found = index.search(&q, 10);
    let search = secs(t);
    let t = Instant::now();
    for r in found.iter().take(10) {
        memory.delete(r[0].id);
        index.remove(r[0].id);
    }
    let delete = secs(t);
    let path = dir.join("large.pmem");
    let t = Instant::now();
    memory.save(&path)?;
    let save = secs(t);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let reopened = Memory::open(&path)?;
    let open = secs(t);
    if reopened.len() != memory.len() {
        return Err(Error::Memory(format!(
            "reopened {} entries, saved {}",
            reopened.len(),
            memory.len()
        )));
    }
    let _ = std::fs::remove_file(&path);
    let rss = peak_rss_mib().map_or("?".into(), |m| format!("{:.2} GiB", m / 1024.0));
    log(&format!(
        "large memory: search {search:.1} s, save {save:.1} s, open {open:.1} s, peak RSS {rss}"
    ));
    Ok(format!(
        "| {n} × {dim} memory | add {import:.1} s · index + 100 queries {search:.1} s · 10 deletions {:.1} ms · save {save:.1} s ({:.2} GB) · reopen {open:.1} s | peak RSS {rss} |\n",
        delete * 1e3,
        size as f64 / 1e9
    ))
}

/// Writes an (n × d) float32 `.npy` file (format 1.0).
pub fn write_f32_npy(path: &Path, data: &[f32], dim: usize) -> Result<()> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}",
        data.len() / dim.max(1)
    );
    // Pad so that the data starts on a multiple of 64 bytes, ending the header with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::fsio::write_atomic(path, &bytes)
}

/// The benchmark vectors in `dir` (base.npy, queries.npy), generated and written on first use.
pub fn bench_vectors(
    dir: &Path,
    n: usize,
    nq: usize,
    dim: usize,
) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let (b, q) = (dir.join("base.npy"), dir.join("queries.npy"));
    if b.exists() && q.exists() {
        let (base, d) = read_f32_npy(&b)?;
        let (queries, dq) = read_f32_npy(&q)?;
        if d != dq {
            return Err(Error::BadFile {
                path: q,
                message: format!("dimension {dq} differs from base.npy's {d}"),
            });
        }
        return Ok((base, queries, d));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Queries come from the same clusters as the base (another stream of the same seed).
    let all = clustered_vectors(n + nq, dim, 1000, 1);
    let (base, queries) = all.split_at(n * dim);
    write_f32_npy(&b, base, dim)?;
    write_f32_npy(&q, queries, dim)?;
    Ok((base.to_vec(), queries.to_vec(), dim))
}
