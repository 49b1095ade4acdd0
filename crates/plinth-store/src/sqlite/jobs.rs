//! Jobs in SQLite.

use plinth_core::jobs::{Job, JobKind, JobStatus, LeaseState};
use rusqlite::{Connection, OptionalExtension, params};

use super::stored;
use crate::Result;
use plinth_core::rules::{self, missing};

const COLUMNS: &str = "job_id, kind, status, spec_json, result_json, error, attempts, created_time, started_time, finished_time, worker, lease_until, cancel_requested, workspace";

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let kind: String = r.get(1)?;
    // A kind this version does not know (written by a newer one) is a
    // database error, not a job to run wrongly.
    let kind = stored(1, JobKind::parse(&kind))?;
    let status: String = r.get(2)?;
    let spec: String = r.get(3)?;
    let result: Option<String> = r.get(4)?;
    Ok(Job {
        job_id: r.get(0)?,
        kind,
        status: stored(2, JobStatus::parse(&status))?,
        spec: stored(3, serde_json::from_str(&spec))?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.get(5)?,
        attempts: r.get(6)?,
        created_time: r.get(7)?,
        started_time: r.get(8)?,
        finished_time: r.get(9)?,
        worker: r.get(10)?,
        lease_until: r.get(11)?,
        cancel_requested: r.get::<_, i64>(12)? != 0,
        workspace: r.get(13)?,
    })
}

pub(crate) fn create(conn: &Connection, job: &Job) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
        params![
            job.job_id,
            job.kind.as_str(),
            job.status.as_str(),
            job.spec.to_string(),
            job.result.as_ref().map(|r| r.to_string()),
            job.error,
            job.attempts,
            job.created_time,
            job.started_time,
            job.finished_time,
            job.worker,
            job.lease_until,
            job.cancel_requested as i64,
            job.workspace
        ],
    )?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, job_id: &str) -> Result<Job> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE job_id = ?1"))?
        .query_row([job_id], row_to_job)
        .optional()?
        .ok_or_else(|| missing::job(job_id).into())
}

pub(crate) fn update(conn: &Connection, job: &Job) -> Result<()> {
    let n = conn.execute(
        "UPDATE jobs SET status = ?1, result_json = ?2, error = ?3, attempts = ?4, started_time = ?5, finished_time = ?6
         WHERE job_id = ?7",
        params![
            job.status.as_str(),
            job.result.as_ref().map(|r| r.to_string()),
            job.error,
            job.attempts,
            job.started_time,
            job.finished_time,
            job.job_id
        ],
    )?;
    if n == 0 {
        return Err(missing::job(&job.job_id).into());
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
    let jobs = match status {
        Some(s) => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE status = ?1 ORDER BY created_time, job_id LIMIT ?2"
            ))?
            .query_map(params![s.as_str(), limit], row_to_job)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs ORDER BY created_time DESC, job_id LIMIT ?1"))?
            .query_map(params![limit], row_to_job)?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(jobs)
}

/// See [`crate::MetadataStore::claim_job`]; the writer's transaction makes it atomic.
pub(crate) fn claim(
    conn: &Connection,
    worker: &str,
    now: i64,
    lease_ms: i64,
    max_attempts: i64,
) -> Result<Option<Job>> {
    let exhausted: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT job_id, attempts FROM jobs
             WHERE status = 'RUNNING' AND COALESCE(lease_until, 0) < ?1 AND attempts >= ?2",
        )?
        .query_map(params![now, max_attempts], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (job_id, attempts) in exhausted {
        tracing::error!(%job_id, attempts, "job interrupted too often; marked failed");
        conn.execute(
            "UPDATE jobs SET status = 'FAILED', finished_time = ?1, error = ?2, worker = NULL, lease_until = NULL
             WHERE job_id = ?3",
            params![now, rules::job_interrupted_too_often(attempts), job_id],
        )?;
    }
    let next: Option<String> = conn
        .prepare_cached(
            "SELECT job_id FROM jobs WHERE status = 'QUEUED' OR (status = 'RUNNING' AND COALESCE(lease_until, 0) < ?1)
             ORDER BY created_time, job_id LIMIT 1",
        )?
        .query_row([now], |r| r.get(0))
        .optional()?;
    let Some(job_id) = next else { return Ok(None) };
    conn.execute(
        "UPDATE jobs SET status = 'RUNNING', attempts = attempts + 1, worker = ?1, lease_until = ?2, started_time = ?3,
             cancel_requested = 0
         WHERE job_id = ?4",
        params![worker, now + lease_ms, now, job_id],
    )?;
    get(conn, &job_id).map(Some)
}

pub(crate) fn renew(conn: &Connection, job_id: &str, worker: &str, until: i64) -> Result<LeaseState> {
    let n = conn.execute(
        "UPDATE jobs SET lease_until = ?1 WHERE job_id = ?2 AND worker = ?3 AND status = 'RUNNING'",
        params![until, job_id, worker],
    )?;
    if n == 0 {
        return Ok(LeaseState::Lost);
    }
    let cancel: i64 = conn.query_row("SELECT cancel_requested FROM jobs WHERE job_id = ?1", [job_id], |r| r.get(0))?;
    Ok(if cancel != 0 { LeaseState::CancelRequested } else { LeaseState::Held })
}

pub(crate) fn finish(conn: &Connection, job: &Job, worker: &str) -> Result<bool> {
    let n = conn.execute(
        "UPDATE jobs SET status = ?1, result_json = ?2, error = ?3, finished_time = ?4, worker = NULL, lease_until = NULL
         WHERE job_id = ?5 AND worker = ?6 AND status = 'RUNNING'",
        params![
            job.status.as_str(),
            job.result.as_ref().map(|r| r.to_string()),
            job.error,
            job.finished_time,
            job.job_id,
            worker
        ],
    )?;
    Ok(n > 0)
}

pub(crate) fn cancel(conn: &Connection, job_id: &str, now: i64) -> Result<Job> {
    let job = get(conn, job_id)?;
    match job.status {
        JobStatus::Queued => {
            conn.execute(
                "UPDATE jobs SET status = 'CANCELLED', finished_time = ?1 WHERE job_id = ?2",
                params![now, job_id],
            )?;
        }
        JobStatus::Running => {
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?1", [job_id])?;
        }
        done => return Err(rules::job_already_ended(job_id, done).into()),
    }
    get(conn, job_id)
}

pub(crate) fn release(conn: &Connection, job_id: &str, worker: &str) -> Result<()> {
    conn.execute(
        "UPDATE jobs SET status = 'QUEUED', attempts = MAX(attempts - 1, 0), worker = NULL, lease_until = NULL
         WHERE job_id = ?1 AND worker = ?2 AND status = 'RUNNING'",
        params![job_id, worker],
    )?;
    Ok(())
}

/// Takes or renews a lease ([`crate::plan::ACQUIRE_LEASE`]); whether `holder` has it.
pub(crate) fn acquire_lease(conn: &Connection, name: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
    let held: Option<String> = conn
        .prepare_cached(crate::plan::ACQUIRE_LEASE)?
        .query_row(params![name, holder, now, ttl_ms], |r| r.get(0))
        .optional()?;
    Ok(held.is_some())
}
