//! Deployments in SQLite.

use plinth_core::deployments::{Deployment, TrafficMode, Variant, VariantCounters};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use plinth_core::rules::{missing, taken};

const COLUMNS: &str = "name, salt, variants_json, shadow_json, created_time, updated_time, workspace, mode";

type Row = (String, String, String, Option<String>, i64, i64, String, String);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn to_deployment(
    (name, salt, variants, shadow, created_time, updated_time, workspace, mode): Row,
) -> Result<Deployment> {
    let corrupt = |e: serde_json::Error| crate::Error::Database(format!("deployment '{name}': stored variants: {e}"));
    let variants: Vec<Variant> = serde_json::from_str(&variants).map_err(corrupt)?;
    let shadow: Option<Variant> = shadow.map(|s| serde_json::from_str(&s)).transpose().map_err(corrupt)?;
    let mode = TrafficMode::parse(&mode)
        .map_err(|_| crate::Error::Database(format!("deployment '{name}': stored mode '{mode}'")))?;
    Ok(Deployment { name, salt, variants, shadow, mode, created_time, updated_time, workspace })
}

fn json(d: &Deployment) -> Result<(String, Option<String>)> {
    let err = |e: serde_json::Error| crate::Error::Database(e.to_string());
    Ok((
        serde_json::to_string(&d.variants).map_err(err)?,
        d.shadow.as_ref().map(serde_json::to_string).transpose().map_err(err)?,
    ))
}

pub(crate) fn create(conn: &Connection, d: &Deployment) -> Result<Deployment> {
    let taken: Option<i64> =
        conn.query_row("SELECT 1 FROM deployments WHERE name = ?1", [&d.name], |r| r.get(0)).optional()?;
    if taken.is_some() {
        return Err(taken::deployment(&d.name).into());
    }
    let (variants, shadow) = json(d)?;
    conn.execute(
        &format!("INSERT INTO deployments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![d.name, d.salt, variants, shadow, d.created_time, d.updated_time, d.workspace, d.mode.as_str()],
    )?;
    get(conn, &d.name)
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Deployment> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM deployments WHERE name = ?1"))?
        .query_row([name], read_row)
        .optional()?;
    match row {
        Some(row) => to_deployment(row),
        None => Err(missing::deployment(name).into()),
    }
}

pub(crate) fn update(conn: &Connection, d: &Deployment) -> Result<Deployment> {
    let (variants, shadow) = json(d)?;
    let n = conn.execute(
        "UPDATE deployments SET variants_json = ?1, shadow_json = ?2, updated_time = ?3, mode = ?4 WHERE name = ?5",
        params![variants, shadow, d.updated_time, d.mode.as_str(), d.name],
    )?;
    if n == 0 {
        return Err(missing::deployment(&d.name).into());
    }
    get(conn, &d.name)
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
    let rows: Vec<Row> = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM deployments ORDER BY name"))?
        .query_map([], read_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(to_deployment).collect()
}
