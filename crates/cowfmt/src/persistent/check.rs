//! Checks every invariant of a persistent (or legacy) store and returns typed
//! findings. The metadata is streamed area by area; memory is one bit per COW
//! chunk plus one bit per origin chunk touched.

use serde::{Deserialize, Serialize};

use super::area::{area_records, parse_area};
use super::header::{validate_chunk_size, Header, HEADER_BYTES};
use super::layout::{Geometry, HEADER_CHUNKS};
use super::record::ExceptionRecord;
use super::record::RECORD_BYTES;
use super::rules::{RecordRules, RecordViolation};
use super::scan::{AreaScanner, ScanItem, ScanMode};
use super::state::{LoadState, LoadStateBuilder, Usage};
use super::LEGACY_CHUNK_LIMIT;
use crate::bitset::{DenseBitmap, SparseBitmap};
use crate::device::Device;
use crate::error::{Error, FormatError, Result};
use crate::finding::{Finding, FindingCode, FindingSink, Location};
use crate::kind::{
    check_header_tail, check_identity, ExpectedHeader, HeaderIdentity, StoreKind, PERSISTENT_MAGIC,
};
use crate::progress::{self, Progress};

pub use crate::finding::FINDINGS_PER_CODE;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// `Persistent`, or `Legacy` to hold the store to the pre-2.6.29 limits.
    pub kind: StoreKind,
    /// Whether the caller insisted on the kind (`--kind`): then a wrong magic is
    /// reported as damage instead of "not a store".
    pub kind_forced: bool,
    /// The origin size in bytes, when known.
    pub origin_bytes: Option<u64>,
    /// Only the header.
    pub header_only: bool,
    /// Chunk size (sectors) to read with when the header's is unusable.
    pub chunk_size_fallback: Option<u32>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            kind: StoreKind::Persistent,
            kind_forced: false,
            origin_bytes: None,
            header_only: false,
            chunk_size_fallback: None,
        }
    }
}

/// Figures gathered while checking, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSummary {
    /// The chunk size used to read the store, in sectors.
    pub chunk_size: Option<u32>,
    /// Whole chunks on the device.
    pub device_chunks: Option<u64>,
    /// Areas read.
    pub areas_read: u64,
    /// Records read.
    pub records: u64,
    /// The kernel's state after a load, when the areas could all be read.
    pub state: Option<LoadState>,
    /// The status line `dmsetup status` would show.
    pub status: Option<String>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The kind checked.
    pub kind: StoreKind,
    /// The header as stored, when it could be read.
    pub header: Option<Header>,
    /// Every finding, in the order found.
    pub findings: Vec<Finding>,
    /// Figures.
    pub summary: CheckSummary,
}

impl CheckReport {
    /// True when nothing at all was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// True when some finding is an error (fatal).
    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == crate::finding::Severity::Error)
    }
}

/// Checks the store on `device`. Returns `Err` only when the check cannot run
/// (I/O errors, or no store at all when the kind was not insisted on).
pub fn check(device: &Device, options: &CheckOptions) -> Result<CheckReport> {
    check_with_progress(device, options, &mut progress::silent)
}

