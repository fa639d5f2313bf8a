//! Which memory entries would change at least one prediction if removed alone (the paper's
//! influence analysis, `dino/run_influence.py`, docs/protocols.md §6), with DINO's voting.
//!
//! Removing entry j changes only the queries that have j among their top k; for those, the new
//! top k is the old one without j plus the (k+1)-th neighbour. So one top-(k+1) search per query
//! decides everything, and procmem re-votes that list once per candidate j (O(k²) per query).
//!
//! The paper's closed form: thresh = P_k[pred] − P_{k+1}[second] (+ w_{k+1} if y_{k+1} = pred),
//! j influential iff y_j = pred and w_j > thresh. It tests the label of the *last memory item*
//! where the (k+1)-th neighbour's is meant (a bug), and, even fixed, it is incomplete with three
//! or more classes: removing a neighbour of a non-predicted class lets the (k+1)-th neighbour in,
//! and if that one belongs to a third class close behind, the prediction flips. The brute-force
//! test found such cases; re-voting is exact, ties included, by construction.
//!
//! Deviation: every prediction change counts, whether or not the true class is involved (the
//! paper's definition in §6), not only the script's "good" and "bad" (test, train) pairs.

use std::collections::BTreeMap;

use super::index::{ExactIndex, Neighbour};
use super::vote::{VoteRule, vote};

/// Ids of the entries among `neighbours` (the query's top k+1, in order) whose removal alone
/// would change its prediction under `rule`.
pub fn influential(neighbours: &[Neighbour], k: usize, classes: usize, rule: VoteRule) -> Vec<u64> {
    let k = k.min(neighbours.len());
    if k == 0 {
        return Vec::new();
    }
    let before = vote(neighbours, k, classes, rule).prediction;
    let mut list = Vec::with_capacity(k + 1);
    (0..k)
        .filter(|&j| {
            list.clear();
            list.extend(
                neighbours
                    .iter()
                    .take(k + 1)
                    .enumerate()
                    .filter(|(i, _)| *i != j)
                    .map(|(_, n)| *n),
            );
            vote(&list, k, classes, rule).prediction != before
        })
        .map(|j| neighbours[j].id)
        .collect()
}

/// The result of a privacy analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct PrivacyReport {
    pub k: usize,
    /// Entry id → number of queries whose prediction it alone can change.
    pub influence: BTreeMap<u64, usize>,
    /// Fraction of the memory that is non-private (influences at least one prediction).
    pub non_private_fraction: f64,
}

/// Runs the analysis for `queries` (q × dim): one top-(k+1) search per query.
pub fn analyse(index: &ExactIndex, queries: &[f32], k: usize, rule: VoteRule) -> PrivacyReport {
    use rayon::prelude::*;
    let results = index.search(queries, k + 1);
    let per_query: Vec<Vec<u64>> = results
        .par_iter()
        .map(|neigh| influential(neigh, k, index.labels.len(), rule))
        .collect();
    let mut influence = BTreeMap::new();
    for ids in per_query {
        for id in ids {
            *influence.entry(id).or_insert(0) += 1;
        }
    }
    let non_private_fraction = if index.is_empty() {
        0.0
    } else {
        influence.len() as f64 / index.len() as f64
    };
    PrivacyReport {
        k,
        influence,
        non_private_fraction,
    }
}
