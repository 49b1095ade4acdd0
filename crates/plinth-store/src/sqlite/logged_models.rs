//! MLflow 3 logged models in SQLite.

use plinth_core::experiments::Tag;
use plinth_core::logged_models::{LoggedModel, LoggedModelStatus};
use plinth_core::query::{LoggedModelAttribute, LoggedModelClause, LoggedModelSortKey};
use plinth_core::rules::missing;
use plinth_core::runs::Param;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use super::experiments::{self, page_rest, parse_id};
use super::query::{Sql, number_clause, string_clause};
use super::runs::row_to_metric;
use super::stored;
use crate::{DatasetFilter, LoggedModelSearch, Page, Result};

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
        status: stored(8, LoggedModelStatus::parse(&status))?,
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
        return Err(missing::logged_model(model_id).into());
    };
    load(conn, &mut m)?;
    Ok(m)
}

pub(crate) fn finalize(conn: &Connection, model_id: &str, status: LoggedModelStatus, now: i64) -> Result<LoggedModel> {
    get(conn, model_id)?;
    conn.execute(
        "UPDATE logged_models SET status = ?1, last_updated_time = ?2 WHERE model_id = ?3",
        params![status.as_str(), now, model_id],
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
        return Err(missing::logged_model_tag(model_id, key).into());
    }
    Ok(())
}

pub(crate) fn log_params(conn: &Connection, model_id: &str, ps: &[Param]) -> Result<()> {
    get(conn, model_id)?;
    log_params_unchecked(conn, model_id, ps)
}

/// The SQL column of a logged-model attribute.
fn column(attribute: LoggedModelAttribute) -> &'static str {
    match attribute {
        LoggedModelAttribute::ModelId => "m.model_id",
        LoggedModelAttribute::Name => "m.name",
        LoggedModelAttribute::ModelType => "m.model_type",
        LoggedModelAttribute::Status => "m.status",
        LoggedModelAttribute::SourceRunId => "m.source_run_id",
        // Stored as an integer; compared as text, like the wire does.
        LoggedModelAttribute::ExperimentId => "CAST(m.experiment_id AS TEXT)",
        LoggedModelAttribute::ArtifactLocation => "m.artifact_location",
        LoggedModelAttribute::CreationTimestamp => "m.creation_time",
        LoggedModelAttribute::LastUpdatedTimestamp => "m.last_updated_time",
    }
}

/// ` AND (dataset_name = ? [AND dataset_digest = ?] OR ...)`
fn dataset_condition(sql: &mut Sql, datasets: &[DatasetFilter]) {
    if datasets.is_empty() {
        return;
    }
    sql.push(" AND (");
    for (i, d) in datasets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(dataset_name = ");
        sql.bind_str(&d.name);
        if let Some(digest) = &d.digest {
            sql.push(" AND dataset_digest = ");
            sql.bind_str(digest);
        }
        sql.push(")");
    }
    sql.push(")");
}

fn filter_clause(sql: &mut Sql, clause: &LoggedModelClause, datasets: &[DatasetFilter]) {
    match clause {
        LoggedModelClause::Text { attribute, test } => string_clause(sql, column(*attribute), test),
        LoggedModelClause::Time { attribute, op, value } => {
            number_clause(sql, column(*attribute), *op, SqlValue::Real(*value))
        }
        LoggedModelClause::Metric { key, op, value } => {
            sql.push(" AND m.model_id IN (SELECT model_id FROM metrics WHERE model_id IS NOT NULL AND key = ");
            sql.bind_str(key);
            sql.push(" AND is_nan = 0");
            number_clause(sql, "value", *op, SqlValue::Real(*value));
            dataset_condition(sql, datasets);
            sql.push(")");
        }
        LoggedModelClause::Param { key, test } | LoggedModelClause::Tag { key, test } => {
            let table = if matches!(clause, LoggedModelClause::Param { .. }) {
                "logged_model_params"
            } else {
                "logged_model_tags"
            };
            sql.push(&format!(" AND m.model_id IN (SELECT model_id FROM {table} WHERE key = "));
            sql.bind_str(key);
            // `string_clause` opens with ` AND value ...`.
            string_clause(sql, "value", test);
            sql.push(")");
        }
    }
}

/// Searches logged models with MLflow's semantics: attribute, metric, param
/// and tag clauses joined by AND; `datasets` restricts to models with metrics
/// on them; sorts by attributes or a metric's latest value (missing values
/// last), then newest first and by id, so pages are stable.
pub(crate) fn search(conn: &Connection, q: &LoggedModelSearch) -> Result<Page<LoggedModel>> {
    let cols = COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ");
    let mut sql = Sql::new(format!("SELECT {cols} FROM logged_models m"));
    // One LEFT JOIN per metric sort key: the latest value per model, as
    // MLflow picks it (newest timestamp, then step).
    for (i, order) in q.order_by.iter().enumerate() {
        let LoggedModelSortKey::Metric(metric) = &order.key else { continue };
        sql.push(
            " LEFT JOIN (SELECT model_id, value FROM (SELECT model_id, value, ROW_NUMBER() OVER \
             (PARTITION BY model_id ORDER BY timestamp DESC, step DESC, run_uuid) AS rn \
             FROM metrics WHERE model_id IS NOT NULL AND is_nan = 0 AND key = ",
        );
        sql.bind_str(metric);
        if let Some(d) = &order.dataset {
            dataset_condition(&mut sql, std::slice::from_ref(d));
        }
        sql.push(&format!(") AS latest WHERE rn = 1) ob{i} ON ob{i}.model_id = m.model_id"));
    }
    sql.push(" WHERE m.deleted = 0");
    if !q.experiment_ids.is_empty() {
        sql.push(" AND m.experiment_id IN (");
        for (i, id) in q.experiment_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind_i64(id.trim().parse::<i64>().unwrap_or(-1));
        }
        sql.push(")");
    }
    for clause in &q.filter {
        filter_clause(&mut sql, clause, &q.datasets);
    }
    if !q.datasets.is_empty() && !q.filter.iter().any(|c| matches!(c, LoggedModelClause::Metric { .. })) {
        sql.push(" AND m.model_id IN (SELECT model_id FROM metrics WHERE model_id IS NOT NULL");
        dataset_condition(&mut sql, &q.datasets);
        sql.push(")");
    }

    let mut order = Vec::new();
    for (i, o) in q.order_by.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        let col = match &o.key {
            LoggedModelSortKey::Metric(_) => format!("ob{i}.value"),
            LoggedModelSortKey::Attribute(a) => column(*a).to_string(),
        };
        order.push(format!("({col} IS NULL) ASC, {col} {dir}"));
    }
    let sorts_by = |a| q.order_by.iter().any(|o| o.key == LoggedModelSortKey::Attribute(a));
    if !sorts_by(LoggedModelAttribute::CreationTimestamp) {
        order.push("m.creation_time DESC".into());
    }
    if !sorts_by(LoggedModelAttribute::ModelId) {
        order.push("m.model_id ASC".into());
    }
    sql.push(&format!(" ORDER BY {} LIMIT ", order.join(", ")));
    sql.bind_i64(q.max_results + 1);
    sql.push(" OFFSET ");
    sql.bind_i64(q.offset);
    let mut items: Vec<LoggedModel> = conn
        .prepare(&sql.text)?
        .query_map(rusqlite::params_from_iter(sql.params.iter()), row_to_model)?
        .collect::<rusqlite::Result<_>>()?;
    let next_offset = page_rest(&mut items, q.max_results, q.offset);
    for m in items.iter_mut() {
        load(conn, m)?;
    }
    Ok(Page { items, next_offset })
}
