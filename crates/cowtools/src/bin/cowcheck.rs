//! cowcheck: verifies every invariant of a persistent, legacy or shared COW
//! store and reports each problem with its location; the exit code says whether
//! any was found.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use cowfmt::device::{Access, Device};
use cowfmt::output::Marker;
use cowfmt::persistent::check::{check, CheckOptions, CheckReport, CheckSummary};
use cowfmt::persistent::Header;
use cowfmt::shared::check as shared_check;
use cowfmt::shared::SharedHeader;
use cowfmt::{Finding, Severity, StoreKind};
use cowtools::args::{self, KindArg};
use cowtools::exit::StoreProblems;
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
  A shared store (found by its magic; --kind shared insists on it):
    cowcheck --origin /dev/vg/data shared.img

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
    let report = match plan(cli, &device)? {
        Plan::Snap(options) => Report::Snap(check(&device, &options)?),
        Plan::Shared(options) => Report::Shared(shared_check::check(&device, &options)?),
    };
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

/// Which checker runs, with its options.
enum Plan {
    /// persistent::check for a SnAp store (persistent or legacy).
    Snap(CheckOptions),
    /// shared::check for a shared store.
    Shared(shared_check::CheckOptions),
}

/// The checker and its options; refuses kinds this version cannot check,
/// and an unfinished output (exit 1, saying whether a job was cut short or
/// an in-place repair must be run again).
fn plan(cli: &Cli, device: &Device) -> anyhow::Result<Plan> {
    if let Some(marker) = Marker::read(device)? {
        let text = format!("{}: {}", device.path().display(), marker.describe());
        return Err(StoreProblems(text).into());
    }
    let kind = match cli.kind.map(StoreKind::from) {
        Some(kind) if !kind.is_snap_v1() && kind != StoreKind::Shared => {
            return Err(open::unsupported(kind, &cli.target, TOOL))
        }
        Some(kind) => kind,
        None => detected_kind(device)?,
    };
    let origin_bytes = match &cli.origin {
        Some(origin) => Some(Device::open(origin, Access::ReadOnly)?.size_bytes()),
        None => cli.origin_size,
    };
    let kind_forced = cli.kind.is_some();
    if kind == StoreKind::Shared {
        return Ok(Plan::Shared(shared_check::CheckOptions {
            kind_forced,
            origin_bytes,
            header_only: cli.super_block_only,
            chunk_size_fallback: cli.chunk_size,
        }));
    }
    Ok(Plan::Snap(CheckOptions {
        kind,
        kind_forced,
        origin_bytes,
        header_only: cli.super_block_only,
        chunk_size_fallback: cli.chunk_size,
    }))
}

/// The kind by magic: `Shared` for a shared store, an error for kinds this
/// version cannot check, `Persistent` otherwise, leaving every other header
/// problem to the checker.
fn detected_kind(device: &Device) -> anyhow::Result<StoreKind> {
    let mut magic = [0u8; 4];
    if device.read_at(&mut magic, 0, String::new).is_ok() {
        if let Ok(kind) = cowfmt::kind::detect(&magic) {
            if kind == StoreKind::Shared {
                return Ok(kind);
            }
            if !kind.is_snap_v1() {
                return Err(open::unsupported(kind, device.path(), TOOL));
            }
        }
    }
    Ok(StoreKind::Persistent)
}

/// A report of either checker; text and JSON are rendered from it alike.
enum Report {
    Snap(CheckReport),
    Shared(shared_check::CheckReport),
}

impl Report {
    fn kind(&self) -> StoreKind {
        match self {
            Report::Snap(report) => report.kind,
            Report::Shared(report) => report.kind,
        }
    }

    fn findings(&self) -> &[Finding] {
        match self {
            Report::Snap(report) => &report.findings,
            Report::Shared(report) => &report.findings,
        }
    }

    fn is_clean(&self) -> bool {
        self.findings().is_empty()
    }

    /// Information that is not a finding (a torn last journal transaction).
    fn notes(&self) -> &[String] {
        match self {
            Report::Snap(_) => &[],
            Report::Shared(report) => &report.notes,
        }
    }

    fn has_errors(&self) -> bool {
        self.findings()
            .iter()
            .any(|f| f.severity == Severity::Error)
    }
}

