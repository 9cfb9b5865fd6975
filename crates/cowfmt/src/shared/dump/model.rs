//! The serde structs of a shared store dump. YAML and JSON carry the same
//! fields; docs/dump-schema.md describes each one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::kind::StoreKind;
use crate::shared::mask::{self, MAX_SNAPSHOTS};
use crate::shared::walk::BlockAt;

/// A set of snapshot ids (a share mask, `snapmask` or `using_mask`), written as
/// the ascending list of ids whose bits are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ShareMask(pub u64);

impl ShareMask {
    /// The ids in the mask, ascending.
    pub fn ids(self) -> Vec<u32> {
        mask::id_list(self.0)
    }

    /// Whether snapshot `id` is in the mask (false for ids of 64 and more).
    pub fn contains(self, id: u32) -> bool {
        id < MAX_SNAPSHOTS && self.0 & mask::bit(id) != 0
    }
}

impl Serialize for ShareMask {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(mask::ids(self.0))
    }
}

impl<'de> Deserialize<'de> for ShareMask {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(IdListVisitor)
    }
}

/// Reads a list of snapshot ids into a mask without collecting them.
struct IdListVisitor;

impl<'de> serde::de::Visitor<'de> for IdListVisitor {
    type Value = ShareMask;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of snapshot ids")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ShareMask, A::Error> {
        let mut m = 0u64;
        while let Some(id) = seq.next_element::<u32>()? {
            if id >= MAX_SNAPSHOTS {
                return Err(serde::de::Error::custom(format!(
                    "snapshot id {id} is out of range (0-63)"
                )));
            }
            m |= mask::bit(id);
        }
        Ok(ShareMask(m))
    }
}

/// A range of device chunks `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    /// The first chunk.
    pub start: u64,
    /// One past the last chunk.
    pub end: u64,
}

/// Where everything lives on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedGeometry {
    /// Bytes per chunk.
    pub chunk_bytes: u64,
    /// Whole chunks on the device.
    pub nr_chunks: u64,
    /// The allocation bitmap's chunks.
    pub bitmap: ChunkRange,
    /// The journal's chunks.
    pub journal: ChunkRange,
    /// The chunks the allocator hands out for nodes, leaves and data.
    pub data: ChunkRange,
}

/// Header, geometry, snapshots and chunk counts: everything known before the
/// tree is walked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedDumpHead {
    /// The dump schema version (1).
    pub format_version: u32,
    /// Always `shared`.
    pub kind: StoreKind,
    /// The header magic in hex (`0x55378008`).
    pub magic: String,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// Whether the header's valid field is non-zero.
    pub valid: bool,
    /// The raw valid field.
    pub valid_raw: u32,
    /// The header version (1).
    pub version: u32,
    /// The snapshots that exist (the ids set in `snapmask`).
    pub snapshots: ShareMask,
    /// The snapshot whose view is dumped (`--snapshot`), if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<u32>,
    /// Node levels above the leaves.
    pub tree_level: u32,
    /// The chunk of the root node.
    pub root_tree_chunk: u64,
    /// Journal chunks, from the header.
    pub journal_chunks: u64,
    /// COW device size in sectors.
    pub device_sectors: u64,
    /// Where the bitmap, journal and data range lie.
    pub geometry: SharedGeometry,
    /// Chunks the bitmap marks in use.
    pub used_chunks: u64,
    /// Chunks the bitmap marks free.
    pub free_chunks: u64,
}

/// The head fields of a shared dump that `mkcow --from-dump` reads
/// (docs/dump-schema.md); the others are derived again from the target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SharedRestoreHead {
    /// Refused unless 1, when present.
    #[serde(default)]
    pub format_version: Option<u32>,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// The header's valid flag.
    pub valid: bool,
    /// The header version; refused unless 1, when present.
    #[serde(default)]
    pub version: Option<u32>,
    /// The snapshots that exist, as ids.
    pub snapshots: Vec<u32>,
    /// Journal chunks; the default for the target when absent.
    #[serde(default)]
    pub journal_chunks: Option<u64>,
}

/// One exception record: an origin chunk, the COW chunk holding its old data,
/// and the snapshots that see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRecord {
    /// The origin chunk (`base_chunk + rchunk`).
    pub origin_chunk: u64,
    /// The COW chunk with the copied data.
    pub cow_chunk: u64,
    /// The record's share mask.
    pub snapshots: ShareMask,
}

/// One chunk of a single snapshot's view: where it reads origin chunk
/// `origin_chunk` from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The origin chunk.
    pub origin_chunk: u64,
    /// The COW chunk the snapshot reads instead.
    pub cow_chunk: u64,
}

/// The node entry that points at a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockParent {
    /// The parent node's chunk.
    pub chunk: u64,
    /// The entry's index in that node.
    pub entry: usize,
}

/// One entry of a node: the lowest origin chunk of the child and its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChild {
    /// The key as stored (never read for entry 0).
    pub key: u64,
    /// The child's chunk.
    pub chunk: u64,
}

