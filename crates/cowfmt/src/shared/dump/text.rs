//! The shared dump schema as text, both ways: the JSON and YAML document
//! `cowdump` writes (head, one streamed list: `exceptions`, `tree` or
//! `bitmap`, then the tail) and the record lines `mkcow --from-dump` reads
//! back. Head and tail go through serde; list items are written by hand, in
//! serde's field order, at a fraction of serde's cost on millions of records.

use std::io::Write;

use super::chunks::stream_chunk_runs;
use super::journal::JournalDump;
use super::records::stream_exceptions;
use super::tree::stream_tree;
use super::{
    ChunkRun, SharedDumpHead, SharedDumpTail, SharedRecord, SharedSource, TreeBlock, TreeBody,
};
use crate::dump_lines::{open_list, write_fields, Batch, DumpWriteError, ListWriter, TextSyntax};
use crate::dump_read::FlatRecord;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::mask;

/// The fields of an `exceptions` item, in order (a snapshot's view has the
/// first two).
pub const RECORD_FIELDS: [&str; 3] = ["origin_chunk", "cow_chunk", "snapshots"];

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
    /// The name of the view's list in a document.
    pub fn list_name(self) -> &'static str {
        match self {
            View::Exceptions | View::Snapshot(_) => "exceptions",
            View::Tree => "tree",
            View::Bitmap => "bitmap",
        }
    }
}

/// Writes the document of `view` of `source` (head `head`, chunks `bitmap`)
/// in `syntax`; `tick` gets the count of records written after each one. A
/// snapshot view's id must have been checked. Returns the tail.
pub fn write_document(
    out: &mut dyn Write,
    source: &SharedSource,
    head: &SharedDumpHead,
    bitmap: &ChunkBitmap,
    view: View,
    syntax: TextSyntax,
    tick: &dyn Fn(u64),
) -> Result<SharedDumpTail, DumpWriteError> {
    write_fields(out, syntax, head, true)?;
    open_list(out, syntax, view.list_name())?;
    let mut list = ListWriter::new(out, syntax, &[]);
    let tail = match view {
        View::Exceptions | View::Snapshot(_) => {
            let snapshot = match view {
                View::Snapshot(id) => Some(id),
                _ => None,
            };
            stream_exceptions(source, snapshot, |r| {
                list.item();
                record(&mut list.batch, syntax, r, snapshot.is_none());
                tick(list.batch.count);
                list.batch.end_record()
            })?
        }
        View::Tree => stream_tree(source, |block| {
            tree_block(&mut list, block)?;
            list.batch.end_record()
        })?,
        View::Bitmap => stream_chunk_runs(source, bitmap, |run| {
            list.item();
            chunk_run(&mut list.batch, syntax, run);
            list.batch.end_record()
        })?,
    };
    list.close()?;
    write_fields(out, syntax, &tail, false)?;
    if syntax == TextSyntax::Json {
        writeln!(out, "\n}}")?;
    }
    Ok(tail)
}

/// Writes the journal view `dump` as one document in `syntax`.
pub fn write_journal(
    out: &mut dyn Write,
    dump: &JournalDump,
    syntax: TextSyntax,
) -> Result<(), DumpWriteError> {
    match syntax {
        TextSyntax::Json => writeln!(out, "{}", serde_json::to_string_pretty(dump)?)?,
        TextSyntax::Yaml => out.write_all(serde_yaml::to_string(dump)?.as_bytes())?,
    }
    Ok(())
}

/// A key of a flow mapping: `{"name":` / `,"name":` in JSON, `{name: ` /
/// `, name: ` in YAML.
#[inline]
fn flow_key(batch: &mut Batch<'_>, syntax: TextSyntax, name: &str, first: bool) {
    match syntax {
        TextSyntax::Json => {
            batch.text(if first { b"{\"" } else { b",\"" });
            batch.text(name.as_bytes());
            batch.text(b"\":");
        }
        TextSyntax::Yaml => {
            batch.text(if first { b"{" } else { b", " });
            batch.text(name.as_bytes());
            batch.text(b": ");
        }
    }
}

/// One record as a flow mapping: `{"origin_chunk":5,"cow_chunk":30,"snapshots":[0,1]}`
/// in JSON, `{origin_chunk: 5, cow_chunk: 30, snapshots: [0, 1]}` in YAML.
/// The keys are literals of a known length ([`RECORD_FIELDS`] as
/// [`flow_key`] writes them; a test keeps the two equal): this is the hot
/// loop of a dump, where copying each key in three pieces cost a fifth of
/// the time.
#[inline]
fn record(batch: &mut Batch<'_>, syntax: TextSyntax, r: &SharedRecord, with_snapshots: bool) {
    let json = syntax == TextSyntax::Json;
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
        batch.id_list(r.snapshots.0, syntax);
    }
    batch.text(b"}");
}

fn chunk_run(batch: &mut Batch<'_>, syntax: TextSyntax, run: &ChunkRun) {
    flow_key(batch, syntax, "start", true);
    batch.number(run.start);
    flow_key(batch, syntax, "end", false);
    batch.number(run.end);
    flow_key(batch, syntax, "class", false);
    string(batch, syntax, run.class.as_str());
    flow_key(batch, syntax, "used", false);
    batch.text(if run.used { b"true}" } else { b"false}" });
}

/// A plain word as a string value: quoted in JSON, bare in YAML.
fn string(batch: &mut Batch<'_>, syntax: TextSyntax, word: &str) {
    match syntax {
        TextSyntax::Json => {
            batch.text(b"\"");
            batch.text(word.as_bytes());
            batch.text(b"\"");
        }
        TextSyntax::Yaml => batch.text(word.as_bytes()),
    }
}

