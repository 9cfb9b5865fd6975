//! cowcheck: verifies every invariant of a persistent or legacy COW store and
//! reports each problem with its location; the exit code says whether any was
//! found.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use cowfmt::device::{Access, Device};
use cowfmt::persistent::check::{check, CheckOptions, CheckReport, CheckSummary};
use cowfmt::persistent::Header;
use cowfmt::{Finding, Severity, StoreKind};
use cowtools::args::{self, KindArg};
use cowtools::{exit, open};
use serde::Serialize;

const TOOL: &str = "cowcheck";

/// The version of the JSON report schema.
const REPORT_FORMAT_VERSION: u32 = 1;

const EXAMPLES: &str = "\
EXAMPLES:
  Check a store (exit 0 clean, 1 problems found, 2 could not check):
    cowcheck cow.img
  Also check every origin chunk number against the origin's size:
    cowcheck --origin /dev/vg/data /dev/vg/data-cow
  Machine-readable report:
    cowcheck --format json cow.img
  Only the exit code, ignoring warnings (holes after a crash, invalidation...):
    cowcheck -q --ignore-non-fatal cow.img
  Hold a store to the pre-2.6.29 limits:
    cowcheck --kind legacy cow.img

Findings are printed one per line as 'FILE: error|warning: CODE: message', then a
one-line summary. With --kind, a header whose magic is wrong is reported as a
bad-magic finding (exit 1) instead of 'not a store' (exit 2).";

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// One line per finding, then a summary line.
    Text,
    /// One JSON document (format_version 1).
    Json,
}

/// Command line of cowcheck.
#[derive(Debug, Parser)]
#[command(name = "cowcheck", version, about = "Check a dm-snapshot COW store", after_help = EXAMPLES)]
struct Cli {
    /// The image file or block device to check.
    #[arg(value_name = "TARGET")]
    target: PathBuf,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,

    /// The origin's size (bytes, or with a suffix: 64M, 1G, 8s), to check old chunks.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size, conflicts_with = "origin")]
    origin_size: Option<u64>,

    /// The origin device, to take its size from.
    #[arg(long, value_name = "DEV")]
    origin: Option<PathBuf>,

    /// Check only the header (chunk 0).
    #[arg(long)]
    super_block_only: bool,

    /// Print nothing; only the exit code tells.
    #[arg(short, long)]
    quiet: bool,

    /// Insist on a store kind; legacy also checks the pre-2.6.29 limits.
    #[arg(long, value_enum)]
    kind: Option<KindArg>,

    /// Chunk size to read the areas with when the header's is unusable (4k, 8s...).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_chunk_size)]
    chunk_size: Option<u32>,

    /// Exit 0 when only warnings (non-fatal findings) were found.
    #[arg(long)]
    ignore_non_fatal: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let device = Device::open(&cli.target, Access::ReadOnly)?;
    let options = options(cli, &device)?;
    let report = check(&device, &options)?;
    if !cli.quiet {
        let mut out = io::stdout().lock();
        match cli.format {
            ReportFormat::Text => write_text(&mut out, &cli.target, &report, cli.super_block_only)?,
            ReportFormat::Json => write_json(&mut out, &cli.target, &report)?,
        }
        out.flush()?;
    }
    Ok(exit_code(&report, cli.ignore_non_fatal))
}

/// The check options; refuses kinds this version cannot check.
fn options(cli: &Cli, device: &Device) -> anyhow::Result<CheckOptions> {
    let kind = match cli.kind.map(StoreKind::from) {
        Some(kind) if !kind.is_snap_v1() => return Err(open::unsupported(kind, &cli.target, TOOL)),
        Some(kind) => kind,
        None => detected_kind(device)?,
    };
    let origin_bytes = match &cli.origin {
        Some(origin) => Some(Device::open(origin, Access::ReadOnly)?.size_bytes()),
        None => cli.origin_size,
    };
    Ok(CheckOptions {
        kind,
        kind_forced: cli.kind.is_some(),
        origin_bytes,
        header_only: cli.super_block_only,
        chunk_size_fallback: cli.chunk_size,
    })
}

