//! MLflow's workspace API (`/api/3.0/mlflow/workspaces`, what
//! `mlflow.list_workspaces()`, `mlflow.create_workspace()` … call) and
//! `server-info`, where the client learns that this server has workspaces.
//! The answers are MLflow's `Workspace` JSON; who may do what is the
//! engine's to decide.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plinth_core::workspaces::{DeletionMode, Workspace, WorkspaceUpdate};
use serde_json::{Value, json};

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};

/// Under `/api/3.0/mlflow` and `/ajax-api/3.0/mlflow`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workspaces", get(list).post(create))
        .route("/workspaces/{name}", get(get_one).patch(update).delete(delete))
        .route("/server-info", get(server_info))
}

fn workspace_json(w: &Workspace) -> Value {
    let mut v = json!({"name": w.name});
    if let Some(d) = &w.description {
        v["description"] = json!(d);
    }
    if let Some(r) = &w.default_artifact_root {
        v["default_artifact_root"] = json!(r);
    }
    v
}

/// Plinth keeps no traces, so it archives none: a client asking for
/// archival settings is told so rather than ignored.
fn refuse_trace_archival(a: &Args) -> Result<(), ApiError> {
    match a.raw("trace_archival_config") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(o)) if o.values().all(Value::is_null) => Ok(()),
        Some(_) => Err(ApiError::invalid("trace_archival_config is not supported: Plinth keeps no traces.")),
    }
}

async fn list(s: Api) -> ApiResult {
    let all = s.platform.list_workspaces().await?;
    Ok(Json(json!({"workspaces": all.iter().map(workspace_json).collect::<Vec<_>>()})))
}

async fn create(s: Api, a: Args) -> Result<Response, ApiError> {
    refuse_trace_archival(&a)?;
    let name = a.req_str("name")?;
    let description = a.opt_str("description")?;
    let root = a.opt_str("default_artifact_root")?;
    let w = s.platform.create_workspace(&name, description, root).await?;
    Ok((StatusCode::CREATED, Json(json!({"workspace": workspace_json(&w)}))).into_response())
}

async fn get_one(s: Api, Path(name): Path<String>) -> ApiResult {
    let w = s.platform.get_workspace(&name).await?;
    Ok(Json(json!({"workspace": workspace_json(&w)})))
}

async fn update(s: Api, Path(name): Path<String>, a: Args) -> ApiResult {
    refuse_trace_archival(&a)?;
    let update = WorkspaceUpdate {
        description: a.opt_str("description")?,
        default_artifact_root: a.opt_str("default_artifact_root")?,
    };
    let w = s.platform.update_workspace(&name, update).await?;
    Ok(Json(json!({"workspace": workspace_json(&w)})))
}

async fn delete(s: Api, Path(name): Path<String>, a: Args) -> Result<Response, ApiError> {
    let mode = match a.opt_str("mode")? {
        Some(m) => DeletionMode::parse(&m)?,
        None => DeletionMode::Restrict,
    };
    s.platform.delete_workspace(&name, mode).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// How this server is set up, for clients before they sign in (MLflow's
/// `server-info`: no secrets, nothing of any tenant).
async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": true,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
    }))
}
