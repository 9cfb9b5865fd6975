//! Rendering of cowmigrate's reports: the text lines and JSON documents of a
//! classic migration, of a shared migration (import, export, re-chunk), of a
//! clone's region-size change, and of the raw export and the merge.

use std::io::{self, Write};
use std::path::Path;

use cowfmt::device::Device;
use cowfmt::store::migrate::CloneMigrateReport;
use cowfmt::store::reports::clone::CloneShape;
use cowfmt::store::reports::cross::{SharedJob, SharedMigrateReport, SharedShape, Side};
use cowfmt::store::reports::persistent::{
    snapshot_table_line, MigrateMode, MigrateReport, Relocation, StoreShape, TableDevices,
};
use cowfmt::store::reports::shared::{self, mask};
use cowfmt::units::human_bytes;
use cowfmt::{StoreKind, SECTOR_BYTES};

use crate::cli::cowmigrate::{Cli, ReportFormat};
use crate::open;
use crate::snapshot_data::RawReport;
use cowfmt::store::snapshot::Merged;

const TOOL: &str = "cowmigrate";

/// Prints the report of a persistent or legacy migration: text, or JSON with
/// the table line; nothing as text when quiet.
pub fn classic_report(
    cli: &Cli,
    report: &MigrateReport,
    origin: Option<&Device>,
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let origin_path = cli.origin.origin.as_ref().map(|p| p.display().to_string());
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
        ReportFormat::Text if cli.verbosity.quiet => {}
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
    write_classic_notes(out, name, report.into())?;
    writeln!(
        out,
        "{name}: space used: before {}, after {}",
        space(&report.from),
        space(&report.to)
    )?;
    writeln!(out, "{name}: table: {table}")
}

/// What a migration to a classic store did besides copying records: the
/// lines both the persistent and the shared reports print.
struct ClassicNotes<'a> {
    pieces_from_origin: u64,
    pieces_past_origin: u64,
    relocation: Option<&'a Relocation>,
    stale_areas_zeroed: u64,
}

/// `ClassicNotes` from the report of a classic or a shared migration: both
/// carry the same four fields.
macro_rules! classic_notes_from {
    ($($report:ty),*) => {$(
        impl<'a> From<&'a $report> for ClassicNotes<'a> {
            fn from(report: &'a $report) -> Self {
                ClassicNotes {
                    pieces_from_origin: report.pieces_from_origin,
                    pieces_past_origin: report.pieces_past_origin,
                    relocation: report.relocation.as_ref(),
                    stale_areas_zeroed: report.stale_areas_zeroed,
                }
            }
        }
    )*};
}

classic_notes_from!(MigrateReport, SharedMigrateReport);

fn write_classic_notes(out: &mut dyn Write, name: &str, notes: ClassicNotes<'_>) -> io::Result<()> {
    if notes.pieces_from_origin > 0 {
        writeln!(
            out,
            "{name}: {} unchanged pieces read from the origin",
            notes.pieces_from_origin
        )?;
    }
    if notes.pieces_past_origin > 0 {
        writeln!(
            out,
            "{name}: {} pieces past the end of the origin left out",
            notes.pieces_past_origin
        )?;
    }
    if let Some(relocation) = notes.relocation {
        writeln!(out, "{name}: {}", super::relocation_note(relocation))?;
    }
    if notes.stale_areas_zeroed > 0 {
        writeln!(
            out,
            "{name}: zeroed {} stale area locations",
            notes.stale_areas_zeroed
        )?;
    }
    Ok(())
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
        shape
            .usage
            .sectors_allocated
            .map_or("unknown".to_string(), |s| human_bytes(s * SECTOR_BYTES)),
        human_bytes(shape.usage.total_sectors * SECTOR_BYTES)
    )
}

/// Prints the report of a clone's region-size change: text, or JSON;
/// nothing as text when quiet.
pub fn clone_report(cli: &Cli, report: &CloneMigrateReport) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match cli.format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(report)?)?,
        ReportFormat::Text if cli.verbosity.quiet => {}
        ReportFormat::Text => write_clone_text(&mut out, report)?,
    }
    out.flush()?;
    Ok(())
}

