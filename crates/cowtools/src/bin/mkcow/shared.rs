//! mkcow for shared stores: format (with a journal and snapshots made at once)
//! and restore from a cowdump dump.

use std::path::Path;

use anyhow::bail;
use cowfmt::shared::build::StoreBuilder;
use cowfmt::shared::format::{format_store, plan};
use cowfmt::shared::geometry::{default_journal_chunks, validate_chunk_size};
use cowfmt::shared::header::SHARED_VERSION;
use cowfmt::shared::leaf::check_snapshot_count;
use cowfmt::shared::mask::{self, MAX_SNAPSHOTS};
use cowfmt::shared::{Exception, Geometry};
use cowfmt::units::human_bytes;
use cowfmt::{Error, SECTOR_BYTES};
use cowtools::exit;
use serde::Deserialize;

use super::{
    check_dump_version, open_for_write, origin_sectors, parse_dump, plan_target, Cli,
    DEFAULT_CHUNK_SECTORS,
};

/// Formats a shared store as `cli` asks.
pub fn format(cli: &Cli) -> anyhow::Result<u8> {
    let chunk_sectors = cli.chunk_size.unwrap_or(DEFAULT_CHUNK_SECTORS);
    validate_chunk_size(u64::from(chunk_sectors))
        .map_err(|e| anyhow::anyhow!("{}: --chunk-size: {e}", cli.target.display()))?;
    let snapshots = cli.snapshots.unwrap_or(0);
    refuse_too_many_snapshots(snapshots, chunk_sectors, &cli.target.display().to_string())?;
    let size = plan_target(&cli.target, cli.size, chunk_sectors, cli.force)?;
    let journal = journal_chunks(cli, size, chunk_sectors)?;
    let geometry =
        plan(size, u64::from(chunk_sectors), journal).map_err(|e| Error::format(&cli.target, e))?;
    let origin = origin_sectors(cli.origin.as_deref())?;
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
    if !cli.quiet {
        println!(
            "{}: formatted a shared store: chunk size {chunk_sectors} sectors ({}), {} chunks ({}): {} bitmap, {} journal ({}), {} for the tree and data; snapshots: {}",
            cli.target.display(),
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
    let cow = cli.target.display().to_string();
    let origin = cli.origin.as_ref().map(|p| p.display().to_string());
    if !cli.quiet {
        println!("Table lines of the seed's shared exception store, one per snapshot (mainline kernels have no shared store; cowrt serves it):");
    }
    for id in mask::ids(snapmask) {
        println!(
            "{}",
            cowfmt::shared::table_line(origin.as_deref(), origin_sectors, &cow, chunk_sectors, id)
        );
    }
}

/// The fields of a shared dump that a restore uses (docs/dump-schema.md).
#[derive(Debug, Deserialize)]
struct SharedDump {
    #[serde(default)]
    format_version: Option<u32>,
    chunk_size: u32,
    valid: bool,
    #[serde(default)]
    version: Option<u32>,
    snapshots: Vec<u32>,
    #[serde(default)]
    journal_chunks: Option<u64>,
    exceptions: Vec<SharedRecord>,
}

/// One record of the dump's logical view.
#[derive(Debug, Deserialize)]
struct SharedRecord {
    origin_chunk: u64,
    cow_chunk: u64,
    snapshots: Vec<u32>,
}

/// Restores a shared store's metadata from a dump: the data chunks stay where
/// the dump says they are; a fresh tree and bitmap are written around them.
pub fn restore(cli: &Cli, dump_path: &Path, text: &str) -> anyhow::Result<u8> {
    let dump: SharedDump = parse_dump(text, dump_path)?;
    check_dump_version(dump.format_version, dump_path)?;
    if let Some(version) = dump.version.filter(|&v| v != SHARED_VERSION) {
        bail!(
            "{}: version {version} is not the shared store version {SHARED_VERSION}",
            dump_path.display()
        );
    }
    let snapmask = mask_of(
        &dump.snapshots,
        &format!("{}: snapshots", dump_path.display()),
    )?;
    let chunk_sectors = dump.chunk_size;
    validate_chunk_size(u64::from(chunk_sectors))
        .map_err(|e| anyhow::anyhow!("{}: chunk_size: {e}", dump_path.display()))?;
    let size = plan_target(&cli.target, cli.size, chunk_sectors, cli.force)?;
    refuse_too_many_snapshots(
        snapmask.count_ones(),
        chunk_sectors,
        &format!("{}: snapshots", dump_path.display()),
    )?;
    let journal = dump
        .journal_chunks
        .unwrap_or_else(|| default_journal_chunks(size, u64::from(chunk_sectors) * SECTOR_BYTES));
    plan(size, u64::from(chunk_sectors), journal).map_err(|e| Error::format(&cli.target, e))?;
    let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
    let grouped = group_records(&dump, snapmask, chunk_bytes, dump_path)?;
    let origin = origin_sectors(cli.origin.as_deref())?;
    let (device, claim) = open_for_write(cli)?;
    let mut builder = StoreBuilder::new(&device, u64::from(chunk_sectors), journal)?;
    for (index, (_, records)) in grouped.iter().enumerate() {
        for r in records {
            builder.claim(r.chunk).map_err(|e| {
                anyhow::anyhow!("{}: origin chunk entry {index}: {e}", dump_path.display())
            })?;
        }
    }
    let mut tree = builder.into_tree();
    for (origin, records) in &grouped {
        tree.push(*origin, records)?;
    }
    let built = tree.finish(snapmask)?;
    if !dump.valid {
        let mut header = built.header;
        header.valid = 0;
        device.write_chunk(0, &header.to_chunk(u64::from(chunk_sectors) as usize * 512))?;
        device.sync()?;
    }
    claim.keep();
    if !cli.quiet {
        let geometry = Geometry::new(size, chunk_sectors, journal);
        println!(
            "{}: restored a shared store from {}: {} records of {} origin chunks in {} leaves, tree_level {}, snapshots {}, chunk size {chunk_sectors} sectors, {} journal chunks; data chunks were not touched",
            cli.target.display(),
            dump_path.display(),
            built.records,
            grouped.len(),
            built.leaves,
            built.header.tree_level,
            mask::describe(snapmask),
            geometry.nr_journal_chunks
        );
    }
    print_table_lines(cli, chunk_sectors, origin, snapmask);
    Ok(exit::EXIT_OK)
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

/// The dump's records grouped by origin chunk, in the dump's order, checked:
/// origin chunks ascend and address bytes a device can have, masks are
/// non-empty, inside `snapmask` and disjoint.
fn group_records(
    dump: &SharedDump,
    snapmask: u64,
    chunk_bytes: u64,
    dump_path: &Path,
) -> anyhow::Result<Vec<(u64, Vec<Exception>)>> {
    let origin_chunks = u64::MAX / chunk_bytes;
    let mut grouped: Vec<(u64, Vec<Exception>)> = Vec::new();
    for (index, r) in dump.exceptions.iter().enumerate() {
        let place = format!(
            "{}: exception {index} (origin_chunk {}, cow_chunk {})",
            dump_path.display(),
            r.origin_chunk,
            r.cow_chunk
        );
        if r.origin_chunk >= origin_chunks {
            bail!(
                "{place}: origin chunk {} lies past the largest origin {chunk_bytes}-byte chunks can address ({origin_chunks} chunks)",
                r.origin_chunk
            );
        }
        let share = mask_of(&r.snapshots, &place)?;
        if share == 0 {
            bail!("{place}: lists no snapshot");
        }
        if share & !snapmask != 0 {
            bail!(
                "{place}: snapshots {} are not among the dump's snapshots ({})",
                mask::describe(share & !snapmask),
                mask::describe(snapmask)
            );
        }
        let record = Exception {
            share,
            chunk: r.cow_chunk,
        };
        match grouped.last_mut() {
            Some((origin, records)) if *origin == r.origin_chunk => {
                if records.iter().any(|o| o.share & share != 0) {
                    bail!("{place}: its snapshots overlap another record of the same origin chunk");
                }
                records.push(record);
            }
            Some((origin, _)) if *origin > r.origin_chunk => {
                bail!("{place}: origin chunks must ascend, but it follows origin chunk {origin}");
            }
            _ => grouped.push((r.origin_chunk, vec![record])),
        }
    }
    Ok(grouped)
}
