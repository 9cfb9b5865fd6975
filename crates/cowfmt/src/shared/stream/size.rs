//! How big a shared store written by [`crate::shared::build`] is: its leaves
//! are packed exactly as the tree writer packs them, its nodes stacked above,
//! and the header, bitmap and journal in front. Fewer records per origin chunk
//! never take more leaves, so a count made before sharing is an upper bound.

use crate::error::{Error, Result};
use crate::shared::geometry::{bitmap_chunks_for, default_journal_chunks, Geometry};
use crate::shared::leaf::{Leaf, LEAF_HEADER_BYTES, MAP_ENTRY_BYTES, RECORD_BYTES};
use crate::shared::node::node_capacity;

/// Records one origin chunk may have in a leaf of `chunk_bytes` (a leaf with
/// that one entry is full).
pub fn max_records_per_chunk(chunk_bytes: u64) -> u64 {
    (chunk_bytes as usize - LEAF_HEADER_BYTES - 2 * MAP_ENTRY_BYTES) as u64 / RECORD_BYTES as u64
}

/// Counts the leaves the tree writer fills, entry by entry.
#[derive(Debug, Clone)]
pub(crate) struct LeafPacker {
    chunk_bytes: usize,
    used: usize,
    count: usize,
    base: u64,
    leaves: u64,
}

impl LeafPacker {
    /// A packer for leaves of `chunk_bytes`.
    pub(crate) fn new(chunk_bytes: u64) -> Self {
        LeafPacker {
            chunk_bytes: chunk_bytes as usize,
            used: Leaf::new(0).bytes_used(),
            count: 0,
            base: 0,
            leaves: 0,
        }
    }

    /// Adds origin chunk `origin` (above every one added so far) with `records`
    /// records; an entry too big for a leaf counts as a full leaf of its own.
    pub(crate) fn add(&mut self, origin: u64, records: u64) {
        let extra = MAP_ENTRY_BYTES + RECORD_BYTES * records as usize;
        let fits_rchunk = origin - self.base <= u64::from(u32::MAX);
        if self.count > 0 && (self.used + extra > self.chunk_bytes || !fits_rchunk) {
            self.leaves += 1;
            self.count = 0;
            self.used = Leaf::new(0).bytes_used();
        }
        if self.count == 0 {
            self.base = if self.leaves == 0 && origin <= u64::from(u32::MAX) {
                0
            } else {
                origin
            };
        }
        self.used = (self.used + extra).min(self.chunk_bytes);
        self.count += 1;
    }

    /// Leaves and nodes of the finished tree.
    pub(crate) fn tree_chunks(&self) -> u64 {
        let leaves = self.leaves + u64::from(self.count > 0 || self.leaves == 0);
        let capacity = node_capacity(self.chunk_bytes) as u64;
        let mut level = leaves;
        let mut nodes = 0;
        loop {
            level = level.div_ceil(capacity);
            nodes += level;
            if level == 1 {
                break;
            }
        }
        leaves + nodes
    }
}

/// The journal of a new shared store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalSize {
    /// Exactly this many chunks.
    Chunks(u64),
    /// This many bytes, rounded up to whole chunks.
    Bytes(u64),
    /// mkcow's default: 128 MiB, at most an eighth of the device.
    Default,
}

impl JournalSize {
    /// Journal chunks on a device of `nr_chunks` chunks of `chunk_bytes`.
    pub fn chunks(self, nr_chunks: u64, chunk_bytes: u64) -> u64 {
        match self {
            JournalSize::Chunks(n) => n,
            JournalSize::Bytes(bytes) => bytes.div_ceil(chunk_bytes),
            JournalSize::Default => {
                default_journal_chunks(nr_chunks.saturating_mul(chunk_bytes), chunk_bytes)
            }
        }
    }
}

/// The space a new shared store needs: `content` chunks of data and tree after
/// the header, bitmap and journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SharedNeed {
    /// Output chunk size in bytes.
    pub(crate) chunk_bytes: u64,
    /// The journal.
    pub(crate) journal: JournalSize,
    /// Data and tree chunks.
    pub(crate) content: u64,
}

