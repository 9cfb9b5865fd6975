//! cowrepair: salvages a damaged persistent, legacy or shared COW store into a
//! new, consistent one, and reports every record it dropped and why (for shared
//! stores, also the origin ranges whose leaves could not be read, and what each
//! snapshot kept and lost).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Parser, ValueEnum};
use comfy_table::{presets::UTF8_FULL, Table};
use cowfmt::device::{Access, Device};
use cowfmt::kind::{PERSISTENT_MAGIC, SHARED_MAGIC};
use cowfmt::origin_range::OriginRange;
use cowfmt::output::{self, InRepair, Marker, OutputClaim, OutputRequest};
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::persistent::repair::{self, JobError, RepairOptions, RepairReport, Salvage};
use cowfmt::persistent::table::{snapshot_table_line, TableDevices};
use cowfmt::shared::check as shared_check;
use cowfmt::shared::mask;
use cowfmt::shared::repair as shared_repair;
use cowfmt::units::human_bytes;
use cowfmt::{Finding, Severity, StoreKind};
use cowtools::args;
use cowtools::exit::{self, StoreProblems};
use cowtools::{progress, signatures};

const TOOL: &str = "cowrepair";

const EXAMPLES: &str = "\
EXAMPLES:
  Salvage a damaged store into a new image (the input is only read):
    cowrepair -i /dev/vg/data-cow -o salvaged.img
  See what would be kept and dropped, writing nothing:
    cowrepair -i cow.img --dry-run
  Drop records whose origin chunk lies past the end of the origin:
    cowrepair -i cow.img -o fixed.img --origin /dev/vg/data
  The header is wiped and the chunk size is known:
    cowrepair -i cow.img -o fixed.img --chunk-size 8k
  Rewrite the store in place, after copying it to a verified backup:
    cowrepair -i /dev/vg/data-cow --in-place --backup /srv/data-cow.bak
  (interrupted? run the same command again: it finishes from that backup)
  Machine-readable report:
    cowrepair -i cow.img -o fixed.img --format json
  Rather no snapshot than one that reads the origin where records were lost:
    cowrepair -i cow.img -o fixed.img --invalidate-on-loss
  A shared store whose header was wiped, with snapshots 0-3 and 5:
    cowrepair -i shared.img -o fixed.img --kind shared --snapshots 0-3,5

Persistent stores: every area location on the device is scanned, so records
after a zeroed or overwritten area, or after a premature terminator, are
recovered when credible. Shared stores: the tree is walked from the root; when
a block is damaged, the chunks nothing reachable accounts for are scanned for
leaves, and the report names every lost origin range and what each snapshot
kept and lost. The kind comes from the header's magic (or --kind). An input
without a store's magic that holds another kind (dm-clone or dm-thin metadata,
a file system...) is refused unless --kind and --force are both given.
Exit codes: 0 the output was written and no record was lost, 3 the output was
written but records were lost (dropped, or in unreadable ranges: the report
names the origin ranges that now read through to the origin; --dry-run exits
the same way), 1 nothing could be salvaged or the damage stopped the job (or
the chunk size must be given with --chunk-size), 2 usage or I/O error.";

/// The kinds cowrepair salvages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RepairKind {
    /// The kernel's "SnAp" v1 store (dm-snapshot `P`).
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits and made safe to reload there.
    Legacy,
    /// The multi-snapshot shared store.
    Shared,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Plain lines: one per dropped record (and lost range), then a summary.
    Text,
    /// The dropped records (and per-snapshot counts) as tables, then the summary.
    Table,
    /// One JSON document (format_version 1).
    Json,
}

/// Command line of cowrepair.
#[derive(Debug, Parser)]
#[command(name = "cowrepair", version, about = "Salvage a damaged dm-snapshot COW store", after_help = EXAMPLES)]
struct Cli {
    /// The damaged store (image file or block device); opened read-only.
    #[arg(short, long, value_name = "DAMAGED")]
    input: PathBuf,

    /// The new store: an image file (created sparse) or an empty block device.
    #[arg(short, long, value_name = "NEW", conflicts_with = "in_place")]
    output: Option<PathBuf>,

    /// Rebuild the input itself, from a verified copy in --backup.
    #[arg(long)]
    in_place: bool,

    /// Where --in-place copies the input first (must be new or empty); to
    /// finish an interrupted --in-place repair, the backup it made.
    #[arg(long, value_name = "FILE")]
    backup: Option<PathBuf>,

    /// Analyse and report only; write nothing.
    #[arg(short = 'n', long, conflicts_with_all = ["output", "in_place"])]
    dry_run: bool,

    /// Size of a new output image (4k, 64M, 1G, 8s...); the input's size by default.
    #[arg(short, long, value_name = "SIZE", value_parser = args::parse_size, conflicts_with = "in_place")]
    size: Option<u64>,

    /// Chunk size to read the store with, overriding the header (4k, 8s...).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_chunk_size)]
    chunk_size: Option<u32>,

    /// The origin device: records past its end are dropped, and the table line names it.
    #[arg(long, value_name = "DEV", conflicts_with = "origin_size")]
    origin: Option<PathBuf>,

    /// The origin's size (bytes, or 64M, 1G, 8s...), when the device is not at hand.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
    origin_size: Option<u64>,

    /// persistent, legacy (also hold the output to the pre-2.6.29 limits), or
    /// shared; by default the header's magic decides.
    #[arg(long, value_enum)]
    kind: Option<RepairKind>,

    /// Shared stores: journal chunks, overriding the header's.
    #[arg(long, value_name = "N")]
    journal_chunks: Option<u64>,

