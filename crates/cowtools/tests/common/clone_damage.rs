//! Damage on purpose to dm-clone metadata images, one structure or field at a
//! time, for the corruption matrices of cowcheck and cowrepair. The layout
//! is read from the image's own bytes ([`CloneLayout::read`]) so the same
//! damage lands on any kernel fixture (the blocks of a `meta-final` image
//! are not where the `meta-formatted` one had them). Each damage re-seals
//! the block it changes (checksum and blocknr as the kernel writes them)
//! unless breaking the checksum or the location is the damage itself.

use std::fs::OpenOptions;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use cowfmt::pdata::block::{seal, BlockKind, BLOCK_BYTES};
use cowfmt::pdata::space_map::{Bitmap, ENTRIES_PER_BITMAP};

/// Bits of the hydration bitset one array block holds (509 le64 words).
pub const REGIONS_PER_ARRAY_BLOCK: u64 = 509 * 64;

/// Superblock byte offsets (`struct superblock_disk`).
const SB_BLOCKNR: usize = 8;
const SB_MAGIC: usize = 32;
const SB_VERSION: usize = 40;
const SB_NR_BLOCKS: usize = 44;
const SB_NR_ALLOCATED: usize = 52;
const SB_INDEX_BLOCK: usize = 60;
const SB_REF_COUNT_ROOT: usize = 68;
const SB_REGION_SIZE: usize = 172;
const SB_TARGET_SIZE: usize = 180;
const SB_BITSET_ROOT: usize = 188;
/// B-tree node header offsets.
const NODE_FLAGS: usize = 4;
const NODE_NR_ENTRIES: usize = 16;
const NODE_MAX_ENTRIES: usize = 20;
const NODE_VALUE_SIZE: usize = 24;
const NODE_KEYS: usize = 32;
const INTERNAL_FLAG: u32 = 1;
/// Array block header offsets.
const ARRAY_MAX_ENTRIES: usize = 4;
const ARRAY_NR_ENTRIES: usize = 8;
const ARRAY_VALUE_SIZE: usize = 12;
const ARRAY_VALUES: usize = 24;
/// Space-map index entries start at byte 16, 16 bytes each
/// (blocknr le64, nr_free le32, none_free_before le32).
const INDEX_ENTRIES: usize = 16;

/// Where everything of one clone metadata image is, read from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneLayout {
    /// Blocks of the image file.
    pub file_blocks: u64,
    /// The space map root's `nr_blocks`.
    pub nr_blocks: u64,
    /// The space map root's `nr_allocated`.
    pub nr_allocated: u64,
    /// The space map index block.
    pub index_block: u64,
    /// The root of the space map's ref-count B-tree.
    pub ref_count_root: u64,
    /// The space map bitmap blocks, in index order.
    pub bitmaps: Vec<u64>,
    /// Region size in sectors.
    pub region_sectors: u64,
    /// Target size in sectors.
    pub target_sectors: u64,
    /// Regions of the target.
    pub nr_regions: u64,
    /// The root of the bitset's array B-tree.
    pub bitset_root: u64,
    /// Internal nodes of the array B-tree (empty when the root is a leaf).
    pub internal_nodes: Vec<u64>,
    /// Leaves of the array B-tree, in key order, with their entry counts.
    pub leaves: Vec<(u64, usize)>,
    /// The array blocks, by array index.
    pub array_blocks: Vec<u64>,
}

