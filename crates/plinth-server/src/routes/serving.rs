//! The inference edge: `/v1/deployments/{name}/recommend|similar`, bounded
//! by a concurrency limit (503 + Retry-After beyond it), and `/metrics`.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::InferError;
use crate::state::AppState;

pub const UNIT_HEADER: &str = "x-plinth-unit";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/deployments/{name}/recommend", post(recommend))
        .route("/v1/deployments/{name}/similar", post(similar))
        .layer(axum::middleware::from_fn_with_state(state, limit_concurrency))
        .route("/metrics", get(metrics))
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

fn parse<T: DeserializeOwned>(s: &AppState, body: &Bytes) -> Result<T, InferError> {
    if body.len() > s.config.max_request_bytes {
        return Err(InferError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Request body exceeds the limit of {} bytes", s.config.max_request_bytes),
        });
    }
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, InferError> {
    let req = parse(&s, &body)?;
    let out = s.serving.recommend(&name, req, header_str(&headers, UNIT_HEADER), request_id(&headers)).await?;
    Ok(Json(out))
}

async fn similar(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, InferError> {
    let req = parse(&s, &body)?;
    let out = s.serving.similar(&name, req, header_str(&headers, UNIT_HEADER), request_id(&headers)).await?;
    Ok(Json(out))
}

async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::metrics::render())
}
