//! Turning neighbours into a prediction (`docs/protocols.md` §5, §9). Of Geirhos et al.'s
//! aggregators, DistanceWeightedVoting and SoftRankVoting are left out (the first adds an
//! exponent to tune, the second needs the pruning counts of their train × train lists).

use serde::{Deserialize, Serialize};

use super::index::Neighbour;

/// How neighbours vote. Every rule accumulates weights per class in rank order and predicts the
/// class with the highest total; a tie goes to the class that reached the maximum first
/// (Geirhos et al.'s aggregators).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum VoteRule {
    /// DINO's `eval_knn.py`: w = exp(similarity / T), T = 0.07, class totals not normalised.
    Dino { temperature: f32 },
    /// One vote per neighbour.
    Plurality,
    /// Geirhos et al.'s SoftmaxWeightedVoting: w = exp((1 − d)/T) with d = 1 − similarity —
    /// the same weights as DINO's rule, kept under its own name.
    Softmax { temperature: f32 },
    /// Geirhos et al.'s RankWeightedVoting (their default): w = 1/(rank + offset), rank from 0.
    Rank { offset: f32 },
}

impl Default for VoteRule {
    fn default() -> Self {
        VoteRule::Dino { temperature: 0.07 }
    }
}

impl VoteRule {
    /// The rule as a report names it, e.g. `DINO voting T = 0.07`.
    pub fn describe(&self) -> String {
        match *self {
            VoteRule::Dino { temperature } => format!("DINO voting T = {temperature}"),
            VoteRule::Plurality => "plurality voting".into(),
            VoteRule::Softmax { temperature } => format!("softmax voting T = {temperature}"),
            VoteRule::Rank { offset } => format!("rank-weighted voting, offset {offset}"),
        }
    }

    pub fn weight(&self, rank: usize, similarity: f32) -> f32 {
        match *self {
            VoteRule::Dino { temperature } | VoteRule::Softmax { temperature } => {
                (similarity / temperature).exp()
            }
            VoteRule::Plurality => 1.0,
            VoteRule::Rank { offset } => 1.0 / (rank as f32 + offset),
        }
    }
}

/// Class scores and the prediction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteResult {
    pub scores: Vec<f32>,
    pub prediction: Option<u32>,
}

/// Votes with the first `k` neighbours (fewer if fewer are given).
pub fn vote(neighbours: &[Neighbour], k: usize, classes: usize, rule: VoteRule) -> VoteResult {
    let mut scores = vec![0f32; classes];
    let mut best: Option<u32> = None;
    for (rank, n) in neighbours.iter().take(k).enumerate() {
        let c = n.label as usize;
        scores[c] += rule.weight(rank, n.similarity);
        if best.is_none_or(|b| scores[c] > scores[b as usize]) {
            best = Some(n.label);
        }
    }
    VoteResult {
        scores,
        prediction: best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(label: u32, similarity: f32) -> Neighbour {
        Neighbour {
            id: 0,
            label,
            similarity,
        }
    }

    #[test]
    fn rules_weigh_as_documented() {
        let neigh = [n(0, 0.9), n(1, 0.8), n(1, 0.7)];
        let dino = vote(&neigh, 3, 2, VoteRule::Dino { temperature: 0.07 });
        assert!((dino.scores[0] - (0.9f32 / 0.07).exp()).abs() < 1e-1);
        // exp(0.9/0.07) = 388,376 vs exp(0.8/0.07) + exp(0.7/0.07) = 113,573: class 0.
        assert_eq!(dino.prediction, Some(0));
        assert_eq!(vote(&neigh, 3, 2, VoteRule::Plurality).prediction, Some(1));
        let rank = vote(&neigh, 3, 2, VoteRule::Rank { offset: 2.0 });
        assert_eq!(rank.scores, vec![0.5, 1.0 / 3.0 + 0.25]);
        assert_eq!(rank.prediction, Some(1));
        assert_eq!(vote(&neigh, 1, 2, VoteRule::Plurality).prediction, Some(0));
    }

    #[test]
    fn ties_go_to_the_class_that_reached_the_maximum_first() {
        let neigh = [n(1, 0.5), n(0, 0.5)];
        assert_eq!(vote(&neigh, 2, 2, VoteRule::Plurality).prediction, Some(1));
    }
}
