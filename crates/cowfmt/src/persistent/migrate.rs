//! Migration of persistent and legacy stores, and the pieces repair shares with
//! it for writing a new store.
//!
//! A migration re-chunks a store (each record split into `k` records for a
//! smaller chunk size; records grouped by `old_chunk / k`, with the unchanged
//! pieces read from the origin, for a larger one) or converts between the
//! `persistent` and `legacy` kinds (same bytes; a legacy store is held to 32-bit
//! chunk numbers and made safe against the pre-2.6.29 reload hazard). In every
//! case the snapshot reads back byte-identical (see [`super::view`]).
//!
//! Like [`super::repair`], it works in two steps: [`plan`] reads and checks the
//! input and works out the size the output needs; [`migrate`] writes it.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::check::{check, CheckOptions};
use super::header::{validate_chunk_size, Header};
use super::layout::{Geometry, HEADER_CHUNKS};
use super::record::{ExceptionRecord, RECORD_BYTES};
use super::repair::JobError;
use super::state::Usage;
use super::store::{Metadata, PersistentStore};
use super::writer::{write_all_areas, CommitOutcome, StoreWriter};
use super::LEGACY_CHUNK_LIMIT;
use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::finding::Severity;
use crate::kind::StoreKind;
use crate::SECTOR_BYTES;

/// The version of the migration report schema.
pub const MIGRATE_FORMAT_VERSION: u32 = 1;

/// Data is written in contiguous runs of at most this many bytes.
const BATCH_BYTES: usize = 1 << 20;

/// Bytes at the start of an existing output device that must be zero unless
/// the caller forces the write.
const OUTPUT_PROBE_BYTES: u64 = 1 << 20;

/// Whole chunks a device needs so that `data_chunks` data chunks can be
/// allocated in order by the kernel's allocator, including the zeroed area the
/// kernel writes after a full one.
pub fn chunks_needed(geometry: &Geometry, data_chunks: u64) -> u64 {
    if data_chunks == 0 {
        return HEADER_CHUNKS + 1;
    }
    let epa = geometry.exceptions_per_area();
    let mut chunks = geometry.nth_data_chunk(data_chunks - 1).saturating_add(1);
    if data_chunks % epa == 0 {
        chunks = chunks.max(geometry.area_location(data_chunks / epa).saturating_add(1));
    }
    chunks
}

/// Bytes a device of `chunk_sectors` chunks needs for `data_chunks` data chunks
/// (see [`chunks_needed`]); `None` when that does not fit 64 bits.
pub fn bytes_needed(chunk_sectors: u32, data_chunks: u64) -> Option<u64> {
    let geometry = Geometry::new(chunk_sectors, 0).ok()?;
    chunks_needed(&geometry, data_chunks).checked_mul(geometry.chunk_bytes() as u64)
}

/// Writes a new store in allocation order: data chunks are gathered into
/// contiguous writes, and each batch's records are committed only after its
/// data is written.
#[derive(Debug)]
pub struct RebuildWriter {
    writer: StoreWriter,
    chunk_bytes: usize,
    batch: Vec<u8>,
    batch_start: u64,
    pending: Vec<ExceptionRecord>,
}

impl RebuildWriter {
    /// Formats `output` as a fresh store of `chunk_sectors` chunks.
    pub fn format(output: Device, chunk_sectors: u32) -> Result<Self> {
        let writer = StoreWriter::format(output, chunk_sectors)?;
        let chunk_bytes = writer.geometry().chunk_bytes();
        Ok(RebuildWriter {
            writer,
            chunk_bytes,
            batch: Vec::with_capacity(BATCH_BYTES.max(chunk_bytes)),
            batch_start: 0,
            pending: Vec::new(),
        })
    }

    /// The output geometry.
    pub fn geometry(&self) -> Geometry {
        self.writer.geometry()
    }

