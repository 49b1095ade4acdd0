//! Plinth's HTTP edge: MLflow's REST API (tracking, logged models, registry,
//! artifact proxy) over axum. Handlers extract arguments, call the engine and
//! shape MLflow's JSON; they hold no business logic and no SQL.

mod app;
mod args;
mod auth;
mod conn;
mod edge;
mod error;
mod jwt;
mod metrics;
mod oip;
mod routes;
mod state;
mod wire;

pub use app::{App, AppConfig, ArtifactLocation, OpenError, StoreLocation, open_platform};
pub use auth::{AuthConfig, Caller};
use axum::Router;
pub use conn::{ConnLimits, serve};
pub use edge::Allowed;
pub use error::ApiError;
pub use jwt::{JwtSettings, JwtVerifier};
use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_serving::Serving;
pub use state::{
    AppState, DEFAULT_MAX_ARTIFACT_BYTES, DEFAULT_MAX_CONCURRENT_INFERENCE, DEFAULT_MAX_REQUEST_BYTES, Roles,
    ServerConfig,
};

/// The whole HTTP application: the parts `config.roles` names.
pub fn app(platform: Platform, jobs: JobRunner, serving: Serving, config: ServerConfig) -> Router {
    metrics::install();
    let inference_permits = std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_inference.max(1)));
    let roles = config.roles;
    let auth = config.auth.enabled;
    let ui = roles.api.then(|| plinth_ui::router(platform.clone(), serving.clone(), jobs.clone(), auth));
    let body_limit = config.max_request_bytes;
    let edge = edge::EdgeLayer::new(config.allowed.clone());
    let state = AppState::new(state::Shared { platform, jobs, serving, config, inference_permits });
    let mut router = routes::router(state.clone(), roles);
    if roles.serving {
        // gRPC (HTTP/2) and REST share the port; gRPC paths are `/<service>/<method>`.
        router = router.route_service("/inference.GRPCInferenceService/{method}", oip::grpc::service(state.clone()));
    }
    if let Some(ui) = ui {
        router = router.merge(ui);
    }
    if auth {
        // Inside the edge's checks, before routing: once around the whole router (every route, those added
        // later and the fallback), not once per route as `Router::layer` would wrap them (which clones each
        // wrapped route per request).
        router = Router::new().fallback_service(tower::Layer::layer(&auth::AuthLayer::new(state), router));
    }
    // The same for the edge's checks and the body limit: the outer router has one route, its fallback.
    Router::new()
        .fallback_service(router)
        // Extractors that buffer (forms, bytes) stop reading at the limit;
        // uploads and MLflow arguments apply their own limits while streaming.
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(edge)
}
