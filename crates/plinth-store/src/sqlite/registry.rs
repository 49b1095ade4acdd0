//! The model registry in SQLite: registered models, versions, tags, aliases.

use plinth_core::experiments::Tag;
use plinth_core::query::{ModelVersionQuery, RegisteredModelQuery};
use plinth_core::registry::{Alias, ModelVersion, NewModelVersion, RegisteredModel, Stage};
use plinth_core::rules::{self, missing, taken};
use rusqlite::{Connection, OptionalExtension, params};

use super::stored;
use crate::plan::{self, page_rest};
use crate::{Page, Result};

pub(crate) fn create_model(
    conn: &Connection,
    ws: &str,
    name: &str,
    description: Option<&str>,
    tags: &[Tag],
    t: i64,
) -> Result<RegisteredModel> {
    let dup: Option<i64> = conn
        .query_row("SELECT 1 FROM registered_models WHERE name = ?1 AND workspace = ?2", [name, ws], |r| r.get(0))
        .optional()?;
    if dup.is_some() {
        return Err(taken::registered_model(name).into());
    }
    conn.execute(
        "INSERT INTO registered_models (workspace, name, creation_time, last_updated_time, description)
         VALUES (?4, ?1, ?2, ?2, ?3)",
        params![name, t, description, ws],
    )?;
    for tag in tags {
        set_model_tag_unchecked(conn, ws, name, tag)?;
    }
    get_model(conn, ws, name)
}

fn set_model_tag_unchecked(conn: &Connection, ws: &str, name: &str, tag: &Tag) -> Result<()> {
    conn.execute(
        "INSERT INTO registered_model_tags (workspace, name, key, value) VALUES (?4, ?1, ?2, ?3)
         ON CONFLICT (workspace, name, key) DO UPDATE SET value = excluded.value",
        params![name, tag.key, tag.value, ws],
    )?;
    Ok(())
}

