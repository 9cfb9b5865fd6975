//! The dump of a shared store as tables for people: header, geometry and chunk
//! counts as tables, then the chosen list as aligned lines, then the totals;
//! and the phrases of a damaged block and of snapshot ids.

use std::io::Write;

use comfy_table::Table;
use cowfmt::dump_lines::Batch;
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::dump::chunks::stream_chunk_runs;
use cowfmt::shared::dump::records::stream_exceptions;
use cowfmt::shared::dump::text::View;
use cowfmt::shared::dump::tree::stream_tree;
use cowfmt::shared::dump::{
    BlockProblem, ChunkRange, ClassTotals, ShareMask, SharedDumpHead, SharedDumpTail, SharedSource,
    TreeBlock, TreeBody,
};

use super::{
    batched_lines, count_line, digits, head_rows, new_table, plural, sectors_text, two_columns,
    write_problems,
};
use crate::progress::RecordCounter;

/// Writes the tables and lines of `view` and returns the tail.
pub fn write(
    out: &mut dyn Write,
    source: &SharedSource,
    head: &SharedDumpHead,
    bitmap: &ChunkBitmap,
    view: View,
    progress: &RecordCounter,
) -> anyhow::Result<SharedDumpTail> {
    writeln!(out, "Header\n{}\n", header_table(head))?;
    writeln!(out, "Geometry\n{}\n", geometry_table(head))?;
    writeln!(
        out,
        "Chunks (from the bitmap)\n{}\n",
        two_columns(vec![
            ("used_chunks", head.used_chunks.to_string()),
            ("free_chunks", head.free_chunks.to_string()),
        ])
    )?;
    let w = Widths::for_device(head.geometry.nr_chunks);
    let tail = match view {
        View::Exceptions => exception_lines(out, source, None, &w, progress)?,
        View::Snapshot(id) => exception_lines(out, source, Some(id), &w, progress)?,
        View::Tree => {
            writeln!(out, "Tree (walk order)")?;
            let (tail, count) = batched_lines(out, |batch| {
                stream_tree(source, |block| {
                    tree_lines(batch, block, &w);
                    batch.end_record()
                })
            })?;
            count_line(out, count, "block")?;
            tail
        }
        View::Bitmap => {
            writeln!(out, "Chunks by class")?;
            writeln!(
                out,
                "{:>cw$}  {:>cw$}  {:>cw$}  {:<7}  marked",
                "start",
                "end",
                "count",
                "class",
                cw = w.chunk
            )?;
            let (tail, count) = batched_lines(out, |batch| {
                stream_chunk_runs(source, bitmap, |run| {
                    batch.padded(run.start, w.chunk);
                    batch.text(b"  ");
                    batch.padded(run.end, w.chunk);
                    batch.text(b"  ");
                    batch.padded(run.end - run.start, w.chunk);
                    batch.text(b"  ");
                    let class = run.class.as_str().as_bytes();
                    batch.text(class);
                    batch.text(&b"         "[..9 - class.len()]);
                    batch.text(if run.used { b"yes\n" } else { b"no\n" });
                    batch.end_record()
                })
            })?;
            count_line(out, count, "run")?;
            if let Some(classes) = &tail.classes {
                writeln!(out, "Classes (chunks)\n{}\n", classes_table(classes))?;
            }
            tail
        }
    };
    writeln!(out, "Tree totals\n{}", totals_table(&tail))?;
    let problems: Vec<String> = tail.problems.iter().map(problem_text).collect();
    write_problems(out, &problems)?;
    Ok(tail)
}

/// Every record in origin order with the snapshots that see it, or only
/// those `snapshot` sees, as aligned lines.
fn exception_lines(
    out: &mut dyn Write,
    source: &SharedSource,
    snapshot: Option<u32>,
    w: &Widths,
    progress: &RecordCounter,
) -> anyhow::Result<SharedDumpTail> {
    match snapshot {
        None => writeln!(out, "Exceptions (origin order)")?,
        Some(id) => writeln!(out, "Snapshot {id} (origin order)")?,
    }
    writeln!(
        out,
        "{:>ow$}  {:>cw$}{}",
        "origin_chunk",
        "cow_chunk",
        if snapshot.is_none() {
            "  snapshots"
        } else {
            ""
        },
        ow = w.origin,
        cw = w.chunk
    )?;
    let (tail, count) = batched_lines(out, |batch| {
        stream_exceptions(source, snapshot, |r| {
            batch.padded(r.origin_chunk, w.origin);
            batch.text(b"  ");
            batch.padded(r.cow_chunk, w.chunk);
            if snapshot.is_none() {
                batch.text(b"  ");
                batch.id_ranges(r.snapshots.0);
            }
            batch.text(b"\n");
            progress.tick(batch.count);
            batch.end_record()
        })
    })?;
    match snapshot {
        None => count_line(out, count, "exception")?,
        Some(id) => writeln!(
            out,
            "({count} chunk{} seen by snapshot {id})\n",
            plural(count)
        )?,
    }
    Ok(tail)
}

/// Column widths of the streamed lines.
struct Widths {
    origin: usize,
    chunk: usize,
}