    /// Shared stores: the snapshot ids that exist (0,3-5,63), overriding the header's.
    #[arg(long, value_name = "IDS", value_parser = parse_snapshot_ids, conflicts_with = "snapmask")]
    snapshots: Option<u64>,

    /// Shared stores: the snapmask (bit s = snapshot s; 0x... or decimal), overriding the header's.
    #[arg(long, value_name = "MASK", value_parser = parse_mask)]
    snapmask: Option<u64>,

    /// Shared stores: when the tree is damaged, also look for leaves in chunks
    /// the bitmap marks free (stale leaves the engine freed look like this too).
    #[arg(long)]
    full_scan: bool,

    /// Mark the output valid even if the input was invalidated (its data may be incomplete).
    #[arg(long, conflicts_with = "invalidate_on_loss")]
    mark_valid: bool,

    /// When records are lost, write the output marked invalid (valid=0): the
    /// kernel (or engine) then refuses the snapshot instead of reading the
    /// origin where the records were. No data rather than wrong data.
    #[arg(long)]
    invalidate_on_loss: bool,

    /// Salvage only the areas the kernel reads (leave out records beyond them,
    /// e.g. when the device held an earlier snapshot).
    #[arg(long)]
    kernel_areas_only: bool,

    /// Overwrite an existing output (or backup) file, or a device holding data;
    /// with --kind, also repair an input that holds another kind's signature.
    #[arg(short, long)]
    force: bool,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,

    /// No progress bars and no text report; JSON is still printed.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    validate(cli)?;
    let input = kind_source(cli, Device::open(&cli.input, Access::ReadOnly)?)?;
    refuse_foreign_input(cli, &input)?;
    if let Some(probed) = shared_kind(cli, &input)? {
        validate_shared(cli)?;
        return run_shared(cli, input, probed);
    }
    validate_persistent(cli)?;
    let options = options(cli)?;
    if cli.in_place {
        return in_place(cli, &options, input);
    }
    let salvage = analyze(cli, &input, &options)?;
    let Some(output_path) = cli.output.as_deref() else {
        render(cli, salvage.report(), None)?;
        return Ok(exit_code(salvage.report()));
    };
    refuse_if_nothing_salvaged(cli, &salvage)?;
    let size = cli.size.unwrap_or(input.size_bytes());
    if size < salvage.needed_bytes() {
        bail!(
            "{}: the salvaged store needs at least {} bytes ({}), more than the {size} bytes asked for; give a larger --size",
            output_path.display(),
            salvage.needed_bytes(),
            human_bytes(salvage.needed_bytes())
        );
    }
    let prepared = output::open_output(&OutputRequest {
        path: output_path,
        size,
        size_given: cli.size.is_some(),
        force: cli.force,
        inputs: &read_paths(cli),
    })?;
    cowtools::output::say_overwritten(TOOL, output_path, prepared.overwritten.as_deref());
    let report = write(cli, salvage, &input, prepared.device, prepared.zeroed)?;
    prepared.claim.keep();
    finish(cli, &report, output_path)
}

/// The device whose magic says which kind to repair: the input, or for an
/// input an interrupted `--in-place` repair left marked, its backup (the
/// input's own first sector holds the marker, and its metadata is half
/// rewritten).
fn kind_source(cli: &Cli, input: Device) -> anyhow::Result<Device> {
    let Some(Marker::InRepair(marker)) = Marker::read(&input)? else {
        return Ok(input);
    };
    let Some(backup) = cli.backup.as_deref().filter(|_| cli.in_place) else {
        bail!(
            "{}: {}",
            cli.input.display(),
            Marker::InRepair(marker).describe()
        );
    };
    Ok(Device::open(backup, Access::ReadOnly)?)
}

/// Every file the job reads, none of which may be the output or the backup.
fn read_paths(cli: &Cli) -> Vec<&Path> {
    std::iter::once(cli.input.as_path())
        .chain(cli.origin.as_deref())
        .collect()
}

fn validate(cli: &Cli) -> anyhow::Result<()> {
    if cli.in_place && cli.backup.is_none() {
        bail!("--in-place needs --backup FILE: the input is copied there and verified before it is rewritten");
    }
    if cli.backup.is_some() && !cli.in_place {
        bail!("--backup is only used with --in-place");
    }
    if cli.output.is_none() && !cli.in_place && !cli.dry_run {
        bail!("give the output with -o NEW (or --in-place --backup FILE, or --dry-run)");
    }
    Ok(())
}

fn validate_persistent(cli: &Cli) -> anyhow::Result<()> {
    let shared_only = [
        (cli.journal_chunks.is_some(), "--journal-chunks"),
        (cli.snapshots.is_some(), "--snapshots"),
        (cli.snapmask.is_some(), "--snapmask"),
        (cli.full_scan, "--full-scan"),
    ];
    if let Some((_, flag)) = shared_only.iter().find(|(given, _)| *given) {
        bail!(
            "{}: {flag} applies to shared stores only, and this is not one (give --kind shared if its header is wiped)",
            cli.input.display()
        );
    }
    Ok(())
}

fn validate_shared(cli: &Cli) -> anyhow::Result<()> {
    if cli.kernel_areas_only {
        bail!(
            "{}: --kernel-areas-only applies to persistent stores only, and this is a shared store",
            cli.input.display()
        );
    }
    Ok(())
}