/// [`check`], telling `progress` (chunk of the area read, chunks on the
/// device) after each metadata area; the walk ends at the last area in use,
/// usually before the end of the device.
pub fn check_with_progress(
    device: &Device,
    options: &CheckOptions,
    progress: &mut Progress,
) -> Result<CheckReport> {
    let mut sink = FindingSink::for_store_check(FINDINGS_PER_CODE);
    let mut summary = CheckSummary::default();
    let header = read_header_chunk_start(device)?;
    let geometry = match check_header(device, &header, options, &mut sink)? {
        Some(geometry) => geometry,
        None => {
            return Ok(CheckReport {
                kind: options.kind,
                header: Some(header),
                findings: sink.finish(),
                summary,
            })
        }
    };
    summary.chunk_size = Some(geometry.chunk_sectors());
    summary.device_chunks = Some(geometry.device_chunks());
    check_header_chunk_tail(device, &geometry, &mut sink)?;
    if options.header_only {
        return Ok(CheckReport {
            kind: options.kind,
            header: Some(header),
            findings: sink.finish(),
            summary,
        });
    }
    // A partial last origin chunk is still a chunk the kernel copies whole.
    let origin_chunks = options
        .origin_bytes
        .map(|bytes| bytes.div_ceil(geometry.chunk_bytes() as u64));
    let mut walk = RecordChecker::new(geometry, origin_chunks, options.kind);
    let state = walk.run(device, &mut sink, progress)?;
    summary.areas_read = walk.areas_read;
    summary.records = walk.records;
    if walk.records == 0 && geometry.chunk_sectors() == header.chunk_size {
        report_chunk_size_reads_nothing(device, header.chunk_size, &mut sink);
    }
    if let Some(state) = state {
        walk.report_holes(&mut sink);
        if options.kind == StoreKind::Legacy {
            report_legacy_next(&geometry, &state, &mut sink);
        }
        summary.status = Some(Usage::of(&state, &geometry).status_text(header.is_valid()));
        summary.state = Some(state);
    }
    Ok(CheckReport {
        kind: options.kind,
        header: Some(header),
        findings: sink.finish(),
        summary,
    })
}

/// Reports a header chunk size that leaves the areas empty while another
/// chunk size reads credible records (the kernel would load an empty store).
fn report_chunk_size_reads_nothing(device: &Device, sectors: u32, sink: &mut FindingSink) {
    let others = super::chunk_evidence::plausible_others(device, sectors);
    let Some(best) = others
        .iter()
        .filter(|e| e.is_compelling())
        .max_by_key(|e| e.credible_records)
    else {
        return;
    };
    sink.push(Finding::error(
        FindingCode::ChunkSizeReadsNothing,
        Location::header_field(12),
        format!(
            "header (chunk 0): chunk size {sectors} sectors leaves the areas empty, but under {} sectors {}; the chunk size field looks damaged and the kernel would load an empty store (cowrepair --chunk-size {}s)",
            best.chunk_size,
            best.text(),
            best.chunk_size
        ),
    ));
}

fn read_header_chunk_start(device: &Device) -> Result<Header> {
    super::open::read_header(device)
}

/// Checks the header fields; returns the geometry to read the areas with, or
/// `None` when no usable chunk size is known.
fn check_header(
    device: &Device,
    header: &Header,
    options: &CheckOptions,
    sink: &mut FindingSink,
) -> Result<Option<Geometry>> {
    check_identity(
        device,
        &HeaderIdentity {
            magic: header.magic,
            valid: header.valid,
            version: header.version,
        },
        &ExpectedHeader {
            kind: "persistent",
            magic: PERSISTENT_MAGIC,
            magic_consequence: " (\"SnAp\"); the kernel refuses the store",
            version: super::header::DISK_VERSION,
            refuses: "the kernel refuses",
            treats: "the kernel treats",
            invalid_means: "the kernel loads it as Invalid and fails every I/O to the snapshot",
        },
        options.kind_forced,
        sink,
    )?;
    let chunk_sectors = match validate_chunk_size(u64::from(header.chunk_size)) {
        Ok(()) => header.chunk_size,
        Err(FormatError::BadChunkSize { why, .. }) => {
            let fallback = options.chunk_size_fallback;
            let then = match fallback {
                Some(sectors) => format!("; reading with the given {sectors} sectors"),
                None => {
                    "; the areas cannot be located (give --chunk-size to read them)".to_string()
                }
            };
            sink.push(Finding::error(
                FindingCode::BadChunkSize,
                Location::header_field(12),
                format!(
                    "header (chunk 0): chunk size {} sectors {why}{then}",
                    header.chunk_size
                ),
            ));
            match fallback {
                Some(sectors) => sectors,
                None => return Ok(None),
            }
        }
        Err(other) => return Err(Error::format(device.path(), other)),
    };
    let geometry = Geometry::new(chunk_sectors, device.size_bytes())
        .map_err(|e| Error::format(device.path(), e))?;
    if !geometry.holds_first_area() {
        sink.push(Finding::error(
            FindingCode::DeviceTooSmall,
            Location::header_field(0),
            format!(
                "the device has {} bytes, too small for the header and area 0 with {}-byte chunks ({} bytes)",
                device.size_bytes(),
                geometry.chunk_bytes(),
                2 * geometry.chunk_bytes()
            ),
        ));
        return Ok(None);
    }
    if options.kind == StoreKind::Legacy && geometry.device_chunks() > LEGACY_CHUNK_LIMIT {
        sink.push(Finding::error(
            FindingCode::LegacyChunkTooLarge,
            Location::default(),
            format!(
                "the device has {} chunks; the pre-2.6.29 code counts chunks in 32 bits (at most {LEGACY_CHUNK_LIMIT})",
                geometry.device_chunks()
            ),
        ));
    }
    Ok(Some(geometry))
}

