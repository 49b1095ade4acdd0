//! Plinth's use cases: the one place where business rules run, called by the
//! HTTP server and the CLI alike. Validates input with `plinth-core`, keeps
//! metadata in a [`MetadataStore`] and bytes in an [`ArtifactStore`].

pub mod access;
pub mod accounts;
mod artifacts;
mod audit;
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
mod roles;
mod runs;
pub mod tabular;
pub mod tracking;
mod usage;
pub mod workspaces;

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
pub use roles::{Effective, HeldGrant};

/// The URI scheme under which this server proxies artifacts (MLflow's).
pub const ARTIFACT_SCHEME: &str = "mlflow-artifacts:/";

/// The platform: metadata plus artifacts. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    store: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    clock: SharedClock,
    /// Where new experiments keep their artifacts: under `mlflow-artifacts:/`
    /// (clients go through the server's proxy), or under the store's own URI
    /// (`s3://bucket/prefix`, `file:///dir`) when clients write there themselves.
    artifact_root: Arc<str>,
    accounts: accounts::Accounts,
    /// Whom changes are recorded as (see `audit.rs`), and whose permissions
    /// every use case checks (see `access.rs`).
    actor: Arc<plinth_core::audit::Actor>,
    access_control: Arc<access::AccessControl>,
    known_workspaces: workspaces::Known,
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
        Self::open(store, artifacts, clock, true).await
    }

    /// As [`Platform::with_clock`]; with `serve_artifacts` false, runs get
    /// artifact URIs in the store itself (`s3://bucket/prefix/<experiment>/<run>/artifacts`)
    /// that clients such as `mlflow` read and write directly, as behind
    /// MLflow's `--no-serve-artifacts`. The server still reads them (serving, the UI).
    pub async fn open(
        store: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        clock: SharedClock,
        serve_artifacts: bool,
    ) -> Result<Self> {
        let artifact_root: Arc<str> = if serve_artifacts {
            ARTIFACT_SCHEME.trim_end_matches('/').into()
        } else {
            match artifacts.direct_uri() {
                Some(uri) => uri.into(),
                None => {
                    return Err(Error::Internal(
                        "artifacts that are not served need a store clients can reach (file:// or s3://)".into(),
                    ));
                }
            }
        };
        store.ensure_default_experiment(format!("{artifact_root}/0")).await?;
        let accounts = accounts::Accounts::new(store.clone(), clock.clone());
        let actor = Arc::new(plinth_core::audit::Actor::local());
        let access_control = Arc::new(access::AccessControl::new(plinth_core::access::Permission::Read));
        let known_workspaces = workspaces::Known::default();
        Ok(Platform { store, artifacts, clock, artifact_root, accounts, actor, access_control, known_workspaces })
    }

    /// What a signed-in user may do where nothing is granted (MLflow's
    /// `default_permission`; `READ` unless set).
    pub fn with_default_permission(mut self, default: plinth_core::access::Permission) -> Platform {
        self.access_control = Arc::new(access::AccessControl::new(default));
        self
    }

    pub fn default_permission(&self) -> plinth_core::access::Permission {
        self.access_control.default_permission()
    }

    /// The store key of an artifact URI this server holds: `mlflow-artifacts:/…`,
    /// or one below the store's own URI; `None` for locations elsewhere.
    pub fn artifact_key<'a>(&self, uri: &'a str) -> Option<&'a str> {
        artifact_key(uri).or_else(|| self.artifacts.key_of_direct(uri))
    }

    /// Where a new experiment's artifacts go by default, with `{id}` for its id.
    pub(crate) fn default_artifact_location(&self) -> String {
        format!("{}/{{id}}", self.artifact_root)
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

    /// Users, tokens and the credential check (this process's caches),
    /// changes recorded as this platform's actor.
    pub fn accounts(&self) -> accounts::Accounts {
        self.accounts.acting(self.actor.clone())
    }

    /// The accounts as they are, for the hot path's look-ups of credentials
    /// verified lately (`trusted_*`, which record nothing): no clone of the
    /// shared handles per request.
    pub fn verified(&self) -> &accounts::Accounts {
        &self.accounts
    }
}
