//! The DINO loss (Caron et al. 2021, `DINOLoss` in facebookresearch/dino): cross-entropy between
//! the centred, sharpened teacher distribution of each global view and the student's
//! distribution of every other view, averaged over the (view, view) pairs; and the centre's EMA.
//!
//! Two of DINOv2's parts (Oquab et al. 2024, facebookresearch/dinov2 `dino_clstoken_loss.py`,
//! `koleo_loss.py`), options of the training config: Sinkhorn-Knopp centring of the teacher
//! ([`sinkhorn_knopp`], in place of the centre's softmax) and the KoLeo regulariser on the
//! student's CLS embeddings ([`koleo_loss`]). And iBOT's masked-patch loss (Zhou et al. 2022,
//! as DINOv2's `ibot_patch_loss.py` computes it: [`ibot_patch_loss`], with [`ibot_masks`]).

use candle_core::{D, Result, Tensor, bail};

use crate::model::layers::{log_softmax_last, softmax_last};
use crate::rng::Rng;

/// Loss terms and the teacher's mean entropy (a collapse indicator: near log(K) = uniform,
/// near 0 = one-hot).
pub struct DinoLossOutput {
    pub loss: Tensor,
    pub teacher_entropy: f64,
}

/// `student`: [(2 + n_local)·B, K] logits, crops in order (global 1, global 2, locals);
/// `teacher`: [2·B, K] logits of the two global crops; `center`: [1, K].
pub fn dino_loss(
    student: &Tensor,
    teacher: &Tensor,
    center: &Tensor,
    student_temp: f64,
    teacher_temp: f64,
    batch: usize,
) -> Result<DinoLossOutput> {
    let n_crops = student.dim(0)? / batch;
    if n_crops < 2 || teacher.dim(0)? != 2 * batch {
        bail!(
            "DINO loss: {n_crops} student views and {} teacher rows for batch {batch}: two global views are needed",
            teacher.dim(0)?
        );
    }
    let teacher_probs = softmax_last(&(teacher.broadcast_sub(center)? / teacher_temp)?)?.detach();
    dino_loss_with_targets(student, &teacher_probs, student_temp, batch)
}

/// The DINO cross-entropy with given teacher targets `teacher_probs` [2·B, K] (rows summing to
/// 1: the centred softmax of [`dino_loss`] or DINOv2's [`sinkhorn_knopp`]); `student` as in
/// [`dino_loss`].
pub(crate) fn dino_loss_with_targets(
    student: &Tensor,
    teacher_probs: &Tensor,
    student_temp: f64,
    batch: usize,
) -> Result<DinoLossOutput> {
    let n_crops = student.dim(0)? / batch;
    if n_crops < 2 || teacher_probs.dim(0)? != 2 * batch {
        bail!(
            "DINO loss: {n_crops} student views and {} teacher rows for batch {batch}: two global views are needed",
            teacher_probs.dim(0)?
        );
    }
    let teacher_probs = teacher_probs.detach();
    let student = (student / student_temp)?;
    let entropy = (teacher_probs.clamp(1e-12, 1.0)?.log()? * &teacher_probs)?
        .sum(D::Minus1)?
        .neg()?
        .mean_all()?
        .to_scalar::<f32>()? as f64;
    let log_p = log_softmax_last(&student)?;
    // Student view v meets every teacher view except itself, so the sum over the (teacher view,
    // student view) pairs is Σ_v (Σ_{t≠v} q_t)·log p_v: one weighted sum, where a term per pair
    // cost the backward pass a zero-filled [crops·B, K] gradient and an add for each of them.
    let (q0, q1) = (
        teacher_probs.narrow(0, 0, batch)?,
        teacher_probs.narrow(0, batch, batch)?,
    );
    let both = (&q0 + &q1)?;
    let mut weights = vec![q1, q0];
    weights.extend(std::iter::repeat_n(both, n_crops.saturating_sub(2)));
    let weights = Tensor::cat(&weights, 0)?;
    let pairs = 2 * (n_crops - 1);
    let loss = ((weights * log_p)?.sum_all()?.neg()? / (batch * pairs) as f64)?;
    Ok(DinoLossOutput {
        loss,
        teacher_entropy: entropy,
    })
}