fn check_header_chunk_tail(
    device: &Device,
    geometry: &Geometry,
    sink: &mut FindingSink,
) -> Result<()> {
    check_header_tail(
        device,
        geometry.chunk_bytes(),
        HEADER_BYTES,
        "the kernel writes the header chunk as 16 bytes then zeros",
        sink,
    )
}

/// A record and where it lies: its area, the area's chunk, its index there.
#[derive(Clone, Copy)]
struct RecordPlace {
    area: u64,
    chunk: u64,
    index: u64,
    old: u64,
    new: u64,
}

/// Why one record is not credible.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordFault {
    None,
    Fatal,
}

struct RecordChecker {
    geometry: Geometry,
    origin_chunks: Option<u64>,
    rules: RecordRules,
    used: DenseBitmap,
    mapped: SparseBitmap,
    previous_new: u64,
    highest_credible_new: u64,
    areas_read: u64,
    records: u64,
    pending: Vec<Finding>,
}

impl RecordChecker {
    fn new(geometry: Geometry, origin_chunks: Option<u64>, kind: StoreKind) -> Self {
        RecordChecker {
            geometry,
            origin_chunks,
            rules: RecordRules::new(geometry, origin_chunks, kind),
            used: DenseBitmap::new(geometry.device_chunks()),
            mapped: SparseBitmap::new(),
            previous_new: 0,
            highest_credible_new: 0,
            areas_read: 0,
            records: 0,
            pending: Vec::new(),
        }
    }

    /// Walks the areas; returns the kernel's load state, or `None` when the kernel
    /// could not load the store (an area it needs is past the end).
    fn run(
        &mut self,
        device: &Device,
        sink: &mut FindingSink,
        progress: &mut Progress,
    ) -> Result<Option<LoadState>> {
        let mut scanner = AreaScanner::new(device, self.geometry, ScanMode::Kernel);
        let mut builder = LoadStateBuilder::default();
        let mut last_area = None;
        while let Some(item) = scanner.next_area()? {
            match item {
                ScanItem::Area(view) => {
                    self.areas_read += 1;
                    progress(view.chunk, self.geometry.device_chunks());
                    let mut faults = 0usize;
                    self.pending.clear();
                    for record in area_records(view.bytes, view.parse.entries) {
                        self.mapped.prefetch(record.old_chunk);
                    }
                    for (index, record) in area_records(view.bytes, view.parse.entries).enumerate()
                    {
                        builder.record(&record);
                        self.records += 1;
                        if self.check_record(
                            view.index,
                            view.chunk,
                            index as u64,
                            record.old_chunk,
                            record.new_chunk,
                        ) == RecordFault::Fatal
                        {
                            faults += 1;
                        }
                    }
                    let entries = view.parse.entries;
                    if faults == entries && entries > 1 {
                        sink.push(Finding::error(
                            FindingCode::AreaGarbage,
                            Location::area(view.index, view.chunk),
                            format!(
                                "area {} (chunk {}): none of its {entries} records is plausible; the area was overwritten (the kernel zeroes an area before the previous one fills)",
                                view.index, view.chunk
                            ),
                        ));
                    } else {
                        for finding in self.pending.drain(..) {
                            sink.push(finding);
                        }
                    }
                    if let Some(at) = view.parse.garbage_at {
                        let record = (at / RECORD_BYTES) as u64;
                        sink.push(Finding::warning(
                            FindingCode::GarbageAfterTerminator,
                            Location {
                                offset: Some(view.chunk * self.geometry.chunk_bytes() as u64 + at as u64),
                                record: Some(record),
                                ..Location::area(view.index, view.chunk)
                            },
                            format!(
                                "area {} (chunk {}) record {record}: non-zero bytes after the terminator (record {}); the kernel ignores them, but it always writes zeros there",
                                view.index, view.chunk, entries
                            ),
                        ));
                    }
                    last_area = Some(view.index);
                    builder.area(view.index, &view.parse);
                }
                ScanItem::PastEnd { index, chunk } => {
                    sink.push(Finding::error(
                        FindingCode::AreaPastEnd,
                        Location::area(index, chunk),
                        format!(
                            "area {index} (chunk {chunk}) lies past the end of the device ({} chunks) but area {} is full, so the kernel must read it; the store cannot be loaded",
                            self.geometry.device_chunks(),
                            index - 1
                        ),
                    ));
                    return Ok(None);
                }
            }
        }
        if let Some(last) = last_area {
            self.look_past_the_last_area(device, last + 1, sink)?;
        }
        Ok(Some(builder.finish(&self.geometry)))
    }

