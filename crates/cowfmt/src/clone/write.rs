//! The one writer of clone metadata: a fresh format holding a given
//! hydration bitset, laid out in the kernel's fresh order (superblock 0,
//! space-map index 1, ref-count root 2, bitmaps, then the bitset's B-tree
//! root and its array blocks), the space map committed and flushed, the
//! superblock written last and flushed. mkcow, restore, repair and migrate
//! all write through it.
//!
//! Up to 378 array blocks the bitset is placed exactly as 6.12's
//! `dm_array_resize` places it: the root first, then the array blocks in
//! index order; when the 253rd block is inserted the full root splits
//! beneath, its two children taking the next two blocks (the root keeps
//! the stale tail of the full leaf it was, as the kernel's does). Larger bitsets
//! are built by `pdata` (valid, placed differently from the kernel).

use crate::bitset::DenseBitmap;
use crate::pdata::alloc::{AllocError, Allocator};
use crate::pdata::array::encode_array_block;
use crate::pdata::bitset::build_bitset;
use crate::pdata::block::{seal, Block, BlockKind};
use crate::pdata::btree::node::NODE_HEADER_BYTES;
use crate::pdata::btree::{BuildError, Node, NodeKind};
use crate::pdata::io::BlockTarget;
use crate::pdata::space_map::{MetadataWriter, SmRoot, WriteError};

use super::geometry::{Geometry, GeometryError, ARRAY_BTREE_MAX_ENTRIES, WORDS_PER_ARRAY_BLOCK};
use super::superblock::CloneSuperblock;

/// Bytes of one B-tree key.
const KEY_BYTES: usize = 8;
/// Bytes of one bitset word.
const WORD_BYTES: u32 = 8;
/// Entries the left child keeps when the kernel splits a full root beneath.
const SPLIT_LEFT: u64 = ARRAY_BTREE_MAX_ENTRIES / 2;
/// The most array blocks one split beneath holds: the left child's half and
/// a full right child.
const ONE_SPLIT_MOST: u64 = SPLIT_LEFT + ARRAY_BTREE_MAX_ENTRIES;

/// What a write committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneWritten {
    /// The space map root stored in the superblock.
    pub sm_root: SmRoot,
    /// The block of the bitset's array B-tree root.
    pub bitset_root: u64,
    /// The metadata blocks the space map covers.
    pub nr_blocks: u64,
}

/// Why clone metadata could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CloneWriteError {
    /// The geometry does not fit the metadata device.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// The bitset handed over is not one bit per region.
    #[error("the hydration bitset holds {found} regions where the geometry has {expected}")]
    BitsLength {
        /// Regions of the geometry.
        expected: u64,
        /// Bits handed over.
        found: u64,
    },
    /// The space map transaction failed (I/O, no free block).
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl From<BuildError> for CloneWriteError {
    fn from(error: BuildError) -> Self {
        CloneWriteError::Write(WriteError::Build(error))
    }
}

impl From<AllocError> for CloneWriteError {
    fn from(error: AllocError) -> Self {
        CloneWriteError::Write(WriteError::Alloc(error))
    }
}

impl From<crate::error::Error> for CloneWriteError {
    fn from(error: crate::error::Error) -> Self {
        CloneWriteError::Write(WriteError::Io(error))
    }
}

/// Formats `target` as the kernel's first activation does: `nr_blocks`
/// metadata blocks (see [`Geometry::check_metadata_device`]), every region
/// unhydrated.
pub fn format_clone<T: BlockTarget + ?Sized>(
    target: &mut T,
    geometry: &Geometry,
    nr_blocks: u64,
) -> Result<CloneWritten, CloneWriteError> {
    write_clone(
        target,
        geometry,
        nr_blocks,
        &DenseBitmap::new(geometry.nr_regions()),
    )
}

/// Writes fresh clone metadata of `nr_blocks` blocks to `target` whose
/// bitset holds `bits` (one bit per region, set = hydrated).
pub fn write_clone<T: BlockTarget + ?Sized>(
    target: &mut T,
    geometry: &Geometry,
    nr_blocks: u64,
    bits: &DenseBitmap,
) -> Result<CloneWritten, CloneWriteError> {
    if bits.len() != geometry.nr_regions() {
        return Err(CloneWriteError::BitsLength {
            expected: geometry.nr_regions(),
            found: bits.len(),
        });
    }
    let needed = geometry.fresh_metadata_blocks(nr_blocks);
    if nr_blocks < needed {
        return Err(GeometryError::MetadataTooSmall {
            nr_blocks,
            nr_regions: geometry.nr_regions(),
            needed,
        }
        .into());
    }
    let mut writer = MetadataWriter::fresh(nr_blocks, target)?;
    let (space, out) = writer.parts();
    let bitset_root = match geometry.nr_array_blocks() {
        n if n > ARRAY_BTREE_MAX_ENTRIES && n <= ONE_SPLIT_MOST => {
            build_split_once(space, out, bits)?
        }
        _ => build_bitset(space, out, bits)?,
    };
    let sm_root = writer.commit(|root| sealed_superblock(geometry, root, bitset_root))?;
    Ok(CloneWritten {
        sm_root,
        bitset_root,
        nr_blocks,
    })
}

