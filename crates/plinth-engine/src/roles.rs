//! Roles and grants: MLflow's RBAC use cases (roles per workspace, their
//! grants, who holds them, and per-user grants on one resource). Each change
//! is audited and drops this process's cached grants.

use plinth_core::access::{
    Grant, Op, Permission, ResourceType, Role, RoleAssignment, RoleChange, RoleChanged, RolePermission,
    validate_role_description, validate_role_name, validate_workspace,
};
use plinth_core::audit::{Action, resource};
use plinth_core::auth::User;
use plinth_store::RoleFilter;

use crate::{Error, Platform, Result};

/// One row of a user's permissions: a grant and the role it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    pub role_id: i64,
    pub role_name: String,
    pub workspace: String,
    pub grant: Grant,
}

/// A user's effective permission on one resource (`users/permissions/get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub permission: Permission,
    /// MLflow's `allowed`: the permission carries `can_use`.
    pub allowed: bool,
}

fn internal(what: &str, got: &RoleChanged) -> Error {
    Error::Internal(format!("the store answered {what} with {got:?}"))
}

fn role_of(changed: RoleChanged) -> Result<Role> {
    match changed {
        RoleChanged::Role(r) => Ok(r),
        other => Err(internal("a role change", &other)),
    }
}

fn permission_of(changed: RoleChanged) -> Result<RolePermission> {
    match changed {
        RoleChanged::Permission(p) => Ok(p),
        other => Err(internal("a permission change", &other)),
    }
}

/// How the audit trail writes a grant.
fn describe(g: &Grant) -> String {
    format!("{} {} on {}", g.permission.as_str(), g.resource_type.as_str(), g.pattern)
}

impl Platform {
    async fn change_roles(&self, change: RoleChange) -> Result<RoleChanged> {
        let changed = self.store.change_roles(change).await;
        self.access_control.forget_grants();
        Ok(changed?)
    }

    pub async fn create_role(&self, workspace: &str, name: &str, description: Option<String>) -> Result<Role> {
        validate_workspace(workspace)?;
        validate_role_name(name)?;
        if let Some(d) = &description {
            validate_role_description(d)?;
        }
        self.need_admin_of(workspace).await?;
        let change = RoleChange::Create { workspace: workspace.to_string(), name: name.to_string(), description };
        let role = role_of(self.change_roles(change).await?)?;
        self.record(Action::RoleCreate, resource::role(role.id), None, Some(role.name.clone())).await?;
        Ok(role)
    }

    pub async fn get_role(&self, role_id: i64) -> Result<Role> {
        self.need_workspace_admin_or_holder(role_id).await?;
        Ok(self.store.get_role(role_id).await?)
    }

    /// A workspace's roles, or (administrators) every role.
    pub async fn list_roles(&self, workspace: Option<&str>) -> Result<Vec<Role>> {
        let filter = match workspace {
            Some(w) => {
                self.need_admin_of(w).await?;
                RoleFilter::Workspace(w.to_string())
            }
            None => {
                self.need_workspace_admin().await?;
                RoleFilter::All
            }
        };
        Ok(self.store.list_roles(filter).await?)
    }

    pub async fn update_role(&self, role_id: i64, name: Option<String>, description: Option<String>) -> Result<Role> {
        if name.is_none() && description.is_none() {
            return Err(plinth_core::Error::invalid(
                "At least one of 'name' or 'description' must be provided to update a role.",
            )
            .into());
        }
        if let Some(n) = &name {
            validate_role_name(n)?;
        }
        if let Some(d) = &description {
            validate_role_description(d)?;
        }
        let before = self.need_admin_of_role(role_id).await?;
        let role = role_of(self.change_roles(RoleChange::Update { role_id, name, description }).await?)?;
        self.record(Action::RoleUpdate, resource::role(role_id), Some(before.name), Some(role.name.clone())).await?;
        Ok(role)
    }

    pub async fn delete_role(&self, role_id: i64) -> Result<()> {
        let before = self.need_admin_of_role(role_id).await?;
        self.change_roles(RoleChange::Delete { role_id }).await?;
        self.record(Action::RoleDelete, resource::role(role_id), Some(before.name), None).await
    }

    pub async fn add_role_permission(&self, role_id: i64, grant: Grant) -> Result<RolePermission> {
        self.need_admin_of_role(role_id).await?;
        let after = describe(&grant);
        let p = permission_of(self.change_roles(RoleChange::AddPermission { role_id, grant }).await?)?;
        self.record(Action::RolePermissionAdd, resource::role(role_id), None, Some(after)).await?;
        Ok(p)
    }

