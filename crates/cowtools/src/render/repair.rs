//! cowrepair's output: the report of either kind as text, tables or JSON on
//! stdout, what the job says at once on stderr, its progress bars, and the
//! exit code of its verdict. The parts both kinds print alike are written
//! once.

use std::io::{self, Write};
use std::path::Path;

use comfy_table::{presets::UTF8_FULL, Table};
use cowfmt::device::{Access, Device};
use cowfmt::origin_range::OriginRange;
use cowfmt::repair::{Notice, Phase, RepairEvents, Verdict};
use cowfmt::store::repair::RepairReport;
use cowfmt::store::reports::clone::CloneRepairReport;
use cowfmt::store::reports::persistent::{self, snapshot_table_line, TableDevices};
use cowfmt::store::reports::shared::{self, mask};
use indicatif::ProgressBar;

use crate::cli::cowrepair::{Cli, ReportFormat};
use crate::{exit, output, progress, signatures};

const TOOL: &str = "cowrepair";

/// At most this many ranges are named in text; JSON lists them all.
const RANGES_IN_TEXT: usize = 20;

/// A running repair's progress bars and notices, on stderr.
pub struct Stderr {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Stderr {
    /// Bars hidden when `quiet` (or stderr is not a terminal).
    pub fn new(quiet: bool) -> Self {
        Stderr { quiet, bar: None }
    }
}

impl RepairEvents for Stderr {
    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Coverage { path, coverage } => {
                signatures::note_coverage(TOOL, &path.display().to_string(), coverage)
            }
            Notice::Overwritten { path, what } => output::say_overwritten(TOOL, path, Some(what)),
            Notice::TreatedAsStore {
                path,
                what,
                kind,
                in_place,
            } => {
                let in_place = if in_place {
                    ", and rewriting it in place,"
                } else {
                    ""
                };
                eprintln!("{TOOL}: {}: treating {what} as a {kind} store{in_place} because --kind and --force were given", path.display());
            }
        }
    }

    fn begin(&mut self, phase: Phase) {
        let quiet = self.quiet;
        self.bar = Some(match phase {
            Phase::Scanning => progress::bar(0, "scanning", quiet),
            Phase::Copying(total) => progress::bar(total, "copying", quiet),
            Phase::BackingUp(total) => progress::bar(total, "backing up", quiet),
            Phase::VerifyingCopy(total) => progress::bar(total, "verifying", quiet),
            Phase::VerifyingStore => progress::bar(0, "verifying", quiet),
            Phase::VerifyingTree => progress::counter("verifying", "tree blocks", quiet),
        });
    }

    fn advance(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if total > 0 && bar.length() != Some(total) {
                bar.set_length(total);
            }
            bar.set_position(done);
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The exit code of a repair's verdict: 1 when nothing could be salvaged, 3
/// when records were lost, else 0.
pub fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::NothingSalvaged => exit::EXIT_PROBLEMS,
        Verdict::Lost => exit::EXIT_LOSSY,
        Verdict::Kept => exit::EXIT_OK,
    }
}

