//! Configuration: defaults < config file < environment (`PLINTH_*`) < flags,
//! merged here once into a checked [`Config`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// What the config file may hold; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub max_request_bytes: Option<usize>,
    pub max_artifact_bytes: Option<u64>,
    pub fsync_commits: Option<bool>,
    pub store: Option<String>,
    pub artifacts: Option<String>,
    pub serve_artifacts: Option<bool>,
    pub exposures: Option<String>,
    pub exposure_retention_days: Option<u64>,
    pub roles: Option<String>,
    pub job_lease_ms: Option<u64>,
    pub datasets_dir: Option<PathBuf>,
    pub max_concurrent_inference: Option<usize>,
    pub reload_interval_ms: Option<u64>,
    pub policy_interval_ms: Option<u64>,
    pub allowed_hosts: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub auth: Option<bool>,
    pub auth_jwt_issuer: Option<String>,
    pub auth_jwt_keys: Option<PathBuf>,
    pub auth_jwt_audience: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub default_permission: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// The flags and environment, as clap resolved them (flag wins over env).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServerFlags {
    /// Address to bind (loopback by default; use 0.0.0.0 to expose).
    #[arg(long, env = "PLINTH_HOST")]
    pub host: Option<String>,
    /// Port to listen on.
    #[arg(long, env = "PLINTH_PORT")]
    pub port: Option<u16>,
    /// Where metadata (SQLite, unless --store says otherwise) and artifacts live.
    #[arg(long, env = "PLINTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The metadata store: sqlite:///path/to/plinth.db, or postgresql://user[:password]@host[:port]/db
    /// for replicas sharing one database (default: SQLite in the data dir).
    #[arg(long, env = "PLINTH_STORE")]
    pub store: Option<String>,
    /// Where artifacts live: file:///path, or s3://bucket[/prefix] with the standard AWS settings from the
    /// environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP)
    /// (default: <data-dir>/artifacts).
    #[arg(long, env = "PLINTH_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Whether clients reach artifacts through this server (`mlflow-artifacts:/` URIs, default true). With false,
    /// as behind MLflow's `--no-serve-artifacts`, new experiments keep artifacts at the store's own URI
    /// (`s3://bucket/prefix/<experiment>`) and clients such as `mlflow` read and write the bucket themselves.
    #[arg(long, env = "PLINTH_SERVE_ARTIFACTS")]
    pub serve_artifacts: Option<bool>,
    /// Where the exposure log goes: file:///path or s3://bucket[/prefix] (default <data-dir>/exposures). Replicas on
    /// several hosts share one bucket prefix; each writes its own segments.
    #[arg(long, env = "PLINTH_EXPOSURES")]
    pub exposures: Option<String>,
    /// How long exposure records are kept, in days (default 30).
    #[arg(long, env = "PLINTH_EXPOSURE_RETENTION_DAYS")]
    pub exposure_retention_days: Option<u64>,
    /// What this process does, comma-separated (default api,serving,worker): `api` is MLflow's REST API,
    /// Plinth's API and the UI; `serving` the inference and recommendation endpoints (REST and gRPC);
    /// `worker` runs training jobs. Replicas over one store may split them, e.g. dedicated workers.
    #[arg(long, env = "PLINTH_ROLES")]
    pub roles: Option<String>,
    /// How long a worker's claim on a job lasts unless renewed, in ms (default 30000); a replica that
    /// dies mid-job loses the job to another after this long.
    #[arg(long, env = "PLINTH_JOB_LEASE_MS")]
    pub job_lease_ms: Option<u64>,
    /// A TOML config file (keys: host, port, data_dir, max_request_bytes, max_artifact_bytes).
    #[arg(long, env = "PLINTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest JSON request body, in bytes.
    #[arg(long, env = "PLINTH_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Largest artifact upload, in bytes.
    #[arg(long, env = "PLINTH_MAX_ARTIFACT_BYTES")]
    pub max_artifact_bytes: Option<u64>,
    /// fsync every metadata commit, so acknowledged writes survive power loss
    /// too (by default they survive a server crash; see ARCHITECTURE.md).
    #[arg(long, env = "PLINTH_FSYNC_COMMITS")]
    pub fsync_commits: Option<bool>,
    /// Where training jobs submitted over the API may read data (default <data-dir>/datasets).
    #[arg(long, env = "PLINTH_DATASETS_DIR")]
    pub datasets_dir: Option<PathBuf>,
    /// Inference requests served at once; beyond it, 503 + Retry-After (default 1024).
    #[arg(long, env = "PLINTH_MAX_CONCURRENT_INFERENCE")]
    pub max_concurrent_inference: Option<usize>,
    /// How often deployments re-check aliases and stored changes, in ms (default 1000).
    #[arg(long, env = "PLINTH_RELOAD_INTERVAL_MS")]
    pub reload_interval_ms: Option<u64>,
    /// How often deployment policies are evaluated (by one worker of all replicas), in ms (default 60000).
    #[arg(long, env = "PLINTH_POLICY_INTERVAL_MS")]
    pub policy_interval_ms: Option<u64>,
    /// Host names the server answers to, beyond localhost and IP literals (comma-separated, `*` wildcards;
    /// `*` for any). Guards against DNS rebinding.
    #[arg(long, env = "PLINTH_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Other origins (e.g. `https://notebooks.example.com`) allowed to send state-changing requests
    /// (comma-separated, `*` wildcards). Default: only the server's own origin.
    #[arg(long, env = "PLINTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Connections open at once; at the cap the longest-idle one is closed to make room
    /// (default: three quarters of the open-file limit).
    #[arg(long, env = "PLINTH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Callers must sign in (default false: the embedded single-user mode): HTTP basic with a user's
    /// password, a bearer API token, a bearer JWT from --auth-jwt-issuer, or the UI's session. The first
    /// administrator comes from PLINTH_ADMIN_USER and PLINTH_ADMIN_PASSWORD when no user exists yet.
    #[arg(long, env = "PLINTH_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub auth: Option<bool>,
    /// Single sign-on: the issuer (`iss`) of bearer JWTs to accept; needs --auth-jwt-keys or
    /// PLINTH_AUTH_JWT_SECRET (HS256).
    #[arg(long, env = "PLINTH_AUTH_JWT_ISSUER")]
    pub auth_jwt_issuer: Option<String>,
    /// The identity provider's public keys: a JWKS file ({"keys": [...]}) or one PEM public key.
    #[arg(long, env = "PLINTH_AUTH_JWT_KEYS")]
    pub auth_jwt_keys: Option<PathBuf>,
    /// The audience (`aud`) JWTs must name, if any.
    #[arg(long, env = "PLINTH_AUTH_JWT_AUDIENCE")]
    pub auth_jwt_audience: Option<String>,
    /// Addresses of proxies (the load balancer) whose X-Forwarded-For names the client, comma-separated;
    /// failed sign-ins are then counted per client, not per balancer (default: none trusted).
    #[arg(long, env = "PLINTH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// With --auth: what a signed-in user may do with resources nothing grants them (MLflow's
    /// default_permission): READ, USE, EDIT, MANAGE or NO_PERMISSIONS (default: READ).
    #[arg(long, env = "PLINTH_DEFAULT_PERMISSION")]
    pub default_permission: Option<String>,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub max_request_bytes: usize,
    pub max_artifact_bytes: u64,
    pub fsync_commits: bool,
    pub store: plinth_server::StoreLocation,
    pub artifacts: plinth_server::ArtifactLocation,
    pub serve_artifacts: bool,
    pub exposures: plinth_server::ArtifactLocation,
    pub exposure_retention_days: u64,
    pub roles: plinth_server::Roles,
    pub job_lease_ms: u64,
    pub datasets_dir: PathBuf,
    pub max_concurrent_inference: usize,
    pub reload_interval_ms: u64,
    pub policy_interval_ms: u64,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// `0`: derived from the open-file limit.
    pub max_connections: usize,
    pub auth: bool,
    pub trusted_proxies: Vec<IpAddr>,
    pub default_permission: plinth_core::access::Permission,
    /// JWT sign-in, when an issuer is configured.
    pub jwt: Option<plinth_server::JwtSettings>,
}