/// One damage of the matrix. Array block damage lands on array block 1
/// (block 0 when there is only one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneDamage {
    /// One bit of the superblock's stored checksum flipped.
    SuperblockChecksum,
    /// The superblock names itself block 7 (resealed).
    SuperblockBlocknr,
    /// The magic is 1.
    Magic,
    /// The version is 2.
    Version,
    /// The region size is 12 sectors (not a power of two).
    RegionSize,
    /// The target size is 0.
    TargetSizeZero,
    /// The target size doubled: twice the regions the array holds words for.
    TargetSizeDoubled,
    /// The space map root's `nr_blocks` is one block past the image.
    SmNrBlocks,
    /// The space map root's `nr_allocated` is one more.
    SmNrAllocated,
    /// The space map root's index block is past the image.
    SmIndexRoot,
    /// The first index entry's `nr_free` is 3 (resealed).
    IndexEntryNrFree,
    /// The first bitmap block's checksum broken (its last byte flipped).
    BitmapChecksum,
    /// The first bitmap says the array B-tree root is free (resealed).
    BitmapEntryFree,
    /// The ref-count tree root's checksum broken.
    RefCountNodeChecksum,
    /// The ref-count tree root's value size is 8 (resealed).
    RefCountNodeHeader,
    /// The array B-tree root's checksum broken.
    BtreeNodeChecksum,
    /// The array B-tree root's `nr_entries` above its `max_entries` (resealed).
    BtreeNodeHeader,
    /// The array B-tree root's first key above its second, or 1 when it has
    /// one entry (resealed).
    BtreeKeys,
    /// The first leaf's first value points past the image (resealed).
    BtreeValuePastEnd,
    /// An array block's checksum broken (one bitset byte changed).
    ArrayBlockChecksum,
    /// An array block's `max_entries` is 3 (resealed).
    ArrayBlockMaxEntries,
    /// An array block's `nr_entries` is one more than its `max_entries` (resealed).
    ArrayBlockNrEntries,
    /// An array block's `value_size` is 4 (resealed).
    ArrayBlockValueSize,
    /// The first bit past the last region set (needs a region count that is
    /// not a multiple of 64: fixture d).
    TailBits,
    /// The last block the space map covers counted as used while nothing
    /// reaches it, `nr_allocated` and the index entry agreeing: a leak and
    /// nothing else.
    LeakedBlock,
    /// The first leaf's second value names array block 0's block: that block
    /// is used twice and counted once (needs two array blocks).
    DoublyUsedBlock,
    /// The image cut just before its highest array block.
    Truncated,
}

impl CloneDamage {
    /// Every damage, in the matrix's order.
    pub const ALL: [CloneDamage; 27] = [
        CloneDamage::SuperblockChecksum,
        CloneDamage::SuperblockBlocknr,
        CloneDamage::Magic,
        CloneDamage::Version,
        CloneDamage::RegionSize,
        CloneDamage::TargetSizeZero,
        CloneDamage::TargetSizeDoubled,
        CloneDamage::SmNrBlocks,
        CloneDamage::SmNrAllocated,
        CloneDamage::SmIndexRoot,
        CloneDamage::IndexEntryNrFree,
        CloneDamage::BitmapChecksum,
        CloneDamage::BitmapEntryFree,
        CloneDamage::RefCountNodeChecksum,
        CloneDamage::RefCountNodeHeader,
        CloneDamage::BtreeNodeChecksum,
        CloneDamage::BtreeNodeHeader,
        CloneDamage::BtreeKeys,
        CloneDamage::BtreeValuePastEnd,
        CloneDamage::ArrayBlockChecksum,
        CloneDamage::ArrayBlockMaxEntries,
        CloneDamage::ArrayBlockNrEntries,
        CloneDamage::ArrayBlockValueSize,
        CloneDamage::TailBits,
        CloneDamage::LeakedBlock,
        CloneDamage::DoublyUsedBlock,
        CloneDamage::Truncated,
    ];
}

/// What a damage changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The block changed (0 for a superblock field; for a truncation, the
    /// first block cut off).
    pub block: u64,
    /// Another block the damage is about, when there is one: the block a
    /// bad pointer names, the leaked block, the block used twice.
    pub names: Option<u64>,
    /// The regions whose hydration state sat in array blocks this damage
    /// makes unreadable or wrong (empty when every bitset word stays
    /// readable; superblock damage leaves the bitset intact).
    pub regions_at_risk: Vec<Range<u64>>,
}

impl CloneLayout {
    /// Reads the layout of the clone metadata image at `path`, which must be
    /// undamaged.
    pub fn read(path: &Path) -> CloneLayout {
        let bytes = std::fs::read(path).expect("clone metadata image");
        let sb = block(&bytes, 0);
        let nr_blocks = u64_at(sb, SB_NR_BLOCKS);
        let index_block = u64_at(sb, SB_INDEX_BLOCK);
        let index = block(&bytes, index_block);
        let bitmaps = (0..nr_blocks.div_ceil(ENTRIES_PER_BITMAP))
            .map(|i| u64_at(index, INDEX_ENTRIES + i as usize * 16))
            .collect();
        let region_sectors = u64_at(sb, SB_REGION_SIZE);
        let target_sectors = u64_at(sb, SB_TARGET_SIZE);
        let bitset_root = u64_at(sb, SB_BITSET_ROOT);
        let mut layout = CloneLayout {
            file_blocks: bytes.len() as u64 / BLOCK_BYTES as u64,
            nr_blocks,
            nr_allocated: u64_at(sb, SB_NR_ALLOCATED),
            index_block,
            ref_count_root: u64_at(sb, SB_REF_COUNT_ROOT),
            bitmaps,
            region_sectors,
            target_sectors,
            nr_regions: target_sectors.div_ceil(region_sectors),
            bitset_root,
            internal_nodes: Vec::new(),
            leaves: Vec::new(),
            array_blocks: Vec::new(),
        };
        layout.descend(&bytes, bitset_root);
        layout
    }

