//! Bayesian Personalized Ranking (Rendle et al. 2009): SGD on sampled
//! (user, positive, negative) triples, with an item bias.
//!
//! Parallel and deterministic: users are split into one block per thread
//! (contiguous rows with about equal interactions), and each thread draws
//! its block's share of an epoch's samples from its own random stream. A
//! user's factors belong to one thread; the item factors are copied to each
//! thread at the start of a round and the threads' changes are summed back
//! at its end (`ROUNDS_PER_EPOCH` times an epoch), so no memory is shared
//! while threads write and the result depends only on the seed and the
//! number of threads, never on timing. Hogwild-style lock-free updates (what
//! `implicit` does) are as fast but vary from run to run.
//!
//! A step is bound by memory, not arithmetic (a random interaction, its
//! user's list and factors, two items' factors): each thread draws its
//! positives a batch at a time and gathers them in one pass, so those cache
//! misses overlap, and its loops are compiled for AVX2 through pulp.

use rand::rngs::{StdRng, Xoshiro256PlusPlus};
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::als::Factors;
use crate::csr::Csr;
use crate::{Error, Proceed, Result};

/// Item factors are merged this many times an epoch.
const ROUNDS_PER_EPOCH: usize = 2;

/// Positive samples drawn at a time (see [`sgd_block`]).
const BATCH: usize = 4096;

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

/// `sum(x * (a - b))`, in eight lanes so that it vectorizes (the lanes fix
/// the order of the sum, whatever the register width).
#[inline(always)]
fn dot_diff(x: &[f32], a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = x.len() / 8 * 8;
    for ((x, a), b) in x[..chunks].chunks_exact(8).zip(a[..chunks].chunks_exact(8)).zip(b[..chunks].chunks_exact(8)) {
        for k in 0..8 {
            lanes[k] += x[k] * (a[k] - b[k]);
        }
    }
    let tail: f32 = (chunks..x.len()).map(|k| x[k] * (a[k] - b[k])).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Row boundaries of `blocks` contiguous row ranges with about equal nonzeros.
fn blocks_by_nnz(m: &Csr, blocks: usize) -> Vec<usize> {
    let nnz = m.nnz();
    let mut bounds = vec![0];
    for b in 1..blocks {
        let target = nnz * b / blocks;
        let row = m.indptr.partition_point(|&p| p < target).min(m.n_rows);
        bounds.push(row.max(*bounds.last().unwrap_or(&0)));
    }
    bounds.push(m.n_rows);
    bounds
}

/// What one thread needs for a round besides its own factors.
#[derive(Clone, Copy)]
struct Round<'a> {
    m: &'a Csr,
    /// Every stored interaction as (user, item), in the matrix's order: one
    /// memory access per positive sample instead of two.
    pairs: &'a [(u32, u32)],
    f: usize,
    lr: f32,
    reg: f32,
}

/// [`sgd_block`] compiled for the CPU's SIMD (AVX2 where it has it): its
/// loops are plain element-wise code that the compiler vectorizes, so the
/// order of every sum, and thus the result, is the same at any width.
struct SgdBlock<'a, 'b> {
    round: &'a Round<'b>,
    rows: std::ops::Range<usize>,
    users: &'a mut [f32],
    items: &'a mut [f32],
    samples: usize,
    rng: &'a mut Xoshiro256PlusPlus,
}

impl pulp::WithSimd for SgdBlock<'_, '_> {
    type Output = (usize, usize);
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> (usize, usize) {
        sgd_block(self.round, self.rows, self.users, self.items, self.samples, self.rng)
    }
}

