//! `experiments/*`: MLflow's experiment endpoints.

use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::experiments::{Tag, ViewType};
use plinth_core::query::Query;
use plinth_engine::ExperimentSearch;
use plinth_mlflow as mlflow;
use serde_json::json;

use crate::args::Args;
use crate::error::ApiResult;
use crate::state::{Api, AppState};
use crate::wire::{decode_page_token, encode_page_token, parse_tags};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create))
        .route("/experiments/get", get(get_one))
        .route("/experiments/get-by-name", get(get_by_name))
        .route("/experiments/search", post(search).get(search))
        .route("/experiments/update", post(update))
        .route("/experiments/delete", post(delete))
        .route("/experiments/restore", post(restore))
        .route("/experiments/set-experiment-tag", post(set_tag))
        .route("/experiments/delete-experiment-tag", post(delete_tag))
        .route("/experiments/search-datasets", post(search_datasets))
}

async fn create(s: Api, a: Args) -> ApiResult {
    let id = s
        .platform
        .create_experiment(a.req_str("name")?, a.opt_str("artifact_location")?, parse_tags(&a, "tags")?)
        .await?;
    Ok(Json(json!({"experiment_id": id})))
}

async fn get_one(s: Api, a: Args) -> ApiResult<Json<mlflow::ExperimentResponse>> {
    let e = s.platform.get_experiment(&a.req_str("experiment_id")?).await?;
    Ok(Json(mlflow::ExperimentResponse { experiment: (&e).into() }))
}

async fn get_by_name(s: Api, a: Args) -> ApiResult<Json<mlflow::ExperimentResponse>> {
    let e = s.platform.get_experiment_by_name(&a.req_str("experiment_name")?).await?;
    Ok(Json(mlflow::ExperimentResponse { experiment: (&e).into() }))
}

async fn search(s: Api, a: Args) -> ApiResult<Json<mlflow::SearchExperimentsResponse>> {
    let view = ViewType::parse(&a.opt_str("view_type")?.unwrap_or_default())?;
    let query = Query::parse(
        &a.opt_str("filter")?.unwrap_or_default(),
        &a.str_list("order_by")?,
        a.opt_i64("max_results")?.unwrap_or(1000),
        decode_page_token(a.opt_str("page_token")?)?,
    )?;
    let page = s.platform.search_experiments(ExperimentSearch { view, query }).await?;
    Ok(Json(mlflow::SearchExperimentsResponse {
        experiments: page.items.iter().map(Into::into).collect(),
        next_page_token: encode_page_token(page.next_offset),
    }))
}

async fn update(s: Api, a: Args) -> ApiResult {
    let id = a.req_str("experiment_id")?;
    if let Some(name) = a.opt_str("new_name")? {
        s.platform.rename_experiment(&id, name).await?;
    } else {
        s.platform.get_experiment(&id).await?;
    }
    Ok(Json(json!({})))
}

async fn delete(s: Api, a: Args) -> ApiResult {
    s.platform.delete_experiment(&a.req_str("experiment_id")?).await?;
    Ok(Json(json!({})))
}

async fn restore(s: Api, a: Args) -> ApiResult {
    s.platform.restore_experiment(&a.req_str("experiment_id")?).await?;
    Ok(Json(json!({})))
}

async fn set_tag(s: Api, a: Args) -> ApiResult {
    let tag = Tag::new(a.req_str("key")?, a.req_str_allow_empty("value")?);
    s.platform.set_experiment_tag(&a.req_str("experiment_id")?, tag).await?;
    Ok(Json(json!({})))
}

async fn delete_tag(s: Api, a: Args) -> ApiResult {
    s.platform.delete_experiment_tag(&a.req_str("experiment_id")?, &a.req_str("key")?).await?;
    Ok(Json(json!({})))
}

async fn search_datasets(s: Api, a: Args) -> ApiResult {
    let summaries = s.platform.search_datasets(a.str_list("experiment_ids")?).await?;
    let out: Vec<_> = summaries
        .iter()
        .map(|d| {
            let mut v = json!({"experiment_id": d.experiment_id, "name": d.name, "digest": d.digest});
            if let (Some(ctx), Some(obj)) = (&d.context, v.as_object_mut()) {
                obj.insert("context".into(), json!(ctx));
            }
            v
        })
        .collect();
    Ok(Json(json!({"dataset_summaries": out})))
}
