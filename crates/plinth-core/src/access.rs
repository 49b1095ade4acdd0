//! Who may do what, in MLflow's basic-auth vocabulary (`mlflow.server.auth`):
//! permissions (`READ`, `USE`, `EDIT`, `MANAGE`, `NO_PERMISSIONS`, `DENY`),
//! roles that belong to a workspace and hold grants on resource patterns
//! (a resource's id or name, or `*`), users assigned to roles, and how a
//! user's grants fold into the one permission that decides a request.
//!
//! The folding rules are MLflow's (`mlflow/server/auth/requirements.py`):
//! - within one key (several roles may grant on it) `DENY` wins, else the
//!   highest permission;
//! - across keys (a sub-resource tier such as `run` first, then its
//!   container, the `experiment`) the first key that holds any grant
//!   decides, so a `DENY` is never rescued by a more permissive ancestor;
//! - a positive grant never resolves below the server's default permission;
//!   where nothing is granted a member of the workspace gets the default and
//!   anyone else nothing;
//! - a workspace-wide `MANAGE` grant (`workspace`, `*`) makes its holder the
//!   workspace's administrator, whom nothing restricts.
//!
//! Plinth adds one resource type of its own, `deployment` (by name). Every
//! type MLflow defines is accepted and stored, so its client works unchanged;
//! the ones Plinth has no resource for (prompts, scorers, gateways, traces, …)
//! decide nothing here.

use crate::{Error, Result};

/// The workspace every resource and role lives in until workspaces are
/// enabled (MLflow's `DEFAULT_WORKSPACE_NAME`).
pub const DEFAULT_WORKSPACE: &str = "default";

/// What a grant allows, lowest to highest (`DENY` is a veto, not a level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Read,
    Use,
    Edit,
    Manage,
    NoPermissions,
    Deny,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::Read,
        Permission::Use,
        Permission::Edit,
        Permission::Manage,
        Permission::NoPermissions,
        Permission::Deny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
            Permission::NoPermissions => "NO_PERMISSIONS",
            Permission::Deny => "DENY",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// A permission named by a client, with MLflow's message when it is not one.
    pub fn parse_named(s: &str) -> Result<Permission> {
        Permission::parse(s).ok_or_else(|| {
            let names: Vec<String> = Permission::ALL.iter().map(|p| format!("'{}'", p.as_str())).collect();
            Error::invalid(format!("Invalid permission '{s}'. Valid permissions are: ({})", names.join(", ")))
        })
    }

    /// MLflow's `PERMISSION_PRIORITY`.
    fn rank(self) -> i8 {
        match self {
            Permission::Deny => -1,
            Permission::NoPermissions => 0,
            Permission::Read => 1,
            Permission::Use => 2,
            Permission::Edit => 3,
            Permission::Manage => 4,
        }
    }

    fn max(self, other: Permission) -> Permission {
        if self.rank() >= other.rank() { self } else { other }
    }

    /// Whether this permission allows `op`.
    pub fn allows(self, op: Op) -> bool {
        let r = self.rank();
        match op {
            Op::Read => r >= 1,
            Op::Use => r >= 2,
            Op::Update => r >= 3,
            Op::Delete | Op::Manage => r >= 4,
        }
    }

    /// A positive permission raised to `floor`; a veto (`DENY`,
    /// `NO_PERMISSIONS`) stays what it is.
    fn floored(self, floor: Permission) -> Permission {
        match self {
            Permission::Deny | Permission::NoPermissions => self,
            _ => self.max(floor),
        }
    }
}

/// What an operation does to a resource (MLflow's `can_read`, `can_use`,
/// `can_update`, `can_delete`, `can_manage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Use,
    Update,
    Delete,
    Manage,
}

