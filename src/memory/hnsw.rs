//! Approximate search for large memories: an HNSW graph (instant-distance) over the entries.
//!
//! instant-distance cannot delete. Deleted ids are kept in a tombstone set and filtered out of
//! every result, and the graph is rebuilt from the live entries (in the background, by the
//! caller) when tombstones pile up. A rebuild is deterministic: entries in canonical order (by
//! id), a fixed seed, and construction on a one-thread pool (instant-distance inserts a layer's
//! points in parallel, which makes the graph depend on thread timing). So a rebuilt index equals
//! one built from scratch on the same entries, and its answers do too.
//!
//! Reported similarities are recomputed with the exact index's dot product, so a neighbour found
//! by both has the same similarity, bit for bit, and ties break by id as in the exact index.
//! When tombstones leave fewer than k live candidates for a query, that query falls back to an
//! exact scan rather than return fewer neighbours.

use std::collections::HashSet;
use std::sync::Arc;

use instant_distance::{Builder, HnswMap, Search};
use rayon::prelude::*;

use super::index::{ExactIndex, Neighbour, dot, dot_fast};

/// Build and search parameters. Defaults: ef_construction 100, ef_search 100, seed 0.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    /// Candidate list size while building: larger is slower to build and gives better recall.
    pub ef_construction: usize,
    /// Candidate list size while searching (at least k is used): larger is slower, better recall.
    pub ef_search: usize,
    /// Seed for the layer assignment; fixed so that rebuilds are reproducible.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { ef_construction: 100, ef_search: 100, seed: 0 }
    }
}

#[derive(Clone)]
struct Point(Arc<[f32]>);

impl instant_distance::Point for Point {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot_fast(&self.0, &other.0)
    }
}

/// HNSW over (id, label, embedding) entries, with tombstones for deletions.
pub struct HnswIndex {
    pub dim: usize,
    pub labels: Vec<String>,
    pub params: HnswParams,
    map: HnswMap<Point, (u64, u32)>,
    deleted: HashSet<u64>,
    live: usize,
    /// The exact fallback, kept in step with deletions.
    exact: ExactIndex,
}

impl HnswIndex {
    /// Builds the graph over the entries of an exact index. Deterministic for the same entries
    /// and parameters, whatever their order in `exact`.
    pub fn build(exact: &ExactIndex, params: HnswParams) -> crate::Result<Self> {
        let mut rows: Vec<(u64, u32, Point)> = exact.rows().map(|(id, label, emb)| (id, label, Point(Arc::from(emb)))).collect();
        rows.sort_by_key(|r| r.0);
        let (values, points): (Vec<(u64, u32)>, Vec<Point>) = rows.into_iter().map(|(id, l, p)| ((id, l), p)).unzip();
        let live = points.len();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_err(|e| crate::Error::Memory(format!("thread pool for the HNSW build: {e}")))?;
        let builder = Builder::default().seed(params.seed).ef_construction(params.ef_construction).ef_search(params.ef_search);
        let map = pool.install(|| builder.build(points, values));
        Ok(Self { dim: exact.dim, labels: exact.labels.clone(), params, map, deleted: HashSet::new(), live, exact: exact.clone() })
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Deleted entries still in the graph; rebuild when this grows.
    pub fn tombstones(&self) -> usize {
        self.deleted.len()
    }

    /// Marks an entry deleted; it never appears in a result again.
    pub fn remove(&mut self, id: u64) -> bool {
        if self.exact.remove(id) {
            self.deleted.insert(id);
            self.live -= 1;
            true
        } else {
            false
        }
    }

    /// A graph over the live entries only, equal to one built from scratch on them.
    pub fn rebuilt(&self) -> crate::Result<Self> {
        Self::build(&self.exact, self.params)
    }

    /// Rebuilds on a background thread; the current index keeps serving meanwhile. Swap the
    /// result in when the handle finishes (deletions made in between must be applied again).
    pub fn rebuild_in_background(&self) -> std::thread::JoinHandle<crate::Result<Self>> {
        let (exact, params) = (self.exact.clone(), self.params);
        std::thread::spawn(move || Self::build(&exact, params))
    }

    /// The `k` nearest live entries of each query (q × dim), best first, ties by id.
    pub fn search(&self, queries: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
        queries.par_chunks(self.dim).map_init(Search::default, |search, q| self.search_one(search, q, k)).collect()
    }

    fn search_one(&self, search: &mut Search, query: &[f32], k: usize) -> Vec<Neighbour> {
        let point = Point(Arc::from(query));
        let mut found: Vec<Neighbour> = self
            .map
            .search(&point, search)
            .filter(|item| !self.deleted.contains(&item.value.0))
            .map(|item| Neighbour { id: item.value.0, label: item.value.1, similarity: dot(query, &item.point.0) })
            .collect();
        if found.len() < k.min(self.live) {
            return self.exact.search(query, k).pop().unwrap_or_default();
        }
        found.sort_by(|a, b| b.similarity.total_cmp(&a.similarity).then(a.id.cmp(&b.id)));
        found.truncate(k);
        found
    }
}
