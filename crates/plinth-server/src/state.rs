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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            max_concurrent_inference: DEFAULT_MAX_CONCURRENT_INFERENCE,
            allowed: Allowed::default(),
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
