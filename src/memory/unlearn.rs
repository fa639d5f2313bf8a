//! Unlearning you can watch: a list of queries whose predictions are kept up to date as entries
//! are deleted from (or restored to) the memory.
//!
//! Each watched query keeps its exact top-`depth` neighbours (depth > k). Deleting entry x only
//! touches the queries that had x in that list: x is dropped, and the list stays the exact top
//! of what remains; a query is searched again only when its list falls below k. Restoring x
//! compares x with each query's last kept neighbour. Every prediction therefore equals that of a
//! memory built from scratch without (or with) x — the guarantee `tests/unlearn.rs` checks —
//! at the cost of a few affected searches per deletion, not a full recomputation.

use rayon::prelude::*;

use super::index::{ExactIndex, Neighbour, better, dot};
use super::vote::{VoteResult, VoteRule, vote};

/// The default cosine above which two entries count as near-duplicates: beyond the similarity
/// of distinct images of one class in the bundled model's space, at the level of re-encodes
/// and small crops (measured in docs/memory.md).
pub const NEAR_DUPLICATE_COSINE: f32 = 0.98;

/// A near-duplicate of an entry: its id, cosine similarity, and whether its image bytes are
/// identical (same non-zero content hash).
#[derive(Clone, Debug, PartialEq)]
pub struct NearDuplicate {
    pub id: u64,
    pub similarity: f32,
    pub same_content: bool,
}

/// Entries of `memory` (searched through its `index`) that duplicate `embedding`/`content_hash`:
/// the same image bytes, or cosine ≥ `min_cosine` (at most 64 by similarity); `exclude` (the
/// entry itself) left out. Offered when unlearning, since a near-copy left behind keeps
/// what the deletion meant to remove.
pub fn near_duplicates(
    memory: &super::Memory,
    index: &ExactIndex,
    embedding: &[f32],
    content_hash: u64,
    exclude: u64,
    min_cosine: f32,
) -> Vec<NearDuplicate> {
    let mut out: Vec<NearDuplicate> = Vec::new();
    if content_hash != 0 {
        for e in memory
            .entries()
            .iter()
            .filter(|e| e.content_hash == content_hash && e.id != exclude)
        {
            out.push(NearDuplicate {
                id: e.id,
                similarity: dot(&e.embedding, embedding),
                same_content: true,
            });
        }
    }
    for n in index.search(embedding, 65).into_iter().flatten() {
        if n.similarity >= min_cosine && n.id != exclude && !out.iter().any(|d| d.id == n.id) {
            out.push(NearDuplicate {
                id: n.id,
                similarity: n.similarity,
                same_content: false,
            });
        }
    }
    out
}

/// One watched query.
#[derive(Clone, Debug)]
pub struct WatchedQuery {
    pub name: String,
    /// Its true class (index into the index's labels), when known.
    pub truth: Option<u32>,
    pub embedding: Vec<f32>,
    /// Exact top neighbours, best first (at least k unless the memory is smaller).
    pub neighbours: Vec<Neighbour>,
    pub vote: VoteResult,
    /// The prediction when the query was added to the list.
    pub initial_prediction: Option<u32>,
}

/// What an edit changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchUpdate {
    /// Queries whose neighbour list contained (or now contains) the edited entry.
    pub touched: Vec<usize>,
    /// Queries whose prediction changed with this edit.
    pub flipped: Vec<usize>,
}

/// Queries kept up to date under deletions and restores.
#[derive(Clone, Debug)]
pub struct WatchList {
    pub k: usize,
    pub rule: VoteRule,
    /// Neighbours kept per query: deletions are absorbed until fewer than k remain.
    pub depth: usize,
    classes: usize,
    pub queries: Vec<WatchedQuery>,
}

impl WatchList {
    pub fn new(k: usize, rule: VoteRule, classes: usize) -> Self {
        Self {
            k,
            rule,
            depth: k + 16,
            classes,
            queries: Vec::new(),
        }
    }

    /// Adds queries (name, true class, embedding) and searches them.
    pub fn add(&mut self, index: &ExactIndex, queries: Vec<(String, Option<u32>, Vec<f32>)>) {
        let flat: Vec<f32> = queries.iter().flat_map(|q| q.2.iter().copied()).collect();
        let found = index.search(&flat, self.depth);
        for ((name, truth, embedding), neighbours) in queries.into_iter().zip(found) {
            let vote = vote(&neighbours, self.k, self.classes, self.rule);
            let initial_prediction = vote.prediction;
            self.queries.push(WatchedQuery {
                name,
                truth,
                embedding,
                neighbours,
                vote,
                initial_prediction,
            });
        }
    }

    /// A new class appeared in the memory: votes get a score slot for it.
    pub(crate) fn set_classes(&mut self, classes: usize) {
        self.classes = classes;
    }