/// The kind by magic when it is one this version cannot check; `Persistent`
/// otherwise, leaving every other header problem to the checker.
fn detected_kind(device: &Device) -> anyhow::Result<StoreKind> {
    let mut magic = [0u8; 4];
    if device.read_at(&mut magic, 0, String::new).is_ok() {
        if let Ok(kind) = cowfmt::kind::detect(&magic) {
            if !kind.is_snap_v1() {
                return Err(open::unsupported(kind, device.path(), TOOL));
            }
        }
    }
    Ok(StoreKind::Persistent)
}

fn exit_code(report: &CheckReport, ignore_non_fatal: bool) -> u8 {
    let fails = if ignore_non_fatal {
        report.has_errors()
    } else {
        !report.is_clean()
    };
    if fails {
        exit::EXIT_PROBLEMS
    } else {
        exit::EXIT_OK
    }
}

fn write_text(
    out: &mut dyn Write,
    file: &Path,
    report: &CheckReport,
    header_only: bool,
) -> io::Result<()> {
    let name = file.display();
    for finding in &report.findings {
        let severity = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(
            out,
            "{name}: {severity}: {}: {}",
            finding.code, finding.message
        )?;
    }
    writeln!(
        out,
        "{name}: {}: {}",
        describe(report, header_only),
        verdict(report)
    )
}

/// What was checked: kind, chunk size, records and areas, status.
fn describe(report: &CheckReport, header_only: bool) -> String {
    let summary = &report.summary;
    let mut parts = vec![format!("{} store", report.kind)];
    match summary.chunk_size {
        Some(chunk) => parts.push(format!("chunk {chunk} sectors")),
        None => parts.push("areas not read".to_string()),
    }
    if header_only {
        parts.push("header only".to_string());
    } else if summary.chunk_size.is_some() {
        parts.push(format!(
            "{} record{} in {} area{}",
            summary.records,
            plural(summary.records),
            summary.areas_read,
            plural(summary.areas_read)
        ));
    }
    if let Some(status) = &summary.status {
        parts.push(format!("status {status}"));
    }
    parts.join(", ")
}

/// `clean`, or the counts of errors and warnings.
fn verdict(report: &CheckReport) -> String {
    let (errors, warnings) = counts(&report.findings);
    if errors + warnings == 0 {
        return "clean".to_string();
    }
    let mut parts = Vec::new();
    if errors > 0 {
        parts.push(format!("{errors} error{}", plural(errors)));
    }
    if warnings > 0 {
        parts.push(format!("{warnings} warning{}", plural(warnings)));
    }
    parts.join(", ")
}

fn counts(findings: &[Finding]) -> (u64, u64) {
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count() as u64;
    (errors, findings.len() as u64 - errors)
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// The JSON report.
#[derive(Serialize)]
struct JsonReport<'a> {
    format_version: u32,
    file: String,
    kind: StoreKind,
    clean: bool,
    header: Option<JsonHeader>,
    findings: &'a [Finding],
    summary: JsonSummary<'a>,
}

/// The header fields as stored, the magic in hex as cowdump shows it.
#[derive(Serialize)]
struct JsonHeader {
    magic: String,
    valid: u32,
    version: u32,
    chunk_size: u32,
}

impl From<&Header> for JsonHeader {
    fn from(header: &Header) -> Self {
        JsonHeader {
            magic: format!("{:#010x}", header.magic),
            valid: header.valid,
            version: header.version,
            chunk_size: header.chunk_size,
        }
    }
}

/// The checker's figures with the finding counts.
#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(flatten)]
    figures: &'a CheckSummary,
    errors: u64,
    warnings: u64,
}

fn write_json(out: &mut dyn Write, file: &Path, report: &CheckReport) -> anyhow::Result<()> {
    let (errors, warnings) = counts(&report.findings);
    let json = JsonReport {
        format_version: REPORT_FORMAT_VERSION,
        file: file.display().to_string(),
        kind: report.kind,
        clean: report.is_clean(),
        header: report.header.as_ref().map(JsonHeader::from),
        findings: &report.findings,
        summary: JsonSummary {
            figures: &report.summary,
            errors,
            warnings,
        },
    };
    let text = serde_json::to_string_pretty(&json)?;
    writeln!(out, "{text}")?;
    Ok(())
}
