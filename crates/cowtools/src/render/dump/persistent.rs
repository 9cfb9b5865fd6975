//! The dump of a persistent or legacy store as tables for people: header and
//! geometry, the exceptions in on-disk order as aligned lines, then areas,
//! usage, the kernel's runs and the problems.

use std::io::{self, Write};

use comfy_table::Table;
use cowfmt::dump_lines::Batch;
use cowfmt::persistent::dump::{stream_records, DumpHead, DumpTail};
use cowfmt::persistent::runs::Run;
use cowfmt::persistent::store::AreaSummary;
use cowfmt::persistent::{ExceptionRecord, PersistentStore};

use super::{
    batched_lines, count_line, digits, head_rows, new_table, plural, sectors_text, two_columns,
    write_problems,
};
use crate::progress::RecordCounter;

/// Writes the tables of `store` (whose head is `head`) and returns its tail.
pub fn write(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &RecordCounter,
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
    let (tail, count) = batched_lines(out, |batch| {
        stream_records(store, runs, |record| {
            table_record(batch, record, &widths);
            progress.tick(batch.count);
            batch.end_record()
        })
    })?;
    count_line(out, count, "exception")?;
    writeln!(out, "Areas\n{}\n", areas_table(&tail.areas))?;
    writeln!(out, "Usage\n{}", usage_table(&tail))?;
    if let Some(runs) = &tail.runs {
        write_runs(out, runs, &widths)?;
    }
    write_problems(out, &tail.problems)?;
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
        let digits = digits(device_chunks);
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
    two_columns(head_rows!(head))
}

fn geometry_table(head: &DumpHead) -> Table {
    two_columns(vec![
        ("device", sectors_text(head.device_sectors)),
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
