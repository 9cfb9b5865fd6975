//! mkcow: formats a persistent or legacy COW store exactly as the kernel does on
//! first activation, or a shared store; or restores one from a cowdump dump
//! (metadata only).

mod dump_input;
mod shared;
mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use cowfmt::bitset::{DenseBitmap, SparseBitmap};
use cowfmt::device::{Access, Backing, Device};
use cowfmt::output::{self, Marker, OutputClaim, OutputRequest};
use cowfmt::persistent::dump::{RestoreHead, DUMP_FORMAT_VERSION};
use cowfmt::persistent::header::{validate_chunk_size, DISK_VERSION};
use cowfmt::persistent::layout::HEADER_CHUNKS;
use cowfmt::persistent::table::{snapshot_table_line, TableDevices};
use cowfmt::persistent::writer::write_areas_streamed;
use cowfmt::persistent::{ExceptionRecord, Geometry, Header, StoreWriter, LEGACY_CHUNK_LIMIT};
use cowfmt::probe;
use cowfmt::units::human_bytes;
use cowfmt::StoreKind;
use cowtools::args::KindArg;
use cowtools::cli::mkcow::Cli;
use cowtools::{exit, open, progress, signatures};
use serde_json::{Map, Value};
use spool::{RecordCheck, Spool};
use std::any::Any;

const TOOL: &str = "mkcow";

/// Records written between two updates of a progress bar.
pub(crate) const RECORDS_PER_PROGRESS: u64 = 1 << 16;

/// The kernel's default chunk size for a new store here: 4 KiB.
pub(crate) const DEFAULT_CHUNK_SECTORS: u32 = 8;

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    match &cli.from_dump {
        Some(dump) => restore(cli, dump),
        None => format(cli),
    }
}

fn format(cli: &Cli) -> anyhow::Result<u8> {
    if cli.store_kind.kind == Some(KindArg::Shared) {
        return shared::format(cli);
    }
    if cli.journal_size.is_some() || cli.snapshots.is_some() {
        bail!("--journal-size and --snapshots apply to shared stores only (--kind shared)");
    }
    let kind = snap_kind(
        cli.store_kind
            .kind
            .map_or(StoreKind::Persistent, StoreKind::from),
        &cli.store.target,
    )?;
    let chunk_sectors = cli.chunk.chunk_size.unwrap_or(DEFAULT_CHUNK_SECTORS);
    let size = plan_target(
        &cli.store.target,
        cli.size,
        chunk_sectors,
        cli.overwrite.force,
    )?;
    let geometry = plan_geometry(&cli.store.target, chunk_sectors, size, kind)?;
    let origin = origin_sectors(cli.origin.origin.as_deref())?;
    let (device, claim) = open_for_write(cli)?;
    StoreWriter::format(device, chunk_sectors)?.finish()?;
    claim.keep();
    if !cli.verbosity.quiet {
        println!(
            "{}: formatted a {kind} store: chunk size {chunk_sectors} sectors ({}), {} chunks ({}), room for {} exceptions",
            cli.store.target.display(),
            human_bytes(geometry.chunk_bytes() as u64),
            geometry.device_chunks(),
            human_bytes(geometry.device_bytes()),
            geometry.data_capacity()
        );
    }
    print_table(cli, kind, chunk_sectors, origin);
    Ok(exit::EXIT_OK)
}

