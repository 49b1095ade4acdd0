//! What can go wrong in the domain, independent of any wire format.

/// A domain error. Each variant is a caller's mistake or a state conflict;
/// failures of our own machinery live in the crates that own the machinery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request carried a value the domain rejects.
    #[error("{0}")]
    InvalidParameter(String),
    /// The named entity does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An entity with that identity already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The entity exists but is in a state that forbids the operation.
    #[error("{0}")]
    InvalidState(String),
    /// The caller may read the entity but not do this to it.
    #[error("{0}")]
    PermissionDenied(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParameter(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    pub fn exists(msg: impl Into<String>) -> Self {
        Error::AlreadyExists(msg.into())
    }
    /// MLflow's refusal of what a caller may read but not do.
    pub fn denied() -> Self {
        Error::PermissionDenied("Permission denied".into())
    }
}

/// What kind of failure an error is: every crate's error says its kind
/// ([`Error::kind`], `plinth_store::Error::kind`, …), and each edge maps
/// kinds to its wire format in exactly one function (MLflow's JSON, OIP's
/// JSON, gRPC status, the UI's page, the job failure message). The HTTP
/// status and MLflow `error_code` of each kind are this table, shared by the
/// server and by the CLI's remote client, which reads codes back into kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A value the domain rejects (caller's mistake).
    InvalidParameter,
    /// A request that does not parse (caller's mistake).
    Malformed,
    /// The named entity does not exist.
    NotFound,
    /// No API endpoint at that path.
    NoSuchEndpoint,
    /// An entity with that identity already exists.
    AlreadyExists,
    /// The entity is in a state that forbids the operation.
    InvalidState,
    /// The request body is over the limit.
    TooLarge,
    /// The caller did not prove who it is (no, wrong or expired credentials).
    Unauthenticated,
    /// The caller may not do this (a foreign origin, a Host not allowed, no permission).
    PermissionDenied,
    /// The caller tried too often (failed sign-ins); retry later.
    RateLimited,
    /// The server sheds load; retry shortly.
    Overloaded,
    /// The operation exists in the protocol but not in Plinth.
    NotImplemented,
    /// The work was asked to stop.
    Cancelled,
    /// Our failure (database, storage, a bug). Never the caller's.
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidParameter,
        ErrorKind::Malformed,
        ErrorKind::NotFound,
        ErrorKind::NoSuchEndpoint,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidState,
        ErrorKind::TooLarge,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::RateLimited,
        ErrorKind::Overloaded,
        ErrorKind::NotImplemented,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];

    /// The HTTP status and MLflow `error_code` (MLflow's `databricks.proto`
    /// names and the statuses its server answers them with).
    pub fn http(self) -> (u16, &'static str) {
        match self {
            ErrorKind::InvalidParameter => (400, "INVALID_PARAMETER_VALUE"),
            ErrorKind::Malformed => (400, "BAD_REQUEST"),
            ErrorKind::NotFound => (404, "RESOURCE_DOES_NOT_EXIST"),
            ErrorKind::NoSuchEndpoint => (404, "ENDPOINT_NOT_FOUND"),
            ErrorKind::AlreadyExists => (400, "RESOURCE_ALREADY_EXISTS"),
            ErrorKind::InvalidState => (400, "INVALID_STATE"),
            ErrorKind::TooLarge => (413, "REQUEST_LIMIT_EXCEEDED"),
            ErrorKind::Unauthenticated => (401, "UNAUTHENTICATED"),
            ErrorKind::PermissionDenied => (403, "PERMISSION_DENIED"),
            ErrorKind::RateLimited => (429, "RESOURCE_EXHAUSTED"),
            ErrorKind::Overloaded => (503, "TEMPORARILY_UNAVAILABLE"),
            ErrorKind::NotImplemented => (501, "NOT_IMPLEMENTED"),
            ErrorKind::Cancelled => (409, "ABORTED"),
            ErrorKind::Internal => (500, "INTERNAL_ERROR"),
        }
    }

    /// The kind an MLflow `error_code` names (the inverse of [`ErrorKind::http`]).
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.http().1 == code)
    }

    /// Whether the caller can fix it (a 4xx); else it is ours or transient.
    pub fn is_callers(self) -> bool {
        (400..500).contains(&self.http().0)
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidParameter(_) => ErrorKind::InvalidParameter,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::InvalidState(_) => ErrorKind::InvalidState,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
        }
    }

    /// The domain error of a caller's kind, for a client that reads kinds
    /// back from the wire; `None` for kinds that are not the domain's.
    pub fn of_kind(kind: ErrorKind, message: String) -> Option<Error> {
        Some(match kind {
            ErrorKind::InvalidParameter | ErrorKind::Malformed | ErrorKind::TooLarge => {
                Error::InvalidParameter(message)
            }
            ErrorKind::NotFound | ErrorKind::NoSuchEndpoint => Error::NotFound(message),
            ErrorKind::AlreadyExists => Error::AlreadyExists(message),
            ErrorKind::InvalidState => Error::InvalidState(message),
            ErrorKind::PermissionDenied => Error::PermissionDenied(message),
            ErrorKind::Unauthenticated
            | ErrorKind::RateLimited
            | ErrorKind::Overloaded
            | ErrorKind::NotImplemented
            | ErrorKind::Cancelled
            | ErrorKind::Internal => {
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_its_kind() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.http().1), Some(kind));
        }
        assert!(ErrorKind::InvalidState.is_callers());
        assert!(!ErrorKind::Internal.is_callers() && !ErrorKind::Overloaded.is_callers());
    }
}
