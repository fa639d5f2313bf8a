//! Segmentation from patch tokens, each as the paper's notebooks do it (docs/protocols.md §7):
//!
//! - **In-context**: a prompt image with a (soft) mask and a query image. Attention
//!   A = softmax over prompt patches of ⟨z_prompt, z_query⟩ / C (C the feature width: the paper
//!   divides by C, not √C). Each query patch gets the A-weighted average of the prompt mask's
//!   patch blocks; the blocks fold back to pixels. Several prompts join one softmax.
//! - **kNN**: a memory of labelled patches; each query patch takes the softmax-weighted
//!   (q·k/√C over all memory patches, the paper's rule) or top-k vote of memory patches.
//!   Deviation: a patch's label is the majority label of its pixel block (the notebook
//!   nearest-resizes the mask, i.e. samples one pixel).
//! - **K-means** hard segmentation of one image's L2-normalised tokens.
//!
//! Metrics: soft IoU, the paper's thresholded soft IoU, pixel accuracy overall and on
//! foreground.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::features::PatchGrid;
use crate::error::{Error, Result};
use crate::generate::imageops::{Plane, resize_bilinear};
use crate::rng::Rng;

/// A single-channel float image in [0, 1], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftMask {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl SoftMask {
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            values: vec![0.0; width * height],
        }
    }

    /// Bilinear resize, antialiased when shrinking (the generators' `resize_bilinear`).
    pub fn resize(&self, width: usize, height: usize) -> SoftMask {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let plane = Plane {
            width: self.width,
            height: self.height,
            data: self.values.clone(),
        };
        SoftMask {
            width,
            height,
            values: resize_bilinear(&plane, width, height).data,
        }
    }

    /// The binary mask of one class of a label map.
    pub(crate) fn of_class(labels: &[u32], width: usize, height: usize, class: u32) -> Self {
        Self {
            width,
            height,
            values: labels
                .iter()
                .map(|&l| if l == class { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// The paper's thresholding: relu(pred − th) / (1 − th).
    pub fn thresholded(&self, th: f32) -> SoftMask {
        SoftMask {
            values: self
                .values
                .iter()
                .map(|v| (v - th).max(0.0) / (1.0 - th))
                .collect(),
            ..*self
        }
    }
}

/// Soft IoU = Σ min(pred, gt) / Σ max(pred, gt); `None` when both are empty.
pub fn soft_iou(pred: &[f32], gt: &[f32]) -> Option<f64> {
    let (mut inter, mut union) = (0.0f64, 0.0f64);
    for (p, g) in pred.iter().zip(gt) {
        inter += p.min(*g) as f64;
        union += p.max(*g) as f64;
    }
    (union > 0.0).then(|| inter / union)
}

/// Pixel (or patch) accuracy overall, and on foreground (ground truth ≠ 0; `None` without any).
pub(crate) fn pixel_accuracy(pred: &[u32], gt: &[u32]) -> (f64, Option<f64>) {
    let n = pred.len().min(gt.len()).max(1);
    let correct = pred.iter().zip(gt).filter(|(p, g)| p == g).count();
    let fg: Vec<bool> = pred
        .iter()
        .zip(gt)
        .filter(|(_, g)| **g != 0)
        .map(|(p, g)| p == g)
        .collect();
    let fg_acc =
        (!fg.is_empty()).then(|| fg.iter().filter(|&&c| c).count() as f64 / fg.len() as f64);
    (correct as f64 / n as f64, fg_acc)
}

/// Unfolds a mask of `rows·block × cols·block` pixels into per-patch blocks (patch-major).
pub(crate) fn mask_blocks(
    mask: &SoftMask,
    rows: usize,
    cols: usize,
    block: usize,
) -> Result<Vec<f32>> {
    if mask.width != cols * block || mask.height != rows * block {
        return Err(Error::shape(
            format!("mask size for a {rows}×{cols} patch grid of {block}-pixel blocks"),
            format!("{}×{}", cols * block, rows * block),
            format!("{}×{}", mask.width, mask.height),
        ));
    }
    let mut out = Vec::with_capacity(mask.values.len());
    for r in 0..rows {
        for c in 0..cols {
            for y in 0..block {
                let start = (r * block + y) * mask.width + c * block;
                out.extend_from_slice(&mask.values[start..start + block]);
            }
        }
    }
    Ok(out)
}

/// Folds per-patch blocks back into a `rows·block × cols·block` mask.
pub(crate) fn fold_blocks(blocks: &[f32], rows: usize, cols: usize, block: usize) -> SoftMask {
    let (w, h) = (cols * block, rows * block);
    let mut values = vec![0.0; w * h];
    for (p, b) in blocks.chunks_exact(block * block).enumerate() {
        let (r, c) = (p / cols, p % cols);
        for y in 0..block {
            let start = (r * block + y) * w + c * block;
            values[start..start + block].copy_from_slice(&b[y * block..(y + 1) * block]);
        }
    }
    SoftMask {
        width: w,
        height: h,
        values,
    }
}

fn matmul_t(a: &[f32], n: usize, b: &[f32], m: usize, dim: usize) -> Result<Vec<f32>> {
    let a = Tensor::from_slice(a, (n, dim), &Device::Cpu)?;
    let b = Tensor::from_slice(b, (m, dim), &Device::Cpu)?;
    a.matmul(&b.t()?)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(Error::from)
}

fn softmax_rows(logits: &mut [f32], width: usize) {
    for row in logits.chunks_exact_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// In-context attention of query patches over all prompt patches (the prompts' grids in order).
#[derive(Clone, Debug)]
pub struct Attention {
    pub query_patches: usize,
    pub prompt_patches: usize,
    /// query_patches × prompt_patches, each row sums to 1.
    pub weights: Vec<f32>,
}

impl Attention {
    /// A = softmax_prompt(⟨z_prompt, z_query⟩ / C), the paper's scale.
    pub fn new(prompts: &[&PatchGrid], query: &PatchGrid) -> Result<Self> {
        Self::with_sharpness(prompts, query, 1.0)
    }

    /// A = softmax_prompt(sharpness · ⟨z_prompt, z_query⟩ / C). Sharpness 1 is the paper's; small
    /// CPU models' tokens give nearly uniform attention there, and a larger value focuses it.
    pub(crate) fn with_sharpness(
        prompts: &[&PatchGrid],
        query: &PatchGrid,
        sharpness: f32,
    ) -> Result<Self> {
        if prompts.is_empty() {
            return Err(Error::InvalidConfig(
                "in-context segmentation needs at least one prompt".into(),
            ));
        }
        if let Some(p) = prompts.iter().find(|p| p.dim != query.dim) {
            return Err(Error::shape(
                "prompt feature width, that of the query (different models?)",
                query.dim,
                p.dim,
            ));
        }
        let keys: Vec<f32> = prompts
            .iter()
            .flat_map(|p| p.data.iter().copied())
            .collect();
        let m = keys.len() / query.dim;
        let mut weights = matmul_t(&query.data, query.len(), &keys, m, query.dim)?;
        let scale = sharpness / query.dim as f32;
        weights.iter_mut().for_each(|v| *v *= scale);
        softmax_rows(&mut weights, m);
        Ok(Self {
            query_patches: query.len(),
            prompt_patches: m,
            weights,
        })
    }

    /// Each query patch's A-weighted average of the prompt blocks (prompt_patches × block²).
    pub(crate) fn propagate(&self, prompt_blocks: &[f32], block_len: usize) -> Result<Vec<f32>> {
        if prompt_blocks.len() != self.prompt_patches * block_len {
            return Err(Error::InvalidConfig(
                "prompt mask blocks do not match the prompt patches".into(),
            ));
        }
        let mut out = vec![0.0f32; self.query_patches * block_len];
        out.par_chunks_mut(block_len)
            .zip(self.weights.par_chunks(self.prompt_patches))
            .for_each(|(o, a)| {
                for (w, b) in a.iter().zip(prompt_blocks.chunks_exact(block_len)) {
                    if *w > 1e-9 {
                        o.iter_mut().zip(b).for_each(|(o, b)| *o += w * b);
                    }
                }
            });
        Ok(out)
    }
}

/// A prompt: its features and its mask at the prompt's input resolution (grid × block pixels).
pub struct Prompt<'a> {
    pub features: &'a PatchGrid,
    pub mask: &'a SoftMask,
}

/// In-context segmentation of `query` at its input resolution (grid × block pixels per side).
pub fn in_context(
    prompts: &[Prompt],
    query: &PatchGrid,
    block: usize,
    sharpness: f32,
) -> Result<SoftMask> {
    let attention = Attention::with_sharpness(
        &prompts.iter().map(|p| p.features).collect::<Vec<_>>(),
        query,
        sharpness,
    )?;
    let mut blocks = Vec::new();
    for p in prompts {
        blocks.extend(mask_blocks(
            p.mask,
            p.features.rows,
            p.features.cols,
            block,
        )?);
    }
    let out = attention.propagate(&blocks, block * block)?;
    Ok(fold_blocks(&out, query.rows, query.cols, block))
}

/// One in-context trial of the evaluation protocol: prompt `prompt` (an index into the prompt
/// pool) and query `query` (an index into the queries) share `class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InContextPair {
    pub prompt: usize,
    pub query: usize,
    pub class: u32,
}

impl InContextPair {
    /// This trial's predicted soft mask of `class` in the query, from the prompt's exact mask of
    /// it, and the query's exact mask (both at the query's pixel size). `prompt_features` and
    /// `query_features` are the patch grids of `prompts[self.prompt]` and
    /// `queries[self.query]`.
    pub fn predict(
        &self,
        prompts: &[super::composite::Example],
        queries: &[super::composite::Example],
        prompt_features: &PatchGrid,
        query_features: &PatchGrid,
        block: usize,
        sharpness: f32,
    ) -> Result<(SoftMask, SoftMask)> {
        let (p, q) = (&prompts[self.prompt], &queries[self.query]);
        let prompt_mask = SoftMask::of_class(&p.labels, p.width(), p.height(), self.class);
        let pred = predict_in_context(
            prompt_features,
            &prompt_mask,
            query_features,
            block,
            (q.width(), q.height()),
            sharpness,
        )?;
        let truth = SoftMask::of_class(&q.labels, q.width(), q.height(), self.class);
        Ok((pred, truth))
    }
}

/// The in-context protocol's pairs (`eval seg`; docs/protocols.md §7): for each query its
/// largest object class c (most pixels; ties to the smaller id), and as the prompt the next
/// pool image, cyclically from the query's index, in which c covers at least 1 % of the pixels.
/// Queries without an object, or without such a prompt, are left out.
pub fn in_context_pairs(
    prompts: &[super::composite::Example],
    queries: &[super::composite::Example],
) -> Vec<InContextPair> {
    let pool = prompts.len();
    queries
        .iter()
        .enumerate()
        .filter_map(|(query, ex)| {
            let class = largest_class(&ex.labels)?;
            let prompt = (0..pool).map(|j| (query + j) % pool).find(|&j| {
                let count = prompts[j].labels.iter().filter(|&&l| l == class).count();
                count * 100 >= prompts[j].labels.len()
            })?;
            Some(InContextPair {
                prompt,
                query,
                class,
            })
        })
        .collect()
}

fn largest_class(labels: &[u32]) -> Option<u32> {
    let mut counts = std::collections::BTreeMap::<u32, usize>::new();
    for &l in labels.iter().filter(|&&l| l != 0) {
        *counts.entry(l).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(l, _)| l)
}

/// In-context prediction for `query` from one prompt and its mask (any size), at the query's
/// pixel size `(width, height)`.
pub fn predict_in_context(
    prompt: &PatchGrid,
    prompt_mask: &SoftMask,
    query: &PatchGrid,
    block: usize,
    (width, height): (usize, usize),
    sharpness: f32,
) -> Result<SoftMask> {
    let mask = prompt_mask.resize(prompt.cols * block, prompt.rows * block);
    Ok(in_context(
        &[Prompt {
            features: prompt,
            mask: &mask,
        }],
        query,
        block,
        sharpness,
    )?
    .resize(width, height))
}

/// Per-patch labels of a label map: the majority label in each patch's pixel block (ties to the
/// smaller label). The map is nearest-resized to `rows·block × cols·block` first if needed.
pub fn patch_labels(
    labels: &[u32],
    width: usize,
    height: usize,
    rows: usize,
    cols: usize,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let (y0, y1) = (
                r * height / rows,
                ((r + 1) * height / rows).max(r * height / rows + 1),
            );
            let (x0, x1) = (
                c * width / cols,
                ((c + 1) * width / cols).max(c * width / cols + 1),
            );
            let mut counts: std::collections::BTreeMap<u32, usize> = Default::default();
            for y in y0..y1.min(height) {
                for x in x0..x1.min(width) {
                    *counts.entry(labels[y * width + x]).or_default() += 1;
                }
            }
            let best = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map_or(0, |(l, _)| *l);
            out.push(best);
        }
    }
    out
}

