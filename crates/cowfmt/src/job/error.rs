//! The error a repair or migration stops with.

use crate::error::Error;

/// Why a repair or migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store's damage keeps the job from completing (nothing could be
    /// salvaged, the chunk size cannot be found, the input needs repair first).
    #[error("{0}")]
    Damage(String),
    /// Anything else: I/O, a bad request, not a store.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl JobError {
    /// The library error of a job that stopped (damage reads as an invalid
    /// input, in the same words).
    pub(crate) fn into_error(self) -> Error {
        match self {
            JobError::Damage(message) => Error::Invalid(message),
            JobError::Failed(error) => error,
        }
    }
}
