//! Bayesian Personalized Ranking (Rendle et al. 2009): SGD on sampled
//! (user, positive, negative) triples, with an item bias. Single-threaded so
//! that results are identical for a seed regardless of the machine.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::als::Factors;
use crate::csr::Csr;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct BprParams {
    pub factors: usize,
    pub iterations: usize,
    pub learning_rate: f32,
    pub regularization: f32,
    pub seed: u64,
}

impl Default for BprParams {
    fn default() -> Self {
        BprParams { factors: 64, iterations: 100, learning_rate: 0.01, regularization: 0.01, seed: 42 }
    }
}

impl BprParams {
    pub fn check(self) -> Result<Self> {
        if self.factors == 0 || self.factors > 4096 {
            return Err(Error::Param(format!("factors must be in 1..=4096, got {}", self.factors)));
        }
        if self.iterations == 0 {
            return Err(Error::Param("iterations must be at least 1".into()));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::Param(format!("learning_rate must be > 0, got {}", self.learning_rate)));
        }
        if !(self.regularization >= 0.0 && self.regularization.is_finite()) {
            return Err(Error::Param(format!("regularization must be >= 0, got {}", self.regularization)));
        }
        Ok(self)
    }
}

/// Trains; the returned factors have `factors + 1` columns: the users' last
/// column is 1 and the items' last column their bias, so a dot product scores.
/// `on_epoch(epoch, fraction_correctly_ranked)` reports progress.
pub fn train(user_items: &Csr, params: BprParams, mut on_epoch: impl FnMut(usize, f64)) -> Result<Factors> {
    let params = params.check()?;
    let f = params.factors + 1;
    let (n_users, n_items) = (user_items.n_rows, user_items.n_cols);
    if n_items < 2 || user_items.nnz() == 0 {
        return Err(Error::Data("BPR needs at least two items and one interaction".into()));
    }
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut users: Vec<f32> = (0..n_users * f).map(|_| (rng.random::<f32>() - 0.5) / params.factors as f32).collect();
    let mut items: Vec<f32> = (0..n_items * f).map(|_| (rng.random::<f32>() - 0.5) / params.factors as f32).collect();
    for u in 0..n_users {
        users[u * f + f - 1] = 1.0;
    }
    for i in 0..n_items {
        items[i * f + f - 1] = 0.0;
    }
    // Row of each stored interaction, to sample positives uniformly.
    let mut row_of = Vec::with_capacity(user_items.nnz());
    for u in 0..n_users {
        row_of.extend(std::iter::repeat_n(u as u32, user_items.indptr[u + 1] - user_items.indptr[u]));
    }
    let (lr, reg) = (params.learning_rate, params.regularization);
    for epoch in 0..params.iterations {
        let mut correct = 0usize;
        let mut taken = 0usize;
        for _ in 0..user_items.nnz() {
            let idx = rng.random_range(0..user_items.nnz());
            let u = row_of[idx] as usize;
            let i = user_items.indices[idx] as usize;
            let (liked, _) = user_items.row(u);
            if liked.len() >= n_items {
                continue;
            }
            let j = loop {
                let j = rng.random_range(0..n_items as u32);
                if liked.binary_search(&j).is_err() {
                    break j as usize;
                }
            };
            taken += 1;
            let (xu, (yi, yj)) = (&mut users[u * f..(u + 1) * f], pair_mut(&mut items, i, j, f));
            let mut z = 0f32;
            for k in 0..f {
                z += xu[k] * (yi[k] - yj[k]);
            }
            if z > 0.0 {
                correct += 1;
            }
            let g = 1.0 / (1.0 + z.exp());
            for k in 0..f - 1 {
                let (u_k, i_k, j_k) = (xu[k], yi[k], yj[k]);
                xu[k] += lr * (g * (i_k - j_k) - reg * u_k);
                yi[k] += lr * (g * u_k - reg * i_k);
                yj[k] += lr * (-g * u_k - reg * j_k);
            }
            // Bias: the user's constant column stays 1.
            yi[f - 1] += lr * (g - reg * yi[f - 1]);
            yj[f - 1] += lr * (-g - reg * yj[f - 1]);
        }
        on_epoch(epoch, correct as f64 / taken.max(1) as f64);
    }
    Ok(Factors { factors: f, users, items })
}

/// Two distinct rows of a row-major matrix, mutably.
fn pair_mut(m: &mut [f32], i: usize, j: usize, f: usize) -> (&mut [f32], &mut [f32]) {
    if i < j {
        let (a, b) = m.split_at_mut(j * f);
        (&mut a[i * f..(i + 1) * f], &mut b[..f])
    } else {
        let (a, b) = m.split_at_mut(i * f);
        let (bi, _) = b.split_at_mut(f);
        (bi, &mut a[j * f..(j + 1) * f])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_to_rank_and_is_deterministic() {
        let mut t = Vec::new();
        for u in 0..30u32 {
            let base = if u < 15 { 0 } else { 10 };
            for i in 0..10u32 {
                if (u + i) % 4 != 0 {
                    t.push((u, base + i, 1.0));
                }
            }
        }
        let m = Csr::from_triples(30, 20, t);
        let p = BprParams { factors: 8, iterations: 60, learning_rate: 0.05, ..Default::default() };
        let mut acc = Vec::new();
        let a = train(&m, p, |_, c| acc.push(c)).unwrap();
        assert!(acc.last().unwrap() > &0.9, "{acc:?}");
        assert!(acc.last().unwrap() > &acc[0]);
        let b = train(&m, p, |_, _| {}).unwrap();
        assert_eq!(a, b);
        assert!(BprParams { learning_rate: 0.0, ..Default::default() }.check().is_err());
    }
}
