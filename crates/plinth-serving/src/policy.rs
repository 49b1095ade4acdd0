//! Deployment policies, evaluated: every interval one process (the holder of
//! the `policy-evaluator` lease in the store, so exactly one of many replicas
//! at a time) analyses each running policy's experiment and acts on it.
//!
//! An evaluation analyses the units first exposed since the current stage
//! began (so a ramp's earlier weights never skew the sample-ratio check) in
//! sequential mode: the anytime-valid intervals of [`plinth_ml::abtest`]
//! (Waudby-Smith et al.'s asymptotic confidence sequence, 2024), valid however often
//! they are looked at, so evaluating every minute does not inflate the error
//! rates. Then, in this order:
//! 1. a breached guardrail stops the challenger (its weight 0): its error
//!    rate or p95 latency above the bound once it has `min_exposures`
//!    exposures, or a guarded metric's relative lift wholly below −max_drop
//!    (each variant with at least [`GUARDRAIL_MIN_UNITS`] units);
//! 2. else a sample-ratio mismatch holds every other decision (the split is broken);
//! 3. with `min_units` per variant, a primary lift wholly below 0 stops the
//!    challenger;
//! 4. with `min_units` per variant and `min_duration` into the stage, a lift
//!    wholly above 0 advances the ramp, or at its last stage moves the
//!    policy's alias to the challenger's version (`promote`) or declares the
//!    win; anything else holds.
//!
//! Each decision is stored with the deployment (weights and the policy's
//! state) only if the deployment is unchanged since it was read, and is an
//! audit record by `plinth:policy` with the traffic before and after and the
//! figures (the decision log).

use std::time::Duration;

use plinth_core::audit::{Action, Actor};
use plinth_core::deployments::Deployment;
use plinth_core::policy::{Guardrail, Policy, PolicyState, PolicyStatus};
use plinth_ml::abtest::{Mode, Plan};
use serde::Serialize;

use crate::Serving;
use crate::analysis::{Analysis, AnalysisQuery};
use crate::error::{Error, Result};

/// The store lease whose holder evaluates every policy.
pub const LEASE: &str = "policy-evaluator";

/// How often policies are evaluated by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Units each variant needs before a metric guardrail is judged (below it
/// the variance estimate itself is too unsteady to stop anything on).
pub const GUARDRAIL_MIN_UNITS: u64 = 30;

/// One guardrail as it stands.
#[derive(Debug, Clone, Serialize)]
pub struct GuardrailCheck {
    pub guardrail: Guardrail,
    /// How it reads: "error rate ≤ 0.05".
    pub label: String,
    /// The challenger's figure (a metric guardrail: the relative lift's upper bound).
    pub value: Option<f64>,
    pub breached: bool,
    /// Why it is not judged yet, or what it compares.
    pub note: Option<String>,
}

/// What an evaluation calls for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "reason")]
pub enum Verdict {
    Hold(String),
    Stop(String),
    Advance(String),
    Promote(String),
    Win(String),
}

impl Verdict {
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Hold(r) | Verdict::Stop(r) | Verdict::Advance(r) | Verdict::Promote(r) | Verdict::Win(r) => r,
        }
    }
}

/// A policy's evaluation now: its figures and what they call for.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub deployment: String,
    pub status: PolicyStatus,
    pub stage: usize,
    pub stage_started_ms: i64,
    /// The challenger's share now, when the policy ramps.
    pub share: Option<u32>,
    /// The primary metric, sequential, since the stage began (absent with no units yet).
    pub primary: Option<Analysis>,
    pub guardrails: Vec<GuardrailCheck>,
    pub verdict: Verdict,
}

/// What an evaluation's figures amount to, for [`verdict`].
#[derive(Debug, Clone, Default)]
struct Figures {
    control_units: u64,
    challenger_units: u64,
    /// The primary metric's absolute lift interval (anytime-valid).
    lift_low: Option<f64>,
    lift_high: Option<f64>,
    srm_mismatch: bool,
    stage_age_ms: i64,
    /// Why there are no figures (nobody exposed yet, …).
    missing: Option<String>,
}

fn fmt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v:.4}"))
}

