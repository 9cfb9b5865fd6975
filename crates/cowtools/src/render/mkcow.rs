//! What mkcow prints: the dmsetup table lines that activate a new store, the
//! sentence about a restore, and the warning about a journal too small.

use std::path::Path;

use cowfmt::store::create::{Created, Outcome};
use cowfmt::store::reports::clone;
use cowfmt::store::reports::persistent::{
    snapshot_table_line, Geometry, RestoreHead, TableDevices,
};
use cowfmt::store::reports::shared::{self, mask};
use cowfmt::units::human_bytes;
use cowfmt::StoreKind;

use crate::cli::mkcow::Cli;

/// Prints what mkcow wrote (unless quiet), a warning about a shared store's
/// journal, and the table lines that activate the store.
pub fn report(cli: &Cli, outcome: &Outcome) {
    let target = cli.store.target.display();
    let quiet = cli.verbosity.quiet;
    let origin = outcome.origin_sectors;
    match &outcome.created {
        Created::Classic {
            kind,
            geometry,
            restored,
        } => {
            match restored {
                Some((head, count)) if !quiet => {
                    let dump_path = cli.from_dump.as_deref().unwrap_or(Path::new("-"));
                    report_restore(cli, dump_path, head, *count, geometry, *kind);
                }
                None if !quiet => println!(
                    "{target}: formatted a {kind} store: chunk size {} sectors ({}), {} chunks ({}), room for {} exceptions",
                    geometry.chunk_sectors(),
                    human_bytes(geometry.chunk_bytes() as u64),
                    geometry.device_chunks(),
                    human_bytes(geometry.device_bytes()),
                    geometry.data_capacity()
                ),
                _ => {}
            }
            print_table(cli, *kind, geometry.chunk_sectors(), origin);
        }
        Created::Clone {
            geometry,
            written,
            hydrated,
        } => report_clone(cli, geometry, written, *hydrated),
        Created::Shared {
            geometry,
            snapmask,
            restored,
        } => {
            let chunk_sectors = (geometry.chunk_bytes / cowfmt::SECTOR_BYTES) as u32;
            match restored {
                Some((built, origin_chunks)) if !quiet => println!(
                    "{target}: restored a shared store from {}: {} records of {origin_chunks} origin chunks in {} leaves, tree_level {}, snapshots {}, chunk size {chunk_sectors} sectors, {} journal chunks; data chunks were not touched",
                    cli.from_dump.as_deref().unwrap_or(Path::new("-")).display(),
                    built.records,
                    built.leaves,
                    built.header.tree_level,
                    mask::describe(*snapmask),
                    geometry.nr_journal_chunks
                ),
                None if !quiet => println!(
                    "{target}: formatted a shared store: chunk size {chunk_sectors} sectors ({}), {} chunks ({}): {} bitmap, {} journal ({}), {} for the tree and data; snapshots: {}",
                    human_bytes(geometry.chunk_bytes),
                    geometry.nr_chunks,
                    human_bytes(geometry.nr_chunks * geometry.chunk_bytes),
                    geometry.nr_bitmap_chunks,
                    geometry.nr_journal_chunks,
                    human_bytes(geometry.nr_journal_chunks * geometry.chunk_bytes),
                    geometry.data_chunks(),
                    mask::describe(*snapmask)
                ),
                _ => {}
            }
            warn_in_place(cli, geometry);
            print_table_lines(cli, chunk_sectors, origin, *snapmask);
        }
    }
}

/// Prints what a dm-clone format or restore wrote (unless quiet) and the
/// table line that activates a clone over it, its devices named as
/// placeholders.
fn report_clone(
    cli: &Cli,
    geometry: &clone::Geometry,
    written: &clone::CloneWritten,
    hydrated: Option<u64>,
) {
    let region_sectors = geometry.region_sectors();
    if let (Some(hydrated), false) = (hydrated, cli.verbosity.quiet) {
        println!(
            "{}: restored dm-clone metadata from {}: {hydrated} regions hydrated, region size {region_sectors} sectors, target {} sectors ({} regions), {}/{} metadata blocks used; the source and destination were not touched",
            cli.store.target.display(),
            cli.from_dump.as_deref().unwrap_or(Path::new("-")).display(),
            geometry.target_sectors(),
            geometry.nr_regions(),
            written.sm_root.nr_allocated,
            written.nr_blocks
        );
        println!("Activate it with this dmsetup table line (put the destination and source devices in place of <dest> and <source>):");
    } else if !cli.verbosity.quiet {
        println!(
            "{}: formatted dm-clone metadata: region size {region_sectors} sectors ({}), {} regions over a target of {} sectors ({}), none hydrated; {}/{} metadata blocks used",
            cli.store.target.display(),
            human_bytes(region_sectors * cowfmt::SECTOR_BYTES),
            geometry.nr_regions(),
            geometry.target_sectors(),
            human_bytes(geometry.target_sectors() * cowfmt::SECTOR_BYTES),
            written.sm_root.nr_allocated,
            written.nr_blocks
        );
        println!("Activate it with this dmsetup table line (put the destination and source devices in place of <dest> and <source>):");
    }
    println!(
        "0 {} clone {} <dest> <source> {region_sectors}",
        geometry.target_sectors(),
        cli.store.target.display()
    );
}

/// Prints the table line of a persistent or legacy store (after a sentence
/// saying how to use it, unless quiet).
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

/// Prints what a persistent restore wrote, and a note when the dump
/// describes a device of another size.
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

/// Prints a shared store's table lines, one per snapshot (after a sentence,
/// unless quiet); nothing without snapshots.
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
            shared::table_line(origin.as_deref(), origin_sectors, &cow, chunk_sectors, id)
        );
    }
}

/// Warns on stderr (refusing nothing) when the store's journal is too small
/// for the engine to journal its commits.
fn warn_in_place(cli: &Cli, geometry: &shared::Geometry) {
    if let Some(note) = shared::in_place_note(geometry) {
        eprintln!("mkcow: warning: {}: {note}", cli.store.target.display());
    }
}