fn restore(cli: &Cli, dump_path: &Path) -> anyhow::Result<u8> {
    let cli_kind = cli.store_kind.kind.map(StoreKind::from);
    let plan = |shared: bool, fields: &Map<String, Value>| plan_check(cli, shared, fields);
    let mut dump = dump_input::read(dump_path, cli_kind, cli.verbosity.quiet, &plan)?;
    let dumped_kind = dump.dumped_kind;
    if cli_kind.or(dumped_kind) == Some(StoreKind::Shared) {
        if dumped_kind.is_some_and(|k| k != StoreKind::Shared) {
            bail!(
                "{}: the dump is of a {} store; --kind shared cannot restore it",
                dump_path.display(),
                dumped_kind.unwrap_or(StoreKind::Persistent)
            );
        }
        return shared::restore(cli, dump_path, dump);
    }
    let head: RestoreHead = dump.head(dump_path)?;
    check_dump_version(head.format_version, dump_path)?;
    let kind = snap_kind(
        cli_kind.unwrap_or(head.kind.unwrap_or(StoreKind::Persistent)),
        &cli.store.target,
    )?;
    let header = header_from_dump(&head, dump_path)?;
    let chunk_sectors = header.chunk_size;
    let size = plan_target(
        &cli.store.target,
        cli.size,
        chunk_sectors,
        cli.overwrite.force,
    )?;
    let geometry = plan_geometry(&cli.store.target, chunk_sectors, size, kind)?;
    let early = dump.checked.take();
    validate_records(
        &mut dump.spool,
        &geometry,
        kind,
        dump_path,
        &cli.store.target,
        early,
    )?;
    let origin = origin_sectors(cli.origin.origin.as_deref())?;
    let (device, claim) = open_for_write(cli)?;
    let count = dump.spool.len();
    let mut records = dump.spool.read().map_err(spool::read_back_error)?;
    let stream = std::iter::from_fn(|| {
        let mut r = [0u64; 2];
        match records.next_into(&mut r) {
            Ok(true) => Some(Ok(ExceptionRecord {
                old_chunk: r[0],
                new_chunk: r[1],
            })),
            Ok(false) => None,
            Err(e) => Some(Err(spool::read_back_error(e))),
        }
    });
    let bar = progress::bar(count, "writing", cli.verbosity.quiet);
    let stream = stream.enumerate().map(|(index, record)| {
        if (index as u64).is_multiple_of(RECORDS_PER_PROGRESS) {
            bar.set_position(index as u64);
        }
        record
    });
    write_areas_streamed(&device, &geometry, &header, count, stream)?;
    bar.finish_and_clear();
    claim.keep();
    if !cli.verbosity.quiet {
        report_restore(cli, dump_path, &head, count, &geometry, kind);
    }
    print_table(cli, kind, chunk_sectors, origin);
    Ok(exit::EXIT_OK)
}

/// Only the SnAp v1 kinds are written by this version.
fn snap_kind(kind: StoreKind, target: &Path) -> anyhow::Result<StoreKind> {
    if kind.is_snap_v1() {
        Ok(kind)
    } else {
        Err(open::unsupported(kind, target, TOOL))
    }
}

/// Looks at the target without changing it: refuses a target held open
/// elsewhere (even forced), refuses to overwrite any signature or a non-zero
/// first chunk unless forced (then says what is overwritten), and returns its
/// size once --size is applied.
fn plan_target(
    target: &Path,
    size: Option<u64>,
    chunk_sectors: u32,
    force: bool,
) -> anyhow::Result<u64> {
    let device = match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(size) = size else {
                bail!(
                    "{}: does not exist; give --size to create an image file of that size",
                    target.display()
                );
            };
            return Ok(size);
        }
        _ => Device::open(target, Access::ReadOnly)?,
    };
    cowfmt::in_use::refuse_in_use(target)?;
    signatures::guard_overwrite(
        TOOL,
        &device,
        u64::from(chunk_sectors) * cowfmt::SECTOR_BYTES,
        force,
    )?;
    Ok(planned_size(&device, size))
}

/// The size of an existing target once --size is applied: an image file
/// grows to it, a device keeps its size.
fn planned_size(device: &Device, size: Option<u64>) -> u64 {
    let current = device.size_bytes();
    match (device.backing(), size) {
        (Backing::File, Some(size)) => current.max(size),
        _ => current,
    }
}

/// The geometry of the store to write, refused when the device cannot hold it.
fn plan_geometry(
    target: &Path,
    chunk_sectors: u32,
    size: u64,
    kind: StoreKind,
) -> anyhow::Result<Geometry> {
    let geometry =
        Geometry::new(chunk_sectors, size).map_err(|e| cowfmt::Error::format(target, e))?;
    if !geometry.holds_first_area() {
        bail!(
            "{}: {size} bytes is too small for a store with {}-byte chunks: the header and metadata area 0 need {} bytes",
            target.display(),
            geometry.chunk_bytes(),
            2 * geometry.chunk_bytes()
        );
    }
    if kind == StoreKind::Legacy && geometry.device_chunks() >= LEGACY_CHUNK_LIMIT {
        bail!(
            "{}: {} chunks of {} bytes; a legacy store must have fewer than 2^32 chunks (the pre-2.6.29 code counts chunks in 32 bits): use a larger chunk size or --kind persistent",
            target.display(),
            geometry.device_chunks(),
            geometry.chunk_bytes()
        );
    }
    Ok(geometry)
}

