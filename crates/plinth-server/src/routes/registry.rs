//! `registered-models/*` and `model-versions/*`: the model registry.

use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use plinth_core::experiments::Tag;
use plinth_core::query::{Filter, Query, SortKey};
use plinth_core::registry::NewModelVersion;
use plinth_mlflow as mlflow;
use serde_json::json;

use crate::args::Args;
use crate::error::ApiResult;
use crate::state::{Api, AppState};
use crate::wire::{decode_page_token, encode_page_token, parse_tags};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/rename", post(rename_model))
        .route("/registered-models/update", patch(update_model))
        .route("/registered-models/delete", delete(delete_model))
        .route("/registered-models/search", get(search_models))
        .route("/registered-models/get-latest-versions", post(latest_versions).get(latest_versions))
        .route("/registered-models/set-tag", post(set_model_tag))
        .route("/registered-models/delete-tag", delete(delete_model_tag))
        .route("/registered-models/alias", post(set_alias).delete(delete_alias).get(get_by_alias))
        .route("/model-versions/create", post(create_version))
        .route("/model-versions/get", get(get_version))
        .route("/model-versions/update", patch(update_version))
        .route("/model-versions/delete", delete(delete_version))
        .route("/model-versions/search", get(search_versions))
        .route("/model-versions/get-download-uri", get(download_uri))
        .route("/model-versions/transition-stage", post(transition_stage))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route("/model-versions/delete-tag", delete(delete_version_tag))
}

fn search_query<C: Filter, K: SortKey>(a: &Args, default_max: i64) -> Result<Query<C, K>, crate::error::ApiError> {
    Ok(Query::parse(
        &a.opt_str("filter")?.unwrap_or_default(),
        &a.str_list("order_by")?,
        a.opt_i64("max_results")?.unwrap_or(default_max),
        decode_page_token(a.opt_str("page_token")?)?,
    )?)
}

async fn create_model(s: Api, a: Args) -> ApiResult<Json<mlflow::RegisteredModelResponse>> {
    let m = s
        .platform
        .create_registered_model(a.req_str("name")?, a.opt_str("description")?, parse_tags(&a, "tags")?)
        .await?;
    Ok(Json(mlflow::RegisteredModelResponse { registered_model: (&m).into() }))
}

async fn get_model(s: Api, a: Args) -> ApiResult<Json<mlflow::RegisteredModelResponse>> {
    let m = s.platform.get_registered_model(&a.req_str("name")?).await?;
    Ok(Json(mlflow::RegisteredModelResponse { registered_model: (&m).into() }))
}

async fn rename_model(s: Api, a: Args) -> ApiResult<Json<mlflow::RegisteredModelResponse>> {
    let m = s.platform.rename_registered_model(&a.req_str("name")?, a.req_str("new_name")?).await?;
    Ok(Json(mlflow::RegisteredModelResponse { registered_model: (&m).into() }))
}

async fn update_model(s: Api, a: Args) -> ApiResult<Json<mlflow::RegisteredModelResponse>> {
    let m = s.platform.update_registered_model(&a.req_str("name")?, a.opt_str("description")?).await?;
    Ok(Json(mlflow::RegisteredModelResponse { registered_model: (&m).into() }))
}

async fn delete_model(s: Api, a: Args) -> ApiResult {
    s.platform.delete_registered_model(&a.req_str("name")?).await?;
    Ok(Json(json!({})))
}

async fn search_models(s: Api, a: Args) -> ApiResult<Json<mlflow::SearchRegisteredModelsResponse>> {
    let page = s.platform.search_registered_models(search_query(&a, 100)?).await?;
    Ok(Json(mlflow::SearchRegisteredModelsResponse {
        registered_models: page.items.iter().map(Into::into).collect(),
        next_page_token: encode_page_token(page.next_offset),
    }))
}

async fn latest_versions(s: Api, a: Args) -> ApiResult<Json<mlflow::ModelVersionsResponse>> {
    let versions = s.platform.get_latest_versions(&a.req_str("name")?, &a.str_list("stages")?).await?;
    Ok(Json(mlflow::ModelVersionsResponse { model_versions: versions.iter().map(Into::into).collect() }))
}

async fn set_model_tag(s: Api, a: Args) -> ApiResult {
    let tag = Tag::new(a.req_str("key")?, a.req_str_allow_empty("value")?);
    s.platform.set_registered_model_tag(&a.req_str("name")?, tag).await?;
    Ok(Json(json!({})))
}

