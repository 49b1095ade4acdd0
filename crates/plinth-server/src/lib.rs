//! Plinth's HTTP edge: MLflow's REST API (tracking, logged models, registry,
//! artifact proxy) over axum. Handlers extract arguments, call the engine and
//! shape MLflow's JSON; they hold no business logic and no SQL.

mod args;
mod error;
mod grpc;
mod metrics;
mod routes;
mod state;
mod wire;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
pub use error::ApiError;
use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_serving::Serving;
pub use state::{AppState, ServerConfig};
use tokio::net::TcpListener;

/// The whole HTTP application.
pub fn app(platform: Platform, jobs: JobRunner, serving: Serving, config: ServerConfig) -> Router {
    metrics::install();
    let inference_permits = std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_inference.max(1)));
    let ui = plinth_ui::router(serving.clone());
    let state = AppState::new(state::Shared { platform, jobs, serving, config, inference_permits });
    // gRPC (HTTP/2) and REST share the port; gRPC paths are `/<service>/<method>`.
    routes::router(state.clone())
        .route_service("/inference.GRPCInferenceService/{method}", grpc::service(state))
        .merge(ui)
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains
/// in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
