//! cowcheck: verifies every invariant of a persistent, legacy or shared COW
//! store and reports each problem with its location; the exit code says whether
//! any was found.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cowfmt::device::{Access, Device};
use cowfmt::output::Marker;
use cowfmt::persistent::check::{check_with_progress, CheckOptions, CheckReport, CheckSummary};
use cowfmt::persistent::Header;
use cowfmt::shared::check as shared_check;
use cowfmt::shared::SharedHeader;
use cowfmt::{Finding, Severity, StoreKind};
use cowtools::cli::cowcheck::{Cli, ReportFormat};
use cowtools::exit::StoreProblems;
use cowtools::{exit, open, progress};
use serde::Serialize;

const TOOL: &str = "cowcheck";

/// The version of the JSON report schema.
const REPORT_FORMAT_VERSION: u32 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    open::warn_if_in_use(TOOL, &cli.target);
    let device = Device::open(&cli.target, Access::ReadOnly)?;
    let report = checked(cli, &device, plan(cli, &device)?)?;
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

/// Runs the check of `plan`, with a progress bar on a terminal.
fn checked(cli: &Cli, device: &Device, plan: Plan) -> anyhow::Result<Report> {
    Ok(match plan {
        Plan::Snap(options) => Report::Snap(progress::show(
            progress::bar(0, "checking", cli.quiet),
            |p| check_with_progress(device, &options, p),
        )?),
        Plan::Shared(options) => {
            let report = progress::show(
                progress::counter("checking", "tree blocks", cli.quiet),
                |p| shared_check::check_with_progress(device, &options, p),
            )?;
            let after = after_replay(cli, &report, &options)?;
            Report::Shared(report, after)
        }
    })
}

/// The findings of the state a replay of the journal would leave, read
/// through the replay overlay (nothing is written), when committed
/// transactions wait for replay; empty otherwise.
fn after_replay(
    cli: &Cli,
    report: &shared_check::CheckReport,
    options: &shared_check::CheckOptions,
) -> anyhow::Result<Vec<Finding>> {
    let waiting = report
        .summary
        .journal
        .as_ref()
        .is_some_and(|j| j.state == shared_check::JournalState::NeedsReplay);
    if !waiting {
        return Ok(Vec::new());
    }
    let device = Device::open(&cli.target, Access::ReadOnly)?;
    let repair = cowfmt::shared::repair::RepairOptions::default();
    let (view, _) = cowfmt::shared::repair::read_through_journal(device, &repair)?;
    Ok(shared_check::check(&view, options)?.findings)
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
    /// The report, and the findings of the state a replay would leave.
    Shared(shared_check::CheckReport, Vec<Finding>),
}

impl Report {
    fn kind(&self) -> StoreKind {
        match self {
            Report::Snap(report) => report.kind,
            Report::Shared(report, _) => report.kind,
        }
    }

    fn findings(&self) -> &[Finding] {
        match self {
            Report::Snap(report) => &report.findings,
            Report::Shared(report, _) => &report.findings,
        }
    }

    fn is_clean(&self) -> bool {
        self.findings().is_empty()
    }

    /// Information that is not a finding (a torn last journal transaction).
    fn notes(&self) -> &[String] {
        match self {
            Report::Snap(_) => &[],
            Report::Shared(report, _) => &report.notes,
        }
    }

    /// The findings of the state a replay of the journal would leave.
    fn after_replay(&self) -> &[Finding] {
        match self {
            Report::Snap(_) => &[],
            Report::Shared(_, after) => after,
        }
    }

    fn has_errors(&self) -> bool {
        self.findings()
            .iter()
            .chain(self.after_replay())
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
    let lines = report
        .findings()
        .iter()
        .map(|f| ("", f))
        .chain(report.after_replay().iter().map(|f| ("after replay: ", f)));
    for (when, finding) in lines {
        let severity = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(
            out,
            "{name}: {when}{severity}: {}: {}",
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
        Report::Shared(report, _) => describe_shared(report, header_only),
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
    let after = report.after_replay().len() as u64;
    if after > 0 {
        parts.push(format!("{after} finding{} after replay", plural(after)));
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
    /// Findings of the state a replay of the journal would leave.
    #[serde(skip_serializing_if = "<[Finding]>::is_empty")]
    after_replay: &'a [Finding],
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
        Report::Shared(r, _) => (
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
        after_replay: report.after_replay(),
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
