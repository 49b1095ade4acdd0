//! Use-case errors: a domain error for the caller, or an internal failure.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] plinth_core::Error),
    /// Our failure (database, storage). The message is for logs, not clients.
    #[error("internal error: {0}")]
    Internal(String),
    /// The work was asked to stop (a job cancelled while it ran).
    #[error("cancelled")]
    Cancelled,
    /// A store we depend on cannot be reached now; retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// No, wrong or expired credentials (one sentence for all of them).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failed sign-ins; locked out for a while.
    #[error("{0}")]
    RateLimited(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> plinth_core::ErrorKind {
        match self {
            Error::Domain(d) => d.kind(),
            Error::Internal(_) => plinth_core::ErrorKind::Internal,
            Error::Cancelled => plinth_core::ErrorKind::Cancelled,
            Error::Unavailable(_) => plinth_core::ErrorKind::Overloaded,
            Error::Unauthenticated(_) => plinth_core::ErrorKind::Unauthenticated,
            Error::RateLimited(_) => plinth_core::ErrorKind::RateLimited,
        }
    }
}

impl From<plinth_store::Error> for Error {
    fn from(e: plinth_store::Error) -> Self {
        match e {
            plinth_store::Error::Domain(d) => Error::Domain(d),
            plinth_store::Error::Database(m) => Error::Internal(m),
            plinth_store::Error::Closed => Error::Internal("the metadata store is closed".into()),
            e @ plinth_store::Error::Unavailable(_) => Error::Unavailable(e.to_string()),
        }
    }
}

impl From<plinth_artifacts::Error> for Error {
    fn from(e: plinth_artifacts::Error) -> Self {
        use plinth_artifacts::Error as A;
        match e {
            A::InvalidPath(m) => Error::Domain(plinth_core::Error::InvalidParameter(m)),
            A::NotFound(p) => Error::Domain(plinth_core::Error::NotFound(format!("Artifact not found: {p}"))),
            A::Upload(m) => Error::Domain(plinth_core::Error::InvalidParameter(format!("Upload failed: {m}"))),
            A::Storage(m) => Error::Internal(m),
            e @ A::Unavailable(_) => Error::Unavailable(e.to_string()),
        }
    }
}

impl From<plinth_ml::Error> for Error {
    /// Bad data and parameters are the caller's; a model file we cannot
    /// write or read is ours.
    fn from(e: plinth_ml::Error) -> Self {
        match e {
            plinth_ml::Error::Data(m) | plinth_ml::Error::Param(m) => plinth_core::Error::invalid(m).into(),
            plinth_ml::Error::Io(e) => plinth_core::Error::invalid(e.to_string()).into(),
            plinth_ml::Error::Model(m) => Error::Internal(m),
            plinth_ml::Error::Cancelled => Error::Cancelled,
        }
    }
}
