//! The check report of any kind as cowcheck prints it: one line per finding
//! and a summary line, or one JSON document (format_version 1).

use std::io::{self, Write};
use std::path::Path;

use cowfmt::store::check::CheckReport;
use cowfmt::store::reports::clone::CloneCheckReport;
use cowfmt::store::reports::persistent::{CheckReport as SnapReport, CheckSummary, Header};
use cowfmt::store::reports::shared::{self as shared_check, SharedHeader};
use cowfmt::{Finding, Severity, StoreKind};
use serde::Serialize;

/// The version of the JSON report schema.
const REPORT_FORMAT_VERSION: u32 = 1;

/// Writes the findings, the notes and the summary line of `report` on `file`.
pub fn write_text(
    out: &mut dyn Write,
    file: &Path,
    report: &CheckReport,
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
fn describe(report: &CheckReport, header_only: bool) -> String {
    match report {
        CheckReport::Snap(report) => describe_snap(report, header_only),
        CheckReport::Shared { report, .. } => describe_shared(report, header_only),
        CheckReport::Clone(_) if header_only => {
            format!("{} store, superblock only", StoreKind::Clone)
        }
        CheckReport::Clone(report) => describe_clone(report),
    }
}

/// Region size, hydrated and lost regions, the figures of the kernel's
/// status line.
fn describe_clone(report: &CloneCheckReport) -> String {
    let mut parts = vec![format!("{} store", StoreKind::Clone)];
    match &report.status {
        Some(status) => {
            parts.push(format!("region {} sectors", status.region_sectors));
            parts.push(format!(
                "{}/{} regions hydrated",
                status.hydrated_regions, status.nr_regions
            ));
            parts.push(format!("{} lost", report.lost_regions));
            parts.push(format!("status {}", status.line()));
        }
        None => parts.push("superblock or space map unreadable".to_string()),
    }
    parts.join(", ")
}

/// Kind, chunk size, records and areas, status.
fn describe_snap(report: &SnapReport, header_only: bool) -> String {
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
fn verdict(report: &CheckReport) -> String {
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

/// The header fields as stored, the magic in hex as cowdump shows it; a
/// shared header's own fields follow.
#[derive(Serialize)]
struct JsonHeader {
    magic: String,
    valid: u32,
    version: u32,
    chunk_size: u32,
    #[serde(flatten)]
    shared: Option<JsonSharedFields>,
}

/// The fields only a shared header has.
#[derive(Serialize)]
struct JsonSharedFields {
    root_tree_chunk: u64,
    snapmask: u64,
    tree_level: u32,
    nr_journal_chunks: u32,
}

impl From<&Header> for JsonHeader {
    fn from(header: &Header) -> Self {
        JsonHeader {
            magic: format!("{:#010x}", header.magic),
            valid: header.valid,
            version: header.version,
            chunk_size: header.chunk_size,
            shared: None,
        }
    }
}

impl From<&SharedHeader> for JsonHeader {
    fn from(header: &SharedHeader) -> Self {
        JsonHeader {
            shared: Some(JsonSharedFields {
                root_tree_chunk: header.root_tree_chunk,
                snapmask: header.snapmask,
                tree_level: header.tree_level,
                nr_journal_chunks: header.nr_journal_chunks,
            }),
            magic: format!("{:#010x}", header.magic),
            valid: header.valid,
            version: header.version,
            chunk_size: header.chunk_size,
        }
    }
}

/// The checker's figures, by kind.
#[derive(Serialize)]
#[serde(untagged)]
enum Figures<'a> {
    Snap(&'a CheckSummary),
    Shared(&'a shared_check::CheckSummary),
    Clone(JsonCloneFigures),
}

/// The figures of a clone check: the regions, and the kernel's status line
/// with its metadata figures (absent when the superblock or the space map
/// could not be read).
#[derive(Serialize)]
struct JsonCloneFigures {
    region_sectors: Option<u64>,
    nr_regions: Option<u64>,
    hydrated_regions: Option<u64>,
    lost_regions: u64,
    metadata_used: Option<u64>,
    metadata_total: Option<u64>,
    status: Option<String>,
}

impl From<&CloneCheckReport> for JsonCloneFigures {
    fn from(report: &CloneCheckReport) -> Self {
        let status = report.status.as_ref();
        JsonCloneFigures {
            region_sectors: status.map(|s| s.region_sectors),
            nr_regions: status.map(|s| s.nr_regions),
            hydrated_regions: status.map(|s| s.hydrated_regions),
            lost_regions: report.lost_regions,
            metadata_used: status.map(|s| s.metadata_used),
            metadata_total: status.map(|s| s.metadata_total),
            status: status.map(|s| s.line()),
        }
    }
}

/// The checker's figures with the finding counts.
#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(flatten)]
    figures: Figures<'a>,
    errors: u64,
    warnings: u64,
}

/// Writes `report` on `file` as one pretty-printed JSON document.
pub fn write_json(out: &mut dyn Write, file: &Path, report: &CheckReport) -> anyhow::Result<()> {
    let (errors, warnings) = counts(report.findings());
    let (header, figures) = match report {
        CheckReport::Snap(r) => (
            r.header.as_ref().map(JsonHeader::from),
            Figures::Snap(&r.summary),
        ),
        CheckReport::Shared { report: r, .. } => (
            Some(JsonHeader::from(&r.header)),
            Figures::Shared(&r.summary),
        ),
        CheckReport::Clone(r) => (None, Figures::Clone(JsonCloneFigures::from(r))),
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
