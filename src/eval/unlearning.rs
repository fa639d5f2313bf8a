//! Unlearning a whole class: remove every memory entry of one class and compare every query's
//! prediction before and after. In a visual memory this is exact by construction: the removed
//! class can no longer be predicted (its accuracy drops to zero), and a query of another class
//! can change its prediction only if a removed entry was among its k neighbours. This module
//! measures both rather than assuming them.

use crate::memory::index::Neighbour;
use crate::memory::{ExactIndex, VoteRule, vote::vote};

#[derive(Clone, Debug, PartialEq)]
pub struct ClassRemoval {
    pub class: u32,
    pub removed_entries: usize,
    pub class_queries: usize,
    pub class_accuracy_before: f64,
    pub class_accuracy_after: f64,
    pub other_queries: usize,
    pub other_accuracy_before: f64,
    pub other_accuracy_after: f64,
    /// Queries of other classes that had a removed entry among their k neighbours.
    pub other_with_removed_neighbour: usize,
    /// Queries of other classes whose prediction changed.
    pub other_changed: usize,
    /// Of those, how many had no removed entry among their k neighbours (must be 0).
    pub other_changed_without_removed_neighbour: usize,
}

fn predictions(
    results: &[Vec<Neighbour>],
    k: usize,
    classes: usize,
    rule: VoteRule,
) -> Vec<Option<u32>> {
    results
        .iter()
        .map(|n| vote(n, k, classes, rule).prediction)
        .collect()
}

/// Removes every entry labelled `class` from a copy of `index` and compares predictions for
/// `queries` (rows of `index.dim`) with `query_labels`.
pub fn remove_class(
    index: &ExactIndex,
    queries: &[f32],
    query_labels: &[u32],
    class: u32,
    k: usize,
    rule: VoteRule,
) -> ClassRemoval {
    let classes = index.labels.len();
    let before_neighbours = index.search(queries, k);
    let before = predictions(&before_neighbours, k, classes, rule);
    let removed: std::collections::HashSet<u64> = index
        .rows()
        .filter(|(_, l, _)| *l == class)
        .map(|(id, _, _)| id)
        .collect();
    let mut after_index = index.clone();
    after_index.retain(|_, label| label != class);
    let after = predictions(&after_index.search(queries, k), k, classes, rule);

    let acc = |preds: &[Option<u32>], pick: &dyn Fn(u32) -> bool| {
        let (mut right, mut total) = (0usize, 0usize);
        for (p, &l) in preds.iter().zip(query_labels) {
            if pick(l) {
                total += 1;
                right += usize::from(*p == Some(l));
            }
        }
        if total == 0 {
            0.0
        } else {
            right as f64 / total as f64
        }
    };
    let is_class = |l: u32| l == class;
    let is_other = |l: u32| l != class;
    let mut r = ClassRemoval {
        class,
        removed_entries: removed.len(),
        class_queries: query_labels.iter().filter(|&&l| l == class).count(),
        class_accuracy_before: acc(&before, &is_class),
        class_accuracy_after: acc(&after, &is_class),
        other_queries: query_labels.iter().filter(|&&l| l != class).count(),
        other_accuracy_before: acc(&before, &is_other),
        other_accuracy_after: acc(&after, &is_other),
        other_with_removed_neighbour: 0,
        other_changed: 0,
        other_changed_without_removed_neighbour: 0,
    };
    for (q, &l) in query_labels.iter().enumerate() {
        if l == class {
            continue;
        }
        let touched = before_neighbours[q].iter().any(|n| removed.contains(&n.id));
        r.other_with_removed_neighbour += usize::from(touched);
        if before[q] != after[q] {
            r.other_changed += 1;
            r.other_changed_without_removed_neighbour += usize::from(!touched);
        }
    }
    r
}

impl ClassRemoval {
    pub fn markdown_header() -> &'static str {
        "| removed class | entries removed | its accuracy before → after | other classes' accuracy before → after | other queries with a removed neighbour | other predictions changed | changed without a removed neighbour |\n|---|---:|---:|---:|---:|---:|---:|\n"
    }

    pub fn markdown_row(&self, class_name: &str) -> String {
        format!(
            "| {class_name} | {} | {:.2} % → {:.2} % | {:.2} % → {:.2} % | {} of {} | {} | {} |\n",
            self.removed_entries,
            self.class_accuracy_before * 100.0,
            self.class_accuracy_after * 100.0,
            self.other_accuracy_before * 100.0,
            self.other_accuracy_after * 100.0,
            self.other_with_removed_neighbour,
            self.other_queries,
            self.other_changed,
            self.other_changed_without_removed_neighbour
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tight clusters (classes 0 and 1) and a third class placed next to class 0's cluster:
    /// removing class 0 must zero its accuracy, leave class 1 untouched, and may only change
    /// queries whose neighbours included class-0 entries.
    #[test]
    fn removing_a_class_zeroes_it_and_touches_only_its_neighbours() {
        let norm = |v: [f32; 2]| {
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            [v[0] / n, v[1] / n]
        };
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for i in 0..10 {
            let d = i as f32 * 0.01;
            data.extend(norm([1.0, d]));
            labels.push(0);
            data.extend(norm([d, 1.0]));
            labels.push(1);
            data.extend(norm([1.0, 0.3 + d]));
            labels.push(2);
        }
        let index =
            ExactIndex::from_embeddings(2, vec!["a".into(), "b".into(), "c".into()], labels, data);
        let queries: Vec<f32> = [norm([1.0, 0.05]), norm([0.05, 1.0]), norm([1.0, 0.33])].concat();
        let r = remove_class(&index, &queries, &[0, 1, 2], 0, 5, VoteRule::default());
        assert_eq!(r.removed_entries, 10);
        assert_eq!(r.class_accuracy_before, 1.0);
        assert_eq!(r.class_accuracy_after, 0.0);
        assert_eq!(r.other_accuracy_before, 1.0);
        assert_eq!(r.other_accuracy_after, 1.0);
        assert_eq!(r.other_changed_without_removed_neighbour, 0);
        // The class-1 query's neighbours are all class 1: untouched.
        assert!(r.other_with_removed_neighbour <= 1);
    }
}
