//! Experiments in PostgreSQL.

use super::Tx as Transaction;
use super::{exec, row};
use plinth_core::experiments::{DEFAULT_EXPERIMENT_NAME, Experiment, LifecycleStage, Tag};
use plinth_core::rules::{self, missing, taken};
use tokio_postgres::Row;

use super::{EXPERIMENT_ID_LOCK, col, db, params, stored};
use crate::plan::{self, page_rest};
use crate::{ExperimentSearch, Page, Result};

pub(crate) const COLUMNS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time, workspace";

/// An id that is not a non-negative integer names no experiment.
pub(crate) fn parse_id(experiment_id: &str) -> Result<i64> {
    match experiment_id.trim().parse::<i64>() {
        Ok(id) if id >= 0 => Ok(id),
        _ => Err(missing::experiment(experiment_id).into()),
    }
}

fn row_to_experiment(r: &Row) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: col::<i64>(r, 0)?.to_string(),
        name: col(r, 1)?,
        artifact_location: col(r, 2)?,
        lifecycle_stage: stored(r, 3, LifecycleStage::parse)?,
        creation_time: col(r, 4)?,
        last_update_time: col(r, 5)?,
        tags: Vec::new(),
        workspace: col(r, 6)?,
    })
}

async fn load_tags(tx: &Transaction<'_>, exps: &mut [Experiment]) -> Result<()> {
    for e in exps.iter_mut() {
        let id = parse_id(&e.experiment_id)?;
        let rows = tx
            .query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key", &[&id])
            .await
            .map_err(db)?;
        e.tags = rows.iter().map(|r| Ok(Tag { key: col(r, 0)?, value: col(r, 1)? })).collect::<Result<_>>()?;
    }
    Ok(())
}

