//! `/api/2.0/plinth/deployments/*`: Plinth's native API to create, change,
//! inspect and remove deployments, to read their exposure logs, and to
//! analyse their experiments.

use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::deployments::{Deployment, ModelRef, TrafficMode, Variant};
use plinth_core::policy::{
    Aggregate, DEFAULT_MIN_EXPOSURES, DEFAULT_MIN_UNITS, Guardrail, MetricDef, Policy, PolicyState, PolicyStatus,
};
use plinth_serving::ExposureQuery;
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState, Shared};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deployments/create", post(create))
        .route("/deployments/update", post(update))
        .route("/deployments/delete", post(delete))
        .route("/deployments/get", get(get_one))
        .route("/deployments/list", get(list))
        .route("/deployments/exposures", get(exposures))
        .route("/deployments/traffic", get(traffic))
        .route("/deployments/analysis", get(analysis))
        .route("/deployments/policy", get(policy_state))
}

fn variant(a: &Args, default_weight: u32) -> Result<Variant, ApiError> {
    let weight = match a.opt_i64("weight")? {
        None => default_weight,
        Some(w) if (0..=1_000_000).contains(&w) => w as u32,
        Some(w) => return Err(ApiError::invalid(format!("weight must be in 0..=1000000, got {w}"))),
    };
    Ok(Variant { name: a.req_str("name")?, model: ModelRef::parse(&a.req_str("model")?)?, weight })
}

/// `{name, variants: [{name, model: "recs@champion" | "recs/3", weight}], shadow?: {name, model}, salt?,
/// mode?: "split" | "interleave"}`
fn deployment(a: &Args) -> Result<Deployment, ApiError> {
    let name = a.req_str("name")?;
    let variants = a.objects("variants")?.iter().map(|v| variant(v, 1)).collect::<Result<Vec<_>, _>>()?;
    let shadow = a.object("shadow")?.map(|s| variant(&s, 0)).transpose()?;
    let mode = a.opt_str("mode")?.map(|m| TrafficMode::parse(&m)).transpose()?.unwrap_or_default();
    let metrics = a.objects("metrics")?.iter().map(metric).collect::<Result<Vec<_>, _>>()?;
    let policy = a.object("policy")?.map(|p| policy(&p, &variants)).transpose()?;
    Ok(Deployment {
        salt: a.opt_str("salt")?.unwrap_or_else(|| name.clone()),
        name,
        variants,
        shadow,
        mode,
        metrics,
        policy,
        created_time: 0,
        updated_time: 0,
        // The request's workspace (serving sets it).
        workspace: String::new(),
    })
}

/// `{name, event, aggregate?: count|sum|conversion|ratio, window?: "1h", cuped?}`
fn metric(a: &Args) -> Result<MetricDef, ApiError> {
    Ok(MetricDef {
        name: a.req_str("name")?,
        event: a.req_str("event")?,
        aggregate: Aggregate::parse(&a.opt_str("aggregate")?.unwrap_or_else(|| "count".into()))?,
        window_ms: match a.opt_i64("window_ms")? {
            Some(ms) => ms,
            None => duration_ms("window", &a.opt_str("window")?.unwrap_or_else(|| "7d".into()))?,
        },
        cuped: a.opt_bool("cuped")?.unwrap_or(false),
    })
}

/// `{error_rate: 0.05}`, `{p95_latency_ms: 250}` or `{metric: "minutes", max_drop: 0.05}` (also as a status
/// shows it: `{guardrail: "error_rate", max: 0.05}`)
fn guardrail(a: &Args) -> Result<Guardrail, ApiError> {
    match a.opt_str("guardrail")?.as_deref() {
        None => {}
        Some("error_rate") => return Ok(Guardrail::ErrorRate { max: a.req_f64("max")? }),
        Some("p95_latency_ms") => return Ok(Guardrail::P95LatencyMs { max: a.req_f64("max")? }),
        Some("metric") => {
            return Ok(Guardrail::Metric { metric: a.req_str("metric")?, max_drop: a.req_f64("max_drop")? });
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "guardrail must be error_rate, p95_latency_ms or metric, got '{other}'"
            )));
        }
    }
    if let Some(max) = a.opt_f64("error_rate")? {
        return Ok(Guardrail::ErrorRate { max });
    }
    if let Some(max) = a.opt_f64("p95_latency_ms")? {
        return Ok(Guardrail::P95LatencyMs { max });
    }
    if let Some(metric) = a.opt_str("metric")? {
        return Ok(Guardrail::Metric { metric, max_drop: a.req_f64("max_drop")? });
    }
    Err(ApiError::invalid(
        "a guardrail is {\"error_rate\": max}, {\"p95_latency_ms\": max} or {\"metric\": name, \"max_drop\": share}",
    ))
}

