//! kNN classification (DINO's `eval_knn.py`): the memory is the training set's embeddings, every
//! test image votes with its top k (weights exp(s/0.07)); top-1 for each k, the best reported.

use serde::Serialize;

use crate::memory::index::ExactIndex;
use crate::memory::vote::{VoteRule, vote};

#[derive(Clone, Debug, Serialize)]
pub struct KnnReport {
    pub source: String,
    pub memory_size: usize,
    pub queries: usize,
    pub ks: Vec<usize>,
    /// Top-1 accuracy (0–1) for each k.
    pub top1: Vec<f64>,
    pub best_k: usize,
    pub best_top1: f64,
    pub class_names: Vec<String>,
    /// Per-class accuracy at the best k.
    pub per_class: Vec<f64>,
    /// confusion[true][predicted] at the best k.
    pub confusion: Vec<Vec<u32>>,
}

pub fn evaluate(
    source: &str,
    index: &ExactIndex,
    queries: &[f32],
    query_labels: &[u32],
    ks: &[usize],
    rule: VoteRule,
) -> KnnReport {
    let classes = index.labels.len();
    let kmax = ks.iter().copied().max().unwrap_or(1);
    let results = index.search(queries, kmax);
    let mut top1 = Vec::new();
    let mut confusions = Vec::new();
    for &k in ks {
        let mut confusion = vec![vec![0u32; classes]; classes];
        let mut correct = 0usize;
        for (neigh, &truth) in results.iter().zip(query_labels) {
            let p = vote(neigh, k, classes, rule).prediction.unwrap_or(0);
            confusion[truth as usize][p as usize] += 1;
            correct += (p == truth) as usize;
        }
        top1.push(correct as f64 / query_labels.len().max(1) as f64);
        confusions.push(confusion);
    }
    let best = (0..ks.len())
        .max_by(|&a, &b| top1[a].total_cmp(&top1[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let confusion = confusions.swap_remove(best);
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| row[c] as f64 / row.iter().sum::<u32>().max(1) as f64)
        .collect();
    KnnReport {
        source: source.to_string(),
        memory_size: index.len(),
        queries: query_labels.len(),
        ks: ks.to_vec(),
        best_k: ks.get(best).copied().unwrap_or(0),
        best_top1: top1.get(best).copied().unwrap_or(0.0),
        top1,
        class_names: index.labels.clone(),
        per_class,
        confusion,
    }
}

impl KnnReport {
    /// A Markdown rendering: the per-k table, per-class accuracy and the confusion matrix.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "### {} — memory {}, queries {}\n\n| k | top-1 |\n|---:|---:|\n",
            self.source, self.memory_size, self.queries
        );
        for (k, a) in self.ks.iter().zip(&self.top1) {
            s += &format!("| {k} | {:.2} % |\n", a * 100.0);
        }
        s += &format!(
            "\nBest: **{:.2} %** at k = {}.\n\n| class | accuracy |\n|---|---:|\n",
            self.best_top1 * 100.0,
            self.best_k
        );
        for (n, a) in self.class_names.iter().zip(&self.per_class) {
            s += &format!("| {n} | {:.1} % |\n", a * 100.0);
        }
        s += "\nConfusion (rows: true, columns: predicted):\n\n```\n";
        for row in &self.confusion {
            s += &row
                .iter()
                .map(|v| format!("{v:5}"))
                .collect::<Vec<_>>()
                .join("");
            s += "\n";
        }
        s += "```\n";
        s
    }
}
