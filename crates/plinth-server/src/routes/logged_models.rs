//! `logged-models/*`: MLflow 3 logged models.

use axum::extract::Path;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use plinth_core::logged_models::{LoggedModelStatus, NewLoggedModel};
use plinth_core::query::{self, LoggedModelSortKey};
use plinth_engine::{DatasetFilter, LoggedModelOrder, LoggedModelSearch};
use plinth_mlflow as mlflow;
use serde_json::json;

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};
use crate::wire::{decode_page_token, encode_page_token, parse_params, parse_tags};

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

async fn create(s: Api, a: Args) -> ApiResult<Json<mlflow::LoggedModelResponse>> {
    let new = NewLoggedModel {
        experiment_id: a.req_str("experiment_id")?,
        name: a.opt_str("name")?,
        model_type: a.opt_str("model_type")?,
        source_run_id: a.opt_str("source_run_id")?.filter(|s| !s.is_empty()),
        params: parse_params(&a, "params")?,
        tags: parse_tags(&a, "tags")?,
    };
    let model = s.platform.create_logged_model(new).await?;
    Ok(Json(mlflow::LoggedModelResponse { model: (&model).into() }))
}

async fn get_one(s: Api, Path(model_id): Path<String>) -> ApiResult<Json<mlflow::LoggedModelResponse>> {
    let model = s.platform.get_logged_model(&model_id).await?;
    Ok(Json(mlflow::LoggedModelResponse { model: (&model).into() }))
}

async fn finalize(s: Api, Path(model_id): Path<String>, a: Args) -> ApiResult<Json<mlflow::LoggedModelResponse>> {
    let status = LoggedModelStatus::parse(&a.req_str("status")?)?;
    let model = s.platform.finalize_logged_model(&model_id, status).await?;
    Ok(Json(mlflow::LoggedModelResponse { model: (&model).into() }))
}

async fn remove(s: Api, Path(model_id): Path<String>) -> ApiResult {
    s.platform.delete_logged_model(&model_id).await?;
    Ok(Json(json!({})))
}

async fn set_tags(s: Api, Path(model_id): Path<String>, a: Args) -> ApiResult<Json<mlflow::LoggedModelResponse>> {
    s.platform.set_logged_model_tags(&model_id, parse_tags(&a, "tags")?).await?;
    let model = s.platform.get_logged_model(&model_id).await?;
    Ok(Json(mlflow::LoggedModelResponse { model: (&model).into() }))
}

async fn delete_tag(s: Api, Path((model_id, key)): Path<(String, String)>) -> ApiResult {
    s.platform.delete_logged_model_tag(&model_id, &key).await?;
    Ok(Json(json!({})))
}

async fn log_params(s: Api, Path(model_id): Path<String>, a: Args) -> ApiResult {
    s.platform.log_logged_model_params(&model_id, parse_params(&a, "params")?).await?;
    Ok(Json(json!({})))
}

async fn search(s: Api, a: Args) -> ApiResult<Json<mlflow::SearchLoggedModelsResponse>> {
    let datasets = a
        .objects("datasets")?
        .iter()
        .map(dataset_filter)
        .collect::<Result<Vec<_>, ApiError>>()?
        .into_iter()
        .map(|d| d.ok_or_else(|| ApiError::invalid("`dataset_name` in the `datasets` clause must be specified.")))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let order_by = a
        .objects("order_by")?
        .iter()
        .map(|o| {
            let field = o
                .opt_str("field_name")?
                .ok_or_else(|| ApiError::invalid("`field_name` in the `order_by` clause must be specified."))?;
            Ok(LoggedModelOrder {
                key: LoggedModelSortKey::parse(&field)?,
                ascending: o.opt_bool("ascending")?.unwrap_or(true),
                dataset: dataset_filter(o)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let search = LoggedModelSearch {
        experiment_ids: a.str_list("experiment_ids")?,
        filter: query::parse_filter(&a.opt_str("filter")?.unwrap_or_default())?,
        datasets,
        order_by,
        max_results: a.opt_i64("max_results")?.unwrap_or(100),
        offset: decode_page_token(a.opt_str("page_token")?)?,
    };
    let page = s.platform.search_logged_models(search).await?;
    Ok(Json(mlflow::SearchLoggedModelsResponse {
        models: page.items.iter().map(Into::into).collect(),
        next_page_token: encode_page_token(page.next_offset),
    }))
}

/// `{dataset_name, dataset_digest}`; a digest needs a name.
fn dataset_filter(o: &Args) -> Result<Option<DatasetFilter>, ApiError> {
    let name = o.opt_str("dataset_name")?;
    let digest = o.opt_str("dataset_digest")?;
    match (name, digest) {
        (Some(name), digest) => Ok(Some(DatasetFilter { name, digest })),
        (None, Some(_)) => {
            Err(ApiError::invalid("`dataset_digest` can only be specified if `dataset_name` is also specified."))
        }
        (None, None) => Ok(None),
    }
}

async fn list_artifacts(s: Api, Path(model_id): Path<String>, a: Args) -> ApiResult {
    let model = s.platform.get_logged_model(&model_id).await?;
    let dir = a.opt_str("artifact_directory_path")?.unwrap_or_default();
    let Some(key) = s.platform.artifact_key(&model.artifact_location) else {
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