    fn descend(&mut self, bytes: &[u8], node: u64) {
        let at = block(bytes, node);
        let values = values_at(at);
        let children: Vec<u64> = (0..u32_at(at, NODE_NR_ENTRIES) as usize)
            .map(|i| u64_at(at, values + i * 8))
            .collect();
        if u32_at(at, NODE_FLAGS) & INTERNAL_FLAG != 0 {
            self.internal_nodes.push(node);
            for child in children {
                self.descend(bytes, child);
            }
        } else {
            self.leaves.push((node, children.len()));
            self.array_blocks.extend(children);
        }
    }

    /// Every region of the target.
    pub fn all_regions(&self) -> Range<u64> {
        0..self.nr_regions
    }

    /// The regions whose bits array block `index` holds.
    pub fn regions_of_array_block(&self, index: usize) -> Range<u64> {
        let start = index as u64 * REGIONS_PER_ARRAY_BLOCK;
        start..(start + REGIONS_PER_ARRAY_BLOCK).min(self.nr_regions)
    }

    /// The array block the array block damages land on.
    pub fn damaged_array_index(&self) -> usize {
        1.min(self.array_blocks.len() - 1)
    }

    /// The regions of every array block at or past block `cut`, or below a
    /// B-tree leaf there: what a device cut at `cut` loses.
    fn regions_past(&self, cut: u64) -> Vec<Range<u64>> {
        let mut index = 0;
        let mut lost: Vec<Range<u64>> = Vec::new();
        for &(leaf, entries) in &self.leaves {
            for i in index..index + entries {
                if leaf >= cut || self.array_blocks[i] >= cut {
                    let regions = self.regions_of_array_block(i);
                    match lost.last_mut() {
                        Some(last) if last.end == regions.start => last.end = regions.end,
                        _ => lost.push(regions),
                    }
                }
            }
            index += entries;
        }
        lost
    }
}

