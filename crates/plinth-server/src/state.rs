//! What every handler can reach.

use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;

/// Limits and settings the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest JSON request body accepted (bytes).
    pub max_request_bytes: usize,
    /// Largest artifact upload accepted (bytes).
    pub max_artifact_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { max_request_bytes: 16 << 20, max_artifact_bytes: 8 << 30 }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub platform: Platform,
    pub jobs: JobRunner,
    pub config: ServerConfig,
}
