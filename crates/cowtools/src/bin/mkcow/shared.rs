//! mkcow for shared stores: format (with a journal and snapshots made at once)
//! and restore from a cowdump dump.

use std::path::Path;

use serde_json::{Map, Value};

use cowfmt::dump_read::spool::RecordCheck;
use cowfmt::shared::dump::SharedRestoreHead;
use cowfmt::shared::format::{format_store, plan};
use cowfmt::shared::geometry::{default_journal_chunks, validate_chunk_size};
use cowfmt::shared::leaf::check_snapshot_count;
use cowfmt::shared::mask::{self, MAX_SNAPSHOTS};
use cowfmt::shared::restore::{self, PassProgress, RestorePlan};
use cowfmt::shared::Geometry;
use cowfmt::store::restore::{check_dump_version, ReadDump};
use cowfmt::units::human_bytes;
use cowfmt::{Error, SECTOR_BYTES};
use cowtools::render::mkcow as render;
use cowtools::target::origin_sectors;
use cowtools::{exit, progress};
use indicatif::ProgressBar;

use super::{open_for_write, plan_target, Cli, DEFAULT_CHUNK_SECTORS, RECORDS_PER_PROGRESS};

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
    render::warn_in_place(cli, &geometry);
    render::print_table_lines(cli, chunk_sectors, origin, header.snapmask);
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

/// Restores a shared store's metadata from a dump: the data chunks stay where
/// the dump says they are; a fresh tree and bitmap are written around them.
pub fn restore(cli: &Cli, dump_path: &Path, mut dump: ReadDump) -> anyhow::Result<u8> {
    let head: SharedRestoreHead = dump.head(dump_path)?;
    check_dump_version(head.format_version, dump_path)?;
    let snapmask = restore::check_head(&head, dump_path)?;
    let chunk_sectors = head.chunk_size;
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
    let origin_chunks =
        restore::check_records(&mut dump.spool, snapmask, chunk_bytes, dump_path, early)?;
    let origin = origin_sectors(cli.origin.origin.as_deref())?;
    let (device, claim) = open_for_write(cli)?;
    let plan = RestorePlan {
        chunk_sectors,
        journal_chunks: journal,
        snapmask,
        valid: head.valid,
        origin_chunks,
        every: RECORDS_PER_PROGRESS,
    };
    let mut bars = Bars {
        bar: None,
        quiet: cli.verbosity.quiet,
    };
    let built = restore::write_store(&device, &mut dump.spool, &plan, dump_path, &mut bars)?;
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
    render::warn_in_place(cli, &Geometry::new(size, chunk_sectors, journal));
    render::print_table_lines(cli, chunk_sectors, origin, snapmask);
    Ok(exit::EXIT_OK)
}

/// One progress bar per pass of a restore.
struct Bars {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl PassProgress for Bars {
    fn start(&mut self, what: &'static str, total: u64) {
        self.bar = Some(progress::bar(total, what, self.quiet));
    }

    fn at(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
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

/// Plans the check of shared records while they are spooled, from the head
/// fields read before them.
pub fn plan_check(cli: &Cli, fields: &Map<String, Value>) -> Option<Box<dyn RecordCheck>> {
    let dump_path = cli.from_dump.as_deref()?;
    let head: SharedRestoreHead = serde_json::from_value(Value::Object(fields.clone())).ok()?;
    restore::plan_check(&head, dump_path)
}
