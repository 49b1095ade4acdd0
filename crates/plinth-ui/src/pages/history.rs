//! A resource's history from the audit trail, in sentences: "@champion
//! moved from v3 to v4 by alice at …", shown on model and deployment pages.

use maud::{Markup, html};
use plinth_core::audit::{Action, AuditQuery, AuditRecord};
use plinth_engine::Platform;

use crate::{UiError, time};

/// The latest changes to `resource` and what is below it.
pub(crate) async fn of(platform: &Platform, resource: String) -> Result<Vec<AuditRecord>, UiError> {
    let query = AuditQuery { resource: Some(resource), max_results: 50, ..Default::default() };
    Ok(platform.audit_trail(query).await?.items)
}

/// What happened, as a sentence without its actor and time.
pub(crate) fn sentence(r: &AuditRecord) -> String {
    let tail = r.resource.rsplit('/').next().unwrap_or(&r.resource);
    let v = |s: &Option<String>| s.as_deref().map_or("nothing".to_string(), |x| format!("v{x}"));
    let text = |s: &Option<String>| s.as_deref().unwrap_or("nothing").to_string();
    match r.action {
        Action::AliasSet if r.before.is_some() && r.before != r.after => {
            format!("@{tail} moved from {} to {}", v(&r.before), v(&r.after))
        }
        Action::AliasSet => format!("@{tail} set to {}", v(&r.after)),
        Action::AliasDelete => format!("@{tail} removed (it was on {})", v(&r.before)),
        Action::VersionCreate => match &r.after {
            Some(from) => format!("version {tail} registered from {from}"),
            None => format!("version {tail} registered"),
        },
        Action::VersionStage => format!("version {tail} moved from {} to {}", text(&r.before), text(&r.after)),
        Action::VersionDelete => format!("version {tail} deleted"),
        Action::ModelCreate => "model created".to_string(),
        Action::ModelRename => format!("renamed from {} to {}", text(&r.before), text(&r.after)),
        Action::DeploymentCreate => format!("created with traffic {}", text(&r.after)),
        Action::DeploymentUpdate => format!("traffic changed from {} to {}", text(&r.before), text(&r.after)),
        Action::DeploymentDelete => format!("deleted (traffic was {})", text(&r.before)),
        Action::PolicyAdvance | Action::PolicyStop | Action::PolicyPromote | Action::PolicyWin => {
            let what = match r.action {
                Action::PolicyAdvance => "the policy advanced the ramp",
                Action::PolicyStop => "the policy stopped the challenger",
                Action::PolicyPromote => "the policy promoted the challenger",
                _ => "the policy declared the challenger the winner",
            };
            format!("{what}: {} (traffic {} → {})", text(&r.detail), text(&r.before), text(&r.after))
        }
        _ => {
            let detail = r.after.as_deref().or(r.before.as_deref()).map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{} on {}{detail}", r.action.as_str(), r.resource)
        }
    }
}

pub(crate) fn section(records: &[AuditRecord]) -> Markup {
    html! {
        h2 { "History" }
        @if records.is_empty() {
            p.muted { "No recorded changes." }
        } @else {
            ul #history {
                @for r in records {
                    li { (sentence(r)) " by " strong { (r.actor) } " at " (time(r.time)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: Action, resource: &str, before: Option<&str>, after: Option<&str>) -> AuditRecord {
        AuditRecord {
            seq: 1,
            time: 0,
            actor: "alice".into(),
            action,
            resource: resource.into(),
            before: before.map(Into::into),
            after: after.map(Into::into),
            request_id: None,
            workspace: "default".into(),
            detail: None,
        }
    }

    #[test]
    fn alias_moves_read_as_sentences() {
        let moved = record(Action::AliasSet, "models/m/aliases/champion", Some("3"), Some("4"));
        assert_eq!(sentence(&moved), "@champion moved from v3 to v4");
        let set = record(Action::AliasSet, "models/m/aliases/champion", None, Some("1"));
        assert_eq!(sentence(&set), "@champion set to v1");
        let gone = record(Action::AliasDelete, "models/m/aliases/champion", Some("4"), None);
        assert_eq!(sentence(&gone), "@champion removed (it was on v4)");
        let stopped = AuditRecord {
            detail: Some("guardrail breached: error rate ≤ 0.05".into()),
            ..record(Action::PolicyStop, "deployments/d", Some("a=m@c:90, b=m/2:10"), Some("a=m@c:90, b=m/2:0"))
        };
        assert_eq!(
            sentence(&stopped),
            "the policy stopped the challenger: guardrail breached: error rate ≤ 0.05 \
             (traffic a=m@c:90, b=m/2:10 → a=m@c:90, b=m/2:0)"
        );
    }
}
