//! cowmigrate: re-chunks a persistent or legacy COW store, or converts it
//! between the persistent and legacy kinds; imports classic stores into one
//! shared store, exports a snapshot of a shared store as a classic one, and
//! re-chunks or compacts shared stores. Every snapshot reads back
//! byte-identical. It also writes one snapshot's data out as a raw image
//! (`--to raw`) and merges a snapshot back into its origin offline
//! (`--merge`), both through `cowtools::snapshot_data`.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use cowfmt::device::{Access, Device};
use cowfmt::output;
use cowfmt::persistent::check::{check_with_progress, CheckOptions};
use cowfmt::persistent::migrate::{self, MigrateOptions};
use cowfmt::persistent::repair::JobError;
use cowfmt::persistent::PersistentStore;
use cowfmt::shared::check as shared_check;
use cowfmt::shared::mask;
use cowfmt::cross::migrate::{
    self as shared_migrate, ExportOptions, ImportOptions, JournalSize, RechunkOptions, SharedInput,
    SharedPlan,
};
use cowfmt::units::human_bytes;
use cowfmt::{FindingCode, Severity, StoreKind, SECTOR_BYTES};
use cowtools::cli::cowmigrate::{Cli, ToKind, ToTarget};
use cowtools::exit::{self, StoreProblems};
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
    let mut inputs = Vec::with_capacity(cli.input.len());
    for path in &cli.input {
        inputs.push(open::detect_kind(path, wanted)?);
    }
    let shared_input = inputs
        .iter()
        .position(|(_, kind)| *kind == StoreKind::Shared);
    if let Some(i) = shared_input {
        if inputs.len() > 1 {
            bail!(
                "{}: is a shared store, which is migrated on its own (an import with --to shared takes persistent or legacy stores)",
                cli.input[i].display()
            );
        }
        let (device, _) = inputs.remove(0);
        return run_shared_input(cli, device);
    }
    if cli.to_kind() == Some(ToKind::Shared) {
        return run_import(cli, inputs);
    }
    if inputs.len() > 1 {
        bail!(
            "{} input stores were given: several inputs are only for an import into one shared store (--to shared)",
            inputs.len()
        );
    }
    refuse_shared_options(
        cli,
        "it applies to shared stores (an import with --to shared, or a shared input)",
    )?;
    let (device, kind) = inputs.remove(0);
    run_persistent(cli, open::open_persistent(device)?, kind)
}

/// The classic migration: one persistent or legacy store into another.
fn run_persistent(cli: &Cli, store: PersistentStore, kind: StoreKind) -> anyhow::Result<u8> {
    let input = &cli.input[0];
    let origin = match &cli.origin {
        Some(path) => Some(Device::open(path, Access::ReadOnly)?),
        None => None,
    };
    let options = MigrateOptions {
        from_kind: kind,
        to_kind: cli.to_kind().map(StoreKind::from),
        chunk_size: cli.chunk_size,
    };
    let plan = migrate::plan(&store, &options, origin.as_ref().map(Device::size_bytes))
        .map_err(job_error)?;
    if plan.needs_origin && origin.is_none() {
        bail!(
            "{}: a larger chunk size ({} -> {} sectors) needs --origin DEV: the pieces of each new chunk that never changed are read from the origin",
            input.display(),
            plan.from().chunk_size,
            plan.to_chunk_size
        );
    }
    let size = cli.size.unwrap_or_else(|| {
        migrate::default_output_bytes(
            plan.needed_bytes,
            Some(store.device().size_bytes()),
            u64::from(plan.to_chunk_size) * SECTOR_BYTES,
            plan.to_kind,
        )
    });
    if size < plan.needed_bytes {
        bail!(
            "{}: the migrated store needs at least {} bytes ({}), but the output would have {size}; give a larger --size, e.g. --size {}",
            cli.output().display(),
            plan.needed_bytes,
            human_bytes(plan.needed_bytes),
            plan.needed_bytes
        );
    }
    let prepared = output::open_output(&output::OutputRequest {
        path: cli.output(),
        size,
        size_given: cli.size.is_some(),
        force: cli.force,
        inputs: &read_paths(cli),
    })?;
    cowtools::output::say_overwritten(TOOL, cli.output(), prepared.overwritten.as_deref());
    if prepared.device.size_bytes() < plan.needed_bytes {
        bail!(
            "{}: the device has {} bytes, but the migrated store needs at least {}",
            cli.output().display(),
            prepared.device.size_bytes(),
            plan.needed_bytes
        );
    }
    let bar = progress::bar(plan.copy_steps, "copying", cli.quiet);
    let result = migrate::migrate(
        &store,
        &plan,
        origin.as_ref(),
        prepared.device,
        prepared.zeroed,
        &mut |done, _| bar.set_position(done),
    );
    bar.finish_and_clear();
    let report = result.map_err(job_error)?;
    verify(cli, plan.to_kind)?;
    prepared.claim.keep();
    render::migrate::classic_report(cli, &report, origin.as_ref())?;
    Ok(exit::EXIT_OK)
}