/// What a tree block holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TreeBody {
    /// An interior node.
    Node {
        /// Entries (children).
        entries: u64,
        /// Bytes the node uses: 8 + 16 per entry.
        bytes_used: u64,
        /// `bytes_used` as a percentage of the chunk, one decimal.
        fill_percent: f64,
        /// The entries.
        children: Vec<NodeChild>,
    },
    /// A leaf.
    Leaf {
        /// Map entries (distinct origin chunks).
        entries: u64,
        /// Exception records.
        records: u64,
        /// Bytes the leaf uses: header, map with sentinel, records.
        bytes_used: u64,
        /// `bytes_used` as a percentage of the chunk, one decimal.
        fill_percent: f64,
        /// The origin chunk of rchunk 0.
        base_chunk: u64,
        /// The using_mask as stored.
        using_mask: ShareMask,
        /// The records, in leaf order.
        exceptions: Vec<SharedRecord>,
    },
    /// A block that could not be read; nothing below it was visited.
    Damaged {
        /// Why.
        problem: String,
    },
}

/// One block of the tree, where the walk found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeBlock {
    /// The block's COW chunk.
    pub chunk: u64,
    /// 0 for a leaf, `tree_level` for the root.
    pub level: u32,
    /// Lowest origin chunk the parent lets the block hold.
    pub lo: u64,
    /// One past the highest, or `null` for no bound.
    pub hi: Option<u64>,
    /// The entry pointing at the block; `null` for the root.
    pub parent: Option<BlockParent>,
    /// The block's contents.
    #[serde(flatten)]
    pub body: TreeBody,
}

/// A block the walk could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockProblem {
    /// The block's chunk.
    pub chunk: u64,
    /// Its level (0 = leaf).
    pub level: u32,
    /// Lowest origin chunk of its range.
    pub lo: u64,
    /// One past the highest, or `null`.
    pub hi: Option<u64>,
    /// The entry pointing at it; `null` for the root.
    pub parent: Option<BlockParent>,
    /// Why it could not be read.
    pub problem: String,
}

/// What a device chunk is, for the bitmap view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkClass {
    /// Chunk 0.
    Header,
    /// An allocation bitmap chunk.
    Bitmap,
    /// A journal chunk.
    Journal,
    /// A node of the tree.
    Node,
    /// A leaf of the tree.
    Leaf,
    /// A chunk some record points at.
    Data,
    /// Marked in use, but nothing refers to it.
    Leaked,
    /// Free, and nothing refers to it.
    Free,
}

impl ChunkClass {
    /// The name as the dump spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkClass::Header => "header",
            ChunkClass::Bitmap => "bitmap",
            ChunkClass::Journal => "journal",
            ChunkClass::Node => "node",
            ChunkClass::Leaf => "leaf",
            ChunkClass::Data => "data",
            ChunkClass::Leaked => "leaked",
            ChunkClass::Free => "free",
        }
    }
}

/// A maximal run of chunks of one class and one bitmap state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRun {
    /// The first chunk.
    pub start: u64,
    /// One past the last chunk.
    pub end: u64,
    /// What the chunks are.
    pub class: ChunkClass,
    /// Whether the bitmap marks them in use.
    pub used: bool,
}

/// Chunks of each class over the whole device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassTotals {
    /// Header chunks (1).
    pub header: u64,
    /// Bitmap chunks.
    pub bitmap: u64,
    /// Journal chunks.
    pub journal: u64,
    /// Tree nodes.
    pub node: u64,
    /// Tree leaves.
    pub leaf: u64,
    /// Chunks records point at.
    pub data: u64,
    /// Marked in use, referenced by nothing.
    pub leaked: u64,
    /// Free and referenced by nothing.
    pub free: u64,
    /// Header, bitmap, journal, tree or data chunks the bitmap marks free.
    pub unmarked: u64,
}

impl ClassTotals {
    /// Counts `count` chunks of `class` in bitmap state `used`.
    pub fn add(&mut self, class: ChunkClass, used: bool, count: u64) {
        let slot = match class {
            ChunkClass::Header => &mut self.header,
            ChunkClass::Bitmap => &mut self.bitmap,
            ChunkClass::Journal => &mut self.journal,
            ChunkClass::Node => &mut self.node,
            ChunkClass::Leaf => &mut self.leaf,
            ChunkClass::Data => &mut self.data,
            ChunkClass::Leaked => &mut self.leaked,
            ChunkClass::Free => &mut self.free,
        };
        *slot += count;
        if !used && class != ChunkClass::Free {
            self.unmarked += count;
        }
    }
}

/// What the walk found, known once the list is written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SharedDumpTail {
    /// Nodes read.
    pub nodes: u64,
    /// Leaves read.
    pub leaves: u64,
    /// Map entries (origin chunks) in those leaves.
    pub origin_chunks: u64,
    /// Records in those leaves (all of them, whatever the view).
    pub records: u64,
    /// Chunks of each class; only in the bitmap view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassTotals>,
    /// Blocks that could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<BlockProblem>,
}

/// The parent and range fields of a block, as the dump writes them.
pub(crate) fn placement(at: &BlockAt) -> (Option<u64>, Option<BlockParent>) {
    let hi = (at.hi != u64::MAX).then_some(at.hi);
    let parent = at.parent.map(|(chunk, entry)| BlockParent { chunk, entry });
    (hi, parent)
}

/// `used` bytes of a chunk of `chunk_bytes` as a percentage with one decimal.
pub(crate) fn fill_percent(used: u64, chunk_bytes: u64) -> f64 {
    (used * 1000 / chunk_bytes.max(1)) as f64 / 10.0
}
