//! Salvage of a damaged persistent (or legacy) store into a new, consistent one.
//!
//! Two steps. [`analyze`] reads the damaged store and never writes to it: it
//! settles the chunk size (from the header, from the caller, or inferred from
//! where area 0 looks plausible), scans every area location on the device and
//! keeps each record that is still credible. [`Salvage::write`] copies the kept
//! records' data chunks into a fresh store in order, compacting holes, and
//! rebuilds the areas. The [`RepairReport`] says what was kept, what was
//! dropped and why.
//!
//! A record is credible when its `new_chunk` lies on the device, is neither the
//! header nor a metadata area, lies after its own area (the kernel allocates an
//! area's data after the area), and is not used by an earlier kept record; its
//! `old_chunk` is not mapped by an earlier kept record and lies inside the
//! origin when the origin's size is known; and its data chunk can be read.
//! Beyond the kernel's view, an area whose records are nearly all implausible is
//! unused space (stale or junk bytes), not damage, and is skipped whole.

use serde::Serialize;

use super::area::parse_area;
use super::header::{validate_chunk_size, Header, DISK_VERSION, HEADER_BYTES, MAX_CHUNK_SECTORS};
use super::layout::Geometry;
use super::migrate::{
    bytes_needed, fix_legacy_reload_hazard, zero_stale_areas, RebuildWriter, Relocation,
};
use super::record::{ExceptionRecord, RECORD_BYTES};
use super::state::Usage;
use super::store::{PersistentStore, PlacedRecord};
use super::LEGACY_CHUNK_LIMIT;
use crate::bitset::{DenseBitmap, SparseBitmap};
use crate::device::Device;
use crate::error::{Error, FormatError, Result};
use crate::kind::{StoreKind, PERSISTENT_MAGIC, SHARED_MAGIC};

/// The version of the repair report schema.
pub const REPAIR_FORMAT_VERSION: u32 = 1;

/// Dropped records (and damaged areas) listed one by one; the rest are counted.
pub const LISTED_MAX: usize = 10_000;

/// Bytes read at a time while scoring a candidate chunk size.
const SCORE_WINDOW: usize = 64 * 1024;

/// Bytes copied at a time when backing up a device.
const COPY_BLOCK: usize = 1 << 20;

/// Why a repair or migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store's damage keeps the job from completing (nothing could be
    /// salvaged, the chunk size cannot be found, the input needs repair first).
    #[error("{0}")]
    Damage(String),
    /// Anything else: I/O, a bad request, not a store.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What to salvage and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairOptions {
    /// `Persistent`, or `Legacy` to also hold the output to the pre-2.6.29 limits.
    pub kind: StoreKind,
    /// The chunk size in sectors, overriding the header's.
    pub chunk_size: Option<u32>,
    /// The origin's size in bytes, when known: records past it are dropped.
    pub origin_bytes: Option<u64>,
    /// Mark the output valid even when the input was invalidated.
    pub mark_valid: bool,
    /// Only the areas the kernel reads; records beyond them are ignored.
    pub kernel_areas_only: bool,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            kind: StoreKind::Persistent,
            chunk_size: None,
            origin_bytes: None,
            mark_valid: false,
            kernel_areas_only: false,
        }
    }
}

/// Where the chunk size used came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChunkSizeSource {
    /// The header's own field.
    Header,
    /// The caller's.
    Option,
    /// Inferred from where area 0 looks plausible.
    Inferred,
}

/// Why a record was dropped. Serialized in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// `new_chunk` lies past the end of the device.
    NewChunkPastEnd,
    /// `new_chunk` is the header or a metadata area.
    NewChunkIsMetadata,
    /// `new_chunk` lies before (or on) the record's own area.
    NewChunkBeforeArea,
    /// An earlier kept record uses the same `new_chunk`.
    NewChunkDuplicate,
    /// An earlier kept record maps the same `old_chunk`.
    OldChunkDuplicate,
    /// `old_chunk` lies past the end of the origin.
    OldChunkPastOrigin,
    /// A chunk number does not fit the 32 bits of a legacy store.
    LegacyChunkTooLarge,
    /// The data chunk could not be read.
    DataUnreadable,
}

