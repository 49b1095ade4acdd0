//! The PostgreSQL backend, for many replicas over one database.
//!
//! `tokio-postgres` with a `deadpool-postgres` pool: the server is tokio
//! throughout, so the driver is async and needs no thread of its own per
//! connection; queries are written against the schema at runtime (no
//! database needed at build time, unlike `sqlx`'s checked macros); and the
//! same client carries `LISTEN/NOTIFY`, which replicas will follow.
//!
//! Every call is one transaction (`READ COMMITTED`); what MLflow's rules need
//! to read is read inside it, and the writes that could race are made
//! atomic in SQL: conditional upserts for latest metrics, `ON CONFLICT` for
//! names and params, a row lock on the registered model for version numbers,
//! an advisory lock for experiment ids. Searches run the SQL of
//! [`crate::plan`], the same the SQLite backend runs. Schema migrations are
//! SQLite's, translated where the dialects differ, applied on connect under
//! an advisory lock so replicas starting together do not race; a database
//! whose schema is newer than this build knows is refused.

mod audit;
mod experiments;
mod registry;
mod roles;
mod runs;
mod store_impl;
mod tables;
mod users;
mod workspaces;

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use plinth_core::clock::SharedClock;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{NoTls, Row};

use crate::plan::{Sql, Val};
use crate::{Error, Result};

/// Held (as a transaction-scoped advisory lock) while migrations run.
const MIGRATION_LOCK: i64 = 0x0070_6c69_6e74_6801;
/// Held while a new experiment id is picked.
const EXPERIMENT_ID_LOCK: i64 = 0x0070_6c69_6e74_6802;
/// Held while a new user id is picked.
const USER_ID_LOCK: i64 = 0x0070_6c69_6e74_6803;
/// Held while an audit record is appended.
const AUDIT_LOCK: i64 = 0x0070_6c69_6e74_6804;
/// Held while roles, their grants or assignments change.
const ROLES_LOCK: i64 = 0x0070_6c69_6e74_6805;

/// The migrations, in SQLite's numbering, as PostgreSQL runs them.
fn migrations() -> Vec<(i64, String)> {
    vec![
        (1, include_str!("../../migrations/0001_init.sql").to_string()),
        (2, include_str!("../../migrations/0002_jobs.sql").to_string()),
        (3, include_str!("../../migrations/0003_deployments.sql").to_string()),
        // `WITHOUT ROWID` is SQLite's clustering clause; a PostgreSQL table is a heap plus its key.
        (4, include_str!("../../migrations/0004_metrics_by_key.sql").replace(") WITHOUT ROWID;", ");")),
        (
            5,
            "ALTER TABLE run_datasets ADD COLUMN context TEXT;
             UPDATE run_datasets SET context = (
                 SELECT t->>'value' FROM json_array_elements(run_datasets.tags_json::json) t
                 WHERE t->>'key' = 'mlflow.data.context' LIMIT 1
             );"
            .to_string(),
        ),
        (6, include_str!("../../migrations/0006_job_leases.sql").to_string()),
        (7, include_str!("../../migrations/0007_serving_counters.sql").to_string()),
        (8, include_str!("../../migrations/0008_users_tokens.sql").to_string()),
        (9, include_str!("../../migrations/0009_audit.sql").to_string()),
        (10, include_str!("../../migrations/0010_serving_keys.sql").to_string()),
        (11, include_str!("../../migrations/0011_roles.sql").to_string()),
        (12, include_str!("../../migrations/0012_workspaces.postgres.sql").to_string()),
        (13, include_str!("../../migrations/0013_deployment_mode.sql").to_string()),
        (14, include_str!("../../migrations/0014_policies.sql").to_string()),
        // SQLite's 15 clusters the run tables (a PostgreSQL table is a heap whatever the DDL says); the index
        // that a metric-ordered search walks gains `is_nan` on both.
        (
            15,
            "DROP INDEX latest_metrics_by_key;
             CREATE INDEX latest_metrics_by_key ON latest_metrics (key, is_nan, value);"
                .to_string(),
        ),
    ]
}

/// A transaction on a pooled connection: its `prepare_cached` keeps each
/// statement prepared once per connection, so a hot statement costs one
/// round trip, not a parse and an execute.
pub(crate) type Tx<'a> = deadpool_postgres::Transaction<'a>;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

// Static SQL (`&'static str`: text built per call is never cached) through the
// connection's statement cache.
pub(crate) async fn exec(tx: &Tx<'_>, sql: &'static str, params: Params<'_>) -> Result<u64, tokio_postgres::Error> {
    tx.execute(&tx.prepare_cached(sql).await?, params).await
}
pub(crate) async fn row(tx: &Tx<'_>, sql: &'static str, params: Params<'_>) -> Result<Row, tokio_postgres::Error> {
    tx.query_one(&tx.prepare_cached(sql).await?, params).await
}
pub(crate) async fn row_opt(
    tx: &Tx<'_>,
    sql: &'static str,
    params: Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    tx.query_opt(&tx.prepare_cached(sql).await?, params).await
}

/// The channel every replica listens on; a committed change to what serving
/// follows is announced there (`pg_notify`, delivered at commit).
pub(crate) const CHANGES_CHANNEL: &str = "plinth_changes";

