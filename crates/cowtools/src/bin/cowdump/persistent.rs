//! The dump of a persistent or legacy store: head, the exceptions in on-disk
//! order, tail (areas, state, usage), as JSON, YAML or tables.

use std::io::{self, Write};

use comfy_table::Table;
use cowfmt::persistent::dump::{head_of, stream_records, DumpHead, DumpTail};
use cowfmt::persistent::runs::Run;
use cowfmt::persistent::store::AreaSummary;
use cowfmt::persistent::{ExceptionRecord, PersistentStore};
use cowfmt::units::human_bytes;
use cowfmt::StoreKind;
use serde::Serialize;

use crate::batch::{json_fields, new_table, plural, two_columns, Batch, Progress};
use crate::DumpFormat;

/// Writes the dump of `store` in `format` and returns its tail.
pub fn write(
    out: &mut dyn Write,
    store: &PersistentStore,
    kind: StoreKind,
    format: DumpFormat,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    let head = head_of(store, kind);
    match format {
        DumpFormat::Json => write_json(out, store, &head, runs, progress),
        DumpFormat::Yaml => write_yaml(out, store, &head, runs, progress),
        DumpFormat::Table => write_tables(out, store, &head, runs, progress),
    }
}

fn write_json(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    write!(out, "{{{},\n  \"exceptions\": [", json_fields(head)?)?;
    let mut batch = Batch::new(out);
    let tail = stream_records(store, runs, |record| {
        batch.text(if batch.count == 0 {
            b"\n    {\"old_chunk\":"
        } else {
            b",\n    {\"old_chunk\":"
        });
        batch.number(record.old_chunk);
        batch.text(b",\"new_chunk\":");
        batch.number(record.new_chunk);
        batch.text(b"}");
        progress.tick(batch.count);
        batch.end_record()
    })?;
    batch.text(if batch.count == 0 { b"]" } else { b"\n  ]" });
    batch.drain()?;
    let parts = TailParts::split(tail);
    write!(out, ",{}", json_fields(&parts.rest)?)?;
    if let Some(runs) = &parts.runs {
        write_json_runs(out, runs)?;
    }
    if !parts.problems.problems.is_empty() {
        write!(out, ",{}", json_fields(&parts.problems)?)?;
    }
    writeln!(out, "\n}}")?;
    Ok(parts.join())
}

/// The problems of a dump, serialized after the runs as the schema orders them.
#[derive(Serialize)]
struct Problems {
    problems: Vec<String>,
}

/// A dump tail split for writing: the small fields, the runs (one line each),
/// then the problems.
struct TailParts {
    rest: DumpTail,
    runs: Option<Vec<Run>>,
    problems: Problems,
}

impl TailParts {
    fn split(mut tail: DumpTail) -> Self {
        TailParts {
            runs: tail.runs.take(),
            problems: Problems {
                problems: std::mem::take(&mut tail.problems),
            },
            rest: tail,
        }
    }

    fn join(self) -> DumpTail {
        DumpTail {
            runs: self.runs,
            problems: self.problems.problems,
            ..self.rest
        }
    }
}

fn write_json_runs(out: &mut dyn Write, runs: &[Run]) -> io::Result<()> {
    out.write_all(b",\n  \"runs\": [")?;
    let mut batch = Batch::new(out);
    for run in runs {
        batch.text(if batch.count == 0 {
            b"\n    {\"old_chunk\":"
        } else {
            b",\n    {\"old_chunk\":"
        });
        batch.number(run.old_chunk);
        batch.text(b",\"new_chunk\":");
        batch.number(run.new_chunk);
        batch.text(b",\"count\":");
        batch.number(run.count);
        batch.text(b"}");
        batch.end_record()?;
    }
    batch.text(if batch.count == 0 { b"]" } else { b"\n  ]" });
    batch.drain()
}

fn write_yaml(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    out.write_all(serde_yaml::to_string(head)?.as_bytes())?;
    out.write_all(b"exceptions:")?;
    let mut batch = Batch::new(out);
    let tail = stream_records(store, runs, |record| {
        batch.text(b"\n- {old_chunk: ");
        batch.number(record.old_chunk);
        batch.text(b", new_chunk: ");
        batch.number(record.new_chunk);
        batch.text(b"}");
        progress.tick(batch.count);
        batch.end_record()
    })?;
    batch.text(if batch.count == 0 { b" []\n" } else { b"\n" });
    batch.drain()?;
    let parts = TailParts::split(tail);
    out.write_all(serde_yaml::to_string(&parts.rest)?.as_bytes())?;
    if let Some(runs) = &parts.runs {
        write_yaml_runs(out, runs)?;
    }
    if !parts.problems.problems.is_empty() {
        out.write_all(serde_yaml::to_string(&parts.problems)?.as_bytes())?;
    }
    Ok(parts.join())
}

fn write_yaml_runs(out: &mut dyn Write, runs: &[Run]) -> io::Result<()> {
    out.write_all(b"runs:")?;
    let mut batch = Batch::new(out);
    for run in runs {
        batch.text(b"\n- {old_chunk: ");
        batch.number(run.old_chunk);
        batch.text(b", new_chunk: ");
        batch.number(run.new_chunk);
        batch.text(b", count: ");
        batch.number(run.count);
        batch.text(b"}");
        batch.end_record()?;
    }
    batch.text(if batch.count == 0 { b" []\n" } else { b"\n" });
    batch.drain()
}

