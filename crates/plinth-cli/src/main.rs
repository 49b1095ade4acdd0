//! `plinth`: the one binary. Subcommands parse arguments and call the
//! engine or the server; they hold no logic of their own.

mod audit;
mod client;
mod config;
mod deploy;
mod events;
mod import;
mod jobs;
mod models;
mod remote;
mod tabular;
mod train;
mod users;

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use plinth_engine::Platform;
use plinth_server::ServerConfig;
use plinth_store::SqliteOptions;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ServerFlags};

/// mimalloc rather than the system allocator: serving allocates small
/// buffers per request on many threads, where glibc's malloc measured as a
/// sixth of the CPU time of a one-row inference request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "plinth",
    version,
    about = "Plinth: one binary for tracking, registry, training and serving of ML models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the platform: MLflow-compatible tracking, artifacts and model registry.
    Server(Box<ServerFlags>),
    /// Train, evaluate, track and register a model.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Serve registered models: create, change, inspect and delete deployments on a running server.
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Outcome events (plays, clicks, conversions) for experiment analysis: import a file into a running server.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Register a model trained elsewhere (LightGBM) so Plinth tracks and serves it.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// The model registry on a running server: list models and versions, set and delete aliases.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Training jobs on a running server: submit, list, get, cancel.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Users who sign in to a server with --auth, in its store: create, list, password, set-admin, delete.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// API tokens (bearer credentials) of users, in the store: create, list, revoke.
    #[command(subcommand)]
    Tokens(users::TokensCommand),
    /// The audit trail of a running server, newest first: who changed what, when, before and after.
    Audit(Box<audit::AuditArgs>),
}

#[derive(Subcommand)]
enum TrainCommand {
    /// A recommender (ALS, BPR, item kNN, popularity) from interaction data.
    Recommender(Box<train::RecommenderArgs>),
    /// A gradient-boosted tree or linear model (binary, multiclass, regression) from a CSV or Parquet table.
    Tabular(Box<tabular::TabularArgs>),
}

/// A caller's mistake is one line of text, never a backtrace (many Rust
/// users keep `RUST_BACKTRACE=1` set, which makes `anyhow` print one).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("PLINTH_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Server(flags) => runtime.block_on(server(Config::resolve(&flags)?)),
        Command::Train(TrainCommand::Recommender(args)) => runtime.block_on(train::recommender(*args)),
        Command::Train(TrainCommand::Tabular(args)) => runtime.block_on(tabular::run(*args)),
        Command::Deploy(cmd) => runtime.block_on(deploy::run(cmd)),
        Command::Events(cmd) => runtime.block_on(events::run(cmd)),
        Command::Import(cmd) => runtime.block_on(import::run(cmd)),
        Command::Models(cmd) => runtime.block_on(models::run(cmd)),
        Command::Jobs(cmd) => runtime.block_on(jobs::run(cmd)),
        Command::Users(cmd) => runtime.block_on(users::users(cmd)),
        Command::Tokens(cmd) => runtime.block_on(users::tokens(cmd)),
        Command::Audit(args) => runtime.block_on(audit::run(*args)),
    }
}

async fn server(config: Config) -> anyhow::Result<()> {
    // Bind first: a busy port fails before anything is created on disk.
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    if !config.host.is_loopback() && !config.auth {
        tracing::warn!(
            "listening on {addr} without --auth: anyone who can reach this address can read every experiment, run, \
             artifact and model, move aliases (changing what deployments serve), delete models and deploy anything"
        );
    }
    let auth = plinth_server::AuthConfig {
        enabled: config.auth,
        trusted_proxies: config.trusted_proxies.clone(),
        jwt: match &config.jwt {
            Some(settings) => {
                Some(std::sync::Arc::new(plinth_server::JwtVerifier::new(settings).map_err(anyhow::Error::msg)?))
            }
            None => None,
        },
    };
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let first_admin = match (var("PLINTH_ADMIN_USER"), var("PLINTH_ADMIN_PASSWORD")) {
        (Some(user), Some(password)) => Some((user, password)),
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("PLINTH_ADMIN_USER and PLINTH_ADMIN_PASSWORD go together: set both or neither")
        }
        (None, None) => None,
    };
    let app = plinth_server::App::open(plinth_server::AppConfig {
        data_dir: config.data_dir.clone(),
        datasets_dir: config.datasets_dir.clone(),
        store: config.store.clone(),
        artifacts: config.artifacts.clone(),
        serve_artifacts: config.serve_artifacts,
        exposures: config.exposures.clone(),
        exposure_retention: std::time::Duration::from_secs(config.exposure_retention_days * 86_400),
        jobs: plinth_engine::jobs::JobConfig {
            work: config.roles.worker,
            lease: std::time::Duration::from_millis(config.job_lease_ms),
            ..Default::default()
        },
        sqlite: SqliteOptions { fsync_commits: config.fsync_commits },
        clock: plinth_core::clock::system(),
        reload_interval: std::time::Duration::from_millis(config.reload_interval_ms),
        policy_interval: std::time::Duration::from_millis(config.policy_interval_ms),
        server: ServerConfig {
            max_request_bytes: config.max_request_bytes,
            max_artifact_bytes: config.max_artifact_bytes,
            max_concurrent_inference: config.max_concurrent_inference,
            allowed: plinth_server::Allowed {
                hosts: config.allowed_hosts.clone(),
                origins: config.allowed_origins.clone(),
            },
            roles: config.roles,
            auth,
        },
        first_admin,
        default_permission: config.default_permission,
    })
    .await?;
    let local = listener.local_addr()?;
    tracing::info!(data_dir = %config.data_dir.display(), store = ?config.store, roles = %config.roles, auth = config.auth, "Plinth listening on http://{local}");
    let limits = plinth_server::ConnLimits { max_connections: config.max_connections, ..Default::default() };
    let jobs = app.jobs.clone();
    plinth_server::serve(listener, app.router, limits, shutdown_signal()).await?;
    // A job running here goes back to the queue for another replica (or this one, restarted).
    jobs.shutdown().await;
    tracing::info!("Plinth stopped");
    Ok(())
}

/// The embedded platform over a data dir (SQLite + local artifacts).
pub(crate) async fn open_platform(data_dir: &std::path::Path) -> anyhow::Result<Platform> {
    let store = plinth_server::StoreLocation::default();
    let artifacts = plinth_server::ArtifactLocation::default();
    let clock = plinth_core::clock::system();
    Ok(plinth_server::open_platform(data_dir, &store, &artifacts, true, SqliteOptions::default(), clock).await?)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down, draining in-flight requests");
}
