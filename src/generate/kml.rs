//! Shaders KML: K-means Leaves, exactly as the paper's code builds them
//! (`data_generation/fast2leaves.py`, see `docs/protocols.md` §3).
//!
//! For k = 2 (the paper's only value): k-means on s1's RGB in [0,1] at the clustering
//! resolution (256²), centroids initialised at the lexicographically smallest and largest
//! colours, 3 Lloyd iterations, labels from the last assignment; mask = (label == 0),
//! box blur → bilinear resize → box blur; out = s2·m + s3·(1−m).
//!
//! Extensions (not in the paper): k > 2 initialises centroids at evenly spaced ranks of the
//! lexicographically sorted unique colours (rank 0 and the last rank, as for k = 2), and an
//! assignment maps clusters to textures. Empty clusters keep their previous centroid instead of
//! dividing by zero.

use serde::{Deserialize, Serialize};

use super::imageops::{Plane, box_blur, resize_bilinear};

/// Parameters of K-means Leaves; the defaults are the paper code's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct KmlConfig {
    /// Number of k-means clusters. Default 2 (the paper's only value).
    pub k: usize,
    /// Lloyd iterations. Default 3.
    pub iterations: usize,
    /// Box-blur kernel size applied before and after resizing the mask. Default 3 (3×3).
    pub blur: usize,
    /// Side of the square image k-means runs on (s1 is rendered at this size). Default 256.
    /// Lower is faster; at 64² outputs, 64 is 16× cheaper with coarser mask edges.
    pub resolution: u32,
    /// Texture index for each cluster. Empty means one texture per cluster (for k = 2: cluster
    /// 0 → s2, cluster 1 → s3, the paper's rule). Entries beyond k are ignored, missing ones
    /// take `cluster % textures`.
    pub assignment: Vec<usize>,
}

impl Default for KmlConfig {
    fn default() -> Self {
        Self {
            k: 2,
            iterations: 3,
            blur: 3,
            resolution: 256,
            assignment: Vec::new(),
        }
    }
}

impl KmlConfig {
    /// Number of textures the assignment uses.
    pub fn texture_count(&self) -> usize {
        if self.assignment.is_empty() {
            self.k.max(1)
        } else {
            self.assignment
                .iter()
                .take(self.k)
                .max()
                .map_or(1, |m| m + 1)
                .max(1)
        }
    }

    /// Texture of cluster `c`.
    pub(crate) fn texture_of(&self, c: usize) -> usize {
        if self.assignment.is_empty() {
            c
        } else {
            self.assignment.get(c).copied().unwrap_or(c) % self.texture_count()
        }
    }
}

/// Result of clustering one image.
#[derive(Clone, Debug)]
pub struct Clustering {
    pub labels: Vec<u8>,
    pub centroids: Vec<[f32; 3]>,
    pub width: usize,
    pub height: usize,
}

fn lex_less(a: &[f32; 3], b: &[f32; 3]) -> bool {
    a.partial_cmp(b) == Some(std::cmp::Ordering::Less)
}

/// Initial centroids: k colours at evenly spaced ranks of the sorted unique colours
/// (`np.unique(x, axis=0)`): for k = 2, its first and last rows.
fn initial_centroids(points: &[[f32; 3]], k: usize) -> Vec<[f32; 3]> {
    if k == 2 {
        let mut lo = points[0];
        let mut hi = points[0];
        for p in points {
            if lex_less(p, &lo) {
                lo = *p;
            }
            if lex_less(&hi, p) {
                hi = *p;
            }
        }
        return vec![lo, hi];
    }
    let mut unique: Vec<[f32; 3]> = points.to_vec();
    unique.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    unique.dedup();
    let n = unique.len();
    (0..k)
        .map(|j| {
            if k == 1 {
                unique[0]
            } else {
                unique[((j * (n - 1)) as f64 / (k - 1) as f64).round() as usize]
            }
        })
        .collect()
}