fn write_tables(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    writeln!(out, "Header\n{}\n", header_table(head))?;
    writeln!(out, "Geometry\n{}\n", geometry_table(head))?;
    let widths = ColumnWidths::for_device(head.device_chunks);
    writeln!(out, "Exceptions (on-disk order)")?;
    writeln!(
        out,
        "{:>iw$}  {:>ow$}  {:>nw$}",
        "index",
        "old_chunk",
        "new_chunk",
        iw = widths.index,
        ow = widths.old,
        nw = widths.new
    )?;
    let mut batch = Batch::new(out);
    let tail = stream_records(store, runs, |record| {
        table_record(&mut batch, record, &widths);
        progress.tick(batch.count);
        batch.end_record()
    })?;
    batch.drain()?;
    let count = batch.count;
    writeln!(out, "({count} exception{})\n", plural(count))?;
    writeln!(out, "Areas\n{}\n", areas_table(&tail.areas))?;
    writeln!(out, "Usage\n{}", usage_table(&tail))?;
    if let Some(runs) = &tail.runs {
        write_runs(out, runs, &widths)?;
    }
    if !tail.problems.is_empty() {
        writeln!(out, "\nProblems")?;
        for problem in &tail.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    Ok(tail)
}

/// Column widths of the streamed exception lines.
struct ColumnWidths {
    index: usize,
    old: usize,
    new: usize,
}

impl ColumnWidths {
    /// Wide enough for every chunk number of a device of `device_chunks`.
    fn for_device(device_chunks: u64) -> Self {
        let digits = itoa::Buffer::new().format(device_chunks).len();
        ColumnWidths {
            index: digits.max("index".len()),
            old: digits.max(12),
            new: digits.max("new_chunk".len()),
        }
    }
}

#[inline]
fn table_record(batch: &mut Batch<'_>, record: &ExceptionRecord, widths: &ColumnWidths) {
    batch.padded(batch.count, widths.index);
    batch.text(b"  ");
    batch.padded(record.old_chunk, widths.old);
    batch.text(b"  ");
    batch.padded(record.new_chunk, widths.new);
    batch.text(b"\n");
}

fn write_runs(out: &mut dyn Write, runs: &[Run], widths: &ColumnWidths) -> io::Result<()> {
    writeln!(out, "\nRuns (the kernel's in-memory exceptions)")?;
    writeln!(
        out,
        "{:>ow$}  {:>nw$}  {:>6}",
        "old_chunk",
        "new_chunk",
        "count",
        ow = widths.old,
        nw = widths.new
    )?;
    let mut batch = Batch::new(out);
    for run in runs {
        batch.padded(run.old_chunk, widths.old);
        batch.text(b"  ");
        batch.padded(run.new_chunk, widths.new);
        batch.text(b"  ");
        batch.padded(run.count, 6);
        batch.text(b"\n");
        batch.end_record()?;
    }
    batch.drain()?;
    writeln!(out, "({} run{})", runs.len(), plural(runs.len() as u64))
}

fn header_table(head: &DumpHead) -> Table {
    two_columns(vec![
        ("kind", head.kind.to_string()),
        ("magic", head.magic.clone()),
        (
            "valid",
            format!(
                "{} ({})",
                head.valid_raw,
                if head.valid { "valid" } else { "invalid" }
            ),
        ),
        ("version", head.version.to_string()),
        (
            "chunk_size",
            format!(
                "{} sectors ({})",
                head.chunk_size,
                human_bytes(u64::from(head.chunk_size) * 512)
            ),
        ),
    ])
}

fn geometry_table(head: &DumpHead) -> Table {
    two_columns(vec![
        (
            "device",
            format!(
                "{} sectors ({})",
                head.device_sectors,
                human_bytes(head.device_sectors * 512)
            ),
        ),
        ("device_chunks", head.device_chunks.to_string()),
        ("exceptions_per_area", head.exceptions_per_area.to_string()),
    ])
}

fn areas_table(areas: &[AreaSummary]) -> Table {
    let mut table = new_table();
    table.set_header(vec!["area", "chunk", "entries", "full"]);
    for area in areas {
        table.add_row(vec![
            area.index.to_string(),
            area.chunk.to_string(),
            area.entries.to_string(),
            if area.full { "yes" } else { "no" }.to_string(),
        ]);
    }
    table
}

fn usage_table(tail: &DumpTail) -> Table {
    two_columns(vec![
        ("areas_in_use", tail.areas_in_use.to_string()),
        ("next_free", tail.state.next_free.to_string()),
        (
            "sectors_allocated",
            tail.usage
                .sectors_allocated
                .map_or("unknown".to_string(), |s| s.to_string()),
        ),
        ("total_sectors", tail.usage.total_sectors.to_string()),
        ("metadata_sectors", tail.usage.metadata_sectors.to_string()),
        ("status", tail.status.clone()),
    ])
}