/// Opens the target through the output guard, never the origin or the dump:
/// a missing image file is created exclusively (and removed again if the job
/// fails); an existing target is extended to `--size` and locked for the job.
/// It carries the incomplete marker until the store's header is written last;
/// with `--force`, the magic of every signature still on it is wiped, and so
/// is area 0 of a persistent store it held (the refusal without `--force` came
/// before, in [`plan_target`]).
pub(crate) fn open_for_write(cli: &Cli) -> anyhow::Result<(Device, OutputClaim)> {
    let target = cli.store.target.as_path();
    let inputs: Vec<&Path> = cli
        .origin
        .origin
        .iter()
        .chain(cli.from_dump.iter().filter(|dump| dump.as_os_str() != "-"))
        .map(PathBuf::as_path)
        .collect();
    let existing = match std::fs::metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        other => Some(other.map_err(|source| cowfmt::Error::Open {
            path: target.to_path_buf(),
            source,
        })?),
    };
    let Some(meta) = existing else {
        let prepared = output::open_output(&OutputRequest {
            path: target,
            size: cli.size.unwrap_or(0),
            size_given: true,
            force: cli.overwrite.force,
            inputs: &inputs,
        })?;
        return Ok((prepared.device, prepared.claim));
    };
    output::refuse_alias(target, &meta, &inputs)?;
    if let Some(size) = cli.size {
        Device::create_or_extend(target, size)?;
    }
    let (device, claim) = output::claim_in_place(target)?;
    let mut old_start = [0u8; 16];
    device.read_at(&mut old_start, 0, || "the old header".to_string())?;
    Marker::Writing.write(&device)?;
    if cli.overwrite.force {
        probe::wipe_signatures(&device, &probe::probe(&device)?)?;
        probe::wipe_old_snap_area(&device, &old_start)?;
    }
    Ok((device, claim))
}

fn origin_sectors(origin: Option<&Path>) -> anyhow::Result<Option<u64>> {
    origin
        .map(|path| Ok(Device::open(path, Access::ReadOnly)?.size_sectors()))
        .transpose()
}

fn print_table(cli: &Cli, kind: StoreKind, chunk_sectors: u32, origin_sectors: Option<u64>) {
    let cow = cli.store.target.display().to_string();
    let origin = cli.origin.origin.as_ref().map(|p| p.display().to_string());
    let devices = TableDevices {
        origin: origin.as_deref(),
        origin_sectors,
        cow: &cow,
    };
    let line = snapshot_table_line(&devices, chunk_sectors, kind);
    if !cli.verbosity.quiet {
        println!("Activate it with this dmsetup table line (attach an image file with losetup first and use the loop device in its place):");
        if kind == StoreKind::Legacy {
            println!("note: 'P' is the only store type mainline kernels accept, old and new; the long name 'persistent' never was");
        }
    }
    println!("{line}");
}

/// Refuses a dump of another format version.
fn check_dump_version(version: Option<u32>, path: &Path) -> anyhow::Result<()> {
    if let Some(version) = version.filter(|&v| v != DUMP_FORMAT_VERSION) {
        bail!(
            "{}: dump format_version {} is not supported (this mkcow reads version {DUMP_FORMAT_VERSION})",
            path.display(),
            version
        );
    }
    Ok(())
}

/// The header to write: the dump's chunk size and valid flag.
fn header_from_dump(head: &RestoreHead, path: &Path) -> anyhow::Result<Header> {
    if let Err(e) = validate_chunk_size(u64::from(head.chunk_size)) {
        bail!("{}: chunk_size: {e}", path.display());
    }
    if let Some(version) = head.version.filter(|&v| v != DISK_VERSION) {
        bail!(
            "{}: version {version} is not the only on-disk version the kernel reads ({DISK_VERSION})",
            path.display()
        );
    }
    let mut header = Header::new(head.chunk_size);
    header.valid = match (head.valid, head.valid_raw) {
        (false, _) => 0,
        (true, Some(raw)) if raw != 0 => raw,
        (true, _) => 1,
    };
    Ok(header)
}

