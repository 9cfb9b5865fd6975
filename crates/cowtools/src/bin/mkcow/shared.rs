//! mkcow for shared stores: format (with a journal and snapshots made at once)
//! and restore from a cowdump dump.

use std::any::Any;
use std::path::Path;

use serde_json::{Map, Value};

use anyhow::bail;
use cowfmt::shared::build::StoreBuilder;
use cowfmt::shared::dump::SharedRestoreHead;
use cowfmt::shared::format::{format_store, plan};
use cowfmt::shared::geometry::{default_journal_chunks, validate_chunk_size};
use cowfmt::shared::header::SHARED_VERSION;
use cowfmt::shared::leaf::check_snapshot_count;
use cowfmt::shared::mask::{self, MAX_SNAPSHOTS};
use cowfmt::shared::{Exception, Geometry};
use cowfmt::units::human_bytes;
use cowfmt::{Error, SECTOR_BYTES};
use cowtools::{exit, progress};

use super::dump_input::ReadDump;
use super::spool::{read_back_error, RecordCheck, Spool};
use super::{
    check_dump_version, open_for_write, origin_sectors, plan_target, Cli, DEFAULT_CHUNK_SECTORS,
    RECORDS_PER_PROGRESS,
};

/// Formats a shared store as `cli` asks.
pub fn format(cli: &Cli) -> anyhow::Result<u8> {
    let chunk_sectors = cli.chunk.chunk_size.unwrap_or(DEFAULT_CHUNK_SECTORS);
    validate_chunk_size(u64::from(chunk_sectors))
        .map_err(|e| anyhow::anyhow!("{}: --chunk-size: {e}", cli.store.target.display()))?;
    let snapshots = cli.snapshots.unwrap_or(0);
    refuse_too_many_snapshots(
        snapshots,
        chunk_sectors,
        &cli.store.target.display().to_string(),
    )?;
    let size = plan_target(
        &cli.store.target,
        cli.size,
        chunk_sectors,
        cli.overwrite.force,
    )?;
    let journal = journal_chunks(cli, size, chunk_sectors)?;
    let geometry = plan(size, u64::from(chunk_sectors), journal)
        .map_err(|e| Error::format(&cli.store.target, e))?;
    let origin = origin_sectors(cli.origin.origin.as_deref())?;
    let (device, claim) = open_for_write(cli)?;
    let mut header = format_store(&device, u64::from(chunk_sectors), journal)?;
    if snapshots > 0 {
        header.snapmask = if snapshots == MAX_SNAPSHOTS {
            u64::MAX
        } else {
            (1u64 << snapshots) - 1
        };
        device.write_chunk(0, &header.to_chunk(geometry.chunk_bytes as usize))?;
        device.sync()?;
    }
    claim.keep();
    if !cli.verbosity.quiet {
        println!(
            "{}: formatted a shared store: chunk size {chunk_sectors} sectors ({}), {} chunks ({}): {} bitmap, {} journal ({}), {} for the tree and data; snapshots: {}",
            cli.store.target.display(),
            human_bytes(geometry.chunk_bytes),
            geometry.nr_chunks,
            human_bytes(geometry.nr_chunks * geometry.chunk_bytes),
            geometry.nr_bitmap_chunks,
            geometry.nr_journal_chunks,
            human_bytes(geometry.nr_journal_chunks * geometry.chunk_bytes),
            geometry.data_chunks(),
            mask::describe(header.snapmask)
        );
    }
    warn_in_place(cli, &geometry);
    print_table_lines(cli, chunk_sectors, origin, header.snapmask);
    Ok(exit::EXIT_OK)
}

/// The journal size in chunks: `--journal-size` rounded up to whole chunks, or
/// the default.
fn journal_chunks(cli: &Cli, size: u64, chunk_sectors: u32) -> anyhow::Result<u64> {
    let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
    Ok(match cli.journal_size {
        Some(bytes) => bytes.div_ceil(chunk_bytes),
        None => default_journal_chunks(size, chunk_bytes),
    })
}

