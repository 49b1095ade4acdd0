//! Store errors: the domain's, or the database's own failures.

/// A store error. `Domain` errors are the caller's; the others are ours.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] plinth_core::Error),
    #[error("database error: {0}")]
    Database(String),
    /// The database cannot be reached now (down, restarting, the network):
    /// the caller should retry shortly.
    #[error("the metadata database is unavailable; retry shortly ({0})")]
    Unavailable(String),
    #[error("the metadata store is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> plinth_core::ErrorKind {
        match self {
            Error::Domain(d) => d.kind(),
            Error::Database(_) | Error::Closed => plinth_core::ErrorKind::Internal,
            Error::Unavailable(_) => plinth_core::ErrorKind::Overloaded,
        }
    }

    /// The thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Domain(plinth_core::Error::NotFound(_)))
    }
}
