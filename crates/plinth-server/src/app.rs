//! The application composed once, for the binary and the tests alike: the
//! platform over a data dir (its metadata store — SQLite in the data dir by
//! default, or PostgreSQL — and local artifacts), the job runner, the
//! serving runtime, the upload sweeper and the HTTP router.

use plinth_core::clock::SharedClock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use plinth_artifacts::ArtifactStore;
use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_serving::{Serving, ServingConfig};
use plinth_store::{MetadataStore, PostgresStore, SqliteOptions, SqliteStore};

use crate::ServerConfig;

/// Where the platform keeps its state and how the app is tuned.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `plinth.db`, `artifacts/` and `exposures/` live here.
    pub data_dir: PathBuf,
    /// Where training jobs may read datasets from.
    pub datasets_dir: PathBuf,
    /// Which metadata store: SQLite in the data dir unless told otherwise.
    pub store: StoreLocation,
    /// Where artifact bytes live: `<data-dir>/artifacts` unless told otherwise.
    pub artifacts: ArtifactLocation,
    /// Where the exposure log's segments go: `<data-dir>/exposures` unless told
    /// otherwise (a bucket, for replicas on several hosts).
    pub exposures: ArtifactLocation,
    /// How long exposures are kept.
    pub exposure_retention: Duration,
    /// Clients reach artifacts through this server's proxy (`mlflow-artifacts:/`
    /// URIs, the default), or, when false, in the store itself (`s3://…` URIs).
    pub serve_artifacts: bool,
    pub sqlite: SqliteOptions,
    /// "Now" for the store, the platform and serving (tests move it by hand).
    pub clock: SharedClock,
    /// Whether and how this process runs training jobs.
    pub jobs: plinth_engine::jobs::JobConfig,
    /// How often serving re-reads deployments and aliases.
    pub reload_interval: Duration,
    /// How often deployment policies are evaluated (by the one worker holding the evaluator's lease).
    pub policy_interval: Duration,
    pub server: ServerConfig,
    /// With authentication on and no user yet: the first administrator
    /// (`PLINTH_ADMIN_USER`, `PLINTH_ADMIN_PASSWORD`).
    pub first_admin: Option<(String, String)>,
    /// What a signed-in user may do where nothing is granted (MLflow's
    /// `default_permission`): `READ` unless set.
    pub default_permission: plinth_core::access::Permission,
}

