//! Bayesian Personalized Ranking (Rendle et al. 2009): SGD on sampled
//! (user, positive, negative) triples, with an item bias.
//!
//! Parallel and deterministic: users are split into one block per thread
//! (contiguous rows with about equal interactions), and each thread draws
//! its block's share of an epoch's samples from its own random stream. A
//! user's factors belong to one thread; thread 0 works on the item factors
//! themselves and every other thread on a copy of them, and at the end of a
//! round (`ROUNDS_PER_EPOCH` times an epoch) one parallel pass adds the
//! copies' changes to the items and sets every copy to the result for the
//! next round, so no memory is shared while threads write and the result
//! depends only on the seed and the number of threads, never on timing.
//! Hogwild-style lock-free updates (what `implicit` does) are as fast but
//! vary from run to run.
//!
//! A step is bound by memory, not arithmetic (a random interaction, its
//! user's list and factors, two items' factors): each thread draws its
//! positives a batch at a time and gathers them in one pass, so those cache
//! misses overlap; whether a user liked a drawn negative is one bit of a
//! table (one load) where the table fits in 64 MiB, a binary search in the
//! user's row otherwise; and its loops are compiled for AVX2 through pulp.

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

/// Bytes a bit-per-(user, item) table of who liked what may take; larger data
/// sets test membership by binary search in the user's row instead.
const LIKED_BITS_BUDGET: usize = 64 << 20;

/// Which items each user liked, for the negative draw's test.
enum Liked<'a> {
    /// Bit `j` of row `u` (`words` u64 a row): one load per test.
    Bits { words: usize, bits: Vec<u64> },
    /// A binary search in the user's sorted row: a few dependent loads.
    Rows(&'a Csr),
}

impl<'a> Liked<'a> {
    /// Bits when they fit in `budget` bytes.
    fn of(m: &'a Csr, budget: usize) -> Self {
        let words = m.n_cols.div_ceil(64);
        if m.n_rows.saturating_mul(words).saturating_mul(8) > budget {
            return Liked::Rows(m);
        }
        let mut bits = vec![0u64; m.n_rows * words];
        for u in 0..m.n_rows {
            let row = &mut bits[u * words..(u + 1) * words];
            for &j in m.row(u).0 {
                row[j as usize / 64] |= 1 << (j % 64);
            }
        }
        Liked::Bits { words, bits }
    }

    #[inline(always)]
    fn contains(&self, u: usize, j: u32) -> bool {
        match self {
            Liked::Bits { words, bits } => bits[u * words + j as usize / 64] >> (j % 64) & 1 == 1,
            Liked::Rows(m) => m.row(u).0.binary_search(&j).is_ok(),
        }
    }
}

