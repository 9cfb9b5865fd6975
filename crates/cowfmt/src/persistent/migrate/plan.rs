//! Checking a migration's input and working out what the output needs.

use std::collections::HashSet;
use std::path::PathBuf;

use super::report::StoreShape;
use crate::error::Error;
use crate::job::JobError;
pub use crate::job::MigrateMode;
use crate::kind::StoreKind;
use crate::persistent::check::CheckOptions;
use crate::persistent::header::validate_chunk_size;
use crate::persistent::layout::Geometry;
use crate::persistent::rebuild::{chunks_needed, refuse_damaged};
use crate::persistent::store::{Metadata, PersistentStore};
use crate::persistent::LEGACY_CHUNK_LIMIT;
use crate::SECTOR_BYTES;

/// What to migrate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateOptions {
    /// The kind the input is read as (`Persistent` or `Legacy`).
    pub from_kind: StoreKind,
    /// The kind of the output; the input's kind when `None`.
    pub to_kind: Option<StoreKind>,
    /// The output chunk size in sectors; the input's when `None`.
    pub chunk_size: Option<u32>,
}

/// A checked migration, ready to write.
#[derive(Debug)]
pub struct MigratePlan {
    pub(super) metadata: Metadata,
    pub(super) input: PathBuf,
    pub(super) from: StoreShape,
    /// The output kind.
    pub to_kind: StoreKind,
    /// The output chunk size in sectors.
    pub to_chunk_size: u32,
    /// How records are carried over.
    pub mode: MigrateMode,
    /// Chunks of the smaller size in one of the larger (1 for a copy).
    pub factor: u64,
    /// Records the output will hold.
    pub output_records: u64,
    /// The smallest output device, in bytes, that holds the migrated store.
    pub needed_bytes: u64,
    /// Whether the origin device is needed (a larger chunk size).
    pub needs_origin: bool,
    /// Steps of the data copy, for progress: records copied in place, or
    /// output chunks written.
    pub copy_steps: u64,
    pub(super) origin_bytes: Option<u64>,
}

impl MigratePlan {
    /// The input as the kernel reads it.
    pub fn from(&self) -> &StoreShape {
        &self.from
    }
}

/// Checks the input and works out what the migration needs. `origin_bytes` is
/// the origin's size when the origin is known. Fails with
/// [`JobError::Damage`] when the input has problems (repair it first).
pub fn plan(
    store: &PersistentStore,
    options: &MigrateOptions,
    origin_bytes: Option<u64>,
) -> std::result::Result<MigratePlan, JobError> {
    let path = store.device().path().to_path_buf();
    refuse_damaged(store, &CheckOptions::default())?;
    let metadata = store.load()?;
    let from_cs = metadata.geometry.chunk_sectors();
    let to_cs = options.chunk_size.unwrap_or(from_cs);
    validate_chunk_size(u64::from(to_cs)).map_err(|e| Error::Invalid(format!("target {e}")))?;
    let to_kind = options.to_kind.unwrap_or(options.from_kind);
    if !to_kind.is_snap_v1() {
        return Err(Error::Invalid(format!(
            "cannot migrate {} to a {to_kind} store",
            path.display()
        ))
        .into());
    }
    let (mode, factor) = match to_cs.cmp(&from_cs) {
        std::cmp::Ordering::Equal => (MigrateMode::Copy, 1),
        std::cmp::Ordering::Less => (MigrateMode::Split, u64::from(from_cs / to_cs)),
        std::cmp::Ordering::Greater => (MigrateMode::Merge, u64::from(to_cs / from_cs)),
    };
    let from_bytes = metadata.geometry.chunk_bytes() as u64;
    let to_bytes = u64::from(to_cs) * SECTOR_BYTES;
    if let Some(origin_bytes) = origin_bytes {
        let origin_chunks = origin_bytes.div_ceil(from_bytes);
        if let Some(placed) = metadata
            .records
            .iter()
            .find(|p| p.record.old_chunk >= origin_chunks)
        {
            return Err(JobError::Damage(format!(
                "{}: area {} record {}: old_chunk {} lies past the end of the origin ({origin_chunks} chunks); repair the store with the origin's size first",
                path.display(),
                placed.area,
                placed.index,
                placed.record.old_chunk
            )));
        }
    }
    let records = &metadata.records;
    let overflow = |old: u64| {
        Error::Invalid(format!(
            "{}: old_chunk {old} times {factor} does not fit 64 bits",
            path.display()
        ))
    };
    let (output_records, max_old, copy_steps) = match mode {
        MigrateMode::Copy => (
            records.len() as u64,
            records.iter().map(|p| p.record.old_chunk).max(),
            records.len() as u64,
        ),
        MigrateMode::Split => {
            let mut count = 0u64;
            let mut max_old = None;
            for placed in records {
                let old = placed.record.old_chunk;
                let first = old.checked_mul(factor).ok_or_else(|| overflow(old))?;
                first.checked_add(factor - 1).ok_or_else(|| overflow(old))?;
                let pieces = match origin_bytes {
                    Some(bytes) => bytes.div_ceil(to_bytes).saturating_sub(first).min(factor),
                    None => factor,
                };
                if pieces > 0 {
                    max_old = max_old.max(Some(first + pieces - 1));
                }
                count += pieces;
            }
            (count, max_old, count)
        }
        MigrateMode::Merge => {
            let groups: HashSet<u64> = records
                .iter()
                .map(|p| p.record.old_chunk / factor)
                .collect();
            let count = groups.len() as u64;
            (count, groups.into_iter().max(), count)
        }
    };
    if to_kind == StoreKind::Legacy {
        if let Some(old) = max_old.filter(|&old| old >= LEGACY_CHUNK_LIMIT) {
            return Err(Error::Invalid(format!(
                "{}: origin chunk {old} of the migrated store does not fit the 32 bits of a legacy store",
                path.display()
            ))
            .into());
        }
    }
    let to_geometry = Geometry::new(to_cs, 0).map_err(|e| Error::format(&path, e))?;
    let needed_chunks = match mode {
        MigrateMode::Copy => copy_chunks_needed(&metadata, to_kind),
        _ => {
            let epa = to_geometry.exceptions_per_area();
            let relocation =
                to_kind == StoreKind::Legacy && output_records > 0 && output_records % epa == 0;
            chunks_needed(&to_geometry, output_records + u64::from(relocation))
        }
    };
    let needed_bytes = needed_chunks.checked_mul(to_bytes).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: the migrated store would not fit 64 bits of bytes",
            path.display()
        ))
    })?;
    let from = StoreShape::of(options.from_kind, &metadata);
    Ok(MigratePlan {
        metadata,
        input: path,
        from,
        to_kind,
        to_chunk_size: to_cs,
        mode,
        factor,
        output_records,
        needed_bytes,
        needs_origin: mode == MigrateMode::Merge,
        copy_steps,
        origin_bytes,
    })
}

/// Chunks a same-chunk-size copy needs: every data chunk and area in place, and
/// room to move the last data chunk for a legacy output.
fn copy_chunks_needed(metadata: &Metadata, to_kind: StoreKind) -> u64 {
    let geometry = &metadata.geometry;
    let epa = geometry.exceptions_per_area();
    let areas = metadata.records.len() as u64 / epa;
    let mut chunks = geometry.area_location(areas) + 1;
    if let Some(max_new) = metadata.records.iter().map(|p| p.record.new_chunk).max() {
        chunks = chunks.max(max_new + 1);
        if to_kind == StoreKind::Legacy && geometry.is_metadata_chunk(max_new + 1) {
            chunks = chunks.max(max_new + 3);
        }
    }
    chunks
}
