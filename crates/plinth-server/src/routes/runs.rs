//! `runs/*` and `metrics/*`: runs, logging and run search.

use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::experiments::{Tag, ViewType};
use plinth_core::query::Query;
use plinth_core::runs::{Metric, NewRun, Param, RunStatus, RunUpdate};
use plinth_core::validation::MAX_BATCH_LOG_REQUEST_SIZE;
use plinth_engine::RunSearch;
use plinth_mlflow as mlflow;
use serde_json::json;

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};
use crate::wire::{
    decode_page_token, encode_page_token, parse_dataset_inputs, parse_metric, parse_model_io, parse_params, parse_tags,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/runs/create", post(create))
        .route("/runs/get", get(get_one))
        .route("/runs/update", post(update))
        .route("/runs/delete", post(delete))
        .route("/runs/restore", post(restore))
        .route("/runs/search", post(search))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/log-model", post(log_model))
        .route("/metrics/get-history", get(metric_history))
        .route("/metrics/get-history-bulk-interval", get(metric_history_bulk))
        .route("/metrics/get-history-bulk", get(metric_histories))
}

/// MLflow accepts `run_id` or the older `run_uuid`.
fn run_id(a: &Args) -> Result<String, ApiError> {
    match a.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => Ok(id),
        None => a.req_str("run_uuid").map_err(|_| ApiError::invalid("Missing value for required parameter 'run_id'.")),
    }
}

async fn create(s: Api, a: Args) -> ApiResult<Json<mlflow::RunResponse>> {
    let new = NewRun {
        experiment_id: a.opt_str("experiment_id")?.filter(|s| !s.is_empty()).unwrap_or_else(|| "0".into()),
        user_id: a.opt_str("user_id")?.unwrap_or_default(),
        run_name: a.opt_str("run_name")?,
        start_time: a.opt_i64("start_time")?,
        tags: parse_tags(&a, "tags")?,
    };
    let run = s.platform.create_run(new).await?;
    Ok(Json(mlflow::RunResponse { run: (&run).into() }))
}

async fn get_one(s: Api, a: Args) -> ApiResult<Json<mlflow::RunResponse>> {
    let run = s.platform.get_run(&run_id(&a)?).await?;
    Ok(Json(mlflow::RunResponse { run: (&run).into() }))
}

async fn update(s: Api, a: Args) -> ApiResult<Json<mlflow::UpdateRunResponse>> {
    let status = a.opt_str("status")?.map(|st| RunStatus::parse(&st)).transpose()?;
    let update = RunUpdate {
        status,
        end_time: a.opt_i64("end_time")?,
        run_name: a.opt_str("run_name")?.filter(|n| !n.is_empty()),
    };
    let info = s.platform.update_run(&run_id(&a)?, update).await?;
    Ok(Json(mlflow::UpdateRunResponse { run_info: (&info).into() }))
}

async fn delete(s: Api, a: Args) -> ApiResult {
    s.platform.delete_run(&run_id(&a)?).await?;
    Ok(Json(json!({})))
}

async fn restore(s: Api, a: Args) -> ApiResult {
    s.platform.restore_run(&run_id(&a)?).await?;
    Ok(Json(json!({})))
}

async fn search(s: Api, a: Args) -> ApiResult<Json<mlflow::SearchRunsResponse>> {
    let view = match a.opt_str("run_view_type")? {
        Some(v) => ViewType::parse(&v)?,
        None => ViewType::ActiveOnly,
    };
    let search = RunSearch {
        experiment_ids: a.str_list("experiment_ids")?,
        view,
        query: Query::parse(
            &a.opt_str("filter")?.unwrap_or_default(),
            &a.str_list("order_by")?,
            a.opt_i64("max_results")?.unwrap_or(1000),
            decode_page_token(a.opt_str("page_token")?)?,
        )?,
    };
    let page = s.platform.search_runs(search).await?;
    Ok(Json(mlflow::SearchRunsResponse {
        runs: page.items.iter().map(Into::into).collect(),
        next_page_token: encode_page_token(page.next_offset),
    }))
}

async fn log_metric(s: Api, a: Args) -> ApiResult {
    let metric = parse_metric(&a)?;
    s.platform.log_batch(&run_id(&a)?, vec![metric], vec![], vec![]).await?;
    Ok(Json(json!({})))
}

