//! Roles, their grants and who holds them, in PostgreSQL (the SQL is
//! [`crate::plan`]'s, shared with SQLite). Every change holds one advisory
//! lock, so ids (MAX + 1) and the uniqueness checks never race, and is
//! announced on `plinth_changes`, so other replicas forget cached grants.

use plinth_core::access::{
    Grant, Permission, ResourceType, Role, RoleAssignment, RoleChange, RoleChanged, RolePermission, msg,
    personal_role_name,
};
use tokio_postgres::Row;

use super::{ROLES_LOCK, Tx, col, db, exec, users};
use crate::plan;
use crate::{Result, RoleFilter};

fn sql(text: &str) -> String {
    text.replace('?', "$")
}

type RoleRow = (i64, String, String, Option<String>);

fn role_row(r: &Row) -> Result<RoleRow> {
    Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?, col(r, 3)?))
}

fn permission(r: &Row) -> Result<RolePermission> {
    crate::codec::role_permission((col(r, 0)?, col(r, 1)?, col(r, 2)?, col(r, 3)?, col(r, 4)?))
}

fn assignment(r: &Row) -> Result<RoleAssignment> {
    Ok(RoleAssignment { id: col(r, 0)?, user_id: col(r, 1)?, role_id: col(r, 2)? })
}

async fn with_permissions(tx: &Tx<'_>, (id, workspace, name, description): RoleRow) -> Result<Role> {
    let rows = tx.query(&sql(plan::SELECT_ROLE_PERMISSIONS), &[&id]).await.map_err(db)?;
    let permissions = rows.iter().map(permission).collect::<Result<Vec<_>>>()?;
    Ok(Role { id, workspace, name, description, permissions })
}

async fn role_by_name(tx: &Tx<'_>, workspace: &str, name: &str) -> Result<Option<RoleRow>> {
    tx.query_opt(&sql(plan::SELECT_ROLE_BY_NAME), &[&workspace, &name])
        .await
        .map_err(db)?
        .map(|r| role_row(&r))
        .transpose()
}

pub(crate) async fn get(tx: &Tx<'_>, role_id: i64) -> Result<Role> {
    match tx.query_opt(&sql(plan::SELECT_ROLE), &[&role_id]).await.map_err(db)? {
        Some(r) => with_permissions(tx, role_row(&r)?).await,
        None => Err(msg::no_role(role_id).into()),
    }
}

pub(crate) async fn list(tx: &Tx<'_>, filter: &RoleFilter) -> Result<Vec<Role>> {
    let rows = match filter {
        RoleFilter::All => tx.query(plan::LIST_ROLES, &[]).await,
        RoleFilter::Workspace(w) => tx.query(&sql(plan::LIST_ROLES_IN), &[w]).await,
        RoleFilter::User(u) => tx.query(&sql(plan::LIST_ROLES_OF_USER), &[u]).await,
    }
    .map_err(db)?;
    let mut roles = Vec::with_capacity(rows.len());
    for r in &rows {
        roles.push(with_permissions(tx, role_row(r)?).await?);
    }
    Ok(roles)
}

pub(crate) async fn get_permission(tx: &Tx<'_>, id: i64) -> Result<RolePermission> {
    match tx.query_opt(&sql(plan::SELECT_ROLE_PERMISSION), &[&id]).await.map_err(db)? {
        Some(r) => permission(&r),
        None => Err(msg::no_permission(id).into()),
    }
}

pub(crate) async fn role_users(tx: &Tx<'_>, role_id: i64) -> Result<Vec<RoleAssignment>> {
    get(tx, role_id).await?;
    tx.query(&sql(plan::LIST_ROLE_USERS), &[&role_id]).await.map_err(db)?.iter().map(assignment).collect()
}

pub(crate) async fn grants(tx: &Tx<'_>, user_id: i64, workspace: &str) -> Result<Vec<Grant>> {
    let rows = tx.query(&sql(plan::LIST_GRANTS), &[&user_id, &workspace]).await.map_err(db)?;
    rows.iter().map(|r| crate::codec::grant(col(r, 0)?, col(r, 1)?, col(r, 2)?)).collect()
}

async fn next(tx: &Tx<'_>, text: &str) -> Result<i64> {
    col(&tx.query_one(text, &[]).await.map_err(db)?, 0)
}

