//! Serving errors; the server maps them to HTTP once.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// Ours (storage, a model file that cannot be read). For logs.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<plinth_engine::Error> for Error {
    fn from(e: plinth_engine::Error) -> Self {
        use plinth_core::Error as D;
        match e {
            plinth_engine::Error::Domain(D::NotFound(m)) => Error::NotFound(m),
            plinth_engine::Error::Domain(D::AlreadyExists(m)) => Error::AlreadyExists(m),
            plinth_engine::Error::Domain(d) => Error::Invalid(d.to_string()),
            plinth_engine::Error::Internal(m) => Error::Internal(m),
            // Serving never cancels engine work; if it happens, it is ours.
            plinth_engine::Error::Cancelled => Error::Internal("engine work was cancelled".into()),
        }
    }
}
