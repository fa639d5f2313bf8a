//! Exact nearest-neighbour search by inner product (cosine similarity on L2-normalised
//! embeddings), the canonical index.
//!
//! Every (query, entry) similarity is computed by the same fixed-order dot product whatever the
//! memory's size or layout, and ties are broken by entry id: so after deleting an entry, every
//! result is bit-for-bit the one a memory built without it gives. That is what makes unlearning
//! exact.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::int8::Int8Entries;
use super::store::Memory;

/// Memories at least this large search through the int8 candidate pass (`memory::int8`);
/// below it the canonical scan is as fast.
const INT8_MIN_ENTRIES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbour {
    pub id: u64,
    /// Index into the index's label list.
    pub label: u32,
    pub similarity: f32,
}

/// Dot product: 16 lanes of fused multiply-adds over the first multiple of 16 dimensions, the
/// rest fused into a separate tail, summed in a fixed order. Every similarity procmem computes —
/// exact search, HNSW, privacy, watch lists — is this arithmetic, on any CPU (SIMD or not), so
/// results never depend on which entries share a memory.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    kernel::dot(a, b)
}

/// A faster dot product for walking HNSW graphs (see `kernel::dot_fast_portable`); reported
/// similarities always use [`dot`].
#[inline]
pub(crate) fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    kernel::dot_fast(a, b)
}

/// Orders neighbours: higher similarity first, then lower id.
pub(crate) fn better(a: &Neighbour, b: &Neighbour) -> bool {
    a.similarity > b.similarity || (a.similarity == b.similarity && a.id < b.id)
}

/// Keeps the best `k` neighbours seen so far, sorted.
struct TopK {
    k: usize,
    items: Vec<Neighbour>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }
    /// Whether a similarity could enter (exact ties are decided by id in `push`).
    #[inline]
    fn admits(&self, s: f32) -> bool {
        self.k > 0 && (self.items.len() < self.k || s >= self.items[self.k - 1].similarity)
    }
    #[inline]
    fn push(&mut self, n: Neighbour) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k && !better(&n, self.items.last().expect("k > 0")) {
            return;
        }
        let pos = self
            .items
            .iter()
            .position(|m| better(&n, m))
            .unwrap_or(self.items.len());
        self.items.insert(pos, n);
        self.items.truncate(self.k);
    }
}

/// The exact index over a memory's embeddings.
#[derive(Clone, Debug)]
pub struct ExactIndex {
    pub dim: usize,
    pub labels: Vec<String>,
    ids: Vec<u64>,
    entry_labels: Vec<u32>,
    data: Vec<f32>,
    /// The int8 copy for the candidate pass, built on the first large search and kept in step
    /// by `remove`/`insert`; `Some(None)` when unusable (no AVX-512 VNNI, non-finite values).
    int8: OnceLock<Option<Int8Entries>>,
}

impl ExactIndex {
    /// Builds the index; labels are indexed in `labels` order (entries with other labels panic —
    /// pass `memory.labels()` or a superset).
    pub fn build(memory: &Memory, labels: &[String]) -> Self {
        let mut data = Vec::with_capacity(memory.len() * memory.dim());
        let mut ids = Vec::with_capacity(memory.len());
        let mut entry_labels = Vec::with_capacity(memory.len());
        for e in memory.entries() {
            data.extend_from_slice(&e.embedding);
            ids.push(e.id);
            entry_labels.push(
                labels
                    .iter()
                    .position(|l| *l == e.label)
                    .expect("label in the label list") as u32,
            );
        }
        Self {
            dim: memory.dim(),
            labels: labels.to_vec(),
            ids,
            entry_labels,
            data,
            int8: OnceLock::new(),
        }
    }

