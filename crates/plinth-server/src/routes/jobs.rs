//! `/api/2.0/plinth/jobs/*`: Plinth's native API for long work (training) as
//! jobs: submit, then poll.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_engine::jobs::job_json;
use serde_json::json;

use crate::args::Args;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs/train-recommender", post(train_recommender))
        .route("/jobs/train-tabular", post(train_tabular))
        .route("/jobs/get", get(get_one))
        .route("/jobs/list", get(list))
        .route("/jobs/cancel", post(cancel))
}

/// The body is a training spec (the CLI's flags as JSON keys); data paths are
/// relative to the server's datasets directory.
async fn train_recommender(State(s): State<AppState>, a: Args) -> ApiResult {
    let job = s.jobs.submit_recommender(a.into_value()).await?;
    Ok(Json(json!({"job": job_json(&job, None)})))
}

/// The body is a tabular training spec (`plinth train tabular`'s flags as
/// JSON keys, lists as JSON arrays).
async fn train_tabular(State(s): State<AppState>, a: Args) -> ApiResult {
    let job = s.jobs.submit_tabular(a.into_value()).await?;
    Ok(Json(json!({"job": job_json(&job, None)})))
}

async fn get_one(State(s): State<AppState>, a: Args) -> ApiResult {
    let (job, progress) = s.jobs.get(&a.req_str("job_id")?).await?;
    Ok(Json(json!({"job": job_json(&job, progress)})))
}

async fn list(State(s): State<AppState>, a: Args) -> ApiResult {
    let max = a.opt_i64("max_results")?.unwrap_or(100).clamp(1, 10_000);
    let jobs = s.jobs.list(max).await?;
    Ok(Json(json!({"jobs": jobs.iter().map(|j| job_json(j, None)).collect::<Vec<_>>()})))
}

async fn cancel(State(s): State<AppState>, a: Args) -> ApiResult {
    let job = s.jobs.cancel(&a.req_str("job_id")?).await?;
    Ok(Json(json!({"job": job_json(&job, None)})))
}
