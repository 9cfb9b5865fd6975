//! cowmigrate: re-chunks a persistent or legacy COW store, or converts it
//! between the persistent and legacy kinds, so that the snapshot reads back
//! byte-identical.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgGroup, Parser, ValueEnum};
use cowfmt::device::{Access, Device};
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::persistent::migrate::{
    self, MigrateMode, MigrateOptions, MigratePlan, MigrateReport, StoreShape,
};
use cowfmt::persistent::repair::JobError;
use cowfmt::persistent::table::{snapshot_table_line, TableDevices};
use cowfmt::units::human_bytes;
use cowfmt::{Severity, StoreKind, SECTOR_BYTES};
use cowtools::args;
use cowtools::exit::{self, StoreProblems};
use cowtools::{open, progress};

const TOOL: &str = "cowmigrate";

const EXAMPLES: &str = "\
EXAMPLES:
  Re-chunk to 2 KiB chunks (each record becomes two):
    cowmigrate -i cow.img -o cow-2k.img --chunk-size 2k
  Re-chunk to 16 KiB chunks; the pieces that never changed come from the origin:
    cowmigrate -i cow.img -o cow-16k.img --chunk-size 16k --origin /dev/vg/data
  Make a store safe for a pre-2.6.29 kernel (and print its table line):
    cowmigrate -i cow.img -o cow-legacy.img --to legacy --origin /dev/vg/data
  The migrated store needs more room than the input:
    cowmigrate -i cow.img -o big.img --chunk-size 64k --origin /dev/sdb --size 1G

The input is only read and must be undamaged (repair it with cowrepair first).
Exit codes: 0 migrated, 1 the input has problems, 2 usage or I/O error.";

/// The kinds a store can be converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ToKind {
    /// The kernel's "SnAp" v1 store as current kernels use it.
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits and made safe to reload there.
    Legacy,
}

impl From<ToKind> for StoreKind {
    fn from(kind: ToKind) -> Self {
        match kind {
            ToKind::Persistent => StoreKind::Persistent,
            ToKind::Legacy => StoreKind::Legacy,
        }
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Plain lines.
    Text,
    /// One JSON document (format_version 1).
    Json,
}

/// Command line of cowmigrate.
#[derive(Debug, Parser)]
#[command(name = "cowmigrate", version, about = "Re-chunk or convert a dm-snapshot COW store", after_help = EXAMPLES)]
#[command(group(ArgGroup::new("target").required(true).multiple(true).args(["chunk_size", "to"])))]
struct Cli {
    /// The store to migrate (image file or block device); opened read-only.
    #[arg(short, long, value_name = "IN")]
    input: PathBuf,

    /// The new store: an image file (created sparse) or an empty block device.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,

    /// The new chunk size (a power of two: 4k, 8s...).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_chunk_size)]
    chunk_size: Option<u32>,

    /// The kind to convert to.
    #[arg(long, value_enum)]
    to: Option<ToKind>,

    /// The origin device: needed for a larger chunk size; fills the table line.
    #[arg(long, value_name = "DEV")]
    origin: Option<PathBuf>,

    /// The kind the input is (persistent by default; legacy only changes labels).
    #[arg(long, value_enum)]
    kind: Option<ToKind>,

    /// Size of a new output image (4k, 64M, 1G, 8s...); the input's size by default.
    #[arg(short, long, value_name = "SIZE", value_parser = args::parse_size)]
    size: Option<u64>,

    /// Overwrite an existing output file, or a device holding data.
    #[arg(short, long)]
    force: bool,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,

