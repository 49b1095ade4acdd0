//! MLflow's RBAC API (`/api/3.0/mlflow/…`, what
//! `mlflow.server.get_app_client("basic-auth", …)` calls): roles per
//! workspace, their permissions, who holds them, and per-user grants on one
//! resource. The answers are MLflow's `Role`, `RolePermission` and
//! `UserRoleAssignment` JSON; who may do what is the engine's to decide.

use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use plinth_core::access::{Grant, Permission, ResourceType, Role, RoleAssignment, RolePermission};
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};

/// Under `/api/3.0/mlflow` and `/ajax-api/3.0/mlflow`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/roles/create", post(create_role))
        .route("/roles/get", get(get_role))
        .route("/roles/list", get(list_roles))
        .route("/roles/update", patch(update_role))
        .route("/roles/delete", delete(delete_role))
        .route("/roles/permissions/add", post(add_permission))
        .route("/roles/permissions/remove", delete(remove_permission))
        .route("/roles/permissions/list", get(list_permissions))
        .route("/roles/permissions/update", patch(update_permission))
        .route("/roles/assign", post(assign))
        .route("/roles/unassign", delete(unassign))
        .route("/roles/users/list", get(role_users))
        .route("/users/roles/list", get(user_roles))
        .route("/users/permissions/grant", post(grant))
        .route("/users/permissions/revoke", post(revoke))
        .route("/users/permissions/get", get(effective))
        .route("/users/permissions/list", get(user_permissions))
        .route("/users/current/permissions", get(current_permissions))
}

fn permission_json(p: &RolePermission) -> Value {
    json!({
        "id": p.id,
        "role_id": p.role_id,
        "resource_type": p.grant.resource_type.as_str(),
        "resource_pattern": p.grant.pattern,
        "permission": p.grant.permission.as_str(),
    })
}

fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "workspace": r.workspace,
        "description": r.description,
        "permissions": r.permissions.iter().map(permission_json).collect::<Vec<_>>(),
    })
}

fn assignment_json(a: &RoleAssignment) -> Value {
    json!({"id": a.id, "user_id": a.user_id, "role_id": a.role_id})
}

fn resource_type(a: &Args) -> Result<ResourceType, ApiError> {
    Ok(ResourceType::parse_named(&a.req_str("resource_type")?)?)
}

fn permission(a: &Args) -> Result<Permission, ApiError> {
    Ok(Permission::parse_named(&a.req_str("permission")?)?)
}

/// An optional string that, when given, must be a string (or null).
fn opt_text(a: &Args, key: &str, what: &str) -> Result<Option<String>, ApiError> {
    a.opt_str(key).map_err(|_| ApiError::invalid(format!("{what} must be a string or null.")))
}

async fn create_role(s: Api, a: Args) -> ApiResult {
    let name = a.opt_str("name")?.unwrap_or_default();
    let workspace = a.opt_str("workspace")?.unwrap_or_default();
    let description = opt_text(&a, "description", "Role description")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid("Role name cannot be empty."));
    }
    let role = s.platform.create_role(&workspace, &name, description).await?;
    Ok(Json(json!({"role": role_json(&role)})))
}

async fn get_role(s: Api, a: Args) -> ApiResult {
    let role = s.platform.get_role(a.req_i64("role_id")?).await?;
    Ok(Json(json!({"role": role_json(&role)})))
}

async fn list_roles(s: Api, a: Args) -> ApiResult {
    let workspaces = a.str_list("workspace")?;
    if workspaces.iter().any(|w| w.trim().is_empty()) {
        return Err(ApiError::invalid("Parameter 'workspace' must be a non-empty string when provided."));
    }
    let roles = match workspaces.as_slice() {
        [] => s.platform.list_roles(None).await?,
        many => {
            let mut out = Vec::new();
            for w in many {
                out.extend(s.platform.list_roles(Some(w)).await?);
            }
            out
        }
    };
    Ok(Json(json!({"roles": roles.iter().map(role_json).collect::<Vec<_>>()})))
}

async fn update_role(s: Api, a: Args) -> ApiResult {
    let role_id = a.req_i64("role_id")?;
    let name = opt_text(&a, "name", "Role name")?;
    let description = opt_text(&a, "description", "Role description")?;
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("Role name cannot be empty."));
    }
    let role = s.platform.update_role(role_id, name, description).await?;
    Ok(Json(json!({"role": role_json(&role)})))
}

