//! Writing a planned migration into its output and settling the result.

use super::copy::copy_in_place;
use super::plan::{MigrateMode, MigratePlan};
use super::report::{MigrateReport, StoreShape, MIGRATE_FORMAT_VERSION};
use crate::device::Device;
use crate::error::Error;
use crate::job::{self, JobError, Rechunk, Totals};
use crate::persistent::rebuild::{check_output, settle_output, Settled};
use crate::persistent::store::PersistentStore;
use crate::persistent::stream::{ClassicWriter, RecordSource};
use crate::SECTOR_BYTES;

/// Writes the migrated store into `output`. `origin` is needed for a larger
/// chunk size; `output_zeroed` says the output is known to hold only zeros (a
/// new image), so stale areas and zero data chunks need no writing. `progress` gets (done, total)
/// copy steps.
pub fn migrate(
    store: &PersistentStore,
    plan: &MigratePlan,
    origin: Option<&Device>,
    output: Device,
    output_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> std::result::Result<MigrateReport, JobError> {
    let out_path = output.path().to_path_buf();
    let out_geometry = check_output(
        &output,
        plan.needed_bytes,
        "the migrated store",
        plan.to_chunk_size,
        plan.to_kind,
    )?;
    let valid = plan.metadata.header.is_valid();
    let mut totals = Totals::default();
    let device = match plan.mode {
        MigrateMode::Copy => copy_in_place(
            store.device(),
            &plan.metadata,
            output,
            &out_geometry,
            output_zeroed,
            progress,
        )?,
        MigrateMode::Split | MigrateMode::Merge => {
            if plan.mode == MigrateMode::Merge && origin.is_none() {
                return Err(Error::Invalid(format!(
                    "{}: a larger chunk size needs --origin DEV (the origin device), to read the pieces that never changed",
                    plan.input.display()
                ))
                .into());
            }
            let mut source = match plan.mode {
                MigrateMode::Merge => RecordSource::grouped(&plan.metadata.records, plan.factor),
                _ => RecordSource::in_record_order(&plan.metadata.records),
            };
            let rechunk = Rechunk {
                in_bytes: plan.metadata.geometry.chunk_bytes() as u64,
                out_bytes: u64::from(plan.to_chunk_size) * SECTOR_BYTES,
                origin_bytes: plan.origin_bytes,
            };
            let mut writer = ClassicWriter::new(output, plan.to_chunk_size, output_zeroed)?;
            totals = job::run(
                &mut source,
                rechunk,
                &[store.device()],
                origin,
                &mut writer,
                plan.copy_steps,
                progress,
            )?;
            writer.finish(valid)?
        }
    };
    let Settled {
        metadata,
        stale_areas_zeroed,
        relocation,
    } = settle_output(device, output_zeroed, plan.to_kind)?;
    debug_assert_eq!(metadata.header.is_valid(), valid);
    Ok(MigrateReport {
        format_version: MIGRATE_FORMAT_VERSION,
        input: plan.input.display().to_string(),
        output: out_path.display().to_string(),
        mode: plan.mode,
        factor: plan.factor,
        from: plan.from.clone(),
        to: StoreShape::of(plan.to_kind, &metadata),
        pieces_from_origin: totals.pieces_from_origin,
        pieces_past_origin: totals.pieces_past_origin,
        relocation,
        stale_areas_zeroed,
    })
}
