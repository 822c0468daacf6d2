//! AdamW and the EMA, written out so their state can be saved and resumed exactly.

use tch::{Kind, Tensor};

/// Decoupled weight decay Adam (Loshchilov & Hutter), as torch.optim.AdamW with eps 1e-8.
#[derive(Debug)]
pub struct AdamW {
    pub params: Vec<(String, Tensor)>,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub steps: i64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
}

impl AdamW {
    /// `params`: the trainable tensors, by name, in a fixed order.
    pub fn new(params: Vec<(String, Tensor)>, beta1: f64, beta2: f64, weight_decay: f64) -> Self {
        let zeros = |params: &[(String, Tensor)]| params.iter().map(|(_, p)| p.zeros_like()).collect();
        Self {
            m: zeros(&params),
            v: zeros(&params),
            params,
            steps: 0,
            beta1,
            beta2,
            weight_decay,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let correction1 = 1.0 - self.beta1.powi(self.steps as i32);
        let correction2 = 1.0 - self.beta2.powi(self.steps as i32);
        tch::no_grad(|| {
            for (((_, p), m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(self.beta1).g_add_(&(&g * (1.0 - self.beta1)));
                let _ = v
                    .g_mul_scalar_(self.beta2)
                    .g_add_(&(g.square() * (1.0 - self.beta2)));
                let denom = (&*v / correction2).sqrt() + 1e-8;
                let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
                let _ = p.g_sub_(&((&*m / correction1) / denom * lr));
            }
        });
    }

    /// The moments and step counter as named tensors, for train_state.safetensors.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len() + 1);
        for ((name, _), (m, v)) in self.params.iter().zip(self.m.iter().zip(&self.v)) {
            out.push((format!("adam_m.{name}"), m.shallow_clone()));
            out.push((format!("adam_v.{name}"), v.shallow_clone()));
        }
        out.push(("adam_steps".into(), Tensor::from_slice(&[self.steps])));
        out
    }

    /// Restores what `state` saved; every tensor must be there with the right shape.
    pub fn load_state(&mut self, state: &super::checkpoint::NamedTensors) -> anyhow::Result<()> {
        tch::no_grad(|| -> anyhow::Result<()> {
            for ((name, _), (m, v)) in self.params.iter().zip(self.m.iter_mut().zip(&mut self.v)) {
                m.copy_(&state.take_like(&format!("adam_m.{name}"), m)?);
                v.copy_(&state.take_like(&format!("adam_v.{name}"), v)?);
            }
            Ok(())
        })?;
        self.steps = state.get("adam_steps")?.to_kind(Kind::Int64).int64_value(&[0]);
        Ok(())
    }
}

/// θ⁻ ← decay·θ⁻ + (1 − decay)·θ, pairing tensors by position.
pub fn ema_update(ema: &mut [(String, Tensor)], params: &[(String, Tensor)], decay: f64) {
    tch::no_grad(|| {
        for ((_, e), (_, p)) in ema.iter_mut().zip(params) {
            let _ = e.g_mul_scalar_(decay).g_add_(&(p * (1.0 - decay)));
        }
    });
}