/// One thread's work in a round: `samples` SGD steps on the users `rows`
/// (whose factors are `users`, starting at row `rows.start`) against this
/// thread's item factors. Returns (correctly ranked, taken).
#[inline(always)]
fn sgd_block(
    r: &Round<'_>,
    rows: std::ops::Range<usize>,
    users: &mut [f32],
    items: &mut [f32],
    samples: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> (usize, usize) {
    let (lo, hi) = (r.m.indptr[rows.start], r.m.indptr[rows.end]);
    let (mut correct, mut taken) = (0usize, 0usize);
    if hi == lo {
        return (0, 0);
    }
    // Positives are drawn a batch at a time and their pairs gathered in one
    // pass: the loads are independent, so their cache misses overlap instead
    // of each step waiting on its own in turn.
    let mut batch = Vec::with_capacity(BATCH.min(samples));
    for start in (0..samples).step_by(BATCH) {
        batch.clear();
        batch.extend((start..(start + BATCH).min(samples)).map(|_| r.pairs[rng.random_range(lo..hi)]));
        for &pair in &batch {
            if let Some(right) = sgd_step(r, rows.start, users, items, pair, rng) {
                taken += 1;
                correct += right as usize;
            }
        }
    }
    (correct, taken)
}

/// One SGD step on the positive pair `(u, i)` (user `u`'s factors at row
/// `u - first_row` of `users`) and a negative item drawn from `rng`. Whether
/// the pair was ranked correctly; `None` for a user who liked every item.
#[inline(always)]
fn sgd_step(
    r: &Round<'_>,
    first_row: usize,
    users: &mut [f32],
    items: &mut [f32],
    (u, i): (u32, u32),
    rng: &mut Xoshiro256PlusPlus,
) -> Option<bool> {
    let Round { m, f, lr, reg, .. } = *r;
    let (u, i) = (u as usize, i as usize);
    let (liked, _) = m.row(u);
    if liked.len() >= m.n_cols {
        return None;
    }
    let j = loop {
        let j = rng.random_range(0..m.n_cols as u32);
        if liked.binary_search(&j).is_err() {
            break j as usize;
        }
    };
    let at = (u - first_row) * f;
    let xu = &mut users[at..at + f];
    let (yi, yj) = pair_mut(items, i, j, f);
    let z = dot_diff(xu, yi, yj);
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
    Some(z > 0.0)
}

/// Trains on the current rayon pool's threads; the returned factors have
/// `factors + 1` columns: the users' last column is 1 and the items' last
/// column their bias, so a dot product scores.
/// `on_epoch(epoch, fraction_correctly_ranked)` reports progress and may stop
/// training (see [`crate::Proceed`]).
pub fn train<R: Proceed>(
    user_items: &Csr,
    params: BprParams,
    mut on_epoch: impl FnMut(usize, f64) -> R,
) -> Result<Factors> {
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
    let mut pairs = Vec::with_capacity(user_items.nnz());
    for u in 0..n_users {
        let (items, _) = user_items.row(u);
        pairs.extend(items.iter().map(|&i| (u as u32, i)));
    }
    let threads = rayon::current_num_threads().clamp(1, n_users.max(1));
    let bounds = blocks_by_nnz(user_items, threads);
    let mut copies: Vec<Vec<f32>> = vec![Vec::new(); threads.saturating_sub(1)];
    let mut start = Vec::new();
    let round_data = Round { m: user_items, pairs: &pairs, f, lr: params.learning_rate, reg: params.regularization };
    for epoch in 0..params.iterations {
        let (mut correct, mut taken) = (0usize, 0usize);
        for round in 0..ROUNDS_PER_EPOCH {
            // Split the user factors into the threads' blocks.
            let mut user_blocks = Vec::with_capacity(threads);
            let mut rest: &mut [f32] = &mut users;
            for t in 0..threads {
                let (block, tail) = rest.split_at_mut((bounds[t + 1] - bounds[t]) * f);
                user_blocks.push(block);
                rest = tail;
            }
            for copy in copies.iter_mut() {
                copy.clear();
                copy.extend_from_slice(&items);
            }
            if !copies.is_empty() {
                start.clear();
                start.extend_from_slice(&items);
            }
            // Thread 0 works on `items` itself; the others on their copies.
            let mut item_views: Vec<&mut [f32]> = vec![&mut items];
            item_views.extend(copies.iter_mut().map(|c| c.as_mut_slice()));
            let counts: Vec<(usize, usize)> = user_blocks
                .into_par_iter()
                .zip(item_views)
                .enumerate()
                .map(|(t, (users, items))| {
                    let rows = bounds[t]..bounds[t + 1];
                    let block_nnz = user_items.indptr[rows.end] - user_items.indptr[rows.start];
                    // This round's share of an epoch's samples of the block.
                    let samples = block_nnz * (round + 1) / ROUNDS_PER_EPOCH - block_nnz * round / ROUNDS_PER_EPOCH;
                    let stream = ((epoch * ROUNDS_PER_EPOCH + round) * threads + t) as u64 + 1;
                    let mut rng =
                        Xoshiro256PlusPlus::seed_from_u64(params.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    pulp::Arch::new().dispatch(SgdBlock {
                        round: &round_data,
                        rows,
                        users,
                        items,
                        samples,
                        rng: &mut rng,
                    })
                })
                .collect();
            // Sum every thread's change to the items.
            if !copies.is_empty() {
                items.par_chunks_mut(f * 256).enumerate().for_each(|(c, out)| {
                    let at = c * f * 256;
                    for (k, v) in out.iter_mut().enumerate() {
                        let s = start[at + k];
                        *v += copies.iter().map(|copy| copy[at + k] - s).sum::<f32>();
                    }
                });
            }
            for (c, t) in counts {
                correct += c;
                taken += t;
            }
        }
        if on_epoch(epoch, correct as f64 / taken.max(1) as f64).stop() {
            return Err(Error::Cancelled);
        }
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
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for pool in [&one, &two] {
            let mut acc = Vec::new();
            pool.install(|| train(&m, p, |_, c| acc.push(c))).unwrap();
            assert!(acc.last().unwrap() > &0.9, "{acc:?}");
            assert!(acc.last().unwrap() > &acc[0]);
        }
        // The same factors for the same seed and threads, whatever the timing.
        for pool in [&one, &two] {
            let a = pool.install(|| train(&m, p, |_, _| {})).unwrap();
            let b = pool.install(|| train(&m, p, |_, _| {})).unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(blocks_by_nnz(&m, 2), vec![0, 15, 30]);
        assert!(BprParams { learning_rate: 0.0, ..Default::default() }.check().is_err());
    }
}