pub(crate) async fn ensure_default(tx: &Transaction<'_>, artifact_location: &str, t: i64) -> Result<()> {
    exec(tx,
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
         VALUES (0, $1, $2, 'active', $3, $3) ON CONFLICT DO NOTHING",
        &[&DEFAULT_EXPERIMENT_NAME, &artifact_location, &t],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn create(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    artifact_location: &str,
    tags: &[Tag],
    t: i64,
) -> Result<String> {
    // One id at a time: MAX + 1 under a lock, so ids stay dense and never collide.
    exec(tx, "SELECT pg_advisory_xact_lock($1)", &[&EXPERIMENT_ID_LOCK]).await.map_err(db)?;
    if let Some(holder) = get_by_name(tx, ws, name).await? {
        return Err(taken::experiment(name, holder.lifecycle_stage).into());
    }
    let id: i64 =
        col(&row(tx, "SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments", &[]).await.map_err(db)?, 0)?;
    let location = artifact_location.replace("{id}", &id.to_string());
    exec(tx,
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time,
                                  workspace)
         VALUES ($1, $2, $3, 'active', $4, $4, $5)",
        &[&id, &name, &location, &t, &ws],
    )
    .await
    .map_err(db)?;
    for tag in tags {
        set_tag_unchecked(tx, id, tag).await?;
    }
    Ok(id.to_string())
}

async fn set_tag_unchecked(tx: &Transaction<'_>, id: i64, tag: &Tag) -> Result<()> {
    exec(
        tx,
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        &[&id, &tag.key, &tag.value],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn get(tx: &Transaction<'_>, experiment_id: &str) -> Result<Experiment> {
    let id = parse_id(experiment_id)?;
    let row = tx
        .query_opt(&format!("SELECT {COLUMNS} FROM experiments WHERE experiment_id = $1"), &[&id])
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Err(missing::experiment(experiment_id).into());
    };
    let mut v = [row_to_experiment(&row)?];
    load_tags(tx, &mut v).await?;
    let [exp] = v;
    Ok(exp)
}

/// The workspace an experiment belongs to (which never changes).
pub(crate) async fn workspace_of(tx: &Transaction<'_>, experiment_id: &str) -> Result<String> {
    let id = parse_id(experiment_id)?;
    match tx.query_opt("SELECT workspace FROM experiments WHERE experiment_id = $1", &[&id]).await.map_err(db)? {
        Some(r) => col(&r, 0),
        None => Err(missing::experiment(experiment_id).into()),
    }
}

pub(crate) async fn get_active(tx: &Transaction<'_>, experiment_id: &str) -> Result<Experiment> {
    let exp = get(tx, experiment_id).await?;
    rules::require_active_experiment(experiment_id, exp.lifecycle_stage)?;
    Ok(exp)
}

pub(crate) async fn get_by_name(tx: &Transaction<'_>, ws: &str, name: &str) -> Result<Option<Experiment>> {
    let row = tx
        .query_opt(&format!("SELECT {COLUMNS} FROM experiments WHERE name = $1 AND workspace = $2"), &[&name, &ws])
        .await
        .map_err(db)?;
    match row {
        None => Ok(None),
        Some(row) => {
            let mut v = [row_to_experiment(&row)?];
            load_tags(tx, &mut v).await?;
            let [exp] = v;
            Ok(Some(exp))
        }
    }
}

pub(crate) async fn search(tx: &Transaction<'_>, ws: &str, s: &ExperimentSearch) -> Result<Page<Experiment>> {
    let sql = plan::experiment_search(s, COLUMNS, ws);
    let rows = tx.query(&sql.numbered(), &params(&sql)).await.map_err(db)?;
    let mut items = rows.iter().map(row_to_experiment).collect::<Result<Vec<_>>>()?;
    let next_offset = page_rest(&mut items, s.query.max_results, s.query.offset);
    load_tags(tx, &mut items).await?;
    Ok(Page { items, next_offset })
}

pub(crate) async fn rename(tx: &Transaction<'_>, experiment_id: &str, new_name: &str, now: i64) -> Result<()> {
    let exp = get_active(tx, experiment_id).await?;
    if exp.name == new_name {
        return Ok(());
    }
    let ws = workspace_of(tx, experiment_id).await?;
    if let Some(holder) = get_by_name(tx, &ws, new_name).await? {
        return Err(taken::experiment(new_name, holder.lifecycle_stage).into());
    }
    exec(
        tx,
        "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        &[&new_name, &now, &parse_id(experiment_id)?],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn set_lifecycle(
    tx: &Transaction<'_>,
    experiment_id: &str,
    stage: LifecycleStage,
    t: i64,
) -> Result<()> {
    let exp = get(tx, experiment_id).await?;
    rules::check_experiment_lifecycle(experiment_id, exp.lifecycle_stage, stage)?;
    let id = parse_id(experiment_id)?;
    exec(
        tx,
        "UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3",
        &[&stage.as_str(), &t, &id],
    )
    .await
    .map_err(db)?;
    let (from, deleted_time) = match stage {
        LifecycleStage::Deleted => ("active", Some(t)),
        LifecycleStage::Active => ("deleted", None),
    };
    exec(
        tx,
        "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3 AND lifecycle_stage = $4",
        &[&stage.as_str(), &deleted_time, &id, &from],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn set_tag(tx: &Transaction<'_>, experiment_id: &str, tag: &Tag) -> Result<()> {
    get_active(tx, experiment_id).await?;
    set_tag_unchecked(tx, parse_id(experiment_id)?, tag).await
}

pub(crate) async fn delete_tag(tx: &Transaction<'_>, experiment_id: &str, key: &str) -> Result<()> {
    get_active(tx, experiment_id).await?;
    let n = tx
        .execute(
            "DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2",
            &[&parse_id(experiment_id)?, &key],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(missing::experiment_tag(experiment_id, key).into());
    }
    Ok(())
}

pub(crate) async fn count_runs(tx: &Transaction<'_>, experiment_ids: &[String]) -> Result<Vec<(String, i64)>> {
    let ids: Vec<i64> = experiment_ids.iter().filter_map(|id| id.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT experiment_id, COUNT(*) FROM runs WHERE lifecycle_stage = 'active' AND experiment_id = ANY($1)
             GROUP BY experiment_id",
            &[&ids],
        )
        .await
        .map_err(db)?;
    rows.iter().map(|r| Ok((col::<i64>(r, 0)?.to_string(), col(r, 1)?))).collect()
}