async fn delete_model_tag(s: Api, a: Args) -> ApiResult {
    s.platform.delete_registered_model_tag(&a.req_str("name")?, &a.req_str("key")?).await?;
    Ok(Json(json!({})))
}

async fn set_alias(s: Api, a: Args) -> ApiResult {
    let version = plinth_engine_version(&a.req_str("version")?)?;
    s.platform.set_alias(&a.req_str("name")?, &a.req_str("alias")?, version).await?;
    Ok(Json(json!({})))
}

fn plinth_engine_version(v: &str) -> Result<i64, crate::error::ApiError> {
    match v.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(crate::error::ApiError::invalid(format!("Parameter 'version' must be a positive integer, got '{v}'"))),
    }
}

async fn delete_alias(s: Api, a: Args) -> ApiResult {
    s.platform.delete_alias(&a.req_str("name")?, &a.req_str("alias")?).await?;
    Ok(Json(json!({})))
}

async fn get_by_alias(s: Api, a: Args) -> ApiResult<Json<mlflow::ModelVersionResponse>> {
    let v = s.platform.get_model_version_by_alias(&a.req_str("name")?, &a.req_str("alias")?).await?;
    Ok(Json(mlflow::ModelVersionResponse { model_version: (&v).into() }))
}

async fn create_version(s: Api, a: Args) -> ApiResult<Json<mlflow::ModelVersionResponse>> {
    let new = NewModelVersion {
        name: a.req_str("name")?,
        source: a.req_str("source")?,
        run_id: a.opt_str("run_id")?.filter(|s| !s.is_empty()),
        run_link: a.opt_str("run_link")?.filter(|s| !s.is_empty()),
        description: a.opt_str("description")?,
        tags: parse_tags(&a, "tags")?,
        model_id: a.opt_str("model_id")?.filter(|s| !s.is_empty()),
        storage_location: String::new(),
    };
    let v = s.platform.create_model_version(new).await?;
    Ok(Json(mlflow::ModelVersionResponse { model_version: (&v).into() }))
}

async fn get_version(s: Api, a: Args) -> ApiResult<Json<mlflow::ModelVersionResponse>> {
    let v = s.platform.get_model_version(&a.req_str("name")?, &a.req_str("version")?).await?;
    Ok(Json(mlflow::ModelVersionResponse { model_version: (&v).into() }))
}

async fn update_version(s: Api, a: Args) -> ApiResult<Json<mlflow::ModelVersionResponse>> {
    let v =
        s.platform.update_model_version(&a.req_str("name")?, &a.req_str("version")?, a.opt_str("description")?).await?;
    Ok(Json(mlflow::ModelVersionResponse { model_version: (&v).into() }))
}

async fn delete_version(s: Api, a: Args) -> ApiResult {
    s.platform.delete_model_version(&a.req_str("name")?, &a.req_str("version")?).await?;
    Ok(Json(json!({})))
}

async fn search_versions(s: Api, a: Args) -> ApiResult<Json<mlflow::SearchModelVersionsResponse>> {
    let page = s.platform.search_model_versions(search_query(&a, 10_000)?).await?;
    Ok(Json(mlflow::SearchModelVersionsResponse {
        model_versions: page.items.iter().map(Into::into).collect(),
        next_page_token: encode_page_token(page.next_offset),
    }))
}

async fn download_uri(s: Api, a: Args) -> ApiResult {
    let uri = s.platform.model_version_download_uri(&a.req_str("name")?, &a.req_str("version")?).await?;
    Ok(Json(json!({"artifact_uri": uri})))
}

async fn transition_stage(s: Api, a: Args) -> ApiResult<Json<mlflow::ModelVersionResponse>> {
    let v = s
        .platform
        .transition_stage(
            &a.req_str("name")?,
            &a.req_str("version")?,
            &a.req_str("stage")?,
            a.opt_bool("archive_existing_versions")?.unwrap_or(false),
        )
        .await?;
    Ok(Json(mlflow::ModelVersionResponse { model_version: (&v).into() }))
}

async fn set_version_tag(s: Api, a: Args) -> ApiResult {
    let tag = Tag::new(a.req_str("key")?, a.req_str_allow_empty("value")?);
    s.platform.set_model_version_tag(&a.req_str("name")?, &a.req_str("version")?, tag).await?;
    Ok(Json(json!({})))
}

async fn delete_version_tag(s: Api, a: Args) -> ApiResult {
    s.platform.delete_model_version_tag(&a.req_str("name")?, &a.req_str("version")?, &a.req_str("key")?).await?;
    Ok(Json(json!({})))
}