/// DINOv2's Sinkhorn-Knopp teacher targets (`sinkhorn_knopp_teacher`): Q = exp(t / τ) over all
/// rows of `teacher` [R, K] (both global views), then `iterations` rounds of normalising the
/// prototypes (columns) to mass 1/K each and the rows to mass 1/R each; returns Q·R [R, K], rows
/// summing to 1. DINOv2 uses 3 iterations. The global maximum is subtracted before `exp`, which
/// the normalisation cancels (DINOv2 relies on logits in [−1, 1] instead).
pub(crate) fn sinkhorn_knopp(
    teacher: &Tensor,
    teacher_temp: f64,
    iterations: usize,
) -> Result<Tensor> {
    let (rows, k) = teacher.dims2()?;
    let logits: Vec<f32> = teacher.detach().flatten_all()?.to_vec1()?;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // f64 accumulation: K = 4096 prototypes of mass 1/K each.
    let mut q: Vec<f64> = logits
        .iter()
        .map(|&v| ((v - max) as f64 / teacher_temp).exp())
        .collect();
    let total: f64 = q.iter().sum();
    q.iter_mut().for_each(|v| *v /= total);
    let mut col = vec![0f64; k];
    for _ in 0..iterations {
        col.iter_mut().for_each(|c| *c = 0.0);
        for row in q.chunks_exact(k) {
            for (c, v) in col.iter_mut().zip(row) {
                *c += v;
            }
        }
        for row in q.chunks_exact_mut(k) {
            for (v, c) in row.iter_mut().zip(&col) {
                // A prototype with no mass at all stays at zero (DINOv2 would divide 0 by 0).
                *v = if *c > 0.0 { *v / c / k as f64 } else { 0.0 };
            }
        }
        for row in q.chunks_exact_mut(k) {
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|v| {
                *v = if sum > 0.0 {
                    *v / sum / rows as f64
                } else {
                    0.0
                }
            });
        }
    }
    let out: Vec<f32> = q.into_iter().map(|v| (v * rows as f64) as f32).collect();
    Tensor::from_vec(out, (rows, k), teacher.device())
}