fn print_table_lines(cli: &Cli, chunk_sectors: u32, origin_sectors: Option<u64>, snapmask: u64) {
    if snapmask == 0 {
        return;
    }
    let cow = cli.store.target.display().to_string();
    let origin = cli.origin.origin.as_ref().map(|p| p.display().to_string());
    if !cli.verbosity.quiet {
        println!("Table lines of the seed's shared exception store, one per snapshot (mainline kernels have no shared store; cowrt serves it):");
    }
    for id in mask::ids(snapmask) {
        println!(
            "{}",
            cowfmt::shared::table_line(origin.as_deref(), origin_sectors, &cow, chunk_sectors, id)
        );
    }
}

/// Restores a shared store's metadata from a dump: the data chunks stay where
/// the dump says they are; a fresh tree and bitmap are written around them.
/// The records are checked, then read back from the spool twice: once to claim
/// their data chunks, once to write the tree.
pub fn restore(cli: &Cli, dump_path: &Path, mut dump: ReadDump) -> anyhow::Result<u8> {
    let head: SharedRestoreHead = dump.head(dump_path)?;
    check_dump_version(head.format_version, dump_path)?;
    if let Some(version) = head.version.filter(|&v| v != SHARED_VERSION) {
        bail!(
            "{}: version {version} is not the shared store version {SHARED_VERSION}",
            dump_path.display()
        );
    }
    let snapmask = mask_of(
        &head.snapshots,
        &format!("{}: snapshots", dump_path.display()),
    )?;
    let chunk_sectors = head.chunk_size;
    validate_chunk_size(u64::from(chunk_sectors))
        .map_err(|e| anyhow::anyhow!("{}: chunk_size: {e}", dump_path.display()))?;
    let size = plan_target(
        &cli.store.target,
        cli.size,
        chunk_sectors,
        cli.overwrite.force,
    )?;
    refuse_too_many_snapshots(
        snapmask.count_ones(),
        chunk_sectors,
        &format!("{}: snapshots", dump_path.display()),
    )?;
    let journal = head
        .journal_chunks
        .unwrap_or_else(|| default_journal_chunks(size, u64::from(chunk_sectors) * SECTOR_BYTES));
    plan(size, u64::from(chunk_sectors), journal)
        .map_err(|e| Error::format(&cli.store.target, e))?;
    let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
    let early = dump.checked.take();
    let origin_chunks = check_records(&mut dump.spool, snapmask, chunk_bytes, dump_path, early)?;
    let origin = origin_sectors(cli.origin.origin.as_deref())?;
    let (device, claim) = open_for_write(cli)?;
    let mut builder = StoreBuilder::new(&device, u64::from(chunk_sectors), journal)?;
    let bar = progress::bar(origin_chunks, "claiming", cli.verbosity.quiet);
    for_each_origin(&mut dump.spool, |index, _, records| {
        if index.is_multiple_of(RECORDS_PER_PROGRESS) {
            bar.set_position(index);
        }
        for r in records {
            builder.claim(r.chunk).map_err(|e| {
                anyhow::anyhow!("{}: origin chunk entry {index}: {e}", dump_path.display())
            })?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut tree = builder.into_tree();
    let bar = progress::bar(origin_chunks, "writing", cli.verbosity.quiet);
    for_each_origin(&mut dump.spool, |index, origin, records| {
        if index.is_multiple_of(RECORDS_PER_PROGRESS) {
            bar.set_position(index);
        }
        Ok(tree.push(origin, records)?)
    })?;
    let built = tree.finish(snapmask)?;
    bar.finish_and_clear();
    if !head.valid {
        let mut header = built.header;
        header.valid = 0;
        device.write_chunk(0, &header.to_chunk(u64::from(chunk_sectors) as usize * 512))?;
        device.sync()?;
    }
    claim.keep();
    if !cli.verbosity.quiet {
        let geometry = Geometry::new(size, chunk_sectors, journal);
        println!(
            "{}: restored a shared store from {}: {} records of {origin_chunks} origin chunks in {} leaves, tree_level {}, snapshots {}, chunk size {chunk_sectors} sectors, {} journal chunks; data chunks were not touched",
            cli.store.target.display(),
            dump_path.display(),
            built.records,
            built.leaves,
            built.header.tree_level,
            mask::describe(snapmask),
            geometry.nr_journal_chunks
        );
    }
    warn_in_place(cli, &Geometry::new(size, chunk_sectors, journal));
    print_table_lines(cli, chunk_sectors, origin, snapmask);
    Ok(exit::EXIT_OK)
}

/// Warns on stderr (refusing nothing) when the store's journal is too small
/// for the engine to journal its commits.
fn warn_in_place(cli: &Cli, geometry: &Geometry) {
    if let Some(note) = cowfmt::shared::journal::in_place_note(geometry) {
        eprintln!("mkcow: warning: {}: {note}", cli.store.target.display());
    }
}

/// Refuses more snapshots than a store of `chunk_sectors`-sector chunks
/// serves (`shared::leaf::check_snapshot_count`). `place` names what asked
/// for them.
fn refuse_too_many_snapshots(
    snapshots: u32,
    chunk_sectors: u32,
    place: &str,
) -> anyhow::Result<()> {
    check_snapshot_count(snapshots, u64::from(chunk_sectors) * SECTOR_BYTES)
        .map_err(|e| anyhow::anyhow!("{place}: {e}"))
}

/// The mask of a list of snapshot ids; refuses ids out of range. `place`
/// names the file and the list.
fn mask_of(ids: &[u32], place: &str) -> anyhow::Result<u64> {
    let mut m = 0u64;
    for &id in ids {
        if id >= MAX_SNAPSHOTS {
            bail!("{place}: snapshot id {id} is out of range (0-63)");
        }
        m |= mask::bit(id);
    }
    Ok(m)
}

/// Checks the spooled records in the dump's order and returns the number of
/// origin chunks: origin chunks ascend and address bytes a device can have,
/// masks are non-empty, inside `snapmask` and disjoint within an origin chunk.
/// The check run while spooling is taken when it was planned for the same
/// mask and chunk size; otherwise the records are read back.
fn check_records(
    spool: &mut Spool,
    snapmask: u64,
    chunk_bytes: u64,
    dump_path: &Path,
    early: Option<Box<dyn RecordCheck>>,
) -> anyhow::Result<u64> {
    let early = early
        .and_then(|check| check.into_any().downcast::<SharedCheck>().ok())
        .filter(|check| {
            check.snapmask == snapmask
                && check.chunk_bytes == chunk_bytes
                && (check.problem.is_some() || check.index == spool.len())
        });
    let check = match early {
        Some(check) => *check,
        None => {
            let mut check = SharedCheck::new(snapmask, chunk_bytes, dump_path);
            let mut reader = spool.read().map_err(read_back_error)?;
            let mut r = [0u64; 3];
            while check.problem.is_none() && reader.next_into(&mut r).map_err(read_back_error)? {
                check.check(&r);
            }
            check
        }
    };
    match check.problem {
        Some(problem) => Err(anyhow::anyhow!(problem)),
        None => Ok(check.groups),
    }
}

/// Plans the check of shared records while they are spooled, from the head
/// fields read before them.
pub fn plan_check(cli: &Cli, fields: &Map<String, Value>) -> Option<Box<dyn RecordCheck>> {
    let dump_path = cli.from_dump.as_deref()?;
    let head: SharedRestoreHead = serde_json::from_value(Value::Object(fields.clone())).ok()?;
    let snapmask = mask_of(&head.snapshots, "").ok()?;
    validate_chunk_size(u64::from(head.chunk_size)).ok()?;
    let chunk_bytes = u64::from(head.chunk_size) * SECTOR_BYTES;
    Some(Box::new(SharedCheck::new(snapmask, chunk_bytes, dump_path)))
}

/// The first problem of shared records read in order; only the current
/// origin chunk is remembered.
/// Where a record of the dump is, for its error message; formatted only when
/// a record is wrong (the check runs once per record).
struct RecordPlace<'a> {
    dump_path: &'a str,
    index: u64,
    origin_chunk: u64,
    cow_chunk: u64,
}

impl std::fmt::Display for RecordPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: exception {} (origin_chunk {}, cow_chunk {})",
            self.dump_path, self.index, self.origin_chunk, self.cow_chunk
        )
    }
}

