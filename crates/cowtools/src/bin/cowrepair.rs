//! cowrepair: salvages a damaged persistent or legacy COW store into a new,
//! consistent one, and reports every record it dropped and why.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Parser, ValueEnum};
use comfy_table::{presets::UTF8_FULL, Table};
use cowfmt::device::{Access, Device};
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::persistent::migrate::{open_output, OutputRequest};
use cowfmt::persistent::repair::{self, JobError, RepairOptions, RepairReport, Salvage};
use cowfmt::persistent::table::{snapshot_table_line, TableDevices};
use cowfmt::units::human_bytes;
use cowfmt::{Severity, StoreKind};
use cowtools::args;
use cowtools::exit::{self, StoreProblems};
use cowtools::progress;

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
  Machine-readable report:
    cowrepair -i cow.img -o fixed.img --format json

Every area location on the device is scanned, so records after a zeroed or
overwritten area, or after a premature terminator, are recovered when credible.
Exit codes: 0 the output was written (the report lists any record dropped),
1 nothing could be salvaged or the damage stopped the job, 2 usage or I/O error.";

/// The kinds cowrepair salvages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RepairKind {
    /// The kernel's "SnAp" v1 store (dm-snapshot `P`).
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits and made safe to reload there.
    Legacy,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Plain lines: one per dropped record, then a summary.
    Text,
    /// The dropped records as a table, then the summary.
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

    /// Where --in-place copies the input first (must be new or empty).
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

    /// persistent, or legacy to also hold the output to the pre-2.6.29 limits.
    #[arg(long, value_enum)]
    kind: Option<RepairKind>,

    /// Mark the output valid even if the input was invalidated (its data may be incomplete).
    #[arg(long)]
    mark_valid: bool,

    /// Salvage only the areas the kernel reads (leave out records beyond them,
    /// e.g. when the device held an earlier snapshot).
    #[arg(long)]
    kernel_areas_only: bool,

    /// Overwrite an existing output (or backup) file, or a device holding data.
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
    let options = options(cli)?;
    let input = Device::open(&cli.input, Access::ReadOnly)?;
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
    let prepared = open_output(&OutputRequest {
        path: output_path,
        size,
        size_given: cli.size.is_some(),
        force: cli.force,
        inputs: &[&cli.input],
    })?;
    let report = write(cli, salvage, &input, prepared.device, prepared.zeroed)?;
    finish(cli, &report, output_path)
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

fn options(cli: &Cli) -> anyhow::Result<RepairOptions> {
    let kind = match cli.kind {
        Some(RepairKind::Legacy) => StoreKind::Legacy,
        Some(RepairKind::Persistent) | None => StoreKind::Persistent,
    };
    let origin_bytes = match &cli.origin {
        Some(origin) => Some(Device::open(origin, Access::ReadOnly)?.size_bytes()),
        None => cli.origin_size,
    };
    Ok(RepairOptions {
        kind,
        chunk_size: cli.chunk_size,
        origin_bytes,
        mark_valid: cli.mark_valid,
        kernel_areas_only: cli.kernel_areas_only,
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
/// from the backup.
fn in_place(cli: &Cli, options: &RepairOptions, input: Device) -> anyhow::Result<u8> {
    let backup_path = cli
        .backup
        .as_deref()
        .ok_or_else(|| anyhow!("--in-place needs --backup FILE"))?;
    let prepared = open_output(&OutputRequest {
        path: backup_path,
        size: input.size_bytes(),
        size_given: false,
        force: cli.force,
        inputs: &[&cli.input],
    })?;
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
    drop(prepared);
    let backup = Device::open(backup_path, Access::ReadOnly)?;
    let bar = progress::bar(total, "verifying", cli.quiet);
    repair::verify_copy(&input, &backup, &mut |done, _| bar.set_position(done))?;
    bar.finish_and_clear();
    drop(input);
    let salvage = analyze(cli, &backup, options)?;
    refuse_if_nothing_salvaged(cli, &salvage)?;
    let output = Device::open(&cli.input, Access::ReadWrite)?;
    if output.size_bytes() < salvage.needed_bytes() {
        bail!(
            "{}: the salvaged store needs at least {} bytes, more than the device holds",
            cli.input.display(),
            salvage.needed_bytes()
        );
    }
    let mut report = write(cli, salvage, &backup, output, false)?;
    report.notes.push(format!(
        "the records and data were read from the verified backup {}",
        backup_path.display()
    ));
    report.input = cli.input.display().to_string();
    finish(cli, &report, &cli.input)
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
    let errors: Vec<_> = checked
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    render(cli, report, Some(output))?;
    if let Some(first) = errors.first() {
        return Err(StoreProblems(format!(
            "{}: the repaired store still has {} problem{}: {}",
            output.display(),
            errors.len(),
            plural(errors.len() as u64),
            first.message
        ))
        .into());
    }
    Ok(exit_code(report))
}

fn exit_code(report: &RepairReport) -> u8 {
    if report.nothing_salvaged() {
        exit::EXIT_PROBLEMS
    } else {
        exit::EXIT_OK
    }
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
    let Some(output) = output else {
        return writeln!(out, "{name}: nothing written (dry run)");
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