macro_rules! resource_types {
    ($($variant:ident => $name:literal, $per_id:literal;)*) => {
        /// The kinds of resource a grant may name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ResourceType { $($variant,)* }

        impl ResourceType {
            pub const ALL: &[ResourceType] = &[$(ResourceType::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(ResourceType::$variant => $name,)* }
            }
            /// Whether a grant may name one resource of this type (else only `*`).
            pub fn per_id(self) -> bool {
                match self { $(ResourceType::$variant => $per_id,)* }
            }
        }
    };
}

resource_types! {
    Workspace => "workspace", false;
    Experiment => "experiment", true;
    RegisteredModel => "registered_model", true;
    Prompt => "prompt", true;
    Scorer => "scorer", true;
    GatewaySecret => "gateway_secret", true;
    GatewayEndpoint => "gateway_endpoint", true;
    GatewayModelDefinition => "gateway_model_definition", true;
    McpServer => "mcp_server", true;
    Run => "run", false;
    Trace => "trace", false;
    Assessment => "assessment", false;
    LoggedModel => "logged_model", false;
    ReviewQueue => "review_queue", false;
    RegisteredModelVersion => "registered_model_version", false;
    PromptVersion => "prompt_version", false;
    ScorerVersion => "scorer_version", false;
    McpServerVersion => "mcp_server_version", false;
    Deployment => "deployment", true;
}

impl ResourceType {
    pub fn parse(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// A type named by a client, with MLflow's message when it is not one.
    pub fn parse_named(s: &str) -> Result<ResourceType> {
        ResourceType::parse(s).ok_or_else(|| {
            let mut names: Vec<&str> = ResourceType::ALL.iter().map(|t| t.as_str()).collect();
            names.sort_unstable();
            let names: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
            Error::invalid(format!("Invalid resource type '{s}'. Valid resource types are: ({})", names.join(", ")))
        })
    }
}

/// `permission` on the resources of `resource_type` that `pattern` names
/// (an id or name, or `*` for all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource_type: ResourceType,
    pub pattern: String,
    pub permission: Permission,
}

impl Grant {
    /// A grant a client asks for, checked as MLflow checks it: the pattern's
    /// grain for the type (sub-resource tiers and `workspace` take only `*`),
    /// and the permissions the type takes (`workspace`: `USE` or `MANAGE`;
    /// resources: `READ`, `USE`, `EDIT`, `MANAGE` or `DENY`).
    pub fn new(resource_type: ResourceType, pattern: &str, permission: Permission) -> Result<Grant> {
        check_pattern(resource_type, pattern)?;
        let t = resource_type.as_str();
        let p = permission.as_str();
        if resource_type == ResourceType::Workspace {
            if !matches!(permission, Permission::Use | Permission::Manage) {
                return Err(Error::invalid(format!(
                    "Invalid permission '{p}' for resource_type='workspace'. Workspace-wide grants accept only: ('MANAGE', 'USE')."
                )));
            }
        } else if permission == Permission::NoPermissions {
            return Err(Error::invalid(format!(
                "Invalid permission '{p}' for resource_type='{t}'. Resource-level grants accept only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE')."
            )));
        }
        Ok(Grant { resource_type, pattern: pattern.to_string(), permission })
    }

    fn applies_to(&self, resource_type: ResourceType, id: &str) -> bool {
        self.resource_type == resource_type && (self.pattern == "*" || (resource_type.per_id() && self.pattern == id))
    }
}

/// The longest resource pattern accepted (a registered model's name is the longest id).
pub const MAX_PATTERN_CHARS: usize = 1024;

/// A grant's pattern: `*`, or one resource's id where the type takes ids.
pub fn check_pattern(resource_type: ResourceType, pattern: &str) -> Result<()> {
    if pattern.is_empty() || pattern.chars().count() > MAX_PATTERN_CHARS || pattern.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "Invalid resource_pattern: it must be '*' or a resource's id, at most {MAX_PATTERN_CHARS} characters."
        )));
    }
    if pattern != "*" && !resource_type.per_id() {
        return Err(Error::invalid(format!(
            "Invalid resource_pattern '{pattern}' for resource_type='{}'. This resource type supports only wildcard ('*') grants.",
            resource_type.as_str()
        )));
    }
    Ok(())
}

