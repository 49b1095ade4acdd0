//! Artifacts: the `mlflow-artifacts` proxy (upload, download, list, delete)
//! and `artifacts/list` for a run.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;

use crate::args::Args;
use crate::error::{ApiError, ApiResult};
use crate::state::{Api, AppState};

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
    ApiError(crate::error::Failure::new(
        plinth_core::ErrorKind::NotImplemented,
        "Multipart upload is not supported for the current artifact repository: uploads stream directly",
    ))
}

/// Routes under `/api/2.0/mlflow`.
pub fn tracking_router() -> Router<AppState> {
    Router::new().route("/artifacts/list", get(list_run))
}

/// MLflow's older download routes at the root, still called by its UI and
/// by tools: `/get-artifact?run_id=&path=` and
/// `/model-versions/get-artifact?name=&version=&path=`.
pub fn legacy_router() -> Router<AppState> {
    Router::new()
        .route("/get-artifact", get(get_run_artifact))
        .route("/model-versions/get-artifact", get(get_model_version_artifact))
}

async fn get_run_artifact(s: Api, a: Args) -> Result<Response, ApiError> {
    let run_id = match a.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => a.req_str("run_uuid")?,
    };
    let path = a.req_str("path")?;
    let (size, stream) = s.platform.open_run_artifact(&run_id, &path).await?;
    Ok(file_response(&path, size, Body::from_stream(stream)))
}

async fn get_model_version_artifact(s: Api, a: Args) -> Result<Response, ApiError> {
    let path = a.req_str("path")?;
    let (size, stream) =
        s.platform.open_model_version_artifact(&a.req_str("name")?, &a.req_str("version")?, &path).await?;
    Ok(file_response(&path, size, Body::from_stream(stream)))
}

/// A download as MLflow sends it: the type from the extension (MLflow's
/// text extensions as `text/plain`), the file's name in an attachment
/// disposition, never sniffed. (The UI serves previews with its own,
/// stricter headers.)
fn file_response(path: &str, size: u64, body: Body) -> Response {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime_type(name)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `mlflow.utils.mime_type_utils._guess_mime_type`: MLflow's text
/// extensions (and `MLmodel`, `MLproject`) are `text/plain`; the rest by
/// Python's standard table, else `application/octet-stream`.
fn mime_type(name: &str) -> &'static str {
    const TEXT: &[&str] = &[
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "MLmodel",
        "MLproject",
    ];
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => ext,
        _ => name,
    };
    if TEXT.contains(&ext) {
        return "text/plain";
    }
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "tif" | "tiff" => "image/tiff",
        "ico" => "image/vnd.microsoft.icon",
        "pdf" => "application/pdf",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "wav" => "audio/x-wav",
        _ => "application/octet-stream",
    }
}

/// `attachment; filename=…` as Werkzeug's `quote_header_value` writes it
/// (a bare token, else a quoted string), with an RFC 5987 `filename*` for
/// names that are not ASCII.
fn content_disposition(name: &str) -> String {
    let is_token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let quote = |s: &str| {
        if is_token(s) { s.to_string() } else { format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")) }
    };
    if name.is_ascii() {
        return format!("attachment; filename={}", quote(name));
    }
    let fallback: String = name.chars().filter(char::is_ascii).collect();
    let fallback = if fallback.is_empty() { "download".to_string() } else { fallback };
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename={}; filename*=UTF-8''{encoded}", quote(&fallback))
}

async fn upload(s: Api, Path(path): Path<String>, req: Request) -> ApiResult {
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

async fn download(s: Api, Path(path): Path<String>) -> Result<Response, ApiError> {
    let (size, stream) = s.platform.download_artifact(&path).await?;
    Ok(file_response(&path, size, Body::from_stream(stream)))
}

async fn list(s: Api, a: Args) -> ApiResult {
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

async fn delete(s: Api, Path(path): Path<String>) -> ApiResult {
    s.platform.delete_artifact(&path).await?;
    Ok(Json(json!({})))
}

async fn list_run(s: Api, a: Args) -> ApiResult {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_names_as_mlflow_sends_them() {
        assert_eq!(mime_type("notes.txt"), "text/plain");
        assert_eq!(mime_type("MLmodel"), "text/plain");
        assert_eq!(mime_type("a.PNG"), "image/png");
        assert_eq!(mime_type("weights.bin"), "application/octet-stream");
        assert_eq!(content_disposition("notes.txt"), "attachment; filename=notes.txt");
        assert_eq!(content_disposition("a b.png"), "attachment; filename=\"a b.png\"");
        assert_eq!(content_disposition("é.txt"), "attachment; filename=.txt; filename*=UTF-8''%C3%A9.txt");
    }
}