fn write_clone_text(out: &mut dyn Write, report: &CloneMigrateReport) -> io::Result<()> {
    let name = &report.output;
    let (from, to) = (report.from.region_size, report.to.region_size);
    let how = match from.cmp(&to) {
        std::cmp::Ordering::Equal => "same region size, metadata written afresh".to_string(),
        std::cmp::Ordering::Greater => format!("each region split into {}", from / to),
        std::cmp::Ordering::Less => format!("every {} regions merged into one", to / from),
    };
    writeln!(
        out,
        "{name}: migrated from {} (dm-clone metadata, {}): {how}",
        report.input,
        clone_shape(&report.from)
    )?;
    writeln!(out, "{name}: now {}", clone_shape(&report.to))?;
    if report.partly_hydrated > 0 {
        writeln!(
            out,
            "{name}: {} merged region{} left unhydrated: some of {} parts were not hydrated (the kernel copies {} again)",
            report.partly_hydrated,
            if report.partly_hydrated == 1 { "" } else { "s" },
            if report.partly_hydrated == 1 { "its" } else { "their" },
            if report.partly_hydrated == 1 { "it" } else { "them" },
        )?;
    }
    writeln!(
        out,
        "{name}: {} metadata blocks; activate it with region size {to} in the clone table (the kernel refuses another)",
        report.metadata_blocks
    )
}

fn clone_shape(shape: &CloneShape) -> String {
    format!(
        "region size {} sectors, {} regions, {} hydrated",
        shape.region_size, shape.nr_regions, shape.hydrated_regions
    )
}

/// A table line for the output, with the snapshot it activates (none for a
/// classic store).
#[derive(serde::Serialize)]
struct TableLine {
    snapshot: Option<u32>,
    table: String,
}

/// The JSON document of a shared migration: the library's report plus the
/// output's table lines.
#[derive(serde::Serialize)]
struct SharedJsonReport<'a> {
    #[serde(flatten)]
    report: &'a SharedMigrateReport,
    tables: Vec<TableLine>,
    /// Committed journal transactions the shared input was read through.
    journal_transactions_read: u64,
}

fn table_lines(cli: &Cli, report: &SharedMigrateReport, origin: Option<&Device>) -> Vec<TableLine> {
    let origin_path = cli.origin.origin.as_ref().map(|p| p.display().to_string());
    let origin_sectors = origin.map(|d| d.size_bytes() / SECTOR_BYTES);
    match &report.to {
        Side::Classic(shape) => {
            let devices = TableDevices {
                origin: origin_path.as_deref(),
                origin_sectors,
                cow: &report.output,
            };
            vec![TableLine {
                snapshot: None,
                table: snapshot_table_line(&devices, shape.chunk_size, shape.kind),
            }]
        }
        Side::Shared(shape) => shape
            .snapshots
            .iter()
            .map(|&id| TableLine {
                snapshot: Some(id),
                table: shared::table_line(
                    origin_path.as_deref(),
                    origin_sectors,
                    &report.output,
                    shape.chunk_size,
                    id,
                ),
            })
            .collect(),
    }
}

