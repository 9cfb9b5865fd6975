//! Writing a planned migration into its output and settling the result.

use super::copy::copy_in_place;
use super::plan::{MigrateMode, MigratePlan};
use super::rechunk::{merge, split, PieceCounts};
use super::report::{MigrateReport, StoreShape, MIGRATE_FORMAT_VERSION};
use crate::device::Device;
use crate::error::Error;
use crate::persistent::rebuild::{check_output, settle_output, JobError, Settled};
use crate::persistent::store::PersistentStore;

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
    let mut counts = PieceCounts::default();
    let device = match plan.mode {
        MigrateMode::Copy => copy_in_place(
            store.device(),
            &plan.metadata,
            output,
            &out_geometry,
            output_zeroed,
            progress,
        )?,
        MigrateMode::Split => split(
            store.device(),
            plan,
            output,
            output_zeroed,
            &mut counts,
            progress,
        )?,
        MigrateMode::Merge => {
            let origin = origin.ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: a larger chunk size needs --origin DEV (the origin device), to read the pieces that never changed",
                    plan.input.display()
                ))
            })?;
            merge(
                store.device(),
                plan,
                origin,
                output,
                output_zeroed,
                &mut counts,
                progress,
            )?
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
        pieces_from_origin: counts.from_origin,
        pieces_past_origin: counts.past_origin,
        relocation,
        stale_areas_zeroed,
    })
}