/// DINOv2's KoLeo regulariser (Sablayrolles et al. 2019) on the rows of `x` [B, D]:
/// −mean_i log(‖x̂ᵢ − x̂_{n(i)} + ε‖₂ + ε), with x̂ the L2-normalised rows, n(i) the nearest other
/// row by dot product and ε = 1e-8 (`KoLeoLoss` with `nn.PairwiseDistance(2, eps=1e-8)`). It
/// spreads the batch's embeddings over the sphere; DINOv2 weights it 0.1 per global view.
pub(crate) fn koleo_loss(x: &Tensor) -> Result<Tensor> {
    const EPS: f64 = 1e-8;
    let b = x.dim(0)?;
    if b < 2 {
        bail!("KoLeo needs at least 2 rows, got {b}");
    }
    let unit = crate::model::layers::l2_normalise(x)?;
    let dots: Vec<Vec<f32>> = unit.matmul(&unit.t()?)?.detach().to_vec2()?;
    let nearest: Vec<u32> = dots
        .iter()
        .enumerate()
        .map(|(i, row)| {
            // First maximum, as torch.max; the row itself excluded (DINOv2 fills the diagonal with −1).
            let mut best = if i == 0 { 1 } else { 0 };
            for (j, &v) in row.iter().enumerate() {
                if j != i && v > row[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect();
    let idx = Tensor::from_vec(nearest, b, x.device())?;
    let neighbours = unit.index_select(&idx, 0)?;
    let distances = ((unit - neighbours)? + EPS)?
        .sqr()?
        .sum(D::Minus1)?
        .sqrt()?;
    (distances + EPS)?.log()?.mean_all()?.neg()
}

/// iBOT's masked-patch loss (DINOv2 `iBOTPatchLoss.forward_masked`): `student` [M, K] logits of
/// the masked patches of all global crops (the student saw them replaced by the mask token),
/// `targets` [M, K] the teacher's probabilities for the same patches (it saw them unmasked; rows
/// sum to 1), `weights` [M] = 1 / (masked patches of the row's crop), `crops` the number of
/// global crops, masked or not. Returns −(1/crops)·Σ_m w_m Σ_k t_mk·log softmax(s_m/τ_s)_k: the
/// mean over crops of each crop's mean cross-entropy over its masked patches, a crop without
/// masks counting 0. Errors on mismatched shapes or no crops.
pub(crate) fn ibot_patch_loss(
    student: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    student_temp: f64,
    crops: usize,
) -> Result<Tensor> {
    let (m, k) = student.dims2()?;
    if targets.dims() != [m, k] || weights.dims() != [m] || crops == 0 {
        bail!(
            "iBOT loss: student {:?}, targets {:?}, weights {:?}, {crops} crops",
            student.dims(),
            targets.dims(),
            weights.dims()
        );
    }
    let log_p = log_softmax_last(&(student / student_temp)?)?;
    let per_patch = (targets.detach() * log_p)?.sum(D::Minus1)?;
    (per_patch * weights)?.sum_all()?.neg()? / crops as f64
}

/// iBOT's masks for `crops` global crops of `patches` patches each, as DINOv2's
/// `collate_data_and_cast` draws them but with patches drawn uniformly instead of in blocks:
/// ⌊crops·probability⌋ crops are masked, the i-th of those n with a ratio drawn uniformly from
/// the i-th of n equal strata of `ratio` = [min, max], ⌊patches·ratio⌋ patches drawn without
/// replacement; the masks are then shuffled over the crops. Returns each crop's sorted masked
/// patch indices (empty for an unmasked crop).
pub(crate) fn ibot_masks(
    rng: &mut Rng,
    crops: usize,
    patches: usize,
    probability: f64,
    ratio: [f64; 2],
) -> Vec<Vec<usize>> {
    let masked = ((crops as f64 * probability).floor() as usize).min(crops);
    let [low, high] = ratio;
    let mut masks: Vec<Vec<usize>> = (0..crops)
        .map(|i| {
            if i >= masked {
                return Vec::new();
            }
            let (a, b) = (
                low + (high - low) * i as f64 / masked as f64,
                low + (high - low) * (i + 1) as f64 / masked as f64,
            );
            let r = a + (b - a) * rng.uniform();
            let count = ((patches as f64 * r).floor() as usize).min(patches);
            // A partial Fisher-Yates shuffle: the first `count` of a random permutation.
            let mut order: Vec<usize> = (0..patches).collect();
            for j in 0..count {
                let pick = j + rng.below(patches - j);
                order.swap(j, pick);
            }
            let mut chosen = order[..count].to_vec();
            chosen.sort_unstable();
            chosen
        })
        .collect();
    for i in (1..crops).rev() {
        let j = rng.below(i + 1);
        masks.swap(i, j);
    }
    masks
}

/// The masks of [`ibot_masks`] as the trainer uses them: per-patch flags [crops·patches] (1 =
/// masked, crop-major, the input of the masked forward pass), the masked patches' rows in the
/// crop-major [crops·patches] token matrix, and each row's weight 1 / (masked patches of its
/// crop) (DINOv2's `mask_indices_list` and `masks_weight`).
pub(crate) fn ibot_rows(masks: &[Vec<usize>], patches: usize) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let mut flags = vec![0f32; masks.len() * patches];
    let mut rows = Vec::new();
    let mut weights = Vec::new();
    for (i, m) in masks.iter().enumerate() {
        for &j in m {
            flags[i * patches + j] = 1.0;
            rows.push((i * patches + j) as u32);
            weights.push(1.0 / m.len() as f32);
        }
    }
    (flags, rows, weights)
}

/// c ← m·c + (1 − m)·mean(teacher logits over the batch of both global views).
pub(crate) fn update_center(center: &Tensor, teacher: &Tensor, momentum: f64) -> Result<Tensor> {
    let batch_center = teacher.mean_keepdim(0)?.detach();
    (center * momentum)? + (batch_center * (1.0 - momentum))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn loss_matches_direct_computation() {
        // Reference: the formula of DINOLoss.forward written out directly, in f64.
        // B = 1, K = 2, 3 crops. Terms: (t0, s1), (t0, s2), (t1, s0), (t1, s2).
        let dev = Device::Cpu;
        let student = Tensor::new(&[[0.1f32, 0.3], [0.5, -0.2], [0.0, 0.2]], &dev).unwrap();
        let teacher = Tensor::new(&[[0.2f32, -0.1], [0.4, 0.1]], &dev).unwrap();
        let center = Tensor::new(&[[0.05f32, 0.0]], &dev).unwrap();
        let out = dino_loss(&student, &teacher, &center, 0.1, 0.04, 1).unwrap();
        let got = out.loss.to_scalar::<f32>().unwrap() as f64;

        let softmax = |v: [f64; 2], t: f64| {
            let e = [(v[0] / t).exp(), (v[1] / t).exp()];
            [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
        };
        let s = [[0.1, 0.3], [0.5, -0.2], [0.0, 0.2]];
        let q = [
            softmax([0.2 - 0.05, -0.1], 0.04),
            softmax([0.4 - 0.05, 0.1], 0.04),
        ];
        let mut want = 0.0;
        for (iq, qq) in q.iter().enumerate() {
            for (v, sv) in s.iter().enumerate() {
                if v == iq {
                    continue;
                }
                let p = softmax(*sv, 0.1);
                want += -(qq[0] * p[0].ln() + qq[1] * p[1].ln());
            }
        }
        want /= 4.0;
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }

    #[test]
    fn loss_matches_the_pairwise_formula_for_a_batch_and_local_views() {
        // DINOLoss.forward's double loop written out in f64: B = 2, K = 3, 2 global + 2 local.
        let (b, k, crops) = (2usize, 3usize, 4usize);
        let mut rng = crate::rng::Rng::new(11);
        let student: Vec<f64> = (0..crops * b * k).map(|_| rng.normal()).collect();
        let teacher: Vec<f64> = (0..2 * b * k).map(|_| rng.normal()).collect();
        let center = [0.1, -0.2, 0.05];
        let (st, tt) = (0.1, 0.04);
        let softmax = |row: &[f64], shift: &[f64], t: f64| {
            let e: Vec<f64> = row
                .iter()
                .zip(shift)
                .map(|(v, c)| ((v - c) / t).exp())
                .collect();
            let z: f64 = e.iter().sum();
            e.into_iter().map(|v| v / z).collect::<Vec<_>>()
        };
        let mut want = 0.0;
        for iq in 0..2 {
            for v in (0..crops).filter(|&v| v != iq) {
                for i in 0..b {
                    let q = softmax(&teacher[(iq * b + i) * k..][..k], &center, tt);
                    let p = softmax(&student[(v * b + i) * k..][..k], &[0.0; 3], st);
                    want -= q.iter().zip(&p).map(|(q, p)| q * p.ln()).sum::<f64>() / b as f64;
                }
            }
        }
        want /= (2 * (crops - 1)) as f64;
        let dev = Device::Cpu;
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let student = Tensor::from_vec(f32s(&student), (crops * b, k), &dev).unwrap();
        let teacher = Tensor::from_vec(f32s(&teacher), (2 * b, k), &dev).unwrap();
        let center = Tensor::from_vec(f32s(&center), (1, k), &dev).unwrap();
        let got = dino_loss(&student, &teacher, &center, st, tt, b)
            .unwrap()
            .loss
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }

    /// DINOv2's `sinkhorn_knopp_teacher`, line by line in f64 (no max subtraction).
    fn sinkhorn_reference(t: &[Vec<f64>], temp: f64, iters: usize) -> Vec<Vec<f64>> {
        let (r, k) = (t.len(), t[0].len());
        // Q = exp(t / temp).t(): [K, R]
        let mut q: Vec<Vec<f64>> = (0..k)
            .map(|j| (0..r).map(|i| (t[i][j] / temp).exp()).collect())
            .collect();
        let total: f64 = q.iter().flatten().sum();
        q.iter_mut().flatten().for_each(|v| *v /= total);
        for _ in 0..iters {
            for row in q.iter_mut() {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v = *v / s / k as f64);
            }
            for i in 0..r {
                let s: f64 = (0..k).map(|j| q[j][i]).sum();
                (0..k).for_each(|j| q[j][i] = q[j][i] / s / r as f64);
            }
        }
        (0..r)
            .map(|i| (0..k).map(|j| q[j][i] * r as f64).collect())
            .collect()
    }

    #[test]
    fn sinkhorn_knopp_matches_dinov2() {
        let (r, k) = (6usize, 5usize);
        let mut rng = crate::rng::Rng::new(5);
        let t: Vec<Vec<f64>> = (0..r)
            .map(|_| (0..k).map(|_| rng.normal() * 0.3).collect())
            .collect();
        let want = sinkhorn_reference(&t, 0.07, 3);
        let flat: Vec<f32> = t.iter().flatten().map(|&v| v as f32).collect();
        let got: Vec<Vec<f32>> = sinkhorn_knopp(
            &Tensor::from_vec(flat, (r, k), &Device::Cpu).unwrap(),
            0.07,
            3,
        )
        .unwrap()
        .to_vec2()
        .unwrap();
        for i in 0..r {
            for j in 0..k {
                assert!(
                    (got[i][j] as f64 - want[i][j]).abs() < 1e-5,
                    "({i},{j}): {} vs {}",
                    got[i][j],
                    want[i][j]
                );
            }
            assert!(
                (got[i].iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "rows are distributions"
            );
        }
        // Balanced prototypes: many rounds bring every column's mass to R/K.
        let flat: Vec<f32> = t.iter().flatten().map(|&v| v as f32).collect();
        let many: Vec<Vec<f32>> = sinkhorn_knopp(
            &Tensor::from_vec(flat, (r, k), &Device::Cpu).unwrap(),
            0.07,
            200,
        )
        .unwrap()
        .to_vec2()
        .unwrap();
        for j in 0..k {
            let col: f32 = many.iter().map(|row| row[j]).sum();
            assert!(
                (col - r as f32 / k as f32).abs() < 1e-3,
                "column {j} has mass {col}"
            );
        }
    }

    #[test]
    fn dino_loss_with_centred_targets_equals_dino_loss() {
        let dev = Device::Cpu;
        let student =
            Tensor::new(&[[0.1f32, 0.3], [0.5, -0.2], [0.0, 0.2], [0.3, 0.1]], &dev).unwrap();
        let teacher = Tensor::new(&[[0.2f32, -0.1], [0.4, 0.1]], &dev).unwrap();
        let center = Tensor::new(&[[0.05f32, 0.0]], &dev).unwrap();
        let a = dino_loss(&student, &teacher, &center, 0.1, 0.04, 1).unwrap();
        let q = softmax_last(&(teacher.broadcast_sub(&center).unwrap() / 0.04).unwrap()).unwrap();
        let b = dino_loss_with_targets(&student, &q, 0.1, 1).unwrap();
        assert_eq!(
            a.loss.to_scalar::<f32>().unwrap(),
            b.loss.to_scalar::<f32>().unwrap()
        );
    }

    /// KoLeoLoss.forward in f64: normalise, nearest other row by dot product, −mean log(‖x − y + ε‖ + ε).
    fn koleo_reference(x: &[Vec<f64>]) -> f64 {
        let eps = 1e-8;
        let unit: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                let n = r.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                r.iter().map(|v| v / n).collect()
            })
            .collect();
        let b = unit.len();
        let mut total = 0.0;
        for i in 0..b {
            let dot = |j: usize| {
                if j == i {
                    -1.0
                } else {
                    unit[i]
                        .iter()
                        .zip(&unit[j])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                }
            };
            let nn = (0..b).fold(0, |best, j| if dot(j) > dot(best) { j } else { best });
            let d = unit[i]
                .iter()
                .zip(&unit[nn])
                .map(|(a, b)| (a - b + eps).powi(2))
                .sum::<f64>()
                .sqrt();
            total -= (d + eps).ln();
        }
        total / b as f64
    }

    #[test]
    fn ibot_loss_matches_dinov2() {
        // Reference: tools/ibot_loss_reference.py (DINOv2's iBOTPatchLoss in numpy, f64).
        let dev = Device::Cpu;
        let student = Tensor::new(
            &[[0.3f32, -0.2, 0.5], [0.1, 0.4, -0.3], [-0.6, 0.2, 0.0]],
            &dev,
        )
        .unwrap();
        let teacher = Tensor::new(
            &[[0.2f32, 0.1, -0.4], [0.5, -0.1, 0.3], [0.0, 0.3, 0.1]],
            &dev,
        )
        .unwrap();
        let center = Tensor::new(&[[0.05f32, -0.02, 0.01]], &dev).unwrap();
        let targets =
            softmax_last(&(teacher.broadcast_sub(&center).unwrap() / 0.04).unwrap()).unwrap();
        let weights = Tensor::new(&[0.5f32, 0.5, 1.0], &dev).unwrap();
        let loss = ibot_patch_loss(&student, &targets, &weights, 0.1, 3)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((loss - 1.1869832732589662).abs() < 1e-5, "{loss}");
        // Shapes that do not pair up are refused.
        assert!(ibot_patch_loss(&student, &targets, &weights, 0.1, 0).is_err());
        let two = weights.narrow(0, 0, 2).unwrap();
        assert!(ibot_patch_loss(&student, &targets, &two, 0.1, 3).is_err());
    }

    #[test]
    fn ibot_rows_weight_each_crop_by_its_masked_patches() {
        // Three crops of 4 patches: crop 0 masks patches 1 and 3, crop 1 none, crop 2 patch 0
        // (the case of tools/ibot_loss_reference.py).
        let (flags, rows, weights) = ibot_rows(&[vec![1, 3], vec![], vec![0]], 4);
        assert_eq!(flags, [0., 1., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0.]);
        assert_eq!(rows, [1, 3, 8]);
        assert_eq!(weights, [0.5, 0.5, 1.0]);
        let (flags, rows, weights) = ibot_rows(&[vec![], vec![]], 3);
        assert_eq!((flags, rows.len(), weights.len()), (vec![0.0; 6], 0, 0));
    }

    #[test]
    fn ibot_masks_follow_dinov2s_strata() {
        let mut rng = Rng::new(11);
        for _ in 0..20 {
            let masks = ibot_masks(&mut rng, 8, 64, 0.5, [0.1, 0.5]);
            assert_eq!(masks.len(), 8);
            // ⌊8 · 0.5⌋ = 4 crops masked, one per stratum of [0.1, 0.5]: 6–12, 12–19, 19–25 and
            // 25–32 of 64 patches.
            let mut counts: Vec<usize> = masks.iter().map(Vec::len).filter(|&n| n > 0).collect();
            counts.sort_unstable();
            assert_eq!(counts.len(), 4, "{masks:?}");
            for (n, (low, high)) in counts.iter().zip([(6, 12), (12, 19), (19, 25), (25, 32)]) {
                assert!((low..=high).contains(n), "{counts:?}");
            }
            for m in &masks {
                assert!(m.windows(2).all(|w| w[0] < w[1]) && m.iter().all(|&j| j < 64));
            }
        }
        // The same stream gives the same masks; none at probability 0, all at 1.
        assert_eq!(
            ibot_masks(&mut Rng::new(3), 4, 16, 0.5, [0.2, 0.4]),
            ibot_masks(&mut Rng::new(3), 4, 16, 0.5, [0.2, 0.4])
        );
        // The masked crops are shuffled over the batch, not always the first ones.
        let masked_crops: std::collections::BTreeSet<Vec<bool>> = (0..20)
            .map(|_| {
                ibot_masks(&mut rng, 8, 64, 0.5, [0.1, 0.5])
                    .iter()
                    .map(|m| !m.is_empty())
                    .collect()
            })
            .collect();
        assert!(masked_crops.len() > 5, "{masked_crops:?}");
        assert!(
            ibot_masks(&mut rng, 4, 16, 0.0, [0.1, 0.5])
                .iter()
                .all(Vec::is_empty)
        );
        assert!(
            ibot_masks(&mut rng, 4, 16, 1.0, [0.5, 0.5])
                .iter()
                .all(|m| m.len() == 8)
        );
    }

    #[test]
    fn koleo_matches_dinov2_in_value_and_gradient() {
        let (b, d) = (7usize, 5usize);
        let mut rng = crate::rng::Rng::new(9);
        let x: Vec<Vec<f64>> = (0..b)
            .map(|_| (0..d).map(|_| rng.normal()).collect())
            .collect();
        let var = candle_core::Var::from_vec(
            x.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(),
            (b, d),
            &Device::Cpu,
        )
        .unwrap();
        let loss = koleo_loss(var.as_tensor()).unwrap();
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        let want = koleo_reference(&x);
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
        // Central differences of the f64 reference against candle's gradient.
        let grad: Vec<Vec<f32>> = loss
            .backward()
            .unwrap()
            .get(&var)
            .unwrap()
            .to_vec2()
            .unwrap();
        let h = 1e-6;
        for i in 0..b {
            for j in 0..d {
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i][j] += h;
                down[i][j] -= h;
                let numeric = (koleo_reference(&up) - koleo_reference(&down)) / (2.0 * h);
                assert!(
                    (grad[i][j] as f64 - numeric).abs() < 1e-3 * numeric.abs().max(1.0),
                    "d/dx[{i}][{j}]: {} vs {numeric}",
                    grad[i][j]
                );
            }
        }
    }

    #[test]
    fn koleo_is_lower_for_a_spread_batch() {
        let dev = Device::Cpu;
        let cone = Tensor::new(
            &[
                [1.0f32, 0.01, 0.0],
                [1.0, 0.0, 0.01],
                [1.0, -0.01, 0.0],
                [1.0, 0.0, -0.01],
            ],
            &dev,
        )
        .unwrap();
        let spread = Tensor::new(
            &[
                [1.0f32, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [-1.0, 0.0, 0.0],
                [0.0, -1.0, 0.0],
            ],
            &dev,
        )
        .unwrap();
        let (c, s) = (
            koleo_loss(&cone).unwrap().to_scalar::<f32>().unwrap(),
            koleo_loss(&spread).unwrap().to_scalar::<f32>().unwrap(),
        );
        assert!(s < c, "spread {s} should be below cone {c}");
    }

    #[test]
    fn center_is_an_ema_of_the_teacher_mean() {
        let dev = Device::Cpu;
        let c = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let t = Tensor::new(&[[0.0f32, 2.0], [2.0, 2.0]], &dev).unwrap();
        let c2 = update_center(&c, &t, 0.9)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!((c2[0][0] - 1.0).abs() < 1e-6 && (c2[0][1] - 0.2).abs() < 1e-6);
    }
}
