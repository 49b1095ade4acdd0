//! `/api/2.0/plinth/deployments/*`: Plinth's native API to create, change,
//! inspect and remove deployments, to read their exposure logs, and to
//! analyse their experiments.

use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::deployments::{Deployment, ModelRef, TrafficMode, Variant};
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
    Ok(Deployment {
        salt: a.opt_str("salt")?.unwrap_or_else(|| name.clone()),
        name,
        variants,
        shadow,
        mode,
        created_time: 0,
        updated_time: 0,
        // The request's workspace (serving sets it).
        workspace: String::new(),
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
    if let Some(metric) = a.opt_str("metric")? {
        return Err(ApiError::invalid(format!(
            "no metric named '{metric}' is defined on deployment '{name}': give it inline with event= and aggregate="
        )));
    }
    let aggregate = plinth_serving::Aggregate::parse(&a.opt_str("aggregate")?.unwrap_or_else(|| "count".into()))?;
    let window_ms = duration_ms("window", &a.opt_str("window")?.unwrap_or_else(|| "7d".into()))?;
    let mode = match a.opt_str("mode")?.as_deref() {
        None | Some("fixed") => plinth_serving::analysis::Mode::Fixed,
        Some("sequential") => plinth_serving::analysis::Mode::Sequential,
        Some(other) => return Err(ApiError::invalid(format!("mode must be fixed or sequential, got '{other}'"))),
    };
    let defaults = plinth_serving::analysis::Plan::default();
    let plan = plinth_serving::analysis::Plan {
        mode,
        alpha: a.opt_f64("alpha")?.unwrap_or(defaults.alpha),
        cuped: a.opt_bool("cuped")?.unwrap_or(false),
        planned_units: a.opt_f64("planned_units")?.unwrap_or(defaults.planned_units),
    };
    let q = plinth_serving::AnalysisQuery {
        event: a.req_str("event")?,
        aggregate,
        window_ms,
        control: a.opt_str("control")?,
        since_ms: a.opt_i64("since_ms")?,
        until_ms: a.opt_i64("until_ms")?,
        plan,
    };
    Ok(Json(s.serving.analyze(&d, &q).await?))
}