/// What one thread needs for a round besides its own factors.
#[derive(Clone, Copy)]
struct Round<'a> {
    m: &'a Csr,
    liked: &'a Liked<'a>,
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
    let Round { m, liked, f, lr, reg, .. } = *r;
    let (u, i) = (u as usize, i as usize);
    if m.indptr[u + 1] - m.indptr[u] >= m.n_cols {
        return None;
    }
    let j = loop {
        let j = rng.random_range(0..m.n_cols as u32);
        if !liked.contains(u, j) {
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
    on_epoch: impl FnMut(usize, f64) -> R,
) -> Result<Factors> {
    train_with(user_items, params, on_epoch, LIKED_BITS_BUDGET)
}

/// [`train`], with a bit table of who liked what when it fits in `liked_budget` bytes.
fn train_with<R: Proceed>(
    user_items: &Csr,
    params: BprParams,
    mut on_epoch: impl FnMut(usize, f64) -> R,
    liked_budget: usize,
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
    // Thread 0 works on `items` itself, each other thread on a copy of it; `start` is what they all started
    // the round from. The merge at a round's end also leaves every copy and `start` equal to the merged items,
    // ready for the next round, in the same pass.
    let mut copies: Vec<Vec<f32>> = vec![items.clone(); threads - 1];
    let mut start = if threads > 1 { items.clone() } else { Vec::new() };
    let liked = Liked::of(user_items, liked_budget);
    let round_data =
        Round { m: user_items, liked: &liked, pairs: &pairs, f, lr: params.learning_rate, reg: params.regularization };
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
            if threads > 1 {
                merge_round(&mut items, &mut start, &mut copies, f * MERGE_ROWS);
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

/// Item rows merged per task.
const MERGE_ROWS: usize = 256;

/// Adds every other thread's change in the round (its copy less `start`) to
/// `items` (thread 0's, changed in place), and leaves `start` and every copy
/// equal to the result: one parallel pass, `chunk` values a task.
fn merge_round(items: &mut [f32], start: &mut [f32], copies: &mut [Vec<f32>], chunk: usize) {
    let mut by_chunk: Vec<Vec<&mut [f32]>> = (0..items.len().div_ceil(chunk)).map(|_| Vec::new()).collect();
    for copy in copies.iter_mut() {
        for (c, part) in copy.chunks_mut(chunk).enumerate() {
            by_chunk[c].push(part);
        }
    }
    items.par_chunks_mut(chunk).zip(start.par_chunks_mut(chunk)).zip(by_chunk.into_par_iter()).for_each(
        |((out, start), mut copies)| {
            for (k, v) in out.iter_mut().enumerate() {
                let s = start[k];
                *v += copies.iter().map(|copy| copy[k] - s).sum::<f32>();
                start[k] = *v;
                for copy in copies.iter_mut() {
                    copy[k] = *v;
                }
            }
        },
    );
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

    fn sample_matrix() -> Csr {
        // 70 users, 130 items (three words a row, the last one partly used): every eleventh user likes nothing,
        // user 68 everything, the others some.
        let mut t = Vec::new();
        for u in 0..70u32 {
            for i in 0..130u32 {
                if u == 68 || (u * 7 + i * 13) % 11 < u % 11 {
                    t.push((u, i, 1.0));
                }
            }
        }
        t.extend((0..130u32).map(|i| (69, i, 1.0)).filter(|&(_, i, _)| i % 2 == 1));
        Csr::from_triples(70, 130, t)
    }

    #[test]
    fn the_liked_bits_answer_as_the_rows_do() {
        let m = sample_matrix();
        let (bits, rows) = (Liked::of(&m, usize::MAX), Liked::of(&m, 0));
        assert!(matches!(bits, Liked::Bits { .. }) && matches!(rows, Liked::Rows(_)));
        for u in 0..m.n_rows {
            for j in 0..m.n_cols as u32 {
                assert_eq!(bits.contains(u, j), rows.contains(u, j), "user {u}, item {j}");
                assert_eq!(rows.contains(u, j), m.row(u).0.contains(&j));
            }
        }
    }

    #[test]
    fn training_is_the_same_with_bits_or_rows() {
        let m = sample_matrix();
        let p = BprParams { factors: 6, iterations: 5, learning_rate: 0.05, ..Default::default() };
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let bits = pool.install(|| train_with(&m, p, |_, _| {}, usize::MAX)).unwrap();
            let rows = pool.install(|| train_with(&m, p, |_, _| {}, 0)).unwrap();
            assert_eq!(bits, rows, "{threads} threads");
        }
    }

    #[test]
    fn a_merge_adds_every_copys_change_and_restarts_every_copy_from_the_result() {
        let n = 1000;
        let start: Vec<f32> = (0..n).map(|k| k as f32 * 0.25).collect();
        let mut items: Vec<f32> = start.iter().map(|s| s + 1.0).collect();
        let mut copies: Vec<Vec<f32>> =
            (0..3).map(|t| start.iter().enumerate().map(|(k, s)| s + (k % (t + 2)) as f32).collect()).collect();
        let expected: Vec<f32> =
            (0..n).map(|k| items[k] + copies.iter().map(|c| c[k] - start[k]).sum::<f32>()).collect();
        let mut begun = start.clone();
        merge_round(&mut items, &mut begun, &mut copies, 64);
        assert_eq!(items, expected);
        assert_eq!(begun, expected);
        for copy in &copies {
            assert_eq!(copy, &expected);
        }
    }
}
