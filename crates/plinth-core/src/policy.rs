//! A deployment's experiment, declared: the metrics it is judged by (named,
//! so analyses and policies refer to them by name) and the policy that acts
//! on them — a primary metric, guardrails, the evidence a decision needs
//! (units, duration), a ramp of the challenger's share and whether a win
//! moves an alias. The evaluation itself is serving's (`plinth_serving::policy`);
//! this module holds the nouns, their checks, and what a decision changes.

use serde::{Deserialize, Serialize};

use crate::deployments::{Deployment, TrafficMode};
use crate::{Error, Result};

/// How a unit's events become its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Events of the kind.
    Count,
    /// Their values (an event without one adds 0).
    Sum,
    /// 1 if the unit had at least one, else 0.
    Conversion,
    /// Events per exposure: the unit's events over its exposures in the
    /// window (a ratio metric, by the delta method).
    Ratio,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Conversion => "conversion",
            Aggregate::Ratio => "ratio",
        }
    }

    pub fn parse(s: &str) -> Result<Aggregate> {
        match s {
            "count" => Ok(Aggregate::Count),
            "sum" => Ok(Aggregate::Sum),
            "conversion" => Ok(Aggregate::Conversion),
            "ratio" => Ok(Aggregate::Ratio),
            other => {
                Err(Error::invalid(format!("aggregate must be one of count, sum, conversion, ratio; got '{other}'")))
            }
        }
    }
}

/// Whether `kind` is an event kind: 1-64 letters, digits, '_', '-' or '.'.
pub fn valid_event_kind(kind: &str) -> bool {
    (1..=64).contains(&kind.len()) && kind.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A metric defined on a deployment: `minutes` = the sum of `play` values in
/// the hour after each unit's first exposure, with CUPED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDef {
    pub name: String,
    pub event: String,
    pub aggregate: Aggregate,
    /// The attribution window after each unit's first exposure.
    pub window_ms: i64,
    #[serde(default)]
    pub cuped: bool,
}

impl MetricDef {
    pub fn validate(&self) -> Result<()> {
        let ok = (1..=64).contains(&self.name.len())
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(Error::invalid(format!(
                "Invalid metric name '{}': use 1-64 letters, digits, '_', '-' or '.'",
                self.name
            )));
        }
        if !valid_event_kind(&self.event) {
            return Err(Error::invalid(format!(
                "Metric '{}': event must be an event kind (1-64 letters, digits, '_', '-' or '.'), got '{}'",
                self.name, self.event
            )));
        }
        if self.window_ms <= 0 {
            return Err(Error::invalid(format!(
                "Metric '{}': the attribution window must end after it starts (window > 0), got {} ms",
                self.name, self.window_ms
            )));
        }
        Ok(())
    }
}

/// What must hold while the challenger takes traffic; a breach stops it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "guardrail")]
pub enum Guardrail {
    /// The challenger's share of exposures that failed on our side stays at
    /// or below `max` (0..1).
    ErrorRate { max: f64 },
    /// The challenger's 95th-percentile latency stays at or below `max` ms.
    P95LatencyMs { max: f64 },
    /// A named metric does not drop by more than `max_drop` (relative, 0.05 =
    /// 5%): breached once the anytime-valid interval of the relative lift
    /// lies wholly below −`max_drop`.
    Metric { metric: String, max_drop: f64 },
}

impl Guardrail {
    /// How decisions and pages name it: "error rate ≤ 0.05".
    pub fn describe(&self) -> String {
        match self {
            Guardrail::ErrorRate { max } => format!("error rate ≤ {max}"),
            Guardrail::P95LatencyMs { max } => format!("p95 latency ≤ {max} ms"),
            Guardrail::Metric { metric, max_drop } => format!("{metric} drops by at most {}%", max_drop * 100.0),
        }
    }
}

/// Where a policy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyStatus {
    /// Evaluated periodically.
    Running,
    /// A guardrail was breached or the challenger lost: its weight is 0.
    Stopped,
    /// The challenger won at the last stage and its version took the alias.
    Promoted,
    /// The challenger won at the last stage; nothing more to do (no alias to move).
    Won,
}

impl PolicyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyStatus::Running => "running",
            PolicyStatus::Stopped => "stopped",
            PolicyStatus::Promoted => "promoted",
            PolicyStatus::Won => "won",
        }
    }
}

/// What the evaluator has done so far; changes only with a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyState {
    pub status: PolicyStatus,
    /// The ramp stage the challenger is at (0 without a ramp).
    pub stage: usize,
    /// When the current stage began: its analysis counts units first exposed since.
    pub stage_started_ms: i64,
    /// The last decision's reason.
    pub reason: Option<String>,
}

