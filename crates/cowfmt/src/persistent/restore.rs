//! Restoring a persistent or legacy store from a dump (`mkcow --from-dump`):
//! the geometry of the target, the header the dump asks for, every record
//! checked against the target before anything is written (while the records
//! are spooled when the head came first), then the areas written.

use std::any::Any;
use std::path::Path;

use super::dump::RestoreHead;
use super::header::{validate_chunk_size, DISK_VERSION};
use super::layout::HEADER_CHUNKS;
use super::stream::{record_of, SpooledRecords};
use super::writer::write_areas_streamed;
use super::{ExceptionRecord, Geometry, Header, LEGACY_CHUNK_LIMIT};
use crate::bitset::{DenseBitmap, SparseBitmap};
use crate::device::Device;
use crate::dump_read::spool::{read_back_error, RecordCheck, Spool};
use crate::error::{Error, Result};
use crate::job::{kept_entries, JobError};
use crate::kind::StoreKind;

/// Records checked together, their origin chunks' bits loaded ahead.
const VALIDATE_BATCH: usize = 256;

/// The geometry of a store of `chunk_sectors` on `size` bytes of `target`,
/// refused when the device cannot hold it (or, for `legacy`, has too many
/// chunks).
pub fn plan_geometry(
    target: &Path,
    chunk_sectors: u32,
    size: u64,
    kind: StoreKind,
) -> Result<Geometry> {
    let geometry = Geometry::new(chunk_sectors, size).map_err(|e| Error::format(target, e))?;
    if !geometry.holds_first_area() {
        return Err(Error::Invalid(format!(
            "{}: {size} bytes is too small for a store with {}-byte chunks: the header and metadata area 0 need {} bytes",
            target.display(),
            geometry.chunk_bytes(),
            2 * geometry.chunk_bytes()
        )));
    }
    if kind == StoreKind::Legacy && geometry.device_chunks() >= LEGACY_CHUNK_LIMIT {
        return Err(Error::Invalid(format!(
            "{}: {} chunks of {} bytes; a legacy store must have fewer than 2^32 chunks (the pre-2.6.29 code counts chunks in 32 bits): use a larger chunk size or --kind persistent",
            target.display(),
            geometry.device_chunks(),
            geometry.chunk_bytes()
        )));
    }
    Ok(geometry)
}

/// The header to write: the dump's chunk size and valid flag.
pub fn header_from_dump(head: &RestoreHead, path: &Path) -> Result<Header> {
    if let Err(e) = validate_chunk_size(u64::from(head.chunk_size)) {
        return Err(Error::Invalid(format!(
            "{}: chunk_size: {e}",
            path.display()
        )));
    }
    if let Some(version) = head.version.filter(|&v| v != DISK_VERSION) {
        return Err(Error::Invalid(format!(
            "{}: version {version} is not the only on-disk version the kernel reads ({DISK_VERSION})",
            path.display()
        )));
    }
    let mut header = Header::new(head.chunk_size);
    header.valid = match (head.valid, head.valid_raw) {
        (false, _) => 0,
        (true, Some(raw)) if raw != 0 => raw,
        (true, _) => 1,
    };
    Ok(header)
}

/// Checks every record against the target's geometry before anything is
/// written: with the check run while the records were spooled when it was
/// planned for this geometry and kind, otherwise by reading them back.
pub fn validate_records(
    records: &mut Spool,
    geometry: &Geometry,
    kind: StoreKind,
    dump_path: &Path,
    target: &Path,
    early: Option<Box<dyn RecordCheck>>,
) -> Result<()> {
    let count = records.len();
    let areas_needed = count / geometry.exceptions_per_area() + 1;
    if !geometry.area_fits(areas_needed - 1) {
        return Err(Error::Invalid(format!(
            "{}: {count} exceptions need {areas_needed} metadata areas, but area {} (chunk {}) lies past the end of {} ({} chunks)",
            dump_path.display(),
            areas_needed - 1,
            geometry.area_location(areas_needed - 1),
            target.display(),
            geometry.device_chunks()
        )));
    }
    let early = early
        .and_then(|check| check.into_any().downcast::<PersistentCheck>().ok())
        .filter(|check| {
            check.checker.geometry == *geometry
                && check.checker.legacy == (kind == StoreKind::Legacy)
        });
    let check = match early {
        Some(check) if check.index == count => *check,
        _ => {
            let mut check = PersistentCheck::new(*geometry, kind, target);
            let mut reader = records.read().map_err(read_back_error)?;
            let mut batch = Vec::with_capacity(2 * VALIDATE_BATCH);
            let mut r = [0u64; 2];
            loop {
                batch.clear();
                while batch.len() < 2 * VALIDATE_BATCH
                    && reader.next_into(&mut r).map_err(read_back_error)?
                {
                    batch.extend_from_slice(&r);
                }
                if batch.is_empty() {
                    break;
                }
                check.check(&batch);
            }
            check
        }
    };
    match check.first {
        None => Ok(()),
        Some(first) => {
            let more = if check.bad > 1 {
                format!(" ({} more exceptions are unusable)", check.bad - 1)
            } else {
                String::new()
            };
            Err(Error::Invalid(format!(
                "{}: {first}{more}",
                dump_path.display()
            )))
        }
    }
}

