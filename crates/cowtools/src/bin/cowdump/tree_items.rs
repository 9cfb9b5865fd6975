//! Tree blocks as JSON or YAML list items, written by hand: the same fields,
//! in the same order, as serde writes them, at a fraction of serde's cost on
//! trees of millions of records.

use std::io;

use cowfmt::shared::dump::{TreeBlock, TreeBody};

use crate::batch::{Batch, IdStyle};
use crate::shared::record;

/// Writes `block` as one item of a top-level YAML sequence, starting on a new line.
pub fn yaml_block(batch: &mut Batch<'_>, block: &TreeBlock) -> io::Result<()> {
    batch.text(b"\n- chunk: ");
    batch.number(block.chunk);
    batch.text(b"\n  level: ");
    batch.number(u64::from(block.level));
    batch.text(b"\n  lo: ");
    batch.number(block.lo);
    batch.text(b"\n  hi: ");
    match block.hi {
        Some(hi) => batch.number(hi),
        None => batch.text(b"null"),
    }
    batch.text(b"\n  parent: ");
    match block.parent {
        Some(parent) => {
            batch.text(b"{chunk: ");
            batch.number(parent.chunk);
            batch.text(b", entry: ");
            batch.number(parent.entry as u64);
            batch.text(b"}");
        }
        None => batch.text(b"null"),
    }
    match &block.body {
        TreeBody::Node {
            entries,
            bytes_used,
            fill_percent,
            children,
        } => {
            batch.text(b"\n  type: node");
            sizes(batch, *entries, None, *bytes_used, *fill_percent);
            batch.text(b"\n  children:");
            for child in children {
                batch.text(b"\n  - {key: ");
                batch.number(child.key);
                batch.text(b", chunk: ");
                batch.number(child.chunk);
                batch.text(b"}");
            }
            if children.is_empty() {
                batch.text(b" []");
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
            batch.text(b"\n  type: leaf");
            sizes(batch, *entries, Some(*records), *bytes_used, *fill_percent);
            batch.text(b"\n  base_chunk: ");
            batch.number(*base_chunk);
            batch.text(b"\n  using_mask: ");
            batch.id_list(using_mask.0, IdStyle::Yaml);
            batch.text(b"\n  exceptions:");
            for r in exceptions {
                batch.text(b"\n  - ");
                record(batch, false, r, true);
            }
            if exceptions.is_empty() {
                batch.text(b" []");
            }
        }
        TreeBody::Damaged { problem } => {
            batch.text(b"\n  type: damaged\n  problem: ");
            let scalar = serde_yaml::to_string(problem).map_err(io::Error::other)?;
            batch.text(scalar.trim_end().as_bytes());
        }
    }
    Ok(())
}

/// Writes `block` as one compact JSON object (no separator before it).
pub fn json_block(batch: &mut Batch<'_>, block: &TreeBlock) -> io::Result<()> {
    batch.text(b"{\"chunk\":");
    batch.number(block.chunk);
    batch.text(b",\"level\":");
    batch.number(u64::from(block.level));
    batch.text(b",\"lo\":");
    batch.number(block.lo);
    batch.text(b",\"hi\":");
    match block.hi {
        Some(hi) => batch.number(hi),
        None => batch.text(b"null"),
    }
    batch.text(b",\"parent\":");
    match block.parent {
        Some(parent) => {
            batch.text(b"{\"chunk\":");
            batch.number(parent.chunk);
            batch.text(b",\"entry\":");
            batch.number(parent.entry as u64);
            batch.text(b"}");
        }
        None => batch.text(b"null"),
    }
    match &block.body {
        TreeBody::Node {
            entries,
            bytes_used,
            fill_percent,
            children,
        } => {
            batch.text(b",\"type\":\"node\"");
            json_sizes(batch, *entries, None, *bytes_used, *fill_percent);
            batch.text(b",\"children\":[");
            for (i, child) in children.iter().enumerate() {
                batch.text(if i == 0 { b"{\"key\":" } else { b",{\"key\":" });
                batch.number(child.key);
                batch.text(b",\"chunk\":");
                batch.number(child.chunk);
                batch.text(b"}");
            }
            batch.text(b"]");
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
            batch.text(b",\"type\":\"leaf\"");
            json_sizes(batch, *entries, Some(*records), *bytes_used, *fill_percent);
            batch.text(b",\"base_chunk\":");
            batch.number(*base_chunk);
            batch.text(b",\"using_mask\":");
            batch.id_list(using_mask.0, IdStyle::Json);
            batch.text(b",\"exceptions\":[");
            for (i, r) in exceptions.iter().enumerate() {
                if i > 0 {
                    batch.text(b",");
                }
                record(batch, true, r, true);
            }
            batch.text(b"]");
        }
        TreeBody::Damaged { problem } => {
            batch.text(b",\"type\":\"damaged\",\"problem\":");
            serde_json::to_writer(batch.buffer(), problem)?;
        }
    }
    batch.text(b"}");
    Ok(())
}

fn json_sizes(
    batch: &mut Batch<'_>,
    entries: u64,
    records: Option<u64>,
    bytes_used: u64,
    fill_percent: f64,
) {
    batch.text(b",\"entries\":");
    batch.number(entries);
    if let Some(records) = records {
        batch.text(b",\"records\":");
        batch.number(records);
    }
    batch.text(b",\"bytes_used\":");
    batch.number(bytes_used);
    batch.text(format!(",\"fill_percent\":{fill_percent:?}").as_bytes());
}

fn sizes(
    batch: &mut Batch<'_>,
    entries: u64,
    records: Option<u64>,
    bytes_used: u64,
    fill_percent: f64,
) {
    batch.text(b"\n  entries: ");
    batch.number(entries);
    if let Some(records) = records {
        batch.text(b"\n  records: ");
        batch.number(records);
    }
    batch.text(b"\n  bytes_used: ");
    batch.number(bytes_used);
    // Debug keeps the decimal point (`100.0`), so the value reads back as a float.
    batch.text(format!("\n  fill_percent: {fill_percent:?}").as_bytes());
}
