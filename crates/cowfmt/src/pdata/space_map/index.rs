//! The metadata space map's index block: one entry per bitmap block (where it
//! is, how many of its entries are free, and a hint where the first free one
//! may be).

use crate::pdata::block::{seal, verify, Block, BlockDefect, BlockKind, BLOCK_BYTES};

use super::bitmap::ENTRIES_PER_BITMAP;

/// Entries an index block holds (`MAX_METADATA_BITMAPS`).
pub const MAX_BITMAPS: usize = 255;
/// Blocks a metadata space map covers at most (`DM_SM_METADATA_MAX_BLOCKS`).
pub const MAX_METADATA_BLOCKS: u64 = MAX_BITMAPS as u64 * ENTRIES_PER_BITMAP;

const ENTRIES_AT: usize = 16;
const ENTRY_BYTES: usize = 16;

/// One bitmap block as the index names it (`disk_index_entry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexEntry {
    /// Where the bitmap block is.
    pub blocknr: u64,
    /// Free entries of the bitmap, out of its full 16,320 (past the end of
    /// the device too).
    pub nr_free: u32,
    /// No entry below this one is free (a search hint).
    pub none_free_before: u32,
}

/// Why an index block cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IndexDefect {
    /// The block is not a valid index block at its location.
    #[error(transparent)]
    Block(#[from] BlockDefect),
    /// A device of `nr_blocks` blocks needs more bitmaps than an index holds.
    #[error("{nr_blocks} blocks need {needed} bitmaps, an index block holds {MAX_BITMAPS}")]
    TooManyBlocks {
        /// Blocks the space map root claims.
        nr_blocks: u64,
        /// Bitmaps they need.
        needed: u64,
    },
    /// An entry the device needs names block 0 (the superblock), i.e. is missing.
    #[error("entry {entry} (blocks {first}..{end}) is empty: the bitmap it needs is missing")]
    MissingBitmap {
        /// The entry (the bitmap's number).
        entry: usize,
        /// The first block it covers.
        first: u64,
        /// One past the last block it covers.
        end: u64,
    },
    /// An entry claims more free entries than a bitmap has.
    #[error("entry {entry} counts {nr_free} free entries, a bitmap has {ENTRIES_PER_BITMAP}")]
    NrFreeTooLarge {
        /// The entry.
        entry: usize,
        /// The count stored.
        nr_free: u32,
    },
}

/// The bitmaps a space map of `nr_blocks` blocks needs.
pub fn bitmaps_for(nr_blocks: u64) -> u64 {
    nr_blocks.div_ceil(ENTRIES_PER_BITMAP)
}

/// The entries of an index block that a device of `nr_blocks` blocks uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataIndex {
    /// Entry `i` describes blocks `i * 16,320 .. (i + 1) * 16,320`.
    pub entries: Vec<IndexEntry>,
}

impl MetadataIndex {
    /// Decodes the index block read at `location` for a space map of
    /// `nr_blocks` blocks: the block is verified, and each entry the device
    /// needs must name a bitmap and count no more free entries than it has.
    pub fn decode(location: u64, block: &[u8], nr_blocks: u64) -> Result<Self, IndexDefect> {
        verify(BlockKind::SmIndex, location, block)?;
        let needed = bitmaps_for(nr_blocks);
        if needed > MAX_BITMAPS as u64 {
            return Err(IndexDefect::TooManyBlocks { nr_blocks, needed });
        }
        let entries: Vec<IndexEntry> = (0..needed as usize).map(|i| entry_at(block, i)).collect();
        for (i, entry) in entries.iter().enumerate() {
            if entry.blocknr == 0 {
                let first = i as u64 * ENTRIES_PER_BITMAP;
                return Err(IndexDefect::MissingBitmap {
                    entry: i,
                    first,
                    end: (first + ENTRIES_PER_BITMAP).min(nr_blocks),
                });
            }
            if u64::from(entry.nr_free) > ENTRIES_PER_BITMAP {
                return Err(IndexDefect::NrFreeTooLarge {
                    entry: i,
                    nr_free: entry.nr_free,
                });
            }
        }
        Ok(MetadataIndex { entries })
    }

    /// The sealed index block at `location`; unused entries are zero.
    pub fn encode(&self, location: u64) -> Box<Block> {
        assert!(
            self.entries.len() <= MAX_BITMAPS,
            "at most {MAX_BITMAPS} bitmaps"
        );
        let mut block = Box::new([0u8; BLOCK_BYTES]);
        for (i, entry) in self.entries.iter().enumerate() {
            let at = ENTRIES_AT + i * ENTRY_BYTES;
            block[at..at + 8].copy_from_slice(&entry.blocknr.to_le_bytes());
            block[at + 8..at + 12].copy_from_slice(&entry.nr_free.to_le_bytes());
            block[at + 12..at + 16].copy_from_slice(&entry.none_free_before.to_le_bytes());
        }
        seal(BlockKind::SmIndex, location, &mut block[..]);
        block
    }
}

fn entry_at(block: &[u8], i: usize) -> IndexEntry {
    let at = ENTRIES_AT + i * ENTRY_BYTES;
    let u32_at = |at: usize| u32::from_le_bytes(block[at..at + 4].try_into().expect("4 bytes"));
    IndexEntry {
        blocknr: u64::from_le_bytes(block[at..at + 8].try_into().expect("8 bytes")),
        nr_free: u32_at(at + 8),
        none_free_before: u32_at(at + 12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(u64, u32, u32)]) -> MetadataIndex {
        MetadataIndex {
            entries: entries
                .iter()
                .map(|&(blocknr, nr_free, none_free_before)| IndexEntry {
                    blocknr,
                    nr_free,
                    none_free_before,
                })
                .collect(),
        }
    }

    #[test]
    fn the_index_round_trips_with_entries_at_byte_16() {
        let idx = index(&[(3, 16_314, 6), (7, 16_320, 0)]);
        let block = idx.encode(1);
        assert_eq!(&block[16..24], &3u64.to_le_bytes());
        assert_eq!(&block[24..28], &16_314u32.to_le_bytes());
        assert_eq!(&block[28..32], &6u32.to_le_bytes());
        assert_eq!(MetadataIndex::decode(1, &block[..], 20_000), Ok(idx));
    }

    #[test]
    fn an_index_is_refused_for_each_defect() {
        let block = index(&[(3, 16_314, 6)]).encode(1);
        assert!(matches!(
            MetadataIndex::decode(2, &block[..], 100),
            Err(IndexDefect::Block(BlockDefect::Blocknr { .. }))
        ));
        assert_eq!(
            MetadataIndex::decode(1, &block[..], 20_000),
            Err(IndexDefect::MissingBitmap {
                entry: 1,
                first: 16_320,
                end: 20_000
            })
        );
        assert_eq!(
            MetadataIndex::decode(1, &block[..], MAX_METADATA_BLOCKS + 1),
            Err(IndexDefect::TooManyBlocks {
                nr_blocks: MAX_METADATA_BLOCKS + 1,
                needed: 256
            })
        );
        let block = index(&[(3, 16_321, 0)]).encode(1);
        assert_eq!(
            MetadataIndex::decode(1, &block[..], 100),
            Err(IndexDefect::NrFreeTooLarge {
                entry: 0,
                nr_free: 16_321
            })
        );
    }

    #[test]
    fn the_kernel_limit_is_255_bitmaps_of_16320_blocks() {
        assert_eq!(MAX_METADATA_BLOCKS, 4_161_600);
        assert_eq!(bitmaps_for(16_320), 1);
        assert_eq!(bitmaps_for(16_321), 2);
    }
}
