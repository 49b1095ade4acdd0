//! `logged-models/*`: MLflow 3 logged models.

use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use plinth_core::logged_models::{LoggedModelStatus, NewLoggedModel};
use plinth_engine::artifact_key;
use serde_json::json;

use crate::args::Args;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::wire::{decode_page_token, logged_model_json, parse_params, parse_tags, with_token};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create))
        .route("/logged-models/search", post(search))
        .route("/logged-models/{model_id}", get(get_one).patch(finalize).delete(remove))
        .route("/logged-models/{model_id}/tags", patch(set_tags))
        .route("/logged-models/{model_id}/tags/{tag_key}", delete(delete_tag))
        .route("/logged-models/{model_id}/params", post(log_params))
        .route("/logged-models/{model_id}/artifacts/directories", get(list_artifacts))
}

async fn create(State(s): State<AppState>, a: Args) -> ApiResult {
    let new = NewLoggedModel {
        experiment_id: a.req_str("experiment_id")?,
        name: a.opt_str("name")?,
        model_type: a.opt_str("model_type")?,
        source_run_id: a.opt_str("source_run_id")?.filter(|s| !s.is_empty()),
        params: parse_params(&a, "params")?,
        tags: parse_tags(&a, "tags")?,
    };
    let model = s.platform.create_logged_model(new).await?;
    Ok(Json(json!({"model": logged_model_json(&model)})))
}

async fn get_one(State(s): State<AppState>, Path(model_id): Path<String>) -> ApiResult {
    let model = s.platform.get_logged_model(&model_id).await?;
    Ok(Json(json!({"model": logged_model_json(&model)})))
}

async fn finalize(State(s): State<AppState>, Path(model_id): Path<String>, a: Args) -> ApiResult {
    let status = LoggedModelStatus::parse(&a.req_str("status")?)?;
    let model = s.platform.finalize_logged_model(&model_id, status).await?;
    Ok(Json(json!({"model": logged_model_json(&model)})))
}

async fn remove(State(s): State<AppState>, Path(model_id): Path<String>) -> ApiResult {
    s.platform.delete_logged_model(&model_id).await?;
    Ok(Json(json!({})))
}

async fn set_tags(State(s): State<AppState>, Path(model_id): Path<String>, a: Args) -> ApiResult {
    s.platform.set_logged_model_tags(&model_id, parse_tags(&a, "tags")?).await?;
    let model = s.platform.get_logged_model(&model_id).await?;
    Ok(Json(json!({"model": logged_model_json(&model)})))
}

async fn delete_tag(State(s): State<AppState>, Path((model_id, key)): Path<(String, String)>) -> ApiResult {
    s.platform.delete_logged_model_tag(&model_id, &key).await?;
    Ok(Json(json!({})))
}

async fn log_params(State(s): State<AppState>, Path(model_id): Path<String>, a: Args) -> ApiResult {
    s.platform.log_logged_model_params(&model_id, parse_params(&a, "params")?).await?;
    Ok(Json(json!({})))
}

async fn search(State(s): State<AppState>, a: Args) -> ApiResult {
    // Better a clear refusal than silently unfiltered results.
    if a.opt_str("filter")?.is_some_and(|f| !f.trim().is_empty())
        || a.objects("order_by").map(|v| !v.is_empty()).unwrap_or(true)
        || !a.objects("datasets")?.is_empty()
    {
        return Err(crate::error::ApiError::invalid(
            "logged-models/search supports experiment_ids and paging only; filter, order_by and datasets are not supported yet",
        ));
    }
    let max_results = a.opt_i64("max_results")?.unwrap_or(100);
    let offset = decode_page_token(a.opt_str("page_token")?)?;
    let page = s.platform.search_logged_models(a.str_list("experiment_ids")?, max_results, offset).await?;
    let body = json!({"models": page.items.iter().map(logged_model_json).collect::<Vec<_>>()});
    Ok(Json(with_token(body, page.next_offset)))
}

async fn list_artifacts(State(s): State<AppState>, Path(model_id): Path<String>, a: Args) -> ApiResult {
    let model = s.platform.get_logged_model(&model_id).await?;
    let dir = a.opt_str("artifact_directory_path")?.unwrap_or_default();
    let Some(key) = artifact_key(&model.artifact_location) else {
        return Ok(Json(json!({"root_uri": model.artifact_location, "files": []})));
    };
    let prefix = if dir.is_empty() { key.to_string() } else { format!("{key}/{}", dir.trim_matches('/')) };
    let entries = s.platform.list_artifacts(&prefix).await?;
    let files: Vec<_> = entries
        .iter()
        .map(|e| {
            let rel = e.path.strip_prefix(key).unwrap_or(&e.path).trim_start_matches('/');
            match e.size {
                Some(size) => json!({"path": rel, "is_dir": e.is_dir, "file_size": size}),
                None => json!({"path": rel, "is_dir": e.is_dir}),
            }
        })
        .collect();
    Ok(Json(json!({"root_uri": model.artifact_location, "files": files})))
}
