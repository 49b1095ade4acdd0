//! Linear models on the encoded table: ridge regression, and logistic
//! (binary) or multinomial (softmax) regression with an L2 penalty.
//!
//! Numeric features are standardized with the training mean and standard
//! deviation (missing values become the mean); categorical features become
//! one indicator per level, for their [`MAX_LEVELS`] most frequent levels
//! (missing, unseen or rarer values set none). The bias is not penalized.
//!
//! Ridge is solved exactly: the normal equations, accumulated over row
//! chunks in parallel, by Cholesky (faer). The logistic losses are
//! minimized by L-BFGS with a backtracking line search, each loss and
//! gradient one parallel pass over the rows. Not `linfa`: in a trial here its
//! logistic, multinomial and elastic-net solvers were far slower on the same
//! sizes (no command in the repo measures them).

use faer::linalg::solvers::Solve;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::gbdt::{Objective, sigmoid, softmax_in_place};
use crate::{Error, Proceed, Result};

/// Levels of a categorical feature that get an indicator.
pub const MAX_LEVELS: usize = 100;
/// Rows per parallel chunk.
const CHUNK: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Input {
    /// `(x - mean) / scale`; missing is 0 (the mean).
    Numeric { mean: f64, scale: f64 },
    /// Indicators for codes `0..levels`.
    Categorical { levels: usize },
}

