//! The model registry in PostgreSQL: registered models, versions, tags, aliases.

use super::Tx as Transaction;
use super::exec;
use plinth_core::experiments::Tag;
use plinth_core::query::{ModelVersionQuery, RegisteredModelQuery};
use plinth_core::registry::{Alias, ModelVersion, NewModelVersion, RegisteredModel, Stage};
use plinth_core::rules::{self, missing, taken};

use super::{col, db, params, stored};
use crate::plan::{self, page_rest};
use crate::{Page, Result};

/// (creation, last update, description); `lock` holds the row to the end of the transaction.
async fn model_row(tx: &Transaction<'_>, ws: &str, name: &str, lock: bool) -> Result<(i64, i64, Option<String>)> {
    let sql = format!(
        "SELECT creation_time, last_updated_time, description FROM registered_models WHERE name = $1 AND workspace = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    match tx.query_opt(&sql, &[&name, &ws]).await.map_err(db)? {
        Some(r) => Ok((col(&r, 0)?, col(&r, 1)?, col(&r, 2)?)),
        None => Err(missing::registered_model(name).into()),
    }
}

async fn touch(tx: &Transaction<'_>, ws: &str, name: &str, now: i64) -> Result<()> {
    exec(
        tx,
        "UPDATE registered_models SET last_updated_time = $1 WHERE name = $2 AND workspace = $3",
        &[&now, &name, &ws],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn create_model(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    description: Option<&str>,
    tags: &[Tag],
    t: i64,
) -> Result<RegisteredModel> {
    let n = tx
        .execute(
            "INSERT INTO registered_models (workspace, name, creation_time, last_updated_time, description)
             VALUES ($4, $1, $2, $2, $3) ON CONFLICT DO NOTHING",
            &[&name, &t, &description, &ws],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(taken::registered_model(name).into());
    }
    for tag in tags {
        set_model_tag_unchecked(tx, ws, name, tag).await?;
    }
    get_model(tx, ws, name).await
}

async fn set_model_tag_unchecked(tx: &Transaction<'_>, ws: &str, name: &str, tag: &Tag) -> Result<()> {
    exec(
        tx,
        "INSERT INTO registered_model_tags (workspace, name, key, value) VALUES ($4, $1, $2, $3)
         ON CONFLICT (workspace, name, key) DO UPDATE SET value = excluded.value",
        &[&name, &tag.key, &tag.value, &ws],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn get_model(tx: &Transaction<'_>, ws: &str, name: &str) -> Result<RegisteredModel> {
    let (created, updated, description) = model_row(tx, ws, name, false).await?;
    let tags = tx
        .query(
            "SELECT key, value FROM registered_model_tags WHERE name = $1 AND workspace = $2 ORDER BY key",
            &[&name, &ws],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok(Tag { key: col(r, 0)?, value: col(r, 1)? }))
        .collect::<Result<_>>()?;
    let aliases = tx
        .query(
            "SELECT alias, version FROM registered_model_aliases WHERE name = $1 AND workspace = $2 ORDER BY alias",
            &[&name, &ws],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok(Alias { alias: col(r, 0)?, version: col(r, 1)? }))
        .collect::<Result<_>>()?;
    let versions: Vec<i64> = tx
        .query(
            "SELECT MAX(version) FROM model_versions WHERE name = $1 AND workspace = $2
             GROUP BY current_stage ORDER BY MAX(version)",
            &[&name, &ws],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
    let mut latest_versions = Vec::new();
    for v in versions {
        latest_versions.push(get_version(tx, ws, name, v).await?);
    }
    Ok(RegisteredModel {
        name: name.to_string(),
        creation_timestamp: created,
        last_updated_timestamp: updated,
        description,
        tags,
        aliases,
        latest_versions,
    })
}

pub(crate) async fn rename_model(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    new_name: &str,
    now: i64,
) -> Result<RegisteredModel> {
    model_row(tx, ws, name, true).await?;
    if name == new_name {
        return get_model(tx, ws, name).await;
    }
    // The new parent first (the children's keys point at a name), then the children, then the old parent.
    let n = tx
        .execute(
            "INSERT INTO registered_models (workspace, name, creation_time, last_updated_time, description)
             SELECT workspace, $1, creation_time, $2, description FROM registered_models
             WHERE name = $3 AND workspace = $4
             ON CONFLICT DO NOTHING",
            &[&new_name, &now, &name, &ws],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(taken::registered_model(new_name).into());
    }
    for table in ["registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases"] {
        tx.execute(
            &format!("UPDATE {table} SET name = $1 WHERE name = $2 AND workspace = $3"),
            &[&new_name, &name, &ws],
        )
        .await
        .map_err(db)?;
    }
    exec(
        tx,
        "UPDATE model_versions SET source = REPLACE(source, $1, $2) WHERE name = $3 AND source LIKE $4 AND workspace = $5",
        &[&format!("models:/{name}/"), &format!("models:/{new_name}/"), &new_name, &format!("models:/{name}/%"), &ws],
    )
    .await
    .map_err(db)?;
    exec(tx, "DELETE FROM registered_models WHERE name = $1 AND workspace = $2", &[&name, &ws]).await.map_err(db)?;
    get_model(tx, ws, new_name).await
}

pub(crate) async fn update_model(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    description: Option<&str>,
    now: i64,
) -> Result<RegisteredModel> {
    model_row(tx, ws, name, true).await?;
    exec(
        tx,
        "UPDATE registered_models SET description = $1, last_updated_time = $2 WHERE name = $3 AND workspace = $4",
        &[&description, &now, &name, &ws],
    )
    .await
    .map_err(db)?;
    get_model(tx, ws, name).await
}

pub(crate) async fn delete_model(tx: &Transaction<'_>, ws: &str, name: &str) -> Result<()> {
    model_row(tx, ws, name, true).await?;
    for table in [
        "registered_model_aliases",
        "model_version_tags",
        "model_versions",
        "registered_model_tags",
        "registered_models",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE name = $1 AND workspace = $2"), &[&name, &ws])
            .await
            .map_err(db)?;
    }
    Ok(())
}

pub(crate) async fn search_models(
    tx: &Transaction<'_>,
    ws: &str,
    q: &RegisteredModelQuery,
) -> Result<Page<RegisteredModel>> {
    let sql = plan::registered_model_search(q, ws);
    let mut names: Vec<String> =
        tx.query(&sql.numbered(), &params(&sql)).await.map_err(db)?.iter().map(|r| col(r, 0)).collect::<Result<_>>()?;
    let next_offset = page_rest(&mut names, q.max_results, q.offset);
    let mut items = Vec::with_capacity(names.len());
    for n in &names {
        items.push(get_model(tx, ws, n).await?);
    }
    Ok(Page { items, next_offset })
}

pub(crate) async fn set_model_tag(tx: &Transaction<'_>, ws: &str, name: &str, tag: &Tag) -> Result<()> {
    model_row(tx, ws, name, false).await?;
    set_model_tag_unchecked(tx, ws, name, tag).await
}

pub(crate) async fn delete_model_tag(tx: &Transaction<'_>, ws: &str, name: &str, key: &str) -> Result<()> {
    model_row(tx, ws, name, false).await?;
    let n = tx
        .execute(
            "DELETE FROM registered_model_tags WHERE name = $1 AND key = $2 AND workspace = $3",
            &[&name, &key, &ws],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(missing::registered_model_tag(name, key).into());
    }
    Ok(())
}

pub(crate) async fn set_alias(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    alias: &str,
    version: i64,
    now: i64,
) -> Result<()> {
    get_version(tx, ws, name, version).await?;
    exec(
        tx,
        "INSERT INTO registered_model_aliases (workspace, name, alias, version) VALUES ($4, $1, $2, $3)
         ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version",
        &[&name, &alias, &version, &ws],
    )
    .await
    .map_err(db)?;
    super::announce(tx).await?;
    touch(tx, ws, name, now).await
}

pub(crate) async fn delete_alias(tx: &Transaction<'_>, ws: &str, name: &str, alias: &str) -> Result<()> {
    model_row(tx, ws, name, false).await?;
    exec(
        tx,
        "DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2 AND workspace = $3",
        &[&name, &alias, &ws],
    )
    .await
    .map_err(db)?;
    super::announce(tx).await
}

pub(crate) async fn version_by_alias(tx: &Transaction<'_>, ws: &str, name: &str, alias: &str) -> Result<ModelVersion> {
    model_row(tx, ws, name, false).await?;
    let row = tx
        .query_opt(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2 AND workspace = $3",
            &[&name, &alias, &ws],
        )
        .await
        .map_err(db)?;
    match row {
        Some(r) => get_version(tx, ws, name, col(&r, 0)?).await,
        None => Err(missing::alias(alias).into()),
    }
}

pub(crate) async fn create_version(
    tx: &Transaction<'_>,
    ws: &str,
    new: &NewModelVersion,
    t: i64,
) -> Result<ModelVersion> {
    // The model's row lock serializes version numbering: MAX + 1 never collides.
    model_row(tx, ws, &new.name, true).await?;
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = $1 AND workspace = $2",
            &[&new.name, &ws],
        )
        .await
        .map_err(db)?;
    let version: i64 = col(&row, 0)?;
    exec(
        tx,
        "INSERT INTO model_versions (workspace, name, version, creation_time, last_updated_time, description, user_id,
             current_stage, source, run_id, run_link, status, status_message, model_id, storage_location)
         VALUES ($10, $1, $2, $3, $3, $4, NULL, 'None', $5, $6, $7, 'READY', NULL, $8, $9)",
        &[
            &new.name,
            &version,
            &t,
            &new.description,
            &new.source,
            &new.run_id,
            &new.run_link,
            &new.model_id,
            &new.storage_location,
            &ws,
        ],
    )
    .await
    .map_err(db)?;
    for tag in &new.tags {
        set_version_tag_unchecked(tx, ws, &new.name, version, tag).await?;
    }
    touch(tx, ws, &new.name, t).await?;
    get_version(tx, ws, &new.name, version).await
}

async fn set_version_tag_unchecked(tx: &Transaction<'_>, ws: &str, name: &str, version: i64, tag: &Tag) -> Result<()> {
    exec(
        tx,
        "INSERT INTO model_version_tags (workspace, name, version, key, value) VALUES ($5, $1, $2, $3, $4)
         ON CONFLICT (workspace, name, version, key) DO UPDATE SET value = excluded.value",
        &[&name, &version, &tag.key, &tag.value, &ws],
    )
    .await
    .map_err(db)?;
    Ok(())
}

const VERSION_COLUMNS: &str = "name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, run_link, status, status_message, model_id, storage_location";

pub(crate) async fn get_version(tx: &Transaction<'_>, ws: &str, name: &str, version: i64) -> Result<ModelVersion> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = $1 AND version = $2 AND workspace = $3"
            ),
            &[&name, &version, &ws],
        )
        .await
        .map_err(db)?;
    let Some(r) = row else {
        return Err(missing::model_version(name, version).into());
    };
    let mut mv = ModelVersion {
        name: col(&r, 0)?,
        version: col(&r, 1)?,
        creation_timestamp: col(&r, 2)?,
        last_updated_timestamp: col(&r, 3)?,
        description: col(&r, 4)?,
        user_id: col(&r, 5)?,
        current_stage: stored(&r, 6, Stage::parse)?,
        source: col(&r, 7)?,
        run_id: col(&r, 8)?,
        run_link: col(&r, 9)?,
        status: col(&r, 10)?,
        status_message: col(&r, 11)?,
        model_id: col(&r, 12)?,
        storage_location: col(&r, 13)?,
        tags: Vec::new(),
        aliases: Vec::new(),
    };
    mv.tags = tx
        .query(
            "SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2 AND workspace = $3 ORDER BY key",
            &[&name, &version, &ws],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok(Tag { key: col(r, 0)?, value: col(r, 1)? }))
        .collect::<Result<_>>()?;
    mv.aliases = tx
        .query(
            "SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2 AND workspace = $3 ORDER BY alias",
            &[&name, &version, &ws],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
    Ok(mv)
}

pub(crate) async fn update_version(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    version: i64,
    description: Option<&str>,
    now: i64,
) -> Result<ModelVersion> {
    get_version(tx, ws, name, version).await?;
    exec(
        tx,
        "UPDATE model_versions SET description = $1, last_updated_time = $2
         WHERE name = $3 AND version = $4 AND workspace = $5",
        &[&description, &now, &name, &version, &ws],
    )
    .await
    .map_err(db)?;
    get_version(tx, ws, name, version).await
}

pub(crate) async fn delete_version(tx: &Transaction<'_>, ws: &str, name: &str, version: i64) -> Result<()> {
    get_version(tx, ws, name, version).await?;
    for table in ["registered_model_aliases", "model_version_tags", "model_versions"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE name = $1 AND version = $2 AND workspace = $3"),
            &[&name, &version, &ws],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

pub(crate) async fn search_versions(
    tx: &Transaction<'_>,
    ws: &str,
    q: &ModelVersionQuery,
) -> Result<Page<ModelVersion>> {
    let sql = plan::model_version_search(q, ws);
    let mut keys: Vec<(String, i64)> = tx
        .query(&sql.numbered(), &params(&sql))
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_>>()?;
    let next_offset = page_rest(&mut keys, q.max_results, q.offset);
    let mut items = Vec::with_capacity(keys.len());
    for (n, v) in &keys {
        items.push(get_version(tx, ws, n, *v).await?);
    }
    Ok(Page { items, next_offset })
}

pub(crate) async fn set_version_tag(tx: &Transaction<'_>, ws: &str, name: &str, version: i64, tag: &Tag) -> Result<()> {
    get_version(tx, ws, name, version).await?;
    set_version_tag_unchecked(tx, ws, name, version, tag).await
}

pub(crate) async fn delete_version_tag(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    version: i64,
    key: &str,
) -> Result<()> {
    get_version(tx, ws, name, version).await?;
    let n = tx
        .execute(
            "DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3 AND workspace = $4",
            &[&name, &version, &key, &ws],
        )
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(missing::model_version_tag(name, version, key).into());
    }
    Ok(())
}

pub(crate) async fn transition(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
    t: i64,
) -> Result<ModelVersion> {
    model_row(tx, ws, name, true).await?;
    get_version(tx, ws, name, version).await?;
    if rules::transition_archives_others(stage, archive_existing) {
        exec(
            tx,
            "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $1
             WHERE name = $2 AND version != $3 AND current_stage = $4 AND workspace = $5",
            &[&t, &name, &version, &stage.as_str(), &ws],
        )
        .await
        .map_err(db)?;
    }
    exec(
        tx,
        "UPDATE model_versions SET current_stage = $1, last_updated_time = $2
         WHERE name = $3 AND version = $4 AND workspace = $5",
        &[&stage.as_str(), &t, &name, &version, &ws],
    )
    .await
    .map_err(db)?;
    super::announce(tx).await?;
    get_version(tx, ws, name, version).await
}

pub(crate) async fn latest_versions(
    tx: &Transaction<'_>,
    ws: &str,
    name: &str,
    stages: &[Stage],
) -> Result<Vec<ModelVersion>> {
    let model = get_model(tx, ws, name).await?;
    Ok(model.latest_versions.into_iter().filter(|v| stages.is_empty() || stages.contains(&v.current_stage)).collect())
}