/// Refuses an input whose magic is no COW store's and that carries another
/// kind's signature (dm-clone or dm-thin metadata, a file system, a partition
/// table...) before anything is read as a store or written; `--kind` and
/// `--force` together insist, and the tool then says what it treats as a store.
fn refuse_foreign_input(cli: &Cli, input: &Device) -> anyhow::Result<()> {
    let mut magic = [0u8; 4];
    let readable = input.read_at(&mut magic, 0, || "the store magic".to_string());
    if readable.is_ok() && matches!(u32::from_le_bytes(magic), PERSISTENT_MAGIC | SHARED_MAGIC) {
        return Ok(());
    }
    let Some(found) = signatures::foreign(TOOL, input)? else {
        return Ok(());
    };
    let path = cli.input.display();
    let what = found.describe();
    let Some(kind) = cli.kind else {
        bail!("{path}: holds {what}, not a COW store; nothing was written (give --kind and --force to repair it as a store anyway)");
    };
    let kind = kind_name(kind);
    if !cli.force {
        bail!("{path}: holds {what}; --kind {kind} insists on a {kind} store, but a foreign signature also needs --force");
    }
    let in_place = if cli.in_place {
        ", and rewriting it in place,"
    } else {
        ""
    };
    eprintln!("{TOOL}: {path}: treating {what} as a {kind} store{in_place} because --kind and --force were given");
    Ok(())
}

fn kind_name(kind: RepairKind) -> &'static str {
    match kind {
        RepairKind::Persistent => "persistent",
        RepairKind::Legacy => "legacy",
        RepairKind::Shared => "shared",
    }
}

/// Whether the input is to be repaired as a shared store: by `--kind`, else by
/// its magic, else (no store's magic at all) when leaves and a bitmap of a
/// shared store are found. `Some(true)` when it was found that way.
fn shared_kind(cli: &Cli, input: &Device) -> anyhow::Result<Option<bool>> {
    let mut magic = [0u8; 4];
    let magic = match input.read_at(&mut magic, 0, || "the store magic".to_string()) {
        Ok(()) => Some(u32::from_le_bytes(magic)),
        Err(_) => None,
    };
    match (cli.kind, magic) {
        (Some(RepairKind::Shared), Some(PERSISTENT_MAGIC)) => bail!(
            "{}: --kind shared was given, but the header says this is a persistent store",
            cli.input.display()
        ),
        (Some(RepairKind::Shared), _) => Ok(Some(false)),
        (Some(kind), Some(SHARED_MAGIC)) => bail!(
            "{}: --kind {} was given, but the header says this is a shared store",
            cli.input.display(),
            kind_name(kind)
        ),
        (Some(_), _) => Ok(None),
        (None, Some(SHARED_MAGIC)) => Ok(Some(false)),
        (None, Some(PERSISTENT_MAGIC)) | (None, None) => Ok(None),
        (None, Some(_)) => Ok(shared_repair::probe_wiped_header(input)?.map(|_| true)),
    }
}

fn origin_bytes(cli: &Cli) -> anyhow::Result<Option<u64>> {
    Ok(match &cli.origin {
        Some(origin) => Some(Device::open(origin, Access::ReadOnly)?.size_bytes()),
        None => cli.origin_size,
    })
}

fn options(cli: &Cli) -> anyhow::Result<RepairOptions> {
    let kind = match cli.kind {
        Some(RepairKind::Legacy) => StoreKind::Legacy,
        Some(RepairKind::Persistent) | Some(RepairKind::Shared) | None => StoreKind::Persistent,
    };
    Ok(RepairOptions {
        kind,
        chunk_size: cli.chunk_size,
        origin_bytes: origin_bytes(cli)?,
        mark_valid: cli.mark_valid,
        kernel_areas_only: cli.kernel_areas_only,
        invalidate_on_loss: cli.invalidate_on_loss,
    })
}