fn exit_code(report: &Report, ignore_non_fatal: bool) -> u8 {
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
    report: &Report,
    header_only: bool,
) -> io::Result<()> {
    let name = file.display();
    for finding in report.findings() {
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
    for note in report.notes() {
        writeln!(out, "{name}: info: {note}")?;
    }
    writeln!(
        out,
        "{name}: {}: {}",
        describe(report, header_only),
        verdict(report)
    )
}

/// What was checked, by kind.
fn describe(report: &Report, header_only: bool) -> String {
    match report {
        Report::Snap(report) => describe_snap(report, header_only),
        Report::Shared(report) => describe_shared(report, header_only),
    }
}

/// Kind, chunk size, records and areas, status.
fn describe_snap(report: &CheckReport, header_only: bool) -> String {
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

/// Chunk size, snapshots, records, tree and space.
fn describe_shared(report: &shared_check::CheckReport, header_only: bool) -> String {
    let s = &report.summary;
    let mut parts = vec![format!("{} store", report.kind)];
    if let Some(chunk) = s.chunk_size {
        parts.push(format!("chunk {chunk} sectors"));
    }
    parts.push(format!(
        "{} snapshot{}",
        s.snapshots,
        plural(u64::from(s.snapshots))
    ));
    if header_only {
        parts.push("header only".to_string());
    } else if s.nodes + s.leaves == 0 {
        parts.push("tree not read".to_string());
    } else {
        parts.push(format!(
            "{} record{} of {} origin chunk{} in {} lea{} and {} node{} (tree level {})",
            s.records,
            plural(s.records),
            s.origin_chunks,
            plural(s.origin_chunks),
            s.leaves,
            if s.leaves == 1 { "f" } else { "ves" },
            s.nodes,
            plural(s.nodes),
            s.tree_level
        ));
    }
    if let (Some(used), Some(chunks)) = (s.used_chunks, s.device_chunks) {
        parts.push(format!("{used}/{chunks} chunks used"));
    }
    parts.join(", ")
}

/// `clean`, or the counts of errors and warnings.
fn verdict(report: &Report) -> String {
    let (errors, warnings) = counts(report.findings());
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
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    summary: JsonSummary<'a>,
}

/// The header fields as stored, the magic in hex as cowdump shows it.
#[derive(Serialize)]
#[serde(untagged)]
enum JsonHeader {
    Snap {
        magic: String,
        valid: u32,
        version: u32,
        chunk_size: u32,
    },
    Shared {
        magic: String,
        valid: u32,
        version: u32,
        chunk_size: u32,
        root_tree_chunk: u64,
        snapmask: u64,
        tree_level: u32,
        nr_journal_chunks: u32,
    },
}

impl From<&Header> for JsonHeader {
    fn from(header: &Header) -> Self {
        JsonHeader::Snap {
            magic: format!("{:#010x}", header.magic),
            valid: header.valid,
            version: header.version,
            chunk_size: header.chunk_size,
        }
    }
}

impl From<&SharedHeader> for JsonHeader {
    fn from(header: &SharedHeader) -> Self {
        JsonHeader::Shared {
            magic: format!("{:#010x}", header.magic),
            valid: header.valid,
            version: header.version,
            chunk_size: header.chunk_size,
            root_tree_chunk: header.root_tree_chunk,
            snapmask: header.snapmask,
            tree_level: header.tree_level,
            nr_journal_chunks: header.nr_journal_chunks,
        }
    }
}

/// The checker's figures, by kind.
#[derive(Serialize)]
#[serde(untagged)]
enum Figures<'a> {
    Snap(&'a CheckSummary),
    Shared(&'a shared_check::CheckSummary),
}

/// The checker's figures with the finding counts.
#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(flatten)]
    figures: Figures<'a>,
    errors: u64,
    warnings: u64,
}

fn write_json(out: &mut dyn Write, file: &Path, report: &Report) -> anyhow::Result<()> {
    let (errors, warnings) = counts(report.findings());
    let (header, figures) = match report {
        Report::Snap(r) => (
            r.header.as_ref().map(JsonHeader::from),
            Figures::Snap(&r.summary),
        ),
        Report::Shared(r) => (
            Some(JsonHeader::from(&r.header)),
            Figures::Shared(&r.summary),
        ),
    };
    let json = JsonReport {
        format_version: REPORT_FORMAT_VERSION,
        file: file.display().to_string(),
        kind: report.kind(),
        clean: report.is_clean(),
        header,
        findings: report.findings(),
        notes: report.notes(),
        summary: JsonSummary {
            figures,
            errors,
            warnings,
        },
    };
    let text = serde_json::to_string_pretty(&json)?;
    writeln!(out, "{text}")?;
    Ok(())
}
