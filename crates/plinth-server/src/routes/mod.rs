//! The router: one module per noun, merged here under MLflow's prefixes.

mod artifacts;
mod deployments;
mod experiments;
mod jobs;
mod logged_models;
mod registry;
mod runs;
mod serving;

use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

fn mlflow_api() -> Router<AppState> {
    Router::new()
        .merge(experiments::router())
        .merge(runs::router())
        .merge(logged_models::router())
        .merge(registry::router())
        .merge(artifacts::tracking_router())
}

pub fn router(state: AppState) -> Router {
    let api = mlflow_api();
    Router::new()
        .nest("/api/2.0/mlflow", api.clone())
        .nest("/ajax-api/2.0/mlflow", api.clone())
        .nest("/api/2.0/preview/mlflow", api)
        .nest("/api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .nest("/api/2.0/plinth", jobs::router().merge(deployments::router()))
        .merge(serving::router(state.clone()))
        .nest("/ajax-api/2.0/mlflow-artifacts", artifacts::proxy_router())
        .route("/health", get(health))
        .route("/version", get(version))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are bounded by our own readers (JSON and uploads); axum's
        // default 2 MB cap would reject large artifacts first.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health() -> &'static str {
    "OK"
}

async fn version() -> impl IntoResponse {
    Json(json!({"name": "plinth", "version": env!("CARGO_PKG_VERSION")}))
}

async fn method_not_allowed(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "BAD_REQUEST",
        message: format!("Method {method} is not allowed on {}", uri.path()),
    }
}

async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::endpoint_not_found(uri.path())
}
