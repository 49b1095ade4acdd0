//! A deployment's online experiment, analysed: its exposure log joined with
//! the outcome events, per unit, then the statistics of
//! [`plinth_ml::abtest`] per variant and against the control.
//!
//! A unit belongs to the variant of its first (non-shadow) exposure since
//! the analysis starts (intent to treat: a unit that later saw another
//! variant, after a weight change, stays where it started and is counted in
//! [`Analysis::units_in_several_variants`]). Its metric counts the events of
//! the metric's kind in the attribution window after that first exposure;
//! its covariate (CUPED) counts the same over the same length of time just
//! before it. Events that name the deployment and events posted in its
//! workspace that name none count; events naming another deployment, or
//! posted in another workspace without one, do not.

use std::collections::HashMap;
use std::sync::Arc;

use plinth_core::deployments::{Deployment, TrafficMode};
use plinth_ml::abtest::{self, Lift, VariantSummary};
pub use plinth_ml::abtest::{Mode, Plan};
use plinth_ml::interleave::Preference;
use serde::Serialize;

use crate::Serving;
use crate::error::{Error, Result};
use crate::events::{unscoped, valid_kind};
use crate::interleaved::INTERLEAVED;
use crate::join::{JoinSpec, Joined, combine, event_shards, exposure_shards};

pub use plinth_core::policy::Aggregate;

/// What to analyse.
#[derive(Debug, Clone)]
pub struct AnalysisQuery {
    /// The event kind the metric counts.
    pub event: String,
    pub aggregate: Aggregate,
    /// The attribution window after each unit's first exposure.
    pub window_ms: i64,
    /// The control variant (the deployment's first by default).
    pub control: Option<String>,
    /// Exposures from this time on (everything kept by default).
    pub since_ms: Option<i64>,
    /// The analysis as of this time: exposures and events after it are left
    /// out (now by default — then events a client's clock put a little ahead
    /// count; never later than now).
    pub until_ms: Option<i64>,
    pub plan: Plan,
}