/// How a deployment's challenger is judged and what a judgement does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The primary metric: one of the deployment's named metrics.
    pub metric: String,
    pub control: String,
    pub challenger: String,
    pub guardrails: Vec<Guardrail>,
    /// Units each variant needs (in the current stage) before a win counts.
    pub min_units: u64,
    /// Time a stage must run before a win counts.
    pub min_duration_ms: i64,
    /// Exposures the challenger needs before its error rate or latency is judged.
    pub min_exposures: u64,
    /// The challenger's share of traffic, in percent, stage by stage
    /// (`[1, 10, 50]`); empty: the configured weights stay.
    pub ramp: Vec<u32>,
    /// An alias of the challenger's model that a win at the last stage moves
    /// to the challenger's version (the control usually follows it).
    pub promote: Option<String>,
    /// 1 − the confidence level of the anytime-valid intervals.
    pub alpha: f64,
    pub state: PolicyState,
}

pub const DEFAULT_MIN_UNITS: u64 = 100;
pub const DEFAULT_MIN_EXPOSURES: u64 = 100;

impl Policy {
    /// Checks the policy against its deployment (variants, metrics, mode).
    pub fn validate(&self, d: &Deployment) -> Result<()> {
        if d.mode != TrafficMode::Split {
            return Err(Error::invalid("A policy needs a split deployment (interleaving has no weights to act on)"));
        }
        if d.variants.len() != 2 {
            return Err(Error::invalid(
                "A policy needs exactly two variants: the control and the challenger it may ramp, stop or promote",
            ));
        }
        for (role, name) in [("control", &self.control), ("challenger", &self.challenger)] {
            if !d.variants.iter().any(|v| &v.name == name) {
                return Err(Error::invalid(format!(
                    "Policy: {role} variant '{name}' does not exist in deployment '{}'",
                    d.name
                )));
            }
        }
        if self.control == self.challenger {
            return Err(Error::invalid("Policy: the control and the challenger must be different variants"));
        }
        let known = |m: &str| d.metrics.iter().any(|x| x.name == m);
        if !known(&self.metric) {
            return Err(Error::invalid(format!(
                "Policy: metric '{}' is not defined on deployment '{}' (define it under metrics)",
                self.metric, d.name
            )));
        }
        for g in &self.guardrails {
            match g {
                Guardrail::ErrorRate { max } if !(max.is_finite() && (0.0..1.0).contains(max)) => {
                    return Err(Error::invalid(format!("Guardrail error_rate must be in [0, 1), got {max}")));
                }
                Guardrail::P95LatencyMs { max } if !(max.is_finite() && *max > 0.0) => {
                    return Err(Error::invalid(format!("Guardrail p95_latency_ms must be above 0, got {max}")));
                }
                Guardrail::Metric { metric, .. } if !known(metric) => {
                    return Err(Error::invalid(format!(
                        "Guardrail: metric '{metric}' is not defined on deployment '{}'",
                        d.name
                    )));
                }
                Guardrail::Metric { max_drop, .. } if !(max_drop.is_finite() && (0.0..1.0).contains(max_drop)) => {
                    return Err(Error::invalid(format!("Guardrail max_drop must be in [0, 1), got {max_drop}")));
                }
                _ => {}
            }
        }
        if self.guardrails.len() > 16 {
            return Err(Error::invalid("A policy has at most 16 guardrails"));
        }
        if self.min_duration_ms < 0 {
            return Err(Error::invalid(format!("min_duration must not be negative, got {} ms", self.min_duration_ms)));
        }
        if self.min_units < 2 {
            return Err(Error::invalid(format!("min_units must be at least 2, got {}", self.min_units)));
        }
        if self.ramp.len() > 10 {
            return Err(Error::invalid("A ramp has at most 10 stages"));
        }
        if self.ramp.iter().any(|p| !(1..=100).contains(p)) || self.ramp.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::invalid(format!("ramp must be increasing percentages in 1..=100, got {:?}", self.ramp)));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::invalid(format!("alpha must be between 0 and 1, got {}", self.alpha)));
        }
        if let Some(alias) = &self.promote {
            crate::registry::validate_alias(alias)?;
        }
        Ok(())
    }

    /// The variants' weights at ramp stage `stage` (the challenger's percent,
    /// the control the rest); `None` without a ramp.
    pub fn ramp_weights(&self, stage: usize) -> Option<(u32, u32)> {
        let share = *self.ramp.get(stage)?;
        Some((100 - share, share))
    }

    /// Whether `other` is the same policy, whatever its state: an update that
    /// restates the policy keeps its progress.
    pub fn same_terms(&self, other: &Policy) -> bool {
        Policy { state: other.state.clone(), ..self.clone() } == *other
    }
}

