//! The inference edge: `/v1/deployments/{name}/recommend|similar`, bounded
//! by a concurrency limit (503 + Retry-After beyond it), and `/metrics`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plinth_core::ErrorKind;
use plinth_serving::{RecommendQuery, Recommendations, RequestContext, SimilarQuery, Subjects};
use serde::Deserialize;
use serde_json::{Value, json};

use std::time::Instant;

use crate::conn::Arrived;
use crate::error::{Failure, InferError};
use crate::oip::rest::{InferRequestShape, decode_request, encode_response, metadata_json, triton_config};
use crate::state::AppState;

pub const UNIT_HEADER: &str = "x-plinth-unit";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// Infer bodies up to this size are answered on the async worker.
const INLINE_INFER_BYTES: usize = 16 << 10;

pub fn router(state: AppState) -> Router<AppState> {
    // The inference routes pass one middleware (the permission check, then a concurrency permit); the
    // metadata routes only the check.
    let inference = Router::new()
        .route("/v1/deployments/{name}/recommend", post(recommend))
        .route("/v1/deployments/{name}/similar", post(similar))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .route("/v1/events", post(super::events::post_events))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit_concurrency));
    let metadata = Router::new()
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_version_metadata))
        .route("/v2/models/{name}/config", get(model_config))
        .route("/v2/models/{name}/versions/{version}/config", get(model_version_config))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_version_ready))
        .layer(axum::middleware::from_fn_with_state(state, may_call));
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .merge(inference)
        .merge(metadata)
}

/// A user calls only the deployments they may read (see `auth::may_call`).
async fn may_call(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(deployment) = crate::auth::deployment_of_path(req.uri().path())
        && let Err(failure) = crate::auth::may_call(&s.platform, req.extensions(), deployment).await
    {
        return failure.oip();
    }
    next.run(req).await
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
    Ok(Json(metadata_json(&s.serving.model_metadata(&name, None).await?)))
}

async fn model_version_metadata(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, InferError> {
    Ok(Json(metadata_json(&s.serving.model_metadata(&name, Some(&version)).await?)))
}

async fn model_config(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, InferError> {
    Ok(Json(triton_config(&s.serving.model_metadata(&name, None).await?)))
}

async fn model_version_config(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, InferError> {
    Ok(Json(triton_config(&s.serving.model_metadata(&name, Some(&version)).await?)))
}

async fn model_ready(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<Value>, InferError> {
    s.serving.model_ready(&name, None).await?;
    Ok(Json(serde_json::json!({"name": name, "ready": true})))
}

async fn model_version_ready(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, InferError> {
    s.serving.model_ready(&name, Some(&version)).await?;
    Ok(Json(serde_json::json!({"name": name, "ready": true})))
}

/// A request body read while it streams, never past the request limit: an
/// oversized body is refused after at most `max_request_bytes` were read.
pub struct LimitedBody(pub(crate) Bytes);

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
) -> Result<Response, InferError> {
    run_infer(s, name, None, arrived, headers, body).await
}

async fn infer_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, InferError> {
    run_infer(s, name, Some(version), arrived, headers, body).await
}

/// JSON or binary is decided by `Inference-Header-Content-Length`, never by
/// Content-Type. Large bodies are decoded and encoded on the blocking pool.
async fn run_infer(
    s: AppState,
    name: String,
    version: Option<String>,
    arrived: Instant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, InferError> {
    let header_len = match header_str(&headers, HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<usize>()
                .map_err(|_| InferError::bad_request(format!("Invalid Inference-Header-Content-Length '{v}'")))?,
        ),
    };
    let large = body.len() > INLINE_INFER_BYTES;
    let decode = move || decode_request(&body, header_len);
    let req = if large { off_thread(decode).await?? } else { decode()? };
    let shape = InferRequestShape::of(&req);
    let ctx = RequestContext { request_id: request_id(&headers), unit: header_str(&headers, UNIT_HEADER), arrived };
    let out = s.serving.infer(&name, version.as_deref(), req, ctx).await?;
    let encode = move || encode_response(out, &shape);
    let out = if large { off_thread(encode).await?? } else { encode()? };
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
    Ok(r)
}

/// Work too large for the async worker, on the blocking pool.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, InferError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| InferError(Failure::new(ErrorKind::Internal, format!("inference task failed: {e}"))))
}

/// Sheds load instead of queueing without bound; a user calls only the
/// deployments they may read (checked first: a refusal takes no permit).
async fn limit_concurrency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(deployment) = crate::auth::deployment_of_path(req.uri().path())
        && let Err(failure) = crate::auth::may_call(&s.platform, req.extensions(), deployment).await
    {
        return failure.oip();
    }
    match s.inference_permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(req).await;
            drop(permit);
            response
        }
        Err(_) => {
            metrics::counter!("plinth_serving_shed_total").increment(1);
            Failure::new(ErrorKind::Overloaded, "Too many concurrent requests; retry shortly").oip()
        }
    }
}

