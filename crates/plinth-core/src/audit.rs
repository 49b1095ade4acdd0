//! The audit trail: one append-only record per state change — who, when,
//! what, on which resource, the value before and after where a change moves
//! one (an alias, a stage, a deployment's traffic), and the request it came
//! with. Nothing secret enters a record: a token is named by its public id,
//! a password change only by its action.

use std::sync::Arc;

use crate::auth::Principal;
use crate::{Error, Result};

/// How the names of [`Actor::system`] actors start.
pub const SYSTEM_PREFIX: &str = "plinth:";

/// Who acts, and in which request: what a use case records a change as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal: Arc<Principal>,
    /// The request's `X-Request-Id` (or the id the server gave it).
    pub request_id: Option<String>,
    /// The workspace it works in (the request's `X-MLFLOW-WORKSPACE`; `default` when none).
    pub workspace: Arc<str>,
}

impl Actor {
    /// Changes made by Plinth itself or by a local command: the embedded
    /// single-user mode's anonymous administrator, with no request.
    pub fn local() -> Actor {
        Actor { principal: Arc::new(Principal::anonymous()), request_id: None, workspace: default_workspace() }
    }

    /// Plinth itself doing something on its own: `plinth:<what>` ("plinth:job
    /// job-1a2b", "plinth:first-admin"). No username contains ':', so no user
    /// is ever mistaken for it; usage counts no such actor as a user.
    pub fn system(what: &str) -> Actor {
        let principal = Principal {
            user_id: 0,
            username: format!("{SYSTEM_PREFIX}{what}"),
            is_admin: true,
            via: crate::auth::Via::Anonymous,
        };
        Actor { principal: Arc::new(principal), request_id: None, workspace: default_workspace() }
    }

    /// The actor of a request: its principal (the anonymous administrator
    /// when authentication is off) and the client's `X-Request-Id` if it is
    /// acceptable, else a new id.
    pub fn of_request(principal: Option<Arc<Principal>>, request_id: Option<&str>) -> Actor {
        let request_id = match request_id {
            Some(id) if crate::ids::is_acceptable_request_id(id) => id.to_string(),
            _ => crate::ids::new_request_id(),
        };
        Actor {
            principal: principal.unwrap_or_else(|| Arc::new(Principal::anonymous())),
            request_id: Some(request_id),
            workspace: default_workspace(),
        }
    }

    /// The same actor working in `workspace`.
    pub fn in_workspace(mut self, workspace: &str) -> Actor {
        self.workspace = workspace.into();
        self
    }

    /// How the trail names it: "alice", "alice (token t1a2…)", "anonymous".
    pub fn name(&self) -> String {
        self.principal.actor()
    }
}

fn default_workspace() -> Arc<str> {
    static DEFAULT: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| crate::access::DEFAULT_WORKSPACE.into()).clone()
}

macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        /// What was done. Stored and answered by its dotted name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action { $($variant,)* }

        impl Action {
            pub const ALL: &[Action] = &[$(Action::$variant,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }
            pub fn parse(s: &str) -> Option<Action> {
                match s { $($name => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    ExperimentCreate => "experiment.create",
    ExperimentRename => "experiment.rename",
    ExperimentDelete => "experiment.delete",
    ExperimentRestore => "experiment.restore",
    ExperimentSetTag => "experiment.set_tag",
    ExperimentDeleteTag => "experiment.delete_tag",
    RunCreate => "run.create",
    RunUpdate => "run.update",
    RunDelete => "run.delete",
    RunRestore => "run.restore",
    LoggedModelCreate => "logged_model.create",
    LoggedModelFinalize => "logged_model.finalize",
    LoggedModelDelete => "logged_model.delete",
    ArtifactDelete => "artifact.delete",
    ModelCreate => "model.create",
    ModelRename => "model.rename",
    ModelUpdate => "model.update",
    ModelDelete => "model.delete",
    ModelSetTag => "model.set_tag",
    ModelDeleteTag => "model.delete_tag",
    VersionCreate => "version.create",
    VersionUpdate => "version.update",
    VersionDelete => "version.delete",
    VersionStage => "version.stage",
    VersionSetTag => "version.set_tag",
    VersionDeleteTag => "version.delete_tag",
    AliasSet => "alias.set",
    AliasDelete => "alias.delete",
    DeploymentCreate => "deployment.create",
    DeploymentUpdate => "deployment.update",
    DeploymentDelete => "deployment.delete",
    JobSubmit => "job.submit",
    JobCancel => "job.cancel",
    UserCreate => "user.create",
    UserPassword => "user.password",
    UserAdmin => "user.admin",
    UserDelete => "user.delete",
    TokenCreate => "token.create",
    TokenRevoke => "token.revoke",
    RoleCreate => "role.create",
    RoleUpdate => "role.update",
    RoleDelete => "role.delete",
    RolePermissionAdd => "role.permission_add",
    RolePermissionUpdate => "role.permission_update",
    RolePermissionRemove => "role.permission_remove",
    RoleAssign => "role.assign",
    RoleUnassign => "role.unassign",
    PermissionGrant => "permission.grant",
    PermissionRevoke => "permission.revoke",
    WorkspaceCreate => "workspace.create",
    WorkspaceUpdate => "workspace.update",
    WorkspaceDelete => "workspace.delete",
    PolicyAdvance => "policy.advance",
    PolicyStop => "policy.stop",
    PolicyPromote => "policy.promote",
    PolicyWin => "policy.win",
}

impl Action {
    /// A deployment policy's decision (the decision log).
    pub fn is_policy_decision(self) -> bool {
        matches!(self, Action::PolicyAdvance | Action::PolicyStop | Action::PolicyPromote | Action::PolicyWin)
    }
}

/// One change, as recorded. `seq` is the trail's order (given by the store,
/// increasing); `time` is milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub time: i64,
    pub actor: String,
    pub action: Action,
    /// A path naming what changed: `experiments/3`, `runs/<id>`,
    /// `models/<name>`, `models/<name>/versions/4`, `models/<name>/aliases/champion`,
    /// `deployments/<name>`, `jobs/<id>`, `users/<name>`, `tokens/<id>`,
    /// `artifacts/<path>`.
    pub resource: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub request_id: Option<String>,
    /// The workspace the change was made in.
    pub workspace: String,
    /// Why, where the actor is Plinth deciding on its own (a policy's figures).
    pub detail: Option<String>,
}

/// Where the resource paths of each kind start.
pub mod resource {
    pub fn experiment(id: &str) -> String {
        format!("experiments/{id}")
    }
    pub fn run(id: &str) -> String {
        format!("runs/{id}")
    }
    pub fn logged_model(id: &str) -> String {
        format!("logged-models/{id}")
    }
    pub fn artifact(path: &str) -> String {
        format!("artifacts/{path}")
    }
    pub fn model(name: &str) -> String {
        format!("models/{name}")
    }
    pub fn version(name: &str, version: impl std::fmt::Display) -> String {
        format!("models/{name}/versions/{version}")
    }
    pub fn alias(name: &str, alias: &str) -> String {
        format!("models/{name}/aliases/{alias}")
    }
    pub fn deployment(name: &str) -> String {
        format!("deployments/{name}")
    }
    pub fn job(id: &str) -> String {
        format!("jobs/{id}")
    }
    pub fn user(name: &str) -> String {
        format!("users/{name}")
    }
    pub fn role(id: i64) -> String {
        format!("roles/{id}")
    }
    /// A user's own grant on one resource: `grants/<user>/<type>/<id>`.
    pub fn grant(username: &str, resource_type: &str, id: &str) -> String {
        format!("grants/{username}/{resource_type}/{id}")
    }
    pub fn token(id: &str) -> String {
        format!("tokens/{id}")
    }
    pub fn workspace(name: &str) -> String {
        format!("workspaces/{name}")
    }
}

/// The most records one query answers.
pub const MAX_AUDIT_RESULTS: i64 = 1000;

/// A query of the trail, newest first. `resource` matches that path and
/// every path below it (`models/m` finds `models/m/aliases/champion`, not
/// `models/mm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// A user's records by any credential ("bob" finds "bob (token t1…)"), or one
    /// credential's ("bob (token t1…)").
    pub actor: Option<String>,
    pub action: Option<Action>,
    pub resource: Option<String>,
    /// Records at or after this time (ms).
    pub since: Option<i64>,
    /// Records before this time (ms).
    pub until: Option<i64>,
    /// Records older than this `seq` (the previous page's last).
    pub before_seq: Option<i64>,
    /// Records of one workspace (`None`: every workspace's).
    pub workspace: Option<String>,
    pub max_results: i64,
}

impl AuditQuery {
    pub fn check(&self) -> Result<()> {
        if self.max_results < 1 || self.max_results > MAX_AUDIT_RESULTS {
            return Err(Error::invalid(format!(
                "Invalid value {} for parameter 'max_results': give 1 to {MAX_AUDIT_RESULTS}",
                self.max_results
            )));
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            return Err(Error::invalid(format!("Invalid time range: 'since' ({since}) is after 'until' ({until})")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
        assert_eq!(Action::parse("alias.move"), None);
    }

    #[test]
    fn queries_are_checked() {
        let q = AuditQuery { max_results: 0, ..Default::default() };
        assert!(q.check().is_err());
        let q = AuditQuery { max_results: 10, since: Some(5), until: Some(4), ..Default::default() };
        assert!(q.check().is_err());
        assert!(AuditQuery { max_results: 10, ..Default::default() }.check().is_ok());
    }
}