impl DropReason {
    /// The reason as it appears in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NewChunkPastEnd => "new-chunk-past-end",
            DropReason::NewChunkIsMetadata => "new-chunk-is-metadata",
            DropReason::NewChunkBeforeArea => "new-chunk-before-area",
            DropReason::NewChunkDuplicate => "new-chunk-duplicate",
            DropReason::OldChunkDuplicate => "old-chunk-duplicate",
            DropReason::OldChunkPastOrigin => "old-chunk-past-origin",
            DropReason::LegacyChunkTooLarge => "legacy-chunk-too-large",
            DropReason::DataUnreadable => "data-unreadable",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record that was not carried over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedRecord {
    /// The area it was read from.
    pub area: u64,
    /// Its index in that area.
    pub index: u64,
    /// Its origin chunk.
    pub old_chunk: u64,
    /// Its COW chunk.
    pub new_chunk: u64,
    /// Why it was dropped.
    pub reason: DropReason,
    /// One sentence for people, starting with the place.
    pub message: String,
}

/// An area the kernel reads whose records are nearly all implausible: it was
/// overwritten. Its records are dropped together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedArea {
    /// The area index.
    pub area: u64,
    /// The chunk holding it.
    pub chunk: u64,
    /// Non-empty record slots in it (all dropped).
    pub records: u64,
    /// How many of them looked plausible on their own.
    pub plausible: u64,
    /// One sentence for people.
    pub message: String,
}

/// What a repair found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// [`REPAIR_FORMAT_VERSION`].
    pub format_version: u32,
    /// `persistent` or `legacy`.
    pub kind: StoreKind,
    /// The damaged input.
    pub input: String,
    /// The output, once written.
    pub output: Option<String>,
    /// The chunk size used, in sectors.
    pub chunk_size: u32,
    /// Where it came from.
    pub chunk_size_source: ChunkSizeSource,
    /// The chunk size inferred from the areas, when it was inferred.
    pub inferred_chunk_size: Option<u32>,
    /// Whether the header needed repair (the output's header is always fresh).
    pub header_repaired: bool,
    /// What was wrong with the header.
    pub header_problems: Vec<String>,
    /// The input's valid flag, when its header could be trusted.
    pub input_valid: Option<bool>,
    /// Whether the output is marked valid.
    pub output_valid: bool,
    /// Whole chunks on the input device.
    pub device_chunks: u64,
    /// Area locations read.
    pub areas_scanned: u64,
    /// Records the kernel would read from the input.
    pub kernel_records: u64,
    /// Records carried over.
    pub kept: u64,
    /// Of those, records found outside the areas the kernel reads.
    pub recovered_beyond_kernel: u64,
    /// Records dropped, listed or not (damaged areas included).
    pub dropped_total: u64,
    /// The dropped records, in on-disk order (at most [`LISTED_MAX`]).
    pub dropped: Vec<DroppedRecord>,
    /// Dropped records not listed.
    pub dropped_unlisted: u64,
    /// Overwritten areas the kernel reads, dropped whole.
    pub damaged_areas: Vec<DamagedArea>,
    /// Area locations outside the kernel's view skipped as unused space
    /// (stale or junk bytes).
    pub skipped_areas: u64,
    /// Area locations that could not be read.
    pub unreadable_areas: Vec<u64>,
    /// The data chunk moved for the pre-2.6.29 reload hazard (legacy output).
    pub relocation: Option<Relocation>,
    /// Stale area locations zeroed on a reused output device.
    pub stale_areas_zeroed: u64,
    /// The output's usage, as `dmsetup status` would print it.
    pub usage_after: Option<Usage>,
    /// The output's status text.
    pub status_after: Option<String>,
    /// Things worth saying that are not drops.
    pub notes: Vec<String>,
}

impl RepairReport {
    /// True when records were lost and none could be kept.
    pub fn nothing_salvaged(&self) -> bool {
        self.kept == 0 && self.dropped_total > 0
    }