/// The superblock naming `sm_root` and `bitset_root`, sealed for block 0.
fn sealed_superblock(geometry: &Geometry, sm_root: &SmRoot, bitset_root: u64) -> Box<Block> {
    let mut superblock = CloneSuperblock::new(geometry.region_sectors(), geometry.target_sectors());
    superblock.sm_root = sm_root.encode();
    superblock.bitset_root = bitset_root;
    let mut block = Box::new([0u8; crate::pdata::block::BLOCK_BYTES]);
    superblock.encode(&mut block);
    block
}

/// Builds a bitset of 253 to 378 array blocks in the kernel's order: the
/// root, the first 253 array blocks, the root's two children (split
/// beneath when the 253rd block went in), the remaining array blocks.
fn build_split_once(
    alloc: &mut dyn Allocator,
    target: &mut dyn BlockTarget,
    bits: &DenseBitmap,
) -> Result<u64, CloneWriteError> {
    let nr_words = crate::pdata::bitset::nr_words(bits.len());
    let nr_blocks = nr_words.div_ceil(WORDS_PER_ARRAY_BLOCK);
    let root = alloc.alloc()?;
    let mut children = None;
    let mut locations = Vec::with_capacity(nr_blocks as usize);
    let mut packed = Vec::with_capacity((WORDS_PER_ARRAY_BLOCK * 8) as usize);
    for index in 0..nr_blocks {
        let first = index * WORDS_PER_ARRAY_BLOCK;
        packed.clear();
        for word in first..(first + WORDS_PER_ARRAY_BLOCK).min(nr_words) {
            packed.extend_from_slice(&bits.word(word).to_le_bytes());
        }
        let location = alloc.alloc()?;
        target.write_blocks(
            location,
            &encode_array_block(location, WORD_BYTES, &packed)[..],
        )?;
        locations.push(location);
        if index == ARRAY_BTREE_MAX_ENTRIES {
            children = Some((alloc.alloc()?, alloc.alloc()?));
        }
    }
    let (left, right) = children.expect("more than 252 array blocks split the root");
    let leaf = |keys: std::ops::Range<u64>| {
        let mut node = Node::new(NodeKind::Leaf, WORD_BYTES);
        for key in keys {
            node.push(key, &locations[key as usize].to_le_bytes());
        }
        node
    };
    target.write_blocks(left, &leaf(0..SPLIT_LEFT).encode(left)[..])?;
    target.write_blocks(right, &leaf(SPLIT_LEFT..nr_blocks).encode(right)[..])?;
    let mut internal = Node::new(NodeKind::Internal, WORD_BYTES);
    internal.push(0, &left.to_le_bytes());
    internal.push(SPLIT_LEFT, &right.to_le_bytes());
    let full_leaf = leaf(0..ARRAY_BTREE_MAX_ENTRIES);
    target.write_blocks(root, &split_root(&internal, &full_leaf, root)[..])?;
    Ok(root)
}

/// The root `internal` as the kernel leaves it after splitting beneath the
/// full leaf `full`: the kernel rewrites the header and the first two keys
/// and values in place, so the rest of the old leaf stays in the block.
fn split_root(internal: &Node, full: &Node, location: u64) -> Box<Block> {
    let fresh = internal.encode(location);
    let mut block = full.encode(location);
    let keys_end = NODE_HEADER_BYTES + internal.len() * KEY_BYTES;
    let values_at = NODE_HEADER_BYTES + ARRAY_BTREE_MAX_ENTRIES as usize * KEY_BYTES;
    let values_end = values_at + internal.len() * WORD_BYTES as usize;
    block[..keys_end].copy_from_slice(&fresh[..keys_end]);
    block[values_at..values_end].copy_from_slice(&fresh[values_at..values_end]);
    seal(BlockKind::BtreeNode, location, &mut block[..]);
    block
}