/// Applies `damage` to the clone metadata image at `path` and says what it
/// changed. Panics when the image cannot take it (see each damage).
pub fn damage_clone(path: &Path, damage: CloneDamage) -> Damaged {
    let layout = CloneLayout::read(path);
    let mut bytes = std::fs::read(path).expect("clone metadata image");
    let array = layout.damaged_array_index();
    let array_block = layout.array_blocks[array];
    let array_regions = vec![layout.regions_of_array_block(array)];
    let root = layout.bitset_root;
    let first_leaf = layout.leaves[0].0;
    let changed = |block: u64| Damaged {
        block,
        names: None,
        regions_at_risk: Vec::new(),
    };
    use CloneDamage as D;
    let damaged = match damage {
        D::SuperblockChecksum => {
            block_mut(&mut bytes, 0)[0] ^= 1;
            changed(0)
        }
        D::SuperblockBlocknr => {
            seal(BlockKind::CloneSuperblock, 7, block_mut(&mut bytes, 0));
            changed(0)
        }
        D::Magic => superblock_field(&mut bytes, SB_MAGIC, 1),
        D::Version => {
            resealed(&mut bytes, 0, BlockKind::CloneSuperblock, |b| {
                put_u32(b, SB_VERSION, 2)
            });
            changed(0)
        }
        D::RegionSize => superblock_field(&mut bytes, SB_REGION_SIZE, 12),
        D::TargetSizeZero => superblock_field(&mut bytes, SB_TARGET_SIZE, 0),
        D::TargetSizeDoubled => {
            superblock_field(&mut bytes, SB_TARGET_SIZE, layout.target_sectors * 2)
        }
        D::SmNrBlocks => superblock_field(&mut bytes, SB_NR_BLOCKS, layout.file_blocks + 1),
        D::SmNrAllocated => superblock_field(&mut bytes, SB_NR_ALLOCATED, layout.nr_allocated + 1),
        D::SmIndexRoot => Damaged {
            names: Some(layout.file_blocks + 10),
            ..superblock_field(&mut bytes, SB_INDEX_BLOCK, layout.file_blocks + 10)
        },
        D::IndexEntryNrFree => {
            resealed(&mut bytes, layout.index_block, BlockKind::SmIndex, |b| {
                put_u32(b, INDEX_ENTRIES + 8, 3)
            });
            changed(layout.index_block)
        }
        D::BitmapChecksum => {
            block_mut(&mut bytes, layout.bitmaps[0])[BLOCK_BYTES - 1] ^= 0x40;
            changed(layout.bitmaps[0])
        }
        D::BitmapEntryFree => {
            set_count(&mut bytes, &layout, root, 0);
            Damaged {
                names: Some(root),
                ..changed(layout.bitmaps[0])
            }
        }
        D::RefCountNodeChecksum => {
            block_mut(&mut bytes, layout.ref_count_root)[BLOCK_BYTES - 1] ^= 0x40;
            changed(layout.ref_count_root)
        }
        D::RefCountNodeHeader => {
            let node = layout.ref_count_root;
            resealed(&mut bytes, node, BlockKind::BtreeNode, |b| {
                put_u32(b, NODE_VALUE_SIZE, 8)
            });
            changed(node)
        }
        D::BtreeNodeChecksum => {
            block_mut(&mut bytes, root)[BLOCK_BYTES - 1] ^= 0x40;
            at_risk(changed(root), vec![layout.all_regions()])
        }
        D::BtreeNodeHeader => {
            resealed(&mut bytes, root, BlockKind::BtreeNode, |b| {
                let max = u32_at(b, NODE_MAX_ENTRIES);
                put_u32(b, NODE_NR_ENTRIES, max + 1)
            });
            at_risk(changed(root), vec![layout.all_regions()])
        }
        D::BtreeKeys => {
            resealed(&mut bytes, root, BlockKind::BtreeNode, |b| {
                let key = match u32_at(b, NODE_NR_ENTRIES) {
                    1 => 1,
                    _ => u64_at(b, NODE_KEYS + 8) + 1,
                };
                put_u64(b, NODE_KEYS, key)
            });
            at_risk(changed(root), vec![layout.all_regions()])
        }
        D::BtreeValuePastEnd => {
            let past = layout.file_blocks + 100;
            resealed(&mut bytes, first_leaf, BlockKind::BtreeNode, |b| {
                let values = values_at(b);
                put_u64(b, values, past)
            });
            Damaged {
                block: first_leaf,
                names: Some(past),
                regions_at_risk: vec![layout.regions_of_array_block(0)],
            }
        }
        D::ArrayBlockChecksum => {
            block_mut(&mut bytes, array_block)[ARRAY_VALUES + 3] ^= 0x10;
            at_risk(changed(array_block), array_regions)
        }
        D::ArrayBlockMaxEntries => {
            array_header(&mut bytes, array_block, ARRAY_MAX_ENTRIES, |_| 3);
            at_risk(changed(array_block), array_regions)
        }
        D::ArrayBlockNrEntries => {
            array_header(&mut bytes, array_block, ARRAY_NR_ENTRIES, |b| {
                u32_at(b, ARRAY_MAX_ENTRIES) + 1
            });
            at_risk(changed(array_block), array_regions)
        }
        D::ArrayBlockValueSize => {
            array_header(&mut bytes, array_block, ARRAY_VALUE_SIZE, |_| 4);
            at_risk(changed(array_block), array_regions)
        }
        D::TailBits => {
            let bit = layout.nr_regions % 64;
            assert!(
                bit != 0,
                "{} regions: no bit past the last region in the last word",
                layout.nr_regions
            );
            let last = *layout.array_blocks.last().unwrap();
            resealed(&mut bytes, last, BlockKind::ArrayBlock, |b| {
                let at = ARRAY_VALUES + (u32_at(b, ARRAY_NR_ENTRIES) as usize - 1) * 8;
                let word = u64_at(b, at) | 1 << bit;
                put_u64(b, at, word)
            });
            changed(last)
        }
        D::LeakedBlock => {
            let leaked = layout.nr_blocks - 1;
            set_count(&mut bytes, &layout, leaked, 1);
            let bitmap = (leaked / ENTRIES_PER_BITMAP) as usize;
            resealed(&mut bytes, layout.index_block, BlockKind::SmIndex, |b| {
                let at = INDEX_ENTRIES + bitmap * 16 + 8;
                let nr_free = u32_at(b, at);
                put_u32(b, at, nr_free - 1)
            });
            resealed(&mut bytes, 0, BlockKind::CloneSuperblock, |b| {
                put_u64(b, SB_NR_ALLOCATED, layout.nr_allocated + 1)
            });
            Damaged {
                block: layout.bitmaps[bitmap],
                names: Some(leaked),
                regions_at_risk: Vec::new(),
            }
        }
        D::DoublyUsedBlock => {
            assert!(
                layout.leaves[0].1 >= 2,
                "the first leaf holds one array block"
            );
            let twice = layout.array_blocks[0];
            resealed(&mut bytes, first_leaf, BlockKind::BtreeNode, |b| {
                let values = values_at(b);
                put_u64(b, values + 8, twice)
            });
            Damaged {
                block: first_leaf,
                names: Some(twice),
                regions_at_risk: vec![layout.regions_of_array_block(1)],
            }
        }
        D::Truncated => {
            let cut = *layout.array_blocks.iter().max().unwrap();
            bytes.truncate(cut as usize * BLOCK_BYTES);
            Damaged {
                block: cut,
                names: None,
                regions_at_risk: layout.regions_past(cut),
            }
        }
    };
    write_image(path, &bytes);
    damaged
}