    pub async fn update_role_permission(&self, id: i64, permission: Permission) -> Result<RolePermission> {
        let before = self.store.get_role_permission(id).await?;
        self.need_admin_of_role(before.role_id).await?;
        let p = permission_of(self.change_roles(RoleChange::UpdatePermission { id, permission }).await?)?;
        let (b, a) = (describe(&before.grant), describe(&p.grant));
        self.record(Action::RolePermissionUpdate, resource::role(p.role_id), Some(b), Some(a)).await?;
        Ok(p)
    }

    pub async fn remove_role_permission(&self, id: i64) -> Result<()> {
        let before = self.store.get_role_permission(id).await?;
        self.need_admin_of_role(before.role_id).await?;
        self.change_roles(RoleChange::RemovePermission { id }).await?;
        let b = describe(&before.grant);
        self.record(Action::RolePermissionRemove, resource::role(before.role_id), Some(b), None).await
    }

    pub async fn list_role_permissions(&self, role_id: i64) -> Result<Vec<RolePermission>> {
        Ok(self.get_role(role_id).await?.permissions)
    }

    pub async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment> {
        self.need_admin_of_role(role_id).await?;
        let user = self.store.get_user(username).await?;
        let a = match self.change_roles(RoleChange::Assign { user_id: user.id, role_id }).await? {
            RoleChanged::Assignment(a) => a,
            other => return Err(internal("an assignment", &other)),
        };
        self.record(Action::RoleAssign, resource::role(role_id), None, Some(user.username)).await?;
        Ok(a)
    }

    pub async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()> {
        self.need_admin_of_role(role_id).await?;
        let user = self.store.get_user(username).await?;
        self.change_roles(RoleChange::Unassign { user_id: user.id, role_id }).await?;
        self.record(Action::RoleUnassign, resource::role(role_id), Some(user.username), None).await
    }

    /// The roles a user holds: their own, or (administrators) anyone's.
    pub async fn list_user_roles(&self, username: &str) -> Result<Vec<Role>> {
        let user = self.self_or_admin(username).await?;
        Ok(self.store.list_roles(RoleFilter::User(user.id)).await?)
    }

