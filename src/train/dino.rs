//! The DINO loss (Caron et al. 2021, `DINOLoss` in facebookresearch/dino): cross-entropy between
//! the centred, sharpened teacher distribution of each global view and the student's
//! distribution of every other view, averaged over the (view, view) pairs; and the centre's EMA.

use candle_core::{D, Result, Tensor, bail};

use crate::model::layers::{log_softmax_last, softmax_last};

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
        bail!("DINO loss: {n_crops} student views and {} teacher rows for batch {batch}: two global views are needed", teacher.dim(0)?);
    }
    let student = (student / student_temp)?;
    let teacher_probs = softmax_last(&(teacher.broadcast_sub(center)? / teacher_temp)?)?.detach();
    let entropy = (teacher_probs.clamp(1e-12, 1.0)?.log()? * &teacher_probs)?.sum(D::Minus1)?.neg()?.mean_all()?.to_scalar::<f32>()? as f64;
    let log_p = log_softmax_last(&student)?;
    // Student view v meets every teacher view except itself, so the sum over the (teacher view,
    // student view) pairs is Σ_v (Σ_{t≠v} q_t)·log p_v: one weighted sum, where a term per pair
    // cost the backward pass a zero-filled [crops·B, K] gradient and an add for each of them.
    let (q0, q1) = (teacher_probs.narrow(0, 0, batch)?, teacher_probs.narrow(0, batch, batch)?);
    let both = (&q0 + &q1)?;
    let mut weights = vec![q1, q0];
    weights.extend(std::iter::repeat_n(both, n_crops.saturating_sub(2)));
    let weights = Tensor::cat(&weights, 0)?;
    let pairs = 2 * (n_crops - 1);
    let loss = ((weights * log_p)?.sum_all()?.neg()? / (batch * pairs) as f64)?;
    Ok(DinoLossOutput { loss, teacher_entropy: entropy })
}

/// c ← m·c + (1 − m)·mean(teacher logits over the batch of both global views).
pub fn update_center(center: &Tensor, teacher: &Tensor, momentum: f64) -> Result<Tensor> {
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
        let q = [softmax([0.2 - 0.05, -0.1], 0.04), softmax([0.4 - 0.05, 0.1], 0.04)];
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
        let mut rng = crate::generate::rng::Rng::new(11);
        let student: Vec<f64> = (0..crops * b * k).map(|_| rng.normal()).collect();
        let teacher: Vec<f64> = (0..2 * b * k).map(|_| rng.normal()).collect();
        let center = [0.1, -0.2, 0.05];
        let (st, tt) = (0.1, 0.04);
        let softmax = |row: &[f64], shift: &[f64], t: f64| {
            let e: Vec<f64> = row.iter().zip(shift).map(|(v, c)| ((v - c) / t).exp()).collect();
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
        let got = dino_loss(&student, &teacher, &center, st, tt, b).unwrap().loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "got {got}, want {want}");
    }

    #[test]
    fn center_is_an_ema_of_the_teacher_mean() {
        let dev = Device::Cpu;
        let c = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let t = Tensor::new(&[[0.0f32, 2.0], [2.0, 2.0]], &dev).unwrap();
        let c2 = update_center(&c, &t, 0.9).unwrap().to_vec2::<f32>().unwrap();
        assert!((c2[0][0] - 1.0).abs() < 1e-6 && (c2[0][1] - 0.2).abs() < 1e-6);
    }
}
