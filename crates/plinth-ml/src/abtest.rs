//! The statistics of online experiments: per-variant summaries, lifts
//! against a control with their intervals, CUPED, the sample-ratio check and
//! Holm's correction, in two modes.
//!
//! - **Fixed horizon**: Welch's t interval for the difference of means
//!   (Welch–Satterthwaite degrees of freedom), and for the relative lift the
//!   delta method on the log of the ratio of means; ratio metrics (a sum over
//!   a sum per unit, e.g. events per exposure) take their variance by the
//!   delta method (Deng, Knoblich & Lu, KDD 2018). These are the formulas of
//!   `tea-tasting`'s `Mean`/`RatioOfMeans` with its defaults (unequal
//!   variances, t distribution), which the conformance suite compares with.
//! - **Anytime valid**: the asymptotic confidence sequence of Waudby-Smith,
//!   Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and
//!   asymptotic confidence sequences" (Annals of Statistics, 2024, Theorem
//!   2.2, the normal-mixture boundary), applied to the same estimators as
//!   Maharaj et al. do for two-sample A/B tests ("Anytime-valid confidence
//!   sequences in an enterprise A/B testing platform", WWW 2023): an interval
//!   that holds at every look at once, so a team may look every minute and
//!   stop when it excludes zero, with the false-positive rate kept at α
//!   (asymptotically). Its tuning ρ is fixed in advance from the units the
//!   test plans for ([`Plan::planned_units`]); the interval is narrowest
//!   there and valid everywhere.
//!
//! CUPED (Deng, Xu, Kohavi & Walker, WSDM 2013) regresses each unit's metric
//! on its covariate (the same metric before its first exposure) with θ
//! estimated on the two variants compared, pooled, as `tea-tasting` does.
//!
//! Nothing here divides by zero or returns NaN: a figure that the data cannot
//! give is `None`, with the reason in [`Lift::note`] / [`VariantSummary::note`].

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// Sample moments of a variant's units over four columns: the metric's
/// numerator and denominator (1 for a plain mean) and the covariate's
/// numerator and denominator (0 and 1 without one). Combinable, so a pair of
/// variants pools exactly (as the union of their samples).
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub mean: [f64; 4],
    /// Sample covariances (n − 1 in the denominator).
    pub cov: [[f64; 4]; 4],
}

pub const NUMER: usize = 0;
pub const DENOM: usize = 1;
pub const COV_NUMER: usize = 2;
pub const COV_DENOM: usize = 3;

impl Moments {
    /// The moments of `rows` (each `[numer, denom, covariate numer, covariate denom]`).
    pub fn of(rows: impl IntoIterator<Item = [f64; 4]>) -> Moments {
        // Welford's update, for the mean and the co-moments.
        let mut n = 0.0;
        let mut mean = [0.0; 4];
        let mut m2 = [[0.0; 4]; 4];
        for row in rows {
            n += 1.0;
            let delta: [f64; 4] = std::array::from_fn(|i| row[i] - mean[i]);
            for i in 0..4 {
                mean[i] += delta[i] / n;
            }
            for i in 0..4 {
                for j in 0..4 {
                    m2[i][j] += delta[i] * (row[j] - mean[j]);
                }
            }
        }
        let cov = std::array::from_fn(|i| std::array::from_fn(|j| if n > 1.0 { m2[i][j] / (n - 1.0) } else { 0.0 }));
        Moments { n, mean, cov }
    }

    /// The moments of both samples together.
    pub fn pooled(&self, other: &Moments) -> Moments {
        let n = self.n + other.n;
        if self.n == 0.0 {
            return other.clone();
        }
        if other.n == 0.0 {
            return self.clone();
        }
        let mean = std::array::from_fn(|i| (self.n * self.mean[i] + other.n * other.mean[i]) / n);
        let cov = std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let d = (self.mean[i] - other.mean[i]) * (self.mean[j] - other.mean[j]);
                let within = self.cov[i][j] * (self.n - 1.0) + other.cov[i][j] * (other.n - 1.0);
                if n > 1.0 { (within + d * self.n * other.n / n) / (n - 1.0) } else { 0.0 }
            })
        });
        Moments { n, mean, cov }
    }

    /// Mean of `numer` over mean of `denom`.
    fn ratio(&self, numer: usize, denom: usize) -> Option<f64> {
        finite(self.mean[numer] / self.mean[denom])
    }

    /// Covariance of two ratios of means by the delta method.
    fn ratio_cov(&self, (a, b): (usize, usize), (c, d): (usize, usize)) -> Option<f64> {
        let left = self.ratio(a, b)?;
        let right = self.ratio(c, d)?;
        let v = &self.cov;
        finite((v[a][c] - v[a][d] * right - v[b][c] * left + v[b][d] * left * right) / self.mean[b] / self.mean[d])
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Interval mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fixed,
    Sequential,
}