/// A named set of grants in one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: i64,
    pub workspace: String,
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<RolePermission>,
}

/// One grant of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePermission {
    pub id: i64,
    pub role_id: i64,
    pub grant: Grant,
}

/// A user holding a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub id: i64,
    pub user_id: i64,
    pub role_id: i64,
}

/// Where a user's own grants live: a role per user and workspace that only
/// the per-user permission API writes (MLflow's `__user_<id>__`).
pub fn personal_role_name(user_id: i64) -> String {
    format!("{PERSONAL_ROLE_PREFIX}{user_id}__")
}

const PERSONAL_ROLE_PREFIX: &str = "__user_";

/// Whether `name` is a user's personal role.
pub fn is_personal_role(name: &str) -> bool {
    name.strip_prefix(PERSONAL_ROLE_PREFIX)
        .and_then(|rest| rest.strip_suffix("__"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// The longest role name and description accepted.
pub const MAX_ROLE_NAME_CHARS: usize = 256;
pub const MAX_ROLE_DESCRIPTION_CHARS: usize = 5000;

/// A role name a client may choose (MLflow's rules: not empty, and not in
/// the reserved `__user_` namespace).
pub fn validate_role_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("Role name cannot be empty."));
    }
    if name.chars().count() > MAX_ROLE_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "Role name must be at most {MAX_ROLE_NAME_CHARS} characters, without control characters."
        )));
    }
    if name.starts_with(PERSONAL_ROLE_PREFIX) {
        return Err(Error::invalid(format!(
            "Role name '{name}' uses the reserved '__user_' prefix, which is held for the per-user permission representation. Choose a different name."
        )));
    }
    Ok(())
}

pub fn validate_role_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_ROLE_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "Role description must be at most {MAX_ROLE_DESCRIPTION_CHARS} characters."
        )));
    }
    Ok(())
}

/// A workspace a client names for a role (whether it exists is the store's to say).
pub fn validate_workspace(workspace: &str) -> Result<()> {
    if workspace.trim().is_empty() {
        return Err(Error::invalid("Workspace cannot be empty."));
    }
    if workspace != DEFAULT_WORKSPACE {
        crate::workspaces::validate_name(workspace)?;
    }
    Ok(())
}

/// Which resources of a type a caller may read: the shape a search takes
/// to keep the others out (in SQL, so paging stays exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    All,
    /// Only these ids (none: nothing).
    Only(Vec<String>),
    /// Every id but these.
    AllBut(Vec<String>),
}

impl Visible {
    pub fn contains(&self, id: &str) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(ids) => ids.iter().any(|i| i == id),
            Visible::AllBut(ids) => !ids.iter().any(|i| i == id),
        }
    }
}

/// One user's grants in one workspace, resolved once per request (or taken
/// from a short cache): every permission question of that request is
/// answered from it without the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// An administrator (of the platform, or of the workspace), or nobody
    /// signed in because authentication is off: nothing is restricted.
    unrestricted: bool,
    /// A member of the workspace: where nothing is granted, it gets `default`.
    member: bool,
    default: Permission,
    grants: Vec<Grant>,
}

impl Access {
    /// Nothing restricted (administrators; authentication off).
    pub fn unrestricted() -> Access {
        Access { unrestricted: true, member: true, default: Permission::Manage, grants: Vec::new() }
    }

    /// A user with `grants` in a workspace whose members get `default` where
    /// nothing is granted. `member` says whether the user belongs to the
    /// workspace without a workspace-wide grant (everyone belongs to the
    /// default one); a workspace-wide `USE` makes a member, `MANAGE` an administrator.
    pub fn of(grants: Vec<Grant>, default: Permission, member: bool) -> Access {
        let wide = |p: Permission| {
            grants.iter().any(|g| g.resource_type == ResourceType::Workspace && g.pattern == "*" && g.permission == p)
        };
        if wide(Permission::Manage) {
            return Access::unrestricted();
        }
        let member = member || wide(Permission::Use);
        Access { unrestricted: false, member, default, grants }
    }

    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// Whether the user belongs to the workspace (and so may see it).
    pub fn is_member(&self) -> bool {
        self.unrestricted || self.member
    }

