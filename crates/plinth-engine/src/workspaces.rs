//! Workspaces: MLflow's workspace API as use cases. Administrators create,
//! change and delete them; a user sees `default` and the workspaces they are
//! a member of — hold a role in, or hold a workspace-wide grant of their own
//! (administrators: all). One a caller may not see does not exist
//! for them, in every answer and in the header that names it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plinth_core::audit::{Action, resource};
use plinth_core::workspaces::{
    self, DEFAULT_WORKSPACE, DeletionMode, Workspace, WorkspaceUpdate, msg, validate_description,
};

use crate::{Platform, Result};

/// How long a workspace known to exist is trusted without a look (a deleted
/// one was empty, so a stale answer lets nothing in that was not already there).
pub const KNOWN_TTL: Duration = Duration::from_secs(5);

/// The workspaces this process has seen exist lately.
#[derive(Default)]
pub struct KnownWorkspaces(Mutex<HashMap<String, Instant>>);

impl KnownWorkspaces {
    fn fresh(&self, name: &str) -> bool {
        self.0.lock().ok().and_then(|m| m.get(name).copied()).is_some_and(|at| at.elapsed() < KNOWN_TTL)
    }
    fn seen(&self, name: &str) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(name.to_string(), Instant::now());
        }
    }
    fn forget(&self, name: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(name);
        }
    }
}

fn not_found(name: &str) -> crate::Error {
    plinth_core::Error::not_found(msg::not_found(name)).into()
}

impl Platform {
    fn administers_platform(&self) -> bool {
        let p = &self.actor.principal;
        p.is_admin || p.user_id <= 0
    }

    fn need_platform_admin(&self) -> Result<()> {
        if self.administers_platform() {
            Ok(())
        } else {
            Err(plinth_core::Error::PermissionDenied("Permission denied: administrators only".into()).into())
        }
    }

    /// Whether the actor may see `workspace`: `default`, and those they are a
    /// member of (hold a role in, or a workspace-wide grant of their own);
    /// from the cached grants, so a request in a workspace costs no lookup.
    async fn sees_workspace(&self, workspace: &str) -> Result<bool> {
        if workspace == DEFAULT_WORKSPACE || self.administers_platform() {
            return Ok(true);
        }
        Ok(self.access_of(self.actor.principal.user_id, workspace).await?.is_member())
    }

    /// This platform acting in `workspace` (a request's `X-MLFLOW-WORKSPACE`,
    /// already normalized): refused as not found unless it exists and the
    /// actor may see it.
    pub async fn enter_workspace(&self, workspace: &str) -> Result<Platform> {
        if *workspace == *self.actor.workspace {
            return Ok(self.clone());
        }
        if workspace == DEFAULT_WORKSPACE {
            return Ok(self.in_workspace(workspace));
        }
        if !self.administers_platform() {
            // A member's role is in the workspace, so it exists (a deletion takes the workspace's roles
            // and drops the cached grants): the cached grants answer both questions, with no lookup.
            if !self.sees_workspace(workspace).await? {
                return Err(not_found(workspace));
            }
        } else if !self.known_workspaces.fresh(workspace) {
            match self.store.get_workspace(workspace).await {
                Ok(_) => self.known_workspaces.seen(workspace),
                Err(e) if e.is_not_found() => return Err(not_found(workspace)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.in_workspace(workspace))
    }

    /// The workspaces the actor may see, by name.
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let all = self.store.list_workspaces().await?;
        if self.administers_platform() {
            return Ok(all);
        }
        let mut seen = Vec::with_capacity(all.len());
        for w in all {
            if self.sees_workspace(&w.name).await? {
                seen.push(w);
            }
        }
        Ok(seen)
    }

    pub async fn get_workspace(&self, name: &str) -> Result<Workspace> {
        let name = workspaces::normalize(Some(name))?;
        if !self.sees_workspace(&name).await? {
            return Err(not_found(&name));
        }
        Ok(self.store.get_workspace(&name).await?)
    }

    pub async fn create_workspace(
        &self,
        name: &str,
        description: Option<String>,
        default_artifact_root: Option<String>,
    ) -> Result<Workspace> {
        workspaces::validate_name(name)?;
        if let Some(d) = &description {
            validate_description(d)?;
        }
        if let Some(r) = &default_artifact_root {
            workspaces::validate_artifact_root(r)?;
        }
        self.need_platform_admin()?;
        let now = self.now_ms();
        let workspace = Workspace {
            name: name.to_string(),
            description,
            default_artifact_root: default_artifact_root.filter(|r| !r.is_empty()),
            creation_time: now,
            last_update_time: now,
        };
        let created = self.store.create_workspace(workspace).await?;
        self.known_workspaces.seen(&created.name);
        self.record(Action::WorkspaceCreate, resource::workspace(&created.name), None, created.description.clone())
            .await?;
        Ok(created)
    }

    pub async fn update_workspace(&self, name: &str, update: WorkspaceUpdate) -> Result<Workspace> {
        let name = workspaces::normalize(Some(name))?;
        if let Some(d) = &update.description {
            validate_description(d)?;
        }
        if let Some(r) = &update.default_artifact_root {
            workspaces::validate_artifact_root(r)?;
        }
        self.need_platform_admin()?;
        let before = self.store.get_workspace(&name).await?;
        let after = self.store.update_workspace(&name, update).await?;
        self.record(Action::WorkspaceUpdate, resource::workspace(&name), before.description, after.description.clone())
            .await?;
        Ok(after)
    }

    /// Deletes an empty workspace and its roles (MLflow's `RESTRICT`).
    /// `CASCADE` and `SET_DEFAULT` are refused: Plinth never deletes or moves
    /// a team's experiments and models as a side effect.
    pub async fn delete_workspace(&self, name: &str, mode: DeletionMode) -> Result<()> {
        let name = workspaces::normalize(Some(name))?;
        self.need_platform_admin()?;
        if name == DEFAULT_WORKSPACE {
            return Err(plinth_core::Error::invalid(format!(
                "The '{DEFAULT_WORKSPACE}' workspace is reserved and cannot be deleted"
            ))
            .into());
        }
        if mode != DeletionMode::Restrict {
            return Err(plinth_core::Error::invalid(
                "Only mode RESTRICT is supported: delete or move a workspace's resources first, then the workspace.",
            )
            .into());
        }
        self.store.delete_workspace(&name).await?;
        self.known_workspaces.forget(&name);
        self.access_control.forget_grants();
        self.record(Action::WorkspaceDelete, resource::workspace(&name), None, None).await
    }

    /// Where a new experiment of the actor's workspace keeps its artifacts,
    /// with `{id}` for its id: the workspace's own root if it has one.
    pub(crate) async fn workspace_artifact_location(&self) -> Result<String> {
        if *self.actor.workspace != *DEFAULT_WORKSPACE {
            let w = self.store.get_workspace(&self.actor.workspace).await?;
            if let Some(root) = w.default_artifact_root {
                return Ok(format!("{}/{{id}}", root.trim_end_matches('/')));
            }
        }
        Ok(self.default_artifact_location())
    }
}

/// Kept with the platform: shared by every clone.
pub(crate) type Known = Arc<KnownWorkspaces>;