/// The fields of a tree block: a compact JSON object, or a YAML block
/// mapping as an item of the top-level sequence.
struct BlockFields<'l, 'a> {
    batch: &'l mut Batch<'a>,
    syntax: TextSyntax,
}

impl BlockFields<'_, '_> {
    /// The block's field `name`, the first one opening the item.
    fn key(&mut self, name: &str, first: bool) {
        match self.syntax {
            TextSyntax::Json => flow_key(self.batch, self.syntax, name, first),
            TextSyntax::Yaml => {
                self.batch.text(if first { b"\n- " } else { b"\n  " });
                self.batch.text(name.as_bytes());
                self.batch.text(b": ");
            }
        }
    }

    fn number(&mut self, name: &str, value: u64) {
        self.key(name, false);
        self.batch.number(value);
    }

    fn optional(&mut self, name: &str, value: Option<u64>) {
        self.key(name, false);
        match value {
            Some(value) => self.batch.number(value),
            None => self.batch.text(b"null"),
        }
    }

    fn sizes(&mut self, entries: u64, records: Option<u64>, bytes_used: u64, fill_percent: f64) {
        self.number("entries", entries);
        if let Some(records) = records {
            self.number("records", records);
        }
        self.number("bytes_used", bytes_used);
        self.key("fill_percent", false);
        // Debug keeps the decimal point (`100.0`), so the value reads back as a float.
        self.batch.text(format!("{fill_percent:?}").as_bytes());
    }

    /// A nested list of flow mappings, each written by `item`: `[{..},{..}]`
    /// in JSON, `\n  - {..}` lines (or ` []`) in YAML.
    fn list<T>(&mut self, name: &str, items: &[T], mut item: impl FnMut(&mut Batch<'_>, &T)) {
        let json = self.syntax == TextSyntax::Json;
        if json {
            self.key(name, false);
            self.batch.text(b"[");
        } else {
            self.batch.text(b"\n  ");
            self.batch.text(name.as_bytes());
            self.batch.text(b":");
        }
        for (i, value) in items.iter().enumerate() {
            self.batch.text(match (json, i) {
                (true, 0) => b"",
                (true, _) => b",",
                (false, _) => b"\n  - ",
            });
            item(self.batch, value);
        }
        self.batch.text(match (json, items.is_empty()) {
            (true, _) => b"]",
            (false, true) => b" []",
            (false, false) => b"",
        });
    }
}

/// Writes `block` as one item of the `tree` list.
fn tree_block(list: &mut ListWriter<'_>, block: &TreeBlock) -> std::io::Result<()> {
    let syntax = list.syntax;
    if syntax == TextSyntax::Json {
        list.item();
    }
    let mut fields = BlockFields {
        batch: &mut list.batch,
        syntax,
    };
    fields.key("chunk", true);
    fields.batch.number(block.chunk);
    fields.number("level", u64::from(block.level));
    fields.number("lo", block.lo);
    fields.optional("hi", block.hi);
    fields.key("parent", false);
    match block.parent {
        Some(parent) => {
            flow_key(fields.batch, syntax, "chunk", true);
            fields.batch.number(parent.chunk);
            flow_key(fields.batch, syntax, "entry", false);
            fields.batch.number(parent.entry as u64);
            fields.batch.text(b"}");
        }
        None => fields.batch.text(b"null"),
    }
    match &block.body {
        TreeBody::Node {
            entries,
            bytes_used,
            fill_percent,
            children,
        } => {
            fields.key("type", false);
            string(fields.batch, syntax, "node");
            fields.sizes(*entries, None, *bytes_used, *fill_percent);
            fields.list("children", children, |batch, child| {
                flow_key(batch, syntax, "key", true);
                batch.number(child.key);
                flow_key(batch, syntax, "chunk", false);
                batch.number(child.chunk);
                batch.text(b"}");
            });
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
            fields.key("type", false);
            string(fields.batch, syntax, "leaf");
            fields.sizes(*entries, Some(*records), *bytes_used, *fill_percent);
            fields.number("base_chunk", *base_chunk);
            fields.key("using_mask", false);
            fields.batch.id_list(using_mask.0, syntax);
            fields.list("exceptions", exceptions, |batch, r| {
                record(batch, syntax, r, true)
            });
        }
        TreeBody::Damaged { problem } => {
            fields.key("type", false);
            string(fields.batch, syntax, "damaged");
            fields.key("problem", false);
            match syntax {
                TextSyntax::Json => serde_json::to_writer(fields.batch.buffer(), problem)?,
                TextSyntax::Yaml => {
                    let scalar = serde_yaml::to_string(problem).map_err(std::io::Error::other)?;
                    fields.batch.text(scalar.trim_end().as_bytes());
                }
            }
        }
    }
    if syntax == TextSyntax::Json {
        fields.batch.text(b"}");
    }
    Ok(())
}

/// The record of an `exceptions` line in the writer's own field order, or
/// `None` for anything else (left to serde, which words any error): its ids
/// must be in range.
pub fn flat_record(line: &FlatRecord<'_>) -> Option<SharedRecord> {
    if line.len() != RECORD_FIELDS.len()
        || (0..RECORD_FIELDS.len()).any(|i| line.key(i) != RECORD_FIELDS[i].as_bytes())
    {
        return None;
    }
    let mut share = 0u64;
    for &id in line.list(2)? {
        if id >= u64::from(mask::MAX_SNAPSHOTS) {
            return None;
        }
        share |= mask::bit(id as u32);
    }
    Some(SharedRecord {
        origin_chunk: line.number(0)?,
        cow_chunk: line.number(1)?,
        snapshots: super::ShareMask(share),
    })
}

#[cfg(test)]
mod tests;