/// How a query patch combines memory patches.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PatchVote {
    /// The paper's rule: softmax over all memory patches of q·k/√C on the raw features.
    Attention,
    /// Hummingbird-style: the k most cosine-similar patches, softmax(cos / temperature) weights.
    TopK { k: usize, temperature: f32 },
}

/// The softmax temperature of top-k patch votes (`PatchVote::TopK`): one for the CLI's
/// `dense knn`, `eval seg` and the Segmentation panel (Hummingbird's retrieval uses 0.02).
pub const PATCH_VOTE_TEMPERATURE: f32 = 0.02;

/// Query patches per block of similarities held at once (bounds memory to CHUNK × keys floats).
const CHUNK: usize = 256;

/// Each query patch's k most cosine-similar key patches, weighted by softmax(cos / temperature)
/// (the Hummingbird-style vote). Computed once, it votes with any labelling of the keys.
#[derive(Clone, Debug)]
pub struct Neighbours {
    pub k: usize,
    /// Query patches × k key indices.
    pub index: Vec<usize>,
    /// Query patches × k weights, each row summing to 1.
    pub weight: Vec<f32>,
}

impl Neighbours {
    pub fn new(
        keys: &[f32],
        queries: &[f32],
        dim: usize,
        k: usize,
        temperature: f32,
    ) -> Result<Self> {
        let m = keys.len() / dim.max(1);
        if m == 0 {
            return Err(Error::InvalidConfig("no key patches to vote with".into()));
        }
        let k = k.clamp(1, m);
        let keys = normalise_rows(keys, dim);
        let queries = normalise_rows(queries, dim);
        let n = queries.len() / dim;
        let mut index = vec![0usize; n * k];
        let mut weight = vec![0.0f32; n * k];
        for (ci, q) in queries.chunks(CHUNK * dim).enumerate() {
            let rows = q.len() / dim;
            let sims = matmul_t(q, rows, &keys, m, dim)?;
            let span = ci * CHUNK * k..(ci * CHUNK + rows) * k;
            index[span.clone()]
                .par_chunks_mut(k)
                .zip(weight[span].par_chunks_mut(k))
                .zip(sims.par_chunks(m))
                .for_each(|((ix, w), sims)| {
                    let mut idx: Vec<usize> = (0..m).collect();
                    idx.select_nth_unstable_by(k - 1, |&a, &b| {
                        sims[b].total_cmp(&sims[a]).then(a.cmp(&b))
                    });
                    ix.copy_from_slice(&idx[..k]);
                    let max = ix
                        .iter()
                        .map(|&i| sims[i])
                        .fold(f32::NEG_INFINITY, f32::max);
                    ix.iter()
                        .zip(w.iter_mut())
                        .for_each(|(&i, w)| *w = ((sims[i] - max) / temperature).exp());
                    let sum: f32 = w.iter().sum();
                    w.iter_mut().for_each(|w| *w /= sum);
                });
        }
        Ok(Self { k, index, weight })
    }

