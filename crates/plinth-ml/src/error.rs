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