/// Writes `bytes` as the whole image at `path` (shorter: the file is cut).
fn write_image(path: &Path, bytes: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("image opened");
    file.write_all_at(bytes, 0).expect("image written");
    file.set_len(bytes.len() as u64).expect("image length set");
}

fn at_risk(damaged: Damaged, regions: Vec<Range<u64>>) -> Damaged {
    Damaged {
        regions_at_risk: regions,
        ..damaged
    }
}

/// Sets the le64 superblock field at `at` to `value` and reseals block 0.
fn superblock_field(bytes: &mut [u8], at: usize, value: u64) -> Damaged {
    resealed(bytes, 0, BlockKind::CloneSuperblock, |b| {
        put_u64(b, at, value)
    });
    Damaged {
        block: 0,
        names: None,
        regions_at_risk: Vec::new(),
    }
}

/// Sets the le32 array header field at `at` of array block `location` to
/// what `value` computes from the block, and reseals it.
fn array_header(bytes: &mut [u8], location: u64, at: usize, value: impl Fn(&[u8]) -> u32) {
    resealed(bytes, location, BlockKind::ArrayBlock, |b| {
        let value = value(b);
        put_u32(b, at, value)
    });
}

/// Sets the space map count of `location` in its bitmap to `count`, and
/// reseals the bitmap.
fn set_count(bytes: &mut [u8], layout: &CloneLayout, location: u64, count: u8) {
    let bitmap = layout.bitmaps[(location / ENTRIES_PER_BITMAP) as usize];
    let entry = (location % ENTRIES_PER_BITMAP) as usize;
    let block = block_mut(bytes, bitmap);
    let mut decoded = Bitmap::decode(bitmap, block).expect("an undamaged bitmap");
    assert_ne!(
        decoded.get(entry),
        count,
        "block {location} already counts {count}"
    );
    decoded.set(entry, count);
    block.copy_from_slice(&decoded.encode(bitmap)[..]);
}

/// Changes block `location` and seals it again as a block of `kind`.
fn resealed(bytes: &mut [u8], location: u64, kind: BlockKind, change: impl FnOnce(&mut [u8])) {
    let block = block_mut(bytes, location);
    change(block);
    seal(kind, location, block);
}

fn block(bytes: &[u8], location: u64) -> &[u8] {
    let at = location as usize * BLOCK_BYTES;
    &bytes[at..at + BLOCK_BYTES]
}

fn block_mut(bytes: &mut [u8], location: u64) -> &mut [u8] {
    let at = location as usize * BLOCK_BYTES;
    &mut bytes[at..at + BLOCK_BYTES]
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Where a B-tree node's values start.
fn values_at(node: &[u8]) -> usize {
    NODE_KEYS + u32_at(node, NODE_MAX_ENTRIES) as usize * 8
}
