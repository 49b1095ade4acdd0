//! The router: one module per noun, merged here under MLflow's prefixes.

mod artifacts;
mod audit;
mod deployments;
mod events;
mod experiments;
mod jobs;
mod logged_models;
mod registry;
mod roles;
mod runs;
pub(crate) mod serving;
mod usage;
mod users;
mod workspaces;

use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::edge::Surface;
use crate::error::{ApiError, Failure};
use crate::state::{AppState, Roles};
use plinth_core::ErrorKind;

fn mlflow_api() -> Router<AppState> {
    Router::new()
        .merge(experiments::router())
        .merge(runs::router())
        .merge(logged_models::router())
        .merge(registry::router())
        .merge(artifacts::tracking_router())
        .merge(users::mlflow_router())
}

/// The routes of `roles`; a path of a role this process does not play is not found here.
pub fn router(state: AppState, roles: Roles) -> Router {
    let mut router = Router::new();
    if roles.api {
        let api = mlflow_api();
        router = router
            .nest("/api/2.0/mlflow", api.clone())
            .nest("/ajax-api/2.0/mlflow", api.clone())
            .nest("/api/2.0/preview/mlflow", api)
            .nest("/api/2.0/mlflow-artifacts", artifacts::proxy_router())
            .nest("/api/3.0/mlflow", roles::router().merge(workspaces::router()))
            .nest("/ajax-api/3.0/mlflow", roles::router().merge(workspaces::router()))
            .nest(
                "/api/2.0/plinth",
                jobs::router()
                    .merge(deployments::router())
                    .merge(users::plinth_router())
                    .merge(audit::router())
                    .merge(usage::router()),
            )
            .nest("/ajax-api/2.0/mlflow-artifacts", artifacts::proxy_router())
            .merge(artifacts::legacy_router());
    }
    if roles.serving {
        router = router.merge(serving::router(state.clone()));
    }
    router
        .route("/metrics", get(serving::metrics))
        .route("/health", get(health))
        .route("/version", get(version))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn health() -> &'static str {
    "OK"
}

async fn version() -> impl IntoResponse {
    Json(json!({"name": "plinth", "version": env!("CARGO_PKG_VERSION")}))
}

/// Answered in the shape of the API the path belongs to.
async fn method_not_allowed(method: axum::http::Method, OriginalUri(uri): OriginalUri) -> Response {
    let message = format!("Method {method} is not allowed on {}", uri.path());
    Surface::of(uri.path())
        .error(Failure::new(ErrorKind::Malformed, message).with_status(StatusCode::METHOD_NOT_ALLOWED))
}

async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    match Surface::of(uri.path()) {
        Surface::Api => ApiError::endpoint_not_found(uri.path()).into_response(),
        other => other.error(Failure::new(ErrorKind::NoSuchEndpoint, format!("No endpoint at {}", uri.path()))),
    }
}
