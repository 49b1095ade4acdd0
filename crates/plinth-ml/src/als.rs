//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008), solved per user/item
//! in parallel with rayon, by one of two solvers:
//! - [`Solver::Cg`] (default): a few conjugate-gradient steps warm-started
//!   from the previous iteration (as `implicit` does). Per row it costs
//!   O(steps · (f² + n·f)) for a row with n interactions.
//! - [`Solver::Cholesky`]: builds the row's f×f system (O(n·f²)) and solves
//!   it exactly with faer's Cholesky, factored in place (O(f³)).
//!
//! `bench/recommenders.sh` measures both; CG is the default because it is
//! several times faster at the same ranking quality (figures in
//! ARCHITECTURE.md). Deterministic: every row's solve depends only on the
//! other side's factors.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::csr::Csr;
use crate::simd;
use crate::{Error, Result};

/// Unchecked hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct AlsParams {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    /// Confidence of an interaction with weight w: 1 + alpha * w.
    pub alpha: f32,
    pub cg_steps: usize,
    pub solver: Solver,
    pub seed: u64,
}

/// How each row's least-squares system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Solver {
    #[default]
    Cg,
    Cholesky,
}

impl Solver {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cg" => Ok(Solver::Cg),
            "cholesky" => Ok(Solver::Cholesky),
            other => Err(Error::Param(format!("solver {other}: expected cg or cholesky"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Solver::Cg => "cg",
            Solver::Cholesky => "cholesky",
        }
    }
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            iterations: 15,
            regularization: 0.05,
            alpha: 1.0,
            cg_steps: 3,
            solver: Solver::Cg,
            seed: 42,
        }
    }
}

impl AlsParams {
    pub fn check(self) -> Result<Self> {
        if self.factors == 0 || self.factors > 4096 {
            return Err(Error::Param(format!("factors must be in 1..=4096, got {}", self.factors)));
        }
        if self.iterations == 0 {
            return Err(Error::Param("iterations must be at least 1".into()));
        }
        if !(self.regularization >= 0.0 && self.regularization.is_finite()) {
            return Err(Error::Param(format!("regularization must be >= 0, got {}", self.regularization)));
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::Param(format!("alpha must be > 0, got {}", self.alpha)));
        }
        if self.cg_steps == 0 {
            return Err(Error::Param("cg_steps must be at least 1".into()));
        }
        Ok(self)
    }
}

/// Row-major factor matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    pub factors: usize,
    pub users: Vec<f32>,
    pub items: Vec<f32>,
}

/// `YᵀY + λI` for row-major `y` with `f` columns.
fn gram(y: &[f32], f: usize, reg: f32) -> Vec<f32> {
    let rows = y.len() / f;
    let chunk = 4096;
    let partial: Vec<Vec<f32>> = (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut g = vec![0f32; f * f];
            pulp::Arch::new().dispatch(GramRows { g: &mut g, y, f, rows: c * chunk..((c + 1) * chunk).min(rows) });
            g
        })
        .collect();
    let mut g = vec![0f32; f * f];
    for p in partial {
        for (a, b) in g.iter_mut().zip(p) {
            *a += b;
        }
    }
    for i in 0..f {
        g[i * f + i] += reg;
    }
    g
}

/// `gram_rows` compiled for the CPU's SIMD (see [`crate::simd`]).
struct GramRows<'a> {
    g: &'a mut [f32],
    y: &'a [f32],
    f: usize,
    rows: std::ops::Range<usize>,
}

impl pulp::WithSimd for GramRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        for r in self.rows {
            let v = &self.y[r * self.f..(r + 1) * self.f];
            for (i, &vi) in v.iter().enumerate() {
                simd::axpy(simd, vi, v, &mut self.g[i * self.f..(i + 1) * self.f]);
            }
        }
    }
}

/// `cg_solve` compiled for the CPU's SIMD (see [`crate::simd`]).
struct CgSolve<'a> {
    x: &'a mut [f32],
    yty: &'a [f32],
    y: &'a [f32],
    cols: &'a [u32],
    conf: &'a [f32],
    steps: usize,
    scratch: &'a mut [f32],
    measure: bool,
}

impl pulp::WithSimd for CgSolve<'_> {
    type Output = f64;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> f64 {
        cg_solve(simd, self.x, self.yty, self.y, self.cols, self.conf, self.steps, self.scratch, self.measure)
    }
}

