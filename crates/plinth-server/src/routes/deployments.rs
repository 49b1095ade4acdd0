//! `/api/2.0/plinth/deployments/*`: Plinth's native API to create, change,
//! inspect and remove deployments, and to read their exposure logs.

use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::deployments::{Deployment, ModelRef, Variant};
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
}

fn variant(a: &Args, default_weight: u32) -> Result<Variant, ApiError> {
    let weight = match a.opt_i64("weight")? {
        None => default_weight,
        Some(w) if (0..=1_000_000).contains(&w) => w as u32,
        Some(w) => return Err(ApiError::invalid(format!("weight must be in 0..=1000000, got {w}"))),
    };
    Ok(Variant { name: a.req_str("name")?, model: ModelRef::parse(&a.req_str("model")?)?, weight })
}

/// `{name, variants: [{name, model: "recs@champion" | "recs/3", weight}], shadow?: {name, model}, salt?}`
fn deployment(a: &Args) -> Result<Deployment, ApiError> {
    let name = a.req_str("name")?;
    let variants = a.objects("variants")?.iter().map(|v| variant(v, 1)).collect::<Result<Vec<_>, _>>()?;
    let shadow = a.object("shadow")?.map(|s| variant(&s, 0)).transpose()?;
    Ok(Deployment {
        salt: a.opt_str("salt")?.unwrap_or_else(|| name.clone()),
        name,
        variants,
        shadow,
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
