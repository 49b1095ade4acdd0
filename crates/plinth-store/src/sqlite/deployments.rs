//! Deployments in SQLite.

use plinth_core::deployments::{Deployment, VariantCounters};

use crate::codec::{DEPLOYMENT_COLUMNS, DeploymentRow};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use plinth_core::rules::{missing, taken};

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentRow> {
    Ok(DeploymentRow {
        name: r.get(0)?,
        salt: r.get(1)?,
        variants: r.get(2)?,
        shadow: r.get(3)?,
        created_time: r.get(4)?,
        updated_time: r.get(5)?,
        workspace: r.get(6)?,
        mode: r.get(7)?,
        metrics: r.get(8)?,
        policy: r.get(9)?,
    })
}

pub(crate) fn create(conn: &Connection, d: &Deployment) -> Result<Deployment> {
    let taken: Option<i64> =
        conn.query_row("SELECT 1 FROM deployments WHERE name = ?1", [&d.name], |r| r.get(0)).optional()?;
    if taken.is_some() {
        return Err(taken::deployment(&d.name).into());
    }
    let r = DeploymentRow::encode(d)?;
    conn.execute(
        &format!("INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            r.name,
            r.salt,
            r.variants,
            r.shadow,
            r.created_time,
            r.updated_time,
            r.workspace,
            r.mode,
            r.metrics,
            r.policy
        ],
    )?;
    get(conn, &d.name)
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Deployment> {
    let row = conn
        .prepare_cached(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = ?1"))?
        .query_row([name], read_row)
        .optional()?;
    match row {
        Some(row) => row.decode(),
        None => Err(missing::deployment(name).into()),
    }
}

const UPDATE: &str = "UPDATE deployments SET variants_json = ?1, shadow_json = ?2, updated_time = ?3, mode = ?4,
     metrics_json = ?5, policy_json = ?6 WHERE name = ?7";

pub(crate) fn update(conn: &Connection, d: &Deployment) -> Result<Deployment> {
    let r = DeploymentRow::encode(d)?;
    let n = conn.execute(UPDATE, params![r.variants, r.shadow, r.updated_time, r.mode, r.metrics, r.policy, r.name])?;
    if n == 0 {
        return Err(missing::deployment(&d.name).into());
    }
    get(conn, &d.name)
}

/// [`update`] while the stored `updated_time` is still `expected`; `None` when it is not.
pub(crate) fn update_if(conn: &Connection, d: &Deployment, expected: i64) -> Result<Option<Deployment>> {
    let r = DeploymentRow::encode(d)?;
    let n = conn.execute(
        &format!("{UPDATE} AND updated_time = ?8"),
        params![r.variants, r.shadow, r.updated_time, r.mode, r.metrics, r.policy, r.name, expected],
    )?;
    let stored = get(conn, &d.name)?;
    Ok((n == 1).then_some(stored))
}

pub(crate) fn delete(conn: &Connection, name: &str) -> Result<()> {
    if conn.execute("DELETE FROM deployments WHERE name = ?1", [name])? == 0 {
        return Err(missing::deployment(name).into());
    }
    conn.execute("DELETE FROM serving_counters WHERE deployment = ?1", [name])?;
    Ok(())
}

pub(crate) fn publish_counters(conn: &Connection, counters: &[VariantCounters], now: i64) -> Result<()> {
    let mut upsert = conn.prepare_cached(crate::plan::UPSERT_COUNTERS)?;
    for c in counters {
        upsert.execute(params![
            c.deployment,
            c.variant,
            c.replica,
            c.requests,
            c.errors,
            c.fallbacks,
            c.latency_us_total,
            c.updated_time
        ])?;
    }
    conn.execute("DELETE FROM serving_counters WHERE updated_time < ?1", [now - crate::plan::COUNTERS_KEPT_MS])?;
    Ok(())
}

pub(crate) fn counters(conn: &Connection, deployment: &str, since: i64) -> Result<Vec<VariantCounters>> {
    let rows = conn
        .prepare_cached(crate::plan::SELECT_COUNTERS)?
        .query_map(params![deployment, since], |r| {
            Ok(VariantCounters {
                deployment: r.get(0)?,
                variant: r.get(1)?,
                replica: r.get(2)?,
                requests: r.get(3)?,
                errors: r.get(4)?,
                fallbacks: r.get(5)?,
                latency_us_total: r.get(6)?,
                updated_time: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<Deployment>> {
    let rows: Vec<DeploymentRow> = conn
        .prepare_cached(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY name"))?
        .query_map([], read_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(DeploymentRow::decode).collect()
}