fn analyze(cli: &Cli, input: &Device, options: &RepairOptions) -> anyhow::Result<Salvage> {
    let bar = progress::bar(0, "scanning", cli.quiet);
    let result = repair::analyze(input, options, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    result.map_err(job_error)
}

fn write(
    cli: &Cli,
    salvage: Salvage,
    input: &Device,
    output: Device,
    zeroed: bool,
) -> anyhow::Result<RepairReport> {
    let bar = progress::bar(salvage.kept_records().len() as u64, "copying", cli.quiet);
    let result = salvage.write(input, output, zeroed, &mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    result.map_err(job_error)
}

fn refuse_if_nothing_salvaged(cli: &Cli, salvage: &Salvage) -> anyhow::Result<()> {
    if salvage.report().nothing_salvaged() {
        render(cli, salvage.report(), None)?;
        return Err(StoreProblems(format!(
            "{}: nothing could be salvaged ({} record{} dropped); no output written",
            cli.input.display(),
            salvage.report().dropped_total,
            plural(salvage.report().dropped_total)
        ))
        .into());
    }
    Ok(())
}

/// Copies the input to the backup, verifies the copy, then rebuilds the input
/// from the backup (or finishes an interrupted rebuild from it).
fn in_place(cli: &Cli, options: &RepairOptions, input: Device) -> anyhow::Result<u8> {
    let job = InPlace::prepare(cli, input)?;
    let salvage = analyze(cli, &job.backup, options)?;
    refuse_if_nothing_salvaged(cli, &salvage)?;
    if job.target.size_bytes() < salvage.needed_bytes() {
        bail!(
            "{}: the salvaged store needs at least {} bytes, more than the device holds",
            cli.input.display(),
            salvage.needed_bytes()
        );
    }
    let (output, backup, _claim) = job.mark()?;
    let mut report = write(cli, salvage, &backup, output, false)?;
    report.notes.push(format!(
        "the records and data were read from the verified backup {}",
        cli.backup.as_deref().unwrap_or(Path::new("")).display()
    ));
    report.input = cli.input.display().to_string();
    finish(cli, &report, &cli.input)
}

/// An in-place repair about to write: the input, claimed for writing before
/// anything else happened, and the verified backup to rebuild it from.
struct InPlace {
    target: Device,
    target_claim: OutputClaim,
    backup: Device,
    backup_claim: Option<OutputClaim>,
    marker: InRepair,
}

impl InPlace {
    /// Claims the input for writing (refused here when it is busy or
    /// read-only, before any backup is made), then either finds it marked
    /// in repair and checks that `--backup` is the backup recorded there, or
    /// copies it to `--backup` and verifies the copy.
    fn prepare(cli: &Cli, input: Device) -> anyhow::Result<Self> {
        let (target, target_claim) = output::claim_in_place(&cli.input)?;
        let backup_path = cli
            .backup
            .as_deref()
            .ok_or_else(|| anyhow!("--in-place needs --backup FILE"))?;
        if let Some(Marker::InRepair(marker)) = Marker::read(&target)? {
            let backup = Device::open(backup_path, Access::ReadOnly)?;
            if output::same_file(&std::fs::metadata(backup_path)?, &cli.input) {
                bail!(
                    "{}: the backup is the input itself; give the backup the interrupted repair made ({})",
                    backup_path.display(),
                    marker.backup_path
                );
            }
            marker.verify(&backup, &cli.input)?;
            return Ok(InPlace {
                target,
                target_claim,
                backup,
                backup_claim: None,
                marker,
            });
        }
        let mut magic = [0u8; 4];
        target.read_at(&mut magic, 0, || "the store magic".to_string())?;
        let (backup, backup_claim) = back_up(cli, input, backup_path)?;
        let marker = InRepair::of_backup(
            &backup,
            u32::from_le_bytes(magic),
            &backup_path.display().to_string(),
        )?;
        Ok(InPlace {
            target,
            target_claim,
            backup,
            backup_claim: Some(backup_claim),
            marker,
        })
    }

    /// Marks the input in repair (on disk, before its first metadata write)
    /// and keeps the backup from then on, whatever happens next.
    fn mark(self) -> anyhow::Result<(Device, Device, OutputClaim)> {
        Marker::InRepair(self.marker).write(&self.target)?;
        if let Some(claim) = self.backup_claim {
            claim.keep();
        }
        Ok((self.target, self.backup, self.target_claim))
    }
}

/// Copies the input to `backup_path` and verifies the copy; returns the
/// backup, opened read-only, and the claim that removes it if the job stops
/// before the input is touched. The input is closed.
fn back_up(cli: &Cli, input: Device, backup_path: &Path) -> anyhow::Result<(Device, OutputClaim)> {
    let prepared = output::open_output(&OutputRequest {
        path: backup_path,
        size: input.size_bytes(),
        size_given: false,
        force: cli.force,
        inputs: &read_paths(cli),
    })?;
    cowtools::output::say_overwritten(TOOL, backup_path, prepared.overwritten.as_deref());
    if prepared.device.size_bytes() < input.size_bytes() {
        bail!(
            "{}: the backup device has {} bytes, fewer than the {} of {}",
            backup_path.display(),
            prepared.device.size_bytes(),
            input.size_bytes(),
            cli.input.display()
        );
    }
    let total = input.size_bytes();
    let bar = progress::bar(total, "backing up", cli.quiet);
    repair::copy_device(&input, &prepared.device, prepared.zeroed, &mut |done, _| {
        bar.set_position(done)
    })?;
    bar.finish_and_clear();
    let claim = prepared.claim;
    drop(prepared.device);
    let backup = Device::open(backup_path, Access::ReadOnly)?;
    let bar = progress::bar(total, "verifying", cli.quiet);
    repair::verify_copy(&input, &backup, &mut |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    Ok((backup, claim))
}

/// The errors the check of a freshly written output still finds, as one
/// report naming the first; `None` when the output is clean.
fn remaining_problems(findings: &[Finding], output: &Path) -> Option<StoreProblems> {
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let first = errors.first()?;
    Some(StoreProblems(format!(
        "{}: the repaired store still has {} problem{}: {}",
        output.display(),
        errors.len(),
        plural(errors.len() as u64),
        first.message
    )))
}

/// Checks the output, renders the report and picks the exit code.
fn finish(cli: &Cli, report: &RepairReport, output: &Path) -> anyhow::Result<u8> {
    let device = Device::open(output, Access::ReadOnly)?;
    let checked = check(
        &device,
        &CheckOptions {
            kind: report.kind,
            ..CheckOptions::default()
        },
    )?;
    let problems = remaining_problems(&checked.findings, output);
    render(cli, report, Some(output))?;
    if let Some(problems) = problems {
        return Err(problems.into());
    }
    Ok(exit_code(report))
}

fn exit_code(report: &RepairReport) -> u8 {
    repair_exit_code(report.nothing_salvaged(), report.records_lost)
}

/// 1 when nothing could be salvaged, 3 when records were lost, else 0.
fn repair_exit_code(nothing_salvaged: bool, records_lost: bool) -> u8 {
    if nothing_salvaged {
        exit::EXIT_PROBLEMS
    } else if records_lost {
        exit::EXIT_LOSSY
    } else {
        exit::EXIT_OK
    }
}

/// At most this many ranges are named in text; JSON lists them all.
const RANGES_IN_TEXT: usize = 20;

/// "origin chunks 5..7, origin chunks 9..10" (and how many more, if any).
fn ranges_text(ranges: &[OriginRange], complete: bool) -> String {
    let mut text = cowfmt::origin_range::ranges_text(&ranges[..ranges.len().min(RANGES_IN_TEXT)]);
    if ranges.len() > RANGES_IN_TEXT {
        text.push_str(&format!(
            " and {} more range{}",
            ranges.len() - RANGES_IN_TEXT,
            plural((ranges.len() - RANGES_IN_TEXT) as u64)
        ));
    }
    if !complete {
        text.push_str(" (more not listed)");
    }
    text
}

/// The closing line of a report with no output: said only for `--dry-run`,
/// since a refusal closes with its own error.
fn nothing_written(out: &mut dyn Write, cli: &Cli, name: &str) -> io::Result<()> {
    if cli.dry_run {
        writeln!(out, "{name}: nothing written (dry run)")?;
    }
    Ok(())
}

fn job_error(error: JobError) -> anyhow::Error {
    match error {
        JobError::Damage(message) => StoreProblems(message).into(),
        JobError::Failed(error) => error.into(),
    }
}

fn render(cli: &Cli, report: &RepairReport, output: Option<&Path>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match cli.format {
        ReportFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        }
        _ if cli.quiet => {}
        format => write_text(&mut out, cli, report, output, format == ReportFormat::Table)?,
    }
    out.flush()?;
    Ok(())
}

fn write_text(
    out: &mut dyn Write,
    cli: &Cli,
    report: &RepairReport,
    output: Option<&Path>,
    as_table: bool,
) -> io::Result<()> {
    let name = &report.input;
    if as_table && !report.dropped.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL);
        table.set_header(["area", "index", "old_chunk", "new_chunk", "reason"]);
        for dropped in &report.dropped {
            table.add_row([
                dropped.area.to_string(),
                dropped.index.to_string(),
                dropped.old_chunk.to_string(),
                dropped.new_chunk.to_string(),
                dropped.reason.to_string(),
            ]);
        }
        writeln!(out, "{table}")?;
    } else {
        for dropped in &report.dropped {
            writeln!(
                out,
                "{name}: dropped: {}: {}",
                dropped.reason, dropped.message
            )?;
        }
    }
    if report.dropped_unlisted > 0 {
        writeln!(
            out,
            "{name}: {} more dropped records not listed",
            report.dropped_unlisted
        )?;
    }
    for area in &report.damaged_areas {
        writeln!(out, "{name}: damaged area: {}", area.message)?;
    }
    for area in &report.unreadable_areas {
        writeln!(out, "{name}: area {area} could not be read")?;
    }
    let source = match report.chunk_size_source {
        repair::ChunkSizeSource::Header => "from the header",
        repair::ChunkSizeSource::Option => "as given",
        repair::ChunkSizeSource::Inferred => "inferred",
    };
    writeln!(
        out,
        "{name}: chunk size {} sectors ({source})",
        report.chunk_size
    )?;
    if report.header_repaired {
        writeln!(
            out,
            "{name}: header repaired: {}",
            report.header_problems.join("; ")
        )?;
    }
    for note in &report.notes {
        writeln!(out, "{name}: note: {note}")?;
    }
    if report.recovered_beyond_kernel > 0 && !cli.kernel_areas_only {
        writeln!(out, "{name}: note: --kernel-areas-only leaves out the records found beyond the kernel's areas")?;
    }
    writeln!(
        out,
        "{name}: kept {} record{}, dropped {} (the kernel would read {}; {} recovered beyond its view; {} unused area{} skipped)",
        report.kept,
        plural(report.kept),
        report.dropped_total,
        report.kernel_records,
        report.recovered_beyond_kernel,
        report.skipped_areas,
        plural(report.skipped_areas)
    )?;
    if !report.read_through.is_empty() {
        writeln!(
            out,
            "{name}: lost: the snapshot reads the origin now at {}",
            ranges_text(&report.read_through, report.read_through_complete)
        )?;
    }
    if report.missing_records > 0 {
        writeln!(
            out,
            "{name}: lost: {} record slot{} empty in areas before the last one holding records (the kernel fills every area before its last)",
            report.missing_records,
            plural(report.missing_records)
        )?;
    }
    if report.dropped_origin_unknown > 0 {
        writeln!(
            out,
            "{name}: lost: {} dropped record{} too damaged to name the origin chunks they mapped; the snapshot reads the origin there now, at origin chunks unknown",
            report.dropped_origin_unknown,
            plural(report.dropped_origin_unknown)
        )?;
    }
    if !report.damaged_areas.is_empty()
        || !report.unreadable_areas.is_empty()
        || report.missing_records > 0
    {
        writeln!(
            out,
            "{name}: lost: records in overwritten, zeroed or unreadable areas; the origin chunks they mapped cannot be told, and the snapshot reads the origin there now"
        )?;
    }
    let Some(output) = output else {
        return nothing_written(out, cli, name);
    };
    if let Some(relocation) = &report.relocation {
        writeln!(
            out,
            "{}: moved data chunk {} to {} (area {} record {}), so that a pre-2.6.29 kernel's next allocation does not land on metadata chunk {}",
            output.display(),
            relocation.from_chunk,
            relocation.to_chunk,
            relocation.area,
            relocation.index,
            relocation.metadata_chunk
        )?;
    }
    if report.stale_areas_zeroed > 0 {
        writeln!(
            out,
            "{}: zeroed {} stale area location{}",
            output.display(),
            report.stale_areas_zeroed,
            plural(report.stale_areas_zeroed)
        )?;
    }
    let origin = cli.origin.as_ref().map(|p| p.display().to_string());
    let cow = output.display().to_string();
    let devices = TableDevices {
        origin: origin.as_deref(),
        origin_sectors: report_origin_sectors(cli),
        cow: &cow,
    };
    writeln!(
        out,
        "{cow}: table: {}",
        snapshot_table_line(&devices, report.chunk_size, report.kind)
    )?;
    writeln!(
        out,
        "{cow}: written: {} store, {}, status {}",
        report.kind,
        if report.output_valid {
            "valid"
        } else {
            "invalid"
        },
        report.status_after.as_deref().unwrap_or("unknown")
    )
}