/// One CG solve of (YᵀY + λI + Σ (c-1) y yᵀ) x = Σ c y, warm-started at `x`.
/// With `measure`, returns the row's loss terms at the `x` it starts from
/// (see [`row_loss`]), from the products the first residual needs anyway.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cg_solve<S: pulp::Simd>(
    simd: S,
    x: &mut [f32],
    yty: &[f32],
    y: &[f32],
    cols: &[u32],
    conf: &[f32],
    steps: usize,
    scratch: &mut [f32],
    measure: bool,
) -> f64 {
    let f = x.len();
    let (r, rest) = scratch.split_at_mut(f);
    let (p, ap) = rest.split_at_mut(f);
    simd::sym_matvec(simd, yty, x, r);
    let mut terms = if measure { simd::dot(simd, x, r) as f64 } else { 0.0 };
    for v in r.iter_mut() {
        *v = -*v;
    }
    simd::rows_update(simd, y, cols, conf, x, r, |c, score| {
        if measure {
            terms += interaction_loss(c, score);
        }
        c - (c - 1.0) * score
    });
    p.copy_from_slice(r);
    let mut rs_old = simd::dot(simd, r, r);
    if rs_old < 1e-20 {
        return terms;
    }
    for _ in 0..steps {
        simd::sym_matvec(simd, yty, p, ap);
        simd::rows_update(simd, y, cols, conf, p, ap, |c, d| (c - 1.0) * d);
        let pap = simd::dot(simd, p, ap);
        if pap <= 0.0 {
            break;
        }
        let a = rs_old / pap;
        simd::axpy(simd, a, p, x);
        simd::axpy(simd, -a, ap, r);
        let rs_new = simd::dot(simd, r, r);
        if rs_new < 1e-20 {
            break;
        }
        let beta = rs_new / rs_old;
        for k in 0..f {
            p[k] = r[k] + beta * p[k];
        }
        rs_old = rs_new;
    }
    terms
}

/// An interaction's share of the loss beyond `xᵀ(YᵀY + λI)x`, which counts
/// it as a 0 with confidence 1: c(1 - s)² - s² for score s.
#[inline(always)]
fn interaction_loss(c: f32, score: f32) -> f64 {
    let (c, s) = (c as f64, score as f64);
    c * (1.0 - s) * (1.0 - s) - s * s
}

/// One row's loss terms: `xᵀ A x` (A = YᵀY + λI) plus each interaction's
/// share; `tmp` holds f floats.
fn row_loss(a: &[f32], x: &[f32], y: &[f32], cols: &[u32], vals: &[f32], alpha: f32, tmp: &mut [f32]) -> f64 {
    struct RowLoss<'a> {
        a: &'a [f32],
        x: &'a [f32],
        y: &'a [f32],
        cols: &'a [u32],
        vals: &'a [f32],
        alpha: f32,
        tmp: &'a mut [f32],
    }
    impl pulp::WithSimd for RowLoss<'_> {
        type Output = f64;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) -> f64 {
            let f = self.x.len();
            simd::sym_matvec(simd, self.a, self.x, self.tmp);
            let mut l = simd::dot(simd, self.x, self.tmp) as f64;
            for (&i, &w) in self.cols.iter().zip(self.vals) {
                let yi = &self.y[i as usize * f..(i as usize + 1) * f];
                l += interaction_loss(1.0 + self.alpha * w, simd::dot(simd, self.x, yi));
            }
            l
        }
    }
    pulp::Arch::new().dispatch(RowLoss { a, x, y, cols, vals, alpha, tmp })
}

/// Solves every row of `x`; with `measure`, returns the sum of the rows' loss
/// terms at the factors the half-step started from (0 otherwise).
fn solve_side(x: &mut [f32], y: &[f32], gram_y: &[f32], m: &Csr, params: &AlsParams, measure: bool) -> f64 {
    match params.solver {
        Solver::Cg => solve_side_cg(x, y, gram_y, m, params, measure),
        Solver::Cholesky => solve_side_cholesky(x, y, gram_y, m, params, measure),
    }
}

/// `YᵀY + λI`.
fn regularized(gram_y: &[f32], f: usize, reg: f32) -> Vec<f32> {
    let mut a = gram_y.to_vec();
    for i in 0..f {
        a[i * f + i] += reg;
    }
    a
}

