//! Planning the re-chunking or compaction of a shared store into a new one:
//! every snapshot keeps reading the same, data lies contiguous, the tree is
//! fresh, and copies that became identical are stored once.

use crate::error::Error;
use crate::job::{JobError, Rechunk};
use crate::shared::geometry::validate_chunk_size;
use crate::shared::stream::{survey, JournalSize, SharedInput};
use crate::SECTOR_BYTES;

use super::plan::{refuse_snapshot_limit, Inputs, SharedPlan, Target};
use super::report::{shared_shape, InputReport, SharedJob, Side};

/// What to re-chunk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RechunkOptions {
    /// The output chunk size in sectors; the input's (a compaction) when `None`.
    pub chunk_size: Option<u32>,
    /// The new journal; the input's journal bytes when `None`.
    pub journal: Option<JournalSize>,
}

/// Checks the store and surveys what the new one will hold. `origin_bytes` is
/// the origin's size when known.
pub fn plan_rechunk(
    input: SharedInput,
    options: &RechunkOptions,
    origin_bytes: Option<u64>,
) -> Result<SharedPlan, JobError> {
    let from_cs = input.header().chunk_size;
    let to_cs = options.chunk_size.unwrap_or(from_cs);
    validate_chunk_size(u64::from(to_cs))
        .map_err(|e| Error::Invalid(format!("the shared store's {e}")))?;
    let rechunk = Rechunk {
        in_bytes: u64::from(from_cs) * SECTOR_BYTES,
        out_bytes: u64::from(to_cs) * SECTOR_BYTES,
        origin_bytes,
    };
    let journal = options.journal.unwrap_or(JournalSize::Bytes(
        input.geometry().nr_journal_chunks * rechunk.in_bytes,
    ));
    let snapmask = input.header().snapmask;
    refuse_snapshot_limit(snapmask, to_cs)?;
    let (survey, stats) = {
        let mut entries = input.entries(u64::MAX)?;
        let survey = survey(&mut entries, rechunk)?;
        (survey, entries.stats)
    };
    let reports = vec![InputReport {
        path: input.device().path().display().to_string(),
        snapshot: None,
        shape: Side::Shared(shared_shape(&input, &stats)?),
    }];
    Ok(SharedPlan {
        job: SharedJob::Rechunk,
        inputs: Inputs::Shared {
            input,
            filter: u64::MAX,
        },
        reports,
        rechunk,
        target: Target::Shared { snapmask, journal },
        to_chunk_size: to_cs,
        survey,
        counted: None,
        snapshot: None,
    })
}