/// Prints the report of a shared migration (import, export, re-chunk): text,
/// or JSON with the output's table lines; nothing as text when quiet.
pub fn shared_report(
    cli: &Cli,
    report: &SharedMigrateReport,
    origin: Option<&Device>,
    journal_read: u64,
) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    let tables = table_lines(cli, report, origin);
    match cli.format {
        ReportFormat::Json => {
            let json = SharedJsonReport {
                report,
                tables,
                journal_transactions_read: journal_read,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        ReportFormat::Text if cli.verbosity.quiet => {}
        ReportFormat::Text => {
            if let Some(note) = open::journal_read_note(journal_read) {
                writeln!(out, "{}: {note}", report.inputs[0].path)?;
            }
            write_shared_text(&mut out, report, &tables)?
        }
    }
    out.flush()?;
    Ok(())
}

fn write_shared_text(
    out: &mut dyn Write,
    report: &SharedMigrateReport,
    tables: &[TableLine],
) -> io::Result<()> {
    let name = &report.output;
    let how = match report.mode {
        MigrateMode::Copy if report.job == SharedJob::Rechunk => "compacted".to_string(),
        MigrateMode::Copy => "same chunk size".to_string(),
        MigrateMode::Split => format!("each chunk split into {}", report.factor),
        MigrateMode::Merge => format!("every {} chunks merged into one", report.factor),
    };
    match report.job {
        SharedJob::Import => {
            let n = report.inputs.len();
            writeln!(
                out,
                "{name}: imported {n} store{} into a shared store: {how}",
                if n == 1 { "" } else { "s" }
            )?;
            for input in &report.inputs {
                writeln!(
                    out,
                    "{name}: snapshot {} <- {} ({})",
                    input.snapshot.unwrap_or(0),
                    input.path,
                    side(&input.shape)
                )?;
            }
        }
        SharedJob::Export => writeln!(
            out,
            "{name}: exported snapshot {} of {} ({}): {how}",
            report.snapshot.unwrap_or(0),
            report.inputs[0].path,
            side(&report.inputs[0].shape)
        )?,
        SharedJob::Rechunk => writeln!(
            out,
            "{name}: migrated from {} ({}): {how}",
            report.inputs[0].path,
            side(&report.inputs[0].shape)
        )?,
    }
    writeln!(out, "{name}: now {}", side(&report.to))?;
    if report.job != SharedJob::Export {
        writeln!(
            out,
            "{name}: {} chunk copies stored as {} data chunks ({} identical copies shared)",
            report.copies,
            report.stored,
            report.copies - report.stored
        )?;
    }
    write_classic_notes(out, name, report.into())?;
    let before = match report.inputs.as_slice() {
        [one] => side_space(&one.shape),
        many => format!(
            "{} in {} stores",
            human_bytes(report.space_before),
            many.len()
        ),
    };
    writeln!(
        out,
        "{name}: space used: before {before}, after {}",
        side_space(&report.to)
    )?;
    if let Side::Shared(shape) = &report.to {
        if shape.free_chunks == 0 {
            writeln!(
                out,
                "{name}: the store has no free chunk left; give a larger --size to leave room for new copies"
            )?;
        }
    }
    for line in tables {
        match line.snapshot {
            Some(id) => writeln!(out, "{name}: table for snapshot {id}: {}", line.table)?,
            None => writeln!(out, "{name}: table: {}", line.table)?,
        }
    }
    Ok(())
}

fn side(side: &Side) -> String {
    match side {
        Side::Classic(shape) => self::shape(shape),
        Side::Shared(shape) => shared_shape(shape),
    }
}

fn shared_shape(shape: &SharedShape) -> String {
    let ids = shape
        .snapshots
        .iter()
        .fold(0u64, |m, &id| m | mask::bit(id));
    format!(
        "shared store, chunk {} sectors, snapshots {}, {} record{} ({} shared)",
        shape.chunk_size,
        mask::describe(ids),
        shape.records,
        if shape.records == 1 { "" } else { "s" },
        shape.shared_records
    )
}

fn side_space(side: &Side) -> String {
    match side {
        Side::Classic(shape) => space(shape),
        Side::Shared(shape) => format!(
            "{} ({} of {} chunks: {} data, {} tree, {} header, bitmap and journal; {} free)",
            human_bytes(shape.used_bytes),
            shape.used_chunks,
            shape.device_chunks,
            shape.records,
            shape.tree_chunks,
            shape.reserved_chunks,
            shape.free_chunks
        ),
    }
}

/// Prints the report of `--to raw` (nothing when the image went to stdout).
pub fn raw_report(cli: &Cli, origin: &Path, raw: &RawReport) -> anyhow::Result<()> {
    let report = raw.image;
    if cli.output() != Path::new("-") {
        let note = open::journal_read_note(raw.journal_read)
            .map(|note| format!("{}: {note}\n{TOOL}: ", cli.input[0].display()))
            .unwrap_or_default();
        value(
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
    Ok(())
}

/// Prints the report of `--merge`.
pub fn merge_report(cli: &Cli, origin: &Path, merged: &Merged) -> anyhow::Result<()> {
    let store = &cli.input[0];
    let replayed = match merged.report.journal_replayed {
        0 => String::new(),
        n => format!(
            "{}: {n} committed journal transaction{} replayed into the store before the merge\n{TOOL}: ",
            store.display(),
            if n == 1 { "" } else { "s" }
        ),
    };
    let what = match cli.snapshot {
        Some(id) if merged.kind == StoreKind::Shared => format!("snapshot {id}"),
        _ => "the snapshot".to_string(),
    };
    let after = if merged.kind == StoreKind::Shared {
        format!(
            "{} chunks copied out first for the snapshots that still read them; snapshots left: {}",
            merged.report.copied_out,
            mask::describe(merged.report.snapmask)
        )
    } else {
        "the store is now empty (reuse it for a new snapshot, or remove it)".to_string()
    };
    value(
        cli,
        &serde_json::json!({
            "format_version": 1,
            "job": "merge",
            "input": store,
            "kind": merged.kind.as_str(),
            "snapshot": cli.snapshot,
            "origin": origin,
            "chunks_written": merged.report.chunks,
            "chunks_copied_out": merged.report.copied_out,
            "resumed": merged.report.resumed,
            "snapshots_left": mask::id_list(merged.report.snapmask),
            "journal_transactions_replayed": merged.report.journal_replayed,
        }),
        &format!(
            "{replayed}{}: {what} of {} merged{}: {} chunks written over the origin; {after}",
            origin.display(),
            store.display(),
            if merged.report.resumed {
                " (an interrupted merge finished)"
            } else {
                ""
            },
            merged.report.chunks
        ),
    )?;
    Ok(())
}

/// Prints `text`, or `json` with --format json; nothing when quiet (JSON is
/// still printed).
fn value(cli: &Cli, json: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match cli.format {
        ReportFormat::Json => writeln!(out, "{json:#}")?,
        ReportFormat::Text if !cli.verbosity.quiet => writeln!(out, "{TOOL}: {text}")?,
        ReportFormat::Text => {}
    }
    Ok(out.flush()?)
}
