//! A query's answer — neighbours, class scores, prediction — and its export as JSON in the
//! layout of google-deepmind/visual-memory (Geirhos et al. 2024, docs/protocols.md §9):
//! one record per query with `neighbor_distances` = 1 − similarity.

use serde::{Deserialize, Serialize};

use super::index::Neighbour;
use super::vote::{VoteResult, VoteRule, vote};

/// One query's answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub neighbours: Vec<Neighbour>,
    pub vote: VoteResult,
    /// [`in_memory_score`] with the voting k: low when the query is far from everything.
    pub in_memory: Option<f32>,
}

impl Answer {
    pub fn new(neighbours: Vec<Neighbour>, k: usize, classes: usize, rule: VoteRule) -> Self {
        let vote = vote(&neighbours, k, classes, rule);
        let in_memory = in_memory_score(&neighbours, k);
        Self {
            neighbours,
            vote,
            in_memory,
        }
    }

    /// Whether the answer should be "not in memory" under `threshold` (None: never abstain).
    pub fn abstains(&self, threshold: Option<f32>) -> bool {
        matches!((threshold, self.in_memory), (Some(t), Some(s)) if s < t)
    }
}

/// How much a query belongs to the memory: the similarity of its k-th nearest neighbour (the
/// last one when the memory holds fewer than k), from `neighbours` sorted best first (Sun et
/// al. 2022, "Out-of-Distribution Detection with Deep Nearest Neighbors"). `None` for an empty
/// memory or k = 0.
pub(crate) fn in_memory_score(neighbours: &[Neighbour], k: usize) -> Option<f32> {
    if k == 0 {
        return None;
    }
    neighbours
        .get(k - 1)
        .or(neighbours.last())
        .map(|n| n.similarity)
}

/// The visual-memory neighbour record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeighbourRecord {
    pub featurizer: String,
    pub image_id: String,
    /// The query's class, when known.
    pub image_class: Option<String>,
    pub neighbor_image_ids: Vec<u64>,
    pub neighbor_classes: Vec<String>,
    pub neighbor_distances: Vec<f32>,
}

impl NeighbourRecord {
    pub fn new(
        featurizer: &str,
        image_id: &str,
        image_class: Option<&str>,
        neighbours: &[Neighbour],
        labels: &[String],
    ) -> Self {
        Self {
            featurizer: featurizer.to_string(),
            image_id: image_id.to_string(),
            image_class: image_class.map(str::to_string),
            neighbor_image_ids: neighbours.iter().map(|n| n.id).collect(),
            neighbor_classes: neighbours
                .iter()
                .map(|n| labels.get(n.label as usize).cloned().unwrap_or_default())
                .collect(),
            neighbor_distances: neighbours.iter().map(|n| 1.0 - n.similarity).collect(),
        }
    }
}

/// Writes records as a JSON array.
pub fn write_records(path: &std::path::Path, records: &[NeighbourRecord]) -> crate::Result<()> {
    let json = serde_json::to_vec_pretty(records)
        .map_err(|e| crate::Error::Memory(format!("neighbour export: {e}")))?;
    crate::fsio::write_atomic(path, &json)
}