impl Input {
    fn width(&self) -> usize {
        match self {
            Input::Numeric { .. } => 1,
            Input::Categorical { levels } => *levels,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinearParams {
    /// L2 penalty on the weights (per row: the loss is a mean).
    pub l2: f64,
    /// L-BFGS iterations at most (logistic losses).
    pub max_iterations: usize,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams { l2: 1e-4, max_iterations: 200 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub objective: Objective,
    pub inputs: Vec<Input>,
    /// Design columns (inputs after one-hot encoding).
    pub width: usize,
    /// Row-major `[outputs, width + 1]`: each output's weights, then its bias.
    pub coefficients: Vec<f64>,
}

impl Linear {
    pub fn features(&self) -> usize {
        self.inputs.len()
    }

    /// One row of the design matrix.
    fn design(&self, row: &[f64], out: &mut [f64]) {
        design(&self.inputs, row, out)
    }

    /// Raw scores, row-major `[rows, outputs]`.
    pub fn predict_raw(&self, x: &[f64], rows: usize) -> Vec<f64> {
        let k = self.objective.outputs();
        let f = self.inputs.len();
        let mut out = vec![0.0; rows * k];
        out.par_chunks_mut(k * CHUNK).zip(x.par_chunks(f * CHUNK)).for_each(|(out, x)| {
            let mut z = vec![0.0; self.width];
            for (o, row) in out.chunks_mut(k).zip(x.chunks(f)) {
                self.design(row, &mut z);
                for (j, o) in o.iter_mut().enumerate() {
                    *o = score(&self.coefficients[j * (self.width + 1)..(j + 1) * (self.width + 1)], &z);
                }
            }
        });
        out
    }

    /// Values (squared), P(class 1) (logistic), or class probabilities
    /// `[rows, classes]` (softmax).
    pub fn predict(&self, x: &[f64], rows: usize) -> Vec<f64> {
        let mut raw = self.predict_raw(x, rows);
        self.objective.link(&mut raw);
        raw
    }

    /// Per input feature: the largest absolute weight of its design columns
    /// over the outputs (weights are on standardized inputs, so comparable).
    pub fn importance(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.inputs.len());
        let mut at = 0;
        for input in &self.inputs {
            let w = input.width();
            let largest = (0..self.objective.outputs())
                .flat_map(|j| {
                    let base = j * (self.width + 1) + at;
                    self.coefficients[base..base + w].iter().map(|c| c.abs())
                })
                .fold(0.0, f64::max);
            out.push(largest);
            at += w;
        }
        out
    }

    /// Fits on a row-major `[rows, features]` matrix (NaN: missing) and
    /// targets (values; 0/1; class indices). `levels[f]` is `Some(levels)`
    /// for a categorical feature (its codes are `0..levels`).
    /// `on_iteration(iteration, training loss)` follows L-BFGS and may stop
    /// training (see [`crate::Proceed`]).
    #[allow(clippy::too_many_arguments)]
    pub fn train<R: Proceed>(
        x: &[f64],
        rows: usize,
        features: usize,
        levels: &[Option<usize>],
        y: &[f64],
        objective: Objective,
        params: &LinearParams,
        on_iteration: &mut impl FnMut(usize, f64) -> R,
    ) -> Result<Linear> {
        if !(params.l2.is_finite() && params.l2 >= 0.0) || params.max_iterations == 0 {
            return Err(Error::Param("l2 must be finite and >= 0, and iterations at least 1".into()));
        }
        if rows == 0 || features == 0 || x.len() != rows * features || y.len() != rows || levels.len() != features {
            return Err(Error::Data(format!("{rows} rows of {features} features need as many targets")));
        }
        let inputs: Vec<Input> = (0..features)
            .map(|f| match levels[f] {
                Some(l) => Input::Categorical { levels: l.min(MAX_LEVELS) },
                None => standardize((0..rows).map(|i| x[i * features + f])),
            })
            .collect();
        let width: usize = inputs.iter().map(Input::width).sum();
        // A tiny ridge keeps the system solvable when indicators and the
        // bias are collinear (every level present) and l2 is 0.
        let l2 = params.l2.max(1e-8);
        let coefficients = match objective {
            Objective::Squared => {
                let c = ridge(&inputs, width, x, features, y, l2)?;
                if on_iteration(1, squared_loss(&inputs, width, x, features, y, &c, l2)).stop() {
                    return Err(Error::Cancelled);
                }
                c
            }
            Objective::Logistic | Objective::Softmax { .. } => {
                let k = objective.outputs();
                let problem = Logistic { inputs: &inputs, width, x, features, y, outputs: k, l2 };
                lbfgs(
                    |w, g| problem.loss_and_gradient(w, g),
                    vec![0.0; k * (width + 1)],
                    params.max_iterations,
                    on_iteration,
                )
                .ok_or(Error::Cancelled)?
            }
        };
        Ok(Linear { objective, inputs, width, coefficients })
    }
}

fn standardize(values: impl Iterator<Item = f64> + Clone) -> Input {
    let (n, sum) = values.clone().filter(|v| !v.is_nan()).fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n == 0 {
        return Input::Numeric { mean: 0.0, scale: 1.0 };
    }
    let mean = sum / n as f64;
    let var = values.filter(|v| !v.is_nan()).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    let scale = if var > 1e-24 { var.sqrt() } else { 1.0 };
    Input::Numeric { mean, scale }
}

fn design(inputs: &[Input], row: &[f64], out: &mut [f64]) {
    let mut at = 0;
    for (input, &v) in inputs.iter().zip(row) {
        match *input {
            Input::Numeric { mean, scale } => {
                out[at] = if v.is_nan() { 0.0 } else { (v - mean) / scale };
                at += 1;
            }
            Input::Categorical { levels } => {
                out[at..at + levels].fill(0.0);
                if v >= 0.0 && (v as usize) < levels {
                    out[at + v as usize] = 1.0;
                }
                at += levels;
            }
        }
    }
}

/// `w . z + bias`, with `w` of length `z.len() + 1`.
fn score(w: &[f64], z: &[f64]) -> f64 {
    w[..z.len()].iter().zip(z).map(|(a, b)| a * b).sum::<f64>() + w[z.len()]
}

/// Ridge regression: `(Z'Z / n + l2 I) w = Z'y / n` with the bias column
/// unpenalized, solved by Cholesky.
fn ridge(inputs: &[Input], width: usize, x: &[f64], features: usize, y: &[f64], l2: f64) -> Result<Vec<f64>> {
    let d = width + 1;
    let rows = y.len();
    // Z'Z and Z'y, chunk by chunk.
    let (gram, zy) = x
        .par_chunks(features * CHUNK)
        .zip(y.par_chunks(CHUNK))
        .map(|(x, y)| {
            let n = y.len();
            let mut z = faer::Mat::<f64>::zeros(n, d);
            let mut buf = vec![0.0; width];
            for (i, row) in x.chunks(features).enumerate() {
                design(inputs, row, &mut buf);
                for (j, &v) in buf.iter().enumerate() {
                    z[(i, j)] = v;
                }
                z[(i, width)] = 1.0;
            }
            let gram = z.transpose() * &z;
            let yv = faer::Mat::<f64>::from_fn(n, 1, |i, _| y[i]);
            let zy = z.transpose() * &yv;
            (gram, zy)
        })
        .reduce(|| (faer::Mat::zeros(d, d), faer::Mat::zeros(d, 1)), |(a, b), (c, e)| (a + c, b + e));
    let n = rows as f64;
    let mut a = gram * faer::Scale(1.0 / n);
    for j in 0..width {
        a[(j, j)] += l2;
    }
    let b = zy * faer::Scale(1.0 / n);
    let llt = a
        .llt(faer::Side::Lower)
        .map_err(|_| Error::Data("the features are degenerate: the ridge system is not positive definite".into()))?;
    let w = llt.solve(&b);
    Ok((0..d).map(|j| w[(j, 0)]).collect())
}

fn squared_loss(inputs: &[Input], width: usize, x: &[f64], features: usize, y: &[f64], w: &[f64], l2: f64) -> f64 {
    let sse: f64 = x
        .par_chunks(features * CHUNK)
        .zip(y.par_chunks(CHUNK))
        .map(|(x, y)| {
            let mut z = vec![0.0; width];
            x.chunks(features)
                .zip(y)
                .map(|(row, &t)| {
                    design(inputs, row, &mut z);
                    let e = score(w, &z) - t;
                    e * e
                })
                .sum::<f64>()
        })
        .sum();
    sse / (2.0 * y.len() as f64) + 0.5 * l2 * w[..width].iter().map(|v| v * v).sum::<f64>()
}

/// Mean log loss plus `l2 / 2 * |weights|^2` (biases unpenalized), for one
/// sigmoid output or a softmax over `outputs`.
struct Logistic<'a> {
    inputs: &'a [Input],
    width: usize,
    x: &'a [f64],
    features: usize,
    y: &'a [f64],
    outputs: usize,
    l2: f64,
}

impl Logistic<'_> {
    fn loss_and_gradient(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let (k, d) = (self.outputs, self.width + 1);
        let (loss, g) = self
            .x
            .par_chunks(self.features * CHUNK)
            .zip(self.y.par_chunks(CHUNK))
            .map(|(x, y)| {
                let mut z = vec![0.0; self.width];
                let mut p = vec![0.0; k];
                let mut g = vec![0.0; k * d];
                let mut loss = 0.0;
                for (row, &t) in x.chunks(self.features).zip(y) {
                    design(self.inputs, row, &mut z);
                    for (j, p) in p.iter_mut().enumerate() {
                        *p = score(&w[j * d..(j + 1) * d], &z);
                    }
                    if k == 1 {
                        // log(1 + e^-m) for the margin m of the true class, stably.
                        let m = if t > 0.5 { p[0] } else { -p[0] };
                        loss += if m > 0.0 { (-m).exp().ln_1p() } else { -m + m.exp().ln_1p() };
                        p[0] = sigmoid(p[0]) - t;
                    } else {
                        softmax_in_place(&mut p);
                        loss -= p[t as usize].max(1e-300).ln();
                        p[t as usize] -= 1.0;
                    }
                    for (j, &r) in p.iter().enumerate() {
                        if r != 0.0 {
                            let gj = &mut g[j * d..(j + 1) * d];
                            for (gv, zv) in gj.iter_mut().zip(&z) {
                                *gv += r * zv;
                            }
                            gj[self.width] += r;
                        }
                    }
                }
                (loss, g)
            })
            .reduce(
                || (0.0, vec![0.0; k * d]),
                |(la, mut ga), (lb, gb)| {
                    ga.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
                    (la + lb, ga)
                },
            );
        let n = self.y.len() as f64;
        let mut penalty = 0.0;
        for j in 0..k {
            for c in 0..d {
                let at = j * d + c;
                grad[at] = g[at] / n;
                if c < self.width {
                    grad[at] += self.l2 * w[at];
                    penalty += w[at] * w[at];
                }
            }
        }
        loss / n + 0.5 * self.l2 * penalty
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Limited-memory BFGS (10 pairs) with an Armijo backtracking line search.
/// Stops when the largest gradient entry is below 1e-6, the loss stops
/// decreasing (relative 1e-10), or after `max_iterations`.
/// Minimizes `f`; `None` when `on_iteration` stopped it.
fn lbfgs<R: Proceed>(
    f: impl Fn(&[f64], &mut [f64]) -> f64,
    mut x: Vec<f64>,
    max_iterations: usize,
    on_iteration: &mut impl FnMut(usize, f64) -> R,
) -> Option<Vec<f64>> {
    const MEMORY: usize = 10;
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut loss = f(&x, &mut g);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
    let (mut x_new, mut g_new) = (vec![0.0; n], vec![0.0; n]);
    for iteration in 1..=max_iterations {
        if g.iter().fold(0.0f64, |m, v| m.max(v.abs())) < 1e-6 {
            break;
        }
        // Two-loop recursion: d = -H g.
        let mut d: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &d);
            d.iter_mut().zip(y).for_each(|(d, y)| *d -= a * y);
            alphas.push(a);
        }
        if let Some((s, y, _)) = history.back() {
            let gamma = dot(s, y) / dot(y, y);
            d.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &d);
            d.iter_mut().zip(s).for_each(|(d, s)| *d += (a - b) * s);
        }
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            history.clear();
            d = g.iter().map(|v| -v).collect();
            slope = dot(&g, &d);
        }
        let mut step =
            if history.is_empty() { 1.0 / g.iter().map(|v| v * v).sum::<f64>().sqrt().max(1.0) } else { 1.0 };
        let accepted = loop {
            x_new.iter_mut().zip(&x).zip(&d).for_each(|((n, x), d)| *n = x + step * d);
            let trial = f(&x_new, &mut g_new);
            if trial.is_finite() && trial <= loss + 1e-4 * step * slope {
                break Some(trial);
            }
            step *= 0.5;
            if step < 1e-20 {
                break None;
            }
        };
        let Some(new_loss) = accepted else { break };
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        let improvement = (loss - new_loss) / loss.abs().max(1.0);
        loss = new_loss;
        if on_iteration(iteration, loss).stop() {
            return None;
        }
        if improvement < 1e-10 {
            break;
        }
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tabular::metrics;
    use crate::tabular::testing::uniform;

