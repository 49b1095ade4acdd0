//! MLflow 3 logged models in SQLite.

use plinth_core::experiments::Tag;
use plinth_core::logged_models::{LoggedModel, LoggedModelStatus};
use plinth_core::runs::Param;
use rusqlite::{Connection, OptionalExtension, params};

use super::experiments::{self, page_rest, parse_id};
use super::query::Sql;
use super::runs::row_to_metric;
use crate::error::not_found;
use crate::{Page, Result};

const COLUMNS: &str = "model_id, experiment_id, name, artifact_location, creation_time, last_updated_time, model_type, source_run_id, status, status_message, deleted";

fn row_to_model(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoggedModel> {
    let status: String = r.get(8)?;
    Ok(LoggedModel {
        model_id: r.get(0)?,
        experiment_id: r.get::<_, i64>(1)?.to_string(),
        name: r.get(2)?,
        artifact_location: r.get(3)?,
        creation_timestamp_ms: r.get(4)?,
        last_updated_timestamp_ms: r.get(5)?,
        model_type: r.get(6)?,
        source_run_id: r.get(7)?,
        status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Pending),
        status_message: r.get(9)?,
        deleted: r.get::<_, i64>(10)? != 0,
        tags: Vec::new(),
        params: Vec::new(),
        metrics: Vec::new(),
    })
}

pub(crate) fn create(conn: &Connection, m: &LoggedModel) -> Result<LoggedModel> {
    experiments::get_active(conn, &m.experiment_id)?;
    conn.execute(
        &format!("INSERT INTO logged_models ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)"),
        params![
            m.model_id,
            parse_id(&m.experiment_id)?,
            m.name,
            m.artifact_location,
            m.creation_timestamp_ms,
            m.last_updated_timestamp_ms,
            m.model_type,
            m.source_run_id,
            m.status.as_str(),
            m.status_message
        ],
    )?;
    set_tags_unchecked(conn, &m.model_id, &m.tags)?;
    log_params_unchecked(conn, &m.model_id, &m.params)?;
    get(conn, &m.model_id)
}

fn set_tags_unchecked(conn: &Connection, model_id: &str, tags: &[Tag]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO logged_model_tags (model_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in tags {
        stmt.execute(params![model_id, t.key, t.value])?;
    }
    Ok(())
}

fn log_params_unchecked(conn: &Connection, model_id: &str, ps: &[Param]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO logged_model_params (model_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for p in ps {
        stmt.execute(params![model_id, p.key, p.value])?;
    }
    Ok(())
}

fn load(conn: &Connection, m: &mut LoggedModel) -> Result<()> {
    m.tags = conn
        .prepare_cached("SELECT key, value FROM logged_model_tags WHERE model_id = ?1 ORDER BY key")?
        .query_map([&m.model_id], |r| Ok(Tag { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    m.params = conn
        .prepare_cached("SELECT key, value FROM logged_model_params WHERE model_id = ?1 ORDER BY key")?
        .query_map([&m.model_id], |r| Ok(Param { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    m.metrics = conn
        .prepare_cached(
            "SELECT key, value, is_nan, timestamp, step FROM metrics WHERE model_id = ?1 ORDER BY key, step, timestamp",
        )?
        .query_map([&m.model_id], |r| row_to_metric(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, model_id: &str) -> Result<LoggedModel> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM logged_models WHERE model_id = ?1 AND deleted = 0"))?
        .query_row([model_id], row_to_model)
        .optional()?;
    let Some(mut m) = found else {
        return not_found(format!("Logged model with ID '{model_id}' not found."));
    };
    load(conn, &mut m)?;
    Ok(m)
}

pub(crate) fn finalize(conn: &Connection, model_id: &str, status: LoggedModelStatus) -> Result<LoggedModel> {
    get(conn, model_id)?;
    conn.execute(
        "UPDATE logged_models SET status = ?1, last_updated_time = ?2 WHERE model_id = ?3",
        params![status.as_str(), super::now(), model_id],
    )?;
    get(conn, model_id)
}

pub(crate) fn delete(conn: &Connection, model_id: &str) -> Result<()> {
    get(conn, model_id)?;
    conn.execute("UPDATE logged_models SET deleted = 1 WHERE model_id = ?1", [model_id])?;
    Ok(())
}

pub(crate) fn set_tags(conn: &Connection, model_id: &str, tags: &[Tag]) -> Result<()> {
    get(conn, model_id)?;
    set_tags_unchecked(conn, model_id, tags)
}

pub(crate) fn delete_tag(conn: &Connection, model_id: &str, key: &str) -> Result<()> {
    get(conn, model_id)?;
    let n = conn.execute("DELETE FROM logged_model_tags WHERE model_id = ?1 AND key = ?2", params![model_id, key])?;
    if n == 0 {
        return not_found(format!("No tag with key '{key}' found for model with ID '{model_id}'."));
    }
    Ok(())
}

pub(crate) fn log_params(conn: &Connection, model_id: &str, ps: &[Param]) -> Result<()> {
    get(conn, model_id)?;
    log_params_unchecked(conn, model_id, ps)
}

pub(crate) fn search(
    conn: &Connection,
    experiment_ids: &[String],
    max_results: i64,
    offset: i64,
) -> Result<Page<LoggedModel>> {
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM logged_models WHERE deleted = 0"));
    if !experiment_ids.is_empty() {
        sql.push(" AND experiment_id IN (");
        for (i, id) in experiment_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind_i64(id.trim().parse::<i64>().unwrap_or(-1));
        }
        sql.push(")");
    }
    sql.push(" ORDER BY creation_time DESC, model_id LIMIT ");
    sql.bind_i64(max_results + 1);
    sql.push(" OFFSET ");
    sql.bind_i64(offset);
    let mut items: Vec<LoggedModel> = conn
        .prepare(&sql.text)?
        .query_map(rusqlite::params_from_iter(sql.params.iter()), row_to_model)?
        .collect::<rusqlite::Result<_>>()?;
    let next_offset = page_rest(&mut items, max_results, offset);
    for m in items.iter_mut() {
        load(conn, m)?;
    }
    Ok(Page { items, next_offset })
}