/// An id as sent: a string or an integer, both naming the same id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(serde_json::Number),
    Other(Value),
}

impl Id {
    fn checked(self, what: &str) -> Result<String, InferError> {
        match self {
            Id::Text(s) if !s.is_empty() => Ok(s),
            Id::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            Id::Text(s) => Err(bad_id(what, &json!(s))),
            Id::Number(n) => Err(bad_id(what, &json!(n))),
            Id::Other(v) => Err(bad_id(what, &v)),
        }
    }
}

fn bad_id(what: &str, v: &Value) -> InferError {
    InferError::bad_request(format!("{what} must be a non-empty string or an integer, got {v}"))
}

fn ids(ids: Option<Vec<Id>>, what: &str) -> Result<Option<Vec<String>>, InferError> {
    ids.map(|v| v.into_iter().map(|i| i.checked(what)).collect()).transpose()
}

fn subjects(one: Option<Id>, many: Option<Vec<Id>>, what: &str) -> Result<Subjects, InferError> {
    match (one, many) {
        (Some(id), None) => Ok(Subjects::One(id.checked(what)?)),
        (None, Some(list)) => Ok(Subjects::Many(list.into_iter().map(|i| i.checked(what)).collect::<Result<_, _>>()?)),
        _ => Err(InferError::bad_request(format!("give exactly one of '{what}' and '{what}s'"))),
    }
}

/// `POST /v1/deployments/{name}/recommend`: one `user` or a batch of `users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendBody {
    user: Option<Id>,
    users: Option<Vec<Id>>,
    k: Option<usize>,
    exclude_seen: Option<bool>,
    include_items: Option<Vec<Id>>,
    exclude_items: Option<Vec<Id>>,
}

/// `POST /v1/deployments/{name}/similar`: one `item` or a batch of `items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarBody {
    item: Option<Id>,
    items: Option<Vec<Id>>,
    k: Option<usize>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, InferError> {
    serde_json::from_slice(body).map_err(|e| InferError::bad_request(format!("Invalid request body: {e}")))
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|v| !v.is_empty())
}

fn request_id(h: &HeaderMap) -> String {
    header_str(h, REQUEST_ID_HEADER).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

fn context(headers: &HeaderMap, arrived: Instant) -> RequestContext {
    RequestContext { request_id: request_id(headers), unit: header_str(headers, UNIT_HEADER), arrived }
}

/// One row as the body itself, or a batch under `results`; either way with
/// the deployment and request id. `key` names the subject (`user`, `item`).
fn recommendations_json(r: Recommendations, key: &str, with_fallback: bool) -> Value {
    let mut rows: Vec<Value> = r
        .rows
        .into_iter()
        .map(|row| {
            let mut v = json!({key: row.subject, "variant": row.variant, "model": row.model,
                               "model_version": row.model_version, "items": row.items});
            if with_fallback {
                v["fallback"] = json!(row.fallback);
            }
            v
        })
        .collect();
    if r.batch || rows.len() != 1 {
        return json!({"deployment": r.deployment, "request_id": r.request_id, "results": rows});
    }
    let mut v = rows.remove(0);
    v["deployment"] = json!(r.deployment);
    v["request_id"] = json!(r.request_id);
    v
}

async fn recommend(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, InferError> {
    let b: RecommendBody = parse(&body)?;
    let query = RecommendQuery {
        users: subjects(b.user, b.users, "user")?,
        k: b.k,
        exclude_seen: b.exclude_seen,
        include_items: ids(b.include_items, "item")?,
        exclude_items: ids(b.exclude_items, "item")?,
    };
    let out = s.serving.recommend(&name, query, &context(&headers, arrived)).await?;
    Ok(Json(recommendations_json(out, "user", true)))
}

async fn similar(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Arrived(arrived): Arrived,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, InferError> {
    let b: SimilarBody = parse(&body)?;
    let query = SimilarQuery { items: subjects(b.item, b.items, "item")?, k: b.k };
    let out = s.serving.similar(&name, query, &context(&headers, arrived)).await?;
    Ok(Json(recommendations_json(out, "item", false)))
}

/// The Prometheus exposition: administrators only when authentication is on
/// (its series name every workspace's deployments; a scraper uses an
/// administrator's token), anyone when it is off.
pub(super) async fn metrics(crate::auth::Caller(caller): crate::auth::Caller) -> Response {
    if !caller.is_admin {
        return Failure::new(ErrorKind::PermissionDenied, "Permission denied: administrators only").text();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render()).into_response()
}
