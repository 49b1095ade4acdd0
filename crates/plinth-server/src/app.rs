//! The application composed once, for the binary and the tests alike: the
//! embedded platform over a data dir (SQLite + local artifacts), the job
//! runner, the serving runtime, the upload sweeper and the HTTP router.

use plinth_core::clock::SharedClock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use plinth_artifacts::ArtifactStore;
use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_serving::{Serving, ServingConfig};
use plinth_store::{SqliteOptions, SqliteStore};

use crate::ServerConfig;

/// Where the platform keeps its state and how the app is tuned.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `plinth.db`, `artifacts/` and `exposures/` live here.
    pub data_dir: PathBuf,
    /// Where training jobs may read datasets from.
    pub datasets_dir: PathBuf,
    pub sqlite: SqliteOptions,
    /// "Now" for the store, the platform and serving (tests move it by hand).
    pub clock: SharedClock,
    /// How often serving re-reads deployments and aliases.
    pub reload_interval: Duration,
    pub server: ServerConfig,
}

impl AppConfig {
    /// Defaults over one data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> AppConfig {
        let data_dir = data_dir.into();
        AppConfig {
            datasets_dir: AppConfig::default_datasets_dir(&data_dir),
            data_dir,
            sqlite: SqliteOptions::default(),
            clock: plinth_core::clock::system(),
            reload_interval: plinth_serving::DEFAULT_RELOAD_INTERVAL,
            server: ServerConfig::default(),
        }
    }

    /// `<data-dir>/datasets`.
    pub fn default_datasets_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("datasets")
    }
}

/// Why the app could not start; each names what it could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {what} {}: {source}", path.display())]
    Dir { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot open {}: {source}", path.display())]
    Store { path: PathBuf, source: plinth_store::Error },
    #[error("cannot open the artifact store: {0}")]
    Artifacts(#[from] plinth_artifacts::Error),
    #[error(transparent)]
    Engine(#[from] plinth_engine::Error),
    #[error("cannot start serving: {0}")]
    Serving(#[from] plinth_serving::Error),
}

fn create_dir(what: &'static str, path: &Path) -> Result<(), OpenError> {
    std::fs::create_dir_all(path).map_err(|source| OpenError::Dir { what, path: path.to_path_buf(), source })
}

/// The embedded platform over a data dir (SQLite + local artifacts).
pub async fn open_platform(data_dir: &Path, sqlite: SqliteOptions, clock: SharedClock) -> Result<Platform, OpenError> {
    create_dir("data dir", data_dir)?;
    let db = data_dir.join("plinth.db");
    let store = SqliteStore::open_with_clock(&db, sqlite, clock.clone())
        .map_err(|source| OpenError::Store { path: db, source })?;
    let artifacts = ArtifactStore::local(data_dir.join("artifacts"))?;
    Ok(Platform::with_clock(Arc::new(store), artifacts, clock).await?)
}

/// The running application: its parts, and the router that serves them.
pub struct App {
    pub platform: Platform,
    pub jobs: JobRunner,
    pub serving: Serving,
    pub router: Router,
}

impl App {
    /// Opens the platform, starts the job runner (resuming interrupted
    /// jobs), loads every deployment, starts the sweep of interrupted
    /// uploads (on start, then hourly) and builds the router.
    pub async fn open(config: AppConfig) -> Result<App, OpenError> {
        let platform = open_platform(&config.data_dir, config.sqlite, config.clock.clone()).await?;
        sweep_interrupted_uploads(platform.artifacts().clone());
        create_dir("datasets dir", &config.datasets_dir)?;
        let jobs = JobRunner::start(platform.clone(), config.datasets_dir.clone()).await?;
        let serving = Serving::start(
            platform.clone(),
            ServingConfig { exposure_dir: config.data_dir.join("exposures"), reload_interval: config.reload_interval },
        )
        .await?;
        let router = crate::app(platform.clone(), jobs.clone(), serving.clone(), config.server);
        Ok(App { platform, jobs, serving, router })
    }
}

/// Staged files of uploads that a crash interrupted: swept on start and
/// hourly. A live upload keeps writing its own, so a minute of silence marks
/// one as abandoned.
fn sweep_interrupted_uploads(artifacts: ArtifactStore) {
    tokio::spawn(async move {
        loop {
            match artifacts.remove_stale_uploads(Duration::from_secs(60)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed staged files of interrupted uploads"),
                Err(e) => tracing::warn!(error = %e, "could not sweep interrupted uploads"),
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}
