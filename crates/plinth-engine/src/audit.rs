//! The audit trail: every state change a use case makes is recorded as the
//! platform's actor (who, in which request), after the change is stored and
//! before it is acknowledged.

use std::sync::Arc;

use plinth_core::audit::{Action, Actor, AuditQuery, AuditRecord};

use plinth_store::MetadataStore;

use crate::{Page, Platform, Result};

/// Appends one record of `actor`'s change at `time`.
pub(crate) async fn append(
    store: &dyn MetadataStore,
    time: i64,
    actor: &Actor,
    action: Action,
    resource: String,
    before: Option<String>,
    after: Option<String>,
) -> Result<()> {
    let record = AuditRecord {
        seq: 0,
        time,
        actor: actor.name(),
        action,
        resource,
        before,
        after,
        request_id: actor.request_id.clone(),
    };
    if let Err(e) = store.append_audit(record).await {
        tracing::error!(error = %e, action = action.as_str(), "the audit trail could not record a change");
        return Err(e.into());
    }
    Ok(())
}

impl Platform {
    /// This platform acting for `actor`: its changes are recorded as theirs.
    /// The server makes one per request; `Platform::new` acts as
    /// [`Actor::local`].
    pub fn acting(&self, actor: Actor) -> Platform {
        Platform { actor: Arc::new(actor), ..self.clone() }
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
        append(&*self.store, self.now_ms(), &self.actor, action, resource, before, after).await
    }

    /// A change with nothing before or after worth keeping.
    pub(crate) async fn record_change(&self, action: Action, resource: String) -> Result<()> {
        self.record(action, resource, None, None).await
    }

    /// The trail, newest first (`GET /api/2.0/plinth/audit`, the UI's history).
    pub async fn audit_trail(&self, query: AuditQuery) -> Result<Page<AuditRecord>> {
        query.check()?;
        Ok(self.store.search_audit(query).await?)
    }
}