/// The decision rule (see the module's doc), from figures alone.
fn verdict(policy: &Policy, f: &Figures, checks: &[GuardrailCheck]) -> Verdict {
    if let Some(breach) = checks.iter().find(|c| c.breached) {
        return Verdict::Stop(format!(
            "guardrail breached: {} ({})",
            breach.label,
            breach.note.as_deref().unwrap_or("")
        ));
    }
    if let Some(missing) = &f.missing {
        return Verdict::Hold(missing.clone());
    }
    if f.srm_mismatch {
        return Verdict::Hold("sample ratio mismatch: the split itself is broken, so no decision is taken".into());
    }
    let interval = format!("lift of {} [{}, {}]", policy.metric, fmt(f.lift_low), fmt(f.lift_high));
    let units = format!("{} control and {} challenger units", f.control_units, f.challenger_units);
    if f.control_units < policy.min_units || f.challenger_units < policy.min_units {
        return Verdict::Hold(format!("waiting for {} units per variant: {units} so far", policy.min_units));
    }
    if f.lift_high.is_some_and(|h| h < 0.0) {
        return Verdict::Stop(format!("the challenger loses: {interval} lies below 0 ({units})"));
    }
    if !f.lift_low.is_some_and(|l| l > 0.0) {
        return Verdict::Hold(format!("no decision yet: {interval} covers 0 ({units})"));
    }
    if f.stage_age_ms < policy.min_duration_ms {
        return Verdict::Hold(format!(
            "the challenger leads ({interval}), but the stage has run {} s of the {} s it needs",
            f.stage_age_ms / 1000,
            policy.min_duration_ms / 1000
        ));
    }
    let won = format!("the challenger wins: {interval} lies above 0 ({units})");
    let stage = policy.state.stage;
    if stage + 1 < policy.ramp.len() {
        return Verdict::Advance(format!("{won}; ramp {}% → {}%", policy.ramp[stage], policy.ramp[stage + 1]));
    }
    match &policy.promote {
        Some(alias) => Verdict::Promote(format!("{won}; @{alias} moves to the challenger's version")),
        None => Verdict::Win(won),
    }
}

