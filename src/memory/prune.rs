//! Pruning: memory entries that hurt more than they help on labelled queries (the pruning
//! experiment of Geirhos et al. 2024, "Towards flexible perception with visual memory", §4;
//! docs/protocols.md §9).
//!
//! Deviation: Geirhos et al. count how often an item is a wrong-label neighbour in the
//! train × train lists and drop it past a threshold (or down-weight it, SoftRankVoting).
//! procmem judges entries on held-out labelled queries instead, so a memory without a second
//! copy of its training set can be pruned and the gain is measured on queries that did not
//! choose.
//!
//! Each labelled "pruning" query's k nearest entries are its voters; an entry *helps* a query
//! whose class it shares and *hurts* one whose class it does not. An entry is harmful when it
//! hurt at least `min_hurt` queries and more than it helped. Pruning is judged on *other*
//! queries: [`split_for_pruning`] keeps every second query aside so that the accuracy before and
//! after is measured on queries that did not choose what to delete.

use std::collections::HashMap;

use super::index::ExactIndex;
use super::vote::{VoteRule, vote};

/// The default `min_hurt` of [`PruneEvidence::is_harmful`]: one hurt query is noise, two are
/// evidence (`procmem memory prune --min-hurt`, the Memory panel).
pub const DEFAULT_MIN_HURT: usize = 2;

/// How one entry voted over the pruning queries.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneEvidence {
    pub id: u64,
    /// Index into the index's label list.
    pub label: u32,
    /// Queries of its own class that had it among their k neighbours.
    pub helped: usize,
    /// Queries of another class that had it among their k neighbours.
    pub hurt: usize,
}

impl PruneEvidence {
    pub fn is_harmful(&self, min_hurt: usize) -> bool {
        self.hurt >= min_hurt && self.hurt > self.helped
    }
}

/// Every entry that was among some query's `k` neighbours, with its counts; most harmful first
/// (hurt − helped, then hurt, then id). `queries` is `nq × dim`, `truths` their class indices.
pub fn evidence(
    index: &ExactIndex,
    queries: &[f32],
    truths: &[u32],
    k: usize,
) -> Vec<PruneEvidence> {
    let mut counts: HashMap<u64, PruneEvidence> = HashMap::new();
    for (found, &truth) in index.search(queries, k).iter().zip(truths) {
        for n in found {
            let e = counts.entry(n.id).or_insert(PruneEvidence {
                id: n.id,
                label: n.label,
                helped: 0,
                hurt: 0,
            });
            if n.label == truth {
                e.helped += 1;
            } else {
                e.hurt += 1;
            }
        }
    }
    let mut out: Vec<PruneEvidence> = counts.into_values().collect();
    out.sort_by(|a, b| {
        let net = |e: &PruneEvidence| e.hurt as i64 - e.helped as i64;
        net(b)
            .cmp(&net(a))
            .then(b.hurt.cmp(&a.hurt))
            .then(a.id.cmp(&b.id))
    });
    out
}

/// kNN top-1 accuracy of `queries` against `index` under `rule` (`procmem eval knn` uses the
/// default, DINO voting).
pub fn accuracy(
    index: &ExactIndex,
    queries: &[f32],
    truths: &[u32],
    k: usize,
    rule: VoteRule,
) -> f64 {
    if truths.is_empty() {
        return 0.0;
    }
    let classes = index.labels.len();
    let correct = index
        .search(queries, k)
        .iter()
        .zip(truths)
        .filter(|(found, truth)| vote(found, k, classes, rule).prediction == Some(**truth))
        .count();
    correct as f64 / truths.len() as f64
}

/// Splits labelled queries (`dim`-wide rows) into the half that chooses what to prune (even
/// positions) and the half that judges it (odd positions).
#[allow(clippy::type_complexity)]
pub(crate) fn split_for_pruning(
    queries: &[f32],
    truths: &[u32],
    dim: usize,
) -> ((Vec<f32>, Vec<u32>), (Vec<f32>, Vec<u32>)) {
    let (mut choose, mut judge) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for (i, (q, &t)) in queries.chunks_exact(dim.max(1)).zip(truths).enumerate() {
        let half = if i % 2 == 0 { &mut choose } else { &mut judge };
        half.0.extend_from_slice(q);
        half.1.push(t);
    }
    (choose, judge)
}