impl Widths {
    fn for_device(nr_chunks: u64) -> Self {
        let digits = digits(nr_chunks);
        Widths {
            origin: digits.max("origin_chunk".len()),
            chunk: digits.max("cow_chunk".len()),
        }
    }
}

/// One line for the block, then one per record of a leaf.
fn tree_lines(batch: &mut Batch<'_>, block: &TreeBlock, w: &Widths) {
    batch.text(b"chunk ");
    batch.number(block.chunk);
    batch.text(b"  level ");
    batch.number(u64::from(block.level));
    let kind: &[u8] = match block.body {
        TreeBody::Node { .. } => b"  node  ",
        TreeBody::Leaf { .. } => b"  leaf  ",
        TreeBody::Damaged { .. } => b"  DAMAGED  ",
    };
    batch.text(kind);
    batch.text(range_text(block.lo, block.hi).as_bytes());
    match &block.body {
        TreeBody::Node {
            entries,
            bytes_used,
            fill_percent,
            children,
        } => {
            batch.text(
                format!("  {entries} entries  {bytes_used} bytes ({fill_percent}%)\n").as_bytes(),
            );
            for child in children {
                batch.text(b"    key ");
                batch.padded(child.key, w.origin);
                batch.text(b"  -> chunk ");
                batch.number(child.chunk);
                batch.text(b"\n");
            }
        }
        TreeBody::Leaf {
            entries,
            records,
            bytes_used,
            fill_percent,
            base_chunk,
            using_mask,
            exceptions,
        } => {
            batch.text(
                format!(
                    "  {entries} entries  {records} records  {bytes_used} bytes ({fill_percent}%)  base_chunk {base_chunk}  using_mask {}\n",
                    ids_text(*using_mask)
                )
                .as_bytes(),
            );
            for r in exceptions {
                batch.text(b"    ");
                batch.padded(r.origin_chunk, w.origin);
                batch.text(b"  -> ");
                batch.padded(r.cow_chunk, w.chunk);
                batch.text(b"  ");
                batch.id_ranges(r.snapshots.0);
                batch.text(b"\n");
            }
        }
        TreeBody::Damaged { problem } => {
            batch.text(b"  ");
            batch.text(problem.as_bytes());
            batch.text(b"\n");
        }
    }
}

/// The header table of a shared store.
pub fn header_table(head: &SharedDumpHead) -> Table {
    let mut rows = head_rows!(head);
    rows.extend([
        (
            "snapshots",
            format!(
                "{} ({})",
                ids_text(head.snapshots),
                head.snapshots.0.count_ones()
            ),
        ),
        ("tree_level", head.tree_level.to_string()),
        ("root_tree_chunk", head.root_tree_chunk.to_string()),
        ("journal_chunks", head.journal_chunks.to_string()),
    ]);
    two_columns(rows)
}

fn range_row(range: ChunkRange) -> String {
    let count = range.end.saturating_sub(range.start);
    format!(
        "{}..{} ({count} chunk{})",
        range.start,
        range.end,
        plural(count)
    )
}

/// The geometry table of a shared store.
pub fn geometry_table(head: &SharedDumpHead) -> Table {
    let g = &head.geometry;
    two_columns(vec![
        ("device", sectors_text(head.device_sectors)),
        ("nr_chunks", g.nr_chunks.to_string()),
        ("bitmap", range_row(g.bitmap)),
        ("journal", range_row(g.journal)),
        ("data", range_row(g.data)),
    ])
}

fn classes_table(c: &ClassTotals) -> Table {
    let mut table = new_table();
    table.set_header(vec![
        "header", "bitmap", "journal", "node", "leaf", "data", "leaked", "free", "unmarked",
    ]);
    table.add_row(
        [
            c.header, c.bitmap, c.journal, c.node, c.leaf, c.data, c.leaked, c.free, c.unmarked,
        ]
        .map(|n| n.to_string())
        .to_vec(),
    );
    table
}

fn totals_table(tail: &SharedDumpTail) -> Table {
    two_columns(vec![
        ("nodes", tail.nodes.to_string()),
        ("leaves", tail.leaves.to_string()),
        ("origin_chunks", tail.origin_chunks.to_string()),
        ("records", tail.records.to_string()),
        ("problems", tail.problems.len().to_string()),
    ])
}

/// A damaged block as one line for stderr and tables.
pub fn problem_text(problem: &BlockProblem) -> String {
    let place = match problem.parent {
        Some(parent) => format!(", entry {} of node {}", parent.entry, parent.chunk),
        None => ", the root".to_string(),
    };
    format!(
        "chunk {} (level {}, {}{place}): {}",
        problem.chunk,
        problem.level,
        range_text(problem.lo, problem.hi),
        problem.problem
    )
}

/// A key range as people read it: `origin chunks 100..200`, or `100..` unbounded.
pub fn range_text(lo: u64, hi: Option<u64>) -> String {
    match hi {
        Some(hi) => format!("origin chunks {lo}..{hi}"),
        None => format!("origin chunks {lo}.."),
    }
}

/// Snapshot ids as people read them: `0,3-5`, or `none`.
pub fn ids_text(mask: ShareMask) -> String {
    cowfmt::shared::mask::describe(mask.0)
}
