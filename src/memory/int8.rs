//! The int8 candidate pass of the exact index: a quantised copy of the memory, scanned with
//! AVX-512 VNNI (64 multiply-adds per instruction, 4× an f32 FMA), that returns for each query a
//! *provable superset* of its exact top-k. [`super::index::ExactIndex`] re-scores those
//! candidates with the canonical dot product, so answers stay bit-identical to the canonical
//! scan (and so unlearning stays exact) at int8 speed.
//!
//! ## Why the superset is proved
//! Each entry `e` is stored as `ẽ = round(e · s_e)` (int8, `s_e = 127 / max|e_i|`), each query as
//! `q̃` likewise; with `e' = ẽ / s_e` and `q' = q̃ / s_q` (exact reals of the stored numbers) the
//! approximate score is `a = q'·e'`, computed exactly in integers and then scaled. For every pair
//! (Cauchy–Schwarz, then Higham's γₙ bound for the canonical f32 sum and the 3 roundings of `a`):
//!
//! `|canonical(q, e) − a| ≤ ε(q) = |q|·R + |q − q'|·N' + c·(|q|·N + |q'|·N')`,
//!
//! where `R = maxₑ |e − e'|`, `N = maxₑ |e|`, `N' = maxₑ |e'|` and `c = (d/16 + 32)·2⁻²³`
//! (the canonical dot rounds each product at most `d/16 + 20` times). If `A` is the k-th largest
//! `a`, at least k entries score canonically ≥ `A − ε`, so any entry with `a < A − 2ε` scores
//! strictly below k others and cannot be in the top-k, ties by id included. The scan keeps
//! every entry with `a ≥ A_running − 2ε`; the running k-th value only rises, so the final filter
//! against the last threshold loses nothing.
//!
//! Deviation from faiss/sgemm-style search: the candidate kernel is approximate *on purpose*;
//! only the re-score decides answers. Memories or queries with non-finite values, and CPUs
//! without AVX-512 VNNI, use the canonical scan.

/// Entries per lane group: one 512-bit register holds one 4-byte word of 16 entries.
const LANES: usize = 16;

/// The quantised copy of an index's embeddings, laid out so that one 512-bit load holds the
/// same 4 dimensions of 16 entries (no horizontal sums in the scan).
#[derive(Clone, Debug)]
pub(crate) struct Int8Entries {
    dim: usize,
    /// 4-byte words per entry: ⌈dim / 4⌉.
    words: usize,
    len: usize,
    /// Blocks of 16 entries: word `t` of entry `row` is at `(row / 16)·words·16 + t·16 + row % 16`;
    /// each word packs 4 int8 values, dimension `4t` in the low byte.
    data: Vec<i32>,
    /// Per entry (padded to whole blocks): `1 / s_e` as stored, so `e' = ẽ · inv_scale` exactly.
    inv_scale: Vec<f32>,
    /// Per entry: `Σ ẽ_i`, to undo the +128 offset that makes query bytes unsigned.
    sums: Vec<i32>,
    /// `R`, `N`, `N'` of the module docs: maxima over every entry ever stored since the last
    /// build (a removal never lowers them, which keeps them upper bounds).
    residual_max: f64,
    norm_max: f64,
    dequantised_norm_max: f64,
}

/// One entry quantised: int8 values (`words·4`, zero-padded), `1/s`, `Σ ẽ`, `|e − e'|`, `|e|`, `|e'|`.
struct QuantisedRow {
    values: Vec<i8>,
    inv_scale: f32,
    sum: i32,
    residual: f64,
    norm: f64,
    dequantised_norm: f64,
}

/// Rounds up a non-negative f64 bound a little, covering the f64 rounding of its own computation.
fn round_up(x: f64) -> f64 {
    x * (1.0 + 1e-9) + 1e-300
}

