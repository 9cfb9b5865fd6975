//! What is wrong with a metadata space map: its structures as read, and its
//! counts against what the metadata really references.

use std::ops::Range;

use crate::pdata::block::BlockDefect;
use crate::pdata::btree::walk::WalkDefect;

use super::index::IndexDefect;

/// One problem of a metadata space map, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmFinding {
    /// The space map covers more blocks than the device has.
    #[error("space map root: it covers {nr_blocks} blocks, the device has {device_blocks}")]
    PastDevice {
        /// Blocks the root claims.
        nr_blocks: u64,
        /// Whole blocks of the device.
        device_blocks: u64,
    },
    /// A structure of the space map is said to lie past the blocks it covers.
    #[error(
        "space map {what}: block {location} is past the end of the space map ({nr_blocks} blocks)"
    )]
    PointerPastEnd {
        /// Which structure (`index block`, `bitmap 3`, ...).
        what: String,
        /// The location stored.
        location: u64,
        /// Blocks the space map covers.
        nr_blocks: u64,
    },
    /// The index block is unusable: no count is known.
    #[error("space map index block {location}: {defect}")]
    Index {
        /// Where the index block was read.
        location: u64,
        /// Why it is unusable.
        defect: IndexDefect,
    },
    /// A bitmap block is unusable: the counts of its blocks are not known.
    #[error("space map bitmap {bitmap} (block {location}, counts of blocks {}..{}): {defect}", .covers.start, .covers.end)]
    Bitmap {
        /// The bitmap's number in the index.
        bitmap: usize,
        /// Where it was read.
        location: u64,
        /// The blocks whose counts it holds.
        covers: Range<u64>,
        /// Why it is unusable.
        defect: BlockDefect,
    },
    /// A bitmap counts a block past the end of the space map.
    #[error("space map bitmap {bitmap}: block {block} is past the end of the space map but counted {value}")]
    EntryPastEnd {
        /// The bitmap's number.
        bitmap: usize,
        /// The block the entry stands for.
        block: u64,
        /// The entry's value.
        value: u8,
    },
    /// An index entry's free count disagrees with its bitmap.
    #[error("space map index entry {bitmap}: nr_free is {stored}, the bitmap has {counted} free entries")]
    NrFree {
        /// The bitmap's number.
        bitmap: usize,
        /// The value stored.
        stored: u32,
        /// Free entries counted in the bitmap.
        counted: u32,
    },
    /// An index entry's search hint skips a free entry (the kernel would
    /// never hand that block out).
    #[error(
        "space map index entry {bitmap}: none_free_before is {stored}, entry {first_free} is free"
    )]
    NoneFreeBefore {
        /// The bitmap's number.
        bitmap: usize,
        /// The hint stored.
        stored: u32,
        /// The first free entry of the bitmap.
        first_free: u32,
    },
    /// The ref-count tree holds a count for a block whose bitmap entry is
    /// not 3 (the kernel never reads it).
    #[error("space map ref-count tree: block {block} has count {count} there, its bitmap entry is {entry}")]
    RefCountNotOverflow {
        /// The block.
        block: u64,
        /// The count in the tree.
        count: u32,
        /// The bitmap entry.
        entry: u8,
    },
    /// A bitmap entry of 3 has no count in the ref-count tree (taken as 3).
    #[error("space map ref-count tree: block {block} has bitmap entry 3 but no count in the tree")]
    RefCountMissing {
        /// The block.
        block: u64,
    },
    /// The ref-count tree stores a count below 3.
    #[error("space map ref-count tree: block {block} has count {count}, the tree only holds counts of 3 or more")]
    RefCountTooSmall {
        /// The block.
        block: u64,
        /// The count stored.
        count: u32,
    },
    /// The ref-count tree is damaged; the counts it held are not known.
    #[error(transparent)]
    RefCountTree(WalkDefect),
    /// The root's `nr_allocated` disagrees with the bitmaps.
    #[error("space map root: nr_allocated is {stored}, the bitmaps count {counted} blocks in use")]
    NrAllocated {
        /// The value stored.
        stored: u64,
        /// Blocks with a count above zero.
        counted: u64,
    },
    /// Blocks counted in use that nothing references: space lost, no data at risk.
    #[error("space map: blocks {}..{} are counted {counted} but nothing references them (leaked)", .blocks.start, .blocks.end)]
    Leaked {
        /// The blocks, consecutive.
        blocks: Range<u64>,
        /// Their count.
        counted: u32,
    },
    /// Blocks referenced more often than counted: the kernel may hand them
    /// out again and overwrite live metadata.
    #[error("space map: blocks {}..{} are referenced {reachable} times but counted {counted} (doubly used or under-counted)", .blocks.start, .blocks.end)]
    UnderCounted {
        /// The blocks, consecutive.
        blocks: Range<u64>,
        /// Their count.
        counted: u32,
        /// References found.
        reachable: u32,
    },
    /// Blocks referenced less often than counted (they leak once freed).
    #[error("space map: blocks {}..{} are referenced {reachable} times but counted {counted} (over-counted)", .blocks.start, .blocks.end)]
    OverCounted {
        /// The blocks, consecutive.
        blocks: Range<u64>,
        /// Their count.
        counted: u32,
        /// References found.
        reachable: u32,
    },
}
