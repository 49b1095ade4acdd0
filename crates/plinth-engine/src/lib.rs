//! Plinth's use cases: the one place where business rules run, called by the
//! HTTP server and the CLI alike. Validates input with `plinth-core`, keeps
//! metadata in a [`MetadataStore`] and bytes in an [`ArtifactStore`].

mod artifacts;
pub mod deployments;
mod error;
mod experiments;
pub mod imports;
pub mod jobs;
mod logged_models;
mod plots;
pub mod pyfunc;
pub mod recommenders;
mod registry;
mod runs;
pub mod tabular;
pub mod tracking;

use std::sync::Arc;

pub use artifacts::artifact_key;
pub use error::{Error, Result};
use plinth_artifacts::ArtifactStore;
use plinth_core::clock::SharedClock;
use plinth_store::MetadataStore;
pub use plinth_store::{
    DatasetFilter, ExperimentSearch, LoggedModelOrder, LoggedModelSearch, ModelVersionQuery, Page,
    RegisteredModelQuery, RunSearch,
};

/// The URI scheme under which this server proxies artifacts (MLflow's).
pub const ARTIFACT_SCHEME: &str = "mlflow-artifacts:/";

/// The platform: metadata plus artifacts. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    store: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    clock: SharedClock,
}

impl Platform {
    /// Wires the stores together and makes sure the default experiment exists.
    pub async fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore) -> Result<Self> {
        Self::with_clock(store, artifacts, plinth_core::clock::system()).await
    }

    /// As [`Platform::new`], with the clock that stamps deployments, logged
    /// models, run ends and jobs (serving reads it too).
    pub async fn with_clock(
        store: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        clock: SharedClock,
    ) -> Result<Self> {
        store.ensure_default_experiment(format!("{ARTIFACT_SCHEME}0")).await?;
        Ok(Platform { store, artifacts, clock })
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Ticks when another process changed deployments, aliases or stages
    /// (a shared store only; see `MetadataStore::changes`).
    pub fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.store.changes()
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }
}
