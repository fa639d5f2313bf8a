//! AdamW (Loshchilov & Hutter; PyTorch's `torch.optim.AdamW` update) with its state exposed so
//! checkpoints can store and resume it, per-group weight decay, and DINO's per-tensor clipping.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor, Var};

pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Updates applied so far to each parameter (for bias correction; a parameter frozen for a
    /// while, like DINO's last layer, starts its count when it starts moving, as in PyTorch).
    pub t: BTreeMap<String, u64>,
    /// First and second moments by parameter name.
    pub m: BTreeMap<String, Tensor>,
    pub v: BTreeMap<String, Tensor>,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: BTreeMap::new(),
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }
}

impl AdamW {
    /// One update of `params` with their gradients. `decay(name)` says whether weight decay
    /// applies (DINO: not to biases and 1-D parameters).
    pub fn step(
        &mut self,
        params: &[(String, Var, Tensor)],
        lr: f64,
        weight_decay: f64,
        decay: impl Fn(&str, &Var) -> bool,
    ) -> Result<()> {
        for (name, var, grad) in params {
            let t = self.t.get(name).copied().unwrap_or(0) + 1;
            let bc1 = 1.0 - self.beta1.powi(t as i32);
            let bc2 = 1.0 - self.beta2.powi(t as i32);
            let m_prev = match self.m.get(name) {
                Some(m) => m.clone(),
                None => grad.zeros_like()?,
            };
            let v_prev = match self.v.get(name) {
                Some(v) => v.clone(),
                None => grad.zeros_like()?,
            };
            // Detached: a moment must never hold an op graph, or every step's graph would stay
            // reachable through the chain of moments.
            let m = ((m_prev * self.beta1)? + (grad * (1.0 - self.beta1))?)?.detach();
            let v = ((v_prev * self.beta2)? + (grad.sqr()? * (1.0 - self.beta2))?)?.detach();
            let theta = var.as_tensor();
            let theta = if decay(name, var) {
                (theta * (1.0 - lr * weight_decay))?
            } else {
                theta.clone()
            };
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + self.eps)?)?;
            var.set(&(theta - (update * lr)?)?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
            self.t.insert(name.clone(), t);
        }
        Ok(())
    }
}

/// DINO's `clip_gradients`: each gradient tensor whose own L2 norm exceeds `clip` is scaled by
/// clip / (norm + 1e-6). Returns the norms before clipping.
pub(crate) fn clip_per_tensor(grads: &mut [(String, Var, Tensor)], clip: f64) -> Result<Vec<f64>> {
    let mut norms = Vec::with_capacity(grads.len());
    for (_, _, g) in grads.iter_mut() {
        let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
        if clip > 0.0 && norm > clip {
            *g = (&*g * (clip / (norm + 1e-6)))?;
        }
        norms.push(norm);
    }
    Ok(norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_pytorch_adamw_on_a_scalar() {
        // torch.optim.AdamW's algorithm by hand: p = 1.0, lr = 0.1, weight_decay = 0.5,
        // grads 2.0 then -1.0:
        // step 1: p *= 1 - 0.1*0.5 -> 0.95; m=0.2, v=0.004; mhat=2, vhat=4 -> p -= 0.1*2/(2+1e-8) -> 0.85
        // step 2: p *= 0.95 -> 0.8075; m=0.18-0.1=0.08, v=0.003996+0.001=0.004996
        //         mhat=0.08/0.19=0.421053, vhat=0.004996/0.001999=2.499250 -> sqrt=1.580902
        //         p -= 0.1*0.421053/1.580902 = 0.026634 -> 0.780866
        let p = Var::from_tensor(&Tensor::new(&[1.0f32], &Device::Cpu).unwrap()).unwrap();
        let mut opt = AdamW::default();
        for (g, want) in [(2.0f32, 0.85f32), (-1.0, 0.780_866)] {
            let grad = Tensor::new(&[g], &Device::Cpu).unwrap();
            opt.step(&[("p".into(), p.clone(), grad)], 0.1, 0.5, |_, _| true)
                .unwrap();
            let got = p.as_tensor().to_vec1::<f32>().unwrap()[0];
            assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
        }
    }

    #[test]
    fn moments_never_hold_an_op_graph() {
        // A gradient still attached to a graph (candle leaves variables' gradients attached):
        // the moments must not keep it, or every step's graph stays alive (a leak seen here).
        let p = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let attached = (p.as_tensor() * 3.0).unwrap();
        assert!(attached.track_op());
        let mut opt = AdamW::default();
        opt.step(&[("p".into(), p.clone(), attached)], 0.1, 0.0, |_, _| true)
            .unwrap();
        assert!(!opt.m["p"].track_op() && !opt.v["p"].track_op());
    }

    #[test]
    fn clipping_is_per_tensor() {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::new(&[0.0f32, 0.0], &dev).unwrap()).unwrap();
        let mut grads = vec![
            (
                "a".to_string(),
                a.clone(),
                Tensor::new(&[3.0f32, 4.0], &dev).unwrap(),
            ),
            (
                "b".to_string(),
                a.clone(),
                Tensor::new(&[0.3f32, 0.4], &dev).unwrap(),
            ),
        ];
        let norms = clip_per_tensor(&mut grads, 1.0).unwrap();
        assert!((norms[0] - 5.0).abs() < 1e-6);
        let g0 = grads[0].2.to_vec1::<f32>().unwrap();
        assert!((g0[0] - 0.6).abs() < 1e-5 && (g0[1] - 0.8).abs() < 1e-5);
        assert_eq!(grads[1].2.to_vec1::<f32>().unwrap(), vec![0.3, 0.4]);
    }
}
