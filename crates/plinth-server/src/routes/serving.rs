//! The inference edge: `/v1/deployments/{name}/recommend|similar`, bounded
//! by a concurrency limit (503 + Retry-After beyond it), and `/metrics`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;

use std::time::Instant;

use crate::conn::Arrived;
use crate::error::InferError;
use crate::state::AppState;

pub const UNIT_HEADER: &str = "x-plinth-unit";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// Infer bodies up to this size are answered on the async worker.
const INLINE_INFER_BYTES: usize = 16 << 10;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/deployments/{name}/recommend", post(recommend))
        .route("/v1/deployments/{name}/similar", post(similar))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .layer(axum::middleware::from_fn_with_state(state, limit_concurrency))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_version_metadata))
        .route("/v2/models/{name}/config", get(model_config))
        .route("/v2/models/{name}/versions/{version}/config", get(model_version_config))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_version_ready))
        .route("/metrics", get(metrics))
}

async fn live() -> Json<Value> {
    Json(serde_json::json!({"live": true}))
}

/// Ready once started: deployments load before the server listens.
async fn ready() -> Json<Value> {
    Json(serde_json::json!({"ready": true}))
}

async fn server_metadata() -> Json<Value> {
    Json(
        serde_json::json!({"name": "plinth", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

async fn model_metadata(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, InferError> {
    Ok(Json(s.serving.model_metadata(&name, None)?))
}

async fn model_version_metadata(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, InferError> {
    Ok(Json(s.serving.model_metadata(&name, Some(&version))?))
}

/// Triton's model-configuration call (`tritonclient`'s `get_model_config`),
/// derived from the OIP metadata: `TYPE_<datatype>` tensors, no implicit
/// batching (`max_batch_size` 0, so `dims` include the batch dimension).
fn triton_config(metadata: &Value) -> Value {
    let tensors = |key: &str| -> Vec<Value> {
        metadata[key]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|t| {
                        let datatype = t["datatype"].as_str().map(|d| if d == "BYTES" { "STRING" } else { d });
                        serde_json::json!({
                            "name": t["name"],
                            "data_type": datatype.map(|d| format!("TYPE_{d}")),
                            "dims": t["shape"],
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    serde_json::json!({
        "name": metadata["name"],
        "platform": metadata["platform"],
        "backend": "plinth",
        "max_batch_size": 0,
        "input": tensors("inputs"),
        "output": tensors("outputs"),
    })
}

async fn model_config(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, InferError> {
    Ok(Json(triton_config(&s.serving.model_metadata(&name, None)?)))
}

async fn model_version_config(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, InferError> {
    Ok(Json(triton_config(&s.serving.model_metadata(&name, Some(&version))?)))
}

async fn model_ready(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, InferError> {
    s.serving.model_ready(&name, None)?;
    Ok(Json(serde_json::json!({"name": name, "ready": true})))
}

async fn model_version_ready(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, InferError> {
    s.serving.model_ready(&name, Some(&version))?;
    Ok(Json(serde_json::json!({"name": name, "ready": true})))
}

/// A request body read while it streams, never past the request limit: an
/// oversized body is refused after at most `max_request_bytes` were read.
pub struct LimitedBody(Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = InferError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, InferError> {
        let limit = s.config.max_request_bytes;
        if crate::args::declared_over(req.headers(), limit) {
            return Err(InferError::too_large(limit));
        }
        axum::body::to_bytes(req.into_body(), limit).await.map(LimitedBody).map_err(|_| InferError::too_large(limit))
    }
}

async fn infer(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Response {
    run_infer(s, name, None, arrived, headers, body).await
}

async fn infer_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Response {
    run_infer(s, name, Some(version), arrived, headers, body).await
}

/// JSON or binary is decided by `Inference-Header-Content-Length`, never by
/// Content-Type.
async fn run_infer(
    s: AppState,
    name: String,
    version: Option<String>,
    arrived: Instant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_len = body.len();
    let run = move || {
        let header_len = match header_str(&headers, HEADER_LENGTH) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| InferError::bad_request(format!("Invalid Inference-Header-Content-Length '{v}'")))?,
            ),
        };
        let out = s.serving.infer(
            &name,
            version.as_deref(),
            &body,
            header_len,
            header_str(&headers, UNIT_HEADER),
            request_id(&headers),
            arrived,
        )?;
        Ok(out)
    };
    // Small requests run inline (a thread hop costs more than they do);
    // large batches go to the blocking pool so they never stall the runtime.
    let result = if body_len > INLINE_INFER_BYTES {
        tokio::task::spawn_blocking(run).await.unwrap_or_else(|e| {
            Err(InferError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("inference task failed: {e}"),
            })
        })
    } else {
        run()
    };
    match result {
        Ok(out) => {
            let mut r = out.body.into_response();
            let h = r.headers_mut();
            match out.header_len {
                Some(n) => {
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                    if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
                        h.insert(HEADER_LENGTH, v);
                    }
                }
                None => {
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Sheds load instead of queueing without bound.
async fn limit_concurrency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    match s.inference_permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(_) => {
            metrics::counter!("plinth_serving_shed_total").increment(1);
            let mut r = InferError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Too many concurrent requests; retry shortly".into(),
            }
            .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, InferError> {
    serde_json::from_slice(body).map_err(|e| InferError::bad_request(format!("Invalid request body: {e}")))
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|v| !v.is_empty())
}

fn request_id(h: &HeaderMap) -> String {
    header_str(h, REQUEST_ID_HEADER).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

async fn recommend(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, InferError> {
    let req = parse(&body)?;
    let (unit, id) = (header_str(&headers, UNIT_HEADER), request_id(&headers));
    let out = s.serving.recommend(&name, req, unit, id, arrived).await?;
    Ok(Json(out))
}

async fn similar(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, InferError> {
    let req = parse(&body)?;
    let (unit, id) = (header_str(&headers, UNIT_HEADER), request_id(&headers));
    let out = s.serving.similar(&name, req, unit, id, arrived).await?;
    Ok(Json(out))
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}