/// `{metric, control?, challenger?, guardrails?, min_units?, min_duration?, min_exposures?, ramp?: [1, 10, 50],
/// promote?: alias, alpha?}`: the control and challenger are the first and second variants unless named. A policy
/// as a status shows it is read back the same (its `state` is the platform's).
fn policy(a: &Args, variants: &[Variant]) -> Result<Policy, ApiError> {
    let nth = |i: usize| variants.get(i).map(|v| v.name.clone()).unwrap_or_default();
    let count = |key: &str, default: u64| -> Result<u64, ApiError> {
        match a.opt_i64(key)? {
            None => Ok(default),
            Some(n) if n >= 0 => Ok(n as u64),
            Some(n) => Err(ApiError::invalid(format!("{key} must not be negative, got {n}"))),
        }
    };
    let ramp = match a.raw("ramp") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_u64().and_then(|p| u32::try_from(p).ok()).ok_or_else(|| {
                    ApiError::invalid(format!("ramp must be a list of percentages such as [1, 10, 50], got {v}"))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "ramp must be a list of percentages such as [1, 10, 50], got {other}"
            )));
        }
    };
    Ok(Policy {
        metric: a.req_str("metric")?,
        control: a.opt_str("control")?.unwrap_or_else(|| nth(0)),
        challenger: a.opt_str("challenger")?.unwrap_or_else(|| nth(1)),
        guardrails: a.objects("guardrails")?.iter().map(guardrail).collect::<Result<_, _>>()?,
        min_units: count("min_units", DEFAULT_MIN_UNITS)?,
        min_duration_ms: match a.opt_str("min_duration")? {
            Some(d) => duration_ms("min_duration", &d)?,
            None => a.opt_i64("min_duration_ms")?.unwrap_or(0),
        },
        min_exposures: count("min_exposures", DEFAULT_MIN_EXPOSURES)?,
        ramp,
        promote: a.opt_str("promote")?,
        alpha: a.opt_f64("alpha")?.unwrap_or(0.05),
        // The platform starts it.
        state: PolicyState { status: PolicyStatus::Running, stage: 0, stage_started_ms: 0, reason: None },
    })
}

async fn status(s: &Shared, d: &Deployment) -> Value {
    json!(s.serving.status(d).await)
}

async fn create(s: Api, a: Args) -> ApiResult {
    let d = s.serving.create(s.actor(), deployment(&a)?).await?;
    Ok(Json(json!({"deployment": status(&s, &d).await})))
}

async fn update(s: Api, a: Args) -> ApiResult {
    let d = s.serving.update(s.actor(), deployment(&a)?).await?;
    Ok(Json(json!({"deployment": status(&s, &d).await})))
}

async fn delete(s: Api, a: Args) -> ApiResult {
    s.serving.delete(s.actor(), &a.req_str("name")?).await?;
    Ok(Json(json!({})))
}

async fn get_one(s: Api, a: Args) -> ApiResult {
    let d = s.platform.get_deployment(&a.req_str("name")?).await?;
    Ok(Json(json!({"deployment": status(&s, &d).await})))
}

async fn list(s: Api) -> ApiResult {
    let all = s.platform.list_deployments().await?;
    let mut deployments = Vec::with_capacity(all.len());
    for d in &all {
        deployments.push(status(&s, d).await);
    }
    Ok(Json(json!({"deployments": deployments})))
}

