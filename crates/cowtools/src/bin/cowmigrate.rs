//! cowmigrate: re-chunks a persistent or legacy COW store, or converts it
//! between the persistent and legacy kinds; imports classic stores into one
//! shared store, exports a snapshot of a shared store as a classic one, and
//! re-chunks or compacts shared stores. Every snapshot reads back
//! byte-identical. It also writes one snapshot's data out as a raw image
//! (`--to raw`) and merges a snapshot back into its origin offline
//! (`--merge`), both through `cowtools::snapshot_data`. dm-clone metadata
//! gets a new region size (`--region-size`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use cowfmt::device::{Access, Device};
use cowfmt::store;
use cowfmt::store::inputs::{migration, Migration};
use cowfmt::store::migrate::{
    plan_classic, plan_import, ImportOptions, JournalSize, MigrateOptions, PersistentStore,
    SharedInput, SharedPlan, SharedTarget,
};
use cowfmt::StoreKind;
use cowtools::cli::cowmigrate::{Cli, ToKind, ToTarget};
use cowtools::exit::{self, job_error};
use cowtools::snapshot_data::{self, RawExport};
use cowtools::{open, progress, render};

const TOOL: &str = "cowmigrate";

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    if cli.merge {
        return run_merge(cli);
    }
    if cli.to == Some(ToTarget::Raw) {
        return run_raw(cli);
    }
    let wanted = cli.kind.map(StoreKind::from);
    let inputs: Vec<(Device, StoreKind)> = (cli.input.iter())
        .map(|path| open::detect_kind(path, wanted))
        .collect::<anyhow::Result<_>>()?;
    let migration = migration(inputs, cli.to_kind() == Some(ToKind::Shared))?;
    if let (Some(_), false) = (cli.region_size, matches!(migration, Migration::Clone(_))) {
        bail!(
            "{}: --region-size is for dm-clone metadata; a COW store is re-chunked with --chunk-size",
            cli.input[0].display()
        );
    }
    match migration {
        Migration::Clone(device) => run_clone(cli, device),
        Migration::SharedInput(device) => run_shared_input(cli, device),
        Migration::Import(inputs) => run_import(cli, inputs),
        Migration::Classic(device, kind) => {
            cli.refuse_shared_options(
                "it applies to shared stores (an import with --to shared, or a shared input)",
            )?;
            run_persistent(cli, store::open_classic(device)?, kind)
        }
    }
}

/// The classic migration: one persistent or legacy store into another.
fn run_persistent(cli: &Cli, store: PersistentStore, kind: StoreKind) -> anyhow::Result<u8> {
    let origin = open_origin(cli)?;
    let options = MigrateOptions {
        from_kind: kind,
        to_kind: cli.to_kind().map(StoreKind::from),
        chunk_size: cli.chunk.chunk_size,
    };
    let plan = plan_classic(&store, &options, origin.as_ref().map(Device::size_bytes))
        .map_err(job_error)?;
    let report = store::migrate::classic(
        &cli.input[0],
        &store,
        &plan,
        origin.as_ref(),
        &cli.target(),
        &mut progress::MigrateBars::new(TOOL, cli.verbosity.quiet),
    )
    .map_err(job_error)?;
    render::migrate::classic_report(cli, &report, origin.as_ref())?;
    Ok(exit::EXIT_OK)
}

/// dm-clone metadata with a new region size.
fn run_clone(cli: &Cli, device: Device) -> anyhow::Result<u8> {
    let Some(region_size) = cli.region_size else {
        bail!(
            "{}: is dm-clone metadata: give its new region size with --region-size SIZE (--chunk-size and --to are for COW stores)",
            cli.input[0].display()
        );
    };
    cli.refuse_clone_options()?;
    let report = store::migrate::clone(
        &cli.input[0],
        &device,
        region_size,
        &cli.target(),
        &mut progress::MigrateBars::new(TOOL, cli.verbosity.quiet),
    )
    .map_err(job_error)?;
    render::migrate::clone_report(cli, &report)?;
    Ok(exit::EXIT_OK)
}

fn open_origin(cli: &Cli) -> anyhow::Result<Option<Device>> {
    let open = |path: &PathBuf| Device::open(path, Access::ReadOnly);
    Ok(cli.origin.origin.as_ref().map(open).transpose()?)
}