    /// Looks at the area after the last one the kernel reads. The kernel zeroes
    /// it before the last area can fill, so records there that are all credible
    /// (inside the device, on data chunks, not used or mapped by the areas read)
    /// mean an area before it was lost, usually zeroed: the kernel no longer sees
    /// them. A warning, because a device reused from an older store can hold such
    /// an area too; cowrepair recovers them either way.
    fn look_past_the_last_area(
        &mut self,
        device: &Device,
        area: u64,
        sink: &mut FindingSink,
    ) -> Result<()> {
        if !self.geometry.area_fits(area) {
            return Ok(());
        }
        let chunk = self.geometry.area_location(area);
        let mut bytes = vec![0u8; self.geometry.chunk_bytes()];
        device.read_chunk(chunk, &mut bytes)?;
        let parse = parse_area(&bytes);
        let records: Vec<_> = area_records(&bytes, parse.entries).collect();
        let credible = |r: &ExceptionRecord| {
            r.new_chunk < self.geometry.device_chunks()
                && !self.geometry.is_metadata_chunk(r.new_chunk)
                && !self.used.get(r.new_chunk)
                && !self.mapped.get(r.old_chunk)
                && self.origin_chunks.is_none_or(|n| r.old_chunk < n)
        };
        if records.is_empty() || !records.iter().all(credible) {
            return Ok(());
        }
        sink.push(Finding::warning(
            FindingCode::RecordsPastLastArea,
            Location::area(area, chunk),
            format!(
                "area {area} (chunk {chunk}), after the last area the kernel reads, holds {} credible record{}; an area before it was probably lost (zeroed), and the kernel no longer sees them (cowrepair recovers them)",
                records.len(),
                if records.len() == 1 { "" } else { "s" }
            ),
        ));
        Ok(())
    }

    #[inline]
    fn check_record(
        &mut self,
        area: u64,
        chunk: u64,
        index: u64,
        old: u64,
        new: u64,
    ) -> RecordFault {
        let at = RecordPlace {
            area,
            chunk,
            index,
            old,
            new,
        };
        let mut fault = RecordFault::None;
        let new_fault = self.rules.new_chunk(new).or_else(|| {
            self.used
                .test_and_set(new)
                .then_some(RecordViolation::NewChunkDuplicate { new })
        });
        if let Some(violation) = new_fault {
            self.report(&at, violation);
            fault = RecordFault::Fatal;
        } else {
            if new <= self.previous_new {
                let previous = self.previous_new;
                self.report(&at, RecordViolation::AllocationOutOfOrder { new, previous });
            }
            self.previous_new = self.previous_new.max(new);
            self.highest_credible_new = self.highest_credible_new.max(new);
        }
        if let Some(violation) = self.rules.old_chunk(old) {
            // Past the end of the origin is not a sign of an overwritten area:
            // a whole area past it says the origin given is the wrong one.
            if violation.is_fatal() {
                fault = RecordFault::Fatal;
            }
            self.report(&at, violation);
        }
        if self.mapped.test_and_set(old) {
            self.report(&at, RecordViolation::OldChunkDuplicate { old });
        }
        if let Some(violation) = self.rules.legacy_limit(old, new) {
            self.report(&at, violation);
        }
        fault
    }