impl SharedNeed {
    /// Whether a device of `device_bytes` holds the store.
    pub(crate) fn fits(&self, device_bytes: u64) -> bool {
        let nr_chunks = device_bytes / self.chunk_bytes;
        let journal = self.journal.chunks(nr_chunks, self.chunk_bytes);
        let geometry = Geometry {
            chunk_bytes: self.chunk_bytes,
            nr_chunks,
            nr_bitmap_chunks: bitmap_chunks_for(nr_chunks, self.chunk_bytes),
            nr_journal_chunks: journal,
        };
        geometry.reserved_fits() && geometry.data_chunks() >= self.content
    }

    /// The smallest device, in bytes, that holds the store.
    pub(crate) fn bytes(&self) -> Result<u64> {
        let overflow = || {
            Error::Invalid(format!(
                "a shared store of {} data and tree chunks of {} bytes would not fit 64 bits of bytes",
                self.content, self.chunk_bytes
            ))
        };
        let base = self.content.checked_add(1).ok_or_else(overflow)?;
        let mut n = base;
        loop {
            let journal = self.journal.chunks(n, self.chunk_bytes);
            let next = base
                .checked_add(bitmap_chunks_for(n, self.chunk_bytes))
                .and_then(|v| v.checked_add(journal))
                .ok_or_else(overflow)?;
            if next <= n {
                break;
            }
            n = next;
        }
        n.checked_mul(self.chunk_bytes).ok_or_else(overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::shared::build::StoreBuilder;
    use crate::shared::leaf::Exception;

    #[test]
    fn the_packer_counts_what_the_tree_writer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        let device = Device::create_or_extend(&path, 4000 * 512).unwrap();
        let builder = StoreBuilder::new(&device, 1, 0).unwrap();
        let mut tree = builder.into_tree();
        let mut packer = LeafPacker::new(512);
        let mut records_added = 0;
        for origin in 0..700u64 {
            let n = 1 + (origin * 7 % 5) as usize;
            let records: Vec<Exception> = (0..n)
                .map(|i| Exception {
                    share: 1 << i,
                    chunk: 3000,
                })
                .collect();
            tree.push(origin * 3, &records).unwrap();
            packer.add(origin * 3, n as u64);
            records_added += n as u64;
        }
        let built = tree.finish(0b11111).unwrap();
        assert_eq!(built.records, records_added);
        assert!(built.header.tree_level >= 2);
        let geometry = crate::shared::geometry::Geometry::new(device.size_bytes(), 1, 0);
        let bitmap = crate::shared::bitmap::ChunkBitmap::load(&device, &geometry).unwrap();
        assert_eq!(
            bitmap.count_used() - geometry.data_start(),
            packer.tree_chunks()
        );
    }

    #[test]
    fn fewer_records_never_take_more_leaves() {
        let mut full = LeafPacker::new(4096);
        let mut shared = LeafPacker::new(4096);
        for origin in 0..5000u64 {
            full.add(origin, 4);
            shared.add(origin, 1 + origin % 4);
        }
        assert!(shared.tree_chunks() <= full.tree_chunks());
        assert_eq!(LeafPacker::new(4096).tree_chunks(), 2);
    }

    #[test]
    fn the_smallest_device_holds_the_store_and_one_chunk_less_does_not() {
        for journal in [
            JournalSize::Chunks(0),
            JournalSize::Chunks(7),
            JournalSize::Bytes(40_000),
            JournalSize::Default,
        ] {
            for content in [2u64, 100, 5000, 40_000, 1 << 20] {
                let need = SharedNeed {
                    chunk_bytes: 4096,
                    journal,
                    content,
                };
                let bytes = need.bytes().unwrap();
                assert!(need.fits(bytes), "{journal:?} {content}");
                assert!(!need.fits(bytes - 4096), "{journal:?} {content}");
            }
        }
        assert_eq!(max_records_per_chunk(512), 29);
    }
}