/// `(YᵀY + λI + Σ (c-1) y yᵀ) x = Σ c y` built in full (the rank-n update
/// as one faer matmul) and solved exactly.
fn solve_side_cholesky(x: &mut [f32], y: &[f32], gram_y: &[f32], m: &Csr, params: &AlsParams, measure: bool) -> f64 {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::cholesky::llt;
    use faer::linalg::matmul::triangular::{BlockStructure, matmul};
    let f = params.factors;
    let reg = regularized(gram_y, f, params.regularization);
    x.par_chunks_mut(f)
        .enumerate()
        .map_init(
            || {
                (
                    faer::Mat::<f32>::zeros(f, f),
                    faer::Mat::<f32>::zeros(f, 1),
                    faer::Mat::<f32>::zeros(f, 0),
                    vec![0f32; f],
                    MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f32>(
                        f,
                        faer::Par::Seq,
                        Default::default(),
                    )),
                )
            },
            |(a, b, scaled, tmp, scratch), (row, xr)| {
                let (cols, vals) = m.row(row);
                let terms = if measure { row_loss(&reg, xr, y, cols, vals, params.alpha, tmp) } else { 0.0 };
                // A is symmetric, so its column-major storage is YᵀY's row-major one.
                for j in 0..f {
                    a.col_as_slice_mut(j).copy_from_slice(&reg[j * f..(j + 1) * f]);
                }
                // Column r: the row's r-th item's factors scaled by sqrt(c - 1),
                // so that A += S Sᵀ (written contiguously, column by column).
                scaled.resize_with(f, cols.len(), |_, _| 0.0);
                let rhs = b.col_as_slice_mut(0);
                rhs.iter_mut().for_each(|v| *v = 0.0);
                for (r, (&i, &w)) in cols.iter().zip(vals).enumerate() {
                    let c = 1.0 + params.alpha * w;
                    let s = (c - 1.0).max(0.0).sqrt();
                    let yi = &y[i as usize * f..(i as usize + 1) * f];
                    for ((d, rh), &v) in scaled.col_as_slice_mut(r).iter_mut().zip(rhs.iter_mut()).zip(yi) {
                        *d = s * v;
                        *rh += c * v;
                    }
                }
                // Only the lower triangle: all the Cholesky factorization reads.
                matmul(
                    a.as_mut(),
                    BlockStructure::TriangularLower,
                    faer::Accum::Add,
                    scaled.as_ref(),
                    BlockStructure::Rectangular,
                    scaled.transpose(),
                    BlockStructure::Rectangular,
                    1.0,
                    faer::Par::Seq,
                );
                // Factored where it is (its lower triangle becomes L: no copy, no
                // allocation a row). Only without regularization can A be singular
                // (a row without interactions); its factors then stay as they are.
                let stack = MemStack::new(scratch);
                let factored = llt::factor::cholesky_in_place(
                    a.as_mut(),
                    Default::default(),
                    faer::Par::Seq,
                    stack,
                    Default::default(),
                );
                if factored.is_ok() {
                    llt::solve::solve_in_place(a.as_ref(), b.as_mut(), faer::Par::Seq, stack);
                    xr.copy_from_slice(b.col_as_slice(0));
                }
                terms
            },
        )
        .sum()
}

fn solve_side_cg(x: &mut [f32], y: &[f32], gram_y: &[f32], m: &Csr, params: &AlsParams, measure: bool) -> f64 {
    let f = params.factors;
    let arch = pulp::Arch::new();
    let yty = regularized(gram_y, f, params.regularization);
    x.par_chunks_mut(f)
        .enumerate()
        .map_init(
            || (vec![0f32; 3 * f], Vec::<f32>::new()),
            |(scratch, conf), (row, xr)| {
                let (cols, vals) = m.row(row);
                conf.clear();
                conf.extend(vals.iter().map(|w| 1.0 + params.alpha * w));
                arch.dispatch(CgSolve { x: xr, yty: &yty, y, cols, conf, steps: params.cg_steps, scratch, measure })
            },
        )
        .sum()
}

/// The weighted squared loss (per interaction) plus regularization, for
/// progress. `gram_items` is `YᵀY` of the current item factors. Training
/// gets the same figure from the users' half-step (see [`cg_solve`]); this
/// is its reference and the last iteration's.
pub fn loss(user_items: &Csr, fs: &Factors, params: &AlsParams, gram_items: &[f32]) -> f64 {
    let f = fs.factors;
    let a = regularized(gram_items, f, params.regularization);
    let total: f64 = (0..user_items.n_rows)
        .into_par_iter()
        .map_init(
            || vec![0f32; f],
            |tmp, u| {
                let (cols, vals) = user_items.row(u);
                row_loss(&a, &fs.users[u * f..(u + 1) * f], &fs.items, cols, vals, params.alpha, tmp)
            },
        )
        .sum();
    per_interaction(total, &fs.items, params, user_items.nnz())
}

/// The users' loss terms plus the items' regularization, per interaction.
fn per_interaction(user_terms: f64, items: &[f32], params: &AlsParams, nnz: usize) -> f64 {
    let item_reg: f64 = items.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() * params.regularization as f64;
    (user_terms + item_reg) / nnz.max(1) as f64
}

