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
}
