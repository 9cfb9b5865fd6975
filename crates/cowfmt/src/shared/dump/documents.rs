//! Whole dumps in memory, one per view, for tests and for readers of a dump
//! file. The tools stream the same documents instead of building them.

use serde::{Deserialize, Serialize};

use crate::error::Result;

use super::chunks::stream_chunk_runs;
use super::model::{
    ChunkRun, SharedDumpHead, SharedDumpTail, SharedRecord, SnapshotRecord, TreeBlock,
};
use super::records::stream_exceptions;
use super::source::SharedSource;
use super::tree::stream_tree;

/// The default view: every record in origin-chunk order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDump {
    /// Header, geometry, snapshots, chunk counts.
    #[serde(flatten)]
    pub head: SharedDumpHead,
    /// Every record.
    pub exceptions: Vec<SharedRecord>,
    /// Tree totals and problems.
    #[serde(flatten)]
    pub tail: SharedDumpTail,
}

/// One snapshot's view (`--snapshot`): the records it sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDump {
    /// Header and the rest, with `snapshot` set.
    #[serde(flatten)]
    pub head: SharedDumpHead,
    /// The records whose share mask holds the snapshot.
    pub exceptions: Vec<SnapshotRecord>,
    /// Tree totals (over every record) and problems.
    #[serde(flatten)]
    pub tail: SharedDumpTail,
}

/// The tree view (`--tree`): every block in walk order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeDump {
    /// Header and the rest.
    #[serde(flatten)]
    pub head: SharedDumpHead,
    /// Every node, leaf and damaged block.
    pub tree: Vec<TreeBlock>,
    /// Tree totals and problems.
    #[serde(flatten)]
    pub tail: SharedDumpTail,
}

/// The bitmap view (`--bitmap`): the device as runs of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitmapDump {
    /// Header and the rest.
    #[serde(flatten)]
    pub head: SharedDumpHead,
    /// The runs, from chunk 0 to the end.
    pub bitmap: Vec<ChunkRun>,
    /// Tree totals, totals per class, problems.
    #[serde(flatten)]
    pub tail: SharedDumpTail,
}

impl SharedDump {
    /// The default view of `source`.
    pub fn of(source: &SharedSource) -> Result<Self> {
        let head = source.head(&source.load_bitmap()?, None);
        let mut exceptions = Vec::new();
        let tail = stream_exceptions(source, None, |r| {
            exceptions.push(*r);
            Ok(())
        })?;
        Ok(SharedDump {
            head,
            exceptions,
            tail,
        })
    }
}

impl SnapshotDump {
    /// What snapshot `id` of `source` sees; an error if it does not exist.
    pub fn of(source: &SharedSource, id: u32) -> Result<Self> {
        source.require_snapshot(id)?;
        let head = source.head(&source.load_bitmap()?, Some(id));
        let mut exceptions = Vec::new();
        let tail = stream_exceptions(source, Some(id), |r| {
            exceptions.push(SnapshotRecord {
                origin_chunk: r.origin_chunk,
                cow_chunk: r.cow_chunk,
            });
            Ok(())
        })?;
        Ok(SnapshotDump {
            head,
            exceptions,
            tail,
        })
    }
}

impl TreeDump {
    /// The tree view of `source`.
    pub fn of(source: &SharedSource) -> Result<Self> {
        let head = source.head(&source.load_bitmap()?, None);
        let mut tree = Vec::new();
        let tail = stream_tree(source, |b| {
            tree.push(b.clone());
            Ok(())
        })?;
        Ok(TreeDump { head, tree, tail })
    }
}

impl BitmapDump {
    /// The bitmap view of `source`.
    pub fn of(source: &SharedSource) -> Result<Self> {
        let bitmap = source.load_bitmap()?;
        let head = source.head(&bitmap, None);
        let mut runs = Vec::new();
        let tail = stream_chunk_runs(source, &bitmap, |r| {
            runs.push(*r);
            Ok(())
        })?;
        Ok(BitmapDump {
            head,
            bitmap: runs,
            tail,
        })
    }
}
