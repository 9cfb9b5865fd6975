//! How a repair ends: a finished job with its report, or an error saying
//! whether the store's damage or something else stopped it.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::finding::{Finding, Severity};
use crate::job::JobError;

/// A repair that ran to its end.
#[derive(Debug)]
pub struct Finished<R> {
    /// What was kept, dropped and written.
    pub report: R,
    /// Where the salvaged store was written (`None` for a dry run).
    pub output: Option<PathBuf>,
    /// The problems the check of the written store still found, as one
    /// sentence naming the first; `None` when it is clean.
    pub problems: Option<String>,
}

impl<R> Finished<R> {
    /// A dry run: the analysis's report, nothing written.
    pub fn dry_run(report: R) -> Self {
        Finished {
            report,
            output: None,
            problems: None,
        }
    }

    /// A store written to `output`, whose check found `findings`.
    pub fn written(report: R, output: &Path, findings: &[Finding]) -> Self {
        Finished {
            problems: remaining_problems(findings, output),
            report,
            output: Some(output.to_path_buf()),
        }
    }
}

/// What a repair's outcome says about the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every record was kept.
    Kept,
    /// Records were lost (dropped, or in unreadable ranges).
    Lost,
    /// Nothing could be salvaged from a store that held something.
    NothingSalvaged,
}

impl Verdict {
    /// The verdict of a report that says whether nothing was salvaged and
    /// whether records were lost.
    pub fn of(nothing_salvaged: bool, records_lost: bool) -> Self {
        if nothing_salvaged {
            Verdict::NothingSalvaged
        } else if records_lost {
            Verdict::Lost
        } else {
            Verdict::Kept
        }
    }
}

/// Why a repair stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepairError<R> {
    /// The store's damage keeps the job from completing.
    #[error("{0}")]
    Damage(String),
    /// Nothing could be salvaged, so nothing was written; the report says
    /// what was dropped.
    #[error("{message}")]
    NothingSalvaged {
        /// What the analysis found.
        report: Box<R>,
        /// One sentence naming the input.
        message: String,
    },
    /// Anything else: I/O, a bad request, not a store.
    #[error(transparent)]
    Failed(#[from] Error),
    /// An OS-level failure outside a device read or write.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl<R> From<JobError> for RepairError<R> {
    fn from(error: JobError) -> Self {
        match error {
            JobError::Damage(message) => RepairError::Damage(message),
            JobError::Failed(error) => RepairError::Failed(error),
        }
    }
}

impl<R> RepairError<R> {
    /// The same error with its report turned into another type.
    pub fn map_report<S>(self, into: impl FnOnce(R) -> S) -> RepairError<S> {
        match self {
            RepairError::Damage(message) => RepairError::Damage(message),
            RepairError::NothingSalvaged { report, message } => RepairError::NothingSalvaged {
                report: Box::new(into(*report)),
                message,
            },
            RepairError::Failed(error) => RepairError::Failed(error),
            RepairError::Io(error) => RepairError::Io(error),
        }
    }
}

/// The errors the check of a freshly written `output` still finds, as one
/// sentence naming the first; `None` when the output is clean.
pub fn remaining_problems(findings: &[Finding], output: &Path) -> Option<String> {
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let first = errors.first()?;
    Some(format!(
        "{}: the repaired store still has {} problem{}: {}",
        output.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        first.message
    ))
}

/// An invalid request: one sentence, shown as it is.
pub(crate) fn refused<R>(message: String) -> RepairError<R> {
    RepairError::Failed(Error::Invalid(message))
}