impl Mode {
    /// Its name on the wire: `fixed` or `sequential`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fixed => "fixed",
            Mode::Sequential => "sequential",
        }
    }
}

/// What the analysis assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    /// 1 − the confidence level.
    pub alpha: f64,
    pub cuped: bool,
    /// The total units (all variants) where the sequential interval is
    /// tuned to be narrowest; set before the test starts.
    pub planned_units: f64,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan { mode: Mode::Fixed, alpha: 0.05, cuped: false, planned_units: 10_000.0 }
    }
}

/// One variant by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSummary {
    pub units: u64,
    pub mean: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub note: Option<String>,
}

/// A variant against the control (serialized as the analysis API answers it).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Lift {
    /// The means compared (CUPED-adjusted when CUPED is on).
    pub control_mean: Option<f64>,
    pub treatment_mean: Option<f64>,
    pub absolute: Option<f64>,
    #[serde(rename = "absolute_ci_low")]
    pub absolute_low: Option<f64>,
    #[serde(rename = "absolute_ci_high")]
    pub absolute_high: Option<f64>,
    pub relative: Option<f64>,
    #[serde(rename = "relative_ci_low")]
    pub relative_low: Option<f64>,
    #[serde(rename = "relative_ci_high")]
    pub relative_high: Option<f64>,
    /// Fixed horizon: Welch's two-sided p-value. Sequential: the
    /// anytime-valid p-value (the smallest α whose sequence excludes 0).
    pub p_value: Option<f64>,
    /// After Holm's correction over every non-control variant.
    pub p_value_adjusted: Option<f64>,
    /// Whether the interval for the absolute lift excludes 0 (at the
    /// adjusted level when there are several treatments).
    pub significant: bool,
    pub cuped_theta: Option<f64>,
    pub note: Option<String>,
}

/// A variant's summary in `mode`: its metric's mean with an interval.
pub fn summarize(m: &Moments, plan: &Plan) -> VariantSummary {
    let units = m.n as u64;
    let mean = m.ratio(NUMER, DENOM);
    let mut out = VariantSummary { units, mean, ci_low: None, ci_high: None, note: None };
    if units == 0 {
        out.note = Some("no units".into());
        return out;
    }
    if mean.is_none() {
        out.note = Some("the metric's denominator is zero in this variant".into());
        return out;
    }
    if units < 2 {
        out.note = Some("too few units for an interval (fewer than 2)".into());
        return out;
    }
    let (Some(mean), Some(var)) = (mean, m.ratio_cov((NUMER, DENOM), (NUMER, DENOM))) else { return out };
    let se = (var.max(0.0) / m.n).sqrt();
    let half = match plan.mode {
        Mode::Fixed => t_quantile(1.0 - plan.alpha / 2.0, m.n - 1.0) * se,
        // The boundary is over one unit's standard deviation: √n standard errors.
        Mode::Sequential => se * m.n.sqrt() * cs_multiplier(m.n, plan.alpha, rho(plan)),
    };
    out.ci_low = finite(mean - half);
    out.ci_high = finite(mean + half);
    out
}

