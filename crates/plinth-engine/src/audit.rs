//! The audit trail: every state change a use case makes is recorded as the
//! platform's actor (who, in which request), after the change is stored and
//! before it is acknowledged.

use std::sync::Arc;

use plinth_core::audit::{Action, Actor, AuditQuery, AuditRecord};

use plinth_store::MetadataStore;

use crate::{Page, Platform, Result};

/// One change as a use case describes it.
pub(crate) struct Change {
    pub action: Action,
    pub resource: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Why, where Plinth decided on its own.
    pub detail: Option<String>,
}

/// Appends one record of `actor`'s change at `time`.
pub(crate) async fn append(store: &dyn MetadataStore, time: i64, actor: &Actor, change: Change) -> Result<()> {
    let Change { action, resource, before, after, detail } = change;
    let record = AuditRecord {
        seq: 0,
        time,
        actor: actor.name(),
        action,
        resource,
        before,
        after,
        request_id: actor.request_id.clone(),
        workspace: actor.workspace.to_string(),
        detail,
    };
    if let Err(e) = store.append_audit(record).await {
        tracing::error!(error = %e, action = action.as_str(), "the audit trail could not record a change");
        return Err(e.into());
    }
    Ok(())
}

impl Platform {
    /// This platform acting for `actor`, in the actor's workspace: its
    /// changes are recorded as theirs, names are looked up in that workspace.
    /// The server makes one per request (having checked that the workspace
    /// exists: [`Platform::enter_workspace`]); `Platform::new` acts as
    /// [`Actor::local`] in `default`.
    pub fn acting(&self, actor: Actor) -> Platform {
        let store = if self.store.workspace() == &*actor.workspace {
            self.store.clone()
        } else {
            self.store.in_workspace(&actor.workspace)
        };
        Platform { actor: Arc::new(actor), store, ..self.clone() }
    }

    /// The same actor in `workspace` (Plinth's own work on a job, a deployment).
    pub fn in_workspace(&self, workspace: &str) -> Platform {
        self.acting(Actor::clone(&self.actor).in_workspace(workspace))
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Appends one record of a change just made. A record that cannot be
    /// written fails the call: a change is never acknowledged unrecorded.
    pub(crate) async fn record(
        &self,
        action: Action,
        resource: String,
        before: Option<String>,
        after: Option<String>,
    ) -> Result<()> {
        append(&*self.store, self.now_ms(), &self.actor, Change { action, resource, before, after, detail: None }).await
    }

    /// A change with nothing before or after worth keeping.
    pub(crate) async fn record_change(&self, action: Action, resource: String) -> Result<()> {
        self.record(action, resource, None, None).await
    }

    /// The trail, newest first (`GET /api/2.0/plinth/audit`, the UI's history).
    /// The trail of the actor's workspace.
    pub async fn audit_trail(&self, mut query: AuditQuery) -> Result<Page<AuditRecord>> {
        query.check()?;
        query.workspace = Some(self.actor.workspace.to_string());
        let mut page = self.store.search_audit(query).await?;
        let access = self.access().await?;
        if !access.is_unrestricted() {
            let mut kept = Vec::with_capacity(page.items.len());
            for r in page.items {
                if self.may_see(&access, &r.resource).await {
                    kept.push(r);
                }
            }
            page.items = kept;
        }
        Ok(page)
    }

    /// Whether a restricted caller may see a record about `resource`: only
    /// about what they may read; accounts, roles and grants are for
    /// administrators. A page may so hold fewer records than asked for.
    async fn may_see(&self, access: &plinth_core::access::Access, resource: &str) -> bool {
        use plinth_core::access::{Op, ResourceType as T};
        let readable = |keys: &[(T, &str)]| access.permission(keys).allows(Op::Read);
        let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
        match kind {
            "experiments" => readable(&[(T::Experiment, rest)]),
            "runs" => match self.experiment_of_run(rest).await {
                Ok(e) => readable(&[(T::Run, rest), (T::Experiment, &e)]),
                Err(_) => false,
            },
            "logged-models" => match self.store.get_logged_model(rest).await {
                Ok(m) => readable(&[(T::LoggedModel, rest), (T::Experiment, &m.experiment_id)]),
                Err(_) => false,
            },
            "artifacts" => {
                let experiment = rest.split('/').next().unwrap_or("");
                readable(&[(T::Experiment, experiment)])
            }
            "models" => {
                let name = ["/aliases/", "/versions/"]
                    .iter()
                    .filter_map(|sep| rest.rfind(sep))
                    .min()
                    .map_or(rest, |at| &rest[..at]);
                readable(&[(T::RegisteredModel, name)])
            }
            "deployments" => readable(&[(T::Deployment, rest)]),
            "jobs" => true,
            _ => false,
        }
    }
}
