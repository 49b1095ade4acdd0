//! `/api/2.0/plinth/jobs/*`: Plinth's native API for long work (training) as
//! jobs: submit, then poll.

use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::jobs::Job;
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::ApiResult;
use crate::state::{Api, AppState};

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
async fn train_recommender(s: Api, a: Args) -> ApiResult {
    let job = s.jobs.submit_recommender(s.actor(), a.into_value()).await?;
    Ok(Json(json!({"job": job_json(&job, None)})))
}

/// The body is a tabular training spec (`plinth train tabular`'s flags as
/// JSON keys, lists as JSON arrays).
async fn train_tabular(s: Api, a: Args) -> ApiResult {
    let job = s.jobs.submit_tabular(s.actor(), a.into_value()).await?;
    Ok(Json(json!({"job": job_json(&job, None)})))
}

async fn get_one(s: Api, a: Args) -> ApiResult {
    let (job, progress) = s.jobs.get(s.actor(), &a.req_str("job_id")?).await?;
    Ok(Json(json!({"job": job_json(&job, progress)})))
}

async fn list(s: Api, a: Args) -> ApiResult {
    let max = a.opt_i64("max_results")?.unwrap_or(100).clamp(1, 10_000);
    let jobs = s.jobs.list(s.actor(), max).await?;
    Ok(Json(json!({"jobs": jobs.iter().map(|j| job_json(j, None)).collect::<Vec<_>>()})))
}

async fn cancel(s: Api, a: Args) -> ApiResult {
    let job = s.jobs.cancel(s.actor(), &a.req_str("job_id")?).await?;
    Ok(Json(json!({"job": job_json(&job, None)})))
}

/// The job as the jobs API answers it, with its progress while it runs.
pub fn job_json(job: &Job, progress: Option<(String, usize, usize)>) -> Value {
    json!({
        "job_id": job.job_id,
        "kind": job.kind.as_str(),
        "status": job.status.as_str(),
        "spec": job.spec,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "created_time": job.created_time,
        "started_time": job.started_time,
        "finished_time": job.finished_time,
        "worker": job.worker,
        "lease_until": job.lease_until,
        "cancel_requested": job.cancel_requested,
        "progress": progress.map(|(stage, done, total)| json!({"stage": stage, "done": done, "total": total})),
    })
}