    /// Keeps the finding for `violation` of the record at `at` until its
    /// area is judged whole.
    #[cold]
    #[inline(never)]
    fn report(&mut self, at: &RecordPlace, violation: RecordViolation) {
        let RecordPlace {
            area,
            chunk,
            index,
            old,
            new,
        } = *at;
        let text = format!(
            "area {area} (chunk {chunk}) record {index}: {}",
            violation.describe()
        );
        let location = Location::record(area, chunk, index, old, new);
        self.pending.push(match violation {
            RecordViolation::AllocationOutOfOrder { .. } => {
                Finding::warning(violation.code(), location, text)
            }
            _ => Finding::error(violation.code(), location, text),
        });
    }

    /// Whether the one-chunk hole at `hole` is what moving the last data chunk
    /// past the pre-2.6.29 reload hazard leaves (see
    /// [`fix_legacy_reload_hazard`](crate::persistent::rebuild::fix_legacy_reload_hazard)):
    /// the chunk after it is an area and `highest`, the highest data chunk in
    /// use, is the one after that. The store is sound; no crash left it.
    fn is_reload_hazard_move(&self, hole: u64, highest: u64) -> bool {
        let area = hole + 1;
        self.geometry.is_metadata_chunk(area) && highest == area + 1
    }

    /// Data chunks below the highest credible new_chunk that no record uses.
    /// Records already reported as impossible do not move the bound, so one
    /// wild new_chunk does not turn the rest of the device into a "hole".
    fn report_holes(&self, sink: &mut FindingSink) {
        let end = (self.highest_credible_new + 1).min(self.geometry.device_chunks());
        let first_data = HEADER_CHUNKS + 1;
        for (start, stop) in self.used.clear_runs(first_data, end) {
            // Split the clear run at metadata chunks, which are never used.
            let mut chunk = start;
            while chunk < stop {
                if self.geometry.is_metadata_chunk(chunk) {
                    chunk += 1;
                    continue;
                }
                let run_start = chunk;
                while chunk < stop && !self.geometry.is_metadata_chunk(chunk) {
                    chunk += 1;
                }
                let count = chunk - run_start;
                if count == 1 && self.is_reload_hazard_move(run_start, end - 1) {
                    continue;
                }
                let (range, pronoun) = if count == 1 {
                    (format!("data chunk {run_start} is"), "it")
                } else {
                    (
                        format!(
                            "data chunks {run_start}..{} ({count} chunks) are",
                            chunk - 1
                        ),
                        "them",
                    )
                };
                sink.push(Finding::warning(
                    FindingCode::AllocationHole,
                    Location::chunk(run_start),
                    format!(
                        "{range} below the highest data chunk in use ({}) but no record uses {pronoun}: allocated and never committed, as after a crash; the space is lost until the snapshot is recreated",
                        end - 1
                    ),
                ));
            }
        }
    }
}

fn report_legacy_next(geometry: &Geometry, state: &LoadState, sink: &mut FindingSink) {
    let next = state.legacy_next_free;
    if state.records > 0 && geometry.is_metadata_chunk(next) && next < geometry.device_chunks() {
        let area = (next - HEADER_CHUNKS) / geometry.stride();
        sink.push(Finding::error(
            FindingCode::LegacyNextOnMetadata,
            Location::area(area, next),
            format!(
                "a pre-2.6.29 kernel would store the next exception in chunk {next}, which is metadata area {area}, and corrupt the store (it does not skip metadata chunks after a reload); convert with cowmigrate --to legacy to move the last chunk"
            ),
        ));
    }
}