/// What pruning would do: the evidence of every entry the choosing queries saw, the harmful
/// ones, and kNN accuracy on the judging queries before and after deleting them.
#[derive(Clone, Debug)]
pub struct PrunePlan {
    /// Most harmful first ([`evidence`]).
    pub evidence: Vec<PruneEvidence>,
    /// Ids of the entries that are harmful at `min_hurt`, most harmful first.
    pub harmful: Vec<u64>,
    /// How many queries chose and how many judged ([`split_for_pruning`]).
    pub choosing: usize,
    pub judging: usize,
    /// kNN top-1 on the judging queries with every entry, and without the harmful ones.
    pub accuracy_before: f64,
    pub accuracy_after: f64,
}

/// The whole pruning experiment on labelled `queries` (`truths.len() × dim`): every second
/// query chooses, the others judge; accuracy is voted by `rule`. `procmem memory prune` (the
/// default rule) and the Memory panel (the app's rule) run this.
pub fn plan(
    index: &ExactIndex,
    queries: &[f32],
    truths: &[u32],
    k: usize,
    min_hurt: usize,
    rule: VoteRule,
) -> PrunePlan {
    let ((choose_q, choose_t), (judge_q, judge_t)) = split_for_pruning(queries, truths, index.dim);
    let evidence = evidence(index, &choose_q, &choose_t, k);
    let harmful: Vec<u64> = evidence
        .iter()
        .filter(|e| e.is_harmful(min_hurt))
        .map(|e| e.id)
        .collect();
    let ids: std::collections::HashSet<u64> = harmful.iter().copied().collect();
    let mut pruned = index.clone();
    pruned.retain(|id, _| !ids.contains(&id));
    PrunePlan {
        accuracy_before: accuracy(index, &judge_q, &judge_t, k, rule),
        accuracy_after: accuracy(&pruned, &judge_q, &judge_t, k, rule),
        evidence,
        harmful,
        choosing: choose_t.len(),
        judging: judge_t.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mislabelled_entry_is_found_first_and_pruning_it_keeps_held_out_accuracy() {
        // Two classes on a line: class 0 near x = +1, class 1 near x = −1; entry 5 sits among
        // class 0 but is labelled 1.
        let d = 2;
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for i in 0..10 {
            let y = 0.05 * i as f32;
            let (x, label) = if i < 5 { (1.0, 0) } else { (-1.0, 1) };
            data.extend([x, y]);
            labels.push(label);
        }
        data.extend([0.98, 0.11]); // id 10: the mislabelled one
        labels.push(1);
        let unit = |v: &[f32]| {
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            [v[0] / n, v[1] / n]
        };
        let data: Vec<f32> = data.chunks(2).flat_map(unit).collect();
        let index = ExactIndex::from_embeddings(d, vec!["zero".into(), "one".into()], labels, data);
        let queries: Vec<f32> = (0..8)
            .flat_map(|i| unit(&[1.0, 0.02 + 0.03 * i as f32]))
            .collect();
        let truths = vec![0; 8];
        let ev = evidence(&index, &queries, &truths, 3);
        assert_eq!(ev[0].id, 10, "{ev:?}");
        assert_eq!(ev[0].helped, 0);
        assert!(ev[0].is_harmful(2));
        assert_eq!(ev.iter().filter(|e| e.is_harmful(2)).count(), 1, "{ev:?}");
        let ((cq, ct), (jq, jt)) = split_for_pruning(&queries, &truths, d);
        assert_eq!((ct.len(), jt.len()), (4, 4));
        assert_eq!(cq.len(), 8);
        let before = accuracy(&index, &jq, &jt, 3, VoteRule::default());
        let mut pruned = index.clone();
        pruned.remove(10);
        assert!(accuracy(&pruned, &jq, &jt, 3, VoteRule::default()) >= before);
        // The plan is the same experiment in one call.
        let p = plan(&index, &queries, &truths, 3, 2, VoteRule::default());
        assert_eq!(p.harmful, vec![10]);
        assert_eq!((p.choosing, p.judging), (4, 4));
        assert_eq!(
            (p.accuracy_before, p.accuracy_after),
            (before, accuracy(&pruned, &jq, &jt, 3, VoteRule::default()))
        );
    }
}
