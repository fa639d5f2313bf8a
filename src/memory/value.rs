//! Data values: the exact KNN-Shapley value of every memory entry over labelled queries (Jia et
//! al. 2019, "Efficient Task-Specific Data Valuation for Nearest Neighbor Algorithms", PVLDB 12,
//! Theorem 1).
//!
//! The utility of a subset S of the memory for a query (x, y) is the unweighted kNN classifier's
//! likelihood of the right label, `U(S) = (1/K) Σ_{k ≤ min(K, |S|)} 1[y_{α_k(S)} = y]`, with
//! α_k(S) the k-th most similar entry of S (ties by id, as in the exact index). The Shapley value
//! of each entry then has a closed form over the entries sorted by similarity to the query,
//! α_1 … α_N: `s(α_N) = 1[y_{α_N} = y] / N` and
//! `s(α_i) = s(α_{i+1}) + (1[y_{α_i} = y] − 1[y_{α_{i+1}} = y]) / K · min(K, i) / i`.
//! Values over several queries are the mean of the per-query values (Shapley values are linear
//! in the utility). A negative value marks an entry that lowers the accuracy it takes part in —
//! the usual sign of a wrong label.

use rayon::prelude::*;

use super::index::{ExactIndex, dot};

/// The KNN-Shapley value of each entry (in the index's storage order, as [`ExactIndex::rows`])
/// over `queries` (`nq × dim`) with class indices `truths`, for the kNN classifier with `k`
/// neighbours. Cost: one canonical dot product per (query, entry) and one sort per query.
pub fn knn_shapley(index: &ExactIndex, queries: &[f32], truths: &[u32], k: usize) -> Vec<f64> {
    let rows: Vec<(u64, u32, &[f32])> = index.rows().collect();
    let n = rows.len();
    if n == 0 || k == 0 || truths.is_empty() {
        return vec![0.0; n];
    }
    let dim = index.dim.max(1);
    let total = queries
        .par_chunks(dim)
        .zip(truths.par_iter())
        .fold(
            || vec![0f64; n],
            |mut acc, (q, &truth)| {
                let mut order: Vec<(f32, u64, usize)> = rows
                    .iter()
                    .enumerate()
                    .map(|(row, (id, _, e))| (dot(q, e), *id, row))
                    .collect();
                order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let right = |i: usize| f64::from(u8::from(rows[order[i].2].1 == truth));
                // The recursion from the farthest entry to the nearest (1-based ranks i).
                let mut value = right(n - 1) / n as f64;
                acc[order[n - 1].2] += value;
                for i in (1..n).rev() {
                    // i is the 1-based rank of order[i − 1].
                    value += (right(i - 1) - right(i)) / k as f64 * (k.min(i) as f64) / i as f64;
                    acc[order[i - 1].2] += value;
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; n],
            |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        );
    let nq = truths.len() as f64;
    total.into_iter().map(|v| v / nq).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// U(S) of the module docs for one query, by definition.
    fn utility(
        sims: &[f32],
        labels: &[u32],
        ids: &[u64],
        subset: &[usize],
        truth: u32,
        k: usize,
    ) -> f64 {
        let mut s: Vec<usize> = subset.to_vec();
        s.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]).then(ids[a].cmp(&ids[b])));
        s.iter().take(k).filter(|&&i| labels[i] == truth).count() as f64 / k as f64
    }

    /// Shapley values by their definition: the weighted marginal gains over all subsets.
    fn brute_force(sims: &[f32], labels: &[u32], ids: &[u64], truth: u32, k: usize) -> Vec<f64> {
        let n = sims.len();
        let fact = |m: usize| (1..=m).map(|x| x as f64).product::<f64>();
        (0..n)
            .map(|i| {
                let others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                (0..1usize << others.len())
                    .map(|mask| {
                        let s: Vec<usize> = others
                            .iter()
                            .enumerate()
                            .filter(|(b, _)| mask >> b & 1 == 1)
                            .map(|(_, &j)| j)
                            .collect();
                        let mut with = s.clone();
                        with.push(i);
                        let weight = fact(s.len()) * fact(n - s.len() - 1) / fact(n);
                        weight
                            * (utility(sims, labels, ids, &with, truth, k)
                                - utility(sims, labels, ids, &s, truth, k))
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn the_closed_form_equals_brute_force_shapley_values() {
        let mut rng = Rng::new(11);
        for trial in 0..12 {
            let (n, d, k) = (2 + rng.below(7), 3, 1 + rng.below(4));
            let data: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
            let labels: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
            let index = ExactIndex::from_embeddings(
                d,
                vec!["a".into(), "b".into(), "c".into()],
                labels.clone(),
                data.clone(),
            );
            let queries: Vec<f32> = (0..2 * d).map(|_| rng.normal() as f32).collect();
            let truths = [rng.below(3) as u32, rng.below(3) as u32];
            let got = knn_shapley(&index, &queries, &truths, k);
            let ids: Vec<u64> = (0..n as u64).collect();
            for j in 0..n {
                let want: f64 = queries
                    .chunks(d)
                    .zip(truths)
                    .map(|(q, t)| {
                        let sims: Vec<f32> = data.chunks(d).map(|e| dot(q, e)).collect();
                        brute_force(&sims, &labels, &ids, t, k)[j]
                    })
                    .sum::<f64>()
                    / 2.0;
                assert!(
                    (got[j] - want).abs() < 1e-12,
                    "trial {trial} (n {n}, k {k}) entry {j}: {} vs {want}",
                    got[j]
                );
            }
            // Efficiency: the values sum to U(all) − U(∅), averaged over the queries.
            let u_all: f64 = queries
                .chunks(d)
                .zip(truths)
                .map(|(q, t)| {
                    utility(
                        &data.chunks(d).map(|e| dot(q, e)).collect::<Vec<_>>(),
                        &labels,
                        &ids,
                        &(0..n).collect::<Vec<_>>(),
                        t,
                        k,
                    )
                })
                .sum::<f64>()
                / 2.0;
            assert!((got.iter().sum::<f64>() - u_all).abs() < 1e-12);
        }
    }

    #[test]
    fn the_lowest_values_find_flipped_labels_far_above_chance() {
        // 10 classes around random centres; 5 % of the memory's labels flipped to another class.
        let (n, d, classes) = (1000, 16, 10);
        let mut rng = Rng::new(4);
        let centres: Vec<Vec<f32>> = (0..classes)
            .map(|_| (0..d).map(|_| rng.normal() as f32).collect())
            .collect();
        let mut sample = |c: usize| {
            centres[c]
                .iter()
                .map(|x| x + 0.6 * rng.normal() as f32)
                .collect::<Vec<f32>>()
        };
        let clean: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
        let data: Vec<f32> = clean.iter().flat_map(|&c| sample(c as usize)).collect();
        let flipped: Vec<usize> = (0..n).filter(|i| i % 20 == 7).collect();
        let mut labels = clean.clone();
        for &i in &flipped {
            labels[i] = (labels[i] + 1 + (i as u32 % 9)) % classes as u32;
        }
        let truths: Vec<u32> = (0..300).map(|i| (i % classes) as u32).collect();
        let queries: Vec<f32> = truths.iter().flat_map(|&c| sample(c as usize)).collect();
        let names = (0..classes).map(|c| c.to_string()).collect();
        let index = ExactIndex::from_embeddings(d, names, labels, data);
        let values = knn_shapley(&index, &queries, &truths, 10);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let found = order[..flipped.len()]
            .iter()
            .filter(|i| flipped.contains(i))
            .count();
        eprintln!(
            "the lowest-valued 5 % hold {found} of the {} flipped labels",
            flipped.len()
        );
        // Chance would find 5 % of them.
        assert!(
            found * 10 >= flipped.len() * 6,
            "the lowest 5 % hold {found} of {} flipped labels",
            flipped.len()
        );
    }
}