impl Serving {
    /// Evaluates policies every `interval` while this process holds the
    /// evaluator's lease (taken when free, renewed each time, lasting three
    /// intervals, so a dead holder's turn passes on within that).
    pub fn start_policies(&self, interval: Duration) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        let ttl_ms = i64::try_from(interval.as_millis() * 3).unwrap_or(i64::MAX).max(3_000);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                Serving { inner }.evaluate_policies(ttl_ms).await;
            }
        });
    }

    /// One round: when this process holds (or takes) the lease, every
    /// running policy is evaluated and acted on. The decisions made.
    pub async fn evaluate_policies(&self, ttl_ms: i64) -> usize {
        let platform = &self.inner.platform;
        match platform.acquire_lease(LEASE, &self.inner.replica, ttl_ms).await {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(e) => {
                tracing::warn!(error = %e, "policies: cannot take the evaluator's lease");
                return 0;
            }
        }
        let deployments = match platform.all_deployments().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "policies: cannot list deployments");
                return 0;
            }
        };
        let mut decided = 0;
        for d in deployments {
            if !d.policy.as_ref().is_some_and(|p| p.state.status == PolicyStatus::Running) {
                continue;
            }
            match self.evaluate_policy(&d).await {
                Ok(evaluation) => match self.act(&d, &evaluation.verdict).await {
                    Ok(true) => decided += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(deployment = %d.name, error = %e, "policies: the decision failed"),
                },
                Err(e) => tracing::warn!(deployment = %d.name, error = %e, "policies: cannot evaluate"),
            }
        }
        decided
    }

    /// `d`'s policy evaluated now (the caller has checked that it may read
    /// `d`); changes nothing.
    pub async fn evaluate_policy(&self, d: &Deployment) -> Result<Evaluation> {
        let Some(policy) = &d.policy else {
            return Err(Error::Invalid(format!("deployment '{}' has no policy", d.name)));
        };
        let plan = Plan {
            mode: Mode::Sequential,
            alpha: policy.alpha,
            cuped: false,
            // Tuned to be narrowest where a decision may first fall: min_units per variant.
            planned_units: (2 * policy.min_units).max(100) as f64,
        };
        let now = self.now_ms();
        let since = Some(policy.state.stage_started_ms.min(now));
        let analyse = |metric: &str| {
            let def = d.metric(metric).cloned();
            async move {
                let q = AnalysisQuery {
                    control: Some(policy.control.clone()),
                    since_ms: since,
                    ..AnalysisQuery::of_metric(&def?, plan)
                };
                // Too little data is no figure yet, not a failure.
                match self.analyze(d, &q).await {
                    Ok(a) => Ok(Ok(a)),
                    Err(Error::Invalid(why)) => Ok(Err(why)),
                    Err(e) => Err(e),
                }
            }
        };
        let primary = analyse(&policy.metric).await?;
        let of = |a: &Analysis, name: &str| a.variants.iter().find(|v| v.name == name).cloned();
        let mut figures = Figures { stage_age_ms: now - policy.state.stage_started_ms, ..Figures::default() };
        let mut checks = Vec::new();
        match &primary {
            Ok(a) => {
                let (control, challenger) = (of(a, &policy.control), of(a, &policy.challenger));
                figures.control_units = control.as_ref().map_or(0, |v| v.units);
                figures.challenger_units = challenger.as_ref().map_or(0, |v| v.units);
                let lift = challenger.as_ref().and_then(|v| v.lift.as_ref());
                figures.lift_low = lift.and_then(|l| l.absolute_low);
                figures.lift_high = lift.and_then(|l| l.absolute_high);
                figures.srm_mismatch = a.srm_mismatch;
                let exposures = challenger.as_ref().map_or(0, |v| v.exposures);
                for g in &policy.guardrails {
                    let (value, bound) = match g {
                        Guardrail::ErrorRate { max } => (challenger.as_ref().and_then(|v| v.error_rate), *max),
                        Guardrail::P95LatencyMs { max } => (challenger.as_ref().and_then(|v| v.p95_latency_ms), *max),
                        Guardrail::Metric { .. } => continue,
                    };
                    checks.push(if exposures < policy.min_exposures {
                        GuardrailCheck {
                            guardrail: g.clone(),
                            label: g.describe(),
                            value,
                            breached: false,
                            note: Some(format!(
                                "judged from {} challenger exposures, {exposures} so far",
                                policy.min_exposures
                            )),
                        }
                    } else {
                        GuardrailCheck {
                            guardrail: g.clone(),
                            label: g.describe(),
                            value,
                            breached: value.is_some_and(|v| v > bound),
                            note: Some(format!("challenger {} over {exposures} exposures", fmt(value))),
                        }
                    });
                }
            }
            Err(why) => figures.missing = Some(why.clone()),
        }
        for g in &policy.guardrails {
            let Guardrail::Metric { metric, max_drop } = g else { continue };
            let check = match analyse(metric).await? {
                Ok(a) => {
                    let units = a.variants.iter().map(|v| v.units).min().unwrap_or(0);
                    let high = of(&a, &policy.challenger).and_then(|v| v.lift).and_then(|l| l.relative_high);
                    if units < GUARDRAIL_MIN_UNITS {
                        GuardrailCheck {
                            guardrail: g.clone(),
                            label: g.describe(),
                            value: high,
                            breached: false,
                            note: Some(format!("judged from {GUARDRAIL_MIN_UNITS} units per variant, {units} so far")),
                        }
                    } else {
                        GuardrailCheck {
                            guardrail: g.clone(),
                            label: g.describe(),
                            value: high,
                            breached: high.is_some_and(|h| h < -max_drop),
                            note: Some(format!("relative lift at most {} (anytime-valid)", fmt(high))),
                        }
                    }
                }
                Err(why) => GuardrailCheck {
                    guardrail: g.clone(),
                    label: g.describe(),
                    value: None,
                    breached: false,
                    note: Some(why),
                },
            };
            checks.push(check);
        }
        let verdict = verdict(policy, &figures, &checks);
        Ok(Evaluation {
            deployment: d.name.clone(),
            status: policy.state.status,
            stage: policy.state.stage,
            stage_started_ms: policy.state.stage_started_ms,
            share: policy.ramp.get(policy.state.stage).copied(),
            primary: primary.ok(),
            guardrails: checks,
            verdict,
        })
    }

    /// Carries out `verdict` on `d` as `plinth:policy`; whether it changed anything.
    async fn act(&self, d: &Deployment, verdict: &Verdict) -> Result<bool> {
        let Some(policy) = &d.policy else { return Ok(false) };
        let actor = Actor::system("policy").in_workspace(&d.workspace);
        let platform = self.inner.platform.acting(actor);
        let now = self.now_ms();
        let mut decided = d.clone();
        let mut detail = verdict.reason().to_string();
        let (status, stage, action) = match verdict {
            Verdict::Hold(_) => return Ok(false),
            Verdict::Stop(_) => {
                decided.stop_challenger();
                (PolicyStatus::Stopped, policy.state.stage, Action::PolicyStop)
            }
            Verdict::Advance(_) => {
                decided.apply_stage(policy.state.stage + 1);
                (PolicyStatus::Running, policy.state.stage + 1, Action::PolicyAdvance)
            }
            Verdict::Win(_) => (PolicyStatus::Won, policy.state.stage, Action::PolicyWin),
            Verdict::Promote(_) => {
                let Some(alias) = &policy.promote else { return Ok(false) };
                let Some(challenger) = d.variants.iter().find(|v| v.name == policy.challenger) else {
                    return Ok(false);
                };
                let version = platform.resolve_served_model(d, &challenger.model).await?;
                platform.set_alias(&version.name, alias, version.version).await?;
                detail = format!("{detail}: {}@{alias} → version {}", version.name, version.version);
                // Everyone gets the winner through the control, which follows the alias.
                decided.stop_challenger();
                (PolicyStatus::Promoted, policy.state.stage, Action::PolicyPromote)
            }
        };
        if let Some(p) = decided.policy.as_mut() {
            let stage_started_ms = if stage == policy.state.stage { policy.state.stage_started_ms } else { now };
            p.state = PolicyState { status, stage, stage_started_ms, reason: Some(detail.clone()) };
        }
        let Some(stored) = platform.decide_policy(d, decided, action, detail.clone()).await? else {
            return Ok(false);
        };
        tracing::info!(deployment = %d.name, action = action.as_str(), detail, "policy decision");
        // Served here at once; other replicas follow at their next reload (at once over PostgreSQL's notifications).
        let previous = self.get(&stored.name);
        match self.build(stored, previous.as_deref()).await {
            Ok(live) => self.install(live),
            Err(e) => tracing::warn!(deployment = %d.name, error = %e, "policies: reload after the decision failed"),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ramp: Vec<u32>, promote: Option<&str>, stage: usize) -> Policy {
        Policy {
            metric: "minutes".into(),
            control: "a".into(),
            challenger: "b".into(),
            guardrails: Vec::new(),
            min_units: 100,
            min_duration_ms: 60_000,
            min_exposures: 50,
            ramp,
            promote: promote.map(String::from),
            alpha: 0.05,
            state: PolicyState { status: PolicyStatus::Running, stage, stage_started_ms: 0, reason: None },
        }
    }

    fn figures(units: u64, low: f64, high: f64, age_ms: i64) -> Figures {
        Figures {
            control_units: units,
            challenger_units: units,
            lift_low: Some(low),
            lift_high: Some(high),
            srm_mismatch: false,
            stage_age_ms: age_ms,
            missing: None,
        }
    }

    fn action(v: &Verdict) -> &'static str {
        match v {
            Verdict::Hold(_) => "hold",
            Verdict::Stop(_) => "stop",
            Verdict::Advance(_) => "advance",
            Verdict::Promote(_) => "promote",
            Verdict::Win(_) => "win",
        }
    }

    #[test]
    fn the_decision_rule() {
        let ramp = || policy(vec![1, 10, 50], Some("champion"), 0);
        // A win needs the units and the stage's duration; then it advances the ramp.
        assert_eq!(action(&verdict(&ramp(), &figures(99, 0.5, 1.5, 120_000), &[])), "hold");
        assert_eq!(action(&verdict(&ramp(), &figures(100, 0.5, 1.5, 30_000), &[])), "hold");
        assert_eq!(action(&verdict(&ramp(), &figures(100, 0.5, 1.5, 120_000), &[])), "advance");
        // An interval covering 0 holds; one below 0 stops, whatever the duration.
        assert_eq!(action(&verdict(&ramp(), &figures(500, -0.5, 1.5, 120_000), &[])), "hold");
        assert_eq!(action(&verdict(&ramp(), &figures(500, -1.5, -0.5, 0), &[])), "stop");
        // At the last stage a win promotes, or is declared without an alias to move.
        let last = policy(vec![1, 10, 50], Some("champion"), 2);
        assert_eq!(action(&verdict(&last, &figures(100, 0.5, 1.5, 120_000), &[])), "promote");
        let no_alias = policy(Vec::new(), None, 0);
        assert_eq!(action(&verdict(&no_alias, &figures(100, 0.5, 1.5, 120_000), &[])), "win");
        // A breached guardrail stops before anything else; a broken split holds.
        let breach = GuardrailCheck {
            guardrail: Guardrail::ErrorRate { max: 0.05 },
            label: "error rate ≤ 0.05".into(),
            value: Some(0.3),
            breached: true,
            note: None,
        };
        let v = verdict(&ramp(), &figures(5, 0.5, 1.5, 0), std::slice::from_ref(&breach));
        assert_eq!(action(&v), "stop");
        assert!(v.reason().contains("error rate"), "{v:?}");
        let srm = Figures { srm_mismatch: true, ..figures(500, 0.5, 1.5, 120_000) };
        assert_eq!(action(&verdict(&ramp(), &srm, &[])), "hold");
        let none = Figures { missing: Some("variant 'b' has no exposed units".into()), ..Figures::default() };
        assert_eq!(verdict(&ramp(), &none, &[]), Verdict::Hold("variant 'b' has no exposed units".into()));
    }
}