fn quantise(v: &[f32], words: usize) -> Option<QuantisedRow> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let inv_scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let scale = 1.0 / inv_scale as f64;
    let mut values = vec![0i8; words * 4];
    let (mut residual, mut norm, mut dequantised_norm, mut sum) = (0f64, 0f64, 0f64, 0i32);
    for (i, &x) in v.iter().enumerate() {
        let q = (x as f64 * scale).round().clamp(-127.0, 127.0);
        values[i] = q as i8;
        sum += q as i32;
        let dq = q * inv_scale as f64; // exact: an 8-bit integer times an f32
        residual += (x as f64 - dq) * (x as f64 - dq);
        norm += x as f64 * x as f64;
        dequantised_norm += dq * dq;
    }
    Some(QuantisedRow {
        values,
        inv_scale,
        sum,
        residual: round_up(residual.sqrt()),
        norm: round_up(norm.sqrt()),
        dequantised_norm: round_up(dequantised_norm.sqrt()),
    })
}

/// Four int8 values as one little-endian word (dimension `4t` in the low byte).
fn pack(values: &[i8]) -> i32 {
    i32::from_le_bytes([
        values[0] as u8,
        values[1] as u8,
        values[2] as u8,
        values[3] as u8,
    ])
}

impl Int8Entries {
    /// Quantises `data` (`n × dim`, row-major). `None` if any value is not finite.
    pub fn build(dim: usize, data: &[f32]) -> Option<Self> {
        use rayon::prelude::*;
        let dim_nonzero = dim.max(1);
        let words = dim.div_ceil(4).max(1);
        let rows: Option<Vec<QuantisedRow>> = data
            .par_chunks(dim_nonzero)
            .map(|v| quantise(v, words))
            .collect();
        let mut out = Self {
            dim,
            words,
            len: 0,
            data: Vec::new(),
            inv_scale: Vec::new(),
            sums: Vec::new(),
            residual_max: 0.0,
            norm_max: 0.0,
            dequantised_norm_max: 0.0,
        };
        for row in rows? {
            out.push_row(row);
        }
        Some(out)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn set_lane(&mut self, row: usize, values: &[i8], inv_scale: f32, sum: i32) {
        let base = row / LANES * self.words * LANES + row % LANES;
        for (t, chunk) in values.chunks_exact(4).enumerate() {
            self.data[base + t * LANES] = pack(chunk);
        }
        self.inv_scale[row] = inv_scale;
        self.sums[row] = sum;
    }

    fn push_row(&mut self, row: QuantisedRow) {
        if self.len.is_multiple_of(LANES) {
            self.data.resize(self.data.len() + self.words * LANES, 0);
            self.inv_scale.resize(self.inv_scale.len() + LANES, 0.0);
            self.sums.resize(self.sums.len() + LANES, 0);
        }
        let at = self.len;
        self.len += 1;
        self.set_lane(at, &row.values, row.inv_scale, row.sum);
        self.residual_max = self.residual_max.max(row.residual);
        self.norm_max = self.norm_max.max(row.norm);
        self.dequantised_norm_max = self.dequantised_norm_max.max(row.dequantised_norm);
    }

    /// Appends an entry; `false` (and nothing stored) if it has non-finite values.
    pub fn push(&mut self, embedding: &[f32]) -> bool {
        match quantise(embedding, self.words) {
            Some(row) => {
                self.push_row(row);
                true
            }
            None => false,
        }
    }

    fn lane_values(&self, row: usize) -> Vec<i8> {
        let base = row / LANES * self.words * LANES + row % LANES;
        (0..self.words)
            .flat_map(|t| self.data[base + t * LANES].to_le_bytes().map(|b| b as i8))
            .collect()
    }

    /// Mirrors `Vec::swap_remove` on the f32 rows: the last entry moves into `row`, and the
    /// vacated lane is zeroed (a deleted entry leaves no bytes behind).
    pub(crate) fn swap_remove(&mut self, row: usize) {
        let last = self.len - 1;
        if row != last {
            let (values, inv, sum) = (
                self.lane_values(last),
                self.inv_scale[last],
                self.sums[last],
            );
            self.set_lane(row, &values, inv, sum);
        }
        self.set_lane(last, &vec![0; self.words * 4], 0.0, 0);
        self.len = last;
        if self.len.is_multiple_of(LANES) {
            let blocks = self.len / LANES;
            self.data.truncate(blocks * self.words * LANES);
            self.inv_scale.truncate(blocks * LANES);
            self.sums.truncate(blocks * LANES);
        }
    }

    /// For each query of `queries` (`nq × dim`), the rows that may be among its exact top-`k`
    /// (a superset, proved in the module docs), in increasing row order. `None` when a query has
    /// non-finite values or the CPU lacks AVX-512 VNNI (use the canonical scan).
    pub(crate) fn candidates(&self, queries: &[f32], k: usize) -> Option<Vec<Vec<u32>>> {
        if !vnni_available() {
            return None;
        }
        self.candidates_with(queries, k, Kernel::Vnni)
    }

    /// As [`Int8Entries::candidates`] with the portable integer kernel (tests: every CPU).
    #[cfg(test)]
    pub(crate) fn candidates_portable(&self, queries: &[f32], k: usize) -> Option<Vec<Vec<u32>>> {
        self.candidates_with(queries, k, Kernel::Portable)
    }

    fn candidates_with(&self, queries: &[f32], k: usize, kernel: Kernel) -> Option<Vec<Vec<u32>>> {
        let d = self.dim.max(1);
        let mut states: Vec<QueryState> = queries
            .chunks_exact(d)
            .map(|q| QueryState::new(self, q, k))
            .collect::<Option<_>>()?;
        if k == 0 {
            return Some(states.iter().map(|_| Vec::new()).collect());
        }
        let blocks = self.len.div_ceil(LANES);
        // Blocks are streamed in chunks that stay in L2 while every query of the group passes.
        const CHUNK_BLOCKS: usize = 32;
        const Q: usize = 8;
        for chunk_start in (0..blocks).step_by(CHUNK_BLOCKS) {
            let chunk_end = (chunk_start + CHUNK_BLOCKS).min(blocks);
            let mut qi = 0;
            while qi < states.len() {
                let q = if states.len() - qi >= Q { Q } else { 1 };
                let group = &mut states[qi..qi + q];
                let mut b = chunk_start;
                while b < chunk_end {
                    let e = if chunk_end - b >= 2 { 2 } else { 1 };
                    let mut raw = [[[0i32; LANES]; 2]; Q];
                    match (kernel, q, e) {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: the features were detected by `candidates`; shapes are checked inside.
                        (Kernel::Vnni, Q, 2) => unsafe {
                            x86::tile::<Q, 2>(self, group, b, &mut raw)
                        },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: as above, for a Q × 1 tile.
                        (Kernel::Vnni, Q, 1) => unsafe {
                            x86::tile::<Q, 1>(self, group, b, &mut raw)
                        },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: as above, for a 1 × 2 tile.
                        (Kernel::Vnni, 1, 2) => unsafe {
                            x86::tile::<1, 2>(self, group, b, &mut raw)
                        },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: as above, for a 1 × 1 tile.
                        (Kernel::Vnni, 1, 1) => unsafe {
                            x86::tile::<1, 1>(self, group, b, &mut raw)
                        },
                        _ => portable_tile(self, group, b, e, &mut raw),
                    }
                    for (state, raw) in group.iter_mut().zip(&raw) {
                        for (j, raw) in raw.iter().enumerate().take(e) {
                            let block = b + j;
                            let (mut mask, scores) = self.approximate_scores(
                                kernel,
                                block,
                                raw,
                                state.inv_scale,
                                state.threshold,
                            );
                            while mask != 0 {
                                let lane = mask.trailing_zeros() as usize;
                                mask &= mask - 1;
                                state.admit((block * LANES + lane) as u32, scores[lane], k);
                            }
                        }
                    }
                    b += e;
                }
                qi += q;
            }
        }
        Some(states.into_iter().map(|s| s.finish()).collect())
    }

    /// The approximate scores `a = (raw − 128·Σẽ) · (1/s_e) · (1/s_q)` of one block's 16 lanes,
    /// and the mask of valid lanes with `a ≥ threshold`. Both kernels do the same f32 operations
    /// in the same order, so they agree bit for bit.
    fn approximate_scores(
        &self,
        kernel: Kernel,
        block: usize,
        raw: &[i32; LANES],
        inv_q: f32,
        threshold: f32,
    ) -> (u16, [f32; LANES]) {
        let valid = self.len.saturating_sub(block * LANES).min(LANES);
        let valid_mask = if valid == LANES {
            u16::MAX
        } else {
            (1u16 << valid) - 1
        };
        let lanes = block * LANES..(block + 1) * LANES;
        let (sums, inv) = (&self.sums[lanes.clone()], &self.inv_scale[lanes]);
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Vnni {
            // SAFETY: AVX-512F was detected with VNNI; the slices hold 16 lanes.
            let (mask, scores) =
                unsafe { x86::approximate_scores(raw, sums, inv, inv_q, threshold) };
            return (mask & valid_mask, scores);
        }
        let _ = kernel;
        let mut scores = [0f32; LANES];
        let mut mask = 0u16;
        for lane in 0..LANES {
            let dot = raw[lane].wrapping_sub(sums[lane].wrapping_shl(7));
            scores[lane] = dot as f32 * inv[lane] * inv_q;
            if scores[lane] >= threshold {
                mask |= 1 << lane;
            }
        }
        (mask & valid_mask, scores)
    }

    /// `Σ (q̃_i + 128)·ẽ_i` of one query against one entry, by the portable kernel (tests).
    #[cfg(test)]
    fn raw_portable(&self, query_words: &[i32], row: usize) -> i32 {
        let base = row / LANES * self.words * LANES + row % LANES;
        (0..self.words)
            .map(|t| dot_word(query_words[t], self.data[base + t * LANES]))
            .sum()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Vnni,
    /// The same integer arithmetic in plain Rust: tests prove the candidate pass with it on any CPU.
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

pub(crate) fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One VNNI lane's work: 4 unsigned query bytes times 4 signed entry bytes, summed.
fn dot_word(query: i32, entry: i32) -> i32 {
    let (q, e) = (query.to_le_bytes(), entry.to_le_bytes());
    (0..4).map(|b| q[b] as i32 * (e[b] as i8) as i32).sum()
}

fn portable_tile(
    entries: &Int8Entries,
    group: &[QueryState],
    block: usize,
    e: usize,
    raw: &mut [[[i32; LANES]; 2]],
) {
    let w = entries.words;
    for (state, raw) in group.iter().zip(raw.iter_mut()) {
        for (j, raw) in raw.iter_mut().enumerate().take(e) {
            let base = (block + j) * w * LANES;
            for (lane, out) in raw.iter_mut().enumerate() {
                *out = (0..w)
                    .map(|t| dot_word(state.words[t], entries.data[base + t * LANES + lane]))
                    .sum();
            }
        }
    }
}

/// One query's scan: its packed bytes, its bound, the running k best approximate scores and the
/// candidates admitted so far.
struct QueryState {
    /// `q̃ + 128` as unsigned bytes, 4 per word (padding dimensions hold 128, i.e. q̃ = 0).
    words: Vec<i32>,
    inv_scale: f32,
    /// `2ε(q)` of the module docs.
    window: f64,
    /// The k largest approximate scores so far, descending.
    best: Vec<f32>,
    /// Admit an entry when its approximate score is ≥ this (rounded down to f32).
    threshold: f32,
    candidates: Vec<(u32, f32)>,
}

impl QueryState {
    fn new(entries: &Int8Entries, q: &[f32], k: usize) -> Option<Self> {
        let row = quantise(q, entries.words)?;
        // Adding 128 to each byte is a bit flip of its sign bit: q̃ + 128 as an unsigned byte.
        let words = row
            .values
            .chunks_exact(4)
            .map(|c| pack(c) ^ i32::from_le_bytes([0x80; 4]))
            .collect();
        let (norm, residual, dequantised_norm) = (row.norm, row.residual, row.dequantised_norm);
        let c = (entries.dim as f64 / 16.0 + 32.0) * 2f64.powi(-23);
        let eps = norm * entries.residual_max
            + residual * entries.dequantised_norm_max
            + c * (norm * entries.norm_max + dequantised_norm * entries.dequantised_norm_max);
        Some(Self {
            words,
            inv_scale: row.inv_scale,
            window: round_up(2.0 * eps),
            best: Vec::with_capacity(k + 1),
            threshold: f32::NEG_INFINITY,
            candidates: Vec::new(),
        })
    }

    fn admit(&mut self, row: u32, a: f32, k: usize) {
        self.candidates.push((row, a));
        if self.best.len() < k || a > self.best[k - 1] {
            let pos = self.best.partition_point(|&b| b >= a);
            self.best.insert(pos, a);
            self.best.truncate(k);
            if self.best.len() == k {
                let t = self.best[k - 1] as f64 - self.window;
                let t32 = t as f32;
                self.threshold = if t32 as f64 > t { t32.next_down() } else { t32 };
            }
        }
    }

    fn finish(self) -> Vec<u32> {
        let threshold = self.threshold;
        self.candidates
            .into_iter()
            .filter(|&(_, a)| a >= threshold)
            .map(|(row, _)| row)
            .collect()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Int8Entries, LANES, QueryState};
    use std::arch::x86_64::*;

    /// The vector form of `Int8Entries::approximate_scores` (same operations, same order).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn approximate_scores(
        raw: &[i32; LANES],
        sums: &[i32],
        inv: &[f32],
        inv_q: f32,
        threshold: f32,
    ) -> (u16, [f32; LANES]) {
        assert!(sums.len() >= LANES && inv.len() >= LANES);
        // SAFETY: each pointer covers 16 elements (asserted above / by the array type).
        let (r, s, i) = unsafe {
            (
                _mm512_loadu_si512(raw.as_ptr() as *const __m512i),
                _mm512_loadu_si512(sums.as_ptr() as *const __m512i),
                _mm512_loadu_ps(inv.as_ptr()),
            )
        };
        let dot = _mm512_sub_epi32(r, _mm512_slli_epi32::<7>(s));
        let a = _mm512_mul_ps(
            _mm512_mul_ps(_mm512_cvtepi32_ps(dot), i),
            _mm512_set1_ps(inv_q),
        );
        let mask = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, _mm512_set1_ps(threshold));
        let mut scores = [0f32; LANES];
        // SAFETY: scores holds 16 floats.
        unsafe { _mm512_storeu_ps(scores.as_mut_ptr(), a) };
        (mask, scores)
    }

    /// Raw sums `Σ (q̃ + 128)·ẽ` of `Q` queries against `E` consecutive blocks of 16 entries,
    /// starting at `block`: per step, E loads and Q·E VNNI multiply-adds of 64 bytes each.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn tile<const Q: usize, const E: usize>(
        entries: &Int8Entries,
        group: &[QueryState],
        block: usize,
        raw: &mut [[[i32; LANES]; 2]],
    ) {
        let w = entries.words;
        assert!(group.len() >= Q && raw.len() >= Q && E <= 2);
        assert!((block + E) * w * LANES <= entries.data.len());
        for state in &group[..Q] {
            assert_eq!(state.words.len(), w);
        }
        let base = entries.data.as_ptr();
        let mut acc = [[_mm512_setzero_si512(); E]; Q];
        for t in 0..w {
            let mut ev = [_mm512_setzero_si512(); E];
            for (j, ev) in ev.iter_mut().enumerate() {
                // SAFETY: (block + j)·w·16 + t·16 + 16 ≤ (block + E)·w·16 ≤ data.len(), asserted above.
                *ev = unsafe {
                    _mm512_loadu_si512(
                        base.add((block + j) * w * LANES + t * LANES) as *const __m512i
                    )
                };
            }
            for i in 0..Q {
                let qv = _mm512_set1_epi32(group[i].words[t]);
                for j in 0..E {
                    acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], qv, ev[j]);
                }
            }
        }
        for i in 0..Q {
            for j in 0..E {
                // SAFETY: raw[i][j] holds 16 i32.
                unsafe { _mm512_storeu_si512(raw[i][j].as_mut_ptr() as *mut __m512i, acc[i][j]) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::normal_vec;

    #[test]
    fn quantised_rows_round_trip_and_bounds_hold() {
        let d = 37;
        let data = normal_vec(40 * d, 1);
        let q = Int8Entries::build(d, &data).unwrap();
        for (row, v) in data.chunks(d).enumerate() {
            let values = q.lane_values(row);
            let inv = q.inv_scale[row] as f64;
            let residual: f64 = v
                .iter()
                .zip(&values)
                .map(|(&x, &b)| (x as f64 - b as f64 * inv).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(residual <= q.residual_max, "row {row}");
            // Rounding to nearest: each value within half a step.
            for (&x, &b) in v.iter().zip(&values) {
                assert!(
                    (x as f64 - b as f64 * inv).abs() <= 0.5 * inv * (1.0 + 1e-6),
                    "row {row}"
                );
            }
            assert!(values[d..].iter().all(|&b| b == 0), "padding is zero");
            assert_eq!(q.sums[row], values.iter().map(|&b| b as i32).sum::<i32>());
        }
        assert!(
            Int8Entries::build(2, &[1.0, f32::NAN]).is_none(),
            "non-finite memories use the canonical scan"
        );
    }

    #[test]
    fn the_vnni_kernel_equals_the_portable_kernel() {
        if !vnni_available() {
            eprintln!("no AVX-512 VNNI on this CPU: only the portable kernel runs here");
            return;
        }
        for d in [1, 3, 4, 5, 33, 384] {
            let data = normal_vec(77 * d, d as u64);
            let entries = Int8Entries::build(d, &data).unwrap();
            let queries = normal_vec(19 * d, 100 + d as u64);
            let k = 5;
            assert_eq!(
                entries.candidates(&queries, k),
                entries.candidates_portable(&queries, k),
                "d {d}"
            );
            // And the raw sums agree lane for lane.
            let states: Vec<QueryState> = queries
                .chunks(d)
                .take(8)
                .map(|q| QueryState::new(&entries, q, k).unwrap())
                .collect();
            let mut raw = [[[0i32; LANES]; 2]; 8];
            // SAFETY: VNNI was detected above.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                x86::tile::<8, 2>(&entries, &states, 2, &mut raw)
            };
            for (i, s) in states.iter().enumerate() {
                for j in 0..2 {
                    for lane in 0..LANES {
                        assert_eq!(
                            raw[i][j][lane],
                            entries.raw_portable(&s.words, (2 + j) * LANES + lane),
                            "d {d}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn swap_remove_mirrors_the_rows_and_clears_the_vacated_lane() {
        let d = 9;
        let data = normal_vec(35 * d, 3);
        let mut q = Int8Entries::build(d, &data).unwrap();
        let mut rows: Vec<Vec<i8>> = (0..35).map(|r| q.lane_values(r)).collect();
        for row in [3, 33, 0, 31] {
            q.swap_remove(row);
            rows.swap_remove(row);
            for (r, want) in rows.iter().enumerate() {
                assert_eq!(&q.lane_values(r), want);
            }
        }
        assert_eq!(q.len(), 31);
        // 31 entries: two blocks, lane 15 of the second holds nothing.
        assert_eq!(q.data.len(), 2 * q.words * LANES);
        assert!(q.lane_values(31).iter().all(|&b| b == 0));
    }
}
