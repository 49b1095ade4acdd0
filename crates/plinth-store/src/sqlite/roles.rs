//! Roles, their grants and who holds them, in SQLite (the SQL is
//! [`crate::plan`]'s, shared with PostgreSQL).

use plinth_core::access::{
    Grant, Permission, ResourceType, Role, RoleAssignment, RoleChange, RoleChanged, RolePermission, msg,
    personal_role_name,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users;
use crate::plan;
use crate::{Error, Result};

type RoleRow = (i64, String, String, Option<String>);

fn role_row(r: &Row<'_>) -> rusqlite::Result<RoleRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

type PermissionRow = (i64, i64, String, String, String);

fn permission_row(r: &Row<'_>) -> rusqlite::Result<PermissionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn assignment_row(r: &Row<'_>) -> rusqlite::Result<RoleAssignment> {
    Ok(RoleAssignment { id: r.get(0)?, user_id: r.get(1)?, role_id: r.get(2)? })
}

fn with_permissions(conn: &Connection, (id, workspace, name, description): RoleRow) -> Result<Role> {
    let mut stmt = conn.prepare_cached(plan::SELECT_ROLE_PERMISSIONS)?;
    let rows = stmt.query_map([id], permission_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    let permissions = rows.into_iter().map(crate::codec::role_permission).collect::<Result<Vec<_>>>()?;
    Ok(Role { id, workspace, name, description, permissions })
}

pub(crate) fn get(conn: &Connection, role_id: i64) -> Result<Role> {
    let row = conn.prepare_cached(plan::SELECT_ROLE)?.query_row([role_id], role_row).optional()?;
    match row {
        Some(row) => with_permissions(conn, row),
        None => Err(msg::no_role(role_id).into()),
    }
}

/// Every role (`None`), a workspace's, or a user's.
pub(crate) fn list(conn: &Connection, filter: &crate::RoleFilter) -> Result<Vec<Role>> {
    let rows: rusqlite::Result<Vec<RoleRow>> = match filter {
        crate::RoleFilter::All => conn.prepare_cached(plan::LIST_ROLES)?.query_map([], role_row)?.collect(),
        crate::RoleFilter::Workspace(w) => {
            conn.prepare_cached(plan::LIST_ROLES_IN)?.query_map([w], role_row)?.collect()
        }
        crate::RoleFilter::User(u) => {
            conn.prepare_cached(plan::LIST_ROLES_OF_USER)?.query_map([u], role_row)?.collect()
        }
    };
    let rows = rows.map_err(Error::from)?;
    rows.into_iter().map(|r| with_permissions(conn, r)).collect()
}

pub(crate) fn get_permission(conn: &Connection, id: i64) -> Result<RolePermission> {
    let row = conn.prepare_cached(plan::SELECT_ROLE_PERMISSION)?.query_row([id], permission_row).optional()?;
    match row {
        Some(row) => crate::codec::role_permission(row),
        None => Err(msg::no_permission(id).into()),
    }
}

pub(crate) fn role_users(conn: &Connection, role_id: i64) -> Result<Vec<RoleAssignment>> {
    get(conn, role_id)?;
    let mut stmt = conn.prepare_cached(plan::LIST_ROLE_USERS)?;
    Ok(stmt.query_map([role_id], assignment_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn grants(conn: &Connection, user_id: i64, workspace: &str) -> Result<Vec<Grant>> {
    let mut stmt = conn.prepare_cached(plan::LIST_GRANTS)?;
    let rows = stmt
        .query_map(params![user_id, workspace], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?)))?
        .collect::<rusqlite::Result<Vec<(String, String, String)>>>()?;
    rows.into_iter().map(|(t, p, perm)| crate::codec::grant(t, p, perm)).collect()
}

fn next(conn: &Connection, sql: &str) -> Result<i64> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

fn permission_by_key(
    conn: &Connection,
    role_id: i64,
    t: ResourceType,
    pattern: &str,
) -> Result<Option<RolePermission>> {
    let row = conn
        .prepare_cached(plan::SELECT_ROLE_PERMISSION_BY_KEY)?
        .query_row(params![role_id, t.as_str(), pattern], permission_row)
        .optional()?;
    row.map(crate::codec::role_permission).transpose()
}

fn insert_permission(conn: &Connection, role_id: i64, grant: &Grant) -> Result<RolePermission> {
    let id = next(conn, plan::NEXT_ROLE_PERMISSION_ID)?;
    conn.execute(
        plan::INSERT_ROLE_PERMISSION,
        params![id, role_id, grant.resource_type.as_str(), grant.pattern, grant.permission.as_str()],
    )?;
    Ok(RolePermission { id, role_id, grant: grant.clone() })
}

fn assign(conn: &Connection, user_id: i64, role_id: i64) -> Result<RoleAssignment> {
    let id = next(conn, plan::NEXT_ROLE_ASSIGNMENT_ID)?;
    conn.execute(plan::INSERT_ROLE_ASSIGNMENT, params![id, user_id, role_id])?;
    Ok(RoleAssignment { id, user_id, role_id })
}

/// The user's personal role in `workspace`, made (and assigned) on first use.
fn personal_role(conn: &Connection, user_id: i64, workspace: &str) -> Result<i64> {
    let name = personal_role_name(user_id);
    let found = conn.prepare_cached(plan::SELECT_ROLE_BY_NAME)?.query_row([workspace, &name], role_row).optional()?;
    let role_id = match found {
        Some((id, ..)) => id,
        None => {
            let id = next(conn, plan::NEXT_ROLE_ID)?;
            conn.execute(plan::INSERT_ROLE, params![id, workspace, name, Option::<String>::None])?;
            id
        }
    };
    if conn
        .prepare_cached(plan::SELECT_ROLE_ASSIGNMENT)?
        .query_row([user_id, role_id], assignment_row)
        .optional()?
        .is_none()
    {
        assign(conn, user_id, role_id)?;
    }
    Ok(role_id)
}

fn set_permission(conn: &Connection, id: i64, permission: Permission) -> Result<RolePermission> {
    let mut p = get_permission(conn, id)?;
    p.grant = Grant::new(p.grant.resource_type, &p.grant.pattern, permission)?;
    conn.execute(plan::UPDATE_ROLE_PERMISSION, params![id, permission.as_str()])?;
    Ok(p)
}

pub(crate) fn change(conn: &Connection, change: RoleChange) -> Result<RoleChanged> {
    Ok(match change {
        RoleChange::Create { workspace, name, description } => {
            if conn
                .prepare_cached(plan::SELECT_ROLE_BY_NAME)?
                .query_row([&workspace, &name], role_row)
                .optional()?
                .is_some()
            {
                return Err(msg::role_taken(&workspace, &name).into());
            }
            let id = next(conn, plan::NEXT_ROLE_ID)?;
            conn.execute(plan::INSERT_ROLE, params![id, workspace, name, description])?;
            RoleChanged::Role(get(conn, id)?)
        }
        RoleChange::Update { role_id, name, description } => {
            let role = get(conn, role_id)?;
            if let Some(name) = name.as_deref().filter(|n| *n != role.name) {
                let taken = conn
                    .prepare_cached(plan::SELECT_ROLE_BY_NAME)?
                    .query_row([&role.workspace, name], role_row)
                    .optional()?;
                if taken.is_some() {
                    return Err(msg::role_name_taken(&role.workspace, name).into());
                }
            }
            conn.execute(plan::UPDATE_ROLE, params![role_id, name, description])?;
            RoleChanged::Role(get(conn, role_id)?)
        }
        RoleChange::Delete { role_id } => {
            get(conn, role_id)?;
            conn.execute(plan::DELETE_ROLE_PERMISSIONS, [role_id])?;
            conn.execute(plan::DELETE_ROLE_ASSIGNMENTS, [role_id])?;
            conn.execute(plan::DELETE_ROLE, [role_id])?;
            RoleChanged::Done
        }
        RoleChange::AddPermission { role_id, grant } => {
            get(conn, role_id)?;
            if permission_by_key(conn, role_id, grant.resource_type, &grant.pattern)?.is_some() {
                return Err(msg::permission_taken(role_id, grant.resource_type.as_str(), &grant.pattern).into());
            }
            RoleChanged::Permission(insert_permission(conn, role_id, &grant)?)
        }
        RoleChange::UpdatePermission { id, permission } => {
            RoleChanged::Permission(set_permission(conn, id, permission)?)
        }
        RoleChange::RemovePermission { id } => {
            get_permission(conn, id)?;
            conn.execute(plan::DELETE_ROLE_PERMISSION, [id])?;
            RoleChanged::Done
        }
        RoleChange::Assign { user_id, role_id } => {
            users::get_by_id(conn, user_id)?;
            get(conn, role_id)?;
            if conn
                .prepare_cached(plan::SELECT_ROLE_ASSIGNMENT)?
                .query_row([user_id, role_id], assignment_row)
                .optional()?
                .is_some()
            {
                return Err(msg::assignment_taken(user_id, role_id).into());
            }
            RoleChanged::Assignment(assign(conn, user_id, role_id)?)
        }
        RoleChange::Unassign { user_id, role_id } => {
            if conn.execute(plan::DELETE_ROLE_ASSIGNMENT, [user_id, role_id])? == 0 {
                return Err(msg::no_assignment(user_id, role_id).into());
            }
            RoleChanged::Done
        }
        RoleChange::GrantPersonal { user_id, workspace, grant, replace } => {
            let user = users::get_by_id(conn, user_id)?;
            let role_id = personal_role(conn, user_id, &workspace)?;
            match permission_by_key(conn, role_id, grant.resource_type, &grant.pattern)? {
                Some(existing) if replace => {
                    RoleChanged::Permission(set_permission(conn, existing.id, grant.permission)?)
                }
                Some(_) => {
                    return Err(msg::grant_taken(&user.username, grant.resource_type.as_str(), &grant.pattern).into());
                }
                None => RoleChanged::Permission(insert_permission(conn, role_id, &grant)?),
            }
        }
        RoleChange::RevokePersonal { user_id, workspace, resource_type, pattern } => {
            let user = users::get_by_id(conn, user_id)?;
            let role = conn
                .prepare_cached(plan::SELECT_ROLE_BY_NAME)?
                .query_row([&workspace, &personal_role_name(user_id)], role_row)
                .optional()?;
            let existing = match role {
                Some((role_id, ..)) => permission_by_key(conn, role_id, resource_type, &pattern)?,
                None => None,
            };
            match existing {
                Some(p) => {
                    conn.execute(plan::DELETE_ROLE_PERMISSION, [p.id])?;
                    RoleChanged::Done
                }
                None => return Err(msg::no_grant(&user.username, resource_type.as_str(), &pattern).into()),
            }
        }
        RoleChange::RenameResource { workspace, resource_type, from, to } => {
            let t = resource_type.as_str();
            conn.execute(plan::DROP_GRANTS_SHADOWED_BY_RENAME, params![workspace, t, from, to])?;
            conn.execute(plan::RENAME_GRANTS, params![workspace, t, from, to])?;
            RoleChanged::Done
        }
        RoleChange::ForgetResource { workspace, resource_type, pattern } => {
            conn.execute(plan::FORGET_GRANTS, params![workspace, resource_type.as_str(), pattern])?;
            RoleChanged::Done
        }
    })
}

/// A deleted user holds no role, and their personal roles go.
pub(crate) fn forget_user(conn: &Connection, user_id: i64) -> Result<()> {
    let name = personal_role_name(user_id);
    conn.execute(plan::DELETE_USER_ASSIGNMENTS, [user_id])?;
    conn.execute(plan::DELETE_PERSONAL_ROLE_PERMISSIONS, [&name])?;
    conn.execute(plan::DELETE_PERSONAL_ROLES, [&name])?;
    Ok(())
}