    #[test]
    fn ridge_recovers_coefficients_and_uses_categories() {
        let (rows, f) = (5000, 3);
        let mut x = uniform(rows * f, 1);
        // Feature 2: a category code 0..3 with effects 0, 5, -5.
        for i in 0..rows {
            x[i * f + 2] = (x[i * f + 2] * 3.0).floor();
        }
        let y: Vec<f64> =
            (0..rows).map(|i| 3.0 * x[i * f] - 2.0 * x[i * f + 1] + [0.0, 5.0, -5.0][x[i * f + 2] as usize]).collect();
        let params = LinearParams { l2: 0.0, ..Default::default() };
        let m = Linear::train(&x, rows, f, &[None, None, Some(3)], &y, Objective::Squared, &params, &mut |_, _| {})
            .unwrap();
        let p = m.predict(&x, rows);
        assert!(metrics::rmse(&y, &p) < 1e-6, "exact fit, rmse {}", metrics::rmse(&y, &p));
        // Missing and unseen values still predict.
        let odd = m.predict(&[f64::NAN, 0.5, 7.0], 1);
        assert!(odd[0].is_finite());
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Linear>(&json).unwrap(), m);
    }

    #[test]
    fn logistic_and_softmax_fit_separable_data() {
        let (rows, f) = (4000, 2);
        let x = uniform(rows * f, 2);
        let binary: Vec<f64> = (0..rows).map(|i| (x[i * f] + x[i * f + 1] > 1.0) as u8 as f64).collect();
        let mut losses = Vec::new();
        let m = Linear::train(
            &x,
            rows,
            f,
            &[None, None],
            &binary,
            Objective::Logistic,
            &LinearParams::default(),
            &mut |_, l| losses.push(l),
        )
        .unwrap();
        let p = m.predict(&x, rows);
        assert!(metrics::auc(&binary, &p).unwrap() > 0.999);
        assert!(losses.windows(2).all(|w| w[1] <= w[0]), "L-BFGS never goes uphill");
        let three: Vec<f64> = (0..rows).map(|i| (x[i * f] * 3.0).floor().min(2.0)).collect();
        let m = Linear::train(
            &x,
            rows,
            f,
            &[None, None],
            &three,
            Objective::Softmax { classes: 3 },
            &LinearParams::default(),
            &mut |_, _| {},
        )
        .unwrap();
        let probs = m.predict(&x, rows);
        let labels: Vec<f64> = probs
            .chunks(3)
            .map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(c, _)| c as f64))
            .collect();
        assert!(metrics::accuracy(&three, &labels) > 0.97);
        let imp = m.importance();
        assert!(imp[0] > 10.0 * imp[1], "only x0 matters: {imp:?}");
    }

    #[test]
    fn bad_input_is_refused() {
        let p = LinearParams::default();
        assert!(Linear::train(&[1.0], 1, 1, &[None], &[], Objective::Squared, &p, &mut |_, _| {}).is_err());
        let bad = LinearParams { l2: -1.0, ..Default::default() };
        assert!(Linear::train(&[1.0], 1, 1, &[None], &[1.0], Objective::Squared, &bad, &mut |_, _| {}).is_err());
    }
}
