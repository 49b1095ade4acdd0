//! The one place errors become HTTP: MLflow's `{"error_code", "message"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plinth_core::Error as DomainError;
use serde_json::json;

/// An error on its way to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type ApiResult<T = Json<serde_json::Value>> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "INVALID_PARAMETER_VALUE", message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, code: "RESOURCE_DOES_NOT_EXIST", message: message.into() }
    }
    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "REQUEST_LIMIT_EXCEEDED",
            message: format!("Request body exceeds the limit of {limit} bytes"),
        }
    }
    pub fn endpoint_not_found(path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: format!("No API endpoint at {path}"),
        }
    }
}

impl From<plinth_engine::Error> for ApiError {
    fn from(e: plinth_engine::Error) -> Self {
        match e {
            plinth_engine::Error::Domain(d) => d.into(),
            plinth_engine::Error::Cancelled => ApiError {
                status: StatusCode::CONFLICT,
                code: "ABORTED",
                message: "The operation was cancelled".into(),
            },
            plinth_engine::Error::Internal(cause) => {
                // Our failure: the cause goes to the log, the client gets a generic message.
                tracing::error!(%cause, "internal error");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL_ERROR",
                    message: "Internal error; see the server log".into(),
                }
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidParameter(m) => ApiError::invalid(m),
            DomainError::NotFound(m) => ApiError::not_found(m),
            DomainError::AlreadyExists(m) => {
                ApiError { status: StatusCode::BAD_REQUEST, code: "RESOURCE_ALREADY_EXISTS", message: m }
            }
            DomainError::InvalidState(m) => {
                ApiError { status: StatusCode::BAD_REQUEST, code: "INVALID_STATE", message: m }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error_code": self.code, "message": self.message}))).into_response()
    }
}

impl From<plinth_serving::Error> for ApiError {
    fn from(e: plinth_serving::Error) -> Self {
        use plinth_serving::Error as S;
        match e {
            S::NotFound(m) => ApiError::not_found(m),
            S::Invalid(m) => ApiError::invalid(m),
            S::AlreadyExists(m) => {
                ApiError { status: StatusCode::BAD_REQUEST, code: "RESOURCE_ALREADY_EXISTS", message: m }
            }
            S::Internal(m) => plinth_engine::Error::Internal(m).into(),
        }
    }
}

/// Errors of the inference endpoints (`/v1/...`, `/v2/...`), in the Open
/// Inference Protocol's shape: `{"error": "..."}`.
#[derive(Debug)]
pub struct InferError {
    pub status: StatusCode,
    pub message: String,
}

impl InferError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        InferError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
    pub fn too_large(limit: usize) -> Self {
        InferError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("Request body exceeds the limit of {limit} bytes"),
        }
    }
}

impl IntoResponse for InferError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

impl From<plinth_serving::Error> for InferError {
    fn from(e: plinth_serving::Error) -> Self {
        use plinth_serving::Error as S;
        let (status, message) = match e {
            S::NotFound(m) => (StatusCode::NOT_FOUND, m),
            S::Invalid(m) | S::AlreadyExists(m) => (StatusCode::BAD_REQUEST, m),
            S::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error; see the server log".to_string())
            }
        };
        InferError { status, message }
    }
}