/// Records checked together, their origin chunks' bits loaded ahead.
const VALIDATE_BATCH: usize = 256;

/// Checks every record against the target's geometry before anything is
/// written: with the check run while the records were spooled when it was
/// planned for this geometry and kind, otherwise by reading them back.
fn validate_records(
    records: &mut Spool,
    geometry: &Geometry,
    kind: StoreKind,
    dump_path: &Path,
    target: &Path,
    early: Option<Box<dyn RecordCheck>>,
) -> anyhow::Result<()> {
    let count = records.len();
    let areas_needed = count / geometry.exceptions_per_area() + 1;
    if !geometry.area_fits(areas_needed - 1) {
        bail!(
            "{}: {count} exceptions need {areas_needed} metadata areas, but area {} (chunk {}) lies past the end of {} ({} chunks)",
            dump_path.display(),
            areas_needed - 1,
            geometry.area_location(areas_needed - 1),
            target.display(),
            geometry.device_chunks()
        );
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
            let mut reader = records.read().map_err(spool::read_back_error)?;
            let mut batch = Vec::with_capacity(2 * VALIDATE_BATCH);
            let mut r = [0u64; 2];
            loop {
                batch.clear();
                while batch.len() < 2 * VALIDATE_BATCH
                    && reader.next_into(&mut r).map_err(spool::read_back_error)?
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
            bail!("{}: {first}{more}", dump_path.display())
        }
    }
}

/// Plans the check of persistent records while they are spooled, from the
/// head fields read before them: the geometry [`restore`] will plan, found
/// without a word to the user (the restore itself says what it overwrites).
fn plan_check(
    cli: &Cli,
    shared: bool,
    fields: &Map<String, Value>,
) -> Option<Box<dyn RecordCheck>> {
    if shared {
        return shared::plan_check(cli, fields);
    }
    let head: RestoreHead = serde_json::from_value(Value::Object(fields.clone())).ok()?;
    let kind = cli
        .store_kind
        .kind
        .map(StoreKind::from)
        .unwrap_or(head.kind.unwrap_or(StoreKind::Persistent));
    if !kind.is_snap_v1() || validate_chunk_size(u64::from(head.chunk_size)).is_err() {
        return None;
    }
    let size = match std::fs::symlink_metadata(&cli.store.target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => cli.size?,
        Err(_) => return None,
        Ok(_) => {
            let device = Device::open(&cli.store.target, Access::ReadOnly).ok()?;
            planned_size(&device, cli.size)
        }
    };
    let geometry = plan_geometry(&cli.store.target, head.chunk_size, size, kind).ok()?;
    Some(Box::new(PersistentCheck::new(
        geometry,
        kind,
        &cli.store.target,
    )))
}

/// The first unusable record and the count of them.
struct PersistentCheck {
    checker: RecordValidator,
    first: Option<String>,
    bad: u64,
    index: u64,
}

impl PersistentCheck {
    fn new(geometry: Geometry, kind: StoreKind, target: &Path) -> Self {
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

fn report_restore(
    cli: &Cli,
    dump_path: &Path,
    head: &RestoreHead,
    count: u64,
    geometry: &Geometry,
    kind: StoreKind,
) {
    let areas = count / geometry.exceptions_per_area() + 1;
    println!(
        "{}: restored {count} exceptions in {areas} area{} from {} ({kind}, chunk size {} sectors, {}); data chunks were not touched",
        cli.store.target.display(),
        if areas == 1 { "" } else { "s" },
        dump_path.display(),
        geometry.chunk_sectors(),
        if head.valid { "valid" } else { "marked invalid" }
    );
    let dumped_chunks = head.device_chunks.unwrap_or(geometry.device_chunks());
    if dumped_chunks != geometry.device_chunks() {
        println!(
            "note: the dump describes a device of {dumped_chunks} chunks; {} has {}",
            cli.store.target.display(),
            geometry.device_chunks()
        );
    }
}