/// `treatment` against `control`.
pub fn lift(control: &Moments, treatment: &Moments, plan: &Plan) -> Lift {
    let mut out = Lift::default();
    if control.n < 2.0 || treatment.n < 2.0 {
        out.note = Some("too few units to compare (each variant needs at least 2)".into());
        return out;
    }
    let total = control.pooled(treatment);
    let theta = if plan.cuped {
        let cov_var = total.ratio_cov((COV_NUMER, COV_DENOM), (COV_NUMER, COV_DENOM)).unwrap_or(0.0);
        if cov_var > 0.0 {
            total.ratio_cov((NUMER, DENOM), (COV_NUMER, COV_DENOM)).unwrap_or(0.0) / cov_var
        } else {
            0.0
        }
    } else {
        0.0
    };
    out.cuped_theta = plan.cuped.then_some(theta);
    let covariate_mean = if plan.cuped { total.ratio(COV_NUMER, COV_DENOM) } else { Some(0.0) };
    let adjusted = |m: &Moments| -> Option<(f64, f64)> {
        let value = m.ratio(NUMER, DENOM)?;
        let var = m.ratio_cov((NUMER, DENOM), (NUMER, DENOM))?;
        if !plan.cuped {
            return Some((value, var));
        }
        let covariate = m.ratio(COV_NUMER, COV_DENOM)?;
        let cov_var = m.ratio_cov((COV_NUMER, COV_DENOM), (COV_NUMER, COV_DENOM))?;
        let cov = m.ratio_cov((NUMER, DENOM), (COV_NUMER, COV_DENOM))?;
        Some((value - theta * (covariate - covariate_mean?), var + theta * theta * cov_var - 2.0 * theta * cov))
    };
    let (Some((mc, vc)), Some((mt, vt))) = (adjusted(control), adjusted(treatment)) else {
        out.note = Some("the metric's denominator is zero in a variant".into());
        return out;
    };
    out.control_mean = Some(mc);
    out.treatment_mean = Some(mt);
    let (nc, nt) = (control.n, treatment.n);
    let effect = mt - mc;
    out.absolute = finite(effect);
    let Some((scale, df)) = welch(vc, nc, vt, nt) else {
        out.note = Some("the metric does not vary in either variant: no interval".into());
        return out;
    };
    let rho = rho(plan);
    let n = nc + nt;
    let multiplier = |df: f64| match plan.mode {
        Mode::Fixed => t_quantile(1.0 - plan.alpha / 2.0, df),
        Mode::Sequential => n.sqrt() * cs_multiplier(n, plan.alpha, rho),
    };
    let half = multiplier(df) * scale;
    out.absolute_low = finite(effect - half);
    out.absolute_high = finite(effect + half);
    out.p_value = match plan.mode {
        Mode::Fixed => finite(2.0 * (1.0 - t_cdf((effect / scale).abs(), df))),
        Mode::Sequential => Some(sequential_p_value(effect.abs() / scale, n, rho)),
    };
    out.significant = out.absolute_low.is_some_and(|l| l > 0.0) || out.absolute_high.is_some_and(|h| h < 0.0);
    if mc == 0.0 || (mt / mc) <= 0.0 {
        out.note = Some("the control's mean is zero or the means differ in sign: no relative lift".into());
        return out;
    }
    let ratio = mt / mc;
    out.relative = finite(ratio - 1.0);
    if let Some((log_scale, log_df)) = welch(vc / mc / mc, nc, vt / mt / mt, nt) {
        let spread = (multiplier(log_df) * log_scale).exp();
        out.relative_low = finite(ratio / spread - 1.0);
        out.relative_high = finite(ratio * spread - 1.0);
    }
    out
}

/// Welch's standard error of the difference and its Welch–Satterthwaite
/// degrees of freedom; `None` when neither variant varies.
fn welch(vc: f64, nc: f64, vt: f64, nt: f64) -> Option<(f64, f64)> {
    let (a, b) = (vc.max(0.0) / nc, vt.max(0.0) / nt);
    let scale = (a + b).sqrt();
    // NaN (no variance figure at all) is refused too.
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return None;
    }
    let df = (a + b).powi(2) / (a * a / (nc - 1.0) + b * b / (nt - 1.0));
    Some((scale, if df.is_finite() { df } else { nc + nt - 2.0 }))
}

