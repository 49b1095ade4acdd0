//! The embedded backend: one SQLite database in WAL mode.
//!
//! Durability: a write is acknowledged only after its transaction commits. By
//! default commits are not fsynced one by one (`synchronous=NORMAL`, SQLite's
//! recommended WAL setting): an acknowledged write survives a crash or
//! `kill -9` of the server, while a power loss may roll back the last
//! commits (never corrupt the database). [`SqliteOptions::fsync_commits`]
//! (`synchronous=FULL`) also survives power loss, at the cost of one fsync per
//! commit group.
//!
//! Writes go through a single writer thread that commits them in groups
//! (group commit): every job waiting when a transaction starts shares its
//! fsync, and each job runs inside its own savepoint so one failure never
//! undoes another. A job's result is only delivered after COMMIT returns, so
//! an acknowledged write is on disk. There is one writer, so no writer ever
//! sees `database is locked`. Reads run on a small pool of connections in
//! `spawn_blocking`, concurrently with writes (WAL snapshots).

mod audit;
mod deployments;
mod experiments;
mod jobs;
mod logged_models;
mod migrations;
mod registry;
mod roles;
mod runs;
mod store_impl;
mod users;
mod workspaces;

use plinth_core::clock::SharedClock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result};

type Completion = Box<dyn FnOnce(Option<&str>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 512;

/// How the embedded store trades durability for speed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOptions {
    /// fsync every commit group (`synchronous=FULL`): survive power loss too.
    pub fsync_commits: bool,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// The workspace this handle works in (see `MetadataStore::in_workspace`).
    workspace: Arc<str>,
}

struct Inner {
    path: PathBuf,
    clock: SharedClock,
    writer: mpsc::UnboundedSender<Job>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending
    /// migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        Self::open_with_clock(path, options, plinth_core::clock::system())
    }

    /// As [`SqliteStore::open_with`]; `clock` stamps what the store writes
    /// (creation and update times).
    pub fn open_with_clock(path: impl AsRef<Path>, options: SqliteOptions, clock: SharedClock) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path, false)?;
        if options.fsync_commits {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        migrations::apply(&mut conn)?;
        // Refresh planner statistics where SQLite thinks they are stale.
        conn.execute_batch("PRAGMA optimize=0x10002")?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("plinth-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| Error::Database(format!("cannot start the writer thread: {e}")))?;
        let inner = Inner { path, clock, writer: tx, readers: Mutex::new(Vec::new()) };
        Ok(SqliteStore { inner: Arc::new(inner), workspace: plinth_core::workspaces::DEFAULT_WORKSPACE.into() })
    }

    /// The workspace this handle works in, to move into a closure.
    pub(crate) fn ws(&self) -> String {
        self.workspace.to_string()
    }

    /// The same database, working in `workspace`.
    pub fn scoped(&self, workspace: &str) -> SqliteStore {
        SqliteStore { inner: self.inner.clone(), workspace: workspace.into() }
    }

    /// The store's "now", for the rows a write stamps.
    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Runs `f` inside the writer's transaction; returns once committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit_error| {
                let outcome = match commit_error {
                    Some(msg) => Err(Error::Database(format!("commit failed: {msg}"))),
                    None => result,
                };
                let _ = tx.send(outcome);
            });
            (ok, completion)
        });
        self.inner.writer.send(job).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut v| v.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, true)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock()
                && pool.len() < 16
            {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::Database(format!("read task failed: {e}")))?
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "case_sensitive_like", "ON")?;
    conn.pragma_update(None, "cache_size", -32000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn writer_loop(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run_group(&conn, jobs);
    }
    tracing::debug!("sqlite writer stopped");
}

/// Runs a fixed statement through the statement cache (no re-parsing).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_group(conn: &Connection, jobs: Vec<Job>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        // The jobs never ran; dropping them tells their callers the store failed.
        tracing::error!("cannot begin a transaction: {e}");
        return;
    }
    let mut completions = Vec::with_capacity(jobs.len());
    for job in jobs {
        let savepoint = exec(conn, "SAVEPOINT job");
        let (ok, completion) = job(conn);
        if savepoint.is_ok() {
            let end = if ok {
                exec(conn, "RELEASE job")
            } else {
                exec(conn, "ROLLBACK TO job").and_then(|_| exec(conn, "RELEASE job"))
            };
            if let Err(e) = end {
                tracing::error!("savepoint failed: {e}");
            }
        }
        completions.push(completion);
    }
    match exec(conn, "COMMIT") {
        Ok(()) => completions.into_iter().for_each(|c| c(None)),
        Err(e) => {
            let msg = e.to_string();
            tracing::error!("commit failed: {msg}");
            let _ = conn.execute_batch("ROLLBACK");
            completions.into_iter().for_each(|c| c(Some(&msg)));
        }
    }
}

/// A stored enum (a status, a stage, a kind) read back. A value this version
/// does not know (written by a newer one, or edited by hand) is a database
/// error, never silently read as some default.
pub(crate) fn stored<T, E>(column: usize, parsed: std::result::Result<T, E>) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    parsed.map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

impl rusqlite::ToSql for crate::plan::Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use crate::plan::Val;
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Val::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
            Val::Real(x) => ToSqlOutput::Owned(Value::Real(*x)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}