impl AnalysisQuery {
    /// A named metric's analysis under `plan` (its CUPED setting is the metric's).
    pub fn of_metric(metric: &plinth_core::policy::MetricDef, plan: Plan) -> AnalysisQuery {
        AnalysisQuery {
            event: metric.event.clone(),
            aggregate: metric.aggregate,
            window_ms: metric.window_ms,
            control: None,
            since_ms: None,
            until_ms: None,
            plan: Plan { cuped: metric.cuped, ..plan },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantAnalysis {
    pub name: String,
    /// The weight configured now.
    pub weight: u32,
    pub units: u64,
    pub mean: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub exposures: u64,
    /// Guardrails from the exposure log: served latency, fallbacks and failures.
    pub p95_latency_ms: Option<f64>,
    pub fallback_share: Option<f64>,
    /// Exposures that failed on our side, over all exposures.
    pub error_rate: Option<f64>,
    /// Against the control (absent for the control itself).
    pub lift: Option<Lift>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub deployment: String,
    pub event: String,
    pub aggregate: Aggregate,
    pub window_ms: i64,
    pub mode: &'static str,
    pub alpha: f64,
    pub cuped: bool,
    /// Sequential mode: the total units its interval was tuned for.
    pub planned_units: Option<f64>,
    pub control: String,
    pub since_ms: Option<i64>,
    pub until_ms: i64,
    pub variants: Vec<VariantAnalysis>,
    /// Pearson's χ² test of the units per variant against the weights, over
    /// the units first exposed since the weights were last set (`srm_since_ms`,
    /// the deployment's last change: a ramp's earlier weights do not count).
    pub srm_p_value: Option<f64>,
    pub srm_since_ms: Option<i64>,
    /// The units that check counted.
    pub srm_units: u64,
    /// `srm_p_value` < 0.001: the split itself is broken; do not trust the lifts.
    pub srm_mismatch: bool,
    pub units_in_several_variants: u64,
    /// An interleaved deployment's answer (`variants` is then empty and
    /// there is no split to check).
    pub interleaving: Option<InterleavingAnalysis>,
}

/// Two rankers compared by interleaving: each unit's events on items (in the
/// attribution window after its first exposure) credit the variant that
/// contributed the item in the unit's latest exposure showing it before
/// the event; a unit prefers the variant with more credits.
#[derive(Debug, Clone, Serialize)]
pub struct InterleavingAnalysis {
    pub control: String,
    pub challenger: String,
    /// Interleaved exposures and the units they reached.
    pub exposures: u64,
    pub exposed_units: u64,
    /// Units with a credited event, their wins, and the mean preference for
    /// the challenger with its interval.
    #[serde(flatten)]
    pub preference: Preference,
}

impl Analysis {
    /// The answer's frame: what was asked, with no figures yet.
    fn frame(deployment: &Deployment, q: &AnalysisQuery, until_ms: i64, control: String) -> Analysis {
        Analysis {
            deployment: deployment.name.clone(),
            event: q.event.clone(),
            aggregate: q.aggregate,
            window_ms: q.window_ms,
            mode: q.plan.mode.as_str(),
            alpha: q.plan.alpha,
            cuped: q.plan.cuped,
            planned_units: (q.plan.mode == Mode::Sequential).then_some(q.plan.planned_units),
            control,
            since_ms: q.since_ms,
            until_ms,
            variants: Vec::new(),
            srm_p_value: None,
            srm_since_ms: None,
            srm_units: 0,
            srm_mismatch: false,
            units_in_several_variants: 0,
            interleaving: None,
        }
    }
}

/// Below this the split is called broken.
pub const SRM_THRESHOLD: f64 = 0.001;

impl Serving {
    /// `deployment`'s experiment for `q` (the caller has checked that it may read it).
    pub async fn analyze(&self, deployment: &Deployment, q: &AnalysisQuery) -> Result<Analysis> {
        if !valid_kind(&q.event) {
            return Err(Error::Invalid(format!(
                "event must be an event kind (1-64 letters, digits, '_', '-' or '.'), got '{}'",
                q.event
            )));
        }
        if q.window_ms <= 0 {
            return Err(Error::Invalid(format!(
                "the attribution window must end after it starts (window > 0), got {} ms",
                q.window_ms
            )));
        }
        if !(q.plan.alpha.is_finite() && q.plan.alpha > 0.0 && q.plan.alpha < 1.0) {
            return Err(Error::Invalid(format!("alpha must be between 0 and 1, got {}", q.plan.alpha)));
        }
        if !q.plan.planned_units.is_finite() || q.plan.planned_units < 2.0 {
            return Err(Error::Invalid(format!("planned_units must be at least 2, got {}", q.plan.planned_units)));
        }
        let until_ms = q.until_ms.map_or_else(|| self.now_ms(), |u| u.min(self.now_ms()));
        if q.since_ms.is_some_and(|s| s > until_ms) {
            return Err(Error::Invalid(
                "since_ms is in the future (or after until_ms): the analysis would end before it starts".into(),
            ));
        }
        if deployment.mode == TrafficMode::Interleave {
            return self.analyze_interleaved(deployment, q, until_ms).await;
        }
        let names: Vec<&str> = deployment.variants.iter().map(|v| v.name.as_str()).collect();
        let control = q.control.clone().unwrap_or_else(|| names.first().map_or_else(String::new, |n| n.to_string()));
        let Some(control_index) = names.iter().position(|n| *n == control) else {
            return Err(Error::Invalid(format!(
                "control variant '{control}' does not exist in deployment '{}' (its variants: {})",
                deployment.name,
                names.join(", ")
            )));
        };

        // Each segment decoded as it is read (only the columns the join needs), then the units joined on every core.
        let spec = Arc::new(JoinSpec {
            variants: names.iter().map(|n| n.to_string()).collect(),
            event: q.event.clone(),
            aggregate: q.aggregate,
            window_ms: q.window_ms,
            since_ms: q.since_ms,
            until_ms,
            // As of a time asked for, events after it are left out; as of now, events a client's clock put a little
            // ahead (at most MAX_FUTURE_MS) count.
            events_until_ms: if q.until_ms.is_some() { until_ms } else { i64::MAX },
            cuped: q.plan.cuped,
            weights_since_ms: deployment.updated_time,
        });
        let name = deployment.name.as_str();
        let of = spec.clone();
        let exposures = self.exposures().read_segments(name, q.since_ms, move |b| exposure_shards(&of, b)).await?;
        // Events from the covariate's period on: those naming the deployment and those posted in its workspace.
        let events_since = q.since_ms.map(|s| s - q.window_ms);
        let mut events = Vec::new();
        for partition in [name.to_string(), unscoped(&deployment.workspace)] {
            let of = spec.clone();
            events.extend(self.events().read_segments(&partition, events_since, move |b| event_shards(&of, b)).await?);
        }
        let joined = tokio::task::spawn_blocking(move || combine(&spec, exposures, events))
            .await
            .map_err(|e| Error::Internal(format!("the analysis stopped: {e}")))?;
        let Joined { moments, exposures, fallbacks, errors, p95_latency_ms, several, srm_units } = joined;
        for (v, m) in moments.iter().enumerate() {
            if m.n == 0.0 && deployment.variants[v].weight > 0 {
                return Err(Error::Invalid(format!(
                    "variant '{}' has no exposed units{}: nothing to analyse yet",
                    names[v],
                    q.since_ms.map_or_else(String::new, |s| format!(" since {s}"))
                )));
            }
        }
        let treatments: Vec<usize> = (0..names.len()).filter(|&v| v != control_index && moments[v].n > 0.0).collect();
        let lifts = abtest::compare(
            &moments[control_index],
            &treatments.iter().map(|&v| &moments[v]).collect::<Vec<_>>(),
            &q.plan,
        );
        let mut lift_of: HashMap<usize, Lift> = treatments.into_iter().zip(lifts).collect();
        // The split is checked against the weights over the units first exposed since they were set.
        let weights: Vec<f64> = deployment.variants.iter().map(|v| f64::from(v.weight)).collect();
        let srm_p_value = abtest::srm_p_value(&srm_units, &weights);
        let variants = deployment
            .variants
            .iter()
            .enumerate()
            .map(|(v, spec)| {
                let VariantSummary { units, mean, ci_low, ci_high, note } = abtest::summarize(&moments[v], &q.plan);
                let served = exposures[v];
                VariantAnalysis {
                    name: spec.name.clone(),
                    weight: spec.weight,
                    units,
                    mean,
                    ci_low,
                    ci_high,
                    exposures: served,
                    p95_latency_ms: p95_latency_ms[v],
                    fallback_share: (served > 0).then(|| fallbacks[v] as f64 / served as f64),
                    error_rate: (served > 0).then(|| errors[v] as f64 / served as f64),
                    lift: lift_of.remove(&v),
                    note,
                }
            })
            .collect();
        Ok(Analysis {
            variants,
            srm_p_value,
            srm_mismatch: srm_p_value.is_some_and(|p| p < SRM_THRESHOLD),
            srm_since_ms: Some(deployment.updated_time.max(q.since_ms.unwrap_or(i64::MIN))),
            srm_units: srm_units.iter().sum(),
            units_in_several_variants: several,
            ..Analysis::frame(deployment, q, until_ms, control)
        })
    }
}

impl Serving {
    /// An interleaved deployment's experiment: the per-unit preference
    /// between its two rankers (see [`InterleavingAnalysis`]). Reads whole
    /// records (not the columnar join): interleaving needs few units.
    async fn analyze_interleaved(&self, deployment: &Deployment, q: &AnalysisQuery, until_ms: i64) -> Result<Analysis> {
        let names: Vec<&str> = deployment.variants.iter().map(|v| v.name.as_str()).collect();
        let (control, challenger) = match (q.control.as_deref(), names.as_slice()) {
            (None, [a, b]) => (*a, *b),
            (Some(c), [a, b]) if c == *a => (*a, *b),
            (Some(c), [a, b]) if c == *b => (*b, *a),
            (Some(c), _) => {
                return Err(Error::Invalid(format!(
                    "control variant '{c}' does not exist in deployment '{}' (its variants: {})",
                    deployment.name,
                    names.join(", ")
                )));
            }
            (None, _) => return Err(Error::Internal(format!("deployment '{}' is not two variants", deployment.name))),
        };
        let name = deployment.name.as_str();
        let in_time = |t: i64| q.since_ms.is_none_or(|s| t >= s) && t <= until_ms;
        let mut exposures = self
            .exposures()
            .newest(name, q.since_ms, usize::MAX, |e| !e.shadow && e.variant == INTERLEAVED && in_time(e.time_ms))
            .await?;
        exposures.reverse();
        // Each unit's interleaved exposures, oldest first.
        let mut units: HashMap<&str, Vec<&crate::Exposure>> = HashMap::new();
        for e in &exposures {
            units.entry(e.unit.as_str()).or_default().push(e);
        }
        let kind = |e: &crate::events::Event| e.kind == q.event && e.item.is_some();
        let mut events = self.events().newest(name, q.since_ms, usize::MAX, kind).await?;
        events.extend(self.events().newest(&unscoped(&deployment.workspace), q.since_ms, usize::MAX, kind).await?);
        events.reverse();
        let mut credits: HashMap<&str, (f64, f64)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for ev in &events {
            let (Some(shown), Some(item)) = (units.get(ev.unit.as_str()), ev.item.as_deref()) else { continue };
            let first = shown[0].time_ms;
            if !(first..first + q.window_ms).contains(&ev.time_ms) || q.until_ms.is_some_and(|_| ev.time_ms > until_ms)
            {
                continue;
            }
            if let Some(id) = &ev.event_id
                && !seen.insert((ev.unit.as_str(), id.as_str()))
            {
                continue;
            }
            // The latest exposure at or before the event that showed the item says who contributed it.
            let ranker =
                shown.iter().rev().filter(|e| e.time_ms <= ev.time_ms).find_map(|e| {
                    e.items.iter().position(|i| &**i == item).and_then(|p| e.rankers.get(p)).map(|r| &**r)
                });
            let credit = credits.entry(ev.unit.as_str()).or_default();
            match ranker {
                Some(r) if r == control => credit.0 += 1.0,
                Some(r) if r == challenger => credit.1 += 1.0,
                _ => {}
            }
        }
        let preference = plinth_ml::interleave::preference(credits.into_values(), &q.plan);
        Ok(Analysis {
            cuped: false,
            interleaving: Some(InterleavingAnalysis {
                control: control.to_string(),
                challenger: challenger.to_string(),
                exposures: exposures.len() as u64,
                exposed_units: units.len() as u64,
                preference,
            }),
            ..Analysis::frame(deployment, q, until_ms, control.to_string())
        })
    }
}