    /// Allocates the next data chunk for origin chunk `old_chunk`, queues `data`
    /// (one chunk) for it and returns the chunk.
    pub fn push(&mut self, old_chunk: u64, data: &[u8]) -> Result<u64> {
        debug_assert_eq!(data.len(), self.chunk_bytes);
        let new_chunk = self.writer.allocate()?;
        let contiguous = new_chunk == self.batch_start + self.pending.len() as u64;
        if !self.pending.is_empty() && (!contiguous || self.batch.len() + data.len() > BATCH_BYTES)
        {
            self.flush_batch()?;
        }
        if self.pending.is_empty() {
            self.batch_start = new_chunk;
        }
        self.batch.extend_from_slice(data);
        self.pending.push(ExceptionRecord {
            old_chunk,
            new_chunk,
        });
        Ok(new_chunk)
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let device = self.writer.device();
        device.write_at(&self.batch, self.batch_start * self.chunk_bytes as u64)?;
        for record in std::mem::take(&mut self.pending) {
            if self.writer.commit(record)? == CommitOutcome::Invalidated {
                return Err(Error::Invalid(format!(
                    "{}: the metadata area after chunk {} lies past the end of the device; the output is too small",
                    self.writer.device().path().display(),
                    record.new_chunk
                )));
            }
        }
        self.batch.clear();
        Ok(())
    }

    /// Writes what is queued, marks the store invalid unless `valid`, and gives
    /// the device back.
    pub fn finish(mut self, valid: bool) -> Result<Device> {
        self.flush_batch()?;
        self.writer.flush()?;
        if !valid {
            self.writer.invalidate()?;
        }
        self.writer.finish()
    }
}

/// Zeroes every area location after `last_area` that holds non-zero bytes, so
/// that a later salvage scan cannot mistake stale records for live ones.
/// Returns how many areas were zeroed.
pub fn zero_stale_areas(device: &Device, geometry: &Geometry, last_area: u64) -> Result<u64> {
    let mut buffer = vec![0u8; geometry.chunk_bytes()];
    let zero = vec![0u8; geometry.chunk_bytes()];
    let mut zeroed = 0;
    let mut area = last_area.saturating_add(1);
    while geometry.area_fits(area) {
        let chunk = geometry.area_location(area);
        device.read_chunk(chunk, &mut buffer)?;
        if buffer.iter().any(|&b| b != 0) {
            device.write_chunk(chunk, &zero)?;
            zeroed += 1;
        }
        area += 1;
    }
    if zeroed > 0 {
        device.sync()?;
    }
    Ok(zeroed)
}

/// A data chunk moved so that a pre-2.6.29 kernel's next allocation after a
/// reload does not land on a metadata area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Relocation {
    /// The area of the record that was moved.
    pub area: u64,
    /// Its index in that area.
    pub index: u64,
    /// Its origin chunk.
    pub old_chunk: u64,
    /// The data chunk it used.
    pub from_chunk: u64,
    /// The data chunk it uses now.
    pub to_chunk: u64,
    /// The metadata area chunk the old kernel would have allocated next.
    pub metadata_chunk: u64,
}

/// Moves the last data chunk past the metadata area that follows it, when the
/// highest `new_chunk + 1` is a metadata area on the device: old kernels do not
/// skip metadata after a reload, so their next allocation would overwrite that
/// area. `metadata` must be what the kernel reads from `device`.
pub fn fix_legacy_reload_hazard(
    device: &Device,
    metadata: &Metadata,
) -> Result<Option<Relocation>> {
    let geometry = metadata.geometry;
    let Some(last) = metadata
        .records
        .iter()
        .rev()
        .max_by_key(|placed| placed.record.new_chunk)
    else {
        return Ok(None);
    };
    let from_chunk = last.record.new_chunk;
    let next = from_chunk.saturating_add(1);
    if !geometry.is_metadata_chunk(next) || next >= geometry.device_chunks() {
        return Ok(None);
    }
    let to_chunk = next + 1;
    if to_chunk >= geometry.device_chunks() {
        return Err(Error::Invalid(format!(
            "{}: a pre-2.6.29 kernel would allocate metadata area chunk {next} next, and there is no free chunk after it to move data chunk {from_chunk} to (the device has {} chunks; one more is needed)",
            device.path().display(),
            geometry.device_chunks()
        )));
    }
    let mut data = vec![0u8; geometry.chunk_bytes()];
    device.read_chunk(from_chunk, &mut data)?;
    device.write_chunk(to_chunk, &data)?;
    device.sync()?;
    let area_chunk = geometry.area_location(last.area);
    device.read_chunk(area_chunk, &mut data)?;
    let slot = last.index as usize * RECORD_BYTES;
    ExceptionRecord {
        old_chunk: last.record.old_chunk,
        new_chunk: to_chunk,
    }
    .encode(&mut data[slot..slot + RECORD_BYTES]);
    device.write_chunk(area_chunk, &data)?;
    device.sync()?;
    Ok(Some(Relocation {
        area: last.area,
        index: last.index,
        old_chunk: last.record.old_chunk,
        from_chunk,
        to_chunk,
        metadata_chunk: next,
    }))
}