    /// No progress bar and no text report; JSON is still printed.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let (store, kind) = open::open_snap_store(&cli.input, cli.kind.map(StoreKind::from), TOOL)?;
    let origin = match &cli.origin {
        Some(path) => Some(Device::open(path, Access::ReadOnly)?),
        None => None,
    };
    let options = MigrateOptions {
        from_kind: kind,
        to_kind: cli.to.map(StoreKind::from),
        chunk_size: cli.chunk_size,
    };
    let plan = migrate::plan(&store, &options, origin.as_ref().map(Device::size_bytes))
        .map_err(job_error)?;
    if plan.needs_origin && origin.is_none() {
        bail!(
            "{}: a larger chunk size ({} -> {} sectors) needs --origin DEV: the pieces of each new chunk that never changed are read from the origin",
            cli.input.display(),
            plan.from().chunk_size,
            plan.to_chunk_size
        );
    }
    let size = cli.size.unwrap_or(store.device().size_bytes());
    if size < plan.needed_bytes {
        bail!(
            "{}: the migrated store needs at least {} bytes ({}), but the output would have {size}; give a larger --size, e.g. --size {}",
            cli.output.display(),
            plan.needed_bytes,
            human_bytes(plan.needed_bytes),
            plan.needed_bytes
        );
    }
    let prepared = migrate::open_output(&migrate::OutputRequest {
        path: &cli.output,
        size,
        size_given: cli.size.is_some(),
        force: cli.force,
        inputs: &[&cli.input],
    })?;
    if prepared.device.size_bytes() < plan.needed_bytes {
        bail!(
            "{}: the device has {} bytes, but the migrated store needs at least {}",
            cli.output.display(),
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
    verify(cli, &plan)?;
    render(cli, &report, origin.as_ref())?;
    Ok(exit::EXIT_OK)
}

/// Checks the output as its kind; a migration never leaves an error behind.
fn verify(cli: &Cli, plan: &MigratePlan) -> anyhow::Result<()> {
    let device = Device::open(&cli.output, Access::ReadOnly)?;
    let options = CheckOptions {
        kind: plan.to_kind,
        ..CheckOptions::default()
    };
    let report = check(&device, &options)?;
    match report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        Some(first) => Err(StoreProblems(format!(
            "{}: the migrated store has a problem: {}",
            cli.output.display(),
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

fn render(cli: &Cli, report: &MigrateReport, origin: Option<&Device>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let origin_path = cli.origin.as_ref().map(|p| p.display().to_string());
    let devices = TableDevices {
        origin: origin_path.as_deref(),
        origin_sectors: origin.map(|d| d.size_bytes() / SECTOR_BYTES),
        cow: &report.output,
    };
    let table = snapshot_table_line(&devices, report.to.chunk_size, report.to.kind);
    match cli.format {
        ReportFormat::Json => {
            let json = JsonReport { report, table };
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        ReportFormat::Text if cli.quiet => {}
        ReportFormat::Text => write_text(&mut out, report, &table)?,
    }
    out.flush()?;
    Ok(())
}

/// The JSON document: the library's report plus the table line.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a MigrateReport,
    table: String,
}

fn write_text(out: &mut dyn Write, report: &MigrateReport, table: &str) -> io::Result<()> {
    let name = &report.output;
    let how = match report.mode {
        MigrateMode::Copy => "copied in place".to_string(),
        MigrateMode::Split => format!("each chunk split into {}", report.factor),
        MigrateMode::Merge => format!("every {} chunks merged into one", report.factor),
    };
    writeln!(
        out,
        "{name}: migrated from {} ({}): {how}",
        report.input,
        shape(&report.from)
    )?;
    writeln!(out, "{name}: now {}", shape(&report.to))?;
    if report.pieces_from_origin > 0 {
        writeln!(
            out,
            "{name}: {} unchanged pieces read from the origin",
            report.pieces_from_origin
        )?;
    }
    if report.pieces_past_origin > 0 {
        writeln!(
            out,
            "{name}: {} pieces past the end of the origin left out",
            report.pieces_past_origin
        )?;
    }
    if let Some(relocation) = &report.relocation {
        writeln!(
            out,
            "{name}: moved data chunk {} to {} (area {} record {}), so that a pre-2.6.29 kernel's next allocation does not land on metadata chunk {}",
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
            "{name}: zeroed {} stale area locations",
            report.stale_areas_zeroed
        )?;
    }
    writeln!(
        out,
        "{name}: space used: before {}, after {}",
        space(&report.from),
        space(&report.to)
    )?;
    writeln!(out, "{name}: table: {table}")
}

fn shape(shape: &StoreShape) -> String {
    format!(
        "{} store, chunk {} sectors, {} record{}{}",
        shape.kind,
        shape.chunk_size,
        shape.records,
        if shape.records == 1 { "" } else { "s" },
        if shape.valid { "" } else { ", invalid" }
    )
}

fn space(shape: &StoreShape) -> String {
    format!(
        "{} ({} of {})",
        shape.usage.status_text(true),
        human_bytes(shape.usage.sectors_allocated * SECTOR_BYTES),
        human_bytes(shape.usage.total_sectors * SECTOR_BYTES)
    )
}