fn report_origin_sectors(cli: &Cli) -> Option<u64> {
    match &cli.origin {
        Some(origin) => Device::open(origin, Access::ReadOnly)
            .ok()
            .map(|d| d.size_sectors()),
        None => cli.origin_size.map(|bytes| bytes / cowfmt::SECTOR_BYTES),
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// Parses snapshot ids as people write them ("0,3-5,63") into a snapmask.
fn parse_snapshot_ids(text: &str) -> Result<u64, String> {
    let mut mask = 0u64;
    for part in text.split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let id = |t: &str| -> Result<u32, String> {
            let id: u32 = t
                .trim()
                .parse()
                .map_err(|_| format!("{t:?} is not a snapshot id (0-63)"))?;
            if id >= mask::MAX_SNAPSHOTS {
                return Err(format!("snapshot id {id} is out of range (0-63)"));
            }
            Ok(id)
        };
        let (lo, hi) = (id(lo)?, id(hi)?);
        if lo > hi {
            return Err(format!(
                "{part:?} is not an ascending range of snapshot ids"
            ));
        }
        let range = (lo..=hi).fold(0u64, |m, s| m | mask::bit(s));
        if mask & range != 0 {
            return Err(format!(
                "{part:?} names snapshot {} again",
                mask::describe(mask & range)
            ));
        }
        mask |= range;
    }
    Ok(mask)
}

/// Parses a snapmask: `0x...` hexadecimal or decimal.
fn parse_mask(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(0) => Err("a snapmask of 0 names no snapshot; a shared store has at least one".into()),
        Ok(mask) => Ok(mask),
        Err(_) => Err(format!("{text:?} is not a snapmask (0x... or decimal)")),
    }
}