    /// Per-class scores of each query patch (query patches × classes) for the keys' `labels`.
    pub fn vote(&self, labels: &[u32], classes: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; self.index.len() / self.k * classes];
        for ((o, ix), w) in out
            .chunks_exact_mut(classes)
            .zip(self.index.chunks_exact(self.k))
            .zip(self.weight.chunks_exact(self.k))
        {
            for (&i, &w) in ix.iter().zip(w) {
                o[labels[i] as usize] += w;
            }
        }
        out
    }

    /// The winning class of each query patch (ties to the smaller class).
    pub fn segment(&self, labels: &[u32], classes: usize) -> Vec<u32> {
        self.vote(labels, classes)
            .chunks_exact(classes)
            .map(argmax)
            .collect()
    }
}

/// A memory of labelled patches for kNN segmentation.
#[derive(Clone, Debug, Default)]
pub struct PatchMemory {
    pub dim: usize,
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    pub num_classes: usize,
}

impl PatchMemory {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Adds an image's patches with their labels (one per patch).
    pub fn add(&mut self, grid: &PatchGrid, labels: &[u32]) -> Result<()> {
        if labels.len() != grid.len() {
            return Err(Error::shape(
                "patch labels, one per patch",
                grid.len(),
                labels.len(),
            ));
        }
        if !self.is_empty() && grid.dim != self.dim {
            return Err(Error::shape(
                "patch feature width, the patch memory's (another model?)",
                self.dim,
                grid.dim,
            ));
        }
        self.dim = grid.dim;
        self.features.extend_from_slice(&grid.data);
        self.labels.extend_from_slice(labels);
        self.num_classes = self
            .num_classes
            .max(labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0));
        Ok(())
    }

    /// Per-class scores for each query patch (query patches × classes).
    pub fn scores(&self, query: &PatchGrid, vote: PatchVote) -> Result<Vec<f32>> {
        if self.is_empty() {
            return Err(Error::InvalidConfig(
                "the patch memory is empty: label some patches first".into(),
            ));
        }
        if query.dim != self.dim {
            return Err(Error::shape(
                "query feature width, the patch memory's (another model?)",
                self.dim,
                query.dim,
            ));
        }
        let classes = self.num_classes;
        if let PatchVote::TopK { k, temperature } = vote {
            return Ok(
                Neighbours::new(&self.features, &query.data, self.dim, k, temperature)?
                    .vote(&self.labels, classes),
            );
        }
        let m = self.len();
        let mut out = vec![0.0f32; query.len() * classes];
        let scale = 1.0 / (self.dim as f32).sqrt();
        for (ci, q) in query.data.chunks(CHUNK * self.dim).enumerate() {
            let n = q.len() / self.dim;
            let mut logits = matmul_t(q, n, &self.features, m, self.dim)?;
            logits.iter_mut().for_each(|v| *v *= scale);
            softmax_rows(&mut logits, m);
            out[ci * CHUNK * classes..(ci * CHUNK + n) * classes]
                .par_chunks_mut(classes)
                .zip(logits.par_chunks(m))
                .for_each(|(o, a)| {
                    for (w, &l) in a.iter().zip(&self.labels) {
                        o[l as usize] += w;
                    }
                });
        }
        Ok(out)
    }

    /// The winning class of each query patch (ties to the smaller class).
    pub fn segment(&self, query: &PatchGrid, vote: PatchVote) -> Result<Vec<u32>> {
        let scores = self.scores(query, vote)?;
        Ok(scores.chunks_exact(self.num_classes).map(argmax).collect())
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn normalise_rows(v: &[f32], dim: usize) -> Vec<f32> {
    let mut out = v.to_vec();
    crate::linalg::l2_normalise_rows(&mut out, dim);
    out
}

/// K-means (k-means++ seeding from `seed`, Lloyd's iterations until no patch moves) on the
/// L2-normalised tokens; returns one cluster id per patch. Deterministic for a seed.
pub fn kmeans(grid: &PatchGrid, k: usize, seed: u64) -> Result<Vec<u32>> {
    let n = grid.len();
    if k == 0 || k > n {
        return Err(Error::InvalidConfig(format!(
            "K-means needs 1 ≤ k ≤ {n} patches (got k = {k})"
        )));
    }
    let x = grid.normalised();
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
    let mut rng = Rng::new(seed);
    let mut centres: Vec<Vec<f32>> = vec![x.patch(rng.below(n)).to_vec()];
    let mut nearest: Vec<f32> = (0..n).map(|i| dist(x.patch(i), &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = nearest.iter().map(|&d| d as f64).sum();
        let pick = if total <= 0.0 {
            rng.below(n)
        } else {
            let mut t = rng.uniform() * total;
            let mut pick = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                t -= d as f64;
                if t <= 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        };
        centres.push(x.patch(pick).to_vec());
        for (i, d) in nearest.iter_mut().enumerate() {
            *d = d.min(dist(x.patch(i), centres.last().expect("just pushed")));
        }
    }
    let mut assign = vec![u32::MAX; n];
    for _ in 0..100 {
        let mut moved = false;
        for (i, a) in assign.iter_mut().enumerate() {
            let d: Vec<f32> = centres.iter().map(|c| dist(x.patch(i), c)).collect();
            let best = (0..k).min_by(|&p, &q| d[p].total_cmp(&d[q])).unwrap_or(0) as u32;
            moved |= *a != best;
            *a = best;
        }
        if !moved {
            break;
        }
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<usize> = (0..n).filter(|&i| assign[i] == c as u32).collect();
            if members.is_empty() {
                continue; // an empty cluster keeps its centre
            }
            centre.iter_mut().for_each(|v| *v = 0.0);
            for &i in &members {
                centre.iter_mut().zip(x.patch(i)).for_each(|(c, v)| *c += v);
            }
            centre.iter_mut().for_each(|v| *v /= members.len() as f32);
        }
    }
    Ok(assign)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: usize, cols: usize, dim: usize, seed: u64) -> PatchGrid {
        let mut rng = Rng::new(seed);
        PatchGrid::new(
            rows,
            cols,
            dim,
            (0..rows * cols * dim)
                .map(|_| rng.normal() as f32)
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn attention_equals_a_direct_computation() {
        let p1 = grid(3, 2, 5, 1);
        let p2 = grid(2, 2, 5, 2);
        let q = grid(2, 3, 5, 3);
        let a = Attention::new(&[&p1, &p2], &q).unwrap();
        let keys: Vec<&[f32]> = (0..p1.len())
            .map(|i| p1.patch(i))
            .chain((0..p2.len()).map(|i| p2.patch(i)))
            .collect();
        for qi in 0..q.len() {
            let logits: Vec<f64> = keys
                .iter()
                .map(|k| {
                    k.iter()
                        .zip(q.patch(qi))
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum::<f64>()
                        / 5.0
                })
                .collect();
            let z: f64 = logits.iter().map(|l| l.exp()).sum();
            for (j, l) in logits.iter().enumerate() {
                let direct = l.exp() / z;
                assert!((a.weights[qi * 10 + j] as f64 - direct).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn in_context_copies_the_mask_of_identical_patches() {
        // Strongly distinct patches: query = prompt, so each patch attends to itself and the
        // predicted mask equals the prompt mask.
        let mut data = Vec::new();
        for i in 0..4 {
            let mut v = vec![0.0f32; 4];
            v[i] = 200.0;
            data.extend(v);
        }
        let g = PatchGrid::new(2, 2, 4, data).unwrap();
        let mask = SoftMask {
            width: 4,
            height: 4,
            values: (0..16).map(|i| if i % 4 < 2 { 1.0 } else { 0.0 }).collect(),
        };
        let pred = in_context(
            &[Prompt {
                features: &g,
                mask: &mask,
            }],
            &g,
            2,
            1.0,
        )
        .unwrap();
        for (p, m) in pred.values.iter().zip(&mask.values) {
            assert!((p - m).abs() < 1e-4);
        }
    }

    #[test]
    fn in_context_pairs_follow_the_protocol() {
        use crate::dense::composite::Example;
        // 10×10 label maps: `fill` pixels of `class` (row-major from the first), the rest 0.
        let example = |fills: &[(u32, usize)]| {
            let mut labels = vec![0u32; 100];
            let mut at = 0;
            for &(class, n) in fills {
                labels[at..at + n].iter_mut().for_each(|l| *l = class);
                at += n;
            }
            Example {
                image: image::RgbImage::new(10, 10),
                labels,
            }
        };
        let prompts = vec![
            example(&[(1, 30)]),
            example(&[(2, 1)]), // 1 % of the pixels: enough
            example(&[(3, 20)]),
        ];
        let queries = vec![
            example(&[(2, 10), (1, 5)]), // largest class 2: from prompt 0 on, prompt 1
            example(&[(1, 8), (3, 8)]),  // a tie: the smaller id, 1; from prompt 1 on, prompt 0
            example(&[]),                // no object: left out
            example(&[(4, 9)]),          // no prompt with class 4: left out
        ];
        let pairs: Vec<(usize, usize, u32)> = in_context_pairs(&prompts, &queries)
            .into_iter()
            .map(|p| (p.prompt, p.query, p.class))
            .collect();
        assert_eq!(pairs, vec![(1, 0, 2), (0, 1, 1)]);
    }

    #[test]
    fn iou_and_accuracy_on_hand_made_cases() {
        assert_eq!(
            soft_iou(&[1.0, 0.5, 0.0], &[1.0, 1.0, 0.0]),
            Some(1.5 / 2.0)
        );
        assert_eq!(soft_iou(&[0.0], &[0.0]), None);
        let m = SoftMask {
            width: 2,
            height: 1,
            values: vec![0.2, 0.6],
        };
        let t = m.thresholded(0.2);
        assert_eq!(t.values[0], 0.0);
        assert!((t.values[1] - 0.5).abs() < 1e-6);
        assert_eq!(
            pixel_accuracy(&[0, 1, 2, 2], &[0, 1, 1, 0]),
            (0.5, Some(0.5))
        );
        assert_eq!(pixel_accuracy(&[0, 0], &[0, 0]), (1.0, None));
    }

    #[test]
    fn blocks_round_trip_and_patch_labels_take_the_majority() {
        let mask = SoftMask {
            width: 4,
            height: 2,
            values: (0..8).map(|v| v as f32).collect(),
        };
        let blocks = mask_blocks(&mask, 1, 2, 2).unwrap();
        assert_eq!(blocks, vec![0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        assert_eq!(fold_blocks(&blocks, 1, 2, 2), mask);
        let labels = [1, 1, 0, 2, 1, 0, 2, 2];
        assert_eq!(patch_labels(&labels, 4, 2, 1, 2), vec![1, 2]);
    }

    #[test]
    fn knn_segmentation_recovers_labels_of_clustered_patches() {
        // Two classes with features around ±e0; queries from the same clusters.
        let make = |seed: u64| {
            let mut rng = Rng::new(seed);
            let mut data = Vec::new();
            let mut labels = Vec::new();
            for i in 0..16 {
                let class = (i % 2) as u32;
                labels.push(class);
                data.push(if class == 1 { 3.0 } else { -3.0 } + 0.1 * rng.normal() as f32);
                data.extend((0..7).map(|_| 0.1 * rng.normal() as f32));
            }
            (PatchGrid::new(4, 4, 8, data).unwrap(), labels)
        };
        let (mg, ml) = make(1);
        let (qg, ql) = make(2);
        let mut memory = PatchMemory::default();
        memory.add(&mg, &ml).unwrap();
        for vote in [
            PatchVote::Attention,
            PatchVote::TopK {
                k: 3,
                temperature: 0.02,
            },
        ] {
            assert_eq!(memory.segment(&qg, vote).unwrap(), ql);
        }
    }

    #[test]
    fn kmeans_separates_two_groups_deterministically() {
        let mut data = Vec::new();
        for i in 0..16 {
            data.extend(if i < 8 {
                [1.0, 0.05 * i as f32, 0.0]
            } else {
                [0.0, 0.05 * i as f32, 1.0]
            });
        }
        let g = PatchGrid::new(4, 4, 3, data).unwrap();
        let a = kmeans(&g, 2, 7).unwrap();
        assert_eq!(a, kmeans(&g, 2, 7).unwrap());
        assert!(
            a[..8].iter().all(|&c| c == a[0]) && a[8..].iter().all(|&c| c == a[8]) && a[0] != a[8]
        );
        assert!(kmeans(&g, 17, 0).is_err());
    }
}
