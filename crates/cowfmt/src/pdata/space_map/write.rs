//! Writing metadata in a transaction: an allocator that hands out only blocks
//! free in the committed state and not yet used in this transaction, a block
//! target that batches consecutive writes and refuses to overwrite a block
//! the committed state uses (shadowing), and a commit that writes the space
//! map's own blocks (ref-count tree, bitmaps, index), flushes, then writes
//! the caller's superblock and flushes again: the superblock is the switch.

use crate::bitset::DenseBitmap;
use crate::error::Error;
use crate::pdata::alloc::{AllocError, Allocator};
use crate::pdata::block::{Block, BLOCK_BYTES};
use crate::pdata::btree::build::{build, BuildError};
use crate::pdata::btree::{max_entries, Node, NodeKind};
use crate::pdata::io::BlockTarget;

use super::bitmap::{Bitmap, ENTRIES_PER_BITMAP, OVERFLOW};
use super::index::{bitmaps_for, IndexEntry, MetadataIndex, MAX_METADATA_BLOCKS};
use super::load::{CommittedSpaceMap, MAX_RUN_BLOCKS};
use super::refcount::{MIN_TREE_COUNT, VALUE_SIZE};
use super::root::SmRoot;

/// Where the superblock of a persistent-data device lives.
pub const SUPERBLOCK_LOCATION: u64 = 0;

/// Why a transaction cannot be started or committed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Reading or writing the device failed, or a write would have
    /// overwritten committed metadata.
    #[error(transparent)]
    Io(#[from] Error),
    /// No free block was left.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The committed space map could not be read whole: a transaction over
    /// it could hand out a block still in use.
    #[error("the committed space map is damaged ({findings} findings, counts of blocks {first_unknown:?} unknown): repair it before writing")]
    Damaged {
        /// Findings made while reading it.
        findings: usize,
        /// The first range of blocks whose counts are unknown, if any.
        first_unknown: Option<std::ops::Range<u64>>,
    },
    /// The device cannot hold a space map.
    #[error("a metadata space map of {nr_blocks} blocks is impossible: {why}")]
    Geometry {
        /// Blocks asked for.
        nr_blocks: u64,
        /// The limit it breaks.
        why: &'static str,
    },
    /// The ref-count tree could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The reference counts of a transaction and the blocks it may hand out.
#[derive(Debug, Clone)]
pub struct TxSpace {
    committed: DenseBitmap,
    counts: Vec<u32>,
    cursor: u64,
}

impl TxSpace {
    /// The count of `location` in this transaction.
    pub fn count(&self, location: u64) -> u32 {
        self.counts[location as usize]
    }

    /// One reference fewer to `location` (a block shadowed or dropped). A
    /// committed block whose count drops to 0 is still not handed out before
    /// the commit.
    pub fn dec(&mut self, location: u64) {
        let count = &mut self.counts[location as usize];
        debug_assert!(*count > 0, "block {location} is not in use");
        *count = count.saturating_sub(1);
    }

    /// Blocks of the space map.
    pub fn nr_blocks(&self) -> u64 {
        self.counts.len() as u64
    }

    fn is_free(&self, location: u64) -> bool {
        self.counts[location as usize] == 0 && !self.committed.get(location)
    }
}

impl Allocator for TxSpace {
    fn alloc(&mut self) -> Result<u64, AllocError> {
        let nr_blocks = self.nr_blocks();
        let found = (self.cursor..nr_blocks)
            .chain(0..self.cursor)
            .find(|&location| self.is_free(location));
        let Some(location) = found else {
            return Err(AllocError::Full { nr_blocks });
        };
        self.cursor = location + 1;
        self.counts[location as usize] = 1;
        Ok(location)
    }

    fn inc(&mut self, location: u64) {
        self.counts[location as usize] += 1;
    }
}

/// A block target that gathers consecutive writes into one and refuses any
/// write to a block the committed state uses.
pub struct BatchTarget<'t, T: BlockTarget + ?Sized> {
    target: &'t mut T,
    committed: DenseBitmap,
    first: u64,
    pending: Vec<u8>,
}