/// The metadata store over PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    clock: SharedClock,
    changes: tokio::sync::watch::Receiver<u64>,
    /// The workspace this handle works in (see `MetadataStore::in_workspace`).
    workspace: std::sync::Arc<str>,
}

/// Announces a change serving follows, to every replica, when `tx` commits.
pub(crate) async fn announce(tx: &Tx<'_>) -> Result<()> {
    tx.execute("SELECT pg_notify($1, '')", &[&CHANGES_CHANNEL]).await.map_err(db)?;
    Ok(())
}

/// Listens on [`CHANGES_CHANNEL`] on a connection of its own, reconnecting
/// after a failure; every notification bumps the counter.
async fn listen(config: tokio_postgres::Config, tx: tokio::sync::watch::Sender<u64>) {
    use futures::StreamExt;
    while !tx.is_closed() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                // The connection is driven by its own task; its messages come here.
                let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = stream.next().await {
                        if messages_tx.send(m).is_err() {
                            return;
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}")).await {
                    Ok(()) => loop {
                        let message = tokio::select! {
                            m = messages.recv() => m,
                            // The store is gone: stop listening.
                            _ = tx.closed() => {
                                driver.abort();
                                return;
                            }
                        };
                        match message {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => tx.send_modify(|n| *n += 1),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "change notifications lost; reconnecting");
                                break;
                            }
                            None => break,
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for changes; retrying"),
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to listen for changes; retrying"),
        }
        // Notifications may have been missed while away: one tick, so followers re-read.
        tx.send_modify(|n| *n += 1);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// A database failure. One the server reported is ours (a bug, a
/// constraint); a lost or refused connection, or a server shutting down, is
/// the database being unavailable, which the caller may retry.
pub(crate) fn db(e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    match e.as_db_error() {
        Some(d)
            if [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW]
                .contains(d.code()) =>
        {
            Error::Unavailable(d.message().to_string())
        }
        Some(d) => Error::Database(format!("{}: {}", d.code().code(), d.message())),
        // The connection went away, or the network failed; a conversion error (also with a source) is ours.
        None if e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()) =>
        {
            Error::Unavailable(e.to_string())
        }
        None => Error::Database(e.to_string()),
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgresql://user[:password]@host[:port]/db`),
    /// applies pending migrations and checks the schema. The password never
    /// appears in an error.
    pub async fn connect(url: &str, clock: SharedClock) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::Database(format!("invalid PostgreSQL URL (--store): {e}")))?;
        // An unreachable host fails a request in seconds, never hangs it.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let place = describe(&config);
        let (changes_tx, changes) = tokio::sync::watch::channel(0u64);
        tokio::spawn(listen(config.clone(), changes_tx));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| Error::Database(format!("cannot set up the PostgreSQL pool for {place}: {e}")))?;
        let store =
            PostgresStore { pool, clock, changes, workspace: plinth_core::workspaces::DEFAULT_WORKSPACE.into() };
        let mut client = store
            .pool
            .get()
            .await
            .map_err(|e| Error::Database(format!("cannot connect to PostgreSQL at {place}: {e}")))?;
        migrate(&mut client).await?;
        Ok(store)
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The same database, working in `workspace`.
    pub fn scoped(&self, workspace: &str) -> PostgresStore {
        PostgresStore { workspace: workspace.into(), ..self.clone() }
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| Error::Unavailable(format!("no PostgreSQL connection: {e}")))
    }
}

/// `user@host:port/db`, for messages: never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or("");
    format!("{user}@{host}:{port}/{db}")
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(db)?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    let all = migrations();
    let known = all.last().map_or(0, |(v, _)| *v);
    if current > known {
        return Err(Error::Database(format!(
            "the database's schema is version {current}, newer than this Plinth knows ({known}): upgrade Plinth"
        )));
    }
    for (version, sql) in all.into_iter().filter(|(v, _)| *v > current) {
        tracing::info!(version, "applying schema migration to PostgreSQL");
        tx.batch_execute(&sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &plinth_core::ids::now_ms()],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

impl ToSql for Val {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let wrong = || format!("cannot bind {self:?} as {ty}").into();
        match self {
            Val::Int(n) if *ty == Type::INT8 => n.to_sql(ty, out),
            Val::Int(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Val::Int(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Val::Int(n) if *ty == Type::FLOAT8 => (*n as f64).to_sql(ty, out),
            Val::Real(x) if *ty == Type::FLOAT8 => x.to_sql(ty, out),
            Val::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            _ => Err(wrong()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The values of `sql`, as the driver takes them.
pub(crate) fn params(sql: &Sql) -> Vec<&(dyn ToSql + Sync)> {
    sql.params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// A column of a row, typed; a mismatch is a database error, never a panic.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(db)
}

/// A stored enum read back; one this build does not know is a database error.
pub(crate) fn stored<T>(row: &Row, i: usize, parse: impl Fn(&str) -> plinth_core::Result<T>) -> Result<T> {
    let s: String = col(row, i)?;
    parse(&s).map_err(|e| Error::Database(format!("stored value '{s}': {e}")))
}

/// Runs `body` in one transaction on a pooled connection: committed when it
/// returns `Ok`, rolled back otherwise.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let $tx = client.transaction().await.map_err($crate::postgres::db)?;
        let out = $body;
        $tx.commit().await.map_err($crate::postgres::db)?;
        Ok(out)
    }};
}
pub(crate) use in_tx;
