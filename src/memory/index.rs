//! Exact nearest-neighbour search by inner product (cosine similarity on L2-normalised
//! embeddings), the canonical index.
//!
//! Every (query, entry) similarity is computed by the same fixed-order dot product whatever the
//! memory's size or layout, and ties are broken by entry id: so after deleting an entry, every
//! result is bit-for-bit the one a memory built without it gives. That is what makes unlearning
//! exact.

use rayon::prelude::*;

use super::store::Memory;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbour {
    pub id: u64,
    /// Index into the index's label list.
    pub label: u32,
    pub similarity: f32,
}

/// Dot product with 8 independent accumulators, summed in a fixed order.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut tail = 0f32;
    for j in chunks * 8..a.len() {
        tail += a[j] * b[j];
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// Orders neighbours: higher similarity first, then lower id.
fn better(a: &Neighbour, b: &Neighbour) -> bool {
    a.similarity > b.similarity || (a.similarity == b.similarity && a.id < b.id)
}

/// Keeps the best `k` neighbours seen so far, sorted.
struct TopK {
    k: usize,
    items: Vec<Neighbour>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self { k, items: Vec::with_capacity(k + 1) }
    }
    #[inline]
    fn push(&mut self, n: Neighbour) {
        if self.k == 0 {
            return;
        }
        if self.items.len() == self.k && !better(&n, self.items.last().expect("k > 0")) {
            return;
        }
        let pos = self.items.iter().position(|m| better(&n, m)).unwrap_or(self.items.len());
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
}

impl ExactIndex {
    /// Builds the index; labels are indexed in `labels` order (entries with other labels panic —
    /// pass `memory.labels()` or a superset).
    pub fn build(memory: &Memory, labels: &[String]) -> Self {
        let mut data = Vec::with_capacity(memory.len() * memory.dim);
        let mut ids = Vec::with_capacity(memory.len());
        let mut entry_labels = Vec::with_capacity(memory.len());
        for e in &memory.entries {
            data.extend_from_slice(&e.embedding);
            ids.push(e.id);
            entry_labels.push(labels.iter().position(|l| *l == e.label).expect("label in the label list") as u32);
        }
        Self { dim: memory.dim, labels: labels.to_vec(), ids, entry_labels, data }
    }

    /// An index over raw embeddings (row i has id i), for evaluations that need no store.
    pub fn from_embeddings(dim: usize, labels: Vec<String>, entry_labels: Vec<u32>, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), entry_labels.len() * dim, "one embedding per label");
        Self { dim, labels, ids: (0..entry_labels.len() as u64).collect(), entry_labels, data }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Removes an entry by id; returns whether it was there.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.ids.iter().position(|&i| i == id) else { return false };
        self.ids.remove(row);
        self.entry_labels.remove(row);
        self.data.drain(row * self.dim..(row + 1) * self.dim);
        true
    }

    /// Adds (or re-adds, for undo) an entry.
    pub fn insert(&mut self, id: u64, label: u32, embedding: &[f32]) {
        self.ids.push(id);
        self.entry_labels.push(label);
        self.data.extend_from_slice(embedding);
    }

    /// The `k` most similar entries of each query (`queries` is q × dim, row-major).
    pub fn search(&self, queries: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
        let d = self.dim;
        // Four queries per pass over the memory: each entry row is read once for all four.
        queries
            .par_chunks(4 * d)
            .flat_map_iter(|block| {
                let nq = block.len() / d;
                let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
                for (row, emb) in self.data.chunks_exact(d).enumerate() {
                    for (qi, top) in tops.iter_mut().enumerate() {
                        let s = dot(&block[qi * d..(qi + 1) * d], emb);
                        top.push(Neighbour { id: self.ids[row], label: self.entry_labels[row], similarity: s });
                    }
                }
                tops.into_iter().map(|t| t.items)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_most_similar_entries_in_order_with_id_tie_breaks() {
        let mut m = Memory::new("fp", 2);
        for (label, e) in [("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("a", [0.6, 0.8]), ("b", [1.0, 0.0])] {
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
    fn dot_is_exact_on_small_integers() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..19).map(|i| (i % 3) as f32).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
    }
}