    /// Accuracy of the watched queries with a known class, if any.
    pub fn accuracy(&self) -> Option<f64> {
        let known: Vec<&WatchedQuery> = self.queries.iter().filter(|q| q.truth.is_some()).collect();
        (!known.is_empty()).then(|| {
            known
                .iter()
                .filter(|q| q.vote.prediction == q.truth)
                .count() as f64
                / known.len() as f64
        })
    }

    /// Call after `id` was removed from `index`.
    pub fn on_delete(&mut self, index: &ExactIndex, id: u64) -> WatchUpdate {
        self.on_delete_many(index, &std::collections::HashSet::from([id]))
    }

    /// Call after all of `ids` were removed from `index` (one pass over the watch list, and one
    /// search for the queries left with fewer than k neighbours, however many were deleted).
    pub fn on_delete_many(
        &mut self,
        index: &ExactIndex,
        ids: &std::collections::HashSet<u64>,
    ) -> WatchUpdate {
        let mut update = WatchUpdate::default();
        let mut research = Vec::new();
        for (qi, q) in self.queries.iter_mut().enumerate() {
            let before = q.neighbours.len();
            q.neighbours.retain(|n| !ids.contains(&n.id));
            if q.neighbours.len() != before {
                update.touched.push(qi);
                if q.neighbours.len() < self.k && index.len() > q.neighbours.len() {
                    research.push(qi);
                }
            }
        }
        if !research.is_empty() {
            let flat: Vec<f32> = research
                .iter()
                .flat_map(|&qi| self.queries[qi].embedding.iter().copied())
                .collect();
            for (qi, found) in research.into_iter().zip(index.search(&flat, self.depth)) {
                self.queries[qi].neighbours = found;
            }
        }
        self.revote(update)
    }

    /// Call after an entry (id, label, embedding) was added back to the index.
    pub fn on_insert(&mut self, id: u64, label: u32, embedding: &[f32]) -> WatchUpdate {
        let (k, depth) = (self.k, self.depth);
        let touched: Vec<usize> = self
            .queries
            .par_iter_mut()
            .enumerate()
            .filter_map(|(qi, q)| {
                let n = Neighbour {
                    id,
                    label,
                    similarity: dot(&q.embedding, embedding),
                };
                let enters = match q.neighbours.last() {
                    None => true,
                    Some(last) => better(&n, last) || q.neighbours.len() < k,
                };
                if !enters {
                    return None;
                }
                let pos = q
                    .neighbours
                    .iter()
                    .position(|m| better(&n, m))
                    .unwrap_or(q.neighbours.len());
                q.neighbours.insert(pos, n);
                q.neighbours.truncate(depth);
                Some(qi)
            })
            .collect();
        self.revote(WatchUpdate {
            touched,
            flipped: Vec::new(),
        })
    }

    /// Call after entries (id, label, embedding) were added back to `index` together: the same
    /// rule as [`on_insert`](Self::on_insert) entry by entry, but only each query's top-`depth`
    /// among the restored entries (one search of them) can enter, so the cost is one search,
    /// not queries × entries dot products.
    pub fn on_insert_many(&mut self, rows: &[(u64, u32, &[f32])]) -> WatchUpdate {
        let Some(dim) = rows.first().map(|r| r.2.len()) else {
            return WatchUpdate::default();
        };
        let restored = ExactIndex::from_embeddings(
            dim,
            Vec::new(),
            rows.iter().map(|r| r.1).collect(),
            rows.iter().flat_map(|r| r.2.iter().copied()).collect(),
        )
        .with_ids(rows.iter().map(|r| r.0).collect());
        let flat: Vec<f32> = self
            .queries
            .iter()
            .flat_map(|q| q.embedding.iter().copied())
            .collect();
        let candidates = restored.search(&flat, self.depth);
        let (k, depth) = (self.k, self.depth);
        let touched: Vec<usize> = self
            .queries
            .par_iter_mut()
            .zip(candidates)
            .enumerate()
            .filter_map(|(qi, (q, found))| {
                let mut entered = false;
                for n in found {
                    let enters = match q.neighbours.last() {
                        None => true,
                        Some(last) => better(&n, last) || q.neighbours.len() < k,
                    };
                    if enters {
                        let pos = q
                            .neighbours
                            .iter()
                            .position(|m| better(&n, m))
                            .unwrap_or(q.neighbours.len());
                        q.neighbours.insert(pos, n);
                        q.neighbours.truncate(depth);
                        entered = true;
                    }
                }
                entered.then_some(qi)
            })
            .collect();
        self.revote(WatchUpdate {
            touched,
            flipped: Vec::new(),
        })
    }

    fn revote(&mut self, mut update: WatchUpdate) -> WatchUpdate {
        for &qi in &update.touched {
            let q = &mut self.queries[qi];
            let new = vote(&q.neighbours, self.k, self.classes, self.rule);
            if new.prediction != q.vote.prediction {
                update.flipped.push(qi);
            }
            q.vote = new;
        }
        update
    }
}
