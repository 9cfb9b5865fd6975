//! The dump of a shared store as one JSON or YAML document: the head, one
//! streamed list (`exceptions`, `tree` or `bitmap`), then the tail. The list
//! items are formatted by hand for speed; head and tail go through serde.

use std::io::Write;

use cowfmt::shared::dump::chunks::stream_chunk_runs;
use cowfmt::shared::dump::records::stream_exceptions;
use cowfmt::shared::dump::tree::stream_tree;
use cowfmt::shared::dump::{
    BlockProblem, ChunkRun, ShareMask, SharedDumpTail, SharedRecord, SharedSource, TreeBlock,
};

use crate::batch::{json_fields, Batch, IdStyle, Progress};
use crate::{shared_table, tree_items, DumpFormat};

/// What list a shared dump holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every record in origin order.
    Exceptions,
    /// The records one snapshot sees.
    Snapshot(u32),
    /// Every tree block in walk order.
    Tree,
    /// The device as runs of chunks of one class.
    Bitmap,
}

impl View {
    fn list_name(self) -> &'static str {
        match self {
            View::Exceptions | View::Snapshot(_) => "exceptions",
            View::Tree => "tree",
            View::Bitmap => "bitmap",
        }
    }
}

/// Writes the dump of `source` in `view` and `format`, and returns the tail.
/// A snapshot view's id must have been checked.
pub fn write(
    out: &mut dyn Write,
    source: &SharedSource,
    view: View,
    format: DumpFormat,
    progress: &Progress,
) -> anyhow::Result<SharedDumpTail> {
    let bitmap = source.load_bitmap()?;
    let snapshot = match view {
        View::Snapshot(id) => Some(id),
        _ => None,
    };
    let head = source.head(&bitmap, snapshot);
    let json = match format {
        DumpFormat::Json => true,
        DumpFormat::Yaml => false,
        DumpFormat::Table => {
            return shared_table::write(out, source, &head, &bitmap, view, progress)
        }
    };
    let name = view.list_name();
    if json {
        write!(out, "{{{},\n  \"{name}\": [", json_fields(&head)?)?;
    } else {
        out.write_all(serde_yaml::to_string(&head)?.as_bytes())?;
        write!(out, "{name}:")?;
    }
    let mut list = List {
        batch: Batch::new(out),
        json,
    };
    let tail = match view {
        View::Exceptions => stream_exceptions(source, None, |r| {
            list.record(r, true);
            progress.tick(list.batch.count);
            list.batch.end_record()
        })?,
        View::Snapshot(id) => stream_exceptions(source, Some(id), |r| {
            list.record(r, false);
            progress.tick(list.batch.count);
            list.batch.end_record()
        })?,
        View::Tree => stream_tree(source, |block| {
            list.block(block)?;
            list.batch.end_record()
        })?,
        View::Bitmap => stream_chunk_runs(source, &bitmap, |run| {
            list.run(run);
            list.batch.end_record()
        })?,
    };
    list.close()?;
    if json {
        writeln!(out, ",{}\n}}", json_fields(&tail)?)?;
    } else {
        out.write_all(serde_yaml::to_string(&tail)?.as_bytes())?;
    }
    Ok(tail)
}

/// The streamed list of a JSON or YAML document.
struct List<'a> {
    batch: Batch<'a>,
    json: bool,
}

impl List<'_> {
    #[inline]
    fn item(&mut self) {
        self.batch.text(match (self.json, self.batch.count) {
            (true, 0) => b"\n    ",
            (true, _) => b",\n    ",
            (false, _) => b"\n- ",
        });
    }

    #[inline]
    fn record(&mut self, r: &SharedRecord, with_snapshots: bool) {
        self.item();
        record(&mut self.batch, self.json, r, with_snapshots);
    }

    fn run(&mut self, run: &ChunkRun) {
        self.item();
        let json = self.json;
        self.batch
            .text(if json { b"{\"start\":" } else { b"{start: " });
        self.batch.number(run.start);
        self.batch
            .text(if json { b",\"end\":" } else { b", end: " });
        self.batch.number(run.end);
        self.batch
            .text(if json { b",\"class\":\"" } else { b", class: " });
        self.batch.text(run.class.as_str().as_bytes());
        self.batch.text(match (json, run.used) {
            (true, true) => b"\",\"used\":true}",
            (true, false) => b"\",\"used\":false}",
            (false, true) => b", used: true}",
            (false, false) => b", used: false}",
        });
    }

    fn block(&mut self, block: &TreeBlock) -> std::io::Result<()> {
        if self.json {
            self.item();
            tree_items::json_block(&mut self.batch, block)
        } else {
            tree_items::yaml_block(&mut self.batch, block)
        }
    }

    fn close(mut self) -> std::io::Result<()> {
        self.batch.text(match (self.json, self.batch.count) {
            (true, 0) => b"]",
            (true, _) => b"\n  ]",
            (false, 0) => b" []\n",
            (false, _) => b"\n",
        });
        self.batch.drain()
    }
}

/// One record as a flow mapping: `{"origin_chunk":5,"cow_chunk":30,"snapshots":[0,1]}`
/// in JSON, `{origin_chunk: 5, cow_chunk: 30, snapshots: [0, 1]}` in YAML.
#[inline]
pub fn record(batch: &mut Batch<'_>, json: bool, r: &SharedRecord, with_snapshots: bool) {
    batch.text(if json {
        b"{\"origin_chunk\":"
    } else {
        b"{origin_chunk: "
    });
    batch.number(r.origin_chunk);
    batch.text(if json {
        b",\"cow_chunk\":"
    } else {
        b", cow_chunk: "
    });
    batch.number(r.cow_chunk);
    if with_snapshots {
        batch.text(if json {
            b",\"snapshots\":"
        } else {
            b", snapshots: "
        });
        batch.id_list(
            r.snapshots.0,
            if json { IdStyle::Json } else { IdStyle::Yaml },
        );
    }
    batch.text(b"}");
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