/// Lloyd's k-means on RGB points with the paper's initialisation. Labels come from the last
/// assignment step, as in the paper's code.
pub fn kmeans(
    points: &[[f32; 3]],
    width: usize,
    height: usize,
    k: usize,
    iterations: usize,
) -> Clustering {
    assert_eq!(points.len(), width * height);
    let k = k.clamp(1, 255);
    let mut centroids = initial_centroids(points, k);
    let mut labels = vec![0u8; points.len()];
    for _ in 0..iterations.max(1) {
        let mut sums = vec![[0.0f64; 3]; k];
        let mut counts = vec![0usize; k];
        for (p, label) in points.iter().zip(labels.iter_mut()) {
            let mut best = 0usize;
            let mut best_d = f32::INFINITY;
            for (j, c) in centroids.iter().enumerate() {
                let d = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
                if d < best_d {
                    best_d = d;
                    best = j;
                }
            }
            *label = best as u8;
            counts[best] += 1;
            for ch in 0..3 {
                sums[best][ch] += p[ch] as f64;
            }
        }
        for j in 0..k {
            if counts[j] > 0 {
                centroids[j] = [0, 1, 2].map(|ch| (sums[j][ch] / counts[j] as f64) as f32);
            }
        }
    }
    Clustering {
        labels,
        centroids,
        width,
        height,
    }
}

/// The soft mask of `texture` at `out_size`: indicator of the clusters assigned to it,
/// box-blurred, resized (bilinear), box-blurred again.
pub(crate) fn texture_mask(
    clustering: &Clustering,
    cfg: &KmlConfig,
    texture: usize,
    out_size: usize,
) -> Plane {
    let indicator = Plane {
        width: clustering.width,
        height: clustering.height,
        data: clustering
            .labels
            .iter()
            .map(|&l| {
                if cfg.texture_of(l as usize) == texture {
                    1.0
                } else {
                    0.0
                }
            })
            .collect(),
    };
    let blurred = box_blur(&indicator, cfg.blur);
    let resized = resize_bilinear(&blurred, out_size, out_size);
    box_blur(&resized, cfg.blur)
}