fn shared_options(cli: &Cli) -> anyhow::Result<shared_repair::RepairOptions> {
    Ok(shared_repair::RepairOptions {
        chunk_size: cli.chunk_size,
        journal_chunks: cli.journal_chunks,
        snapmask: cli.snapshots.or(cli.snapmask),
        origin_bytes: origin_bytes(cli)?,
        mark_valid: cli.mark_valid,
        full_scan: cli.full_scan,
        invalidate_on_loss: cli.invalidate_on_loss,
    })
}

/// Repairs a shared store: into `-o`, in place, or not at all (`--dry-run`).
fn run_shared(cli: &Cli, input: Device, probed: bool) -> anyhow::Result<u8> {
    let options = shared_options(cli)?;
    if cli.in_place {
        return shared_in_place(cli, &options, input, probed);
    }
    let (input, journal) = shared_repair::read_through_journal(input, &options)?;
    let salvage = shared_analyze(cli, &input, &options, probed, journal)?;
    let Some(output_path) = cli.output.as_deref() else {
        render_shared(cli, salvage.report(), None)?;
        return Ok(shared_exit_code(salvage.report()));
    };
    shared_refuse_if_nothing_salvaged(cli, &salvage)?;
    let size = cli.size.unwrap_or(input.size_bytes());
    if let Some(problem) = salvage.output_problem(size) {
        bail!("{}: {problem}; give another --size", output_path.display());
    }
    let prepared = output::open_output(&OutputRequest {
        path: output_path,
        size,
        size_given: cli.size.is_some(),
        force: cli.force,
        inputs: &read_paths(cli),
    })?;
    cowtools::output::say_overwritten(TOOL, output_path, prepared.overwritten.as_deref());
    let how = shared_repair::WriteOptions {
        output_zeroed: prepared.zeroed,
        data_in_place: false,
    };
    let report = shared_write(cli, salvage, &input, prepared.device, how)?;
    prepared.claim.keep();
    shared_finish(cli, &report, output_path)
}

