//! "Not in memory": how well a query's neighbours tell in-distribution queries from others.
//!
//! The score is [`crate::memory::query::in_memory_score`], the similarity of the k-th nearest
//! neighbour (Sun et al. 2022, "Out-of-Distribution Detection with Deep Nearest Neighbors",
//! ICML: the k-th distance on normalised features). Reported as the field does: AUROC with the
//! in-distribution queries as positives (ties count one half), and FPR@95 — the fraction of other
//! queries accepted at the threshold that accepts 95 % of in-distribution queries.

use crate::memory::ExactIndex;

/// AUROC of `positives` against `negatives` (higher score = positive): the probability that a
/// random positive scores above a random negative, ties counting ½ (the Mann–Whitney U / n₊n₋).
/// `None` if either set is empty or a score is NaN.
pub fn auroc(positives: &[f32], negatives: &[f32]) -> Option<f64> {
    if positives.is_empty()
        || negatives.is_empty()
        || positives.iter().chain(negatives).any(|s| s.is_nan())
    {
        return None;
    }
    let mut neg = negatives.to_vec();
    neg.sort_by(f32::total_cmp);
    let mut u = 0f64;
    for &p in positives {
        let below = neg.partition_point(|&n| n < p);
        let equal = neg[below..].partition_point(|&n| n <= p);
        u += below as f64 + 0.5 * equal as f64;
    }
    Some(u / (positives.len() as f64 * negatives.len() as f64))
}

/// The highest threshold that accepts (score ≥ threshold) at least `tpr` of `positives`, and
/// the fraction of `negatives` it accepts. `None` if either set is empty or a score is NaN.
pub(crate) fn fpr_at_tpr(positives: &[f32], negatives: &[f32], tpr: f64) -> Option<(f32, f64)> {
    if positives.is_empty()
        || negatives.is_empty()
        || positives.iter().chain(negatives).any(|s| s.is_nan())
    {
        return None;
    }
    let mut pos = positives.to_vec();
    pos.sort_by(|a, b| b.total_cmp(a));
    // Accepting the top m positives needs threshold pos[m − 1]; m = ⌈tpr·n⌉.
    let m = ((tpr * pos.len() as f64).ceil() as usize).clamp(1, pos.len());
    let threshold = pos[m - 1];
    let accepted = negatives.iter().filter(|&&n| n >= threshold).count();
    Some((threshold, accepted as f64 / negatives.len() as f64))
}

/// The in-memory scores of `queries` (`nq × dim`) against `index`, with `k` neighbours.
pub fn scores(index: &ExactIndex, queries: &[f32], k: usize) -> Vec<f32> {
    index
        .search(queries, k)
        .iter()
        .map(|n| crate::memory::query::in_memory_score(n, k).unwrap_or(f32::NEG_INFINITY))
        .collect()
}

/// One out-of-distribution set's result.
#[derive(Clone, Debug, PartialEq)]
pub struct OodResult {
    pub auroc: f64,
    /// Threshold accepting 95 % of in-distribution queries, and the other queries it accepts.
    pub threshold_at_95: f32,
    pub fpr_at_95: f64,
}

/// AUROC and FPR@95 of in-distribution `inside` scores against `outside` scores.
pub fn evaluate(inside: &[f32], outside: &[f32]) -> Option<OodResult> {
    let auroc = auroc(inside, outside)?;
    let (threshold_at_95, fpr_at_95) = fpr_at_tpr(inside, outside, 0.95)?;
    Some(OodResult {
        auroc,
        threshold_at_95,
        fpr_at_95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_and_fpr_match_hand_computed_and_sklearn_values() {
        // By hand: pairs (0.9, ·) 2 wins, (0.8, ·) 2, (0.7, ·) 1 → 5/6.
        assert_eq!(auroc(&[0.9, 0.8, 0.7], &[0.75, 0.6]), Some(5.0 / 6.0));
        // Ties count ½: sklearn.metrics.roc_auc_score([1,1,0,0], [0.5,0.2,0.5,0.1]) = 0.625.
        assert_eq!(auroc(&[0.5, 0.2], &[0.5, 0.1]), Some(0.625));
        assert_eq!(auroc(&[1.0], &[0.0]), Some(1.0));
        assert_eq!(auroc(&[0.0], &[1.0]), Some(0.0));
        assert_eq!(auroc(&[], &[1.0]), None);
        assert_eq!(auroc(&[f32::NAN], &[1.0]), None);
        // 95 % of 3 positives needs all 3: threshold 0.7 accepts 0.75 of the negatives → ½.
        assert_eq!(
            fpr_at_tpr(&[0.9, 0.8, 0.7], &[0.75, 0.6], 0.95),
            Some((0.7, 0.5))
        );
        // 20 positives 1..=20: 95 % is 19 of them, threshold 2; negatives 0, 2, 3 → 2 of 3.
        let pos: Vec<f32> = (1..=20).map(|i| i as f32).collect();
        assert_eq!(
            fpr_at_tpr(&pos, &[0.0, 2.0, 3.0], 0.95),
            Some((2.0, 2.0 / 3.0))
        );
    }

    #[test]
    fn far_queries_score_lower_than_near_ones() {
        let d = 8;
        let mut rng = crate::rng::Rng::new(3);
        let unit = |v: Vec<f32>| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        // Memory and in-queries around +e0; out-queries around −e0.
        let around = |rng: &mut crate::rng::Rng, sign: f32| {
            unit(
                (0..d)
                    .map(|j| {
                        if j == 0 {
                            sign
                        } else {
                            0.2 * rng.normal() as f32
                        }
                    })
                    .collect(),
            )
        };
        let data: Vec<f32> = (0..200).flat_map(|_| around(&mut rng, 1.0)).collect();
        let index = ExactIndex::from_embeddings(d, vec!["a".into()], vec![0; 200], data);
        let inside: Vec<f32> = (0..30).flat_map(|_| around(&mut rng, 1.0)).collect();
        let outside: Vec<f32> = (0..30).flat_map(|_| around(&mut rng, -1.0)).collect();
        let r = evaluate(&scores(&index, &inside, 5), &scores(&index, &outside, 5)).unwrap();
        assert_eq!(r.auroc, 1.0);
        assert_eq!(r.fpr_at_95, 0.0);
    }
}
