//! Opening what a repair writes (a new output, or the in-place repair's
//! backup) through the output guard, telling the caller what `force`
//! overwrites.

use std::path::Path;

use crate::output::{self, OutputRequest, PreparedOutput};

use super::events::{Notice, RepairEvents};
use super::request::RepairRequest;

/// Opens `path` for a repair's output of `size` bytes (`size_given`: the
/// caller asked for that size), refusing it when it is one of the request's
/// inputs or holds data without `force`.
pub fn open_for_writing(
    request: &RepairRequest,
    path: &Path,
    size: u64,
    size_given: bool,
    events: &mut dyn RepairEvents,
) -> crate::Result<PreparedOutput> {
    let prepared = output::open_output(&OutputRequest {
        path,
        size,
        size_given,
        force: request.force,
        inputs: &request.read_paths(),
    })?;
    if let Some(what) = prepared.overwritten.as_deref() {
        events.notice(Notice::Overwritten { path, what });
    }
    Ok(prepared)
}