async fn permission_by_key(
    tx: &Tx<'_>,
    role_id: i64,
    t: ResourceType,
    pattern: &str,
) -> Result<Option<RolePermission>> {
    let row = tx
        .query_opt(&sql(plan::SELECT_ROLE_PERMISSION_BY_KEY), &[&role_id, &t.as_str(), &pattern])
        .await
        .map_err(db)?;
    row.map(|r| permission(&r)).transpose()
}

async fn insert_permission(tx: &Tx<'_>, role_id: i64, grant: &Grant) -> Result<RolePermission> {
    let id = next(tx, plan::NEXT_ROLE_PERMISSION_ID).await?;
    tx.execute(
        &sql(plan::INSERT_ROLE_PERMISSION),
        &[&id, &role_id, &grant.resource_type.as_str(), &grant.pattern, &grant.permission.as_str()],
    )
    .await
    .map_err(db)?;
    Ok(RolePermission { id, role_id, grant: grant.clone() })
}

async fn assignment_of(tx: &Tx<'_>, user_id: i64, role_id: i64) -> Result<Option<RoleAssignment>> {
    let row = tx.query_opt(&sql(plan::SELECT_ROLE_ASSIGNMENT), &[&user_id, &role_id]).await.map_err(db)?;
    row.map(|r| assignment(&r)).transpose()
}

async fn assign(tx: &Tx<'_>, user_id: i64, role_id: i64) -> Result<RoleAssignment> {
    let id = next(tx, plan::NEXT_ROLE_ASSIGNMENT_ID).await?;
    tx.execute(&sql(plan::INSERT_ROLE_ASSIGNMENT), &[&id, &user_id, &role_id]).await.map_err(db)?;
    Ok(RoleAssignment { id, user_id, role_id })
}

async fn insert_role(tx: &Tx<'_>, workspace: &str, name: &str, description: Option<&str>) -> Result<i64> {
    let id = next(tx, plan::NEXT_ROLE_ID).await?;
    tx.execute(&sql(plan::INSERT_ROLE), &[&id, &workspace, &name, &description]).await.map_err(db)?;
    Ok(id)
}

/// The user's personal role in `workspace`, made (and assigned) on first use.
async fn personal_role(tx: &Tx<'_>, user_id: i64, workspace: &str) -> Result<i64> {
    let name = personal_role_name(user_id);
    let role_id = match role_by_name(tx, workspace, &name).await? {
        Some((id, ..)) => id,
        None => insert_role(tx, workspace, &name, None).await?,
    };
    if assignment_of(tx, user_id, role_id).await?.is_none() {
        assign(tx, user_id, role_id).await?;
    }
    Ok(role_id)
}

async fn set_permission(tx: &Tx<'_>, id: i64, permission: Permission) -> Result<RolePermission> {
    let mut p = get_permission(tx, id).await?;
    p.grant = Grant::new(p.grant.resource_type, &p.grant.pattern, permission)?;
    tx.execute(&sql(plan::UPDATE_ROLE_PERMISSION), &[&id, &permission.as_str()]).await.map_err(db)?;
    Ok(p)
}

