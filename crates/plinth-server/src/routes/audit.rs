//! `GET /api/2.0/plinth/audit`: the audit trail, newest first, filtered by
//! actor, action, resource (and what is below it) and time. Nothing edits or
//! deletes it: the route is read-only and no other exists.

use axum::routing::get;
use axum::{Json, Router};
use plinth_core::audit::{Action, AuditQuery, AuditRecord};
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(search))
}

async fn search(s: Api, a: Args) -> ApiResult {
    let action = match a.opt_str("action")? {
        Some(name) => Some(Action::parse(&name).ok_or_else(|| {
            ApiError::invalid(format!("Invalid value '{name}' for parameter 'action': no such action"))
        })?),
        None => None,
    };
    let before_seq = match a.opt_str("page_token")? {
        Some(t) => {
            Some(t.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| ApiError::invalid("Invalid page_token"))?)
        }
        None => None,
    };
    let query = AuditQuery {
        actor: a.opt_str("actor")?,
        action,
        resource: a.opt_str("resource")?,
        since: a.opt_i64("since")?,
        until: a.opt_i64("until")?,
        before_seq,
        // The request's workspace's trail (the engine sets it).
        workspace: None,
        max_results: a.opt_i64("max_results")?.unwrap_or(100),
    };
    let page = s.platform.audit_trail(query).await?;
    // What the caller may not read is left out (the engine's rule).
    let records: Vec<Value> = page.items.iter().map(record_json).collect();
    let mut body = json!({ "records": records });
    if let Some(next) = page.next_offset {
        body["next_page_token"] = json!(next.to_string());
    }
    Ok(Json(body))
}

pub(crate) fn record_json(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "time": r.time,
        "actor": r.actor,
        "action": r.action.as_str(),
        "resource": r.resource,
        "before": r.before,
        "after": r.after,
        "detail": r.detail,
        "request_id": r.request_id,
        "workspace": r.workspace,
    })
}