/// Student's t quantile. statrs inverts the regularized incomplete beta
/// function, whose `1 − y` cancels as the degrees of freedom grow (about
/// 1e-7 relative at 10⁵, 1e-4 at 2·10⁶: intervals of large experiments off in
/// their fifth digit); from 1,000 on, the Cornish–Fisher expansion of t in
/// 1/ν (Abramowitz & Stegun 26.7.5, to ν⁻⁴) is used instead, within 1e-11 of
/// scipy's `t.ppf` there.
fn t_quantile(p: f64, df: f64) -> f64 {
    if df >= 1_000.0 {
        let z = normal_quantile(p);
        let z2 = z * z;
        let g1 = z * (z2 + 1.0) / 4.0;
        let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
        let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
        let g4 = z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
        return z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df;
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => normal_quantile(p),
    }
}

fn t_cdf(x: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => t.cdf(x),
        Err(_) => Normal::standard().cdf(x),
    }
}

fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// ρ for the sequence, tuned to be narrowest at the planned units
/// (Waudby-Smith et al. 2024, the closed form after Theorem 2.2).
fn rho(plan: &Plan) -> f64 {
    let l = -2.0 * plan.alpha.ln();
    ((l + (l + 1.0).ln()) / plan.planned_units.max(2.0)).sqrt()
}

/// The normal-mixture boundary over σ at `t` observations: the sequence is
/// `estimate ± σ̂ · cs_multiplier(t)` where σ̂ is one observation's standard
/// deviation.
fn cs_multiplier(t: f64, alpha: f64, rho: f64) -> f64 {
    let r2 = rho * rho;
    (2.0 * (t * r2 + 1.0) / (t * t * r2) * ((t * r2 + 1.0).sqrt() / alpha).ln()).sqrt()
}

/// The smallest α at which the sequence at `t` observations excludes 0, for
/// an estimate `z` standard errors from it: solved in closed form from the
/// boundary (`z² = 2(tρ²+1)/(tρ²) · ln(√(tρ²+1)/α)`).
fn sequential_p_value(z: f64, t: f64, rho: f64) -> f64 {
    let r2 = t * rho * rho;
    let log_p = 0.5 * (r2 + 1.0).ln() - z * z * r2 / (2.0 * (r2 + 1.0));
    log_p.exp().clamp(0.0, 1.0)
}

/// The sample-ratio-mismatch check: Pearson's χ² test of the units seen per
/// variant against the weights configured (variants of weight 0 that got
/// units make the p-value 0). `None` with fewer than two weighted variants
/// or no units.
pub fn srm_p_value(units: &[u64], weights: &[f64]) -> Option<f64> {
    let total: f64 = units.iter().map(|&u| u as f64).sum();
    let weight: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    let weighted = weights.iter().filter(|w| **w > 0.0).count();
    if total == 0.0 || weighted < 2 || units.len() != weights.len() {
        return None;
    }
    let mut stat = 0.0;
    for (&u, &w) in units.iter().zip(weights) {
        if w <= 0.0 {
            if u > 0 {
                return Some(0.0);
            }
            continue;
        }
        let expected = total * w / weight;
        stat += (u as f64 - expected).powi(2) / expected;
    }
    let chi = ChiSquared::new((weighted - 1) as f64).ok()?;
    finite(1.0 - chi.cdf(stat))
}

