//! A deployment's experiment (`/ui/deployments/{name}/experiment`): a form
//! for the metric (event kind, aggregate, attribution window, interval mode,
//! CUPED) and `Serving::analyze`'s answer for it — per variant units, mean
//! and interval, lift against the control with its interval and Holm
//! p-value, the guardrails (p95 latency, error rate, fallbacks) and the
//! sample-ratio check; for an interleaved deployment the preference between
//! its rankers. A chart shows the lift's interval as of eight times since
//! the deployment was created (in sequential mode, the confidence sequence
//! narrowing). With a policy, the page opens with it: its stage, the
//! guardrails and the verdict as of now, and the decision log.

use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use plinth_core::audit::AuditRecord;
use plinth_core::deployments::Deployment;
use plinth_serving::analysis::{Mode, Plan};
use plinth_serving::policy::{Evaluation, Verdict};
use plinth_serving::{Aggregate, Analysis, AnalysisQuery, Serving};
use serde::Deserialize;

use crate::charts::{Series, lines_over};
use crate::{PageResult, UiError, number, page, time};

/// Points on the interval-over-time chart.
const CHART_POINTS: i64 = 8;

#[derive(Debug, Default, Deserialize)]
pub struct Form {
    /// A metric named on the deployment (then event, aggregate, window and CUPED are its own).
    metric: Option<String>,
    event: Option<String>,
    aggregate: Option<String>,
    window: Option<String>,
    mode: Option<String>,
    cuped: Option<String>,
    control: Option<String>,
}

impl Form {
    fn query(&self, event: &str) -> Result<AnalysisQuery, UiError> {
        let window = self.window.as_deref().unwrap_or("7d");
        let window_ms = humantime::parse_duration(window)
            .map_err(|e| UiError::bad_request(format!("window must be a duration such as 7d, 12h or 30m: {e}")))?
            .as_millis() as i64;
        let mode = match self.mode.as_deref() {
            None | Some("fixed") => Mode::Fixed,
            Some("sequential") => Mode::Sequential,
            Some(other) => {
                return Err(UiError::bad_request(format!("mode must be fixed or sequential, got '{other}'")));
            }
        };
        Ok(AnalysisQuery {
            event: event.to_string(),
            aggregate: Aggregate::parse(self.aggregate.as_deref().unwrap_or("count"))
                .map_err(plinth_serving::Error::from)?,
            window_ms,
            control: self.control.clone().filter(|c| !c.is_empty()),
            since_ms: None,
            until_ms: None,
            plan: Plan { mode, cuped: self.cuped.is_some(), ..Plan::default() },
        })
    }
}

fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), number)
}

fn interval(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("[{}, {}]", number(l), number(h)),
        _ => "—".into(),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{}%", number(v * 100.0)))
}

fn form(d: &Deployment, f: &Form) -> Markup {
    let name = &d.name;
    let aggregate = f.aggregate.as_deref().unwrap_or("count");
    let mode = f.mode.as_deref().unwrap_or("fixed");
    html! {
        @if !d.metrics.is_empty() {
            form.filters method="get" action=(format!("/ui/deployments/{name}/experiment")) {
                label { "Metric "
                    select name="metric" {
                        @for m in &d.metrics {
                            option value=(m.name) selected[f.metric.as_deref() == Some(m.name.as_str())] {
                                (m.name) " (" (m.aggregate.as_str()) " of " (m.event) ")"
                            }
                        }
                    }
                }
                label { "Intervals "
                    select name="mode" {
                        option value="fixed" selected[mode == "fixed"] { "fixed horizon" }
                        option value="sequential" selected[mode == "sequential"] { "anytime-valid" }
                    }
                }
                button type="submit" { "Analyse" }
            }
        }
        form.filters method="get" action=(format!("/ui/deployments/{name}/experiment")) {
            label { "Event " input name="event" placeholder="play" value=(f.event.as_deref().unwrap_or("")) required; }
            label { "Aggregate "
                select name="aggregate" {
                    @for a in ["count", "sum", "conversion", "ratio"] {
                        option value=(a) selected[a == aggregate] { (a) }
                    }
                }
            }
            label { "Window " input name="window" size="6" value=(f.window.as_deref().unwrap_or("7d")); }
            label { "Intervals "
                select name="mode" {
                    option value="fixed" selected[mode == "fixed"] { "fixed horizon" }
                    option value="sequential" selected[mode == "sequential"] { "anytime-valid" }
                }
            }
            label { input type="checkbox" name="cuped" value="true" checked[f.cuped.is_some()]; " CUPED" }
            button type="submit" { "Analyse" }
        }
    }
}