impl Deployment {
    /// The metric named `name`.
    pub fn metric(&self, name: &str) -> Result<&MetricDef> {
        self.metrics.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.metrics.iter().map(|m| m.name.as_str()).collect();
            Error::invalid(format!(
                "no metric named '{name}' is defined on deployment '{}'{}",
                self.name,
                if known.is_empty() {
                    ": give it inline with event= and aggregate=".to_string()
                } else {
                    format!(" (its metrics: {})", known.join(", "))
                }
            ))
        })
    }

    /// Sets the variants' weights to the policy's stage `stage` (a ramp's
    /// share); the weights stay as they are without a ramp.
    pub fn apply_stage(&mut self, stage: usize) {
        let Some(policy) = &self.policy else { return };
        let Some((control, challenger)) = policy.ramp_weights(stage) else { return };
        let (c, t) = (policy.control.clone(), policy.challenger.clone());
        for v in &mut self.variants {
            if v.name == c {
                v.weight = control;
            } else if v.name == t {
                v.weight = challenger;
            }
        }
    }

    /// Takes the challenger out of traffic (its weight 0, the control's at
    /// least 1).
    pub fn stop_challenger(&mut self) {
        let Some(policy) = &self.policy else { return };
        let (c, t) = (policy.control.clone(), policy.challenger.clone());
        for v in &mut self.variants {
            if v.name == t {
                v.weight = 0;
            } else if v.name == c && v.weight == 0 {
                v.weight = 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployments::{ModelRef, Variant};

    fn deployment() -> Deployment {
        let v = |name: &str, w| Variant { name: name.into(), model: ModelRef::parse("m@champion").unwrap(), weight: w };
        Deployment {
            name: "d".into(),
            salt: "d".into(),
            variants: vec![v("a", 90), v("b", 10)],
            shadow: None,
            mode: TrafficMode::Split,
            metrics: vec![MetricDef {
                name: "minutes".into(),
                event: "play".into(),
                aggregate: Aggregate::Sum,
                window_ms: 3_600_000,
                cuped: false,
            }],
            policy: None,
            created_time: 0,
            updated_time: 0,
            workspace: "default".into(),
        }
    }

    fn policy() -> Policy {
        Policy {
            metric: "minutes".into(),
            control: "a".into(),
            challenger: "b".into(),
            guardrails: vec![Guardrail::ErrorRate { max: 0.05 }],
            min_units: 100,
            min_duration_ms: 0,
            min_exposures: 100,
            ramp: vec![1, 10, 50],
            promote: Some("champion".into()),
            alpha: 0.05,
            state: PolicyState { status: PolicyStatus::Running, stage: 0, stage_started_ms: 0, reason: None },
        }
    }

    #[test]
    fn policies_are_checked_against_their_deployment() {
        let d = deployment();
        assert!(policy().validate(&d).is_ok());
        let bad = [
            Policy { metric: "clicks".into(), ..policy() },
            Policy { challenger: "c".into(), ..policy() },
            Policy { challenger: "a".into(), ..policy() },
            Policy { ramp: vec![10, 10], ..policy() },
            Policy { ramp: vec![0, 10], ..policy() },
            Policy { ramp: vec![50, 101], ..policy() },
            Policy { alpha: 1.0, ..policy() },
            Policy { min_units: 1, ..policy() },
            Policy { guardrails: vec![Guardrail::ErrorRate { max: 1.5 }], ..policy() },
            Policy { guardrails: vec![Guardrail::Metric { metric: "x".into(), max_drop: 0.1 }], ..policy() },
        ];
        for p in bad {
            assert!(p.validate(&d).is_err(), "{p:?}");
        }
        let three = Deployment { variants: [d.variants.clone(), vec![d.variants[0].clone()]].concat(), ..d.clone() };
        assert!(policy().validate(&three).is_err());
        let interleaved = Deployment { mode: TrafficMode::Interleave, ..d };
        assert!(policy().validate(&interleaved).is_err());
    }

    #[test]
    fn stages_set_weights_and_a_stop_takes_the_challenger_out() {
        let mut d = Deployment { policy: Some(policy()), ..deployment() };
        d.apply_stage(1);
        assert_eq!(d.variants.iter().map(|v| v.weight).collect::<Vec<_>>(), vec![90, 10]);
        d.apply_stage(2);
        assert_eq!(d.variants.iter().map(|v| v.weight).collect::<Vec<_>>(), vec![50, 50]);
        d.apply_stage(3); // past the ramp: unchanged
        assert_eq!(d.variants.iter().map(|v| v.weight).collect::<Vec<_>>(), vec![50, 50]);
        d.stop_challenger();
        assert_eq!(d.variants.iter().map(|v| v.weight).collect::<Vec<_>>(), vec![50, 0]);
        assert!(d.metric("minutes").is_ok());
        assert!(d.metric("nope").unwrap_err().to_string().contains("its metrics: minutes"));
    }

    #[test]
    fn restating_a_policy_keeps_its_progress() {
        let a = policy();
        let b = Policy { state: PolicyState { stage: 2, ..a.state.clone() }, ..a.clone() };
        assert!(a.same_terms(&b));
        assert!(!a.same_terms(&Policy { min_units: 5, ..b }));
    }
}
