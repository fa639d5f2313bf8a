//! CPU kernels on plain slices: the arithmetic behind the fused candle ops ([`super::fused`])
//! and the fused transformer block ([`super::block`]).
//!
//! The crate is built for baseline x86-64 (SSE2), so that it runs on any x86-64 machine. The
//! element-wise kernels are defined with [`simd_fn!`], which compiles their body again for
//! AVX-512 and for AVX2+FMA and picks one at run time (std caches the CPU check): their loops
//! then vectorise at those widths. Reductions keep 16 independent partial sums, because without
//! fast-math a single running f32 sum is a serial dependency that the compiler may not reorder.

use rayon::prelude::*;

/// Defines a function whose body is also compiled for AVX-512 and for AVX2+FMA, chosen at run
/// time. Its helpers must be `#[inline(always)]` so that they are compiled into each version.
macro_rules! simd_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                {
                    // SAFETY: the CPU has every feature v4 is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3.
                    return unsafe { v3($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// A vector of `n` floats whose contents are uninitialised.
///
/// Zero-filling with `vec![0.0; n]` costs a full serial pass over memory (once the allocator
/// reuses heap memory, `calloc` must memset it): 7 % of a training step when measured. candle's
/// own CPU backend allocates uninitialised outputs the same way (`alloc_uninit`).
///
/// A deviation, stated: `Vec::set_len` asks that the new elements already be initialised, and
/// Rust's rules make even an unread uninitialised `f32` behind a `&mut [f32]` undefined
/// behaviour. procmem accepts this, as candle's CPU backend does, because `f32` has no invalid
/// bit patterns, no code path reads an element before a kernel writes it, and the zero fill it
/// saves is 7 % of a step. `Vec::spare_capacity_mut` with `MaybeUninit` kernels is the sound
/// alternative.
///
/// # Safety
///
/// The caller must write all `n` elements before reading any of them (or handing the vector to
/// code that may read it); each call site names the kernel that does.
#[allow(clippy::uninit_vec)] // the deviation above, on purpose
pub(crate) unsafe fn alloc_uninit(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: the capacity is n; the caller writes every element before any read (see # Safety
    // and the deviation above).
    unsafe { v.set_len(n) };
    v
}

/// Rows of at least this many elements in total are split across threads.
pub(crate) const PARALLEL_MIN: usize = 1 << 14;

/// Rows per parallel task for rows of `cols` elements.
fn rows_per_task(cols: usize) -> usize {
    (PARALLEL_MIN / cols.max(1)).max(1)
}

/// `out` as parallel chunks of whole rows: (index of the first row, rows).
pub(crate) fn row_chunks_par(
    out: &mut [f32],
    cols: usize,
) -> impl IndexedParallelIterator<Item = (usize, &mut [f32])> {
    let rows = rows_per_task(cols);
    out.par_chunks_mut((rows * cols).max(1))
        .enumerate()
        .map(move |(i, chunk)| (i * rows, chunk))
}

/// Σ over all rows of a per-row contribution of `width` values: rows are split into chunks
/// across threads, each accumulating into its own buffer, and the buffers are added.
pub(crate) fn sum_over_rows(
    rows: usize,
    cols: usize,
    width: usize,
    add_rows: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    let chunk = rows_per_task(cols);
    (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0f32; width];
            add_rows(c * chunk..((c + 1) * chunk).min(rows), &mut acc);
            acc
        })
        .reduce(
            || vec![0f32; width],
            |mut a, b| {
                add_assign(&mut a, &b);
                a
            },
        )
}

// ---------------------------------------------------------------- lane reductions ----------

const LANES: usize = 16;

#[inline(always)]
fn fold_lanes(acc: [f32; LANES]) -> f32 {
    acc.iter().sum()
}

#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    fold_lanes(acc) + tail
}

#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    fold_lanes(acc) + tail
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

simd_fn! {
    /// a += b, element-wise.
    pub(crate) fn add_assign(a: &mut [f32], b: &[f32]) {
        for (a, b) in a.iter_mut().zip(b) {
            *a += b;
        }
    }
}

simd_fn! {
    /// out ← s · x.
    pub(crate) fn scale_into(out: &mut [f32], x: &[f32], s: f32) {
        for (o, x) in out.iter_mut().zip(x) {
            *o = s * x;
        }
    }
}

/// Rows per block of [`matvec_rows_in_order`]: their outputs (8 × D floats) stay in L1 while
/// one row of the transposed matrix is applied to all of them.
const MATVEC_BLOCK_ROWS: usize = 8;

simd_fn! {
    /// `out[b][j] = Σₖ wt[k][j] · x[b][k]` for rows of `d_in` values into rows of `d_out`, each
    /// sum taken in k order with a separate multiply and add per term (`wt` is the matrix
    /// transposed, row-major [d_in, d_out]). The bits equal those of a sequential
    /// `(0..d_in).map(|k| w[j][k] * x[b][k]).sum()` whatever the SIMD width, because the vector
    /// lanes run over j, never across the sum.
    pub(crate) fn matvec_rows_in_order(
        x: &[f32],
        wt: &[f32],
        d_in: usize,
        d_out: usize,
        out: &mut [f32],
    ) {
        for (xs, outs) in x
            .chunks(MATVEC_BLOCK_ROWS * d_in)
            .zip(out.chunks_mut(MATVEC_BLOCK_ROWS * d_out))
        {
            // The first term initialises each sum (as −0.0 + p = p does in `sum()`).
            for (xb, ob) in xs.chunks_exact(d_in).zip(outs.chunks_exact_mut(d_out)) {
                let c = xb[0];
                for (o, w) in ob.iter_mut().zip(&wt[..d_out]) {
                    *o = w * c;
                }
            }
            for k in 1..d_in {
                let w_row = &wt[k * d_out..(k + 1) * d_out];
                for (xb, ob) in xs.chunks_exact(d_in).zip(outs.chunks_exact_mut(d_out)) {
                    let c = xb[k];
                    for (o, w) in ob.iter_mut().zip(w_row) {
                        *o += w * c;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- exp, erf, GELU -----------

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// e^y for y in [−87, 88] (clamped), branch-free so that loops over it vectorise: y = n·ln 2 + r
/// with |r| ≤ ln 2 / 2, e^r by its degree-6 Taylor polynomial (relative error < 2e-7), 2ⁿ from
/// the exponent bits.
#[inline(always)]
pub(crate) fn exp_approx(y: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let y = y.clamp(-87.0, 88.0);
    let z = y * std::f32::consts::LOG2_E + ROUND;
    let n = z - ROUND;
    let r = y - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let exponent = (z.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23;
    p * f32::from_bits(exponent as u32)
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), vectorisable; `libm::erff` is
/// scalar and branchy, and took 5 % of a training step. `e` must be exp(−x²), so that a caller
/// that needs that exponential too (GELU's gradient) computes it once.
#[inline(always)]
fn erf_with_exp(x: f32, e: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let t = 1.0 / (1.0 + P * x.abs());
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * e).copysign(x)
}

#[cfg(test)]
pub(crate) fn erf_approx(x: f32) -> f32 {
    erf_with_exp(x, exp_approx(-x * x))
}

/// (GELU(x), GELU′(x)) = (x·Φ(x), Φ(x) + x·φ(x)), where erf(x/√2) and φ(x) share the
/// exponential e^(−x²/2). Every GELU here comes from this one function, so that the forward pass
/// with and without the gradient gives the same bits.
#[inline(always)]
fn gelu_and_grad(x: f32) -> (f32, f32) {
    let y = x * FRAC_1_SQRT_2;
    let e = exp_approx(-y * y);
    let erf = erf_with_exp(y, e);
    (
        0.5 * x * (1.0 + erf),
        0.5 * (1.0 + erf) + x * FRAC_1_SQRT_2PI * e,
    )
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    gelu_and_grad(x).0
}

#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    gelu_and_grad(x).1
}

const ELEMENTWISE_CHUNK: usize = 1 << 13;

simd_fn! {
    fn gelu_chunk(x: &[f32], out: &mut [f32]) {
        for (o, x) in out.iter_mut().zip(x) {
            *o = gelu(*x);
        }
    }
}

simd_fn! {
    fn gelu_grad_chunk(x: &[f32], g: &mut [f32]) {
        for (g, x) in g.iter_mut().zip(x) {
            *g *= gelu_grad(*x);
        }
    }
}

simd_fn! {
    fn mul_chunk(g: &mut [f32], d: &[f32]) {
        for (g, d) in g.iter_mut().zip(d) {
            *g *= d;
        }
    }
}

simd_fn! {
    /// Rows of `h` (width b.len()) get the bias, then out = GELU(h) and, with `keep_grad`,
    /// h ← GELU′(h): computed with GELU, sharing erf and the exponential, and kept in place of
    /// the pre-activations, which the backward pass would otherwise read again.
    fn bias_gelu_rows(h: &mut [f32], b: &[f32], out: &mut [f32], keep_grad: bool) {
        for (hr, or) in h.chunks_mut(b.len()).zip(out.chunks_mut(b.len())) {
            if keep_grad {
                for ((o, x), b) in or.iter_mut().zip(hr.iter_mut()).zip(b) {
                    (*o, *x) = gelu_and_grad(*x + b);
                }
            } else {
                for ((o, x), b) in or.iter_mut().zip(hr.iter()).zip(b) {
                    *o = gelu(*x + b);
                }
            }
        }
    }
}

/// Whole rows of `cols` per element-wise task: about [`ELEMENTWISE_CHUNK`] elements.
fn elementwise_rows_chunk(cols: usize) -> usize {
    (ELEMENTWISE_CHUNK / cols.max(1)).max(1) * cols.max(1)
}

/// out = GELU(h + b) per row (b: one value per column), where h is a bias-free product; with
/// `keep_grad` also h ← GELU′(h + b) for the backward pass. Adding the bias here saves a pass
/// over h that filling it with the bias before the product would cost.
pub(crate) fn bias_gelu_forward(h: &mut [f32], b: &[f32], out: &mut [f32], keep_grad: bool) {
    let chunk = elementwise_rows_chunk(b.len());
    out.par_chunks_mut(chunk)
        .zip(h.par_chunks_mut(chunk))
        .for_each(|(o, h)| bias_gelu_rows(h, b, o, keep_grad));
}

simd_fn! {
    /// Rows of out ← base + s · (out + b): a residual connection around a bias-free product,
    /// with the branch's scale s.
    pub(crate) fn residual_bias_rows(out: &mut [f32], base: &[f32], b: &[f32], s: f32) {
        for (or, br) in out.chunks_mut(b.len()).zip(base.chunks(b.len())) {
            for ((o, x), b) in or.iter_mut().zip(br).zip(b) {
                *o = x + s * (*o + b);
            }
        }
    }
}

/// g ← g ⊙ d, element-wise.
pub(crate) fn mul_in_place(g: &mut [f32], d: &[f32]) {
    g.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(d.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(g, d)| mul_chunk(g, d));
}

/// out = GELU(x) (exact, erf).
pub(crate) fn gelu_forward(x: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(o, x)| gelu_chunk(x, o));
}

/// g ← g ⊙ GELU′(x): the gradient through GELU, in place.
pub(crate) fn gelu_backward_in_place(x: &[f32], g: &mut [f32]) {
    g.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(g, x)| gelu_grad_chunk(x, g));
}

// ---------------------------------------------------------------- softmax -------------------

simd_fn! {
    /// Softmax of each row of `rows` (rows of `cols`), in place.
    pub(crate) fn softmax_rows(rows: &mut [f32], cols: usize) {
        for row in rows.chunks_mut(cols.max(1)) {
            let m = max(row);
            for v in row.iter_mut() {
                *v = exp_approx(*v - m);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

simd_fn! {
    /// The softmax gradient of each row, in place: g ← scale · y ⊙ (g − Σ g⊙y).
    pub(crate) fn softmax_grad_rows(y: &[f32], g: &mut [f32], cols: usize, scale: f32) {
        for (g, y) in g.chunks_mut(cols.max(1)).zip(y.chunks(cols.max(1))) {
            let d = dot(y, g);
            for (g, y) in g.iter_mut().zip(y) {
                *g = y * (*g - d) * scale;
            }
        }
    }
}

// ---------------------------------------------------------------- layer norm ----------------

/// (mean, 1/√(var + eps)) of a row, with the biased variance (as PyTorch).
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += (c[i] - mean) * (c[i] - mean);
        }
    }
    let var = (fold_lanes(acc) + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

simd_fn! {
    fn layer_norm_chunk(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
        let cols = w.len();
        for (row, o) in x.chunks(cols).zip(out.chunks_mut(cols)) {
            let (mean, rstd) = row_stats(row, eps);
            for j in 0..cols {
                o[j] = (row[j] - mean) * rstd * w[j] + b[j];
            }
        }
    }
}

/// out = LayerNorm(x)·w + b over rows of `w.len()`.
pub(crate) fn layer_norm_forward(x: &[f32], w: &[f32], b: &[f32], eps: f32, out: &mut [f32]) {
    let cols = w.len();
    row_chunks_par(out, cols)
        .for_each(|(r, o)| layer_norm_chunk(&x[r * cols..r * cols + o.len()], w, b, eps, o));
}

simd_fn! {
    fn layer_norm_backward_chunk(x: &[f32], w: &[f32], g: &[f32], eps: f32, out: &mut [f32], accumulate: bool) {
        let cols = w.len();
        let n = cols as f32;
        for ((row, gr), o) in x.chunks(cols).zip(g.chunks(cols)).zip(out.chunks_mut(cols)) {
            let (mean, rstd) = row_stats(row, eps);
            let (mut a, mut c) = ([0f32; LANES], [0f32; LANES]);
            let mut j = 0;
            while j + LANES <= cols {
                for i in 0..LANES {
                    let gw = gr[j + i] * w[j + i];
                    a[i] += gw;
                    c[i] += gw * (row[j + i] - mean);
                }
                j += LANES;
            }
            let (mut a, mut c) = (fold_lanes(a), fold_lanes(c));
            for j in j..cols {
                let gw = gr[j] * w[j];
                a += gw;
                c += gw * (row[j] - mean);
            }
            let (a, c) = (a / n, c * rstd / n);
            for j in 0..cols {
                let xhat = (row[j] - mean) * rstd;
                let dx = rstd * (gr[j] * w[j] - a - xhat * c);
                o[j] = if accumulate { o[j] + dx } else { dx };
            }
        }
    }
}

/// The input gradient of layer norm, dx = rstd · (g⊙w − mean(g⊙w) − x̂ · mean(g⊙w⊙x̂)), written
/// into `out` or added to it.
pub(crate) fn layer_norm_backward_input(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    eps: f32,
    out: &mut [f32],
    accumulate: bool,
) {
    let cols = w.len();
    row_chunks_par(out, cols).for_each(|(r, o)| {
        let span = r * cols..r * cols + o.len();
        layer_norm_backward_chunk(&x[span.clone()], w, &g[span], eps, o, accumulate)
    });
}

simd_fn! {
    fn layer_norm_params_chunk(x: &[f32], g: &[f32], eps: f32, acc: &mut [f32]) {
        let cols = acc.len() / 2;
        let (dw, db) = acc.split_at_mut(cols);
        for (row, gr) in x.chunks(cols).zip(g.chunks(cols)) {
            let (mean, rstd) = row_stats(row, eps);
            for j in 0..cols {
                dw[j] += gr[j] * (row[j] - mean) * rstd;
                db[j] += gr[j];
            }
        }
    }
}

/// [dw | db] of layer norm: dw = Σ g⊙x̂ and db = Σ g over all rows.
pub(crate) fn layer_norm_backward_params(x: &[f32], g: &[f32], cols: usize, eps: f32) -> Vec<f32> {
    let rows = x.len() / cols.max(1);
    sum_over_rows(rows, cols, 2 * cols, |span, acc| {
        layer_norm_params_chunk(
            &x[span.start * cols..span.end * cols],
            &g[span.start * cols..span.end * cols],
            eps,
            acc,
        )
    })
}

/// Σ over rows of a [rows, cols] matrix: a bias gradient.
pub(crate) fn column_sums(g: &[f32], cols: usize) -> Vec<f32> {
    let rows = g.len() / cols.max(1);
    sum_over_rows(rows, cols, cols, |span, acc| {
        for row in g[span.start * cols..span.end * cols].chunks(cols) {
            add_assign(acc, row);
        }
    })
}

// ---------------------------------------------------------------- gemm and linear ----------

pub(crate) fn gemm_threads() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// dst[m×n] = beta · lhs[m×k] · rhs[k×n] (+ dst when `accumulate`), every matrix given as
/// (pointer, column step, row step).
///
/// Safety: the pointers must address matrices of these sizes and steps; dst must not alias.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    accumulate: bool,
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    beta: f32,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's contract (this fn's # Safety) is exactly gemm's: pointers valid for the given shapes and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.1,
            dst.2,
            accumulate,
            lhs.0,
            lhs.1,
            lhs.2,
            rhs.0,
            rhs.1,
            rhs.2,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The sizes of a linear layer x[rows, in]·W[out, in]ᵀ.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinearDims {
    pub rows: usize,
    pub input: usize,
    pub output: usize,
}

impl LinearDims {
    fn check(&self, x: usize, w: usize, y: usize, what: &str) -> candle_core::Result<()> {
        let LinearDims {
            rows,
            input,
            output,
        } = *self;
        if x != rows * input || w != output * input || y != rows * output {
            candle_core::bail!(
                "{what}: buffers of {x}, {w}, {y} floats for {rows} rows, {input} in, {output} out"
            );
        }
        Ok(())
    }
}

simd_fn! {
    fn rowwise_rows(x: &[f32], w: &[f32], input: usize, y: &mut [f32]) {
        let output = w.len() / input.max(1);
        for (xr, yr) in x.chunks(input.max(1)).zip(y.chunks_mut(output.max(1))) {
            for (o, v) in yr.iter_mut().enumerate() {
                *v = dot(xr, &w[o * input..(o + 1) * input]);
            }
        }
    }
}

/// y = x·Wᵀ, overwriting y, one dot product per output in a fixed order: for the few rows of
/// the CLS-only last block (one per image). gemm orders its sums differently for different row
/// counts, which would make an image's embedding differ in the last bits with the number of
/// images in its batch; here each row's result depends on that row alone.
pub(crate) fn rowwise_matmul_transposed(
    d: LinearDims,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
) -> candle_core::Result<()> {
    d.check(x.len(), w.len(), y.len(), "linear")?;
    let rows_per_task = (PARALLEL_MIN / (d.input * d.output).max(1)).max(1);
    y.par_chunks_mut((rows_per_task * d.output).max(1))
        .zip(x.par_chunks((rows_per_task * d.input).max(1)))
        .for_each(|(y, x)| rowwise_rows(x, w, d.input, y));
    Ok(())
}

/// y = x·Wᵀ, overwriting y: for callers that add the bias in their next pass over y.
pub(crate) fn matmul_transposed(
    d: LinearDims,
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
) -> candle_core::Result<()> {
    d.check(x.len(), w.len(), y.len(), "linear")?;
    product_transposed(d, x, w, y, false);
    Ok(())
}

/// y = x·Wᵀ (+ y when `accumulate`), for lengths its callers checked with `LinearDims::check`.
fn product_transposed(d: LinearDims, x: &[f32], w: &[f32], y: &mut [f32], accumulate: bool) {
    // SAFETY: x is [rows, in], w is [out, in] (read as Wᵀ: column step in, row step 1), y is
    // [rows, out]; the callers checked these lengths.
    unsafe {
        gemm_f32(
            (d.rows, d.output, d.input),
            (y.as_mut_ptr(), 1, d.output as isize),
            accumulate,
            (x.as_ptr(), 1, d.input as isize),
            (w.as_ptr(), d.input as isize, 1),
            1.0,
            gemm_threads(),
        )
    };
}

/// y = x·Wᵀ + b. The bias is the initial value of the product's destination.
pub(crate) fn linear_forward(
    d: LinearDims,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) -> candle_core::Result<()> {
    d.check(x.len(), w.len(), y.len(), "linear")?;
    if b.len() != d.output {
        candle_core::bail!("linear: bias of {} for {} outputs", b.len(), d.output);
    }
    row_chunks_par(y, d.output).for_each(|(_, rows)| {
        for row in rows.chunks_mut(d.output) {
            row.copy_from_slice(b);
        }
    });
    product_transposed(d, x, w, y, true);
    Ok(())
}

/// dx = g·W (or dx += g·W when `accumulate`), from the output gradient g [rows, out].
pub(crate) fn linear_backward_input(
    d: LinearDims,
    g: &[f32],
    w: &[f32],
    dx: &mut [f32],
    accumulate: bool,
) -> candle_core::Result<()> {
    d.check(dx.len(), w.len(), g.len(), "linear backward")?;
    // SAFETY: g is [rows, out], w is [out, in], dx is [rows, in]; lengths checked above.
    unsafe {
        gemm_f32(
            (d.rows, d.input, d.output),
            (dx.as_mut_ptr(), 1, d.input as isize),
            accumulate,
            (g.as_ptr(), 1, d.output as isize),
            (w.as_ptr(), 1, d.input as isize),
            1.0,
            gemm_threads(),
        )
    };
    Ok(())
}

/// dW = gᵀ·x, from the output gradient g [rows, out] and the input x [rows, in].
///
/// The sum runs over the rows, which far outnumber out × in. gemm splits its threads over the
/// output's blocks, which measured 160–230 GFLOP/s for these shapes here; splitting the rows
/// instead, one single-threaded product per thread, then adding the partial sums, measured
/// 280–320 (`examples`-style probe, 8320 rows, 2 threads).
pub(crate) fn linear_backward_weight(
    d: LinearDims,
    g: &[f32],
    x: &[f32],
) -> candle_core::Result<Vec<f32>> {
    let size = d.output * d.input;
    d.check(x.len(), size, g.len(), "linear backward")?;
    const MIN_ROWS: usize = 256;
    let parts = rayon::current_num_threads().min(d.rows / MIN_ROWS).max(1);
    let per_part = d.rows.div_ceil(parts).max(1);
    let partial = |part: usize| {
        let first = part * per_part;
        let rows = per_part.min(d.rows.saturating_sub(first));
        // SAFETY: the gemm_f32 call below writes all of dW (accumulate = false; gemm fills the
        // output with zeros when the inner dimension is 0).
        let mut dw = unsafe { alloc_uninit(size) };
        // SAFETY: gᵀ rows first.. is [out, rows] (column step out, row step 1), x's rows are
        // [rows, in], dW is [out, in] and written completely (accumulate = false); the row range
        // lies within both buffers, whose lengths are checked above.
        unsafe {
            gemm_f32(
                (d.output, d.input, rows),
                (dw.as_mut_ptr(), 1, d.input as isize),
                false,
                (g.as_ptr().add(first * d.output), d.output as isize, 1),
                (x.as_ptr().add(first * d.input), 1, d.input as isize),
                1.0,
                gemm::Parallelism::None,
            )
        };
        dw
    };
    if parts == 1 {
        return Ok(partial(0));
    }
    let mut partials: Vec<Vec<f32>> = (0..parts).into_par_iter().map(partial).collect();
    let mut dw = partials.swap_remove(0);
    let rest = &partials;
    dw.par_chunks_mut(ELEMENTWISE_CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            let span = i * ELEMENTWISE_CHUNK..i * ELEMENTWISE_CHUNK + chunk.len();
            for p in rest {
                add_assign(chunk, &p[span.clone()]);
            }
        });
    Ok(dw)
}

// ---------------------------------------------------------------- attention ----------------

/// The sizes of a multi-head attention core on a packed qkv [batch, tokens, 3·dim].
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttentionDims {
    pub batch: usize,
    pub tokens: usize,
    pub dim: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub scale: f32,
}

impl AttentionDims {
    pub fn new(
        batch: usize,
        tokens: usize,
        three_d: usize,
        heads: usize,
    ) -> candle_core::Result<Self> {
        if heads == 0 || !three_d.is_multiple_of(3 * heads) {
            candle_core::bail!(
                "attention: packed qkv width {three_d} is not 3 × heads ({heads}) × head dim"
            );
        }
        let dim = three_d / 3;
        let head_dim = dim / heads;
        Ok(Self {
            batch,
            tokens,
            dim,
            heads,
            head_dim,
            scale: (head_dim as f32).powf(-0.5),
        })
    }
}

/// The attention's products: one (sample, head) each, single-threaded because the callers
/// parallelise over samples.
///
/// Safety: as [`gemm_f32`].
unsafe fn gemm_head(
    dims: (usize, usize, usize),
    dst: (*mut f32, isize, isize),
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    beta: f32,
) {
    // SAFETY: passed through from this fn's caller, under the same contract.
    unsafe { gemm_f32(dims, dst, false, lhs, rhs, beta, gemm::Parallelism::None) }
}

/// P = softmax(scale · q·kᵀ) for one (sample, head), into `p` ([N, N], row-major). `q` and `k`
/// point at the head's first element in the packed qkv (row step 3·D).
///
/// Safety: `q` and `k` must address N rows of `head_dim` floats at row step 3·D.
unsafe fn attention_probs(p: &mut [f32], q: *const f32, k: *const f32, d: &AttentionDims) {
    let (n, hd, row) = (d.tokens, d.head_dim, 3 * d.dim as isize);
    // Kᵀ as a [hd, N] matrix: element (i, j) = K[j, i], i.e. column step = row step of K.
    // SAFETY: p is n × n; q and k point into a [N, 3·dim] qkv buffer whose rows hold hd elements at these strides (the caller's contract).
    unsafe {
        gemm_head(
            (n, n, hd),
            (p.as_mut_ptr(), 1, n as isize),
            (q, 1, row),
            (k, row, 1),
            d.scale,
        )
    };
    softmax_rows(p, n);
}

/// out [B, N, D] = softmax(q·kᵀ/√d_h)·v per head, heads side by side, from the packed qkv.
/// The attention matrix is a per-thread scratch buffer, recomputed in the backward pass instead
/// of being kept (as flash attention does): at N = 65 that costs less than storing it.
pub(crate) fn attention_forward(
    d: &AttentionDims,
    qkv: &[f32],
    out: &mut [f32],
) -> candle_core::Result<()> {
    let (n, dim) = (d.tokens, d.dim);
    if qkv.len() != d.batch * n * 3 * dim || out.len() != d.batch * n * dim {
        candle_core::bail!(
            "attention: buffers of {} and {} floats for {d:?}",
            qkv.len(),
            out.len()
        );
    }
    out.par_chunks_mut((n * dim).max(1))
        .zip(qkv.par_chunks((n * 3 * dim).max(1)))
        .for_each_init(
            || vec![0f32; n * n],
            |p, (out_b, qkv_b)| attention_sample(d, qkv_b, out_b, p),
        );
    Ok(())
}

/// [`attention_forward`] on a bias-free qkv product: each sample's rows get the qkv bias first
/// (in place, so that the backward pass finds the biased qkv), while they are in cache anyway.
pub(crate) fn bias_attention_forward(
    d: &AttentionDims,
    qkv: &mut [f32],
    bias: &[f32],
    out: &mut [f32],
) -> candle_core::Result<()> {
    let (n, dim) = (d.tokens, d.dim);
    if qkv.len() != d.batch * n * 3 * dim || out.len() != d.batch * n * dim || bias.len() != 3 * dim
    {
        candle_core::bail!(
            "attention: buffers of {}, {} and {} floats for {d:?}",
            qkv.len(),
            bias.len(),
            out.len()
        );
    }
    out.par_chunks_mut((n * dim).max(1))
        .zip(qkv.par_chunks_mut((n * 3 * dim).max(1)))
        .for_each_init(
            || vec![0f32; n * n],
            |p, (out_b, qkv_b)| {
                for row in qkv_b.chunks_mut(3 * dim) {
                    add_assign(row, bias);
                }
                attention_sample(d, qkv_b, out_b, p)
            },
        );
    Ok(())
}

/// One sample's attention: `qkv_b` its [N, 3·D] rows, `out_b` its [N, D] output (written
/// completely), `p` an [N, N] scratch buffer.
fn attention_sample(d: &AttentionDims, qkv_b: &[f32], out_b: &mut [f32], p: &mut [f32]) {
    let (n, dim, hd) = (d.tokens, d.dim, d.head_dim);
    let base = qkv_b.as_ptr();
    for h in 0..d.heads {
        // SAFETY: q, k, v of head h lie within the sample's [N, 3·D] rows (lengths checked by
        // the callers); out_b is the sample's [N, D] block, written at the head's columns
        // (accumulate = false).
        unsafe {
            let (q, k, v) = (
                base.add(h * hd),
                base.add(dim + h * hd),
                base.add(2 * dim + h * hd),
            );
            attention_probs(p, q, k, d);
            gemm_head(
                (n, hd, n),
                (out_b.as_mut_ptr().add(h * hd), 1, dim as isize),
                (p.as_ptr(), 1, n as isize),
                (v, 1, 3 * dim as isize),
                1.0,
            );
        }
    }
}

/// The packed qkv gradient from the output gradient, with P recomputed:
/// dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − rowsum(P ⊙ dO·Vᵀ)) · scale, dQ = dS·K, dK = dSᵀ·Q.
pub(crate) fn attention_backward(
    d: &AttentionDims,
    qkv: &[f32],
    grad: &[f32],
    dqkv: &mut [f32],
) -> candle_core::Result<()> {
    let (n, dim, hd) = (d.tokens, d.dim, d.head_dim);
    if qkv.len() != d.batch * n * 3 * dim
        || grad.len() != d.batch * n * dim
        || dqkv.len() != qkv.len()
    {
        candle_core::bail!(
            "attention backward: buffers of {}, {} and {} floats for {d:?}",
            qkv.len(),
            grad.len(),
            dqkv.len()
        );
    }
    let row = 3 * dim as isize;
    dqkv.par_chunks_mut((n * 3 * dim).max(1))
        .enumerate()
        .for_each_init(
            || (vec![0f32; n * n], vec![0f32; n * n]),
            |(p, ds), (b, dqkv_b)| {
                let base = qkv[b * n * 3 * dim..].as_ptr();
                let dout = grad[b * n * dim..].as_ptr();
                for h in 0..d.heads {
                    // SAFETY: as in the forward pass; dqkv_b is this sample's [N, 3·D] block and
                    // each product writes (accumulate = false) the head's own columns of q, k or v.
                    unsafe {
                        let (q, k, v) = (
                            base.add(h * hd),
                            base.add(dim + h * hd),
                            base.add(2 * dim + h * hd),
                        );
                        let go = dout.add(h * hd);
                        attention_probs(p, q, k, d);
                        let dst = dqkv_b.as_mut_ptr();
                        // dV = Pᵀ·dO
                        gemm_head(
                            (n, hd, n),
                            (dst.add(2 * dim + h * hd), 1, row),
                            (p.as_ptr(), n as isize, 1),
                            (go, 1, dim as isize),
                            1.0,
                        );
                        // dP = dO·Vᵀ
                        gemm_head(
                            (n, n, hd),
                            (ds.as_mut_ptr(), 1, n as isize),
                            (go, 1, dim as isize),
                            (v, row, 1),
                            1.0,
                        );
                        softmax_grad_rows(p, ds, n, d.scale);
                        // dQ = dS·K, dK = dSᵀ·Q
                        gemm_head(
                            (n, hd, n),
                            (dst.add(h * hd), 1, row),
                            (ds.as_ptr(), 1, n as isize),
                            (k, 1, row),
                            1.0,
                        );
                        gemm_head(
                            (n, hd, n),
                            (dst.add(dim + h * hd), 1, row),
                            (ds.as_ptr(), n as isize, 1),
                            (q, 1, row),
                            1.0,
                        );
                    }
                }
            },
        );
    Ok(())
}

// ---------------------------------------------------------------- CLS-query attention ------

simd_fn! {
    /// One sample's attention for its CLS query only: for each head, p = softmax(scale · q·Kᵀ)
    /// over the sample's N keys, out = p·V. `kv_b` is the sample's [N, 2·D] keys and values,
    /// `q_b` and `out_b` its [D] query and output, `p_b` its [heads, N] probabilities.
    fn cls_attention_sample(d: &AttentionDims, q_b: &[f32], kv_b: &[f32], p_b: &mut [f32], out_b: &mut [f32]) {
        let (n, dim, hd) = (d.tokens, d.dim, d.head_dim);
        for h in 0..d.heads {
            let q = &q_b[h * hd..(h + 1) * hd];
            let p = &mut p_b[h * n..(h + 1) * n];
            for (j, pj) in p.iter_mut().enumerate() {
                *pj = d.scale * dot(q, &kv_b[j * 2 * dim + h * hd..][..hd]);
            }
            softmax_rows(p, n);
            let o = &mut out_b[h * hd..(h + 1) * hd];
            o.fill(0.0);
            for (j, &pj) in p.iter().enumerate() {
                for (o, v) in o.iter_mut().zip(&kv_b[j * 2 * dim + dim + h * hd..][..hd]) {
                    *o += pj * v;
                }
            }
        }
    }
}

simd_fn! {
    /// The backward pass of [`cls_attention_sample`] from the output gradient `g_b` [D]: the
    /// query's gradient `dq_b` [D] and every key's and value's `dkv_b` [N, 2·D], all written.
    fn cls_attention_sample_backward(d: &AttentionDims, q_b: &[f32], kv_b: &[f32], p_b: &[f32], g_b: &[f32], dq_b: &mut [f32], dkv_b: &mut [f32]) {
        let (n, dim, hd) = (d.tokens, d.dim, d.head_dim);
        let mut ds = vec![0f32; n];
        for h in 0..d.heads {
            let (q, g, p) = (&q_b[h * hd..(h + 1) * hd], &g_b[h * hd..(h + 1) * hd], &p_b[h * n..(h + 1) * n]);
            // dP_j = g·V_j, then through the softmax and the scale.
            for (j, dsj) in ds.iter_mut().enumerate() {
                *dsj = dot(g, &kv_b[j * 2 * dim + dim + h * hd..][..hd]);
            }
            softmax_grad_rows(p, &mut ds, n, d.scale);
            let dq = &mut dq_b[h * hd..(h + 1) * hd];
            dq.fill(0.0);
            for j in 0..n {
                let row = &mut dkv_b[j * 2 * dim..(j + 1) * 2 * dim];
                // dQ += dS_j·K_j, dK_j = dS_j·q, dV_j = P_j·g.
                for (dq, k) in dq.iter_mut().zip(&kv_b[j * 2 * dim + h * hd..][..hd]) {
                    *dq += ds[j] * k;
                }
                for (dk, q) in row[h * hd..(h + 1) * hd].iter_mut().zip(q) {
                    *dk = ds[j] * q;
                }
                for (dv, g) in row[dim + h * hd..dim + (h + 1) * hd].iter_mut().zip(g) {
                    *dv = p[j] * g;
                }
            }
        }
    }
}

/// Attention for the CLS query of each sample only (what a ViT's last block needs when only its
/// CLS output is used): `q` [B, D] the CLS queries, `kv` [B·N, 2·D] every token's keys and values,
/// into `probs` [B, heads, N] (kept for the backward pass) and `out` [B, D].
pub(crate) fn cls_attention_forward(
    d: &AttentionDims,
    q: &[f32],
    kv: &[f32],
    probs: &mut [f32],
    out: &mut [f32],
) -> candle_core::Result<()> {
    let (n, dim) = (d.tokens, d.dim);
    if q.len() != d.batch * dim
        || kv.len() != d.batch * n * 2 * dim
        || probs.len() != d.batch * d.heads * n
        || out.len() != q.len()
    {
        candle_core::bail!(
            "CLS attention: buffers of {}, {}, {} and {} floats for {d:?}",
            q.len(),
            kv.len(),
            probs.len(),
            out.len()
        );
    }
    out.par_chunks_mut(dim.max(1))
        .zip(probs.par_chunks_mut((d.heads * n).max(1)))
        .with_min_len(8)
        .enumerate()
        .for_each(|(b, (out_b, p_b))| {
            cls_attention_sample(
                d,
                &q[b * dim..(b + 1) * dim],
                &kv[b * n * 2 * dim..(b + 1) * n * 2 * dim],
                p_b,
                out_b,
            );
        });
    Ok(())
}

/// The backward pass of [`cls_attention_forward`]: `dq` [B, D] and `dkv` [B·N, 2·D] from the
/// output gradient `g` [B, D], both written completely.
pub(crate) fn cls_attention_backward(
    d: &AttentionDims,
    q: &[f32],
    kv: &[f32],
    probs: &[f32],
    g: &[f32],
    dq: &mut [f32],
    dkv: &mut [f32],
) -> candle_core::Result<()> {
    let (n, dim) = (d.tokens, d.dim);
    if q.len() != d.batch * dim
        || kv.len() != d.batch * n * 2 * dim
        || probs.len() != d.batch * d.heads * n
        || g.len() != q.len()
        || dq.len() != q.len()
        || dkv.len() != kv.len()
    {
        candle_core::bail!(
            "CLS attention backward: buffers of {}, {}, {} and {} floats for {d:?}",
            q.len(),
            kv.len(),
            probs.len(),
            g.len()
        );
    }
    dq.par_chunks_mut(dim.max(1))
        .zip(dkv.par_chunks_mut((n * 2 * dim).max(1)))
        .with_min_len(8)
        .enumerate()
        .for_each(|(b, (dq_b, dkv_b))| {
            let (q_b, g_b) = (&q[b * dim..(b + 1) * dim], &g[b * dim..(b + 1) * dim]);
            let kv_b = &kv[b * n * 2 * dim..(b + 1) * n * 2 * dim];
            let p_b = &probs[b * d.heads * n..(b + 1) * d.heads * n];
            cls_attention_sample_backward(d, q_b, kv_b, p_b, g_b, dq_b, dkv_b);
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::normal_vec;

    #[test]
    fn weight_gradient_split_over_rows_equals_the_direct_sum() {
        // 1,001 rows: several row shares on a multi-threaded pool, the last one shorter.
        let d = LinearDims {
            rows: 1001,
            input: 7,
            output: 5,
        };
        let (g, x) = (
            normal_vec(d.rows * d.output, 1),
            normal_vec(d.rows * d.input, 2),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let dw = pool.install(|| linear_backward_weight(d, &g, &x)).unwrap();
        for o in 0..d.output {
            for i in 0..d.input {
                let direct: f64 = (0..d.rows)
                    .map(|r| g[r * d.output + o] as f64 * x[r * d.input + i] as f64)
                    .sum();
                assert!(
                    (dw[o * d.input + i] as f64 - direct).abs() < 1e-3,
                    "dW[{o}, {i}] = {} vs {direct}",
                    dw[o * d.input + i]
                );
            }
        }
    }
}