/// `?name=&variant=&unit=&since_ms=&max_results=`: newest first.
async fn exposures(s: Api, a: Args) -> ApiResult {
    let name = a.req_str("name")?;
    s.platform.get_deployment(&name).await?;
    let limit = a.opt_i64("max_results")?.unwrap_or(100);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::invalid(format!("max_results must be in 1..=100000, got {limit}")));
    }
    let q = ExposureQuery {
        variant: a.opt_str("variant")?,
        unit: a.opt_str("unit")?,
        since_ms: a.opt_i64("since_ms")?,
        limit: limit as usize,
    };
    let found = s.serving.exposures().query(&name, &q).await.map_err(plinth_serving::Error::from)?;
    Ok(Json(json!({"exposures": found})))
}

/// `?name=&window_ms=&bucket_ms=`: per variant, the exposures, fallbacks,
/// latency percentiles and a series per bucket over the last `window_ms`
/// (an hour by default, in minutes).
async fn traffic(s: Api, a: Args) -> ApiResult<Json<plinth_serving::Traffic>> {
    let name = a.req_str("name")?;
    let window_ms = a.opt_i64("window_ms")?.unwrap_or(3_600_000);
    let bucket_ms = a.opt_i64("bucket_ms")?.unwrap_or(60_000);
    Ok(Json(s.serving.traffic(&name, s.serving.now_ms(), window_ms, bucket_ms).await?))
}

/// A duration as `7d`, `12h`, `30m`, `90s` (humantime's forms) or milliseconds.
fn duration_ms(key: &str, raw: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_duration(raw).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).map_err(|e| {
        ApiError::invalid(format!("{key} must be a duration such as 7d, 12h or 30m, or milliseconds: {e}"))
    })
}

/// `?name=&event=&aggregate=count|sum|conversion|ratio&window=7d&control=&mode=fixed|sequential&cuped=&alpha=
/// &planned_units=&since_ms=&until_ms=`: the deployment's experiment for that metric (see `plinth_serving::analysis`).
async fn analysis(s: Api, a: Args) -> ApiResult<Json<plinth_serving::Analysis>> {
    let name = a.req_str("name")?;
    let d = s.platform.get_deployment(&name).await?;
    // A metric named on the deployment, or one given inline.
    let metric = match a.opt_str("metric")? {
        Some(m) => d.metric(&m)?.clone(),
        None => MetricDef {
            name: String::new(),
            event: a.req_str("event")?,
            aggregate: Aggregate::parse(&a.opt_str("aggregate")?.unwrap_or_else(|| "count".into()))?,
            window_ms: duration_ms("window", &a.opt_str("window")?.unwrap_or_else(|| "7d".into()))?,
            cuped: false,
        },
    };
    let mode = match a.opt_str("mode")?.as_deref() {
        None | Some("fixed") => plinth_serving::analysis::Mode::Fixed,
        Some("sequential") => plinth_serving::analysis::Mode::Sequential,
        Some(other) => return Err(ApiError::invalid(format!("mode must be fixed or sequential, got '{other}'"))),
    };
    let defaults = plinth_serving::analysis::Plan::default();
    let plan = plinth_serving::analysis::Plan {
        mode,
        alpha: a.opt_f64("alpha")?.unwrap_or(defaults.alpha),
        // `cuped=` overrides a named metric's own setting.
        cuped: a.opt_bool("cuped")?.unwrap_or(metric.cuped),
        planned_units: a.opt_f64("planned_units")?.unwrap_or(defaults.planned_units),
    };
    let q = plinth_serving::AnalysisQuery {
        control: a.opt_str("control")?,
        since_ms: a.opt_i64("since_ms")?,
        until_ms: a.opt_i64("until_ms")?,
        plan,
        ..plinth_serving::AnalysisQuery::of_metric(&metric, plan)
    };
    Ok(Json(s.serving.analyze(&d, &q).await?))
}

/// `?name=`: the deployment's policy, its evaluation now (figures, guardrails, what it calls for) and its decision
/// log, newest first.
async fn policy_state(s: Api, a: Args) -> ApiResult {
    let name = a.req_str("name")?;
    let d = s.platform.get_deployment(&name).await?;
    let evaluation = match &d.policy {
        Some(_) => Some(s.serving.evaluate_policy(&d).await?),
        None => None,
    };
    // Each decision as the audit trail answers it.
    let decisions: Vec<Value> =
        s.platform.policy_decisions(&name).await?.iter().map(crate::routes::audit::record_json).collect();
    Ok(Json(json!({"policy": d.policy, "evaluation": evaluation, "decisions": decisions})))
}