    fn drop_record(&mut self, placed: PlacedRecord, reason: DropReason, message: String) {
        self.dropped_total += 1;
        if self.dropped.len() < LISTED_MAX {
            self.dropped.push(DroppedRecord {
                area: placed.area,
                index: placed.index,
                old_chunk: placed.record.old_chunk,
                new_chunk: placed.record.new_chunk,
                reason,
                message,
            });
        } else {
            self.dropped_unlisted += 1;
        }
    }
}

/// The result of [`analyze`]: the records to keep, ready to be written.
#[derive(Debug)]
pub struct Salvage {
    report: RepairReport,
    geometry: Geometry,
    kept: Vec<PlacedRecord>,
}

/// Reads the damaged store on `input` (never writing to it) and decides what
/// to keep. `progress` gets (areas scanned, areas on the device).
pub fn analyze(
    input: &Device,
    options: &RepairOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> std::result::Result<Salvage, JobError> {
    if !options.kind.is_snap_v1() {
        return Err(Error::Invalid(format!(
            "{}: repair handles persistent and legacy stores, not {}",
            input.path().display(),
            options.kind
        ))
        .into());
    }
    let mut raw = [0u8; HEADER_BYTES];
    input.read_at(&mut raw, 0, || "the store header".to_string())?;
    let header = Header::decode(&raw).map_err(|e| Error::format(input.path(), e))?;
    if header.magic == SHARED_MAGIC {
        return Err(Error::format(
            input.path(),
            FormatError::WrongMagic {
                kind: "persistent",
                found: header.magic,
                expected: PERSISTENT_MAGIC,
            },
        )
        .into());
    }
    let mut report = RepairReport {
        format_version: REPAIR_FORMAT_VERSION,
        kind: options.kind,
        input: input.path().display().to_string(),
        output: None,
        chunk_size: 0,
        chunk_size_source: ChunkSizeSource::Header,
        inferred_chunk_size: None,
        header_repaired: false,
        header_problems: header_problems(&header),
        input_valid: (header.magic == PERSISTENT_MAGIC).then_some(header.is_valid()),
        output_valid: true,
        device_chunks: 0,
        areas_scanned: 0,
        kernel_records: 0,
        kept: 0,
        recovered_beyond_kernel: 0,
        dropped_total: 0,
        dropped: Vec::new(),
        dropped_unlisted: 0,
        damaged_areas: Vec::new(),
        skipped_areas: 0,
        unreadable_areas: Vec::new(),
        relocation: None,
        stale_areas_zeroed: 0,
        usage_after: None,
        status_after: None,
        notes: Vec::new(),
    };
    let chunk_sectors = choose_chunk_size(input, &header, options, &mut report)?;
    let geometry = Geometry::new(chunk_sectors, input.size_bytes())
        .map_err(|e| Error::format(input.path(), e))?;
    if !geometry.holds_first_area() {
        return Err(JobError::Damage(format!(
            "{}: the device has {} bytes, too small for a header and area 0 with {}-byte chunks; nothing to salvage",
            input.path().display(),
            input.size_bytes(),
            geometry.chunk_bytes()
        )));
    }
    report.chunk_size = chunk_sectors;
    report.device_chunks = geometry.device_chunks();
    check_header_tail(input, &geometry, &mut report)?;
    report.header_repaired = !report.header_problems.is_empty();
    decide_validity(options, &mut report);
    let kept = Scan::new(geometry, options).run(input, &mut report, progress)?;
    report.kept = kept.len() as u64;
    if report.recovered_beyond_kernel > 0 {
        report.notes.push(format!(
            "{} record{} were recovered from areas the kernel does not read; they are credible, but if this device held an earlier snapshot they may be stale",
            report.recovered_beyond_kernel,
            if report.recovered_beyond_kernel == 1 { "" } else { "s" }
        ));
    }
    Ok(Salvage {
        report,
        geometry,
        kept,
    })
}

impl Salvage {
    /// What was found so far (the output fields are filled by [`Salvage::write`]).
    pub fn report(&self) -> &RepairReport {
        &self.report
    }

    /// The records that will be kept, in on-disk order, with their input places.
    pub fn kept_records(&self) -> &[PlacedRecord] {
        &self.kept
    }

    /// The chunk size in sectors.
    pub fn chunk_sectors(&self) -> u32 {
        self.geometry.chunk_sectors()
    }

    /// The smallest output device, in bytes, that holds the salvaged store
    /// (with room to move a chunk for a legacy output).
    pub fn needed_bytes(&self) -> u64 {
        let n = self.kept.len() as u64;
        let epa = self.geometry.exceptions_per_area();
        let relocation = self.report.kind == StoreKind::Legacy && n > 0 && n % epa == 0;
        bytes_needed(self.geometry.chunk_sectors(), n + u64::from(relocation)).unwrap_or(u64::MAX)
    }

    /// Writes the salvaged store into `output`, reading data chunks from
    /// `input` (the device analysed). `output_zeroed` says the output is known
    /// to hold only zeros, so stale areas need no zeroing. `progress` gets
    /// (records copied, records to copy).
    pub fn write(
        mut self,
        input: &Device,
        output: Device,
        output_zeroed: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::result::Result<RepairReport, JobError> {
        let needed = self.needed_bytes();
        let report = &mut self.report;
        if report.nothing_salvaged() {
            return Err(JobError::Damage(format!(
                "{}: nothing could be salvaged ({} records dropped); no output written",
                report.input, report.dropped_total
            )));
        }
        let out_path = output.path().to_path_buf();
        if output.size_bytes() < needed {
            return Err(Error::Invalid(format!(
                "{}: the output has {} bytes, but the salvaged store needs at least {needed}",
                out_path.display(),
                output.size_bytes(),
            ))
            .into());
        }
        let out_geometry = Geometry::new(self.geometry.chunk_sectors(), output.size_bytes())
            .map_err(|e| Error::format(&out_path, e))?;
        if report.kind == StoreKind::Legacy && out_geometry.device_chunks() >= LEGACY_CHUNK_LIMIT {
            return Err(Error::Invalid(format!(
                "{}: {} chunks do not fit the 32 bits of a legacy store (at most {})",
                out_path.display(),
                out_geometry.device_chunks(),
                LEGACY_CHUNK_LIMIT - 1
            ))
            .into());
        }
        let mut writer = RebuildWriter::format(output, self.geometry.chunk_sectors())?;
        let mut buffer = vec![0u8; self.geometry.chunk_bytes()];
        let total = self.kept.len() as u64;
        let mut kept = 0u64;
        for (done, placed) in self.kept.iter().enumerate() {
            if done % HINT_RECORDS == 0 {
                hint_ahead(input, &self.geometry, &self.kept[done..]);
            }
            let chunk = placed.record.new_chunk;
            match input.read_chunk(chunk, &mut buffer) {
                Ok(()) => {
                    writer.push(placed.record.old_chunk, &buffer)?;
                    kept += 1;
                }
                Err(Error::Read { source, .. }) => report.drop_record(
                    *placed,
                    DropReason::DataUnreadable,
                    format!(
                        "area {} record {}: data chunk {chunk} cannot be read: {source}",
                        placed.area, placed.index
                    ),
                ),
                Err(other) => return Err(other.into()),
            }
            progress(done as u64 + 1, total);
        }
        report.kept = kept;
        let device = writer.finish(report.output_valid)?;
        let written = PersistentStore::open(device, None)?;
        let mut metadata = written.load()?;
        if !output_zeroed {
            report.stale_areas_zeroed = zero_stale_areas(
                written.device(),
                &metadata.geometry,
                metadata.state.current_area,
            )?;
        }
        if report.kind == StoreKind::Legacy {
            report.relocation = fix_legacy_reload_hazard(written.device(), &metadata)?;
            if report.relocation.is_some() {
                metadata = written.load()?;
            }
        }
        let usage = metadata.usage();
        report.status_after = Some(usage.status_text(report.output_valid));
        report.usage_after = Some(usage);
        report.output = Some(out_path.display().to_string());
        Ok(self.report)
    }
}

/// Records whose data chunks are hinted to the kernel at a time.
const HINT_RECORDS: usize = 256;

fn hint_ahead(input: &Device, geometry: &Geometry, upcoming: &[PlacedRecord]) {
    let chunk_bytes = geometry.chunk_bytes() as u64;
    let mut run: Option<(u64, u64)> = None;
    for placed in upcoming.iter().take(HINT_RECORDS) {
        let chunk = placed.record.new_chunk;
        run = match run {
            Some((start, count)) if start + count == chunk => Some((start, count + 1)),
            Some((start, count)) => {
                input.will_need(start * chunk_bytes, count * chunk_bytes);
                Some((chunk, 1))
            }
            None => Some((chunk, 1)),
        };
    }
    if let Some((start, count)) = run {
        input.will_need(start * chunk_bytes, count * chunk_bytes);
    }
}

fn header_problems(header: &Header) -> Vec<String> {
    let mut problems = Vec::new();
    match header.magic {
        PERSISTENT_MAGIC => {}
        0 => problems.push("magic is 0: the header was wiped".to_string()),
        other => problems.push(format!(
            "magic is {other:#010x}, expected {PERSISTENT_MAGIC:#010x} (\"SnAp\")"
        )),
    }
    if header.version != DISK_VERSION {
        problems.push(format!(
            "version is {}, expected {DISK_VERSION}",
            header.version
        ));
    }
    if let Err(FormatError::BadChunkSize { sectors, why }) =
        validate_chunk_size(u64::from(header.chunk_size))
    {
        problems.push(format!("chunk size {sectors} sectors {why}"));
    }
    if header.magic == PERSISTENT_MAGIC && header.valid > 1 {
        problems.push(format!("valid is {}, expected 0 or 1", header.valid));
    }
    problems
}

/// Settles the chunk size: the caller's, else the header's when the header is
/// sound, else the one under which area 0 looks most plausible.
fn choose_chunk_size(
    input: &Device,
    header: &Header,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> std::result::Result<u32, JobError> {
    let field_usable = validate_chunk_size(u64::from(header.chunk_size)).is_ok()
        && input.size_bytes() >= 2 * u64::from(header.chunk_size) * crate::SECTOR_BYTES;
    if let Some(sectors) = options.chunk_size {
        validate_chunk_size(u64::from(sectors)).map_err(|e| Error::format(input.path(), e))?;
        report.chunk_size_source = ChunkSizeSource::Option;
        if field_usable && header.chunk_size != sectors {
            report.header_problems.push(format!(
                "chunk size field says {} sectors; {sectors} sectors were given and used",
                header.chunk_size
            ));
        }
        return Ok(sectors);
    }
    let identity_sound = header.magic == PERSISTENT_MAGIC && header.version == DISK_VERSION;
    if identity_sound && field_usable {
        if score_area_zero(input, header.chunk_size).0 == 0 {
            if let Some(other) = infer_chunk_size(input, None)? {
                report.notes.push(format!(
                    "area 0 is empty under the header's chunk size of {} sectors, but looks plausible under {other} sectors; if the chunk size field is damaged, give {other} sectors explicitly",
                    header.chunk_size
                ));
            }
        }
        return Ok(header.chunk_size);
    }
    let preferred = field_usable.then_some(header.chunk_size);
    match infer_chunk_size(input, preferred)? {
        Some(sectors) => {
            report.chunk_size_source = ChunkSizeSource::Inferred;
            report.inferred_chunk_size = Some(sectors);
            if field_usable && header.chunk_size != sectors {
                report.header_problems.push(format!(
                    "chunk size field says {} sectors, but area 0 is where a {sectors}-sector chunk puts it",
                    header.chunk_size
                ));
            }
            report.notes.push(format!(
                "the chunk size was inferred as {sectors} sectors from where area 0 looks plausible"
            ));
            Ok(sectors)
        }
        None if field_usable => {
            report.notes.push(format!(
                "no plausible area 0 was found at any chunk size; the header's {} sectors were used",
                header.chunk_size
            ));
            Ok(header.chunk_size)
        }
        None if report.header_problems.is_empty() => Err(JobError::Damage(format!(
            "{}: the device has {} bytes, too small for a header and area 0 with the header's chunk size of {} sectors; nothing to salvage",
            input.path().display(),
            input.size_bytes(),
            header.chunk_size
        ))),
        None => Err(JobError::Damage(format!(
            "{}: the header is unusable ({}) and no plausible area 0 was found at any chunk size; nothing to salvage unless the chunk size is given",
            input.path().display(),
            report.header_problems.join("; ")
        ))),
    }
}

/// Tries every power-of-two chunk size and returns the one under which area 0
/// holds the longest run of plausible records (ascending new_chunk from 2, on
/// data chunks of the device); ties go to `preferred`, then to the smallest.
fn infer_chunk_size(input: &Device, preferred: Option<u32>) -> Result<Option<u32>> {
    let mut best: Option<(u64, u64, u32)> = None;
    let mut sectors = 1u64;
    while sectors <= MAX_CHUNK_SECTORS {
        let candidate = sectors as u32;
        let (run, exact) = score_area_zero(input, candidate);
        let better = match best {
            None => run > 0,
            Some((best_run, best_exact, best_sectors)) => {
                (run, exact) > (best_run, best_exact)
                    || ((run, exact) == (best_run, best_exact)
                        && preferred == Some(candidate)
                        && preferred != Some(best_sectors))
            }
        };
        if better {
            best = Some((run, exact, candidate));
        }
        sectors <<= 1;
    }
    Ok(best.map(|(_, _, sectors)| sectors))
}

/// The plausible run at the start of area 0 under `chunk_sectors`, and how
/// many of its records sit exactly where the kernel's allocator puts them.
fn score_area_zero(input: &Device, chunk_sectors: u32) -> (u64, u64) {
    let Ok(geometry) = Geometry::new(chunk_sectors, input.size_bytes()) else {
        return (0, 0);
    };
    if !geometry.holds_first_area() {
        return (0, 0);
    }
    let chunk_bytes = geometry.chunk_bytes();
    let base = geometry.area_location(0) * chunk_bytes as u64;
    let window = chunk_bytes.min(SCORE_WINDOW);
    let mut buffer = vec![0u8; window];
    let (mut run, mut exact, mut previous) = (0u64, 0u64, 1u64);
    let mut offset = 0usize;
    while offset < chunk_bytes {
        if input
            .read_at(&mut buffer, base + offset as u64, || "area 0".to_string())
            .is_err()
        {
            break;
        }
        for raw in buffer.chunks_exact(RECORD_BYTES) {
            let new_chunk = ExceptionRecord::decode(raw).new_chunk;
            if new_chunk <= previous
                || new_chunk >= geometry.device_chunks()
                || geometry.is_metadata_chunk(new_chunk)
            {
                return (run, exact);
            }
            if new_chunk == geometry.nth_data_chunk(run) {
                exact += 1;
            }
            run += 1;
            previous = new_chunk;
        }
        offset += window;
    }
    (run, exact)
}

fn check_header_tail(input: &Device, geometry: &Geometry, report: &mut RepairReport) -> Result<()> {
    let mut chunk = vec![0u8; geometry.chunk_bytes()];
    input.read_chunk(0, &mut chunk)?;
    if let Some(pos) = chunk[HEADER_BYTES..].iter().position(|&b| b != 0) {
        report.header_problems.push(format!(
            "byte {} of the header chunk is not zero (the kernel writes 16 header bytes, then zeros)",
            HEADER_BYTES + pos
        ));
    }
    Ok(())
}

fn decide_validity(options: &RepairOptions, report: &mut RepairReport) {
    report.output_valid = match report.input_valid {
        Some(true) => true,
        Some(false) if options.mark_valid => {
            report.notes.push(
                "the input was invalidated (valid=0); the output is marked valid as asked, although its data may be incomplete".to_string(),
            );
            true
        }
        Some(false) => {
            report.notes.push(
                "the input is marked invalid (valid=0): the kernel stopped updating it, so its data is known to be incomplete; the output stays invalid unless it is explicitly marked valid".to_string(),
            );
            false
        }
        None => {
            report.notes.push(
                "the header's valid flag cannot be trusted (its magic is damaged); the output is marked valid".to_string(),
            );
            true
        }
    };
}

/// A fault that makes a record implausible on its own, whatever else is on disk.
type Fault = (DropReason, String);

/// The walk over every area location, deciding record by record.
struct Scan {
    geometry: Geometry,
    origin_chunks: Option<u64>,
    legacy: bool,
    kernel_areas_only: bool,
    used: DenseBitmap,
    mapped: SparseBitmap,
}

impl Scan {
    fn new(geometry: Geometry, options: &RepairOptions) -> Self {
        Scan {
            geometry,
            origin_chunks: options
                .origin_bytes
                .map(|bytes| bytes.div_ceil(geometry.chunk_bytes() as u64)),
            legacy: options.kind == StoreKind::Legacy,
            kernel_areas_only: options.kernel_areas_only,
            used: DenseBitmap::new(geometry.device_chunks()),
            mapped: SparseBitmap::new(),
        }
    }

    fn run(
        mut self,
        input: &Device,
        report: &mut RepairReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<PlacedRecord>> {
        let geometry = self.geometry;
        let areas = geometry.areas_on_device();
        let chunk_bytes = geometry.chunk_bytes() as u64;
        let mut buffer = vec![0u8; geometry.chunk_bytes()];
        let mut kept = Vec::new();
        let mut in_view = true;
        for area in 0..areas {
            if self.kernel_areas_only && !in_view {
                break;
            }
            let chunk = geometry.area_location(area);
            if area % 64 == 0 {
                for ahead in area..(area + 64).min(areas) {
                    input.will_need(geometry.area_location(ahead) * chunk_bytes, chunk_bytes);
                }
            }
            report.areas_scanned += 1;
            progress(area + 1, areas);
            match input.read_chunk(chunk, &mut buffer) {
                Ok(()) => {}
                Err(Error::Read { .. }) => {
                    report.unreadable_areas.push(area);
                    in_view = false;
                    continue;
                }
                Err(other) => return Err(other),
            }
            let parse = parse_area(&buffer);
            if in_view {
                report.kernel_records += parse.entries as u64;
            }
            let visible = if in_view { parse.entries } else { 0 };
            let limit = if self.kernel_areas_only {
                parse.entries
            } else {
                buffer.len() / RECORD_BYTES
            };
            self.area(area, chunk, &buffer, limit, visible, report, &mut kept);
            in_view = in_view && parse.full;
        }
        Ok(kept)
    }

    /// Decides the records in the first `limit` slots of one area; the first
    /// `visible` of them are in the kernel's view.
    #[allow(clippy::too_many_arguments)]
    fn area(
        &mut self,
        area: u64,
        chunk: u64,
        bytes: &[u8],
        limit: usize,
        visible: usize,
        report: &mut RepairReport,
        kept: &mut Vec<PlacedRecord>,
    ) {
        let slots = || {
            bytes
                .chunks_exact(RECORD_BYTES)
                .take(limit)
                .map(ExceptionRecord::decode)
                .enumerate()
                .filter(|(_, record)| !record.is_terminator())
        };
        let (mut present, mut plausible, mut leading) = (0u64, 0u64, 0u64);
        let mut leading_open = true;
        for (index, record) in slots() {
            present += 1;
            let fine = self.fault(area, chunk, &record).is_none();
            if fine {
                plausible += 1;
            }
            leading_open = leading_open && fine && index as u64 == leading;
            if leading_open {
                leading += 1;
            }
        }
        let junk =
            present > 0 && plausible * 8 < present && !(plausible > 0 && leading == plausible);
        if junk {
            if visible > 0 {
                report.dropped_total += present;
                let message = format!(
                    "area {area} (chunk {chunk}): {plausible} of its {present} records look plausible; the kernel reads this area, but it was overwritten, so all of them were dropped"
                );
                if report.damaged_areas.len() < LISTED_MAX {
                    report.damaged_areas.push(DamagedArea {
                        area,
                        chunk,
                        records: present,
                        plausible,
                        message,
                    });
                }
            } else {
                report.skipped_areas += 1;
            }
            return;
        }
        for (index, record) in slots() {
            let placed = PlacedRecord {
                area,
                index: index as u64,
                record,
            };
            let place = format!("area {area} (chunk {chunk}) record {index}");
            let (old, new) = (record.old_chunk, record.new_chunk);
            if let Some((reason, why)) = self.fault(area, chunk, &record) {
                report.drop_record(placed, reason, format!("{place}: {why}"));
            } else if self.used.get(new) {
                report.drop_record(
                    placed,
                    DropReason::NewChunkDuplicate,
                    format!("{place}: new_chunk {new} is already used by an earlier record"),
                );
            } else if self.mapped.get(old) {
                report.drop_record(
                    placed,
                    DropReason::OldChunkDuplicate,
                    format!("{place}: old_chunk {old} is already mapped by an earlier record (the first is kept)"),
                );
            } else {
                self.used.test_and_set(new);
                self.mapped.test_and_set(old);
                if index >= visible {
                    report.recovered_beyond_kernel += 1;
                }
                kept.push(placed);
            }
        }
    }

    fn fault(&self, area: u64, chunk: u64, record: &ExceptionRecord) -> Option<Fault> {
        let geometry = &self.geometry;
        let (old, new) = (record.old_chunk, record.new_chunk);
        let device_chunks = geometry.device_chunks();
        if new >= device_chunks {
            return Some((
                DropReason::NewChunkPastEnd,
                format!("new_chunk {new} is past the end of the device ({device_chunks} chunks)"),
            ));
        }
        if geometry.is_metadata_chunk(new) {
            let what = match geometry.area_of_chunk(new) {
                None => "the header".to_string(),
                Some(area) => format!("metadata area {area}"),
            };
            return Some((
                DropReason::NewChunkIsMetadata,
                format!("new_chunk {new} is {what}, not a data chunk"),
            ));
        }
        if new <= chunk {
            return Some((
                DropReason::NewChunkBeforeArea,
                format!(
                    "new_chunk {new} lies before area {area} (chunk {chunk}); the kernel allocates an area's data after it"
                ),
            ));
        }
        if let Some(origin_chunks) = self.origin_chunks {
            if old >= origin_chunks {
                return Some((
                    DropReason::OldChunkPastOrigin,
                    format!(
                        "old_chunk {old} is past the end of the origin ({origin_chunks} chunks)"
                    ),
                ));
            }
        }
        if self.legacy && old >= LEGACY_CHUNK_LIMIT {
            return Some((
                DropReason::LegacyChunkTooLarge,
                format!("old_chunk {old} does not fit the 32 bits of a legacy store"),
            ));
        }
        None
    }
}

/// Copies every byte of `source` to the start of `backup` (which must be at
/// least as large), skipping all-zero blocks when `backup_zeroed`. `progress`
/// gets (bytes copied, bytes to copy).
pub fn copy_device(
    source: &Device,
    backup: &Device,
    backup_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    let mut buffer = vec![0u8; COPY_BLOCK];
    let mut offset = 0u64;
    while offset < total {
        let len = (total - offset).min(COPY_BLOCK as u64) as usize;
        let block = &mut buffer[..len];
        source.read_at(block, offset, || format!("bytes at {offset}"))?;
        if !(backup_zeroed && block.iter().all(|&b| b == 0)) {
            backup.write_at(block, offset)?;
        }
        offset += len as u64;
        progress(offset, total);
    }
    backup.sync()
}

/// Compares `backup` with `source` byte for byte and fails, naming the first
/// differing offset, unless the backup holds an exact copy.
pub fn verify_copy(
    source: &Device,
    backup: &Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    let mut left = vec![0u8; COPY_BLOCK];
    let mut right = vec![0u8; COPY_BLOCK];
    let mut offset = 0u64;
    while offset < total {
        let len = (total - offset).min(COPY_BLOCK as u64) as usize;
        source.read_at(&mut left[..len], offset, || format!("bytes at {offset}"))?;
        backup.read_at(&mut right[..len], offset, || format!("bytes at {offset}"))?;
        if let Some(at) = left[..len]
            .iter()
            .zip(&right[..len])
            .position(|(a, b)| a != b)
        {
            return Err(Error::Invalid(format!(
                "{}: the backup differs from {} at byte {}; the input was not touched",
                backup.path().display(),
                source.path().display(),
                offset + at as u64
            )));
        }
        offset += len as u64;
        progress(offset, total);
    }
    Ok(())
}