/// Checks the output as its kind; a migration never leaves a finding behind,
/// error or warning, except `invalidated`: an invalidated input stays
/// invalidated.
fn verify(cli: &Cli, kind: StoreKind) -> anyhow::Result<()> {
    let device = Device::open(cli.output(), Access::ReadOnly)?;
    let findings = if kind == StoreKind::Shared {
        let options = shared_check::CheckOptions::default();
        progress::show(
            progress::counter("verifying", "tree blocks", cli.quiet),
            |p| shared_check::check_with_progress(&device, &options, p),
        )?
        .findings
    } else {
        let options = CheckOptions {
            kind,
            ..CheckOptions::default()
        };
        progress::show(progress::bar(0, "verifying", cli.quiet), |p| {
            check_with_progress(&device, &options, p)
        })?
        .findings
    };
    let problem = findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .or_else(|| findings.iter().find(|f| f.code != FindingCode::Invalidated));
    match problem {
        Some(first) => Err(StoreProblems(format!(
            "{}: the migrated store does not check clean: {}: {}",
            cli.output().display(),
            first.code,
            first.message
        ))
        .into()),
        None => Ok(()),
    }
}

fn job_error(error: JobError) -> anyhow::Error {
    match error {
        JobError::Damage(message) => StoreProblems(message).into(),
        JobError::Failed(error) => error.into(),
    }
}

/// Refuses the options that only shared migrations take, saying `why` not.
/// Every file the job reads (the inputs and the origin), none of which may be
/// the output.
fn read_paths(cli: &Cli) -> Vec<&Path> {
    cli.input
        .iter()
        .map(PathBuf::as_path)
        .chain(cli.origin.as_deref())
        .collect()
}

fn refuse_shared_options(cli: &Cli, why: &str) -> anyhow::Result<()> {
    let given = [
        ("--snapshot", cli.snapshot.is_some()),
        ("--ids", cli.ids.is_some()),
        ("--journal-size", cli.journal_size.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
        bail!("{flag} does not apply here: {why}");
    }
    Ok(())
}

fn open_origin(cli: &Cli) -> anyhow::Result<Option<Device>> {
    Ok(match &cli.origin {
        Some(path) => Some(Device::open(path, Access::ReadOnly)?),
        None => None,
    })
}

fn journal(cli: &Cli) -> Option<JournalSize> {
    cli.journal_size.map(JournalSize::Bytes)
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
        stores.push(open::open_persistent(device)?);
    }
    let origin = open_origin(cli)?;
    let options = ImportOptions {
        kind,
        ids: cli.ids.clone(),
        chunk_size: cli.chunk_size,
        journal: journal(cli).unwrap_or(JournalSize::Default),
    };
    let plan =
        shared_migrate::plan_import(stores, &options, origin.as_ref().map(Device::size_bytes))
            .map_err(job_error)?;
    run_shared_plan(cli, plan, origin, None, 0)
}

/// A shared store: one snapshot exported, or the store re-chunked or compacted.
fn run_shared_input(cli: &Cli, device: Device) -> anyhow::Result<u8> {
    if cli.ids.is_some() {
        bail!("--ids does not apply here: the input is a shared store, whose snapshots keep their ids");
    }
    let input_size = device.size_bytes();
    let (device, journal_read) = open::shared_through_journal(TOOL, device)?;
    let input = SharedInput::open(device).map_err(job_error)?;
    let origin = open_origin(cli)?;
    let origin_bytes = origin.as_ref().map(Device::size_bytes);
    let plan = match cli.to_kind() {
        Some(to @ (ToKind::Persistent | ToKind::Legacy)) => {
            if cli.journal_size.is_some() {
                bail!(
                    "--journal-size does not apply to an export: a {} store has no journal",
                    StoreKind::from(to)
                );
            }
            let Some(snapshot) = cli.snapshot else {
                bail!(
                    "{}: --to {} exports one snapshot: say which with --snapshot ID (snapshots: {})",
                    cli.input[0].display(),
                    StoreKind::from(to),
                    mask::describe(input.header().snapmask)
                );
            };
            let options = ExportOptions {
                snapshot,
                kind: to.into(),
                chunk_size: cli.chunk_size,
            };
            shared_migrate::plan_export(input, &options, origin_bytes).map_err(job_error)?
        }
        _ => {
            if cli.snapshot.is_some() {
                bail!("--snapshot applies to an export (--to persistent or --to legacy); a shared store is re-chunked or compacted whole");
            }
            let options = RechunkOptions {
                chunk_size: cli.chunk_size,
                journal: journal(cli),
            };
            shared_migrate::plan_rechunk(input, &options, origin_bytes).map_err(job_error)?
        }
    };
    run_shared_plan(cli, plan, origin, Some(input_size), journal_read)
}

