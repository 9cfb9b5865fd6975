//! Planning an export: one snapshot of a shared store into a classic
//! (persistent or legacy) store whose snapshot reads the same.

use crate::error::Error;
use crate::job::{JobError, Rechunk};
use crate::kind::StoreKind;
use crate::persistent::header::validate_chunk_size;
use crate::persistent::LEGACY_CHUNK_LIMIT;
use crate::shared::mask::{self, MAX_SNAPSHOTS};
use crate::shared::stream::{survey, SharedInput};
use crate::SECTOR_BYTES;

use super::plan::{Inputs, SharedPlan, Target};
use super::report::{shared_shape, InputReport, SharedJob, Side};

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The snapshot id.
    pub snapshot: u32,
    /// `Persistent` or `Legacy`.
    pub kind: StoreKind,
    /// The output chunk size in sectors; the shared store's when `None`.
    pub chunk_size: Option<u32>,
}

/// Checks the store and the snapshot and surveys what the classic store will
/// hold. `origin_bytes` is the origin's size when known.
pub fn plan_export(
    input: SharedInput,
    options: &ExportOptions,
    origin_bytes: Option<u64>,
) -> Result<SharedPlan, JobError> {
    let path = input.device().path().to_path_buf();
    if !options.kind.is_snap_v1() {
        return Err(Error::Invalid(format!(
            "{}: a snapshot can be exported to a persistent or legacy store, not to a {} store",
            path.display(),
            options.kind
        ))
        .into());
    }
    let snapmask = input.header().snapmask;
    let id = options.snapshot;
    if id >= MAX_SNAPSHOTS || snapmask & mask::bit(id) == 0 {
        return Err(Error::Invalid(format!(
            "{}: snapshot {id} does not exist (snapshots: {})",
            path.display(),
            mask::describe(snapmask)
        ))
        .into());
    }
    let from_cs = input.header().chunk_size;
    let to_cs = options.chunk_size.unwrap_or(from_cs);
    validate_chunk_size(u64::from(to_cs)).map_err(|e| Error::Invalid(format!("target {e}")))?;
    let rechunk = Rechunk {
        in_bytes: u64::from(from_cs) * SECTOR_BYTES,
        out_bytes: u64::from(to_cs) * SECTOR_BYTES,
        origin_bytes,
    };
    let (survey, stats) = {
        let mut entries = input.entries(mask::bit(id))?;
        let survey = survey(&mut entries, rechunk)?;
        (survey, entries.stats)
    };
    if options.kind == StoreKind::Legacy {
        if let Some(old) = survey.max_origin.filter(|&o| o >= LEGACY_CHUNK_LIMIT) {
            return Err(Error::Invalid(format!(
                "{}: origin chunk {old} of snapshot {id} does not fit the 32 bits of a legacy store",
                path.display()
            ))
            .into());
        }
    }
    let reports = vec![InputReport {
        path: path.display().to_string(),
        snapshot: None,
        shape: Side::Shared(shared_shape(&input, &stats)?),
    }];
    Ok(SharedPlan {
        job: SharedJob::Export,
        inputs: Inputs::Shared {
            input,
            filter: mask::bit(id),
        },
        reports,
        rechunk,
        target: Target::Classic { kind: options.kind },
        to_chunk_size: to_cs,
        survey,
        counted: None,
        snapshot: Some(id),
    })
}
