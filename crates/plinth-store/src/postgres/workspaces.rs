//! Workspaces in PostgreSQL (the SQL is [`crate::plan`]'s, shared with SQLite).

use plinth_core::workspaces::{DEFAULT_WORKSPACE, Workspace, WorkspaceUpdate, msg};
use plinth_core::{Error as DomainError, rules::missing};
use tokio_postgres::Row;

use super::{ROLES_LOCK, Tx, col, db, exec};
use crate::Result;
use crate::plan;

fn pg(sql: &str) -> String {
    sql.replace('?', "$")
}

fn row(r: &Row) -> Result<Workspace> {
    Ok(Workspace {
        name: col(r, 0)?,
        description: col(r, 1)?,
        default_artifact_root: col(r, 2)?,
        creation_time: col(r, 3)?,
        last_update_time: col(r, 4)?,
    })
}

pub(crate) async fn create(tx: &Tx<'_>, w: &Workspace) -> Result<Workspace> {
    let n = tx
        .execute(&pg(plan::INSERT_WORKSPACE), &[&w.name, &w.description, &w.default_artifact_root, &w.creation_time])
        .await
        .map_err(db)?;
    if n == 0 {
        return Err(DomainError::exists(msg::exists(&w.name)).into());
    }
    get(tx, &w.name).await
}

pub(crate) async fn get(tx: &Tx<'_>, name: &str) -> Result<Workspace> {
    match tx.query_opt(&pg(plan::GET_WORKSPACE), &[&name]).await.map_err(db)? {
        Some(r) => row(&r),
        None => Err(DomainError::not_found(msg::not_found(name)).into()),
    }
}

pub(crate) async fn list(tx: &Tx<'_>) -> Result<Vec<Workspace>> {
    tx.query(plan::LIST_WORKSPACES, &[]).await.map_err(db)?.iter().map(row).collect()
}

pub(crate) async fn update(tx: &Tx<'_>, name: &str, update: &WorkspaceUpdate, now: i64) -> Result<Workspace> {
    let w = plan::updated_workspace(get(tx, name).await?, update, now);
    tx.execute(&pg(plan::UPDATE_WORKSPACE), &[&w.name, &w.description, &w.default_artifact_root, &w.last_update_time])
        .await
        .map_err(db)?;
    Ok(w)
}

pub(crate) async fn delete(tx: &Tx<'_>, name: &str) -> Result<()> {
    if name == DEFAULT_WORKSPACE {
        return Err(DomainError::InvalidState(msg::default_undeletable()).into());
    }
    // Its roles go with it: one change to roles at a time.
    exec(tx, "SELECT pg_advisory_xact_lock($1)", &[&ROLES_LOCK]).await.map_err(db)?;
    // Held to the end: nothing is created in it while it is checked and deleted.
    match tx.query_opt("SELECT name FROM workspaces WHERE name = $1 FOR UPDATE", &[&name]).await.map_err(db)? {
        Some(_) => {}
        None => return Err(DomainError::not_found(msg::not_found(name)).into()),
    }
    for (table, count) in plan::WORKSPACE_CONTENTS {
        let n: i64 = col(&tx.query_one(&pg(count), &[&name]).await.map_err(db)?, 0)?;
        if n > 0 {
            return Err(DomainError::InvalidState(msg::not_empty(name, table, n)).into());
        }
    }
    for sql in plan::DELETE_WORKSPACE {
        tx.execute(&pg(sql), &[&name]).await.map_err(db)?;
    }
    super::announce(tx).await
}

pub(crate) async fn experiment_workspace(tx: &Tx<'_>, experiment_id: &str) -> Result<String> {
    let id = super::experiments::parse_id(experiment_id)?;
    match tx.query_opt(&pg(plan::EXPERIMENT_WORKSPACE), &[&id]).await.map_err(db)? {
        Some(r) => col(&r, 0),
        None => Err(missing::experiment(experiment_id).into()),
    }
}
