//! Artifacts: the `mlflow-artifacts` proxy (upload, download, list, delete)
//! and `artifacts/list` for a run.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Routes under `/api/2.0/mlflow-artifacts`.
pub fn proxy_router() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/{*path}", get(download).put(upload).delete(delete))
        .route("/mpu/create/{*path}", post(multipart_unsupported))
        .route("/mpu/complete/{*path}", post(multipart_unsupported))
        .route("/mpu/abort/{*path}", post(multipart_unsupported))
}

/// Uploads already stream to storage (atomically), so presigned multipart
/// uploads are declined exactly as MLflow declines them for stores without
/// them; the client then falls back to one streamed PUT.
async fn multipart_unsupported() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::NOT_IMPLEMENTED,
        code: "NOT_IMPLEMENTED",
        message: "Multipart upload is not supported for the current artifact repository: uploads stream directly"
            .into(),
    }
}

/// Routes under `/api/2.0/mlflow`.
pub fn tracking_router() -> Router<AppState> {
    Router::new().route("/artifacts/list", get(list_run))
}

async fn upload(State(s): State<AppState>, Path(path): Path<String>, req: Request) -> ApiResult {
    let limit = s.config.max_artifact_bytes;
    let mut seen = 0u64;
    let body = req.into_body().into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| e.to_string())?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(format!("the artifact exceeds the upload limit of {limit} bytes"));
        }
        Ok(chunk)
    });
    s.platform.upload_artifact(&path, Box::pin(body)).await?;
    Ok(Json(json!({})))
}

async fn download(State(s): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let (size, stream) = s.platform.download_artifact(&path).await?;
    let mut resp = Body::from_stream(stream).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    // Never let a browser render artifact content as a page.
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    Ok(resp)
}

async fn list(State(s): State<AppState>, a: Args) -> ApiResult {
    let path = a.opt_str("path")?.unwrap_or_default();
    let entries = s.platform.list_artifacts(&path).await?;
    let files: Vec<_> = entries
        .iter()
        .map(|e| {
            let name = e.path.rsplit('/').next().unwrap_or(&e.path);
            match e.size {
                Some(size) => json!({"path": name, "is_dir": e.is_dir, "file_size": size}),
                None => json!({"path": name, "is_dir": e.is_dir}),
            }
        })
        .collect();
    Ok(Json(json!({"files": files})))
}

async fn delete(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult {
    s.platform.delete_artifact(&path).await?;
    Ok(Json(json!({})))
}

async fn list_run(State(s): State<AppState>, a: Args) -> ApiResult {
    let run_id = match a.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => a.req_str("run_uuid")?,
    };
    let path = a.opt_str("path")?.unwrap_or_default();
    let (root_uri, entries) = s.platform.list_run_artifacts(&run_id, &path).await?;
    let files: Vec<_> = entries
        .iter()
        .map(|e| match e.size {
            Some(size) => json!({"path": e.path, "is_dir": e.is_dir, "file_size": size}),
            None => json!({"path": e.path, "is_dir": e.is_dir}),
        })
        .collect();
    Ok(Json(json!({"root_uri": root_uri, "files": files})))
}