async fn delete_role(s: Api, a: Args) -> ApiResult {
    s.platform.delete_role(a.req_i64("role_id")?).await?;
    Ok(Json(json!({})))
}

async fn add_permission(s: Api, a: Args) -> ApiResult {
    let role_id = a.req_i64("role_id")?;
    let t = resource_type(&a)?;
    let pattern = a.req_str("resource_pattern")?;
    let grant = Grant::new(t, &pattern, permission(&a)?)?;
    let p = s.platform.add_role_permission(role_id, grant).await?;
    Ok(Json(json!({"role_permission": permission_json(&p)})))
}

async fn remove_permission(s: Api, a: Args) -> ApiResult {
    s.platform.remove_role_permission(a.req_i64("role_permission_id")?).await?;
    Ok(Json(json!({})))
}

async fn list_permissions(s: Api, a: Args) -> ApiResult {
    let permissions = s.platform.list_role_permissions(a.req_i64("role_id")?).await?;
    Ok(Json(json!({"role_permissions": permissions.iter().map(permission_json).collect::<Vec<_>>()})))
}

async fn update_permission(s: Api, a: Args) -> ApiResult {
    let id = a.req_i64("role_permission_id")?;
    let p = s.platform.update_role_permission(id, permission(&a)?).await?;
    Ok(Json(json!({"role_permission": permission_json(&p)})))
}

async fn assign(s: Api, a: Args) -> ApiResult {
    let assignment = s.platform.assign_role(&a.req_str("username")?, a.req_i64("role_id")?).await?;
    Ok(Json(json!({"assignment": assignment_json(&assignment)})))
}

async fn unassign(s: Api, a: Args) -> ApiResult {
    s.platform.unassign_role(&a.req_str("username")?, a.req_i64("role_id")?).await?;
    Ok(Json(json!({})))
}

async fn role_users(s: Api, a: Args) -> ApiResult {
    let assignments = s.platform.list_role_users(a.req_i64("role_id")?).await?;
    Ok(Json(json!({"assignments": assignments.iter().map(assignment_json).collect::<Vec<_>>()})))
}

async fn user_roles(s: Api, a: Args) -> ApiResult {
    let roles = s.platform.list_user_roles(&a.req_str("username")?).await?;
    Ok(Json(json!({"roles": roles.iter().map(role_json).collect::<Vec<_>>()})))
}

async fn grant(s: Api, a: Args) -> ApiResult {
    let username = a.req_str("username")?;
    let t = resource_type(&a)?;
    let id = a.req_str("resource_id")?;
    s.platform.grant_permission(&username, t, &id, permission(&a)?).await?;
    Ok(Json(json!({})))
}

async fn revoke(s: Api, a: Args) -> ApiResult {
    let username = a.req_str("username")?;
    let t = resource_type(&a)?;
    s.platform.revoke_permission(&username, t, &a.req_str("resource_id")?).await?;
    Ok(Json(json!({})))
}

async fn effective(s: Api, a: Args) -> ApiResult {
    let username = a.req_str("username")?;
    let t = resource_type(&a)?;
    let e = s.platform.effective_permission(&username, t, &a.req_str("resource_id")?).await?;
    Ok(Json(json!({"allowed": e.allowed, "permission": e.permission.as_str()})))
}

async fn permissions_of(s: &Api, username: &str) -> ApiResult {
    let (is_admin, held) = s.platform.list_user_grants(username).await?;
    let rows: Vec<Value> = held
        .iter()
        .map(|h| {
            json!({
                "role_id": h.role_id,
                "role_name": h.role_name,
                "workspace": h.workspace,
                "resource_type": h.grant.resource_type.as_str(),
                "resource_pattern": h.grant.pattern,
                "permission": h.grant.permission.as_str(),
            })
        })
        .collect();
    Ok(Json(json!({"is_admin": is_admin, "permissions": rows})))
}

async fn user_permissions(s: Api, a: Args) -> ApiResult {
    let username = a.req_str("username")?;
    permissions_of(&s, &username).await
}

async fn current_permissions(s: Api) -> ApiResult {
    if s.platform.actor().principal.user_id <= 0 {
        // Authentication is off: the anonymous caller, whom nothing restricts.
        return Ok(Json(json!({"is_admin": true, "permissions": []})));
    }
    let username = s.platform.actor().principal.username.clone();
    permissions_of(&s, &username).await
}