/// Sizes, opens and writes the output of a shared migration, then reports.
/// Without `--size` a new image gets what the store needs plus room to grow,
/// and at least `default_size` (the input's size). `journal_read`: the
/// committed journal transactions the shared input was read through.
fn run_shared_plan(
    cli: &Cli,
    mut plan: SharedPlan,
    origin: Option<Device>,
    default_size: Option<u64>,
    journal_read: u64,
) -> anyhow::Result<u8> {
    if plan.needs_origin() && origin.is_none() {
        bail!(
            "{}: a larger chunk size ({} -> {} sectors) needs --origin DEV: the pieces of each new chunk that never changed are read from the origin",
            cli.input[0].display(),
            plan.from_chunk_size(),
            plan.to_chunk_size()
        );
    }
    let is_block_device =
        std::fs::metadata(cli.output()).is_ok_and(|meta| meta.file_type().is_block_device());
    let size = match (cli.size, default_size) {
        _ if is_block_device => 0,
        (Some(size), _) => {
            ensure_fits(cli, &mut plan, origin.as_ref(), size, false)?;
            size
        }
        (None, default_size) => {
            if !default_size.is_some_and(|size| plan.fits(size).unwrap_or(false)) {
                count(cli, &mut plan, origin.as_ref())?;
            }
            migrate::default_output_bytes(
                plan.needed_bytes()?,
                default_size,
                u64::from(plan.to_chunk_size()) * SECTOR_BYTES,
                plan.to_kind(),
            )
        }
    };
    let prepared = output::open_output(&output::OutputRequest {
        path: cli.output(),
        size,
        size_given: cli.size.is_some(),
        force: cli.force,
        inputs: &read_paths(cli),
    })?;
    cowtools::output::say_overwritten(TOOL, cli.output(), prepared.overwritten.as_deref());
    ensure_fits(
        cli,
        &mut plan,
        origin.as_ref(),
        prepared.device.size_bytes(),
        true,
    )?;
    let bar = progress::bar(plan.steps(), "copying", cli.quiet);
    let result = shared_migrate::migrate(
        &plan,
        origin.as_ref(),
        prepared.device,
        prepared.zeroed,
        &mut |done, _| bar.set_position(done),
    );
    bar.finish_and_clear();
    let report = result.map_err(job_error)?;
    verify(cli, plan.to_kind())?;
    prepared.claim.keep();
    render::migrate::shared_report(cli, &report, origin.as_ref(), journal_read)?;
    Ok(exit::EXIT_OK)
}