/// Where a new store goes, and what may be overwritten there.
#[derive(Debug, Clone)]
pub struct OutputRequest<'a> {
    /// The output path: a new image file, an empty one, or a block device.
    pub path: &'a Path,
    /// The size of an image file output, in bytes.
    pub size: u64,
    /// Whether the size was asked for explicitly (refused for block devices,
    /// which are always used whole).
    pub size_given: bool,
    /// Overwrite an existing non-empty file or a device that holds data.
    pub force: bool,
    /// Paths that must not be the output (the inputs).
    pub inputs: &'a [&'a Path],
}

/// An opened output device.
#[derive(Debug)]
pub struct PreparedOutput {
    /// The device, open for writing.
    pub device: Device,
    /// Whether every byte of it is known to be zero (a new or truncated image).
    pub zeroed: bool,
}

/// Opens the output of a repair or migration: a missing or empty image file
/// is created sparse at `size` bytes; an existing non-empty file is refused,
/// or with `force` truncated and recreated; a block device must hold only
/// zeros in its first MiB unless `force`. The output may never be an input.
pub fn open_output(request: &OutputRequest<'_>) -> Result<PreparedOutput> {
    let path = request.path;
    let existing = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Open {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if let Some(meta) = &existing {
        for input in request.inputs {
            if same_file(meta, input) {
                return Err(Error::Invalid(format!(
                    "{}: the output is the same file as the input {}",
                    path.display(),
                    input.display()
                )));
            }
        }
    }
    match existing {
        Some(meta) if meta.file_type().is_block_device() => {
            if request.size_given {
                return Err(Error::Invalid(format!(
                    "{}: is a block device, which is always used whole; drop the size",
                    path.display()
                )));
            }
            let device = Device::open(path, Access::ReadWrite)?;
            if !request.force {
                refuse_if_not_zero(&device)?;
            }
            Ok(PreparedOutput {
                device,
                zeroed: false,
            })
        }
        Some(meta) if meta.is_file() => {
            if meta.len() > 0 && !request.force {
                return Err(Error::Invalid(format!(
                    "{}: already exists and is not empty; refusing to overwrite it without --force",
                    path.display()
                )));
            }
            truncate_and_extend(path, request.size)?;
            Ok(PreparedOutput {
                device: Device::open(path, Access::ReadWrite)?,
                zeroed: true,
            })
        }
        Some(_) => Err(Error::Invalid(format!(
            "{}: is neither an image file nor a block device",
            path.display()
        ))),
        None => Ok(PreparedOutput {
            device: Device::create_or_extend(path, request.size)?,
            zeroed: true,
        }),
    }
}

fn same_file(output: &std::fs::Metadata, input: &Path) -> bool {
    let Ok(input) = std::fs::metadata(input) else {
        return false;
    };
    if output.file_type().is_block_device() && input.file_type().is_block_device() {
        return output.rdev() == input.rdev();
    }
    output.dev() == input.dev() && output.ino() == input.ino()
}

fn truncate_and_extend(path: &Path, size: u64) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let resize = |len| {
        file.set_len(len).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            action: "cannot resize the image file",
            source,
        })
    };
    resize(0)?;
    resize(size)
}