/// Writes the spooled `records` as the areas of a store with `header` on
/// `device`, through the place-keeping stream (the data chunks stay where the
/// records say); `show` gets the count written every so many records.
pub fn write_records(
    device: &Device,
    geometry: &Geometry,
    header: &Header,
    records: &mut Spool,
    every: u64,
    show: &dyn Fn(u64),
) -> Result<()> {
    let count = records.len();
    let mut source = SpooledRecords::new(records.read().map_err(read_back_error)?);
    let stream = kept_entries(&mut source, record_of)
        .enumerate()
        .map(|(index, record)| {
            if (index as u64).is_multiple_of(every) {
                show(index as u64);
            }
            record.map_err(JobError::into_error)
        });
    write_areas_streamed(device, geometry, header, count, stream)
}

/// The first unusable record and the count of them, for a [`Spool`] to run
/// while it is filled.
pub struct PersistentCheck {
    checker: RecordValidator,
    first: Option<String>,
    bad: u64,
    index: u64,
}

impl PersistentCheck {
    /// Checks records for a store of `geometry` and `kind` on `target`.
    pub fn new(geometry: Geometry, kind: StoreKind, target: &Path) -> Self {
        PersistentCheck {
            checker: RecordValidator::new(geometry, kind, target),
            first: None,
            bad: 0,
            index: 0,
        }
    }
}

impl RecordCheck for PersistentCheck {
    fn check(&mut self, records: &[u64]) {
        for batch in records.chunks(2 * VALIDATE_BATCH) {
            for r in batch.chunks_exact(2) {
                self.checker.prefetch(r[0], r[1]);
            }
            for r in batch.chunks_exact(2) {
                let record = ExceptionRecord {
                    old_chunk: r[0],
                    new_chunk: r[1],
                };
                if let Some(problem) = self.checker.problem(&record) {
                    self.bad += 1;
                    let index = self.index;
                    self.first.get_or_insert_with(|| {
                        format!(
                            "exception {index} (old_chunk {}, new_chunk {}): {problem}",
                            record.old_chunk, record.new_chunk
                        )
                    });
                }
                self.index += 1;
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Tells what is wrong with one restored record, remembering the chunks used.
struct RecordValidator {
    geometry: Geometry,
    legacy: bool,
    target: String,
    used: DenseBitmap,
    mapped: SparseBitmap,
}

impl RecordValidator {
    fn new(geometry: Geometry, kind: StoreKind, target: &Path) -> Self {
        RecordValidator {
            geometry,
            legacy: kind == StoreKind::Legacy,
            target: target.display().to_string(),
            used: DenseBitmap::new(geometry.device_chunks()),
            mapped: SparseBitmap::new(),
        }
    }

    /// Starts loading the bit of a record's origin chunk, so that the
    /// random origin chunks of a batch miss the cache together.
    #[inline]
    fn prefetch(&mut self, old_chunk: u64, new_chunk: u64) {
        if new_chunk < self.geometry.device_chunks() {
            self.mapped.prefetch(old_chunk);
        }
    }

    fn problem(&mut self, record: &ExceptionRecord) -> Option<String> {
        let (old, new) = (record.old_chunk, record.new_chunk);
        let chunks = self.geometry.device_chunks();
        if new >= chunks {
            return Some(format!(
                "new_chunk is past the end of {} ({chunks} chunks)",
                self.target
            ));
        }
        if self.geometry.is_metadata_chunk(new) {
            let what = if new < HEADER_CHUNKS {
                "the header".to_string()
            } else {
                format!(
                    "metadata area {}",
                    (new - HEADER_CHUNKS) / self.geometry.stride()
                )
            };
            return Some(format!(
                "new_chunk is {what} of {}, not a data chunk",
                self.target
            ));
        }
        if self.legacy && (old >= LEGACY_CHUNK_LIMIT || new >= LEGACY_CHUNK_LIMIT) {
            return Some("does not fit the 32 bits of a legacy store".to_string());
        }
        if self.used.test_and_set(new) {
            return Some("new_chunk is already used by an earlier exception".to_string());
        }
        if self.mapped.test_and_set(old) {
            return Some("old_chunk is already mapped by an earlier exception".to_string());
        }
        None
    }
}
