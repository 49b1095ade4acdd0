//! `POST /v1/events`: outcome events (plays, clicks, conversions) from the
//! services around Plinth, in batches (those naming no deployment belong to
//! the request's workspace), each event checked on its own: the
//! answer counts the accepted ones and lists every refused one with its
//! index and reason (400 when none was accepted). Answered once the accepted
//! events are in the store.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::auth::{Principal, Via};
use plinth_serving::EventInput;
use plinth_serving::events::MAX_BATCH;
use serde_json::Value;

use super::serving::LimitedBody;
use crate::auth::Caller;
use crate::error::InferError;
use crate::state::AppState;

/// A string field, or an integer one taken as its decimal text (ids).
fn id_field(event: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(format!("'{key}' must be a string or an integer, got {other}")),
    }
}

fn input(value: Value) -> Result<EventInput, String> {
    let Value::Object(event) = value else { return Err(format!("an event must be a JSON object, got {value}")) };
    const FIELDS: [&str; 7] = ["unit", "kind", "time", "item", "value", "deployment", "event_id"];
    if let Some(unknown) = event.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field '{unknown}' (an event has {})", FIELDS.join(", ")));
    }
    let kind = match event.get("kind") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("'kind' must be a string, got {other}")),
    };
    let deployment = match event.get("deployment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("'deployment' must be a string, got {other}")),
    };
    let time_ms = match event.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(other) => return Err(format!("'time' must be milliseconds since the epoch (an integer), got {other}")),
    };
    let value = match event.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => return Err(format!("'value' must be a number, got {other}")),
    };
    Ok(EventInput {
        unit: id_field(&event, "unit")?,
        kind,
        time_ms,
        item: id_field(&event, "item")?,
        value,
        deployment,
        event_id: id_field(&event, "event_id")?,
    })
}

/// Whether `principal` may post events for `deployment` (as it may call its
/// endpoints); one it may not read is reported as not existing.
async fn allowed(s: &AppState, principal: &Principal, deployment: &str) -> bool {
    if principal.is_admin || matches!(principal.via, Via::Anonymous) {
        return true;
    }
    s.platform.may_read_deployment(principal, deployment).await.is_ok()
}

/// `[{unit, kind, time?, item?, value?, deployment?, event_id?}, …]` or `{"events": […]}`.
pub(super) async fn post_events(
    State(s): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, InferError> {
    // Events that name no deployment belong to the workspace they are posted in (`X-MLFLOW-WORKSPACE`, `default`
    // when none): one the caller may not see is refused as not found.
    let request_id = headers.get(super::serving::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    let actor = plinth_core::audit::Actor::of_request(Some(principal.clone()), request_id);
    let platform = crate::state::acting_in_workspace(s.platform.acting(actor), &headers).await.map_err(InferError)?;
    let workspace = platform.actor().workspace.clone();
    // A JSON API: a form or text body (what a cross-site page can send without asking) is refused.
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(crate::edge::is_json);
    if !json {
        return Err(InferError::bad_request("Content-Type must be application/json"));
    }
    let parsed: Value =
        serde_json::from_slice(&body).map_err(|e| InferError::bad_request(format!("Invalid request body: {e}")))?;
    let list = match parsed {
        Value::Array(list) => list,
        Value::Object(mut o) if o.len() == 1 && matches!(o.get("events"), Some(Value::Array(_))) => {
            match o.remove("events") {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            }
        }
        _ => return Err(InferError::bad_request("give the events as a JSON array, or as an array under 'events'")),
    };
    if list.len() > MAX_BATCH {
        return Err(InferError::bad_request(format!("at most {MAX_BATCH} events per request, got {}", list.len())));
    }
    let key_deployment = match &principal.via {
        Via::ServingKey { deployment, .. } => Some(deployment.clone()),
        _ => None,
    };
    let mut verdicts: HashMap<String, bool> = HashMap::new();
    let mut batch = Vec::with_capacity(list.len());
    for value in list {
        let mut event = input(value);
        if let Ok(e) = &mut event {
            match (&key_deployment, &e.deployment) {
                // A serving key's events are its deployment's.
                (Some(own), None) => e.deployment = Some(own.clone()),
                (Some(own), Some(named)) if named != own => {
                    event = Err(format!("this serving key posts events for deployment '{own}' only"));
                }
                (None, Some(named)) => {
                    let ok = match verdicts.get(named) {
                        Some(&ok) => ok,
                        None => {
                            let ok = allowed(&s, &principal, named).await;
                            verdicts.insert(named.clone(), ok);
                            ok
                        }
                    };
                    if !ok {
                        event = Err(format!("deployment '{named}' does not exist"));
                    }
                }
                _ => {}
            }
        }
        batch.push(event);
    }
    let report = s.serving.post_events(batch, &workspace).await?;
    let status =
        if report.accepted == 0 && !report.rejected.is_empty() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, Json(report)).into_response())
}
