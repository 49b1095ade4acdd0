//! What every handler can reach.

use std::sync::Arc;

use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_serving::Serving;
use tokio::sync::Semaphore;

use crate::edge::Allowed;

/// Limits and settings the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest JSON request body accepted (bytes).
    pub max_request_bytes: usize,
    /// Largest artifact upload accepted (bytes).
    pub max_artifact_bytes: u64,
    /// Inference requests served at once; beyond it, 503 + Retry-After.
    pub max_concurrent_inference: usize,
    /// Hosts and origins allowed beyond loopback and IP literals.
    pub allowed: Allowed,
    /// Which parts of the platform this process serves.
    pub roles: Roles,
    /// Whether and how callers authenticate (`--auth`).
    pub auth: crate::auth::AuthConfig,
}

/// What one `plinth server` process does (`--roles`, default all three):
/// `api` (MLflow's REST API, Plinth's API and the UI), `serving` (the
/// inference and recommendation endpoints, REST and gRPC), `worker` (runs
/// training jobs). `/health`, `/version` and `/metrics` answer on every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub serving: bool,
    pub worker: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles { api: true, serving: true, worker: true }
    }
}

impl Roles {
    pub const NAMES: &str = "api, serving, worker";

    /// Parses a comma-separated list, as `api,worker`; at least one role.
    pub fn parse(list: &str) -> Result<Roles, String> {
        let mut roles = Roles { api: false, serving: false, worker: false };
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "api" => roles.api = true,
                "serving" => roles.serving = true,
                "worker" => roles.worker = true,
                other => return Err(format!("unknown role '{other}' in --roles: the roles are {}", Roles::NAMES)),
            }
        }
        if roles == (Roles { api: false, serving: false, worker: false }) {
            return Err(format!("--roles names no role: give one or more of {}", Roles::NAMES));
        }
        Ok(roles)
    }
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [(self.api, "api"), (self.serving, "serving"), (self.worker, "worker")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        f.write_str(&names.join(","))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            max_concurrent_inference: DEFAULT_MAX_CONCURRENT_INFERENCE,
            allowed: Allowed::default(),
            roles: Roles::default(),
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 << 20;
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 8 << 30;
pub const DEFAULT_MAX_CONCURRENT_INFERENCE: usize = 1024;

/// Shared by every handler; cloned per request (one reference count).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub platform: Platform,
    pub jobs: JobRunner,
    pub serving: Serving,
    pub config: ServerConfig,
    /// Permits for in-flight inference requests.
    pub inference_permits: Arc<Semaphore>,
}

/// What an API handler works with: the platform acting for the request's
/// caller and request id (so every change it makes is recorded as theirs),
/// and, through `Deref`, the rest of the state.
pub struct Api {
    pub platform: Platform,
    state: AppState,
}

impl Api {
    /// Who is calling (the anonymous administrator when auth is off).
    pub fn actor(&self) -> &plinth_core::audit::Actor {
        self.platform.actor()
    }
}

impl std::ops::Deref for Api {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.state
    }
}

impl axum::extract::FromRequestParts<AppState> for Api {
    /// A workspace header naming a workspace that does not exist, or one the
    /// caller may not see, is refused (as not found) in the path's format.
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = parts.extensions.get::<Arc<plinth_core::auth::Principal>>().cloned();
        let request_id = parts.headers.get(crate::routes::serving::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
        let actor = plinth_core::audit::Actor::of_request(principal, request_id);
        match acting_in_workspace(state.platform.acting(actor), &parts.headers).await {
            Ok(platform) => Ok(Api { platform, state: state.clone() }),
            Err(failure) => {
                // Nested routers see their own part of the path; the surface is the whole path's.
                let path = parts.extensions.get::<axum::extract::OriginalUri>().map_or(parts.uri.path(), |u| u.path());
                Err(crate::edge::Surface::of(path).error(failure))
            }
        }
    }
}

/// `platform` (acting for a request's caller) in the workspace the request's
/// `X-MLFLOW-WORKSPACE` names (`default` when none).
pub async fn acting_in_workspace(
    platform: Platform,
    headers: &axum::http::HeaderMap,
) -> Result<Platform, crate::error::Failure> {
    let Some(raw) = headers.get(plinth_core::workspaces::WORKSPACE_HEADER) else { return Ok(platform) };
    let raw = raw.to_str().map_err(|_| {
        crate::error::Failure::new(
            plinth_core::ErrorKind::InvalidParameter,
            "The X-MLFLOW-WORKSPACE header must be visible ASCII.",
        )
    })?;
    let workspace = plinth_core::workspaces::normalize(Some(raw)).map_err(crate::error::Failure::from)?;
    platform.enter_workspace(&workspace).await.map_err(crate::error::Failure::from)
}
