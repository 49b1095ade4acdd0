//! The one place errors become wire formats. Every layer's error says its
//! kind (`plinth_core::ErrorKind`); here each becomes a [`Failure`] (kind,
//! client-facing message, HTTP status), an internal cause is logged once
//! and replaced by a generic message, and each surface has exactly one
//! mapping: [`Failure::mlflow`] (`{"error_code", "message"}`),
//! [`Failure::oip`] (`{"error"}`), [`Failure::grpc`] (a gRPC status) and
//! [`Failure::text`] (plain text).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use plinth_core::ErrorKind;
use serde_json::json;

/// An error on its way to a client.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    /// The kind's status, unless an HTTP-level refusal names a more precise
    /// one of the same class (405, 414, 431).
    pub status: StatusCode,
    pub message: String,
}

/// A temporary failure (shed load, the database unavailable) tells the client when to retry.
/// Failed sign-ins lock out for a while ([`plinth_engine::accounts`]); an
/// unauthenticated call is told which schemes it may use.
fn retry_after(kind: ErrorKind, mut response: Response) -> Response {
    use axum::http::HeaderValue;
    let h = response.headers_mut();
    match kind {
        ErrorKind::Overloaded => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        ErrorKind::RateLimited => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static(plinth_engine::accounts::LOCKOUT_SECONDS_TEXT));
        }
        ErrorKind::Unauthenticated => {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"plinth\", Bearer"));
        }
        _ => {}
    }
    response
}

const INTERNAL_MESSAGE: &str = "Internal error; see the server log";

impl Failure {
    /// A failure of `kind`. An internal one's cause goes to the log (here,
    /// once) and the client gets a generic message.
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Failure {
        let status = StatusCode::from_u16(kind.http().0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match kind {
            ErrorKind::Internal => {
                tracing::error!(cause = %message, "internal error");
                INTERNAL_MESSAGE.to_string()
            }
            _ => message.to_string(),
        };
        Failure { kind, status, message }
    }

    /// The same failure with a more precise status of the same class.
    pub fn with_status(self, status: StatusCode) -> Failure {
        debug_assert_eq!(status.as_u16() / 100, self.status.as_u16() / 100, "a status of the kind's class");
        Failure { status, ..self }
    }

    pub fn too_large(limit: usize) -> Failure {
        Failure::new(ErrorKind::TooLarge, format!("Request body exceeds the limit of {limit} bytes"))
    }

    /// MLflow's JSON: `{"error_code", "message"}`.
    pub fn mlflow(self) -> Response {
        let kind = self.kind;
        let body = plinth_mlflow::ErrorResponse { error_code: kind.http().1.to_string(), message: self.message };
        retry_after(kind, (self.status, Json(body)).into_response())
    }

    /// The Open Inference Protocol's JSON: `{"error"}`.
    pub fn oip(self) -> Response {
        retry_after(self.kind, (self.status, Json(json!({"error": self.message}))).into_response())
    }

    /// Plain text, for pages and everything else.
    pub fn text(self) -> Response {
        let kind = self.kind;
        let body = format!("{}\n", self.message);
        retry_after(kind, (self.status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
    }

    /// A gRPC status.
    pub fn grpc(self) -> tonic::Status {
        use tonic::Status;
        let m = self.message;
        match self.kind {
            ErrorKind::InvalidParameter | ErrorKind::Malformed => Status::invalid_argument(m),
            ErrorKind::NotFound | ErrorKind::NoSuchEndpoint => Status::not_found(m),
            ErrorKind::AlreadyExists => Status::already_exists(m),
            ErrorKind::InvalidState => Status::failed_precondition(m),
            ErrorKind::TooLarge => Status::resource_exhausted(m),
            ErrorKind::Unauthenticated => Status::unauthenticated(m),
            ErrorKind::PermissionDenied => Status::permission_denied(m),
            ErrorKind::RateLimited => Status::resource_exhausted(m),
            ErrorKind::Overloaded => Status::unavailable(m),
            ErrorKind::NotImplemented => Status::unimplemented(m),
            ErrorKind::Cancelled => Status::aborted(m),
            ErrorKind::Internal => Status::internal(m),
        }
    }
}

/// Every layer's error as a failure: its kind, its message.
macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Failure {
                Failure::new(e.kind(), e)
            }
        }
    )*};
}
failure_from!(plinth_core::Error, plinth_engine::Error, plinth_serving::Error);

/// Each surface's error from any layer's error, through its failure.
impl<E> From<E> for ApiError
where
    Failure: From<E>,
{
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl<E> From<E> for InferError
where
    Failure: From<E>,
{
    fn from(e: E) -> Self {
        InferError(e.into())
    }
}

/// An error of the MLflow and Plinth JSON APIs.
#[derive(Debug)]
pub struct ApiError(pub Failure);

pub type ApiResult<T = Json<serde_json::Value>> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError(Failure::new(ErrorKind::InvalidParameter, message.into()))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError(Failure::new(ErrorKind::Malformed, message.into()))
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError(Failure::new(ErrorKind::NotFound, message.into()))
    }
    pub fn too_large(limit: usize) -> Self {
        ApiError(Failure::too_large(limit))
    }
    pub fn endpoint_not_found(path: &str) -> Self {
        ApiError(Failure::new(ErrorKind::NoSuchEndpoint, format!("No API endpoint at {path}")))
    }
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.mlflow()
    }
}

/// An error of the inference endpoints (`/v1/...`, `/v2/...`).
#[derive(Debug)]
pub struct InferError(pub Failure);

impl InferError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        InferError(Failure::new(ErrorKind::InvalidParameter, message.into()))
    }
    pub fn too_large(limit: usize) -> Self {
        InferError(Failure::too_large(limit))
    }
}

impl IntoResponse for InferError {
    fn into_response(self) -> Response {
        self.0.oip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kind_is_shown_in_the_wrong_class() {
        for kind in ErrorKind::ALL {
            let f = Failure::new(kind, "x");
            let grpc = Failure::new(kind, "x").grpc().code();
            match kind {
                ErrorKind::Internal => {
                    assert!(f.status.is_server_error());
                    assert_eq!(f.message, INTERNAL_MESSAGE, "causes stay in the log");
                    assert_eq!(grpc, tonic::Code::Internal);
                }
                ErrorKind::Overloaded | ErrorKind::NotImplemented => assert!(f.status.is_server_error()),
                _ => {
                    assert!(f.status.is_client_error(), "{kind:?}");
                    assert_ne!(grpc, tonic::Code::Internal, "{kind:?}");
                }
            }
        }
    }

    #[test]
    fn a_temporary_failure_says_when_to_retry() {
        for kind in ErrorKind::ALL {
            for response in
                [Failure::new(kind, "x").mlflow(), Failure::new(kind, "x").oip(), Failure::new(kind, "x").text()]
            {
                let retry = response.headers().get(header::RETRY_AFTER).is_some();
                assert_eq!(retry, matches!(kind, ErrorKind::Overloaded | ErrorKind::RateLimited), "{kind:?}");
                let challenge = response.headers().get(header::WWW_AUTHENTICATE).is_some();
                assert_eq!(challenge, kind == ErrorKind::Unauthenticated, "{kind:?}");
            }
        }
        // The database unreachable is such a failure, on every wire.
        let down: Failure = plinth_engine::Error::from(plinth_store::Error::Unavailable("refused".into())).into();
        assert_eq!((down.kind, down.status.as_u16()), (ErrorKind::Overloaded, 503));
    }
}