fn refuse_if_not_zero(device: &Device) -> Result<()> {
    let len = device.size_bytes().min(OUTPUT_PROBE_BYTES) as usize;
    let mut probe = vec![0u8; len];
    device.read_at(&mut probe, 0, || "the start of the output".to_string())?;
    if let Some(at) = probe.iter().position(|&b| b != 0) {
        return Err(Error::Invalid(format!(
            "{}: the device holds data (byte {at} is not zero); refusing to overwrite it without --force",
            device.path().display()
        )));
    }
    Ok(())
}

/// How the records of a store are carried over to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrateMode {
    /// Same chunk size: header, areas and data chunks keep their places.
    Copy,
    /// A smaller chunk size: every record becomes `factor` records.
    Split,
    /// A larger chunk size: records are grouped by `old_chunk / factor`.
    Merge,
}

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

/// A store on one side of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreShape {
    /// `persistent` or `legacy`.
    pub kind: StoreKind,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// Device size in bytes.
    pub device_bytes: u64,
    /// Whole chunks on the device.
    pub device_chunks: u64,
    /// Records the kernel reads.
    pub records: u64,
    /// Whether the header says valid.
    pub valid: bool,
    /// The usage `dmsetup status` would print.
    pub usage: Usage,
    /// The status text: `allocated/total metadata`, or `Invalid`.
    pub status: String,
}

impl StoreShape {
    fn of(kind: StoreKind, metadata: &Metadata) -> Self {
        let usage = metadata.usage();
        StoreShape {
            kind,
            chunk_size: metadata.geometry.chunk_sectors(),
            device_bytes: metadata.geometry.device_bytes(),
            device_chunks: metadata.geometry.device_chunks(),
            records: metadata.records.len() as u64,
            valid: metadata.header.is_valid(),
            status: usage.status_text(metadata.header.is_valid()),
            usage,
        }
    }
}

/// A checked migration, ready to write.
#[derive(Debug)]
pub struct MigratePlan {
    metadata: Metadata,
    input: PathBuf,
    from: StoreShape,
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
    /// Steps of the data copy, for progress.
    pub copy_steps: u64,
    origin_bytes: Option<u64>,
}

impl MigratePlan {
    /// The input as the kernel reads it.
    pub fn from(&self) -> &StoreShape {
        &self.from
    }
}

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// [`MIGRATE_FORMAT_VERSION`].
    pub format_version: u32,
    /// The input path.
    pub input: String,
    /// The output path.
    pub output: String,
    /// How records were carried over.
    pub mode: MigrateMode,
    /// Chunks of the smaller size in one of the larger (1 for a copy).
    pub factor: u64,
    /// The input store.
    pub from: StoreShape,
    /// The output store.
    pub to: StoreShape,
    /// Pieces of merged chunks read from the origin (they never changed).
    pub pieces_from_origin: u64,
    /// Pieces of split chunks left out because they lie past the end of the origin.
    pub pieces_past_origin: u64,
    /// The data chunk moved for the pre-2.6.29 reload hazard, if any.
    pub relocation: Option<Relocation>,
    /// Stale area locations zeroed on a reused output device.
    pub stale_areas_zeroed: u64,
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
    refuse_damaged(store)?;
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
            (count, max_old, records.len() as u64)
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

fn refuse_damaged(store: &PersistentStore) -> std::result::Result<(), JobError> {
    let report = check(store.device(), &CheckOptions::default())?;
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(JobError::Damage(format!(
            "{}: the store has {} problem{} ({}); repair it with cowrepair first",
            store.device().path().display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            first.message
        ))),
    }
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

