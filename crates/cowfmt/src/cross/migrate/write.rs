//! Writing a planned shared migration into its output, then reading the
//! output back as the report's store (a shared output is walked and checked
//! again; a classic one is settled as repair and persistent migration do).

use crate::device::Device;
use crate::error::Error;
use crate::job::JobError;
use crate::persistent::migrate::StoreShape;
use crate::persistent::rebuild::{check_output, settle_output, Settled};
use crate::persistent::stream::ClassicWriter;
use crate::shared::stream::{SharedInput, SharedWriter};

use super::plan::{SharedPlan, Target};
use super::report::{shared_shape, SharedMigrateReport, Side, SHARED_MIGRATE_FORMAT_VERSION};

/// Writes the migrated store into `output`. `origin` is needed for a larger
/// chunk size; `output_zeroed` says the output holds only zeros (a new image),
/// so zero data chunks are not written and a classic output needs no stale
/// areas zeroed. `progress` gets (done,
/// total) output chunks.
pub fn migrate(
    plan: &SharedPlan,
    origin: Option<&Device>,
    output: Device,
    output_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SharedMigrateReport, JobError> {
    let out_path = output.path().to_path_buf();
    if plan.needs_origin() && origin.is_none() {
        return Err(Error::Invalid(format!(
            "{}: a larger chunk size needs --origin DEV (the origin device), to read the pieces that never changed",
            out_path.display()
        ))
        .into());
    }
    let rechunk = plan.rechunk;
    let (to, totals, relocation, stale_areas_zeroed) = match plan.target {
        Target::Shared { snapmask, journal } => {
            if !plan.fits(output.size_bytes())? {
                return Err(Error::Invalid(format!(
                    "{}: the output has {} bytes, but the shared store needs at least {}",
                    out_path.display(),
                    output.size_bytes(),
                    plan.needed_bytes()?
                ))
                .into());
            }
            let chunk_bytes = rechunk.out_bytes;
            let journal_chunks = journal.chunks(output.size_bytes() / chunk_bytes, chunk_bytes);
            let mut writer =
                SharedWriter::new(&output, plan.to_chunk_size, journal_chunks, output_zeroed)?;
            let totals = plan.run(origin, &mut writer, progress)?;
            writer.finish(snapmask)?;
            output.sync()?;
            let written = SharedInput::open(output)?;
            let stats = written.survey()?;
            if stats.records != totals.stored {
                return Err(Error::Invalid(format!(
                    "{}: {} records were written but {} read back",
                    out_path.display(),
                    totals.stored,
                    stats.records
                ))
                .into());
            }
            let shape = shared_shape(&written, &stats)?;
            (Side::Shared(shape), totals, None, 0)
        }
        Target::Classic { kind } => {
            check_output(
                &output,
                plan.needed_bytes()?,
                "the exported snapshot",
                plan.to_chunk_size,
                kind,
            )?;
            let mut writer = ClassicWriter::new(output, plan.to_chunk_size, output_zeroed)?;
            let totals = plan.run(origin, &mut writer, progress)?;
            let device = writer.finish(true)?;
            let Settled {
                metadata,
                stale_areas_zeroed,
                relocation,
            } = settle_output(device, output_zeroed, kind)?;
            (
                Side::Classic(StoreShape::of(kind, &metadata)),
                totals,
                relocation,
                stale_areas_zeroed,
            )
        }
    };
    Ok(SharedMigrateReport {
        format_version: SHARED_MIGRATE_FORMAT_VERSION,
        job: plan.job,
        mode: plan.mode(),
        factor: rechunk.factor(),
        inputs: plan.reports.clone(),
        output: out_path.display().to_string(),
        space_before: plan.space_before(),
        space_after: to.used_bytes(),
        to,
        snapshot: plan.snapshot,
        copies: totals.copies,
        stored: totals.stored,
        pieces_from_origin: totals.pieces_from_origin,
        pieces_past_origin: totals.pieces_past_origin,
        relocation,
        stale_areas_zeroed,
    })
}