    /// What the grants on one key say (`None`: nothing there): `DENY` wins,
    /// else the highest.
    fn fold(&self, resource_type: ResourceType, id: Option<&str>) -> Option<Permission> {
        let mut best: Option<Permission> = None;
        for g in &self.grants {
            let applies = match id {
                Some(id) => g.applies_to(resource_type, id),
                None => g.resource_type == resource_type && g.pattern == "*",
            };
            if !applies {
                continue;
            }
            if g.permission == Permission::Deny {
                return Some(Permission::Deny);
            }
            best = Some(best.map_or(g.permission, |b| b.max(g.permission)));
        }
        best
    }

    fn absent(&self) -> Permission {
        if self.member { self.default } else { Permission::NoPermissions }
    }

    fn decide(&self, granted: Option<Permission>) -> Permission {
        match granted {
            Some(p) => p.floored(self.default),
            None => self.absent().floored(self.default),
        }
    }

    /// The permission that governs a resource reached through `keys`: its
    /// own key first, then each container; the first key holding any grant
    /// decides.
    pub fn permission(&self, keys: &[(ResourceType, &str)]) -> Permission {
        if self.unrestricted {
            return Permission::Manage;
        }
        let granted = keys.iter().find_map(|(t, id)| self.fold(*t, Some(id)));
        self.decide(granted)
    }

    /// Whether the caller may create a resource of `resource_type`: members
    /// may, unless a `DENY` on the type's `*` says otherwise.
    pub fn can_create(&self, resource_type: ResourceType) -> bool {
        self.unrestricted || (self.member && self.fold(resource_type, None) != Some(Permission::Deny))
    }

    /// Which resources of `resource_type` the caller may read.
    pub fn visible(&self, resource_type: ResourceType) -> Visible {
        if self.unrestricted {
            return Visible::All;
        }
        let base = self.decide(self.fold(resource_type, None)).allows(Op::Read);
        let mut exceptions: Vec<String> = Vec::new();
        for g in &self.grants {
            if g.resource_type != resource_type || g.pattern == "*" || exceptions.contains(&g.pattern) {
                continue;
            }
            if self.permission(&[(resource_type, &g.pattern)]).allows(Op::Read) != base {
                exceptions.push(g.pattern.clone());
            }
        }
        if base { Visible::AllBut(exceptions) } else { Visible::Only(exceptions) }
    }

    /// Whether a tier of sub-resources (`run`, `logged_model`,
    /// `registered_model_version`) has a grant of its own, which then
    /// governs every resource of the tier instead of its container's.
    pub fn tier(&self, tier: ResourceType) -> Option<Permission> {
        if self.unrestricted {
            return None;
        }
        self.fold(tier, None).map(|p| self.decide(Some(p)))
    }
}

/// A change to roles, their grants or who holds them; the store makes each
/// in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    Create {
        workspace: String,
        name: String,
        description: Option<String>,
    },
    Update {
        role_id: i64,
        name: Option<String>,
        description: Option<String>,
    },
    Delete {
        role_id: i64,
    },
    AddPermission {
        role_id: i64,
        grant: Grant,
    },
    UpdatePermission {
        id: i64,
        permission: Permission,
    },
    RemovePermission {
        id: i64,
    },
    Assign {
        user_id: i64,
        role_id: i64,
    },
    Unassign {
        user_id: i64,
        role_id: i64,
    },
    /// A grant on the user's personal role in `workspace` (made on first
    /// use). With `replace`, a grant already on that key changes; without,
    /// it is an error.
    GrantPersonal {
        user_id: i64,
        workspace: String,
        grant: Grant,
        replace: bool,
    },
    RevokePersonal {
        user_id: i64,
        workspace: String,
        resource_type: ResourceType,
        pattern: String,
    },
    /// A resource renamed: every grant in the workspace that names it follows.
    RenameResource {
        workspace: String,
        resource_type: ResourceType,
        from: String,
        to: String,
    },
    /// A resource deleted for good: every grant in the workspace that names it
    /// goes, so a later resource of the same name inherits nothing.
    ForgetResource {
        workspace: String,
        resource_type: ResourceType,
        pattern: String,
    },
}