/// Reads every content once so that the space a shared output needs is exact.
fn count(cli: &Cli, plan: &mut SharedPlan, origin: Option<&Device>) -> anyhow::Result<()> {
    if plan.is_exact() {
        return Ok(());
    }
    let bar = progress::bar(plan.steps(), "counting", cli.quiet);
    let result = plan.count(origin, &mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    result.map_err(job_error)
}

/// Whether an output of `size` bytes holds the migrated store, counting the
/// contents first when the estimate says no.
fn fits_counted(
    cli: &Cli,
    plan: &mut SharedPlan,
    origin: Option<&Device>,
    size: u64,
) -> anyhow::Result<bool> {
    if plan.fits(size)? {
        return Ok(true);
    }
    count(cli, plan, origin)?;
    Ok(plan.fits(size)?)
}

/// Fails unless an output of `size` bytes holds the migrated store; before
/// refusing, the contents are counted, since sharing may need less than the
/// first estimate. `device` says the size is that of an opened device.
fn ensure_fits(
    cli: &Cli,
    plan: &mut SharedPlan,
    origin: Option<&Device>,
    size: u64,
    device: bool,
) -> anyhow::Result<()> {
    if fits_counted(cli, plan, origin, size)? {
        return Ok(());
    }
    let needed = plan.needed_bytes()?;
    if device {
        bail!(
            "{}: the device has {size} bytes, but the migrated store needs at least {needed} ({})",
            cli.output().display(),
            human_bytes(needed)
        );
    }
    bail!(
        "{}: the migrated store needs at least {needed} bytes ({}), but the output would have {size}; give a larger --size, e.g. --size {needed}",
        cli.output().display(),
        human_bytes(needed)
    )
}

/// `--to raw`: one snapshot's data as a raw image.
fn run_raw(cli: &Cli) -> anyhow::Result<u8> {
    refuse_raw_options(cli, "--to raw")?;
    let Some(origin) = cli.origin.as_deref() else {
        bail!("--to raw writes the snapshot's image, which reads the origin: give it with --origin DEV");
    };
    let raw = snapshot_data::export_raw(&RawExport {
        tool: TOOL,
        store: &cli.input[0],
        kind: cli.kind.map(StoreKind::from),
        snapshot: cli.snapshot,
        origin,
        output: cli.output(),
        force: cli.force,
        quiet: cli.quiet,
    })?;
    let report = raw.image;
    if cli.output() != Path::new("-") {
        let note = open::journal_read_note(raw.journal_read)
            .map(|note| format!("{}: {note}\n{TOOL}: ", cli.input[0].display()))
            .unwrap_or_default();
        render::migrate::value(
            cli,
            &serde_json::json!({
                "format_version": 1,
                "job": "raw",
                "input": cli.input[0],
                "origin": origin,
                "output": cli.output(),
                "bytes": report.bytes,
                "chunks_from_store": report.from_store,
                "chunks_from_origin": report.from_origin,
                "hole_bytes": report.hole_bytes,
                "journal_transactions_read": raw.journal_read,
            }),
            &format!(
                "{note}{}: {} bytes of the snapshot written ({} chunks from the store, {} from the origin, {} left as holes)",
                cli.output().display(),
                report.bytes,
                report.from_store,
                report.from_origin,
                human_bytes(report.hole_bytes)
            ),
        )?;
    }
    Ok(exit::EXIT_OK)
}

/// `--merge`: the snapshot written back over its origin.
fn run_merge(cli: &Cli) -> anyhow::Result<u8> {
    refuse_raw_options(cli, "--merge")?;
    let Some(origin) = cli.origin.as_deref() else {
        bail!("--merge writes the snapshot over its origin: give the origin with --origin DEV");
    };
    let store = &cli.input[0];
    let summary = snapshot_data::merge(
        store,
        cli.kind.map(StoreKind::from),
        cli.snapshot,
        origin,
        cli.quiet,
    )?;
    let replayed = match summary.journal_replayed {
        0 => String::new(),
        n => format!(
            "{}: {n} committed journal transaction{} replayed into the store before the merge\n{TOOL}: ",
            store.display(),
            if n == 1 { "" } else { "s" }
        ),
    };
    let what = match cli.snapshot {
        Some(id) if summary.kind == StoreKind::Shared => format!("snapshot {id}"),
        _ => "the snapshot".to_string(),
    };
    let after = if summary.kind == StoreKind::Shared {
        format!(
            "{} chunks copied out first for the snapshots that still read them; snapshots left: {}",
            summary.copied_out,
            mask::describe(summary.snapmask)
        )
    } else {
        "the store is now empty (reuse it for a new snapshot, or remove it)".to_string()
    };
    render::migrate::value(
        cli,
        &serde_json::json!({
            "format_version": 1,
            "job": "merge",
            "input": store,
            "kind": summary.kind.as_str(),
            "snapshot": cli.snapshot,
            "origin": origin,
            "chunks_written": summary.chunks,
            "chunks_copied_out": summary.copied_out,
            "resumed": summary.resumed,
            "snapshots_left": mask::id_list(summary.snapmask),
            "journal_transactions_replayed": summary.journal_replayed,
        }),
        &format!(
            "{replayed}{}: {what} of {} merged{}: {} chunks written over the origin; {after}",
            origin.display(),
            store.display(),
            if summary.resumed {
                " (an interrupted merge finished)"
            } else {
                ""
            },
            summary.chunks
        ),
    )?;
    Ok(exit::EXIT_OK)
}

/// Refuses the options of a migration that `job` does not take.
fn refuse_raw_options(cli: &Cli, job: &str) -> anyhow::Result<()> {
    let given = [
        ("--chunk-size", cli.chunk_size.is_some()),
        ("--ids", cli.ids.is_some()),
        ("--journal-size", cli.journal_size.is_some()),
        ("--size", cli.size.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
        bail!("{flag} does not apply to {job}");
    }
    if cli.input.len() > 1 {
        bail!("{job} takes one store (-i), not {}", cli.input.len());
    }
    Ok(())
}