fn model_row(conn: &Connection, ws: &str, name: &str) -> Result<(i64, i64, Option<String>)> {
    conn.prepare_cached(
        "SELECT creation_time, last_updated_time, description FROM registered_models
         WHERE name = ?1 AND workspace = ?2",
    )?
    .query_row([name, ws], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .optional()?
    .ok_or_else(|| missing::registered_model(name).into())
}

pub(crate) fn get_model(conn: &Connection, ws: &str, name: &str) -> Result<RegisteredModel> {
    let (created, updated, description) = model_row(conn, ws, name)?;
    let tags = conn
        .prepare_cached("SELECT key, value FROM registered_model_tags WHERE name = ?1 AND workspace = ?2 ORDER BY key")?
        .query_map([name, ws], |r| Ok(Tag { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    let aliases = conn
        .prepare_cached(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ?1 AND workspace = ?2 ORDER BY alias",
        )?
        .query_map([name, ws], |r| Ok(Alias { alias: r.get(0)?, version: r.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    let versions: Vec<i64> = conn
        .prepare_cached(
            "SELECT MAX(version) FROM model_versions WHERE name = ?1 AND workspace = ?2
             GROUP BY current_stage ORDER BY MAX(version)",
        )?
        .query_map([name, ws], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut latest_versions = Vec::new();
    for v in versions {
        latest_versions.push(get_version(conn, ws, name, v)?);
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

pub(crate) fn rename_model(
    conn: &Connection,
    ws: &str,
    name: &str,
    new_name: &str,
    now: i64,
) -> Result<RegisteredModel> {
    model_row(conn, ws, name)?;
    if name == new_name {
        return get_model(conn, ws, name);
    }
    let dup: Option<i64> = conn
        .query_row("SELECT 1 FROM registered_models WHERE name = ?1 AND workspace = ?2", [new_name, ws], |r| r.get(0))
        .optional()?;
    if dup.is_some() {
        return Err(taken::registered_model(new_name).into());
    }
    // Child rows first would violate the parent key; insert the new parent, move children, drop the old one.
    conn.execute(
        "INSERT INTO registered_models (workspace, name, creation_time, last_updated_time, description)
         SELECT workspace, ?1, creation_time, ?2, description FROM registered_models WHERE name = ?3 AND workspace = ?4",
        params![new_name, now, name, ws],
    )?;
    for table in ["registered_model_tags", "model_versions", "model_version_tags", "registered_model_aliases"] {
        conn.execute(
            &format!("UPDATE {table} SET name = ?1 WHERE name = ?2 AND workspace = ?3"),
            params![new_name, name, ws],
        )?;
    }
    conn.execute(
        "UPDATE model_versions SET source = REPLACE(source, ?1, ?2) WHERE name = ?3 AND source LIKE ?4 AND workspace = ?5",
        params![
            format!("models:/{name}/"),
            format!("models:/{new_name}/"),
            new_name,
            format!("models:/{name}/%"),
            ws
        ],
    )?;
    conn.execute("DELETE FROM registered_models WHERE name = ?1 AND workspace = ?2", [name, ws])?;
    get_model(conn, ws, new_name)
}

pub(crate) fn update_model(
    conn: &Connection,
    ws: &str,
    name: &str,
    description: Option<&str>,
    now: i64,
) -> Result<RegisteredModel> {
    model_row(conn, ws, name)?;
    conn.execute(
        "UPDATE registered_models SET description = ?1, last_updated_time = ?2 WHERE name = ?3 AND workspace = ?4",
        params![description, now, name, ws],
    )?;
    get_model(conn, ws, name)
}

pub(crate) fn delete_model(conn: &Connection, ws: &str, name: &str) -> Result<()> {
    model_row(conn, ws, name)?;
    for table in [
        "registered_model_aliases",
        "model_version_tags",
        "model_versions",
        "registered_model_tags",
        "registered_models",
    ] {
        conn.execute(&format!("DELETE FROM {table} WHERE name = ?1 AND workspace = ?2"), [name, ws])?;
    }
    Ok(())
}

pub(crate) fn search_models(conn: &Connection, ws: &str, q: &RegisteredModelQuery) -> Result<Page<RegisteredModel>> {
    let sql = plan::registered_model_search(q, ws);
    let mut names: Vec<String> = conn
        .prepare(&sql.text)?
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let next_offset = page_rest(&mut names, q.max_results, q.offset);
    let items = names.iter().map(|n| get_model(conn, ws, n)).collect::<Result<_>>()?;
    Ok(Page { items, next_offset })
}

pub(crate) fn set_model_tag(conn: &Connection, ws: &str, name: &str, tag: &Tag) -> Result<()> {
    model_row(conn, ws, name)?;
    set_model_tag_unchecked(conn, ws, name, tag)
}

pub(crate) fn delete_model_tag(conn: &Connection, ws: &str, name: &str, key: &str) -> Result<()> {
    model_row(conn, ws, name)?;
    let n = conn.execute(
        "DELETE FROM registered_model_tags WHERE name = ?1 AND key = ?2 AND workspace = ?3",
        params![name, key, ws],
    )?;
    if n == 0 {
        return Err(missing::registered_model_tag(name, key).into());
    }
    Ok(())
}

pub(crate) fn set_alias(conn: &Connection, ws: &str, name: &str, alias: &str, version: i64, now: i64) -> Result<()> {
    get_version(conn, ws, name, version)?;
    conn.execute(
        "INSERT INTO registered_model_aliases (workspace, name, alias, version) VALUES (?4, ?1, ?2, ?3)
         ON CONFLICT (workspace, name, alias) DO UPDATE SET version = excluded.version",
        params![name, alias, version, ws],
    )?;
    conn.execute(
        "UPDATE registered_models SET last_updated_time = ?1 WHERE name = ?2 AND workspace = ?3",
        params![now, name, ws],
    )?;
    Ok(())
}

pub(crate) fn delete_alias(conn: &Connection, ws: &str, name: &str, alias: &str) -> Result<()> {
    model_row(conn, ws, name)?;
    conn.execute(
        "DELETE FROM registered_model_aliases WHERE name = ?1 AND alias = ?2 AND workspace = ?3",
        params![name, alias, ws],
    )?;
    Ok(())
}

pub(crate) fn version_by_alias(conn: &Connection, ws: &str, name: &str, alias: &str) -> Result<ModelVersion> {
    model_row(conn, ws, name)?;
    let v: Option<i64> = conn
        .query_row(
            "SELECT version FROM registered_model_aliases WHERE name = ?1 AND alias = ?2 AND workspace = ?3",
            params![name, alias, ws],
            |r| r.get(0),
        )
        .optional()?;
    match v {
        Some(v) => get_version(conn, ws, name, v),
        None => Err(missing::alias(alias).into()),
    }
}

pub(crate) fn create_version(conn: &Connection, ws: &str, new: &NewModelVersion, t: i64) -> Result<ModelVersion> {
    model_row(conn, ws, &new.name)?;
    let version: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?1 AND workspace = ?2",
        [new.name.as_str(), ws],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO model_versions (workspace, name, version, creation_time, last_updated_time, description, user_id, current_stage,
             source, run_id, run_link, status, status_message, model_id, storage_location)
         VALUES (?10, ?1, ?2, ?3, ?3, ?4, NULL, 'None', ?5, ?6, ?7, 'READY', NULL, ?8, ?9)",
        params![
            new.name,
            version,
            t,
            new.description,
            new.source,
            new.run_id,
            new.run_link,
            new.model_id,
            new.storage_location,
            ws
        ],
    )?;
    for tag in &new.tags {
        set_version_tag_unchecked(conn, ws, &new.name, version, tag)?;
    }
    conn.execute(
        "UPDATE registered_models SET last_updated_time = ?1 WHERE name = ?2 AND workspace = ?3",
        params![t, new.name, ws],
    )?;
    get_version(conn, ws, &new.name, version)
}

fn set_version_tag_unchecked(conn: &Connection, ws: &str, name: &str, version: i64, tag: &Tag) -> Result<()> {
    conn.execute(
        "INSERT INTO model_version_tags (workspace, name, version, key, value) VALUES (?5, ?1, ?2, ?3, ?4)
         ON CONFLICT (workspace, name, version, key) DO UPDATE SET value = excluded.value",
        params![name, version, tag.key, tag.value, ws],
    )?;
    Ok(())
}

const VERSION_COLUMNS: &str = "name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, run_link, status, status_message, model_id, storage_location";

pub(crate) fn get_version(conn: &Connection, ws: &str, name: &str, version: i64) -> Result<ModelVersion> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ?1 AND version = ?2 AND workspace = ?3"
        ))?
        .query_row(params![name, version, ws], |r| {
            let stage: String = r.get(6)?;
            Ok(ModelVersion {
                name: r.get(0)?,
                version: r.get(1)?,
                creation_timestamp: r.get(2)?,
                last_updated_timestamp: r.get(3)?,
                description: r.get(4)?,
                user_id: r.get(5)?,
                current_stage: stored(6, Stage::parse(&stage))?,
                source: r.get(7)?,
                run_id: r.get(8)?,
                run_link: r.get(9)?,
                status: r.get(10)?,
                status_message: r.get(11)?,
                model_id: r.get(12)?,
                storage_location: r.get(13)?,
                tags: Vec::new(),
                aliases: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut mv) = found else {
        return Err(missing::model_version(name, version).into());
    };
    mv.tags = conn
        .prepare_cached(
            "SELECT key, value FROM model_version_tags WHERE name = ?1 AND version = ?2 AND workspace = ?3 ORDER BY key",
        )?
        .query_map(params![name, version, ws], |r| Ok(Tag { key: r.get(0)?, value: r.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    mv.aliases = conn
        .prepare_cached(
            "SELECT alias FROM registered_model_aliases WHERE name = ?1 AND version = ?2 AND workspace = ?3 ORDER BY alias",
        )?
        .query_map(params![name, version, ws], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(mv)
}

pub(crate) fn update_version(
    conn: &Connection,
    ws: &str,
    name: &str,
    version: i64,
    description: Option<&str>,
    now: i64,
) -> Result<ModelVersion> {
    get_version(conn, ws, name, version)?;
    conn.execute(
        "UPDATE model_versions SET description = ?1, last_updated_time = ?2
         WHERE name = ?3 AND version = ?4 AND workspace = ?5",
        params![description, now, name, version, ws],
    )?;
    get_version(conn, ws, name, version)
}

pub(crate) fn delete_version(conn: &Connection, ws: &str, name: &str, version: i64) -> Result<()> {
    get_version(conn, ws, name, version)?;
    for table in ["registered_model_aliases", "model_version_tags", "model_versions"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE name = ?1 AND version = ?2 AND workspace = ?3"),
            params![name, version, ws],
        )?;
    }
    Ok(())
}

pub(crate) fn search_versions(conn: &Connection, ws: &str, q: &ModelVersionQuery) -> Result<Page<ModelVersion>> {
    let sql = plan::model_version_search(q, ws);
    let mut keys: Vec<(String, i64)> = conn
        .prepare(&sql.text)?
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let next_offset = page_rest(&mut keys, q.max_results, q.offset);
    let items = keys.iter().map(|(n, v)| get_version(conn, ws, n, *v)).collect::<Result<_>>()?;
    Ok(Page { items, next_offset })
}

pub(crate) fn set_version_tag(conn: &Connection, ws: &str, name: &str, version: i64, tag: &Tag) -> Result<()> {
    get_version(conn, ws, name, version)?;
    set_version_tag_unchecked(conn, ws, name, version, tag)
}

pub(crate) fn delete_version_tag(conn: &Connection, ws: &str, name: &str, version: i64, key: &str) -> Result<()> {
    get_version(conn, ws, name, version)?;
    let n = conn.execute(
        "DELETE FROM model_version_tags WHERE name = ?1 AND version = ?2 AND key = ?3 AND workspace = ?4",
        params![name, version, key, ws],
    )?;
    if n == 0 {
        return Err(missing::model_version_tag(name, version, key).into());
    }
    Ok(())
}

pub(crate) fn transition(
    conn: &Connection,
    ws: &str,
    name: &str,
    version: i64,
    stage: Stage,
    archive_existing: bool,
    t: i64,
) -> Result<ModelVersion> {
    get_version(conn, ws, name, version)?;
    if rules::transition_archives_others(stage, archive_existing) {
        conn.execute(
            "UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ?1
             WHERE name = ?2 AND version != ?3 AND current_stage = ?4 AND workspace = ?5",
            params![t, name, version, stage.as_str(), ws],
        )?;
    }
    conn.execute(
        "UPDATE model_versions SET current_stage = ?1, last_updated_time = ?2
         WHERE name = ?3 AND version = ?4 AND workspace = ?5",
        params![stage.as_str(), t, name, version, ws],
    )?;
    get_version(conn, ws, name, version)
}

pub(crate) fn latest_versions(conn: &Connection, ws: &str, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
    let model = get_model(conn, ws, name)?;
    Ok(model.latest_versions.into_iter().filter(|v| stages.is_empty() || stages.contains(&v.current_stage)).collect())
}