/// What a [`RoleChange`] made or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChanged {
    Role(Role),
    Permission(RolePermission),
    Assignment(RoleAssignment),
    Done,
}

/// The sentences of refusals about roles (MLflow's), for every store backend.
pub mod msg {
    use crate::Error;

    pub fn role_taken(workspace: &str, name: &str) -> Error {
        Error::exists(format!("Role (name={name}, workspace={workspace}) already exists."))
    }
    pub fn role_name_taken(workspace: &str, name: &str) -> Error {
        Error::exists(format!("Role with name={name} already exists in workspace={workspace}"))
    }
    pub fn no_role(role_id: i64) -> Error {
        Error::not_found(format!("Role with id={role_id} not found"))
    }
    pub fn permission_taken(role_id: i64, resource_type: &str, pattern: &str) -> Error {
        Error::exists(format!(
            "Role permission (role_id={role_id}, resource_type={resource_type}, resource_pattern={pattern}) already exists."
        ))
    }
    pub fn no_permission(id: i64) -> Error {
        Error::not_found(format!("Role permission with id={id} not found"))
    }
    pub fn assignment_taken(user_id: i64, role_id: i64) -> Error {
        Error::exists(format!("User role assignment (user_id={user_id}, role_id={role_id}) already exists"))
    }
    pub fn no_assignment(user_id: i64, role_id: i64) -> Error {
        Error::not_found(format!("User role assignment (user_id={user_id}, role_id={role_id}) not found"))
    }
    pub fn grant_taken(username: &str, resource_type: &str, id: &str) -> Error {
        Error::exists(format!(
            "Permission for user={username} on resource_type={resource_type}, resource_id={id} already exists."
        ))
    }
    pub fn no_grant(username: &str, resource_type: &str, id: &str) -> Error {
        Error::not_found(format!(
            "Permission for user={username} on resource_type={resource_type}, resource_id={id} not found."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;
    use ResourceType as T;

    fn g(t: ResourceType, pattern: &str, p: Permission) -> Grant {
        Grant { resource_type: t, pattern: pattern.into(), permission: p }
    }

    #[test]
    fn names_round_trip_and_bad_ones_say_what_is_valid() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::parse(t.as_str()), Some(*t));
        }
        let e = Permission::parse_named("WRITE").expect_err("bad");
        assert!(e.to_string().contains("Invalid permission 'WRITE'") && e.to_string().contains("'MANAGE'"));
        assert!(ResourceType::parse_named("table").expect_err("bad").to_string().contains("'experiment'"));
    }

    #[test]
    fn grants_are_checked_as_mlflow_checks_them() {
        assert!(Grant::new(T::Workspace, "*", Use).is_ok());
        assert!(Grant::new(T::Workspace, "*", Read).is_err());
        assert!(Grant::new(T::Workspace, "team", Use).is_err());
        assert!(Grant::new(T::Experiment, "7", Deny).is_ok());
        assert!(Grant::new(T::Experiment, "7", NoPermissions).is_err());
        assert!(Grant::new(T::Run, "abc", Read).is_err());
        assert!(Grant::new(T::Run, "*", Read).is_ok());
        assert!(Grant::new(T::Experiment, "", Read).is_err());
    }