async fn log_param(s: Api, a: Args) -> ApiResult {
    let param = Param::new(a.req_str("key")?, a.req_str_allow_empty("value")?);
    s.platform.log_batch(&run_id(&a)?, vec![], vec![param], vec![]).await?;
    Ok(Json(json!({})))
}

async fn set_tag(s: Api, a: Args) -> ApiResult {
    let tag = Tag::new(a.req_str("key")?, a.req_str_allow_empty("value")?);
    s.platform.log_batch(&run_id(&a)?, vec![], vec![], vec![tag]).await?;
    Ok(Json(json!({})))
}

async fn delete_tag(s: Api, a: Args) -> ApiResult {
    s.platform.delete_run_tag(&run_id(&a)?, &a.req_str("key")?).await?;
    Ok(Json(json!({})))
}

async fn log_batch(s: Api, mut a: Args) -> ApiResult {
    if a.body_len > MAX_BATCH_LOG_REQUEST_SIZE {
        return Err(ApiError::invalid(format!(
            "Batched logging API requests must be at most {MAX_BATCH_LOG_REQUEST_SIZE} bytes, got a request of {} bytes",
            a.body_len
        )));
    }
    let metrics = a.take_objects("metrics")?.iter().map(parse_metric).collect::<Result<Vec<Metric>, _>>()?;
    let params = parse_params(&a, "params")?;
    let tags = parse_tags(&a, "tags")?;
    s.platform.log_batch(&run_id(&a)?, metrics, params, tags).await?;
    Ok(Json(json!({})))
}

async fn log_inputs(s: Api, a: Args) -> ApiResult {
    let datasets = parse_dataset_inputs(&a)?;
    let models = parse_model_io(&a, "models")?;
    s.platform.log_inputs(&run_id(&a)?, datasets, models).await?;
    Ok(Json(json!({})))
}

async fn log_outputs(s: Api, a: Args) -> ApiResult {
    let models = parse_model_io(&a, "models")?;
    s.platform.log_outputs(&run_id(&a)?, models).await?;
    Ok(Json(json!({})))
}

/// MLflow 2's model-history tag: kept as the `mlflow.log-model.history` run tag.
async fn log_model(s: Api, a: Args) -> ApiResult {
    s.platform.log_model_history(&run_id(&a)?, a.req_str("model_json")?).await?;
    Ok(Json(json!({})))
}

async fn metric_history(s: Api, a: Args) -> ApiResult<Json<mlflow::MetricHistoryResponse>> {
    let max_results = a.opt_i64("max_results")?.unwrap_or(25_000);
    let offset = decode_page_token(a.opt_str("page_token")?)?;
    let page = s.platform.get_metric_history(&run_id(&a)?, &a.req_str("metric_key")?, max_results, offset).await?;
    Ok(Json(mlflow::MetricHistoryResponse {
        metrics: page.items.iter().map(Into::into).collect(),
        next_page_token: encode_page_token(page.next_offset),
    }))
}

/// Histories of one metric for several runs, sampled to at most
/// `max_results` points per run (the UI's charts call this).
async fn metric_histories(s: Api, a: Args) -> ApiResult<Json<mlflow::MetricsWithRunIdsResponse>> {
    let key = a.opt_str("metric_key")?;
    let points = s.platform.metric_histories(&a.str_list("run_id")?, key.as_deref(), a.opt_i64("max_results")?).await?;
    Ok(metrics_with_run_ids(&points))
}

fn metrics_with_run_ids(points: &[(String, Metric)]) -> Json<mlflow::MetricsWithRunIdsResponse> {
    let metrics =
        points.iter().map(|(run_id, m)| mlflow::MetricWithRunId { metric: m.into(), run_id: run_id.clone() }).collect();
    Json(mlflow::MetricsWithRunIdsResponse { metrics })
}

async fn metric_history_bulk(s: Api, a: Args) -> ApiResult<Json<mlflow::MetricsWithRunIdsResponse>> {
    let points = s
        .platform
        .sample_metric_histories(
            &a.str_list("run_ids")?,
            &a.opt_str("metric_key")?.unwrap_or_default(),
            a.opt_i64("start_step")?,
            a.opt_i64("end_step")?,
            a.opt_i64("max_results")?,
        )
        .await?;
    Ok(metrics_with_run_ids(&points))
}
