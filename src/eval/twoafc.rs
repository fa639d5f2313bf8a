//! Two-alternative forced choice (2AFC) on NIGHTS-format triplets, with DreamSim's protocol
//! (`score_nights_dataset`, docs/protocols.md §8): d = 1 − cos(ref, distortion); per triplet
//! (d0 < d1)·(1 − p) + (d1 < d0)·p + 0.5·[d0 = d1], averaged, where p is the fraction of people
//! who chose the right image. Only rows with at least 6 votes count (DreamSim's filter).
//! Deviation: images are embedded with the model's own evaluation preprocessing (shorter side
//! to size·256/224, centre crop), pooling and standardisation, not DreamSim's plain 224×224
//! resize, so that 2AFC measures the same embedding the memory uses.
//!
//! The CSV is read by column name: `ref_path`, `left_path`, `right_path` (relative to the CSV's
//! folder), `right_vote` (a fraction, or a count when `votes` is larger than 1), `votes`, and
//! optionally `split` (test = `test_imagenet` ∪ `test_no_imagenet`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Triplet {
    pub reference: PathBuf,
    pub left: PathBuf,
    pub right: PathBuf,
    /// Fraction of people who chose the right image.
    pub p_right: f64,
    pub split: String,
}

/// Reads `data.csv`-style triplets with at least `min_votes` votes; `split` filters by the
/// split column ("test" means both test splits; None keeps all).
pub fn read_triplets(csv: &Path, split: Option<&str>, min_votes: f64) -> Result<Vec<Triplet>> {
    let bad = |m: String| Error::BadFile {
        path: csv.into(),
        message: m,
    };
    let text = std::fs::read_to_string(csv).map_err(|e| Error::io(csv, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| bad("empty file".into()))?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| bad(format!("no `{name}` column (header: {})", header.join(","))))
    };
    let (r, l, rt, v, rv) = (
        need("ref_path")?,
        need("left_path")?,
        need("right_path")?,
        need("votes")?,
        need("right_vote")?,
    );
    let sp = col("split");
    let root = csv.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| {
            cells
                .get(c)
                .copied()
                .ok_or_else(|| bad(format!("row {}: too few columns", i + 2)))
        };
        let num = |c: usize| -> Result<f64> {
            get(c)?
                .parse::<f64>()
                .map_err(|e| bad(format!("row {}: column {}: {e}", i + 2, header[c])))
        };
        let votes = num(v)?;
        if votes < min_votes {
            continue;
        }
        let row_split = match sp {
            Some(c) => get(c)?.to_string(),
            None => String::new(),
        };
        let keep = match split {
            None => true,
            Some("test") => row_split == "test_imagenet" || row_split == "test_no_imagenet",
            Some(s) => row_split == s,
        };
        if !keep {
            continue;
        }
        let right_vote = num(rv)?;
        let p_right = if right_vote > 1.0 && votes > 0.0 {
            right_vote / votes
        } else {
            right_vote
        };
        out.push(Triplet {
            reference: root.join(get(r)?),
            left: root.join(get(l)?),
            right: root.join(get(rt)?),
            p_right,
            split: row_split,
        });
    }
    Ok(out)
}

/// DreamSim's per-triplet score from the two distances and p.
pub fn score(d_left: f32, d_right: f32, p_right: f64) -> f64 {
    if d_left < d_right {
        1.0 - p_right
    } else if d_right < d_left {
        p_right
    } else {
        0.5
    }
}

/// Mean 2AFC score; embeddings are L2-normalised rows, `n` triplets × dim each.
pub fn evaluate(
    reference: &[f32],
    left: &[f32],
    right: &[f32],
    dim: usize,
    p_right: &[f64],
) -> f64 {
    use crate::memory::index::dot;
    let n = p_right.len();
    if n == 0 {
        return 0.0;
    }
    let total: f64 = (0..n)
        .map(|i| {
            let row = |m: &[f32]| m[i * dim..(i + 1) * dim].to_vec();
            let (rf, lf, rt) = (row(reference), row(left), row(right));
            score(1.0 - dot(&rf, &lf), 1.0 - dot(&rf, &rt), p_right[i])
        })
        .sum();
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_dreamsim() {
        assert_eq!(score(0.1, 0.2, 0.0), 1.0);
        assert_eq!(score(0.1, 0.2, 0.25), 0.75);
        assert_eq!(score(0.3, 0.2, 0.25), 0.25);
        assert_eq!(score(0.2, 0.2, 0.9), 0.5);
    }
}