/// Composes textures through the clustering of s1. `textures` are `out_size`² RGB images, one
/// per texture index. Returns the composite and the mask of texture 0 (for display).
pub fn compose(
    s1: &image::RgbImage,
    textures: &[image::RgbImage],
    cfg: &KmlConfig,
    out_size: u32,
) -> (image::RgbImage, image::GrayImage) {
    let (w, h) = (s1.width() as usize, s1.height() as usize);
    let points: Vec<[f32; 3]> = s1
        .pixels()
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect();
    let clustering = kmeans(&points, w, h, cfg.k, cfg.iterations);
    let n = out_size as usize;
    let t_count = textures.len().min(cfg.texture_count()).max(1);
    // Masks of textures 0..t_count-1; the last texture takes the remainder so masks sum to 1
    // (for k = 2 this is the paper's s2·m + s3·(1−m)).
    let mut masks: Vec<Plane> = (0..t_count - 1)
        .map(|t| texture_mask(&clustering, cfg, t, n))
        .collect();
    let mut rest = Plane::from_fn(n, n, |_, _| 1.0);
    for m in &masks {
        for (r, v) in rest.data.iter_mut().zip(&m.data) {
            *r -= v;
        }
    }
    masks.push(rest);
    let mut out = image::RgbImage::new(out_size, out_size);
    for (i, px) in out.pixels_mut().enumerate() {
        let mut acc = [0.0f32; 3];
        for (t, m) in masks.iter().enumerate() {
            let tex = textures[t].as_raw();
            for ch in 0..3 {
                acc[ch] += m.data[i] * tex[i * 3 + ch] as f32;
            }
        }
        *px = image::Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8));
    }
    let mask0 = &masks[0];
    let mask_img = image::GrayImage::from_fn(out_size, out_size, |x, y| {
        image::Luma([
            (mask0.data[y as usize * n + x as usize].clamp(0.0, 1.0) * 255.0).round() as u8,
        ])
    });
    (out, mask_img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialisation_is_lexicographic_min_and_max() {
        let pts = vec![
            [0.5, 0.1, 0.9],
            [0.2, 0.9, 0.0],
            [0.2, 0.1, 0.5],
            [0.9, 0.0, 0.0],
            [0.9, 0.0, 0.1],
        ];
        let c = initial_centroids(&pts, 2);
        assert_eq!(c[0], [0.2, 0.1, 0.5]);
        assert_eq!(c[1], [0.9, 0.0, 0.1]);
        // k = 3 picks the middle rank of the 5 unique sorted colours.
        let c3 = initial_centroids(&pts, 3);
        assert_eq!(c3[1], [0.5, 0.1, 0.9]);
    }

    #[test]
    fn two_colour_image_is_split_exactly_and_dark_cluster_is_zero() {
        let (w, h) = (8, 8);
        let pts: Vec<[f32; 3]> = (0..w * h)
            .map(|i| {
                if i % w < 3 {
                    [0.1, 0.2, 0.3]
                } else {
                    [0.8, 0.7, 0.6]
                }
            })
            .collect();
        let c = kmeans(&pts, w, h, 2, 3);
        for (i, l) in c.labels.iter().enumerate() {
            assert_eq!(*l, if i % w < 3 { 0 } else { 1 });
        }
    }

    #[test]
    fn empty_clusters_do_not_crash_and_keep_centroids() {
        // A constant image: every k > 1 has empty clusters.
        let pts = vec![[0.4, 0.4, 0.4]; 16];
        for k in 1..6 {
            let c = kmeans(&pts, 4, 4, k, 3);
            assert!(c.centroids.iter().all(|c| c.iter().all(|v| v.is_finite())));
            assert!(c.labels.iter().all(|&l| (l as usize) < k.max(1)));
        }
    }

    #[test]
    fn lloyd_matches_reference_on_a_small_case() {
        // Reference: tools/reference_kml.py (numpy, the paper code's Fast2Means steps):
        // x = [[0,0,0],[0.1,0,0],[0.2,0,0],[0.9,0,0],[1,0,0],[0.45,0,0]]
        // init c = [0,0,0], [1,0,0]; after 3 iterations labels = [0,0,0,1,1,0],
        // centroids = [0.1875,0,0], [0.95,0,0].
        let pts = vec![
            [0.0, 0.0, 0.0],
            [0.1, 0.0, 0.0],
            [0.2, 0.0, 0.0],
            [0.9, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.45, 0.0, 0.0],
        ];
        let c = kmeans(&pts, 6, 1, 2, 3);
        assert_eq!(c.labels, vec![0, 0, 0, 1, 1, 0]);
        assert!((c.centroids[0][0] - 0.1875).abs() < 1e-6);
        assert!((c.centroids[1][0] - 0.95).abs() < 1e-6);
    }

    #[test]
    fn masks_sum_to_one_and_compose_blends_textures() {
        let s1 = image::RgbImage::from_fn(32, 32, |x, _| {
            if x < 16 {
                image::Rgb([10, 10, 10])
            } else {
                image::Rgb([240, 240, 240])
            }
        });
        let red = image::RgbImage::from_pixel(16, 16, image::Rgb([255, 0, 0]));
        let blue = image::RgbImage::from_pixel(16, 16, image::Rgb([0, 0, 255]));
        let cfg = KmlConfig {
            resolution: 32,
            ..Default::default()
        };
        let (out, mask) = compose(&s1, &[red, blue], &cfg, 16);
        // Left half is the dark cluster 0 → red (s2); right half → blue (s3).
        assert_eq!(out.get_pixel(1, 8).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(14, 8).0, [0, 0, 255]);
        assert_eq!(mask.get_pixel(1, 8).0, [255]);
        // Edge pixels blend and stay normalised.
        let mid = out.get_pixel(8, 8).0;
        assert!((mid[0] as i32 + mid[2] as i32 - 255).abs() <= 1, "{mid:?}");
    }
}