/// Holm's step-down adjustment of `p` (in the given order).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Lifts of every treatment against the control, with Holm's correction
/// across them: each `p_value_adjusted`, and `significant` judged at the
/// adjusted p-value (α).
pub fn compare(control: &Moments, treatments: &[&Moments], plan: &Plan) -> Vec<Lift> {
    let mut lifts: Vec<Lift> = treatments.iter().map(|t| lift(control, t, plan)).collect();
    let raw: Vec<f64> = lifts.iter().map(|l| l.p_value.unwrap_or(1.0)).collect();
    for (l, adjusted) in lifts.iter_mut().zip(holm(&raw)) {
        if l.p_value.is_some() {
            l.p_value_adjusted = Some(adjusted);
            if treatments.len() > 1 {
                l.significant = adjusted < plan.alpha;
            }
        }
    }
    lifts
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn mean_rows(values: &[f64]) -> Moments {
        Moments::of(values.iter().map(|&v| [v, 1.0, 0.0, 1.0]))
    }

    #[test]
    fn moments_pool_as_the_union_of_samples() {
        let a: Vec<[f64; 4]> = (0..7).map(|i| [i as f64, 1.0 + i as f64 % 2.0, (i * i) as f64, 1.0]).collect();
        let b: Vec<[f64; 4]> = (0..5).map(|i| [2.0 * i as f64, 3.0, i as f64, 2.0]).collect();
        let pooled = Moments::of(a.iter().copied()).pooled(&Moments::of(b.iter().copied()));
        let union = Moments::of(a.iter().chain(&b).copied());
        assert_eq!(pooled.n, union.n);
        for i in 0..4 {
            assert!((pooled.mean[i] - union.mean[i]).abs() < 1e-12);
            for j in 0..4 {
                assert!((pooled.cov[i][j] - union.cov[i][j]).abs() < 1e-9, "{i} {j}");
            }
        }
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // Control 1..=5 (mean 3, var 2.5), treatment 2,4,6,8 (mean 5, var 20/3).
        let c = mean_rows(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let t = mean_rows(&[2.0, 4.0, 6.0, 8.0]);
        let l = lift(&c, &t, &Plan::default());
        assert_eq!(l.absolute, Some(2.0));
        let (a, b) = (2.5 / 5.0, (20.0 / 3.0) / 4.0);
        let df = (a + b) * (a + b) / (a * a / 4.0 + b * b / 3.0);
        let half = t_quantile(0.975, df) * (a + b).sqrt();
        assert!((l.absolute_low.unwrap() - (2.0 - half)).abs() < 1e-12);
        assert!((l.relative.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // scipy.stats.ttest_ind([2, 4, 6, 8], [1, 2, 3, 4, 5], equal_var=False).pvalue
        assert!((l.p_value.unwrap() - 0.235_194_111_389_405_57).abs() < 1e-12, "{l:?}");
    }

    #[test]
    fn too_little_data_says_so_instead_of_nan() {
        let empty = Moments::of(std::iter::empty());
        let one = mean_rows(&[1.0]);
        let constant = mean_rows(&[1.0, 1.0, 1.0]);
        let zeros = mean_rows(&[0.0, 0.0, 0.0]);
        assert!(summarize(&empty, &Plan::default()).note.is_some());
        assert!(summarize(&one, &Plan::default()).ci_low.is_none());
        let l = lift(&empty, &constant, &Plan::default());
        assert!(l.note.is_some() && l.absolute.is_none());
        let l = lift(&constant, &constant, &Plan::default());
        assert_eq!(l.absolute, Some(0.0));
        assert!(l.absolute_low.is_none() && l.note.is_some());
        let l = lift(&zeros, &mean_rows(&[0.0, 1.0, 2.0]), &Plan { cuped: true, ..Plan::default() });
        assert!(l.relative.is_none() && l.absolute_low.is_some() && l.note.is_some(), "{l:?}");
        // A ratio metric with no denominator at all.
        let no_denominator = Moments::of([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]]);
        assert!(summarize(&no_denominator, &Plan::default()).mean.is_none());
        assert!(lift(&no_denominator, &constant, &Plan::default()).note.is_some());
        for l in [lift(&one, &one, &Plan::default()), lift(&zeros, &zeros, &Plan::default())] {
            for v in [l.absolute, l.absolute_low, l.relative, l.p_value].into_iter().flatten() {
                assert!(v.is_finite());
            }
        }
    }

    #[test]
    fn sequential_intervals_are_wider_than_fixed_ones_and_narrow_with_units() {
        let values: Vec<f64> = (0..400).map(|i| f64::from(i % 7)).collect();
        let sequential = Plan { mode: Mode::Sequential, ..Plan::default() };
        let width = |s: VariantSummary| s.ci_high.unwrap() - s.ci_low.unwrap();
        let fixed = width(summarize(&mean_rows(&values), &Plan::default()));
        let anytime = width(summarize(&mean_rows(&values), &sequential));
        assert!(anytime > fixed && anytime < 3.0 * fixed, "{anytime} vs {fixed}");
        let more: Vec<f64> = values.iter().cycle().take(4000).copied().collect();
        assert!(width(summarize(&mean_rows(&more), &sequential)) < anytime / 2.5);
    }

    #[test]
    fn srm_and_holm() {
        assert!(srm_p_value(&[5000, 5000], &[1.0, 1.0]).unwrap() > 0.99);
        assert!(srm_p_value(&[5300, 4700], &[1.0, 1.0]).unwrap() < 0.001);
        assert!(srm_p_value(&[900, 100], &[0.9, 0.1]).unwrap() > 0.99);
        assert_eq!(srm_p_value(&[10, 3], &[1.0, 0.0]), None, "one weighted variant: nothing to check");
        assert_eq!(srm_p_value(&[10, 3, 1], &[1.0, 1.0, 0.0]), Some(0.0), "units on a variant of weight 0");
        let adjusted = holm(&[0.01, 0.04, 0.03]);
        for (a, want) in adjusted.iter().zip([0.03, 0.06, 0.06]) {
            assert!((a - want).abs() < 1e-12, "{adjusted:?}");
        }
    }

    /// A standard normal draw (Box–Muller).
    fn normal(rng: &mut rand::rngs::StdRng) -> f64 {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let v: f64 = rng.random();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Runs `experiments` tests of `units` per variant with a true lift of
    /// `effect` standard deviations, looking after every `every` units per
    /// variant; the share of tests that ever declared a difference.
    fn peeking(experiments: usize, units: usize, every: usize, effect: f64, mode: Mode, seed: u64) -> f64 {
        let plan = Plan { mode, planned_units: (2 * units) as f64, ..Plan::default() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut rejected = 0;
        for _ in 0..experiments {
            let (mut c, mut t) = (Vec::with_capacity(units), Vec::with_capacity(units));
            let mut stopped = false;
            for i in 1..=units {
                c.push(10.0 + normal(&mut rng));
                t.push(10.0 + effect + normal(&mut rng));
                if i % every == 0 && !stopped && lift(&mean_rows(&c), &mean_rows(&t), &plan).significant {
                    stopped = true;
                }
            }
            rejected += usize::from(stopped);
        }
        rejected as f64 / experiments as f64
    }

    #[test]
    fn anytime_valid_intervals_keep_their_false_positive_rate_under_continuous_peeking() {
        // 1,000 A/A tests of 2,000 units per variant, looked at every 50 units per variant (40 looks each).
        let sequential = peeking(1000, 2000, 50, 0.0, Mode::Sequential, 7);
        let naive = peeking(1000, 2000, 50, 0.0, Mode::Fixed, 7);
        eprintln!("A/A with 40 looks: anytime-valid false positives {sequential}, fixed-horizon peeking {naive}");
        assert!(sequential <= 0.05, "anytime-valid false positives {sequential}");
        assert!(naive > 0.10, "peeking at a fixed-horizon test should inflate its false positives: {naive}");
    }

    #[test]
    fn a_known_effect_is_detected_with_the_stated_power() {
        // 0.1 sd at 4,000 units per variant: a fixed-horizon test at the end has power 0.98; the sequence,
        // looked at every 100 units, stops with a true effect in at least 90% of tests.
        let power = peeking(200, 4000, 100, 0.1, Mode::Sequential, 11);
        eprintln!("0.1 sd at 4,000 units per variant, 40 looks: sequential power {power}");
        assert!(power >= 0.9, "sequential power {power}");
    }

    #[test]
    fn t_quantiles_hold_at_any_degrees_of_freedom() {
        // scipy.stats.t.ppf, to the last digit.
        let cases = [
            (0.975, 10.0, 2.2281388519649385),
            (0.975, 100.0, 1.9839715185235518),
            (0.995, 1500.5, 2.5791098372875294),
            (0.975, 99_597.0, 1.959987803526266),
            (0.025, 199_866.6, -1.9599758538836678),
            (0.975, 2e6, 1.9599651706763748),
            (0.9995, 2e6, 3.2905315963637904),
        ];
        for (p, df, expected) in cases {
            let q = t_quantile(p, df);
            assert!(((q - expected) / expected).abs() < 1e-10, "t_quantile({p}, {df}) = {q}, scipy {expected}");
        }
        assert!((t_cdf(1.9599651706763748, 2e6) - 0.975).abs() < 1e-9, "{}", t_cdf(1.9599651706763748, 2e6));
    }
}