    /// An index over raw embeddings (row i has id i), for evaluations that need no store.
    pub fn from_embeddings(
        dim: usize,
        labels: Vec<String>,
        entry_labels: Vec<u32>,
        data: Vec<f32>,
    ) -> Self {
        assert_eq!(
            data.len(),
            entry_labels.len() * dim,
            "one embedding per label"
        );
        Self {
            dim,
            labels,
            ids: (0..entry_labels.len() as u64).collect(),
            entry_labels,
            data,
            int8: OnceLock::new(),
        }
    }

    /// The same entries under the given ids (one per entry), instead of 0..n.
    ///
    /// # Panics
    /// When `ids` has not one id per entry (a caller bug, never user data).
    pub(crate) fn with_ids(mut self, ids: Vec<u64>) -> Self {
        assert_eq!(ids.len(), self.ids.len(), "one id per entry");
        self.ids = ids;
        self
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Removes an entry by id; returns whether it was there.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.ids.iter().position(|&i| i == id) else {
            return false;
        };
        // Order does not matter to results (fixed per-pair arithmetic, id tie-breaks), so the
        // last row moves into the hole: O(dim), not O(n·dim).
        let last = self.ids.len() - 1;
        self.ids.swap_remove(row);
        self.entry_labels.swap_remove(row);
        if row != last {
            self.data
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
        }
        self.data.truncate(last * self.dim);
        if let Some(Some(int8)) = self.int8.get_mut() {
            int8.swap_remove(row);
        }
        true
    }

    /// Keeps only the entries for which `keep(id, label)` holds, in one pass (removing many
    /// entries one by one with [`ExactIndex::remove`] costs a position search each).
    pub fn retain(&mut self, keep: impl Fn(u64, u32) -> bool) {
        let dim = self.dim;
        let mut kept = 0;
        for row in 0..self.ids.len() {
            if keep(self.ids[row], self.entry_labels[row]) {
                if row != kept {
                    self.ids[kept] = self.ids[row];
                    self.entry_labels[kept] = self.entry_labels[row];
                    self.data
                        .copy_within(row * dim..(row + 1) * dim, kept * dim);
                }
                kept += 1;
            }
        }
        self.ids.truncate(kept);
        self.entry_labels.truncate(kept);
        self.data.truncate(kept * dim);
        // Rebuilt on the next large search (the removed entries' int8 bytes go with the old copy).
        self.int8 = OnceLock::new();
    }

    /// (id, label, embedding) of every entry, in storage order.
    pub fn rows(&self) -> impl Iterator<Item = (u64, u32, &[f32])> {
        self.ids
            .iter()
            .zip(&self.entry_labels)
            .zip(self.data.chunks_exact(self.dim.max(1)))
            .map(|((&id, &l), e)| (id, l, e))
    }

    /// The embedding of an entry.
    pub fn embedding(&self, id: u64) -> Option<&[f32]> {
        let row = self.ids.iter().position(|&i| i == id)?;
        Some(&self.data[row * self.dim..(row + 1) * self.dim])
    }

    /// Adds (or re-adds, for undo) an entry.
    pub fn insert(&mut self, id: u64, label: u32, embedding: &[f32]) {
        self.ids.push(id);
        self.entry_labels.push(label);
        self.data.extend_from_slice(embedding);
        if let Some(slot) = self.int8.get_mut()
            && let Some(int8) = slot
            && !int8.push(embedding)
        {
            *slot = None; // a non-finite embedding: the canonical scan from now on
        }
    }

    /// The `k` most similar entries of each query (`queries` is q × dim, row-major), bit-identical
    /// to [`ExactIndex::search_canonical`]: on CPUs with AVX-512 VNNI, an int8 pass finds a proved
    /// superset of each top-k (`memory::int8`) and only those candidates are scored canonically.
    pub fn search(&self, queries: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
        let d = self.dim;
        if d == 0 {
            return Vec::new();
        }
        let int8 = if self.len() >= INT8_MIN_ENTRIES && k > 0 && k * 16 <= self.len() {
            self.int8_entries()
        } else {
            None
        };
        queries
            .par_chunks(QUERY_GROUP * d)
            .flat_map_iter(
                |group| match int8.and_then(|int8| int8.candidates(group, k)) {
                    Some(candidates) => self.rescore(group, candidates, k).into_iter(),
                    None => self.scan(group, k).into_iter(),
                },
            )
            .collect()
    }