impl Config {
    pub fn resolve(flags: &ServerFlags) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::merge(flags, file)
    }

    fn merge(flags: &ServerFlags, file: FileConfig) -> anyhow::Result<Config> {
        let host = flags.host.clone().or(file.host).unwrap_or_else(|| "127.0.0.1".into());
        let host: IpAddr = host.parse().with_context(|| format!("invalid host address '{host}'"))?;
        let max_request_bytes =
            flags.max_request_bytes.or(file.max_request_bytes).unwrap_or(plinth_server::DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes < 1024 {
            bail!("max_request_bytes must be at least 1024");
        }
        let data_dir = flags.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("plinth-data"));
        let max_concurrent_inference = flags
            .max_concurrent_inference
            .or(file.max_concurrent_inference)
            .unwrap_or(plinth_server::DEFAULT_MAX_CONCURRENT_INFERENCE);
        if max_concurrent_inference == 0 {
            bail!("max_concurrent_inference must be at least 1");
        }
        let default_reload = plinth_serving::DEFAULT_RELOAD_INTERVAL.as_millis() as u64;
        let reload_interval_ms = flags.reload_interval_ms.or(file.reload_interval_ms).unwrap_or(default_reload);
        if !(50..=60_000).contains(&reload_interval_ms) {
            bail!("reload_interval_ms must be in 50..=60000");
        }
        let default_policy = plinth_serving::policy::DEFAULT_INTERVAL.as_millis() as u64;
        let policy_interval_ms = flags.policy_interval_ms.or(file.policy_interval_ms).unwrap_or(default_policy);
        if !(100..=86_400_000).contains(&policy_interval_ms) {
            bail!("policy_interval_ms must be in 100..=86400000");
        }
        let clean = |list: Option<Vec<String>>| -> Vec<String> {
            list.unwrap_or_default().into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
        };
        let store = match flags.store.clone().or(file.store) {
            Some(uri) => plinth_server::StoreLocation::parse(&uri).map_err(anyhow::Error::msg)?,
            None => plinth_server::StoreLocation::default(),
        };
        let artifacts = match flags.artifacts.clone().or(file.artifacts) {
            Some(uri) => plinth_server::ArtifactLocation::parse(&uri).map_err(anyhow::Error::msg)?,
            None => plinth_server::ArtifactLocation::default(),
        };
        let exposures = match flags.exposures.clone().or(file.exposures) {
            Some(uri) => plinth_server::ArtifactLocation::parse(&uri)
                .map_err(|e| anyhow::anyhow!("{}", e.replace("artifact location", "exposure log location")))?,
            None => plinth_server::ArtifactLocation::default(),
        };
        let exposure_retention_days = flags.exposure_retention_days.or(file.exposure_retention_days).unwrap_or(30);
        if !(1..=36_500).contains(&exposure_retention_days) {
            bail!("exposure_retention_days must be in 1..=36500");
        }
        let job_lease_ms = flags.job_lease_ms.or(file.job_lease_ms).unwrap_or(30_000);
        if !(300..=3_600_000).contains(&job_lease_ms) {
            bail!("job_lease_ms must be in 300..=3600000");
        }
        let roles = match flags.roles.clone().or(file.roles) {
            Some(list) => plinth_server::Roles::parse(&list).map_err(anyhow::Error::msg)?,
            None => plinth_server::Roles::default(),
        };
        let max_connections = flags.max_connections.or(file.max_connections).unwrap_or(0);
        if max_connections != 0 && max_connections < 4 {
            bail!("max_connections must be at least 4");
        }
        let jwt = match flags.auth_jwt_issuer.clone().or(file.auth_jwt_issuer) {
            // The secret comes from the environment only: never a flag (flags show in `ps`).
            Some(issuer) => Some(plinth_server::JwtSettings {
                issuer,
                keys_file: flags.auth_jwt_keys.clone().or(file.auth_jwt_keys),
                audience: flags.auth_jwt_audience.clone().or(file.auth_jwt_audience),
                hmac_secret: std::env::var("PLINTH_AUTH_JWT_SECRET").ok().filter(|s| !s.is_empty()),
            }),
            None => None,
        };
        let auth = flags.auth.or(file.auth).unwrap_or(false);
        if jwt.is_some() && !auth {
            bail!("--auth-jwt-issuer needs --auth");
        }
        let trusted_proxies = clean(flags.trusted_proxies.clone().or(file.trusted_proxies))
            .iter()
            .map(|a| a.parse::<IpAddr>().with_context(|| format!("invalid trusted proxy address '{a}'")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let default_permission = match flags.default_permission.clone().or(file.default_permission) {
            None => plinth_core::access::Permission::Read,
            Some(name) => match plinth_core::access::Permission::parse(name.trim()) {
                Some(p) if p != plinth_core::access::Permission::Deny => p,
                _ => bail!("invalid --default-permission '{name}': one of READ, USE, EDIT, MANAGE, NO_PERMISSIONS"),
            },
        };
        Ok(Config {
            auth,
            trusted_proxies,
            default_permission,
            jwt,
            allowed_hosts: clean(flags.allowed_hosts.clone().or(file.allowed_hosts)),
            allowed_origins: clean(flags.allowed_origins.clone().or(file.allowed_origins)),
            max_connections,
            max_concurrent_inference,
            reload_interval_ms,
            policy_interval_ms,
            datasets_dir: flags
                .datasets_dir
                .clone()
                .or(file.datasets_dir)
                .unwrap_or_else(|| plinth_server::AppConfig::default_datasets_dir(&data_dir)),
            host,
            port: flags.port.or(file.port).unwrap_or(5000),
            data_dir,
            max_request_bytes,
            max_artifact_bytes: flags
                .max_artifact_bytes
                .or(file.max_artifact_bytes)
                .unwrap_or(plinth_server::DEFAULT_MAX_ARTIFACT_BYTES),
            fsync_commits: flags.fsync_commits.or(file.fsync_commits).unwrap_or(false),
            store,
            artifacts,
            serve_artifacts: flags.serve_artifacts.or(file.serve_artifacts).unwrap_or(true),
            exposures,
            exposure_retention_days,
            roles,
            job_lease_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded_and_loopback() {
        let c = Config::merge(&ServerFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 5000);
        assert_eq!(c.data_dir, PathBuf::from("plinth-data"));
    }

    #[test]
    fn flags_win_over_file() {
        let file = FileConfig { port: Some(7000), host: Some("0.0.0.0".into()), ..Default::default() };
        let flags = ServerFlags { port: Some(8000), ..Default::default() };
        let c = Config::merge(&flags, file).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.host.to_string(), "0.0.0.0");
    }

    #[test]
    fn example_config_parses() {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from);
        let path = dir.join("../../plinth.example.toml");
        let file = FileConfig::load(&path).unwrap();
        assert!(Config::merge(&ServerFlags::default(), file).is_ok());
    }

    #[test]
    fn bad_values_are_rejected() {
        let flags = ServerFlags { host: Some("not-an-ip".into()), ..Default::default() };
        assert!(Config::merge(&flags, FileConfig::default()).is_err());
        assert!(toml::from_str::<FileConfig>("prot = 1").is_err());
        let flags = ServerFlags { store: Some("mysql://u:pw@h/db".into()), ..Default::default() };
        let message = Config::merge(&flags, FileConfig::default()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("invalid store URI") && !message.contains("pw"), "{message}");
    }

    #[test]
    fn roles() {
        use plinth_server::Roles;
        let with = |s: &str| {
            Config::merge(&ServerFlags { roles: Some(s.into()), ..Default::default() }, FileConfig::default())
        };
        assert_eq!(Config::merge(&ServerFlags::default(), FileConfig::default()).unwrap().roles, Roles::default());
        assert_eq!(with("worker").unwrap().roles, Roles { api: false, serving: false, worker: true });
        assert_eq!(with(" api , serving ").unwrap().roles, Roles { api: true, serving: true, worker: false });
        let bad = with("api,trainer").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(bad.contains("unknown role 'trainer'") && bad.contains("api, serving, worker"), "{bad}");
        assert!(with(",").is_err());
    }

    #[test]
    fn store_uris() {
        use plinth_server::StoreLocation;
        let at = |s: &str| ServerFlags { store: Some(s.into()), ..Default::default() };
        let c = Config::merge(&at("postgresql://plinth:secret@db:5432/plinth"), FileConfig::default()).unwrap();
        assert!(matches!(&c.store, StoreLocation::Postgres(u) if u.ends_with("/plinth")));
        assert!(!format!("{c:?}").contains("secret"), "the password never reaches a log line");
        let c = Config::merge(&at("sqlite:///tmp/x.db"), FileConfig::default()).unwrap();
        assert_eq!(c.store, StoreLocation::Sqlite(PathBuf::from("/tmp/x.db")));
        assert_eq!(
            Config::merge(&ServerFlags::default(), FileConfig::default()).unwrap().store,
            StoreLocation::DataDir
        );
    }
}
