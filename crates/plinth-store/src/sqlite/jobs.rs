//! Jobs in SQLite.

use plinth_core::jobs::{Job, JobKind, JobStatus};
use rusqlite::{Connection, OptionalExtension, params};

use super::stored;
use crate::Result;
use plinth_core::rules::missing;

const COLUMNS: &str =
    "job_id, kind, status, spec_json, result_json, error, attempts, created_time, started_time, finished_time";

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
    })
}

pub(crate) fn create(conn: &Connection, job: &Job) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
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
            job.finished_time
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
