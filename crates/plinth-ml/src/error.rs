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
    /// A progress callback asked training to stop.
    #[error("training was cancelled")]
    Cancelled,
}

impl Error {
    /// Bad data, parameters and unreadable input files are the caller's; a
    /// model file we cannot write or read back is ours.
    pub fn kind(&self) -> plinth_core::ErrorKind {
        use plinth_core::ErrorKind as K;
        match self {
            Error::Data(_) | Error::Param(_) | Error::Io(_) => K::InvalidParameter,
            Error::Model(_) => K::Internal,
            Error::Cancelled => K::Cancelled,
        }
    }
}

/// What a training loop's progress callback answers: `()` or
/// `ControlFlow::Continue(())` to go on, `ControlFlow::Break(())` to stop
/// (the training then returns [`Error::Cancelled`]).
pub trait Proceed {
    fn stop(self) -> bool;
}

impl Proceed for () {
    fn stop(self) -> bool {
        false
    }
}

impl Proceed for std::ops::ControlFlow<()> {
    fn stop(self) -> bool {
        self.is_break()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