    #[test]
    fn folding_follows_mlflow() {
        // A member with READ by default.
        let a = Access::of(
            vec![g(T::Experiment, "1", Edit), g(T::Experiment, "1", Read), g(T::Experiment, "2", Deny)],
            Read,
            true,
        );
        assert_eq!(a.permission(&[(T::Experiment, "1")]), Edit, "the highest of several roles");
        assert_eq!(a.permission(&[(T::Experiment, "2")]), Deny);
        assert_eq!(a.permission(&[(T::Experiment, "3")]), Read, "the default where nothing is granted");
        // DENY wins within a key, whatever else is granted there.
        let a = Access::of(vec![g(T::Experiment, "*", Manage), g(T::Experiment, "5", Deny)], Read, true);
        assert_eq!(a.permission(&[(T::Experiment, "5")]), Deny);
        assert_eq!(a.permission(&[(T::Experiment, "6")]), Manage);
        // The first key with a grant decides: a run-tier DENY is not rescued by the experiment.
        let a = Access::of(vec![g(T::Run, "*", Deny), g(T::Experiment, "1", Manage)], Read, true);
        assert_eq!(a.permission(&[(T::Run, "r"), (T::Experiment, "1")]), Deny);
        assert_eq!(a.permission(&[(T::Experiment, "1")]), Manage);
        // A positive grant never falls below the default.
        let a = Access::of(vec![g(T::Experiment, "1", Read)], Edit, true);
        assert_eq!(a.permission(&[(T::Experiment, "1")]), Edit);
        // Outsiders get nothing where nothing is granted; a workspace-wide USE makes a member.
        let a = Access::of(vec![g(T::Experiment, "1", Read)], Read, false);
        assert_eq!(a.permission(&[(T::Experiment, "2")]), NoPermissions);
        assert!(!a.can_create(T::Experiment));
        let a = Access::of(vec![g(T::Workspace, "*", Use)], Read, false);
        assert_eq!(a.permission(&[(T::Experiment, "2")]), Read);
        assert!(a.can_create(T::Experiment));
        // A workspace-wide MANAGE is the workspace's administrator: even DENY yields.
        let a = Access::of(vec![g(T::Workspace, "*", Manage), g(T::Experiment, "1", Deny)], Read, false);
        assert_eq!(a.permission(&[(T::Experiment, "1")]), Manage);
        // A DENY on the type's `*` forbids creating it.
        let a = Access::of(vec![g(T::RegisteredModel, "*", Deny)], Read, true);
        assert!(!a.can_create(T::RegisteredModel) && a.can_create(T::Experiment));
    }

    #[test]
    fn visibility_is_exact_for_searches() {
        let a = Access::of(vec![g(T::Experiment, "2", Deny), g(T::Experiment, "3", Edit)], Read, true);
        assert_eq!(a.visible(T::Experiment), Visible::AllBut(vec!["2".into()]));
        let a = Access::of(vec![g(T::Experiment, "2", Deny), g(T::Experiment, "3", Edit)], NoPermissions, true);
        assert_eq!(a.visible(T::Experiment), Visible::Only(vec!["3".into()]));
        let a = Access::of(vec![g(T::Experiment, "*", Deny), g(T::Experiment, "3", Edit)], Read, true);
        assert_eq!(a.visible(T::Experiment), Visible::Only(vec![]), "a DENY on * wins on every key");
        assert_eq!(Access::unrestricted().visible(T::RegisteredModel), Visible::All);
        assert!(Visible::AllBut(vec!["a".into()]).contains("b") && !Visible::Only(vec![]).contains("a"));
    }

    #[test]
    fn personal_roles_are_reserved() {
        assert_eq!(personal_role_name(12), "__user_12__");
        assert!(is_personal_role("__user_12__") && !is_personal_role("__user_x__") && !is_personal_role("ml"));
        assert!(validate_role_name("__user_anything").is_err());
        assert!(validate_role_name("  ").is_err());
        assert!(validate_role_name("recs-team").is_ok());
    }
}
