//! The steps every kind's repair driver takes the same way: refusing a
//! salvage that kept nothing, and writing a salvage in the copying phase.
//! Each kind's `repair::job` runs them on its own salvage ([`Salvaged`]).

use std::path::Path;

use super::{in_phase, Phase, RepairError, RepairEvents};
use crate::job::JobError;
use crate::progress::Progress;

/// A kind's salvage as the common driver sees it, before anything is written.
pub trait Salvaged: Sized {
    /// The kind's repair report.
    type Report;
    /// `None` when something was salvaged; else how many records were
    /// dropped and whether the rest could not be read.
    fn nothing_salvaged(&self) -> Option<(u64, bool)>;
    /// The report of what was found.
    fn into_report(self) -> Self::Report;
}

/// `salvage`, or the refusal of a repair of `input` that salvaged nothing (no
/// output is written then).
pub fn refuse_if_nothing_salvaged<S: Salvaged>(
    input: &Path,
    salvage: S,
) -> Result<S, RepairError<S::Report>> {
    let Some((dropped, rest_unreadable)) = salvage.nothing_salvaged() else {
        return Ok(salvage);
    };
    Err(RepairError::NothingSalvaged {
        message: format!(
            "{}: nothing could be salvaged ({dropped} record{} dropped{}); no output written",
            input.display(),
            if dropped == 1 { "" } else { "s" },
            if rest_unreadable {
                ", the rest unreadable"
            } else {
                ""
            }
        ),
        report: Box::new(salvage.into_report()),
    })
}

/// Runs `write`, which writes a salvage, in the copying phase that counts
/// to `total`.
pub fn write_salvage<R>(
    events: &mut dyn RepairEvents,
    total: u64,
    write: impl FnOnce(&mut Progress) -> Result<R, JobError>,
) -> Result<R, RepairError<R>> {
    Ok(in_phase(events, Phase::Copying(total), write)?)
}
