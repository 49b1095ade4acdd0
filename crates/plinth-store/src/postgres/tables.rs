//! Logged models, jobs and deployments in PostgreSQL.

use super::Tx as Transaction;
use super::exec;
use plinth_core::deployments::{Deployment, VariantCounters};
use plinth_core::experiments::Tag;
use plinth_core::jobs::{Job, JobKind, JobStatus, LeaseState};
use plinth_core::logged_models::{LoggedModel, LoggedModelStatus};
use plinth_core::rules::{self, missing, taken};
use plinth_core::runs::Param;
use tokio_postgres::Row;

use super::experiments::{self, parse_id};
use super::runs::row_to_metric;
use super::{col, db, params, stored};
use crate::codec::{DEPLOYMENT_COLUMNS, DeploymentRow};
use crate::plan::{self, page_rest};
use crate::{Error, LoggedModelSearch, Page, Result};

// --- logged models ---

const MODEL_COLUMNS: &str = "model_id, experiment_id, name, artifact_location, creation_time, last_updated_time, model_type, source_run_id, status, status_message, deleted";

fn row_to_model(r: &Row) -> Result<LoggedModel> {
    Ok(LoggedModel {
        model_id: col(r, 0)?,
        experiment_id: col::<i64>(r, 1)?.to_string(),
        name: col(r, 2)?,
        artifact_location: col(r, 3)?,
        creation_timestamp_ms: col(r, 4)?,
        last_updated_timestamp_ms: col(r, 5)?,
        model_type: col(r, 6)?,
        source_run_id: col(r, 7)?,
        status: stored(r, 8, LoggedModelStatus::parse)?,
        status_message: col(r, 9)?,
        deleted: col::<i16>(r, 10)? != 0,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

pub(crate) async fn create_model(tx: &Transaction<'_>, m: &LoggedModel) -> Result<LoggedModel> {
    experiments::get_active(tx, &m.experiment_id).await?;
    tx.execute(
        &format!("INSERT INTO logged_models ({MODEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)"),
        &[
            &m.model_id,
            &parse_id(&m.experiment_id)?,
            &m.name,
            &m.artifact_location,
            &m.creation_timestamp_ms,
            &m.last_updated_timestamp_ms,
            &m.model_type,
            &m.source_run_id,
            &m.status.as_str(),
            &m.status_message,
        ],
    )
    .await
    .map_err(db)?;
    set_model_tags_unchecked(tx, &m.model_id, &m.tags).await?;
    log_model_params_unchecked(tx, &m.model_id, &m.params).await?;
    get_model(tx, &m.model_id).await
}

async fn set_model_tags_unchecked(tx: &Transaction<'_>, model_id: &str, tags: &[Tag]) -> Result<()> {
    for t in tags {
        exec(
            tx,
            "INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            &[&model_id, &t.key, &t.value],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

async fn log_model_params_unchecked(tx: &Transaction<'_>, model_id: &str, ps: &[Param]) -> Result<()> {
    for p in ps {
        exec(
            tx,
            "INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
            &[&model_id, &p.key, &p.value],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

async fn load_model(tx: &Transaction<'_>, m: &mut LoggedModel) -> Result<()> {
    m.tags = tx
        .query("SELECT key, value FROM logged_model_tags WHERE model_id = $1 ORDER BY key", &[&m.model_id])
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok(Tag { key: col(r, 0)?, value: col(r, 1)? }))
        .collect::<Result<_>>()?;
    m.params = tx
        .query("SELECT key, value FROM logged_model_params WHERE model_id = $1 ORDER BY key", &[&m.model_id])
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok(Param { key: col(r, 0)?, value: col(r, 1)? }))
        .collect::<Result<_>>()?;
    m.metrics = tx
        .query(
            "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE model_id = $1 ORDER BY key, step, timestamp",
            &[&m.model_id],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| row_to_metric(r, 0))
        .collect::<Result<_>>()?;
    Ok(())
}

pub(crate) async fn get_model(tx: &Transaction<'_>, model_id: &str) -> Result<LoggedModel> {
    let row = tx
        .query_opt(
            &format!("SELECT {MODEL_COLUMNS} FROM logged_models WHERE model_id = $1 AND deleted = 0"),
            &[&model_id],
        )
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Err(missing::logged_model(model_id).into());
    };
    let mut m = row_to_model(&row)?;
    load_model(tx, &mut m).await?;
    Ok(m)
}

pub(crate) async fn finalize_model(
    tx: &Transaction<'_>,
    model_id: &str,
    status: LoggedModelStatus,
    now: i64,
) -> Result<LoggedModel> {
    get_model(tx, model_id).await?;
    exec(
        tx,
        "UPDATE logged_models SET status = $1, last_updated_time = $2 WHERE model_id = $3",
        &[&status.as_str(), &now, &model_id],
    )
    .await
    .map_err(db)?;
    get_model(tx, model_id).await
}

pub(crate) async fn delete_model(tx: &Transaction<'_>, model_id: &str) -> Result<()> {
    get_model(tx, model_id).await?;
    exec(tx, "UPDATE logged_models SET deleted = 1 WHERE model_id = $1", &[&model_id]).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn set_model_tags(tx: &Transaction<'_>, model_id: &str, tags: &[Tag]) -> Result<()> {
    get_model(tx, model_id).await?;
    set_model_tags_unchecked(tx, model_id, tags).await
}

pub(crate) async fn delete_model_tag(tx: &Transaction<'_>, model_id: &str, key: &str) -> Result<()> {
    get_model(tx, model_id).await?;
    let n = tx
        .execute("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2", &[&model_id, &key])
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(missing::logged_model_tag(model_id, key).into());
    }
    Ok(())
}

pub(crate) async fn log_model_params(tx: &Transaction<'_>, model_id: &str, ps: &[Param]) -> Result<()> {
    get_model(tx, model_id).await?;
    log_model_params_unchecked(tx, model_id, ps).await
}

pub(crate) async fn search_models(tx: &Transaction<'_>, q: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
    let sql = plan::logged_model_search(q, MODEL_COLUMNS);
    let rows = tx.query(&sql.numbered(), &params(&sql)).await.map_err(db)?;
    let mut items = rows.iter().map(row_to_model).collect::<Result<Vec<_>>>()?;
    let next_offset = page_rest(&mut items, q.max_results, q.offset);
    for m in items.iter_mut() {
        load_model(tx, m).await?;
    }
    Ok(Page { items, next_offset })
}

// --- jobs ---

const JOB_COLUMNS: &str = "job_id, kind, status, spec_json, result_json, error, attempts, created_time, started_time, finished_time, worker, lease_until, cancel_requested, workspace";

fn row_to_job(r: &Row) -> Result<Job> {
    let spec: String = col(r, 3)?;
    let result: Option<String> = col(r, 4)?;
    Ok(Job {
        job_id: col(r, 0)?,
        // A kind this build does not know (written by a newer one) is a database error, not a job run wrongly.
        kind: stored(r, 1, JobKind::parse)?,
        status: stored(r, 2, JobStatus::parse)?,
        spec: serde_json::from_str(&spec).map_err(|e| Error::Database(format!("stored job spec: {e}")))?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        error: col(r, 5)?,
        attempts: col(r, 6)?,
        created_time: col(r, 7)?,
        started_time: col(r, 8)?,
        finished_time: col(r, 9)?,
        worker: col(r, 10)?,
        lease_until: col(r, 11)?,
        cancel_requested: col::<i16>(r, 12)? != 0,
        workspace: col(r, 13)?,
    })
}

pub(crate) async fn create_job(tx: &Transaction<'_>, job: &Job) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ),
        &[
            &job.job_id,
            &job.kind.as_str(),
            &job.status.as_str(),
            &job.spec.to_string(),
            &job.result.as_ref().map(|r| r.to_string()),
            &job.error,
            &job.attempts,
            &job.created_time,
            &job.started_time,
            &job.finished_time,
            &job.worker,
            &job.lease_until,
            &i16::from(job.cancel_requested),
            &job.workspace,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn get_job(tx: &Transaction<'_>, job_id: &str) -> Result<Job> {
    match tx.query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1"), &[&job_id]).await.map_err(db)? {
        Some(r) => row_to_job(&r),
        None => Err(missing::job(job_id).into()),
    }
}

pub(crate) async fn update_job(tx: &Transaction<'_>, job: &Job) -> Result<()> {
    let n = tx
        .execute(
            "UPDATE jobs SET status = $1, result_json = $2, error = $3, attempts = $4, started_time = $5,
                 finished_time = $6
             WHERE job_id = $7",
            &[
                &job.status.as_str(),
                &job.result.as_ref().map(|r| r.to_string()),
                &job.error,
                &job.attempts,
                &job.started_time,
                &job.finished_time,
                &job.job_id,
            ],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(missing::job(&job.job_id).into());
    }
    Ok(())
}

pub(crate) async fn list_jobs(tx: &Transaction<'_>, status: Option<JobStatus>, limit: i64) -> Result<Vec<Job>> {
    let rows = match status {
        Some(s) => tx
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE status = $1 ORDER BY created_time, job_id LIMIT $2"),
                &[&s.as_str(), &limit],
            )
            .await
            .map_err(db)?,
        None => tx
            .query(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_time DESC, job_id LIMIT $1"), &[&limit])
            .await
            .map_err(db)?,
    };
    rows.iter().map(row_to_job).collect()
}

/// See [`crate::MetadataStore::claim_job`]: `FOR UPDATE SKIP LOCKED`, so
/// concurrent claimers on every replica get different jobs.
pub(crate) async fn claim_job(
    tx: &Transaction<'_>,
    worker: &str,
    now: i64,
    lease_ms: i64,
    max_attempts: i64,
) -> Result<Option<Job>> {
    let exhausted = tx
        .query(
            "SELECT job_id, attempts FROM jobs WHERE status = 'RUNNING' AND COALESCE(lease_until, 0) < $1
               AND attempts >= $2 FOR UPDATE SKIP LOCKED",
            &[&now, &max_attempts],
        )
        .await
        .map_err(db)?;
    for r in exhausted {
        let (job_id, attempts): (String, i64) = (col(&r, 0)?, col(&r, 1)?);
        tracing::error!(%job_id, attempts, "job interrupted too often; marked failed");
        exec(
            tx,
            "UPDATE jobs SET status = 'FAILED', finished_time = $1, error = $2, worker = NULL, lease_until = NULL
             WHERE job_id = $3",
            &[&now, &rules::job_interrupted_too_often(attempts), &job_id],
        )
        .await
        .map_err(db)?;
    }
    let columns = JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", ");
    let row = tx
        .query_opt(
            &format!(
                "WITH next AS (
                     SELECT job_id FROM jobs
                     WHERE status = 'QUEUED' OR (status = 'RUNNING' AND COALESCE(lease_until, 0) < $1)
                     ORDER BY created_time, job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 UPDATE jobs j SET status = 'RUNNING', attempts = j.attempts + 1, worker = $2, lease_until = $3,
                     started_time = $1, cancel_requested = 0
                 FROM next WHERE j.job_id = next.job_id RETURNING {columns}"
            ),
            &[&now, &worker, &(now + lease_ms)],
        )
        .await
        .map_err(db)?;
    row.map(|r| row_to_job(&r)).transpose()
}

pub(crate) async fn renew_job_lease(
    tx: &Transaction<'_>,
    job_id: &str,
    worker: &str,
    until: i64,
) -> Result<LeaseState> {
    let row = tx
        .query_opt(
            "UPDATE jobs SET lease_until = $1 WHERE job_id = $2 AND worker = $3 AND status = 'RUNNING'
             RETURNING cancel_requested",
            &[&until, &job_id, &worker],
        )
        .await
        .map_err(db)?;
    Ok(match row {
        None => LeaseState::Lost,
        Some(r) if col::<i16>(&r, 0)? != 0 => LeaseState::CancelRequested,
        Some(_) => LeaseState::Held,
    })
}

pub(crate) async fn finish_job(tx: &Transaction<'_>, job: &Job, worker: &str) -> Result<bool> {
    let n = tx
        .execute(
            "UPDATE jobs SET status = $1, result_json = $2, error = $3, finished_time = $4, worker = NULL,
                 lease_until = NULL
             WHERE job_id = $5 AND worker = $6 AND status = 'RUNNING'",
            &[
                &job.status.as_str(),
                &job.result.as_ref().map(|r| r.to_string()),
                &job.error,
                &job.finished_time,
                &job.job_id,
                &worker,
            ],
        )
        .await
        .map_err(db)?;
    Ok(n > 0)
}

pub(crate) async fn cancel_job(tx: &Transaction<'_>, job_id: &str, now: i64) -> Result<Job> {
    let row = tx
        .query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1 FOR UPDATE"), &[&job_id])
        .await
        .map_err(db)?;
    let Some(row) = row else { return Err(missing::job(job_id).into()) };
    match row_to_job(&row)?.status {
        JobStatus::Queued => {
            exec(tx, "UPDATE jobs SET status = 'CANCELLED', finished_time = $1 WHERE job_id = $2", &[&now, &job_id])
                .await
                .map_err(db)?;
        }
        JobStatus::Running => {
            exec(tx, "UPDATE jobs SET cancel_requested = 1 WHERE job_id = $1", &[&job_id]).await.map_err(db)?;
        }
        done => return Err(rules::job_already_ended(job_id, done).into()),
    }
    get_job(tx, job_id).await
}

pub(crate) async fn release_job(tx: &Transaction<'_>, job_id: &str, worker: &str) -> Result<()> {
    exec(
        tx,
        "UPDATE jobs SET status = 'QUEUED', attempts = GREATEST(attempts - 1, 0), worker = NULL, lease_until = NULL
         WHERE job_id = $1 AND worker = $2 AND status = 'RUNNING'",
        &[&job_id, &worker],
    )
    .await
    .map_err(db)?;
    Ok(())
}

// --- deployments ---

fn row_to_deployment(r: &Row) -> Result<Deployment> {
    DeploymentRow {
        name: col(r, 0)?,
        salt: col(r, 1)?,
        variants: col(r, 2)?,
        shadow: col(r, 3)?,
        created_time: col(r, 4)?,
        updated_time: col(r, 5)?,
        workspace: col(r, 6)?,
        mode: col(r, 7)?,
        metrics: col(r, 8)?,
        policy: col(r, 9)?,
    }
    .decode()
}

pub(crate) async fn create_deployment(tx: &Transaction<'_>, d: &Deployment) -> Result<Deployment> {
    let r = DeploymentRow::encode(d)?;
    let n = tx
        .execute(
            &format!(
                "INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING"
            ),
            &[
                &r.name,
                &r.salt,
                &r.variants,
                &r.shadow,
                &r.created_time,
                &r.updated_time,
                &r.workspace,
                &r.mode,
                &r.metrics,
                &r.policy,
            ],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(taken::deployment(&d.name).into());
    }
    super::announce(tx).await?;
    get_deployment(tx, &d.name).await
}

pub(crate) async fn get_deployment(tx: &Transaction<'_>, name: &str) -> Result<Deployment> {
    match tx
        .query_opt(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = $1"), &[&name])
        .await
        .map_err(db)?
    {
        Some(r) => row_to_deployment(&r),
        None => Err(missing::deployment(name).into()),
    }
}

const UPDATE_DEPLOYMENT: &str = "UPDATE deployments SET variants_json = $1, shadow_json = $2, updated_time = $3,
     mode = $4, metrics_json = $5, policy_json = $6 WHERE name = $7";

pub(crate) async fn update_deployment(tx: &Transaction<'_>, d: &Deployment) -> Result<Deployment> {
    let r = DeploymentRow::encode(d)?;
    let n = tx
        .execute(UPDATE_DEPLOYMENT, &[&r.variants, &r.shadow, &r.updated_time, &r.mode, &r.metrics, &r.policy, &r.name])
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(missing::deployment(&d.name).into());
    }
    super::announce(tx).await?;
    get_deployment(tx, &d.name).await
}

/// [`update_deployment`] while the stored `updated_time` is still `expected`; `None` when it is not.
pub(crate) async fn update_deployment_if(
    tx: &Transaction<'_>,
    d: &Deployment,
    expected: i64,
) -> Result<Option<Deployment>> {
    let r = DeploymentRow::encode(d)?;
    let n = tx
        .execute(
            &format!("{UPDATE_DEPLOYMENT} AND updated_time = $8"),
            &[&r.variants, &r.shadow, &r.updated_time, &r.mode, &r.metrics, &r.policy, &r.name, &expected],
        )
        .await
        .map_err(db)?;
    let stored = get_deployment(tx, &d.name).await?;
    if n == 0 {
        return Ok(None);
    }
    super::announce(tx).await?;
    Ok(Some(stored))
}

pub(crate) async fn delete_deployment(tx: &Transaction<'_>, name: &str) -> Result<()> {
    if exec(tx, "DELETE FROM deployments WHERE name = $1", &[&name]).await.map_err(db)? == 0 {
        return Err(missing::deployment(name).into());
    }
    exec(tx, "DELETE FROM serving_counters WHERE deployment = $1", &[&name]).await.map_err(db)?;
    super::announce(tx).await
}

pub(crate) async fn publish_counters(tx: &Transaction<'_>, counters: &[VariantCounters], now: i64) -> Result<()> {
    let upsert = tx.prepare(&crate::plan::UPSERT_COUNTERS.replace('?', "$")).await.map_err(db)?;
    for c in counters {
        tx.execute(
            &upsert,
            &[
                &c.deployment,
                &c.variant,
                &c.replica,
                &c.requests,
                &c.errors,
                &c.fallbacks,
                &c.latency_us_total,
                &c.updated_time,
            ],
        )
        .await
        .map_err(db)?;
    }
    let cutoff = now - crate::plan::COUNTERS_KEPT_MS;
    exec(tx, "DELETE FROM serving_counters WHERE updated_time < $1", &[&cutoff]).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn deployment_counters(
    tx: &Transaction<'_>,
    deployment: &str,
    since: i64,
) -> Result<Vec<VariantCounters>> {
    let rows = tx.query(&crate::plan::SELECT_COUNTERS.replace('?', "$"), &[&deployment, &since]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(VariantCounters {
                deployment: col(r, 0)?,
                variant: col(r, 1)?,
                replica: col(r, 2)?,
                requests: col(r, 3)?,
                errors: col(r, 4)?,
                fallbacks: col(r, 5)?,
                latency_us_total: col(r, 6)?,
                updated_time: col(r, 7)?,
            })
        })
        .collect()
}

pub(crate) async fn list_deployments(tx: &Transaction<'_>) -> Result<Vec<Deployment>> {
    let rows =
        tx.query(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY name"), &[]).await.map_err(db)?;
    rows.iter().map(row_to_deployment).collect()
}

/// Takes or renews a lease ([`plan::ACQUIRE_LEASE`]); whether `holder` has it.
pub(crate) async fn acquire_lease(
    tx: &Transaction<'_>,
    name: &str,
    holder: &str,
    now: i64,
    ttl_ms: i64,
) -> Result<bool> {
    let held = tx
        .query_opt(&crate::plan::ACQUIRE_LEASE.replace('?', "$"), &[&name, &holder, &now, &ttl_ms])
        .await
        .map_err(db)?;
    Ok(held.is_some())
}
