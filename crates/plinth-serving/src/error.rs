//! Serving errors, each with its kind; the server maps kinds to each wire
//! format once.

use plinth_core::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the platform (store, registry, artifacts), kind kept.
    #[error(transparent)]
    Engine(#[from] plinth_engine::Error),
    #[error("{0}")]
    NotFound(String),
    /// A request or model that cannot be served (the caller's).
    #[error("{0}")]
    Invalid(String),
    /// Ours (a model file that cannot be read, a worker gone). For logs.
    #[error("internal error: {0}")]
    Internal(String),
    /// The exposure log's or the events' store, kind kept (a store that is down is unavailable).
    #[error(transparent)]
    Segments(#[from] crate::segments::SegmentError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Engine(e) => e.kind(),
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Invalid(_) => ErrorKind::InvalidParameter,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Segments(e) => e.kind(),
        }
    }
}

impl From<plinth_core::Error> for Error {
    fn from(e: plinth_core::Error) -> Self {
        Error::Engine(e.into())
    }
}
