//! Experiments in SQLite.

use plinth_core::experiments::{DEFAULT_EXPERIMENT_NAME, Experiment, LifecycleStage, Tag};
use plinth_core::rules::{self, missing, taken};
use rusqlite::{Connection, OptionalExtension, params};

use super::stored;
use crate::plan::{self, page_rest};
use crate::{ExperimentSearch, Page, Result};

pub(crate) fn parse_id(experiment_id: &str) -> Result<i64> {
    match experiment_id.trim().parse::<i64>() {
        Ok(id) if id >= 0 => Ok(id),
        _ => Err(missing::experiment(experiment_id).into()),
    }
}

pub(crate) fn ensure_default(conn: &Connection, artifact_location: &str, t: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
         SELECT ?1, ?2, ?3, 'active', ?4, ?4 WHERE NOT EXISTS (SELECT 1 FROM experiments WHERE experiment_id = ?1)",
        params![0i64, DEFAULT_EXPERIMENT_NAME, artifact_location, t],
    )?;
    Ok(())
}

pub(crate) fn create(
    conn: &Connection,
    ws: &str,
    name: &str,
    artifact_location: &str,
    tags: &[Tag],
    t: i64,
) -> Result<String> {
    if let Some(holder) = get_by_name(conn, ws, name)? {
        return Err(taken::experiment(name, holder.lifecycle_stage).into());
    }
    let id: i64 = conn.query_row("SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments", [], |r| r.get(0))?;
    let location = artifact_location.replace("{id}", &id.to_string());
    conn.execute(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time,
                                  workspace)
         VALUES (?1, ?2, ?3, 'active', ?4, ?4, ?5)",
        params![id, name, location, t, ws],
    )?;
    for tag in tags {
        set_tag_unchecked(conn, id, tag)?;
    }
    Ok(id.to_string())
}

fn set_tag_unchecked(conn: &Connection, id: i64, tag: &Tag) -> Result<()> {
    conn.execute(
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        params![id, tag.key, tag.value],
    )?;
    Ok(())
}

const COLUMNS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time, workspace";

fn row_to_experiment(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Experiment, String)> {
    let stage: String = r.get(3)?;
    Ok((
        Experiment {
            experiment_id: r.get::<_, i64>(0)?.to_string(),
            name: r.get(1)?,
            artifact_location: r.get(2)?,
            lifecycle_stage: stored(3, LifecycleStage::parse(&stage))?,
            creation_time: r.get(4)?,
            last_update_time: r.get(5)?,
            tags: Vec::new(),
            workspace: r.get(6)?,
        },
        stage,
    ))
}

fn load_tags(conn: &Connection, exps: &mut [Experiment]) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 ORDER BY key")?;
    for e in exps.iter_mut() {
        let id: i64 = e.experiment_id.parse().unwrap_or(-1);
        e.tags =
            stmt.query_map([id], |r| Ok(Tag { key: r.get(0)?, value: r.get(1)? }))?.collect::<rusqlite::Result<_>>()?;
    }
    Ok(())
}

pub(crate) fn get(conn: &Connection, experiment_id: &str) -> Result<Experiment> {
    let id = parse_id(experiment_id)?;
    let found = conn
        .query_row(&format!("SELECT {COLUMNS} FROM experiments WHERE experiment_id = ?1"), [id], row_to_experiment)
        .optional()?;
    let Some((exp, _)) = found else {
        return Err(missing::experiment(experiment_id).into());
    };
    let mut v = [exp];
    load_tags(conn, &mut v)?;
    let [exp] = v;
    Ok(exp)
}