struct SharedCheck {
    snapmask: u64,
    chunk_bytes: u64,
    dump_path: String,
    current: Option<(u64, u64)>,
    groups: u64,
    index: u64,
    problem: Option<String>,
}

impl SharedCheck {
    fn new(snapmask: u64, chunk_bytes: u64, dump_path: &Path) -> Self {
        SharedCheck {
            snapmask,
            chunk_bytes,
            dump_path: dump_path.display().to_string(),
            current: None,
            groups: 0,
            index: 0,
            problem: None,
        }
    }

    /// What is wrong with the next record, in the dump's order.
    fn problem_of(&mut self, origin_chunk: u64, cow_chunk: u64, share: u64) -> Option<String> {
        let (snapmask, chunk_bytes) = (self.snapmask, self.chunk_bytes);
        let origin_chunks = u64::MAX / chunk_bytes;
        let place = RecordPlace {
            dump_path: &self.dump_path,
            index: self.index,
            origin_chunk,
            cow_chunk,
        };
        if origin_chunk >= origin_chunks {
            return Some(format!(
                "{place}: origin chunk {origin_chunk} lies past the largest origin {chunk_bytes}-byte chunks can address ({origin_chunks} chunks)"
            ));
        }
        if share == 0 {
            return Some(format!("{place}: lists no snapshot"));
        }
        if share & !snapmask != 0 {
            return Some(format!(
                "{place}: snapshots {} are not among the dump's snapshots ({})",
                mask::describe(share & !snapmask),
                mask::describe(snapmask)
            ));
        }
        match self.current {
            Some((origin, seen)) if origin == origin_chunk => {
                if seen & share != 0 {
                    return Some(format!(
                        "{place}: its snapshots overlap another record of the same origin chunk"
                    ));
                }
                self.current = Some((origin, seen | share));
            }
            Some((origin, _)) if origin > origin_chunk => {
                return Some(format!(
                    "{place}: origin chunks must ascend, but it follows origin chunk {origin}"
                ));
            }
            _ => {
                self.groups += 1;
                self.current = Some((origin_chunk, share));
            }
        }
        None
    }
}

impl RecordCheck for SharedCheck {
    fn check(&mut self, records: &[u64]) {
        for r in records.chunks_exact(3) {
            if self.problem.is_some() {
                return;
            }
            self.problem = self.problem_of(r[0], r[1], r[2]);
            self.index += 1;
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Hands the spooled records to `each` grouped by origin chunk, with the
/// group's index, in the dump's order (checked by [`check_records`]).
fn for_each_origin(
    spool: &mut Spool,
    mut each: impl FnMut(u64, u64, &[Exception]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut reader = spool.read().map_err(read_back_error)?;
    let mut r = [0u64; 3];
    let mut group: Vec<Exception> = Vec::new();
    let mut origin = 0u64;
    let mut index = 0u64;
    while reader.next_into(&mut r).map_err(read_back_error)? {
        let [origin_chunk, chunk, share] = r;
        if !group.is_empty() && origin_chunk != origin {
            each(index, origin, &group)?;
            group.clear();
            index += 1;
        }
        origin = origin_chunk;
        group.push(Exception { share, chunk });
    }
    if !group.is_empty() {
        each(index, origin, &group)?;
    }
    Ok(())
}