fn split_table(a: &Analysis) -> Markup {
    html! {
        div.scroll { table.analysis {
            thead { tr {
                th { "Variant" } th.num { "Weight" } th.num { "Units" } th.num { "Mean" } th { "Interval" }
                th.num { "Lift" } th { "Lift interval" } th.num { "Relative" } th.num { "p (Holm)" }
                th.num { "p95 ms" } th.num { "Error rate" } th.num { "Fallbacks" } th { "Note" }
            } }
            tbody {
                @for v in &a.variants {
                    @let lift = v.lift.as_ref();
                    tr {
                        td { (v.name) @if v.name == a.control { " " span.muted { "(control)" } } }
                        td.num { (v.weight) }
                        td.num { (v.units) }
                        td.num { (figure(v.mean)) }
                        td { (interval(v.ci_low, v.ci_high)) }
                        td.num {
                            (figure(lift.and_then(|l| l.absolute)))
                            @if lift.is_some_and(|l| l.significant) { " " span.badge { "significant" } }
                        }
                        td { (interval(lift.and_then(|l| l.absolute_low), lift.and_then(|l| l.absolute_high))) }
                        td.num { (percent(lift.and_then(|l| l.relative))) }
                        td.num { (figure(lift.and_then(|l| l.p_value_adjusted))) }
                        td.num { (figure(v.p95_latency_ms)) }
                        td.num { (percent(v.error_rate)) }
                        td.num { (percent(v.fallback_share)) }
                        td.muted { (v.note.as_deref().or(lift.and_then(|l| l.note.as_deref())).unwrap_or("")) }
                    }
                }
            }
        } }
        @match a.srm_p_value {
            Some(p) if a.srm_mismatch => p.error.srm { "Sample ratio mismatch: p = " (format!("{p:.2e}")) " against the weights, over the " (a.srm_units) " units first exposed since they were set. The split itself is broken; do not trust the lifts." }
            Some(p) => p.muted.srm { "Sample ratio: p = " (format!("{p:.4}")) " against the weights, over the " (a.srm_units) " units first exposed since they were set (ok)." }
            None => p.muted.srm { "Sample ratio: not enough units first exposed since the weights were set to check." }
        }
        @if a.units_in_several_variants > 0 {
            p.muted { (a.units_in_several_variants) " units saw more than one variant (a weight changed); each counts in its first." }
        }
    }
}

fn interleaving(a: &Analysis) -> Markup {
    let Some(i) = &a.interleaving else { return html! {} };
    let p = &i.preference;
    html! {
        div.scroll { table.analysis {
            thead { tr {
                th { "Control" } th { "Challenger" } th.num { "Units credited" } th.num { "Prefer control" }
                th.num { "Prefer challenger" } th.num { "Ties" } th.num { "Preference for the challenger" } th { "Interval" }
            } }
            tbody { tr {
                td { (i.control) } td { (i.challenger) } td.num { (p.units) } td.num { (p.a_wins) }
                td.num { (p.b_wins) } td.num { (p.ties) }
                td.num { (figure(p.mean)) @if p.significant { " " span.badge { "significant" } } }
                td { (interval(p.ci_low, p.ci_high)) }
            } }
        } }
        p.muted { (i.exposures) " interleaved exposures reached " (i.exposed_units) " units. " (p.note.as_deref().unwrap_or("")) }
    }
}