/// Prints `report` on stdout as `cli` asks (JSON even when quiet); `output`
/// is where the salvage was written, `None` when nothing was.
pub fn render(cli: &Cli, report: &RepairReport, output: Option<&Path>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match cli.format {
        ReportFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        }
        _ if cli.verbosity.quiet => {}
        format => {
            let as_table = format == ReportFormat::Table;
            match report {
                RepairReport::Persistent(r) => {
                    write_dropped(&mut out, &r.input, &r.dropped, r.dropped_unlisted, as_table)?;
                    write_persistent(&mut out, cli, r, output)?
                }
                RepairReport::Shared(r) => {
                    write_dropped(&mut out, &r.input, &r.dropped, r.dropped_unlisted, as_table)?;
                    write_shared(&mut out, cli, r, output, as_table)?
                }
                RepairReport::Clone(r) => write_clone(&mut out, cli, r, output)?,
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A dropped record as the report lists it.
trait Listed {
    /// The header of the table of dropped records.
    const HEADER: [&'static str; 5];
    /// Its row in the table of dropped records.
    fn row(&self) -> [String; 5];
    /// Its reason and sentence, for a text line.
    fn line(&self) -> (String, &str);
}

impl Listed for persistent::DroppedRecord {
    const HEADER: [&'static str; 5] = ["area", "index", "old_chunk", "new_chunk", "reason"];

    fn row(&self) -> [String; 5] {
        [
            self.area.to_string(),
            self.index.to_string(),
            self.old_chunk.to_string(),
            self.new_chunk.to_string(),
            self.reason.to_string(),
        ]
    }

    fn line(&self) -> (String, &str) {
        (self.reason.to_string(), &self.message)
    }
}

impl Listed for shared::DroppedRecord {
    const HEADER: [&'static str; 5] = ["origin", "share", "chunk", "leaf", "reason"];

    fn row(&self) -> [String; 5] {
        [
            self.origin.to_string(),
            mask::describe(self.share),
            self.chunk.to_string(),
            self.leaf.to_string(),
            self.reason.to_string(),
        ]
    }

    fn line(&self) -> (String, &str) {
        (self.reason.to_string(), &self.message)
    }
}

fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL);
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table
}

/// The dropped records, as a table or one line each, and how many more.
fn write_dropped<D: Listed>(
    out: &mut dyn Write,
    name: &str,
    dropped: &[D],
    unlisted: u64,
    as_table: bool,
) -> io::Result<()> {
    if as_table && !dropped.is_empty() {
        writeln!(out, "{}", table(D::HEADER, dropped.iter().map(Listed::row)))?;
    } else {
        for d in dropped {
            let (reason, message) = d.line();
            writeln!(out, "{name}: dropped: {reason}: {message}")?;
        }
    }
    if unlisted > 0 {
        writeln!(out, "{name}: {unlisted} more dropped records not listed")?;
    }
    Ok(())
}

fn write_header_repaired(
    out: &mut dyn Write,
    name: &str,
    repaired: bool,
    problems: &[String],
) -> io::Result<()> {
    if repaired {
        writeln!(out, "{name}: header repaired: {}", problems.join("; "))?;
    }
    Ok(())
}

fn write_notes(out: &mut dyn Write, name: &str, notes: &[String]) -> io::Result<()> {
    for note in notes {
        writeln!(out, "{name}: note: {note}")?;
    }
    Ok(())
}

/// The closing line of a report with no output: said only for `--dry-run`,
/// since a refusal closes with its own error.
fn nothing_written(out: &mut dyn Write, cli: &Cli, name: &str) -> io::Result<()> {
    if cli.dry_run {
        writeln!(out, "{name}: nothing written (dry run)")?;
    }
    Ok(())
}

/// The text of a persistent report after its dropped records.
fn write_persistent(
    out: &mut dyn Write,
    cli: &Cli,
    report: &persistent::RepairReport,
    output: Option<&Path>,
) -> io::Result<()> {
    let name = &report.input;
    for area in &report.damaged_areas {
        writeln!(out, "{name}: damaged area: {}", area.message)?;
    }
    for area in &report.unreadable_areas {
        writeln!(out, "{name}: area {area} could not be read")?;
    }
    let source = match report.chunk_size_source {
        persistent::ChunkSizeSource::Header => "from the header",
        persistent::ChunkSizeSource::Option => "as given",
        persistent::ChunkSizeSource::Inferred => "inferred",
    };
    writeln!(
        out,
        "{name}: chunk size {} sectors ({source})",
        report.chunk_size
    )?;
    write_header_repaired(out, name, report.header_repaired, &report.header_problems)?;
    write_notes(out, name, &report.notes)?;
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
    write_persistent_losses(out, name, report)?;
    let Some(output) = output else {
        return nothing_written(out, cli, name);
    };
    if let Some(relocation) = &report.relocation {
        writeln!(
            out,
            "{}: {}",
            output.display(),
            super::relocation_note(relocation)
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
    let origin = cli.origin.origin.as_ref().map(|p| p.display().to_string());
    let cow = output.display().to_string();
    let devices = TableDevices {
        origin: origin.as_deref(),
        origin_sectors: origin_sectors(cli),
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
        valid_text(report.output_valid),
        report.status_after.as_deref().unwrap_or("unknown")
    )
}

/// The `lost:` lines of a persistent report: where the snapshot reads the
/// origin now.
fn write_persistent_losses(
    out: &mut dyn Write,
    name: &str,
    report: &persistent::RepairReport,
) -> io::Result<()> {
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
    Ok(())
}

/// The text of a shared report after its dropped records (`as_table`: the
/// per-snapshot counts as a table).
fn write_shared(
    out: &mut dyn Write,
    cli: &Cli,
    report: &shared::RepairReport,
    output: Option<&Path>,
    as_table: bool,
) -> io::Result<()> {
    let name = &report.input;
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
    write_header_repaired(out, name, report.header_repaired, &report.header_problems)?;
    if let Some(scan) = &report.scan {
        write_scan(out, name, scan)?;
    }
    write_notes(out, name, &report.notes)?;
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
    let origin = cli.origin.origin.as_ref().map(|p| p.display().to_string());
    for &id in &report.snapshots {
        writeln!(
            out,
            "{cow}: table: {}",
            shared::table_line(
                origin.as_deref(),
                origin_sectors(cli),
                &cow,
                report.chunk_size,
                id
            )
        )?;
    }
    writeln!(
        out,
        "{cow}: written: shared store, {}, {} leaves (tree level {}), {} data chunk{} copied",
        valid_text(report.output_valid),
        report.leaves_after.unwrap_or(0),
        report.tree_level_after.unwrap_or(0),
        report.data_chunks_copied.unwrap_or(0),
        plural(report.data_chunks_copied.unwrap_or(0))
    )
}

fn write_scan(out: &mut dyn Write, name: &str, scan: &shared::ScanSummary) -> io::Result<()> {
    writeln!(
        out,
        "{name}: scan: read {} chunk{} ({}); {} lea{} found: {} used, {} overlapping a better leaf, {} implausible, {} outside the damage",
        scan.chunks_scanned,
        plural(scan.chunks_scanned),
        match scan.mode {
            shared::ScanMode::Used => "marked in use, not referenced",
            shared::ScanMode::All => "every unreferenced chunk",
        },
        scan.leaves_found,
        if scan.leaves_found == 1 { "f" } else { "ves" },
        scan.leaves_used,
        scan.leaves_overlapping,
        scan.leaves_implausible,
        scan.leaves_outside_damage
    )
}

fn write_snapshot_counts(
    out: &mut dyn Write,
    name: &str,
    report: &shared::RepairReport,
    as_table: bool,
) -> io::Result<()> {
    if as_table && !report.per_snapshot.is_empty() {
        let header = [
            "snapshot",
            "kept",
            "lost",
            "lost in unreadable ranges",
            "reads the origin now at",
        ];
        let rows = report.per_snapshot.iter().map(|t| {
            [
                t.id.to_string(),
                t.kept.to_string(),
                t.lost.to_string(),
                if t.lost_unknown { "unknown" } else { "none" }.to_string(),
                snapshot_ranges_text(t),
            ]
        });
        writeln!(out, "{}", table(header, rows))?;
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
fn snapshot_ranges_text(t: &shared::SnapshotTally) -> String {
    ranges_text(&t.read_through, t.read_through_complete || t.lost_unknown)
}

/// The origin ranges whose records could not be read, where any snapshot may
/// read the origin now.
fn write_unknown_read_through(
    out: &mut dyn Write,
    name: &str,
    report: &shared::RepairReport,
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

fn lost_range_text(lost: &shared::LostRange) -> String {
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

fn unknown_text(report: &shared::RepairReport) -> String {
    match (report.records_unknown, report.unknown_records_at_most) {
        (false, _) => "no records lost in unreadable ranges".to_string(),
        (true, Some(n)) => format!(
            "records in unreadable ranges: unknown, at most {n} (the chunks in use that nothing found references)"
        ),
        (true, None) => "records in unreadable ranges: unknown".to_string(),
    }
}

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

/// The origin's size in sectors for the table line, when it is known.
fn origin_sectors(cli: &Cli) -> Option<u64> {
    match &cli.origin.origin {
        Some(origin) => Device::open(origin, Access::ReadOnly)
            .ok()
            .map(|d| d.size_sectors()),
        None => cli.origin_size.map(|bytes| bytes / cowfmt::SECTOR_BYTES),
    }
}

fn valid_text(valid: bool) -> &'static str {
    if valid {
        "valid"
    } else {
        "invalid"
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// A clone repair: each damage met, each run of lost regions with the state
/// it got and why, then the summary.
fn write_clone(
    out: &mut dyn Write,
    cli: &Cli,
    report: &CloneRepairReport,
    output: Option<&Path>,
) -> io::Result<()> {
    let input = cli.input.display();
    for problem in &report.problems {
        writeln!(out, "{TOOL}: {input}: {problem}")?;
    }
    for run in &report.decided {
        let state = if run.hydrated {
            "hydrated"
        } else {
            "unhydrated"
        };
        writeln!(
            out,
            "{TOOL}: {input}: regions {}..{} ({} lost): {state}: {}",
            run.start,
            run.start + run.count,
            run.count,
            run.reason
        )?;
    }
    write_notes(out, &format!("{TOOL}: {input}"), &report.notes)?;
    writeln!(
        out,
        "{TOOL}: {input}: clone metadata, {} regions of {} sectors: {} read, {} lost; {} hydrated{}",
        report.nr_regions,
        report.region_size,
        report.salvaged_regions,
        report.lost_regions,
        report.hydrated_regions,
        match output {
            Some(path) => format!("; written to {}", path.display()),
            None => "; nothing written (--dry-run)".to_string(),
        }
    )
}
