//! mkcow: formats a persistent or legacy COW store exactly as the kernel does on
//! first activation, or a shared store; or restores one from a cowdump dump
//! (metadata only).

mod shared;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use cowfmt::device::{Access, Device};
use cowfmt::dump_read::spool::RecordCheck;
use cowfmt::output::OutputClaim;
use cowfmt::persistent::dump::RestoreHead;
use cowfmt::persistent::header::validate_chunk_size;
use cowfmt::persistent::restore::{
    header_from_dump, plan_geometry, validate_records, write_records, PersistentCheck,
};
use cowfmt::persistent::StoreWriter;
use cowfmt::store::restore::{self as dump_input, check_dump_version, ReadProgress};
use cowfmt::units::human_bytes;
use cowfmt::StoreKind;
use cowtools::args::KindArg;
use cowtools::cli::mkcow::Cli;
use cowtools::render::mkcow as render;
use cowtools::target::{self, origin_sectors, planned_size, WriteTarget};
use cowtools::{exit, open, progress};
use serde_json::{Map, Value};

const TOOL: &str = "mkcow";

/// Records written between two updates of a progress bar.
pub(crate) const RECORDS_PER_PROGRESS: u64 = 1 << 16;

/// The kernel's default chunk size for a new store here: 4 KiB.
pub(crate) const DEFAULT_CHUNK_SECTORS: u32 = 8;

/// Opens the target through the output guard, never the origin or the dump
/// ([`target::open_for_write`]).
pub(crate) fn open_for_write(cli: &Cli) -> anyhow::Result<(Device, OutputClaim)> {
    let inputs: Vec<&Path> = cli
        .origin
        .origin
        .iter()
        .chain(cli.from_dump.iter().filter(|dump| dump.as_os_str() != "-"))
        .map(PathBuf::as_path)
        .collect();
    target::open_for_write(&WriteTarget {
        path: &cli.store.target,
        size: cli.size,
        force: cli.overwrite.force,
        inputs: &inputs,
    })
}

/// Looks at the target without changing it ([`target::plan_target`]).
pub(crate) fn plan_target(
    path: &Path,
    size: Option<u64>,
    chunk_sectors: u32,
    force: bool,
) -> anyhow::Result<u64> {
    target::plan_target(TOOL, path, size, chunk_sectors, force)
}

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
    render::print_table(cli, kind, chunk_sectors, origin);
    Ok(exit::EXIT_OK)
}

fn restore(cli: &Cli, dump_path: &Path) -> anyhow::Result<u8> {
    let cli_kind = cli.store_kind.kind.map(StoreKind::from);
    let plan = |shared: bool, fields: &Map<String, Value>| plan_check(cli, shared, fields);
    let counter = progress::counter("reading", "records", cli.verbosity.quiet);
    let reading = ReadProgress {
        show: &|count| counter.set_position(count),
        clear: &|| counter.finish_and_clear(),
    };
    let mut dump = dump_input::read(dump_path, cli_kind, &reading, &plan)?;
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
    let bar = progress::bar(count, "writing", cli.verbosity.quiet);
    write_records(
        &device,
        &geometry,
        &header,
        &mut dump.spool,
        RECORDS_PER_PROGRESS,
        &|index| bar.set_position(index),
    )?;
    bar.finish_and_clear();
    claim.keep();
    if !cli.verbosity.quiet {
        render::report_restore(cli, dump_path, &head, count, &geometry, kind);
    }
    render::print_table(cli, kind, chunk_sectors, origin);
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