/// The workspace an experiment belongs to (which never changes).
pub(crate) fn workspace_of(conn: &Connection, experiment_id: &str) -> Result<String> {
    let id = parse_id(experiment_id)?;
    conn.prepare_cached("SELECT workspace FROM experiments WHERE experiment_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| missing::experiment(experiment_id).into())
}

pub(crate) fn get_active(conn: &Connection, experiment_id: &str) -> Result<Experiment> {
    let exp = get(conn, experiment_id)?;
    rules::require_active_experiment(experiment_id, exp.lifecycle_stage)?;
    Ok(exp)
}

pub(crate) fn get_by_name(conn: &Connection, ws: &str, name: &str) -> Result<Option<Experiment>> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM experiments WHERE name = ?1 AND workspace = ?2"),
            [name, ws],
            row_to_experiment,
        )
        .optional()?;
    match found {
        None => Ok(None),
        Some((exp, _)) => {
            let mut v = [exp];
            load_tags(conn, &mut v)?;
            let [exp] = v;
            Ok(Some(exp))
        }
    }
}

pub(crate) fn search(conn: &Connection, ws: &str, s: &ExperimentSearch) -> Result<Page<Experiment>> {
    let sql = plan::experiment_search(s, COLUMNS, ws);
    let mut stmt = conn.prepare(&sql.text)?;
    let mut items: Vec<Experiment> = stmt
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| row_to_experiment(r).map(|x| x.0))?
        .collect::<rusqlite::Result<_>>()?;
    let next_offset = page_rest(&mut items, s.query.max_results, s.query.offset);
    load_tags(conn, &mut items)?;
    Ok(Page { items, next_offset })
}

pub(crate) fn rename(conn: &Connection, experiment_id: &str, new_name: &str, now: i64) -> Result<()> {
    let exp = get_active(conn, experiment_id)?;
    if exp.name == new_name {
        return Ok(());
    }
    let ws = workspace_of(conn, experiment_id)?;
    if let Some(holder) = get_by_name(conn, &ws, new_name)? {
        return Err(taken::experiment(new_name, holder.lifecycle_stage).into());
    }
    conn.execute(
        "UPDATE experiments SET name = ?1, last_update_time = ?2 WHERE experiment_id = ?3",
        params![new_name, now, parse_id(experiment_id)?],
    )?;
    Ok(())
}

pub(crate) fn set_lifecycle(conn: &Connection, experiment_id: &str, stage: LifecycleStage, t: i64) -> Result<()> {
    let exp = get(conn, experiment_id)?;
    rules::check_experiment_lifecycle(experiment_id, exp.lifecycle_stage, stage)?;
    let id = parse_id(experiment_id)?;
    conn.execute(
        "UPDATE experiments SET lifecycle_stage = ?1, last_update_time = ?2 WHERE experiment_id = ?3",
        params![stage.as_str(), t, id],
    )?;
    let (from, deleted_time) = match stage {
        LifecycleStage::Deleted => ("active", Some(t)),
        LifecycleStage::Active => ("deleted", None),
    };
    conn.execute(
        "UPDATE runs SET lifecycle_stage = ?1, deleted_time = ?2 WHERE experiment_id = ?3 AND lifecycle_stage = ?4",
        params![stage.as_str(), deleted_time, id, from],
    )?;
    Ok(())
}

pub(crate) fn set_tag(conn: &Connection, experiment_id: &str, tag: &Tag) -> Result<()> {
    get_active(conn, experiment_id)?;
    set_tag_unchecked(conn, parse_id(experiment_id)?, tag)
}

pub(crate) fn delete_tag(conn: &Connection, experiment_id: &str, key: &str) -> Result<()> {
    get_active(conn, experiment_id)?;
    let n = conn.execute(
        "DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2",
        params![parse_id(experiment_id)?, key],
    )?;
    if n == 0 {
        return Err(missing::experiment_tag(experiment_id, key).into());
    }
    Ok(())
}

/// Active runs per experiment, for the given experiments (absent: none).
pub(crate) fn count_runs(conn: &Connection, experiment_ids: &[String]) -> Result<Vec<(String, i64)>> {
    let ids: Vec<i64> = experiment_ids.iter().filter_map(|id| id.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    let mut stmt = conn.prepare(&format!(
        "SELECT experiment_id, COUNT(*) FROM runs WHERE lifecycle_stage = 'active' AND experiment_id IN ({marks}) \
         GROUP BY experiment_id"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(ids), |r| Ok((r.get::<_, i64>(0)?.to_string(), r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}