    /// The canonical scan: every entry scored by the canonical dot product (what
    /// [`ExactIndex::search`] must equal; kept for tests and benchmarks).
    pub(crate) fn search_canonical(&self, queries: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
        if self.dim == 0 {
            return Vec::new();
        }
        queries
            .par_chunks(QUERY_GROUP * self.dim)
            .flat_map_iter(|group| self.scan(group, k))
            .collect()
    }

    fn int8_entries(&self) -> Option<&Int8Entries> {
        let int8 = self.int8.get_or_init(|| {
            if super::int8::vnni_available() {
                Int8Entries::build(self.dim, &self.data)
            } else {
                None
            }
        });
        debug_assert!(
            int8.as_ref().is_none_or(|q| q.len() == self.len()),
            "the int8 copy follows every edit"
        );
        int8.as_ref()
    }

    /// Scores the int8 pass's candidates canonically; the result is the canonical top-k because
    /// the candidates are a superset of it.
    fn rescore(&self, group: &[f32], candidates: Vec<Vec<u32>>, k: usize) -> Vec<Vec<Neighbour>> {
        let d = self.dim;
        group
            .chunks_exact(d)
            .zip(candidates)
            .map(|(q, rows)| {
                let mut top = TopK::new(k);
                for row in rows.into_iter().map(|r| r as usize) {
                    let similarity = kernel::dot(q, &self.data[row * d..(row + 1) * d]);
                    top.push(Neighbour {
                        id: self.ids[row],
                        label: self.entry_labels[row],
                        similarity,
                    });
                }
                top.items
            })
            .collect()
    }

    /// One group of queries against every entry; the memory streams in blocks small enough to
    /// stay in L2 while every query of the group is scored against them.
    fn scan(&self, group: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
        const BLOCK: usize = 128;
        let d = self.dim;
        let gq = group.len() / d;
        let mut tops: Vec<TopK> = (0..gq).map(|_| TopK::new(k)).collect();
        let mut scores = vec![0f32; gq * BLOCK];
        for (bi, block) in self.data.chunks(BLOCK * d).enumerate() {
            let ne = block.len() / d;
            kernel::scores(group, block, d, &mut scores[..gq * ne]);
            for (qi, top) in tops.iter_mut().enumerate() {
                for (ei, &s) in scores[qi * ne..(qi + 1) * ne].iter().enumerate() {
                    if top.admits(s) {
                        let row = bi * BLOCK + ei;
                        top.push(Neighbour {
                            id: self.ids[row],
                            label: self.entry_labels[row],
                            similarity: s,
                        });
                    }
                }
            }
        }
        tops.into_iter().map(|t| t.items).collect()
    }
}

/// Queries per parallel task.
const QUERY_GROUP: usize = 256;

/// Similarity kernels. Every path computes each (query, entry) pair with exactly the arithmetic
/// of `dot_portable` — 16 lanes of fused multiply-adds (f32 FMA is correctly rounded on every
/// CPU), a sequential tail, one fixed reduction tree — so results are bit-identical whichever
/// path runs, and never depend on which entries share a block.
mod kernel {
    pub const LANES: usize = 16;

    #[inline(always)]
    pub(crate) fn reduce(acc: &[f32; LANES], tail: f32) -> f32 {
        let h: [f32; 8] = std::array::from_fn(|i| acc[i] + acc[i + 8]);
        ((h[0] + h[1]) + (h[2] + h[3])) + ((h[4] + h[5]) + (h[6] + h[7])) + tail
    }

    pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; LANES];
        let main = a.len() / LANES * LANES;
        for c in (0..main).step_by(LANES) {
            for j in 0..LANES {
                acc[j] = a[c + j].mul_add(b[c + j], acc[j]);
            }
        }
        let mut tail = 0f32;
        for i in main..a.len() {
            tail = a[i].mul_add(b[i], tail);
        }
        reduce(&acc, tail)
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Path {
        Avx512,
        Avx2,
        Portable,
    }

    pub fn path() -> Path {
        static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *PATH.get_or_init(detect)
    }

    fn detect() -> Path {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Path::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Path::Avx2;
            }
        }
        Path::Portable
    }

    pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        match path() {
            // SAFETY: the features were detected; the slices have equal length (checked by callers).
            Path::Avx512 => return unsafe { x86::dot_avx512(a, b) },
            // SAFETY: as above, for AVX2 and FMA.
            Path::Avx2 => return unsafe { x86::dot_avx2(a, b) },
            Path::Portable => {}
        }
        dot_portable(a, b)
    }

    /// Graph-search distances: four independent 16-lane accumulators over 64-float chunks (no
    /// long dependency chain), then as `dot_portable`. Deterministic, but not the canonical
    /// arithmetic: used only to walk the HNSW graph, never for reported similarities.
    pub(crate) fn dot_fast_portable(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [[0f32; LANES]; 4];
        let main64 = a.len() / 64 * 64;
        for c in (0..main64).step_by(64) {
            for (r, acc) in acc.iter_mut().enumerate() {
                for j in 0..LANES {
                    acc[j] = a[c + 16 * r + j].mul_add(b[c + 16 * r + j], acc[j]);
                }
            }
        }
        let main = a.len() / LANES * LANES;
        for c in (main64..main).step_by(LANES) {
            for j in 0..LANES {
                acc[0][j] = a[c + j].mul_add(b[c + j], acc[0][j]);
            }
        }
        let mut tail = 0f32;
        for i in main..a.len() {
            tail = a[i].mul_add(b[i], tail);
        }
        let v: [f32; LANES] =
            std::array::from_fn(|j| (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]));
        reduce(&v, tail)
    }

    pub(crate) fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if path() == Path::Avx512 {
            // SAFETY: AVX-512F was detected; the slices have equal length (checked by callers).
            return unsafe { x86::dot_fast_avx512(a, b) };
        }
        dot_fast_portable(a, b)
    }

    /// Scores `queries` (nq × d) against `entries` (ne × d) into `out` (nq × ne).
    pub fn scores(queries: &[f32], entries: &[f32], d: usize, out: &mut [f32]) {
        let (nq, ne) = (queries.len() / d, entries.len() / d);
        debug_assert_eq!(out.len(), nq * ne);
        #[cfg(target_arch = "x86_64")]
        match path() {
            // SAFETY: the features were detected; shapes are checked by the slicing inside.
            Path::Avx512 => return unsafe { x86::scores_avx512(queries, entries, d, out) },
            // SAFETY: as above, for AVX2 and FMA.
            Path::Avx2 => return unsafe { x86::scores_avx2(queries, entries, d, out) },
            Path::Portable => {}
        }
        for qi in 0..nq {
            for ei in 0..ne {
                out[qi * ne + ei] = dot_portable(
                    &queries[qi * d..(qi + 1) * d],
                    &entries[ei * d..(ei + 1) * d],
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{LANES, reduce};
        use std::arch::x86_64::*;

        #[inline(always)]
        fn tail(q: &[f32], e: &[f32], main: usize) -> f32 {
            let mut t = 0f32;
            for i in main..q.len() {
                t = q[i].mul_add(e[i], t);
            }
            t
        }

        /// Q queries × E entries with one 16-lane register per pair.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn tile512<const Q: usize, const E: usize>(
            q: [&[f32]; Q],
            e: [&[f32]; E],
            out: &mut [[f32; E]; Q],
        ) {
            let d = q[0].len();
            let main = d / LANES * LANES;
            let mut acc = [[_mm512_setzero_ps(); E]; Q];
            let mut c = 0;
            while c < main {
                let mut ev = [_mm512_setzero_ps(); E];
                for j in 0..E {
                    // SAFETY: c + 16 <= main <= d = e[j].len().
                    ev[j] = unsafe { _mm512_loadu_ps(e[j].as_ptr().add(c)) };
                }
                for i in 0..Q {
                    // SAFETY: as above, for q[i].
                    let qv = unsafe { _mm512_loadu_ps(q[i].as_ptr().add(c)) };
                    for j in 0..E {
                        acc[i][j] = _mm512_fmadd_ps(qv, ev[j], acc[i][j]);
                    }
                }
                c += LANES;
            }
            for i in 0..Q {
                if E == 4 {
                    // The reduction tree of `reduce`, for four pairs at once: halves added, then
                    // adjacent lanes (hadd adds exactly x[2k] + x[2k+1]), twice, then 128-bit halves.
                    let h: [__m256; 4] = std::array::from_fn(|j| {
                        _mm256_add_ps(
                            _mm512_castps512_ps256(acc[i][j]),
                            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(
                                acc[i][j],
                            ))),
                        )
                    });
                    let u = _mm256_hadd_ps(h[0], h[1]);
                    let v = _mm256_hadd_ps(h[2], h[3]);
                    let w = _mm256_hadd_ps(u, v);
                    let r = _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps::<1>(w));
                    let mut four = [0f32; 4];
                    // SAFETY: four holds 4 floats.
                    unsafe { _mm_storeu_ps(four.as_mut_ptr(), r) };
                    for j in 0..E {
                        out[i][j] = four[j] + tail(q[i], e[j], main);
                    }
                } else {
                    for j in 0..E {
                        let mut lanes = [0f32; LANES];
                        // SAFETY: lanes holds 16 floats.
                        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[i][j]) };
                        out[i][j] = reduce(&lanes, tail(q[i], e[j], main));
                    }
                }
            }
        }

        /// The same lanes as two 8-lane halves per pair.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn tile256<const Q: usize, const E: usize>(
            q: [&[f32]; Q],
            e: [&[f32]; E],
            out: &mut [[f32; E]; Q],
        ) {
            let d = q[0].len();
            let main = d / LANES * LANES;
            let mut lo = [[_mm256_setzero_ps(); E]; Q];
            let mut hi = [[_mm256_setzero_ps(); E]; Q];
            let mut c = 0;
            while c < main {
                for j in 0..E {
                    // SAFETY: c + 16 <= main <= d for every row.
                    let (el, eh) = unsafe {
                        (
                            _mm256_loadu_ps(e[j].as_ptr().add(c)),
                            _mm256_loadu_ps(e[j].as_ptr().add(c + 8)),
                        )
                    };
                    for i in 0..Q {
                        // SAFETY: c + 16 <= main <= d for every query row too.
                        let (ql, qh) = unsafe {
                            (
                                _mm256_loadu_ps(q[i].as_ptr().add(c)),
                                _mm256_loadu_ps(q[i].as_ptr().add(c + 8)),
                            )
                        };
                        lo[i][j] = _mm256_fmadd_ps(ql, el, lo[i][j]);
                        hi[i][j] = _mm256_fmadd_ps(qh, eh, hi[i][j]);
                    }
                }
                c += LANES;
            }
            for i in 0..Q {
                for j in 0..E {
                    let mut lanes = [0f32; LANES];
                    // SAFETY: lanes holds 16 floats.
                    unsafe {
                        _mm256_storeu_ps(lanes.as_mut_ptr(), lo[i][j]);
                        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi[i][j]);
                    }
                    out[i][j] = reduce(&lanes, tail(q[i], e[j], main));
                }
            }
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
            let mut out = [[0f32; 1]; 1];
            // SAFETY: this function runs only where avx512f was detected (its own contract); a and b are one row each.
            unsafe { tile512::<1, 1>([a], [b], &mut out) };
            out[0][0]
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn dot_fast_avx512(a: &[f32], b: &[f32]) -> f32 {
            let d = a.len();
            let (main64, main) = (d / 64 * 64, d / LANES * LANES);
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut c = 0;
            while c < main64 {
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: c + 64 <= main64 <= d.
                    let (x, y) = unsafe {
                        (
                            _mm512_loadu_ps(a.as_ptr().add(c + 16 * r)),
                            _mm512_loadu_ps(b.as_ptr().add(c + 16 * r)),
                        )
                    };
                    *acc = _mm512_fmadd_ps(x, y, *acc);
                }
                c += 64;
            }
            while c < main {
                // SAFETY: c + 16 <= main <= d.
                let (x, y) = unsafe {
                    (
                        _mm512_loadu_ps(a.as_ptr().add(c)),
                        _mm512_loadu_ps(b.as_ptr().add(c)),
                    )
                };
                acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
                c += LANES;
            }
            let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            let mut lanes = [0f32; LANES];
            // SAFETY: lanes holds 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
            reduce(&lanes, tail(a, b, main))
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
            let mut out = [[0f32; 1]; 1];
            // SAFETY: this function runs only where AVX2 and FMA were detected (its own contract); a and b are one row each.
            unsafe { tile256::<1, 1>([a], [b], &mut out) };
            out[0][0]
        }

        macro_rules! blocked {
            ($name:ident, $tile:ident, $feat:literal, $qt:literal, $et:literal) => {
                #[target_feature(enable = $feat)]
                pub unsafe fn $name(queries: &[f32], entries: &[f32], d: usize, out: &mut [f32]) {
                    let (nq, ne) = (queries.len() / d, entries.len() / d);
                    let qrow = |i: usize| &queries[i * d..(i + 1) * d];
                    let erow = |j: usize| &entries[j * d..(j + 1) * d];
                    let mut qi = 0;
                    while qi + $qt <= nq {
                        let qs: [&[f32]; $qt] = std::array::from_fn(|i| qrow(qi + i));
                        let mut ej = 0;
                        while ej + $et <= ne {
                            let es: [&[f32]; $et] = std::array::from_fn(|j| erow(ej + j));
                            let mut t = [[0f32; $et]; $qt];
                            // SAFETY: the caller detected the tile's features; every row slice has d elements.
                            unsafe { $tile::<$qt, $et>(qs, es, &mut t) };
                            for (i, row) in t.iter().enumerate() {
                                out[(qi + i) * ne + ej..(qi + i) * ne + ej + $et]
                                    .copy_from_slice(row);
                            }
                            ej += $et;
                        }
                        for ej in ej..ne {
                            let mut t = [[0f32; 1]; $qt];
                            // SAFETY: as above, one entry row at a time.
                            unsafe { $tile::<$qt, 1>(qs, [erow(ej)], &mut t) };
                            for (i, row) in t.iter().enumerate() {
                                out[(qi + i) * ne + ej] = row[0];
                            }
                        }
                        qi += $qt;
                    }
                    for qi in qi..nq {
                        for ej in 0..ne {
                            let mut t = [[0f32; 1]; 1];
                            // SAFETY: as above, one query and one entry row.
                            unsafe { $tile::<1, 1>([qrow(qi)], [erow(ej)], &mut t) };
                            out[qi * ne + ej] = t[0][0];
                        }
                    }
                }
            };
        }
        blocked!(scores_avx512, tile512, "avx512f", 4, 4);
        blocked!(scores_avx2, tile256, "avx2,fma", 2, 2);

        /// The AVX2 path on an AVX-512 CPU, for the bit-identity test.
        #[cfg(test)]
        pub(crate) fn avx2_available() -> bool {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
    }

    #[cfg(all(test, target_arch = "x86_64"))]
    pub(crate) fn all_paths(queries: &[f32], entries: &[f32], d: usize) -> Vec<Vec<f32>> {
        let n = queries.len() / d * (entries.len() / d);
        let mut results = Vec::new();
        let mut out = vec![0f32; n];
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f was just detected; out has n = queries × entries elements.
            unsafe { x86::scores_avx512(queries, entries, d, &mut out) };
            results.push(out.clone());
        }
        if x86::avx2_available() {
            // SAFETY: AVX2 and FMA were just detected; out as above.
            unsafe { x86::scores_avx2(queries, entries, d, &mut out) };
            results.push(out.clone());
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_most_similar_entries_in_order_with_id_tie_breaks() {
        let mut m = Memory::new("fp", 2);
        for (label, e) in [
            ("a", [1.0, 0.0]),
            ("b", [0.0, 1.0]),
            ("a", [0.6, 0.8]),
            ("b", [1.0, 0.0]),
        ] {
            m.add("fp", label, "", 0, vec![], e.to_vec()).unwrap();
        }
        let idx = ExactIndex::build(&m, &m.labels());
        let res = idx.search(&[1.0, 0.0], 3);
        let ids: Vec<u64> = res[0].iter().map(|n| n.id).collect();
        // Entries 0 and 3 tie at similarity 1: the lower id first.
        assert_eq!(ids, vec![0, 3, 2]);
        assert_eq!(res[0][2].similarity, 0.6);
    }

    #[test]
    fn simd_kernels_equal_the_portable_dot_bit_for_bit() {
        let mut rng = crate::rng::Rng::new(7);
        for d in [1, 7, 8, 9, 15, 16, 17, 31, 64, 80, 192, 384] {
            let q: Vec<f32> = (0..9 * d)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect();
            let e: Vec<f32> = (0..11 * d)
                .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
                .collect();
            let mut out = vec![0f32; 9 * 11];
            kernel::scores(&q, &e, d, &mut out);
            #[cfg(target_arch = "x86_64")]
            let simd_paths = kernel::all_paths(&q, &e, d);
            for i in 0..9 {
                for j in 0..11 {
                    let want = kernel::dot_portable(&q[i * d..(i + 1) * d], &e[j * d..(j + 1) * d]);
                    assert_eq!(
                        out[i * 11 + j].to_bits(),
                        want.to_bits(),
                        "d {d} pair ({i}, {j})"
                    );
                    #[cfg(target_arch = "x86_64")]
                    for path in &simd_paths {
                        assert_eq!(
                            path[i * 11 + j].to_bits(),
                            want.to_bits(),
                            "d {d} pair ({i}, {j}), every SIMD path"
                        );
                    }
                    assert_eq!(
                        dot(&q[i * d..(i + 1) * d], &e[j * d..(j + 1) * d]).to_bits(),
                        want.to_bits()
                    );
                    let (qa, eb) = (&q[i * d..(i + 1) * d], &e[j * d..(j + 1) * d]);
                    assert_eq!(
                        dot_fast(qa, eb).to_bits(),
                        kernel::dot_fast_portable(qa, eb).to_bits(),
                        "fast dot, d {d}"
                    );
                    assert!((dot_fast(qa, eb) - want).abs() <= 1e-5 * (d as f32).sqrt());
                }
            }
        }
    }

    /// Near-ties on purpose: a few prototypes, each copied exactly and with perturbations far
    /// below the int8 step, at several norms; queries sit on and between the prototypes.
    fn adversarial(n: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = crate::rng::Rng::new(seed);
        let prototypes: Vec<Vec<f32>> = (0..6)
            .map(|_| (0..d).map(|_| rng.normal() as f32).collect())
            .collect();
        let mut data = Vec::with_capacity(n * d);
        for i in 0..n {
            let p = &prototypes[i % prototypes.len()];
            let (jitter, scale) = match i % 5 {
                0 => (0.0, 1.0),  // exact duplicates: ties broken by id
                1 => (1e-7, 1.0), // below one int8 step
                2 => (1e-3, 1.0),
                3 => (0.3, 1.0),
                _ => (1e-5, 1e3), // large norms
            };
            data.extend(p.iter().map(|x| (x + jitter * rng.normal() as f32) * scale));
        }
        let queries = (0..40)
            .flat_map(|i| {
                let (a, b) = (&prototypes[i % 6], &prototypes[(i / 6) % 6]);
                let t = (i % 3) as f32 * 0.25;
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (1.0 - t) * x + t * y + 1e-6 * rng.normal() as f32)
                    .collect::<Vec<f32>>()
            })
            .collect();
        (data, queries)
    }

    fn assert_bit_identical(got: &[Vec<Neighbour>], want: &[Vec<Neighbour>], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (qi, (g, w)) in got.iter().zip(want).enumerate() {
            let g: Vec<(u64, u32)> = g.iter().map(|n| (n.id, n.similarity.to_bits())).collect();
            let w: Vec<(u64, u32)> = w.iter().map(|n| (n.id, n.similarity.to_bits())).collect();
            assert_eq!(g, w, "{what}: query {qi}");
        }
    }

    #[test]
    fn int8_candidates_contain_the_canonical_top_k_on_adversarial_inputs() {
        // The portable int8 kernel runs on every CPU, so the proof is exercised everywhere.
        for d in [3, 33, 384] {
            let (data, queries) = adversarial(1500, d, d as u64);
            let n = data.len() / d;
            let index = ExactIndex::from_embeddings(d, vec!["a".into()], vec![0; n], data.clone());
            let int8 = Int8Entries::build(d, &data).unwrap();
            for k in [1, 10, 64] {
                let canonical = index.search_canonical(&queries, k);
                let candidates = int8.candidates_portable(&queries, k).unwrap();
                for (qi, (top, rows)) in canonical.iter().zip(&candidates).enumerate() {
                    assert_eq!(top.len(), k);
                    for nb in top {
                        assert!(
                            rows.contains(&(nb.id as u32)),
                            "d {d} k {k} query {qi}: {} missing",
                            nb.id
                        );
                    }
                    assert!(
                        rows.len() < n,
                        "d {d} k {k} query {qi}: the pass should prune something"
                    );
                }
                assert_bit_identical(
                    &index.rescore(&queries, candidates, k),
                    &canonical,
                    &format!("d {d} k {k}"),
                );
            }
        }
    }

    #[test]
    fn search_equals_the_canonical_scan_bit_for_bit_through_edits() {
        let d = 48;
        let (data, queries) = adversarial(2100, d, 5);
        let n = data.len() / d;
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        let mut index =
            ExactIndex::from_embeddings(d, vec!["a".into(), "b".into(), "c".into()], labels, data);
        let k = 12;
        assert_bit_identical(
            &index.search(&queries, k),
            &index.search_canonical(&queries, k),
            "fresh",
        );
        // Deletions (the top neighbours, to force the pass to find the next ones) and re-inserts.
        let mut removed = Vec::new();
        for nb in index.search(&queries[..d], 5).remove(0) {
            let embedding = index.embedding(nb.id).unwrap().to_vec();
            assert!(index.remove(nb.id));
            removed.push((nb.id, nb.label, embedding));
            assert_bit_identical(
                &index.search(&queries, k),
                &index.search_canonical(&queries, k),
                "after a deletion",
            );
        }
        for (id, label, embedding) in removed.into_iter().rev() {
            index.insert(id, label, &embedding);
        }
        assert_bit_identical(
            &index.search(&queries, k),
            &index.search_canonical(&queries, k),
            "after undo",
        );
        index.retain(|id, _| id % 7 != 0);
        assert_bit_identical(
            &index.search(&queries, k),
            &index.search_canonical(&queries, k),
            "after retain",
        );
        // A non-finite entry switches the index to the canonical scan, with the same answers.
        index.insert(1_000_000, 0, &vec![f32::NAN; d]);
        assert_bit_identical(
            &index.search(&queries, k),
            &index.search_canonical(&queries, k),
            "with a NaN entry",
        );
    }

    #[test]
    fn dot_is_exact_on_small_integers() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..19).map(|i| (i % 3) as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
    }
}