fn shared_analyze(
    cli: &Cli,
    input: &Device,
    options: &shared_repair::RepairOptions,
    probed: bool,
    journal: Option<shared_repair::JournalRepair>,
) -> anyhow::Result<shared_repair::Salvage> {
    let bar = progress::bar(0, "scanning", cli.quiet);
    let result = shared_repair::analyze(input, options, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let mut salvage = result.map_err(job_error)?;
    if let Some(journal) = journal {
        salvage.set_journal(journal);
    }
    if probed {
        salvage.note(
            "the header holds no store magic; leaves and a bitmap of a shared store were found, so it was repaired as one"
                .to_string(),
        );
    }
    Ok(salvage)
}

fn shared_write(
    cli: &Cli,
    salvage: shared_repair::Salvage,
    input: &Device,
    output: Device,
    how: shared_repair::WriteOptions,
) -> anyhow::Result<shared_repair::RepairReport> {
    let bar = progress::bar(salvage.kept_data_chunks(), "copying", cli.quiet);
    let result = salvage.write(input, output, how, &mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    result.map_err(job_error)
}

fn shared_refuse_if_nothing_salvaged(
    cli: &Cli,
    salvage: &shared_repair::Salvage,
) -> anyhow::Result<()> {
    let report = salvage.report();
    if report.nothing_salvaged() {
        render_shared(cli, report, None)?;
        return Err(StoreProblems(format!(
            "{}: nothing could be salvaged ({} record{} dropped{}); no output written",
            cli.input.display(),
            report.dropped_total,
            plural(report.dropped_total),
            if report.records_unknown {
                ", the rest unreadable"
            } else {
                ""
            }
        ))
        .into());
    }
    Ok(())
}

/// Copies the input to the backup, verifies the copy, then rebuilds the input
/// from the backup (the data chunks stay where they are).
fn shared_in_place(
    cli: &Cli,
    options: &shared_repair::RepairOptions,
    input: Device,
    probed: bool,
) -> anyhow::Result<u8> {
    let mut job = InPlace::prepare(cli, input)?;
    let (backup, journal) = shared_repair::read_through_journal(job.backup, options)?;
    job.backup = backup;
    let salvage = shared_analyze(cli, &job.backup, options, probed, journal)?;
    shared_refuse_if_nothing_salvaged(cli, &salvage)?;
    if let Some(problem) = salvage.output_problem(job.target.size_bytes()) {
        bail!("{}: {problem}", cli.input.display());
    }
    let (output, backup, _claim) = job.mark()?;
    let how = shared_repair::WriteOptions {
        output_zeroed: false,
        data_in_place: true,
    };
    let mut report = shared_write(cli, salvage, &backup, output, how)?;
    report.notes.push(format!(
        "the records were read from the verified backup {}",
        cli.backup.as_deref().unwrap_or(Path::new("")).display()
    ));
    report.input = cli.input.display().to_string();
    shared_finish(cli, &report, &cli.input)
}

/// Checks the output with the shared checker, renders the report and picks
/// the exit code.
fn shared_finish(
    cli: &Cli,
    report: &shared_repair::RepairReport,
    output: &Path,
) -> anyhow::Result<u8> {
    let device = Device::open(output, Access::ReadOnly)?;
    let checked = shared_check::check(
        &device,
        &shared_check::CheckOptions {
            origin_bytes: origin_bytes(cli)?,
            ..shared_check::CheckOptions::default()
        },
    )?;
    let problems = remaining_problems(&checked.findings, output);
    render_shared(cli, report, Some(output))?;
    if let Some(problems) = problems {
        return Err(problems.into());
    }
    Ok(shared_exit_code(report))
}

fn shared_exit_code(report: &shared_repair::RepairReport) -> u8 {
    repair_exit_code(report.nothing_salvaged(), report.records_lost)
}

fn render_shared(
    cli: &Cli,
    report: &shared_repair::RepairReport,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match cli.format {
        ReportFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        }
        _ if cli.quiet => {}
        format => write_shared_text(&mut out, cli, report, output, format == ReportFormat::Table)?,
    }
    out.flush()?;
    Ok(())
}

fn write_shared_text(
    out: &mut dyn Write,
    cli: &Cli,
    report: &shared_repair::RepairReport,
    output: Option<&Path>,
    as_table: bool,
) -> io::Result<()> {
    let name = &report.input;
    if as_table && !report.dropped.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL);
        table.set_header(["origin", "share", "chunk", "leaf", "reason"]);
        for d in &report.dropped {
            table.add_row([
                d.origin.to_string(),
                mask::describe(d.share),
                d.chunk.to_string(),
                d.leaf.to_string(),
                d.reason.to_string(),
            ]);
        }
        writeln!(out, "{table}")?;
    } else {
        for d in &report.dropped {
            writeln!(out, "{name}: dropped: {}: {}", d.reason, d.message)?;
        }
    }
    if report.dropped_unlisted > 0 {
        writeln!(
            out,
            "{name}: {} more dropped records not listed",
            report.dropped_unlisted
        )?;
    }
    for lost in &report.lost_ranges {
        writeln!(out, "{name}: lost: {}", lost_range_text(lost))?;
    }
    if report.lost_ranges_unlisted > 0 {
        writeln!(
            out,
            "{name}: {} more lost ranges not listed",
            report.lost_ranges_unlisted
        )?;
    }
    writeln!(
        out,
        "{name}: chunk size {} sectors ({}), journal {} chunks ({}), snapshots {} ({})",
        report.chunk_size,
        report.chunk_size_source.as_str(),
        report.journal_chunks,
        report.journal_source.as_str(),
        mask::describe(report.snapmask),
        report.snapmask_source.as_str()
    )?;
    if report.header_repaired {
        writeln!(
            out,
            "{name}: header repaired: {}",
            report.header_problems.join("; ")
        )?;
    }
    if let Some(scan) = &report.scan {
        writeln!(
            out,
            "{name}: scan: read {} chunk{} ({}); {} lea{} found: {} used, {} overlapping a better leaf, {} implausible, {} outside the damage",
            scan.chunks_scanned,
            plural(scan.chunks_scanned),
            match scan.mode {
                shared_repair::ScanMode::Used => "marked in use, not referenced",
                shared_repair::ScanMode::All => "every unreferenced chunk",
            },
            scan.leaves_found,
            if scan.leaves_found == 1 { "f" } else { "ves" },
            scan.leaves_used,
            scan.leaves_overlapping,
            scan.leaves_implausible,
            scan.leaves_outside_damage
        )?;
    }
    for note in &report.notes {
        writeln!(out, "{name}: note: {note}")?;
    }
    write_snapshot_counts(out, name, report, as_table)?;
    let reasons: Vec<String> = report
        .dropped_by_reason
        .iter()
        .map(|r| format!("{} {}", r.count, r.reason))
        .collect();
    writeln!(
        out,
        "{name}: kept {} record{} of {} origin chunk{}, dropped {}{}; {}",
        report.kept,
        plural(report.kept),
        report.kept_origin_chunks,
        plural(report.kept_origin_chunks),
        report.dropped_total,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        unknown_text(report)
    )?;
    if report.masks_trimmed > 0 {
        writeln!(
            out,
            "{name}: {} kept record{} lost snapshot bits another record of the same origin chunk also had; those snapshots read the origin there (counted as lost above)",
            report.masks_trimmed,
            plural(report.masks_trimmed)
        )?;
    }
    let c = &report.chunks;
    writeln!(
        out,
        "{name}: chunks in use: {} data kept, {} old tree blocks, {} of dropped records, {} leaked: all but the data freed",
        c.data_kept, c.old_tree_blocks, c.dropped_record_chunks, c.leaked_freed
    )?;
    let Some(output) = output else {
        return nothing_written(out, cli, name);
    };
    let cow = output.display().to_string();
    let origin = cli.origin.as_ref().map(|p| p.display().to_string());
    for &id in &report.snapshots {
        writeln!(
            out,
            "{cow}: table: {}",
            cowfmt::shared::table_line(
                origin.as_deref(),
                report_origin_sectors(cli),
                &cow,
                report.chunk_size,
                id
            )
        )?;
    }
    writeln!(
        out,
        "{cow}: written: shared store, {}, {} leaves (tree level {}), {} data chunk{} copied",
        if report.output_valid {
            "valid"
        } else {
            "invalid"
        },
        report.leaves_after.unwrap_or(0),
        report.tree_level_after.unwrap_or(0),
        report.data_chunks_copied.unwrap_or(0),
        plural(report.data_chunks_copied.unwrap_or(0))
    )
}