impl<T: BlockTarget + ?Sized> BatchTarget<'_, T> {
    fn write_pending(&mut self) -> crate::Result<()> {
        if !self.pending.is_empty() {
            self.target.write_blocks(self.first, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

impl<T: BlockTarget + ?Sized> BlockTarget for BatchTarget<'_, T> {
    fn write_blocks(&mut self, first: u64, data: &[u8]) -> crate::Result<()> {
        let count = (data.len() / BLOCK_BYTES) as u64;
        if let Some(block) = (first..first + count).find(|&b| self.committed.get(b)) {
            return Err(Error::Invalid(format!(
                "metadata block {block} belongs to the committed metadata: a transaction writes only new blocks"
            )));
        }
        let end = self.first + (self.pending.len() / BLOCK_BYTES) as u64;
        if first != end || self.pending.len() >= MAX_RUN_BLOCKS * BLOCK_BYTES {
            self.write_pending()?;
            self.first = first;
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> crate::Result<()> {
        self.write_pending()?;
        self.target.flush()
    }
}

/// Where the space map's own blocks go at commit.
#[derive(Debug, Clone)]
enum Layout {
    /// Kept from the start of a fresh format, as the kernel places them.
    Fresh {
        index: u64,
        ref_count_root: u64,
        bitmaps: Vec<u64>,
    },
    /// New blocks, the committed ones released.
    Shadow { old: Vec<u64> },
}

/// One transaction over a metadata device: hand [`MetadataWriter::parts`] to
/// the builders, then [`MetadataWriter::commit`].
pub struct MetadataWriter<'t, T: BlockTarget + ?Sized> {
    space: TxSpace,
    out: BatchTarget<'t, T>,
    layout: Layout,
}

impl<'t, T: BlockTarget + ?Sized> MetadataWriter<'t, T> {
    /// A fresh format of `nr_blocks` blocks, as the kernel's first activation
    /// lays it out: superblock 0, index block 1, ref-count root 2, bitmaps
    /// 3.., then the caller's blocks in the order it allocates them.
    pub fn fresh(nr_blocks: u64, target: &'t mut T) -> Result<Self, WriteError> {
        let nr_bitmaps = bitmaps_for(nr_blocks);
        if nr_blocks > MAX_METADATA_BLOCKS {
            return Err(WriteError::Geometry {
                nr_blocks,
                why: "the kernel's limit is 4,161,600 blocks (255 bitmaps)",
            });
        }
        if nr_blocks < 3 + nr_bitmaps {
            return Err(WriteError::Geometry {
                nr_blocks,
                why: "the superblock, index, ref-count root and bitmaps do not fit",
            });
        }
        let mut space = TxSpace {
            committed: DenseBitmap::new(nr_blocks),
            counts: vec![0; nr_blocks as usize],
            cursor: SUPERBLOCK_LOCATION,
        };
        let mut reserve = || space.alloc().expect("checked to fit");
        let (superblock, index, ref_count_root) = (reserve(), reserve(), reserve());
        debug_assert_eq!(superblock, SUPERBLOCK_LOCATION);
        let bitmaps = (0..nr_bitmaps).map(|_| reserve()).collect();
        let out = BatchTarget {
            target,
            committed: space.committed.clone(),
            first: 0,
            pending: Vec::new(),
        };
        Ok(MetadataWriter {
            space,
            out,
            layout: Layout::Fresh {
                index,
                ref_count_root,
                bitmaps,
            },
        })
    }

    /// A transaction over the committed space map `loaded` (read whole and
    /// clean of unknown counts): every block it counts, and the superblock,
    /// stays untouched until the commit. Only counts protect blocks: check
    /// the map against reachability ([`super::check`]) before writing.
    pub fn open(loaded: &CommittedSpaceMap, target: &'t mut T) -> Result<Self, WriteError> {
        if !loaded.unknown.is_empty() || loaded.index.is_none() {
            return Err(WriteError::Damaged {
                findings: loaded.findings.len(),
                first_unknown: loaded.unknown.first().cloned(),
            });
        }
        let nr_blocks = loaded.counts.len() as u64;
        let mut committed = DenseBitmap::new(nr_blocks);
        for (location, &count) in loaded.counts.iter().enumerate() {
            if count > 0 {
                committed.test_and_set(location as u64);
            }
        }
        if nr_blocks > SUPERBLOCK_LOCATION {
            committed.test_and_set(SUPERBLOCK_LOCATION);
        }
        let space = TxSpace {
            committed: committed.clone(),
            counts: loaded.counts.clone(),
            cursor: SUPERBLOCK_LOCATION + 1,
        };
        let out = BatchTarget {
            target,
            committed,
            first: 0,
            pending: Vec::new(),
        };
        Ok(MetadataWriter {
            space,
            out,
            layout: Layout::Shadow {
                old: loaded.own_blocks.clone(),
            },
        })
    }

    /// The allocator and the block target the builders take.
    pub fn parts(&mut self) -> (&mut TxSpace, &mut BatchTarget<'t, T>) {
        (&mut self.space, &mut self.out)
    }

    /// Writes the space map's own blocks, flushes, writes the superblock
    /// `superblock` makes from the new root at block 0 and flushes again.
    pub fn commit(
        mut self,
        superblock: impl FnOnce(&SmRoot) -> Box<Block>,
    ) -> Result<SmRoot, WriteError> {
        let (index_block, reserved_root, bitmaps) = self.place_own_blocks()?;
        let ref_count_root = self.write_ref_counts(reserved_root)?;
        let index = self.write_bitmaps(&bitmaps)?;
        self.out
            .write_blocks(index_block, &index.encode(index_block)[..])?;
        self.out.flush()?;
        let root = SmRoot {
            nr_blocks: self.space.nr_blocks(),
            nr_allocated: self.space.counts.iter().filter(|&&c| c > 0).count() as u64,
            index_block,
            ref_count_root,
        };
        let block = superblock(&root);
        self.out
            .target
            .write_blocks(SUPERBLOCK_LOCATION, &block[..])?;
        self.out.target.flush()?;
        Ok(root)
    }

    /// The index, the ref-count root a fresh format kept (if any) and the
    /// bitmaps, allocated now unless a fresh format kept them.
    fn place_own_blocks(&mut self) -> Result<(u64, Option<u64>, Vec<u64>), WriteError> {
        match std::mem::replace(&mut self.layout, Layout::Shadow { old: Vec::new() }) {
            Layout::Fresh {
                index,
                ref_count_root,
                bitmaps,
            } => Ok((index, Some(ref_count_root), bitmaps)),
            Layout::Shadow { old } => {
                for location in old {
                    self.space.dec(location);
                }
                let index = self.space.alloc()?;
                let bitmaps = (0..bitmaps_for(self.space.nr_blocks()))
                    .map(|_| self.space.alloc())
                    .collect::<Result<_, _>>()?;
                Ok((index, None, bitmaps))
            }
        }
    }

    /// Writes the counts of 3 and more: into the leaf a fresh format kept
    /// when they fit one, else as a tree built in new blocks; its root.
    fn write_ref_counts(&mut self, reserved: Option<u64>) -> Result<u64, WriteError> {
        let shared: Vec<(u64, [u8; 4])> = (self.space.counts.iter().enumerate())
            .filter(|(_, &count)| count >= MIN_TREE_COUNT)
            .map(|(block, &count)| (block as u64, count.to_le_bytes()))
            .collect();
        if let Some(location) = reserved {
            if shared.len() <= max_entries(VALUE_SIZE) as usize {
                let mut leaf = Node::new(NodeKind::Leaf, VALUE_SIZE);
                for (block, count) in &shared {
                    leaf.push(*block, count);
                }
                self.out
                    .write_blocks(location, &leaf.encode(location)[..])?;
                return Ok(location);
            }
            self.space.dec(location);
        }
        Ok(build(&mut self.space, &mut self.out, VALUE_SIZE, shared)?)
    }

    fn write_bitmaps(&mut self, locations: &[u64]) -> Result<MetadataIndex, WriteError> {
        let mut index = MetadataIndex::default();
        for (i, &location) in locations.iter().enumerate() {
            let first = i * ENTRIES_PER_BITMAP as usize;
            let end = (first + ENTRIES_PER_BITMAP as usize).min(self.space.counts.len());
            let mut bitmap = Bitmap::new();
            let mut used = 0u32;
            let mut first_free = None;
            for (slot, &count) in self.space.counts[first..end].iter().enumerate() {
                if count == 0 {
                    first_free.get_or_insert(slot as u32);
                    continue;
                }
                bitmap.set(slot, count.min(u32::from(OVERFLOW)) as u8);
                used += 1;
            }
            self.out
                .write_blocks(location, &bitmap.encode(location)[..])?;
            index.entries.push(IndexEntry {
                blocknr: location,
                nr_free: ENTRIES_PER_BITMAP as u32 - used,
                none_free_before: first_free.unwrap_or((end - first) as u32),
            });
        }
        Ok(index)
    }
}
