//! Planning an import: classic stores of one origin into one new shared store,
//! input i becoming snapshot `ids[i]`, identical copies of an origin chunk
//! stored once.

use std::collections::HashSet;

use crate::error::Error;
use crate::job::{JobError, Rechunk};
use crate::kind::StoreKind;
use crate::persistent::PersistentStore;
use crate::shared::geometry::validate_chunk_size;
use crate::shared::mask::{self, MAX_SNAPSHOTS};
use crate::shared::stream::{survey, JournalSize};
use crate::SECTOR_BYTES;

use super::classic_input::ClassicInputs;
use super::plan::{refuse_snapshot_limit, Inputs, SharedPlan, Target};
use super::report::{InputReport, SharedJob, Side};

/// What to import into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// The kind the inputs are read as (`Persistent` or `Legacy`).
    pub kind: StoreKind,
    /// The snapshot id of each input, in order; `0..n` when `None`.
    pub ids: Option<Vec<u32>>,
    /// The output chunk size in sectors; the inputs' when `None`.
    pub chunk_size: Option<u32>,
    /// The journal of the new store.
    pub journal: JournalSize,
}

/// Checks the inputs (undamaged, valid, one chunk size) and the ids, and
/// surveys what the shared store will hold. `origin_bytes` is the origin's
/// size when known.
pub fn plan_import(
    stores: Vec<PersistentStore>,
    options: &ImportOptions,
    origin_bytes: Option<u64>,
) -> Result<SharedPlan, JobError> {
    let ids = check_ids(stores.len(), options.ids.as_deref())?;
    let inputs = ClassicInputs::open(stores, options.kind, &ids, origin_bytes)?;
    let from_cs = inputs.chunk_sectors;
    let to_cs = options.chunk_size.unwrap_or(from_cs);
    validate_chunk_size(u64::from(to_cs)).map_err(|e| {
        let hint = if options.chunk_size.is_none() {
            "; give a smaller --chunk-size for the shared store"
        } else {
            ""
        };
        Error::Invalid(format!("the shared store's {e}{hint}"))
    })?;
    let snapmask = ids.iter().fold(0, |m, &id| m | mask::bit(id));
    refuse_snapshot_limit(snapmask, to_cs)?;
    let rechunk = Rechunk {
        in_bytes: u64::from(from_cs) * SECTOR_BYTES,
        out_bytes: u64::from(to_cs) * SECTOR_BYTES,
        origin_bytes,
    };
    let survey = survey(&mut inputs.entries(), rechunk)?;
    let reports = inputs
        .shapes
        .iter()
        .zip(inputs.devices())
        .zip(&ids)
        .map(|((shape, device), &id)| InputReport {
            path: device.path().display().to_string(),
            snapshot: Some(id),
            shape: Side::Classic(shape.clone()),
        })
        .collect();
    Ok(SharedPlan {
        job: SharedJob::Import,
        inputs: Inputs::Classic(inputs),
        reports,
        rechunk,
        target: Target::Shared {
            snapmask,
            journal: options.journal,
        },
        to_chunk_size: to_cs,
        survey,
        counted: None,
        snapshot: None,
    })
}

/// The ids of `inputs` inputs: the given ones (one per input, distinct, 0-63)
/// or `0..inputs`.
fn check_ids(inputs: usize, ids: Option<&[u32]>) -> Result<Vec<u32>, JobError> {
    if inputs == 0 {
        return Err(Error::Invalid("an import needs at least one input store".to_string()).into());
    }
    if inputs > MAX_SNAPSHOTS as usize {
        return Err(Error::Invalid(format!(
            "{inputs} input stores are more than the {MAX_SNAPSHOTS} snapshots a shared store holds"
        ))
        .into());
    }
    let Some(ids) = ids else {
        return Ok((0..inputs as u32).collect());
    };
    if ids.len() != inputs {
        return Err(Error::Invalid(format!(
            "{} snapshot ids were given for {inputs} input stores; give one --ids entry per input",
            ids.len()
        ))
        .into());
    }
    let mut seen = HashSet::new();
    for &id in ids {
        if id >= MAX_SNAPSHOTS {
            return Err(Error::Invalid(format!(
                "snapshot id {id} is out of range (0-{})",
                MAX_SNAPSHOTS - 1
            ))
            .into());
        }
        if !seen.insert(id) {
            return Err(Error::Invalid(format!("snapshot id {id} is given twice")).into());
        }
    }
    Ok(ids.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_default_to_the_input_order_and_are_checked() {
        assert_eq!(check_ids(3, None).unwrap(), vec![0, 1, 2]);
        assert_eq!(check_ids(2, Some(&[7, 3])).unwrap(), vec![7, 3]);
        assert!(check_ids(2, Some(&[1])).is_err());
        assert!(check_ids(2, Some(&[1, 1])).is_err());
        assert!(check_ids(1, Some(&[64])).is_err());
        assert!(check_ids(0, None).is_err());
        assert!(check_ids(65, None).is_err());
    }
}