/// Classic stores into one new shared store.
fn run_import(cli: &Cli, inputs: Vec<(Device, StoreKind)>) -> anyhow::Result<u8> {
    if cli.snapshot.is_some() {
        bail!("--snapshot does not apply to an import: each input becomes a snapshot (choose their ids with --ids)");
    }
    let kind = inputs
        .first()
        .map_or(StoreKind::Persistent, |(_, kind)| *kind);
    let mut stores = Vec::with_capacity(inputs.len());
    for (device, _) in inputs {
        stores.push(store::open_classic(device)?);
    }
    let origin = open_origin(cli)?;
    let options = ImportOptions {
        kind,
        ids: cli.ids.clone(),
        chunk_size: cli.chunk.chunk_size,
        journal: cli
            .journal_size
            .map_or(JournalSize::Default, JournalSize::Bytes),
    };
    let plan = plan_import(stores, &options, origin.as_ref().map(Device::size_bytes))
        .map_err(job_error)?;
    run_shared_plan(cli, plan, origin, None, 0)
}

/// A shared store: one snapshot exported, or the store re-chunked or compacted.
fn run_shared_input(cli: &Cli, device: Device) -> anyhow::Result<u8> {
    if cli.ids.is_some() {
        bail!("--ids does not apply here: the input is a shared store, whose snapshots keep their ids");
    }
    let input_size = device.size_bytes();
    let (device, journal_read) = open::as_committed(TOOL, device, StoreKind::Shared)?;
    let input = SharedInput::open(device).map_err(job_error)?;
    let origin = open_origin(cli)?;
    let target = SharedTarget {
        to_classic: cli
            .to_kind()
            .filter(|to| *to != ToKind::Shared)
            .map(StoreKind::from),
        snapshot: cli.snapshot,
        chunk_size: cli.chunk.chunk_size,
        journal_bytes: cli.journal_size,
    };
    let origin_bytes = origin.as_ref().map(Device::size_bytes);
    let plan = store::migrate::plan_shared_input(&cli.input[0], input, &target, origin_bytes)
        .map_err(job_error)?;
    run_shared_plan(cli, plan, origin, Some(input_size), journal_read)
}

/// Writes a shared migration's output, then reports. `default_size`: the
/// input's size; `journal_read`: the committed journal transactions the
/// shared input was read through.
fn run_shared_plan(
    cli: &Cli,
    plan: SharedPlan,
    origin: Option<Device>,
    default_size: Option<u64>,
    journal_read: u64,
) -> anyhow::Result<u8> {
    let report = store::migrate::shared(
        &cli.input[0],
        plan,
        origin.as_ref(),
        default_size,
        &cli.target(),
        &mut progress::MigrateBars::new(TOOL, cli.verbosity.quiet),
    )
    .map_err(job_error)?;
    render::migrate::shared_report(cli, &report, origin.as_ref(), journal_read)?;
    Ok(exit::EXIT_OK)
}

/// `--to raw`: one snapshot's data as a raw image.
fn run_raw(cli: &Cli) -> anyhow::Result<u8> {
    cli.refuse_raw_options("--to raw")?;
    let Some(origin) = cli.origin.origin.as_deref() else {
        bail!("--to raw writes the snapshot's image, which reads the origin: give it with --origin DEV");
    };
    let raw = snapshot_data::export_raw(&RawExport {
        tool: TOOL,
        store: &cli.input[0],
        kind: cli.kind.map(StoreKind::from),
        snapshot: cli.snapshot,
        origin,
        output: cli.output(),
        force: cli.overwrite.force,
        quiet: cli.verbosity.quiet,
    })?;
    render::migrate::raw_report(cli, origin, &raw)?;
    Ok(exit::EXIT_OK)
}

/// `--merge`: the snapshot written back over its origin.
fn run_merge(cli: &Cli) -> anyhow::Result<u8> {
    cli.refuse_raw_options("--merge")?;
    let Some(origin) = cli.origin.origin.as_deref() else {
        bail!("--merge writes the snapshot over its origin: give the origin with --origin DEV");
    };
    let store = &cli.input[0];
    let summary = snapshot_data::merge(
        store,
        cli.kind.map(StoreKind::from),
        cli.snapshot,
        origin,
        cli.verbosity.quiet,
    )?;
    render::migrate::merge_report(cli, origin, &summary)?;
    Ok(exit::EXIT_OK)
}