pub(crate) async fn change(tx: &Tx<'_>, change: RoleChange) -> Result<RoleChanged> {
    exec(tx, "SELECT pg_advisory_xact_lock($1)", &[&ROLES_LOCK]).await.map_err(db)?;
    // Every replica drops its cached grants when this commits.
    super::announce(tx).await?;
    Ok(match change {
        RoleChange::Create { workspace, name, description } => {
            if role_by_name(tx, &workspace, &name).await?.is_some() {
                return Err(msg::role_taken(&workspace, &name).into());
            }
            let id = insert_role(tx, &workspace, &name, description.as_deref()).await?;
            RoleChanged::Role(get(tx, id).await?)
        }
        RoleChange::Update { role_id, name, description } => {
            let role = get(tx, role_id).await?;
            if let Some(name) = name.as_deref().filter(|n| *n != role.name)
                && role_by_name(tx, &role.workspace, name).await?.is_some()
            {
                return Err(msg::role_name_taken(&role.workspace, name).into());
            }
            tx.execute(&sql(plan::UPDATE_ROLE), &[&role_id, &name, &description]).await.map_err(db)?;
            RoleChanged::Role(get(tx, role_id).await?)
        }
        RoleChange::Delete { role_id } => {
            get(tx, role_id).await?;
            for text in [plan::DELETE_ROLE_PERMISSIONS, plan::DELETE_ROLE_ASSIGNMENTS, plan::DELETE_ROLE] {
                tx.execute(&sql(text), &[&role_id]).await.map_err(db)?;
            }
            RoleChanged::Done
        }
        RoleChange::AddPermission { role_id, grant } => {
            get(tx, role_id).await?;
            if permission_by_key(tx, role_id, grant.resource_type, &grant.pattern).await?.is_some() {
                return Err(msg::permission_taken(role_id, grant.resource_type.as_str(), &grant.pattern).into());
            }
            RoleChanged::Permission(insert_permission(tx, role_id, &grant).await?)
        }
        RoleChange::UpdatePermission { id, permission } => {
            RoleChanged::Permission(set_permission(tx, id, permission).await?)
        }
        RoleChange::RemovePermission { id } => {
            get_permission(tx, id).await?;
            tx.execute(&sql(plan::DELETE_ROLE_PERMISSION), &[&id]).await.map_err(db)?;
            RoleChanged::Done
        }
        RoleChange::Assign { user_id, role_id } => {
            users::get_by_id(tx, user_id).await?;
            get(tx, role_id).await?;
            if assignment_of(tx, user_id, role_id).await?.is_some() {
                return Err(msg::assignment_taken(user_id, role_id).into());
            }
            RoleChanged::Assignment(assign(tx, user_id, role_id).await?)
        }
        RoleChange::Unassign { user_id, role_id } => {
            if tx.execute(&sql(plan::DELETE_ROLE_ASSIGNMENT), &[&user_id, &role_id]).await.map_err(db)? == 0 {
                return Err(msg::no_assignment(user_id, role_id).into());
            }
            RoleChanged::Done
        }
        RoleChange::GrantPersonal { user_id, workspace, grant, replace } => {
            let user = users::get_by_id(tx, user_id).await?;
            let role_id = personal_role(tx, user_id, &workspace).await?;
            match permission_by_key(tx, role_id, grant.resource_type, &grant.pattern).await? {
                Some(existing) if replace => {
                    RoleChanged::Permission(set_permission(tx, existing.id, grant.permission).await?)
                }
                Some(_) => {
                    return Err(msg::grant_taken(&user.username, grant.resource_type.as_str(), &grant.pattern).into());
                }
                None => RoleChanged::Permission(insert_permission(tx, role_id, &grant).await?),
            }
        }
        RoleChange::RevokePersonal { user_id, workspace, resource_type, pattern } => {
            let user = users::get_by_id(tx, user_id).await?;
            let existing = match role_by_name(tx, &workspace, &personal_role_name(user_id)).await? {
                Some((role_id, ..)) => permission_by_key(tx, role_id, resource_type, &pattern).await?,
                None => None,
            };
            match existing {
                Some(p) => {
                    tx.execute(&sql(plan::DELETE_ROLE_PERMISSION), &[&p.id]).await.map_err(db)?;
                    RoleChanged::Done
                }
                None => return Err(msg::no_grant(&user.username, resource_type.as_str(), &pattern).into()),
            }
        }
        RoleChange::RenameResource { workspace, resource_type, from, to } => {
            let t = resource_type.as_str();
            tx.execute(&sql(plan::DROP_GRANTS_SHADOWED_BY_RENAME), &[&workspace, &t, &from, &to]).await.map_err(db)?;
            tx.execute(&sql(plan::RENAME_GRANTS), &[&workspace, &t, &from, &to]).await.map_err(db)?;
            RoleChanged::Done
        }
        RoleChange::ForgetResource { workspace, resource_type, pattern } => {
            tx.execute(&sql(plan::FORGET_GRANTS), &[&workspace, &resource_type.as_str(), &pattern])
                .await
                .map_err(db)?;
            RoleChanged::Done
        }
    })
}

/// A deleted user holds no role, and their personal roles go.
pub(crate) async fn forget_user(tx: &Tx<'_>, user_id: i64) -> Result<()> {
    let name = personal_role_name(user_id);
    tx.execute(&sql(plan::DELETE_USER_ASSIGNMENTS), &[&user_id]).await.map_err(db)?;
    tx.execute(&sql(plan::DELETE_PERSONAL_ROLE_PERMISSIONS), &[&name]).await.map_err(db)?;
    tx.execute(&sql(plan::DELETE_PERSONAL_ROLES), &[&name]).await.map_err(db)?;
    Ok(())
}

pub(crate) async fn run_experiment(tx: &Tx<'_>, run_id: &str) -> Result<String> {
    match tx.query_opt(&sql(plan::RUN_EXPERIMENT), &[&run_id]).await.map_err(db)? {
        Some(r) => Ok(col::<i64>(&r, 0)?.to_string()),
        None => Err(plinth_core::rules::missing::run(run_id).into()),
    }
}