/// Writes the migrated store into `output`. `origin` is needed for a larger
/// chunk size; `output_zeroed` says the output is known to hold only zeros (a
/// new image), so stale areas need no zeroing. `progress` gets (done, total)
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
    if output.size_bytes() < plan.needed_bytes {
        return Err(Error::Invalid(format!(
            "{}: the output has {} bytes, but the migrated store needs at least {}",
            out_path.display(),
            output.size_bytes(),
            plan.needed_bytes
        ))
        .into());
    }
    let out_geometry = Geometry::new(plan.to_chunk_size, output.size_bytes())
        .map_err(|e| Error::format(&out_path, e))?;
    if plan.to_kind == StoreKind::Legacy && out_geometry.device_chunks() >= LEGACY_CHUNK_LIMIT {
        return Err(Error::Invalid(format!(
            "{}: {} chunks do not fit the 32 bits of a legacy store (at most {})",
            out_path.display(),
            out_geometry.device_chunks(),
            LEGACY_CHUNK_LIMIT - 1
        ))
        .into());
    }
    let valid = plan.metadata.header.is_valid();
    let mut counts = PieceCounts::default();
    let device = match plan.mode {
        MigrateMode::Copy => copy_in_place(
            store.device(),
            &plan.metadata,
            output,
            &out_geometry,
            progress,
        )?,
        MigrateMode::Split => split(store.device(), plan, output, &mut counts, progress)?,
        MigrateMode::Merge => {
            let origin = origin.ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: a larger chunk size needs the origin device, to read the pieces that never changed",
                    plan.input.display()
                ))
            })?;
            merge(store.device(), plan, origin, output, &mut counts, progress)?
        }
    };
    let written = PersistentStore::open(device, None)?;
    let mut metadata = written.load()?;
    let stale_areas_zeroed = if output_zeroed {
        0
    } else {
        zero_stale_areas(
            written.device(),
            &metadata.geometry,
            metadata.state.current_area,
        )?
    };
    let relocation = if plan.to_kind == StoreKind::Legacy {
        fix_legacy_reload_hazard(written.device(), &metadata)?
    } else {
        None
    };
    if relocation.is_some() {
        metadata = written.load()?;
    }
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

#[derive(Debug, Default)]
struct PieceCounts {
    from_origin: u64,
    past_origin: u64,
}

/// Same chunk size: every referenced data chunk is copied to the same place, in
/// contiguous runs, then the areas are written from the records.
fn copy_in_place(
    input: &Device,
    metadata: &Metadata,
    output: Device,
    geometry: &Geometry,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let chunk_bytes = geometry.chunk_bytes();
    let mut chunks: Vec<u64> = metadata
        .records
        .iter()
        .map(|p| p.record.new_chunk)
        .collect();
    chunks.sort_unstable();
    let total = chunks.len() as u64;
    let per_batch = (BATCH_BYTES / chunk_bytes).max(1);
    let mut buffer = vec![0u8; per_batch * chunk_bytes];
    let mut done = 0u64;
    let mut i = 0;
    while i < chunks.len() {
        let start = chunks[i];
        let mut count = 1;
        while i + count < chunks.len()
            && count < per_batch
            && chunks[i + count] == start + count as u64
        {
            count += 1;
        }
        let bytes = &mut buffer[..count * chunk_bytes];
        let offset = start * chunk_bytes as u64;
        input.read_at(bytes, offset, || {
            format!("data chunks {start}..{}", start + count as u64 - 1)
        })?;
        output.write_at(bytes, offset)?;
        i += count;
        done += count as u64;
        progress(done, total);
    }
    let header = Header {
        valid: u32::from(metadata.header.is_valid()),
        ..Header::new(geometry.chunk_sectors())
    };
    let records: Vec<ExceptionRecord> = metadata.records.iter().map(|p| p.record).collect();
    write_all_areas(&output, geometry, &header, &records)?;
    Ok(output)
}