impl AppConfig {
    /// Defaults over one data dir.
    pub fn new(data_dir: impl Into<PathBuf>) -> AppConfig {
        let data_dir = data_dir.into();
        AppConfig {
            datasets_dir: AppConfig::default_datasets_dir(&data_dir),
            data_dir,
            store: StoreLocation::default(),
            artifacts: ArtifactLocation::default(),
            serve_artifacts: true,
            exposures: ArtifactLocation::default(),
            exposure_retention: plinth_serving::exposure::DEFAULT_RETENTION,
            sqlite: SqliteOptions::default(),
            clock: plinth_core::clock::system(),
            jobs: plinth_engine::jobs::JobConfig::default(),
            reload_interval: plinth_serving::DEFAULT_RELOAD_INTERVAL,
            policy_interval: plinth_serving::policy::DEFAULT_INTERVAL,
            server: ServerConfig::default(),
            first_admin: None,
            default_permission: plinth_core::access::Permission::Read,
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
    #[error("cannot open the PostgreSQL store (--store): {0}")]
    Postgres(plinth_store::Error),
    #[error("cannot open the artifact store: {0}")]
    Artifacts(#[from] plinth_artifacts::Error),
    #[error(transparent)]
    Engine(#[from] plinth_engine::Error),
    #[error("cannot create the first administrator from PLINTH_ADMIN_USER and PLINTH_ADMIN_PASSWORD: {0}")]
    FirstAdmin(plinth_engine::Error),
    #[error("cannot start serving: {0}")]
    Serving(#[from] plinth_serving::Error),
}

fn create_dir(what: &'static str, path: &Path) -> Result<(), OpenError> {
    std::fs::create_dir_all(path).map_err(|source| OpenError::Dir { what, path: path.to_path_buf(), source })
}

/// Where metadata lives: `sqlite:///path/plinth.db` (the default: the data
/// dir's `plinth.db`) or `postgresql://user[:password]@host[:port]/db`.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum StoreLocation {
    /// SQLite at `<data-dir>/plinth.db`.
    #[default]
    DataDir,
    /// SQLite at this file.
    Sqlite(PathBuf),
    /// PostgreSQL at this URL (which may hold a password: never shown).
    Postgres(String),
}

impl StoreLocation {
    /// Parses a store URI; a bad one gets a sentence naming the accepted forms.
    pub fn parse(uri: &str) -> Result<StoreLocation, String> {
        let uri = uri.trim();
        if let Some(path) = uri.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("invalid store URI 'sqlite://': give a file, as sqlite:///path/to/plinth.db".into());
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if uri.starts_with("postgresql://") || uri.starts_with("postgres://") {
            return Ok(StoreLocation::Postgres(uri.to_string()));
        }
        let shown = uri.split('@').next_back().unwrap_or_default();
        Err(format!(
            "invalid store URI '{shown}': expected sqlite:///path/to/plinth.db or postgresql://user@host:port/db"
        ))
    }
}

/// Never the password: a PostgreSQL URL shows from its host on.
impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::DataDir => f.write_str("DataDir"),
            StoreLocation::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            StoreLocation::Postgres(url) => {
                write!(f, "Postgres(postgresql://…@{})", url.rsplit('@').next().unwrap_or_default())
            }
        }
    }
}

/// Where artifact bytes live: `file:///path` (default `<data-dir>/artifacts`)
/// or `s3://bucket[/prefix]` with the standard AWS settings from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ArtifactLocation {
    #[default]
    DataDir,
    Local(PathBuf),
    S3(String),
}

impl ArtifactLocation {
    pub fn parse(uri: &str) -> Result<ArtifactLocation, String> {
        let uri = uri.trim();
        if let Some(path) = uri.strip_prefix("file://") {
            return if path.is_empty() {
                Err("invalid artifact location 'file://': give a directory, as file:///srv/artifacts".into())
            } else {
                Ok(ArtifactLocation::Local(PathBuf::from(path)))
            };
        }
        if uri.starts_with("s3://") {
            return Ok(ArtifactLocation::S3(uri.to_string()));
        }
        Err(format!("invalid artifact location '{uri}': expected file:///path or s3://bucket[/prefix]"))
    }
}

