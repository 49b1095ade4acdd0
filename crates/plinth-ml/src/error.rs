//! Errors of data loading, parameters and model files.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input data, with where it was found.
    #[error("{0}")]
    Data(String),
    /// A hyperparameter or option out of range.
    #[error("{0}")]
    Param(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid model file: {0}")]
    Model(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