/// A smaller chunk size: each record's chunk is read once and written as
/// `factor` pieces, in record order.
fn split(
    input: &Device,
    plan: &MigratePlan,
    output: Device,
    counts: &mut PieceCounts,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let from_bytes = plan.metadata.geometry.chunk_bytes();
    let to_bytes = from_bytes / plan.factor as usize;
    let mut writer = RebuildWriter::format(output, plan.to_chunk_size)?;
    let mut buffer = vec![0u8; from_bytes];
    let total = plan.copy_steps;
    for (done, placed) in plan.metadata.records.iter().enumerate() {
        let record = placed.record;
        input.read_chunk(record.new_chunk, &mut buffer)?;
        for (j, piece) in buffer.chunks_exact(to_bytes).enumerate() {
            let old_chunk = record.old_chunk * plan.factor + j as u64;
            let past_origin = plan
                .origin_bytes
                .is_some_and(|bytes| old_chunk.saturating_mul(to_bytes as u64) >= bytes);
            if past_origin {
                counts.past_origin += 1;
                continue;
            }
            writer.push(old_chunk, piece)?;
        }
        progress(done as u64 + 1, total);
    }
    writer.finish(plan.metadata.header.is_valid())
}

/// A larger chunk size: records are grouped by `old_chunk / factor`, in the
/// order each group first appears; a group's pieces come from the COW where a
/// record maps them and from the origin where none does.
fn merge(
    input: &Device,
    plan: &MigratePlan,
    origin: &Device,
    output: Device,
    counts: &mut PieceCounts,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let from_bytes = plan.metadata.geometry.chunk_bytes();
    let factor = plan.factor;
    let mut map: HashMap<u64, u64> = HashMap::with_capacity(plan.metadata.records.len());
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for placed in &plan.metadata.records {
        map.entry(placed.record.old_chunk)
            .or_insert(placed.record.new_chunk);
        let group = placed.record.old_chunk / factor;
        if seen.insert(group) {
            groups.push(group);
        }
    }
    drop(seen);
    let mut writer = RebuildWriter::format(output, plan.to_chunk_size)?;
    let mut buffer = vec![0u8; from_bytes * factor as usize];
    let total = groups.len() as u64;
    for (done, &group) in groups.iter().enumerate() {
        let first = group * factor;
        read_origin_range(origin, &mut buffer, first.saturating_mul(from_bytes as u64))?;
        for (j, piece) in buffer.chunks_exact_mut(from_bytes).enumerate() {
            match map.get(&(first + j as u64)) {
                Some(&new_chunk) => input.read_chunk(new_chunk, piece)?,
                None => counts.from_origin += 1,
            }
        }
        writer.push(group, &buffer)?;
        progress(done as u64 + 1, total);
    }
    writer.finish(plan.metadata.header.is_valid())
}

/// Reads `buf.len()` bytes of the origin at `offset`; bytes past its end read
/// as zeros.
fn read_origin_range(origin: &Device, buf: &mut [u8], offset: u64) -> Result<()> {
    let len = origin
        .size_bytes()
        .saturating_sub(offset)
        .min(buf.len() as u64) as usize;
    origin.read_at(&mut buf[..len], offset, || {
        format!("origin bytes at {offset}")
    })?;
    buf[len..].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn needed_chunks_at_area_boundaries() {
        let g = Geometry::new(8, 0).unwrap();
        assert_eq!(chunks_needed(&g, 0), 2);
        assert_eq!(chunks_needed(&g, 1), 3);
        assert_eq!(chunks_needed(&g, 255), 257);
        // a full area needs the zeroed area after it
        assert_eq!(chunks_needed(&g, 256), 259);
        assert_eq!(chunks_needed(&g, 257), 260);
        assert_eq!(bytes_needed(8, 62), Some(64 * 4096));
    }

    proptest! {
        #[test]
        fn needed_chunks_is_the_least_that_holds_them(k in 0u32..6, n in 0u64..3000) {
            let chunk_sectors = 1u32 << k;
            let g = Geometry::new(chunk_sectors, 0).unwrap();
            let chunks = chunks_needed(&g, n);
            let bytes = |chunks: u64| chunks * u64::from(chunk_sectors) * SECTOR_BYTES;
            let fits = Geometry::new(chunk_sectors, bytes(chunks)).unwrap();
            prop_assert!(fits.data_capacity() >= n);
            if n > 0 {
                let smaller = Geometry::new(chunk_sectors, bytes(chunks - 1)).unwrap();
                prop_assert!(smaller.data_capacity() < n);
            }
        }
    }
}