/// Trains on a user×item matrix of weights. `on_iteration(i, loss)` runs
/// once iteration i's loss is known (progress, per-iteration metrics): the
/// next iteration's users' half-step measures it on its way, so for all but
/// the last it comes after that half-step; it may stop training (see
/// [`crate::Proceed`]).
pub fn train<R: crate::Proceed>(
    user_items: &Csr,
    params: AlsParams,
    mut on_iteration: impl FnMut(usize, f64) -> R,
) -> Result<Factors> {
    let params = params.check()?;
    let f = params.factors;
    let item_users = user_items.transpose();
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut init = |n: usize| -> Vec<f32> { (0..n * f).map(|_| rng.random::<f32>() * 0.01).collect() };
    let mut fs = Factors { factors: f, users: init(user_items.n_rows), items: init(user_items.n_cols) };
    for it in 0..params.iterations {
        let gram_items = gram(&fs.items, f, 0.0);
        let user_terms = solve_side(&mut fs.users, &fs.items, &gram_items, user_items, &params, it > 0);
        // The items are still those iteration it - 1 ended with.
        if it > 0 && on_iteration(it - 1, per_interaction(user_terms, &fs.items, &params, user_items.nnz())).stop() {
            return Err(crate::Error::Cancelled);
        }
        let gram_users = gram(&fs.users, f, 0.0);
        solve_side(&mut fs.items, &fs.users, &gram_users, &item_users, &params, false);
    }
    let gram_items = gram(&fs.items, f, 0.0);
    if on_iteration(params.iterations - 1, loss(user_items, &fs, &params, &gram_items)).stop() {
        return Err(crate::Error::Cancelled);
    }
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// Two groups of users liking two disjoint groups of items.
    fn blocks() -> Csr {
        let mut t = Vec::new();
        for u in 0..20u32 {
            let base = if u < 10 { 0 } else { 10 };
            for i in 0..10u32 {
                if (u + i) % 3 != 0 {
                    t.push((u, base + i, 1.0));
                }
            }
        }
        Csr::from_triples(20, 20, t)
    }

    #[test]
    fn loss_decreases_and_structure_is_learned() {
        let m = blocks();
        let params = AlsParams { factors: 8, iterations: 10, regularization: 0.01, ..Default::default() };
        let mut losses = Vec::new();
        let fs = train(&m, params, |_, l| losses.push(l)).unwrap();
        assert!(losses.last().unwrap() < &losses[0], "{losses:?}");
        let f = fs.factors;
        let score = |u: usize, i: usize| dot(&fs.users[u * f..(u + 1) * f], &fs.items[i * f..(i + 1) * f]);
        // A held-out in-group item scores above every out-of-group item.
        let (u, held) = (0usize, 0usize); // (0 + 0) % 3 == 0: not in training
        assert!((10..20).all(|j| score(u, held) > score(u, j)));
    }

    #[test]
    fn cholesky_and_cg_agree() {
        let m = blocks();
        let exact = AlsParams { factors: 4, iterations: 10, solver: Solver::Cholesky, ..AlsParams::default() };
        let mut losses = Vec::new();
        let fs = train(&m, exact, |_, l| losses.push(l)).unwrap();
        assert!(losses.windows(2).all(|w| w[1] <= w[0] + 1e-6), "exact ALS never increases the loss: {losses:?}");
        let cg = train(&m, AlsParams { solver: Solver::Cg, cg_steps: 8, ..exact }, |_, _| {}).unwrap();
        let score = |fs: &Factors, u: usize, i: usize| dot(&fs.users[u * 4..u * 4 + 4], &fs.items[i * 4..i * 4 + 4]);
        for (u, i) in [(0, 0), (0, 5), (5, 5), (5, 0)] {
            assert!((score(&fs, u, i) - score(&cg, u, i)).abs() < 0.05, "({u},{i})");
        }
        assert!(Solver::parse("qr").is_err());
    }

    #[test]
    fn the_loss_measured_in_the_half_step_is_the_loss_of_that_iteration() {
        let m = blocks();
        for solver in [Solver::Cg, Solver::Cholesky] {
            let p = AlsParams { factors: 6, iterations: 5, solver, ..Default::default() };
            let mut measured = Vec::new();
            train(&m, p, |_, l| measured.push(l)).unwrap();
            assert_eq!(measured.len(), 5);
            // Iteration i's loss, computed afresh from a run stopped there.
            for (i, &l) in measured.iter().enumerate() {
                let fs = train(&m, AlsParams { iterations: i + 1, ..p }, |_, _| {}).unwrap();
                let reference = loss(&m, &fs, &p, &gram(&fs.items, 6, 0.0));
                assert!(
                    (l - reference).abs() <= 1e-5 * reference.abs(),
                    "{solver:?} iteration {i}: {l} vs {reference}"
                );
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let m = blocks();
        let p = AlsParams { factors: 4, iterations: 3, ..Default::default() };
        assert_eq!(train(&m, p, |_, _| {}).unwrap(), train(&m, p, |_, _| {}).unwrap());
    }

    #[test]
    fn rejects_bad_params() {
        let bad = AlsParams { regularization: -1.0, ..Default::default() };
        assert!(bad.check().is_err());
        assert!(AlsParams { factors: 0, ..Default::default() }.check().is_err());
    }
}