/// The platform over a data dir: the metadata store `store` names, and the
/// artifacts `artifacts` names, proxied by the server or (`serve_artifacts`
/// false) reached by clients directly.
pub async fn open_platform(
    data_dir: &Path,
    store: &StoreLocation,
    artifacts: &ArtifactLocation,
    serve_artifacts: bool,
    sqlite: SqliteOptions,
    clock: SharedClock,
) -> Result<Platform, OpenError> {
    create_dir("data dir", data_dir)?;
    let metadata: Arc<dyn MetadataStore> = match store {
        StoreLocation::DataDir | StoreLocation::Sqlite(_) => {
            let db = match store {
                StoreLocation::Sqlite(path) => path.clone(),
                _ => data_dir.join("plinth.db"),
            };
            let sqlite = SqliteStore::open_with_clock(&db, sqlite, clock.clone())
                .map_err(|source| OpenError::Store { path: db, source })?;
            Arc::new(sqlite)
        }
        StoreLocation::Postgres(url) => {
            Arc::new(PostgresStore::connect(url, clock.clone()).await.map_err(OpenError::Postgres)?)
        }
    };
    let artifacts = match artifacts {
        ArtifactLocation::DataDir => ArtifactStore::local(data_dir.join("artifacts"))?,
        ArtifactLocation::Local(path) => ArtifactStore::local(path)?,
        ArtifactLocation::S3(url) => ArtifactStore::s3(url).await?,
    };
    Ok(Platform::open(metadata, artifacts, clock, serve_artifacts).await?)
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
        let platform = open_platform(
            &config.data_dir,
            &config.store,
            &config.artifacts,
            config.serve_artifacts,
            config.sqlite,
            config.clock.clone(),
        )
        .await?;
        let platform = platform.with_default_permission(config.default_permission);
        platform.follow_grant_changes();
        sweep_interrupted_uploads(platform.artifacts().clone());
        if config.server.auth.enabled {
            first_admin(&platform, config.first_admin.as_ref()).await?;
        }
        create_dir("datasets dir", &config.datasets_dir)?;
        let job_config = plinth_engine::jobs::JobConfig {
            work: config.jobs.work && config.server.roles.worker,
            ..config.jobs.clone()
        };
        let jobs = JobRunner::start_with(platform.clone(), config.datasets_dir.clone(), job_config).await?;
        let exposure_store = match &config.exposures {
            ArtifactLocation::DataDir => ArtifactStore::local(config.data_dir.join("exposures"))?,
            ArtifactLocation::Local(path) => ArtifactStore::local(path)?,
            ArtifactLocation::S3(url) => ArtifactStore::s3(url).await?,
        };
        let exposures = plinth_serving::ExposureConfig { store: exposure_store, retention: config.exposure_retention };
        let serving =
            Serving::start(platform.clone(), ServingConfig { exposures, reload_interval: config.reload_interval })
                .await?;
        if config.exposures == ArtifactLocation::DataDir {
            // Earlier versions appended JSON lines there: moved into segments once.
            let dir = config.data_dir.join("exposures");
            if let Err(e) = serving.exposures().import_jsonl(&dir).await {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot move the old exposure log into segments");
            }
        }
        if config.server.roles.worker {
            serving.start_policies(config.policy_interval);
        }
        let api = config.server.roles.api;
        let router = crate::app(platform.clone(), jobs.clone(), serving.clone(), config.server);
        if api {
            // After the router: it installs the metrics recorder.
            publish_usage_gauges(serving.clone());
        }
        Ok(App { platform, jobs, serving, router })
    }
}

/// Authentication on: the first administrator, when no user exists and one is
/// given; else, with no user at all, a warning that says how to make one.
async fn first_admin(platform: &Platform, given: Option<&(String, String)>) -> Result<(), OpenError> {
    let accounts = platform.acting(plinth_core::audit::Actor::system("first-admin")).accounts();
    if let Some((user, password)) = given
        && let Some(admin) = accounts.ensure_admin(user, password).await.map_err(OpenError::FirstAdmin)?
    {
        tracing::info!(user = %admin.username, "created the first administrator (PLINTH_ADMIN_USER)");
    }
    if accounts.list_users().await?.is_empty() {
        tracing::warn!(
            "authentication is on and no user exists: nobody can sign in. Create one with \
             `plinth users create NAME --admin` against this store, or start with PLINTH_ADMIN_USER and PLINTH_ADMIN_PASSWORD"
        );
    }
    Ok(())
}

/// The usage report as Prometheus gauges, recomputed every minute (30 days,
/// served models stale past 30 days).
fn publish_usage_gauges(serving: Serving) {
    tokio::spawn(async move {
        loop {
            let query =
                plinth_core::usage::UsageQuery { days: 30, stale_days: 30, now: serving.now_ms(), workspace: None };
            match serving.usage(query).await {
                Ok(usage) => crate::metrics::record_usage(&usage),
                Err(e) => tracing::warn!(error = %e, "could not compute the usage gauges"),
            }
            tokio::time::sleep(crate::metrics::USAGE_EVERY).await;
        }
    });
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