/// The policy: where it stands, its guardrails now, what the figures call
/// for, and every decision it took (newest first).
fn policy_section(d: &Deployment, evaluation: Option<&Evaluation>, decisions: &[AuditRecord]) -> Markup {
    let Some(p) = &d.policy else { return html! {} };
    html! {
        h2 { "Policy" }
        p {
            span.badge { (p.state.status.as_str()) } " "
            "Primary metric " strong { (p.metric) } ": " (p.challenger) " against " (p.control)
            @if let Some(share) = p.ramp.get(p.state.stage) {
                ", ramp stage " (p.state.stage + 1) " of " (p.ramp.len()) " (" (share) "% to the challenger)"
            }
            "; a win needs " (p.min_units) " units per variant"
            @if p.min_duration_ms > 0 { " and " (humantime::format_duration(std::time::Duration::from_millis(p.min_duration_ms as u64))) " into the stage" }
            @if let Some(alias) = &p.promote { ", then moves @" (alias) " to the challenger's version" }
            ". Stage began " (time(p.state.stage_started_ms)) "."
        }
        @if let Some(e) = evaluation {
            p.verdict { "Now: " strong { (verdict_word(&e.verdict)) } " — " (e.verdict.reason()) }
            @if !e.guardrails.is_empty() {
                div.scroll { table.guardrails {
                    thead { tr { th { "Guardrail" } th.num { "Challenger" } th { "State" } th { "Note" } } }
                    tbody {
                        @for g in &e.guardrails {
                            tr {
                                td { (g.label) }
                                td.num { (figure(g.value)) }
                                td { @if g.breached { span.error { "breached" } } @else { "holding" } }
                                td.muted { (g.note.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                } }
            }
        }
        h2 { "Decision log" }
        @if decisions.is_empty() {
            p.muted { "No decision yet." }
        } @else {
            div.scroll { table.decisions {
                thead { tr { th { "When" } th { "Decision" } th { "Why" } th { "Traffic before" } th { "Traffic after" } } }
                tbody {
                    @for r in decisions {
                        tr {
                            td { (time(r.time)) }
                            td { (r.action.as_str().trim_start_matches("policy.")) }
                            td { (r.detail.as_deref().unwrap_or("")) }
                            td.muted { (r.before.as_deref().unwrap_or("")) }
                            td.muted { (r.after.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        }
    }
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Hold(_) => "hold",
        Verdict::Stop(_) => "stop the challenger",
        Verdict::Advance(_) => "advance the ramp",
        Verdict::Promote(_) => "promote",
        Verdict::Win(_) => "the challenger wins",
    }
}

/// The lift of every non-control variant (or the interleaving preference)
/// and its interval as of `CHART_POINTS` times from the deployment's
/// creation to now; times without enough data are left out.
async fn over_time(s: &Serving, d: &Deployment, q: &AnalysisQuery) -> Vec<Series> {
    let (start, now) = (d.created_time, s.now_ms());
    let mut series: Vec<Series> = Vec::new();
    let mut push = |name: String, x: f64, y: Option<f64>| {
        let Some(y) = y else { return };
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((x, y)),
            None => series.push(Series { name, points: vec![(x, y)] }),
        }
    };
    for k in 1..=CHART_POINTS {
        let until = start + (now - start) * k / CHART_POINTS;
        let hours = (until - start) as f64 / 3_600_000.0;
        let Ok(a) = s.analyze(d, &AnalysisQuery { until_ms: Some(until), ..q.clone() }).await else { continue };
        if let Some(i) = &a.interleaving {
            let p = &i.preference;
            push("preference".into(), hours, p.mean);
            push("low".into(), hours, p.ci_low);
            push("high".into(), hours, p.ci_high);
        }
        for v in &a.variants {
            let Some(l) = &v.lift else { continue };
            push(format!("{} lift", v.name), hours, l.absolute);
            push(format!("{} low", v.name), hours, l.absolute_low);
            push(format!("{} high", v.name), hours, l.absolute_high);
        }
    }
    series
}

pub async fn show(
    State(s): State<Serving>,
    crate::Acting(platform): crate::Acting,
    Path(name): Path<String>,
    Query(f): Query<Form>,
) -> PageResult {
    let hidden = !platform.can_read_deployment(&name).await?;
    let d = match s.live(&name).await {
        Ok(live) if !hidden => live.spec.clone(),
        _ => return Err(UiError::not_found(format!("No deployment named '{name}'"))),
    };
    // A named metric (the policy's primary one when nothing is asked) or one given inline.
    let named = match f.metric.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => Some(d.metric(m).map_err(plinth_serving::Error::from)?.clone()),
        None if f.event.as_deref().is_none_or(str::is_empty) => {
            d.policy.as_ref().and_then(|p| d.metric(&p.metric).ok()).cloned()
        }
        None => None,
    };
    let event = f.event.clone().filter(|e| !e.is_empty());
    let query = match (&named, &event) {
        (Some(m), _) => {
            let plan = f.query(&m.event)?.plan;
            Some(AnalysisQuery {
                control: f.control.clone().filter(|c| !c.is_empty()),
                ..AnalysisQuery::of_metric(m, plan)
            })
        }
        (None, Some(event)) => Some(f.query(event)?),
        (None, None) => None,
    };
    let (evaluation, decisions) = match &d.policy {
        Some(_) => (Some(s.evaluate_policy(&d).await?), platform.policy_decisions(&name).await?),
        None => (None, Vec::new()),
    };
    let (analysis, chart) = match &query {
        None => (None, Vec::new()),
        Some(q) => {
            let q = q.clone();
            // A metric the analysis refuses (an unknown control, no units yet) is the caller's: its 4xx page says why.
            let analysis = s.analyze(&d, &q).await?;
            let chart = over_time(&s, &d, &q).await;
            (Some(analysis), chart)
        }
    };
    Ok(page(
        &format!("{name} · experiment"),
        html! {
            p.muted { a href="/ui/deployments" { "Deployments" } " / " a href=(format!("/ui/deployments/{name}")) { (name) } " / experiment" }
            h1 { (name) " experiment" }
            (policy_section(&d, evaluation.as_ref(), &decisions))
            h2 { "Analysis" }
            (form(&d, &f))
            @match &analysis {
                None => p.muted { "Pick the event kind the metric counts (as posted to " code { "/v1/events" } ")." },
                Some(a) => {
                    p.muted {
                        (a.aggregate.as_str()) " of '" (a.event) "' per unit within " (humantime::format_duration(std::time::Duration::from_millis(a.window_ms.max(0) as u64)))
                        " of its first exposure; " (if a.mode == "sequential" { "anytime-valid" } else { "fixed-horizon" })
                        " intervals at " (number(100.0 * (1.0 - a.alpha))) "%" (if a.cuped { ", CUPED" } else { "" })
                        ". As of " (time(a.until_ms)) "."
                    }
                    @if a.interleaving.is_some() { (interleaving(a)) } @else { (split_table(a)) }
                    @if !chart.is_empty() {
                        h2 { "Over time" }
                        div.chart { (lines_over("Against the control, as of each time", "hours since the deployment was created", "lift", &chart, None)) }
                    }
                }
            }
        },
    ))
}
