//! Workspaces in SQLite (the SQL is [`crate::plan`]'s, shared with PostgreSQL).

use plinth_core::workspaces::{DEFAULT_WORKSPACE, Workspace, WorkspaceUpdate, msg};
use plinth_core::{Error as DomainError, rules::missing};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Result;
use crate::plan;

fn row(r: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        name: r.get(0)?,
        description: r.get(1)?,
        default_artifact_root: r.get(2)?,
        creation_time: r.get(3)?,
        last_update_time: r.get(4)?,
    })
}

pub(crate) fn create(conn: &Connection, w: &Workspace) -> Result<Workspace> {
    let n =
        conn.execute(plan::INSERT_WORKSPACE, params![w.name, w.description, w.default_artifact_root, w.creation_time])?;
    if n == 0 {
        return Err(DomainError::exists(msg::exists(&w.name)).into());
    }
    get(conn, &w.name)
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Workspace> {
    conn.prepare_cached(plan::GET_WORKSPACE)?
        .query_row([name], row)
        .optional()?
        .ok_or_else(|| DomainError::not_found(msg::not_found(name)).into())
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<Workspace>> {
    Ok(conn.prepare_cached(plan::LIST_WORKSPACES)?.query_map([], row)?.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn update(conn: &Connection, name: &str, update: &WorkspaceUpdate, now: i64) -> Result<Workspace> {
    let w = plan::updated_workspace(get(conn, name)?, update, now);
    conn.execute(plan::UPDATE_WORKSPACE, params![w.name, w.description, w.default_artifact_root, w.last_update_time])?;
    Ok(w)
}

pub(crate) fn delete(conn: &Connection, name: &str) -> Result<()> {
    if name == DEFAULT_WORKSPACE {
        return Err(DomainError::InvalidState(msg::default_undeletable()).into());
    }
    get(conn, name)?;
    for (table, count) in plan::WORKSPACE_CONTENTS {
        let n: i64 = conn.query_row(count, [name], |r| r.get(0))?;
        if n > 0 {
            return Err(DomainError::InvalidState(msg::not_empty(name, table, n)).into());
        }
    }
    for sql in plan::DELETE_WORKSPACE {
        conn.execute(sql, [name])?;
    }
    Ok(())
}

pub(crate) fn experiment_workspace(conn: &Connection, experiment_id: &str) -> Result<String> {
    let id = super::experiments::parse_id(experiment_id)?;
    conn.prepare_cached(plan::EXPERIMENT_WORKSPACE)?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| missing::experiment(experiment_id).into())
}