fn write_snapshot_counts(
    out: &mut dyn Write,
    name: &str,
    report: &shared_repair::RepairReport,
    as_table: bool,
) -> io::Result<()> {
    if as_table && !report.per_snapshot.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL);
        table.set_header([
            "snapshot",
            "kept",
            "lost",
            "lost in unreadable ranges",
            "reads the origin now at",
        ]);
        for t in &report.per_snapshot {
            table.add_row([
                t.id.to_string(),
                t.kept.to_string(),
                t.lost.to_string(),
                if t.lost_unknown { "unknown" } else { "none" }.to_string(),
                snapshot_ranges_text(t),
            ]);
        }
        writeln!(out, "{table}")?;
        return write_unknown_read_through(out, name, report);
    }
    for t in &report.per_snapshot {
        writeln!(
            out,
            "{name}: snapshot {}: kept {} record{}, lost {}{}{}",
            t.id,
            t.kept,
            plural(t.kept),
            t.lost,
            if t.lost_unknown {
                " (and an unknown number in unreadable ranges)"
            } else {
                ""
            },
            if t.read_through.is_empty() {
                String::new()
            } else {
                format!("; reads the origin now at {}", snapshot_ranges_text(t))
            }
        )?;
    }
    write_unknown_read_through(out, name, report)
}

/// The origin ranges one snapshot lost; records lost in unreadable ranges are
/// said apart (the closing `lost:` line names those ranges), not as "more not
/// listed".
fn snapshot_ranges_text(t: &shared_repair::SnapshotTally) -> String {
    ranges_text(&t.read_through, t.read_through_complete || t.lost_unknown)
}

/// The origin ranges whose records could not be read, where any snapshot may
/// read the origin now.
fn write_unknown_read_through(
    out: &mut dyn Write,
    name: &str,
    report: &shared_repair::RepairReport,
) -> io::Result<()> {
    if !report.read_through_unknown.is_empty() {
        writeln!(
            out,
            "{name}: lost: every snapshot may read the origin now at {}, where records could not be read",
            ranges_text(&report.read_through_unknown, true)
        )?;
    }
    Ok(())
}

fn lost_range_text(lost: &shared_repair::LostRange) -> String {
    let place = match lost.block {
        Some(chunk) if lost.level == 0 => format!("leaf at chunk {chunk}"),
        Some(chunk) => format!("level-{} node at chunk {chunk}", lost.level),
        None => "the whole tree".to_string(),
    };
    let mut text = format!("{} ({place}): {}", lost.range.text(), lost.problem);
    if lost.recovered_leaves > 0 {
        text.push_str(&format!(
            "; the scan recovered {} leaves with {} records",
            lost.recovered_leaves, lost.recovered_records
        ));
    }
    if lost.unresolved == [lost.range] {
        text.push_str("; no leaf found in it: its records are lost");
    } else if !lost.unresolved.is_empty() {
        let ranges: Vec<String> = lost.unresolved.iter().map(|r| r.text()).collect();
        text.push_str(&format!("; no leaf found for {}", ranges.join(", ")));
    }
    text
}

fn unknown_text(report: &shared_repair::RepairReport) -> String {
    match (report.records_unknown, report.unknown_records_at_most) {
        (false, _) => "no records lost in unreadable ranges".to_string(),
        (true, Some(n)) => format!(
            "records in unreadable ranges: unknown, at most {n} (the chunks in use that nothing found references)"
        ),
        (true, None) => "records in unreadable ranges: unknown".to_string(),
    }
}