    pub async fn list_role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        self.need_admin_of_role(role_id).await?;
        Ok(self.store.list_role_users(role_id).await?)
    }

    /// Every grant a user holds through any role, and whether they are an administrator.
    pub async fn list_user_grants(&self, username: &str) -> Result<(bool, Vec<HeldGrant>)> {
        let user = self.self_or_admin(username).await?;
        let roles = self.store.list_roles(RoleFilter::User(user.id)).await?;
        let held = roles
            .into_iter()
            .flat_map(|r| {
                let (id, name, ws) = (r.id, r.name, r.workspace);
                r.permissions.into_iter().map(move |p| HeldGrant {
                    role_id: id,
                    role_name: name.clone(),
                    workspace: ws.clone(),
                    grant: p.grant,
                })
            })
            .collect();
        Ok((user.is_admin, held))
    }

    /// Grants `username` a permission on one resource (their personal role).
    /// Administrators may, and so may whoever may manage that resource.
    pub async fn grant_permission(
        &self,
        username: &str,
        resource_type: ResourceType,
        id: &str,
        permission: Permission,
    ) -> Result<()> {
        let grant = self.personal_grant(resource_type, id, permission)?;
        let user = self.store.get_user(username).await?;
        self.need_manage(resource_type, id).await?;
        let change = RoleChange::GrantPersonal {
            user_id: user.id,
            workspace: self.actor.workspace.to_string(),
            grant: grant.clone(),
            replace: false,
        };
        self.change_roles(change).await?;
        let at = resource::grant(&user.username, resource_type.as_str(), id);
        self.record(Action::PermissionGrant, at, None, Some(permission.as_str().into())).await
    }

    pub async fn revoke_permission(&self, username: &str, resource_type: ResourceType, id: &str) -> Result<()> {
        reject_workspace(resource_type)?;
        let user = self.store.get_user(username).await?;
        self.need_manage(resource_type, id).await?;
        let change = RoleChange::RevokePersonal {
            user_id: user.id,
            workspace: self.actor.workspace.to_string(),
            resource_type,
            pattern: id.to_string(),
        };
        self.change_roles(change).await?;
        let at = resource::grant(&user.username, resource_type.as_str(), id);
        self.record(Action::PermissionRevoke, at, None, None).await
    }

    /// A user's effective permission on one resource, resolved as a request
    /// of theirs would be. Asked by the user themself, an administrator, or
    /// whoever may manage the resource.
    pub async fn effective_permission(
        &self,
        username: &str,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<Effective> {
        reject_workspace(resource_type)?;
        let user = self.store.get_user(username).await?;
        if user.id != self.actor.principal.user_id {
            self.need_manage(resource_type, id).await?;
        }
        let permission = if user.is_admin {
            Permission::Manage
        } else {
            self.access_of(user.id, &self.actor.workspace).await?.permission(&[(resource_type, id)])
        };
        Ok(Effective { permission, allowed: permission.allows(Op::Use) })
    }

    /// The per-user grant a client asks for (`workspace` is not one).
    fn personal_grant(&self, resource_type: ResourceType, id: &str, permission: Permission) -> Result<Grant> {
        reject_workspace(resource_type)?;
        Ok(Grant::new(resource_type, id, permission)?)
    }

    /// Administrators, or whoever holds `MANAGE` on the resource.
    async fn need_manage(&self, resource_type: ResourceType, id: &str) -> Result<()> {
        let access = self.access().await?;
        if access.is_unrestricted() || access.permission(&[(resource_type, id)]).allows(Op::Manage) {
            return Ok(());
        }
        Err(plinth_core::Error::denied().into())
    }

    /// Administrators, and the administrators of `workspace` (a
    /// workspace-wide `MANAGE` there), which must exist.
    async fn need_admin_of(&self, workspace: &str) -> Result<()> {
        self.store.get_workspace(workspace).await?;
        let principal = &self.actor.principal;
        if principal.is_admin || principal.user_id <= 0 {
            return Ok(());
        }
        if self.access_of(principal.user_id, workspace).await?.is_unrestricted() {
            return Ok(());
        }
        Err(plinth_core::Error::PermissionDenied("Permission denied: administrators only".into()).into())
    }

    /// A role, for an administrator of its workspace.
    async fn need_admin_of_role(&self, role_id: i64) -> Result<Role> {
        let role = self.store.get_role(role_id).await?;
        self.need_admin_of(&role.workspace).await?;
        Ok(role)
    }

    async fn need_workspace_admin_or_holder(&self, role_id: i64) -> Result<()> {
        let role = self.store.get_role(role_id).await?;
        if self.need_admin_of(&role.workspace).await.is_ok() {
            return Ok(());
        }
        let me = self.actor.principal.user_id;
        let holders = self.store.list_role_users(role_id).await?;
        if holders.iter().any(|a| a.user_id == me) {
            return Ok(());
        }
        Err(plinth_core::Error::denied().into())
    }

    async fn self_or_admin(&self, username: &str) -> Result<User> {
        let principal = &self.actor.principal;
        if !principal.is_admin && principal.username != username {
            return Err(plinth_core::Error::denied().into());
        }
        Ok(self.store.get_user(username).await?)
    }

    /// The creator of a resource may manage it (MLflow grants `MANAGE` the
    /// same way); nothing to do when nobody is signed in.
    pub(crate) async fn grant_creator(&self, resource_type: ResourceType, id: &str) -> Result<()> {
        let user_id = self.actor.principal.user_id;
        if user_id <= 0 {
            return Ok(());
        }
        let grant = Grant::new(resource_type, id, Permission::Manage)?;
        let change =
            RoleChange::GrantPersonal { user_id, workspace: self.actor.workspace.to_string(), grant, replace: true };
        self.change_roles(change).await?;
        Ok(())
    }

    /// A resource renamed: the grants that name it follow.
    pub(crate) async fn rename_grants(&self, resource_type: ResourceType, from: &str, to: &str) -> Result<()> {
        let change = RoleChange::RenameResource {
            workspace: self.actor.workspace.to_string(),
            resource_type,
            from: from.to_string(),
            to: to.to_string(),
        };
        self.change_roles(change).await?;
        Ok(())
    }

    /// A resource deleted for good: no grant names it any more.
    pub(crate) async fn forget_grants(&self, resource_type: ResourceType, pattern: &str) -> Result<()> {
        let change = RoleChange::ForgetResource {
            workspace: self.actor.workspace.to_string(),
            resource_type,
            pattern: pattern.into(),
        };
        self.change_roles(change).await?;
        Ok(())
    }
}

fn reject_workspace(resource_type: ResourceType) -> Result<()> {
    if resource_type == ResourceType::Workspace {
        return Err(plinth_core::Error::invalid(
            "resource_type 'workspace' is not supported by the per-user permission convenience APIs. Use a role's permissions for workspace-wide grants.",
        )
        .into());
    }
    Ok(())
}
