//! The space map against the kernel: its fresh layout byte for byte, the
//! golden and kernel-made images loaded and checked clean against
//! reachability, each damage found, and a transaction that never writes a
//! block the committed state uses.

use crate::pdata::alloc::Allocator;
use crate::pdata::block::{seal, BlockKind, BLOCK_BYTES};
use crate::pdata::btree::walk::{self, Mode, NodeAt, TreeSpec, Visitor, WalkDefect};
use crate::pdata::btree::{Node, NodeKind};
use crate::pdata::io::{BlockSource, BlockTarget, MemBlocks};

use super::*;

const SM_ROOT_AT: usize = 44;
const BITSET_ROOT_AT: usize = 188;
const ARRAY_TREE: TreeSpec = TreeSpec {
    name: "array btree",
    leaf_value_size: 8,
};
const WORDS_PER_ARRAY_BLOCK: usize = 509;

fn kernel(name: &str, which: &str) -> MemBlocks {
    MemBlocks::from_bytes(crate::test_images::kernel_clone(name, which))
}

fn golden() -> MemBlocks {
    MemBlocks::from_bytes(crate::test_images::golden_clone())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn sm_root(mem: &MemBlocks) -> SmRoot {
    SmRoot::decode(
        mem.bytes()[SM_ROOT_AT..SM_ROOT_AT + 128]
            .try_into()
            .unwrap(),
    )
}

/// References from the clone superblock: itself, the array btree nodes and
/// the array blocks (each as often as the tree names it).
struct Reach {
    counts: Vec<u32>,
    defects: Vec<WalkDefect>,
}

impl Visitor for Reach {
    fn node(&mut self, at: &NodeAt, _node: &Node) {
        self.counts[at.location as usize] += 1;
    }
    fn leaf(&mut self, _at: &NodeAt, node: &Node) {
        for i in 0..node.len() {
            self.counts[node.value_u64(i) as usize] += 1;
        }
    }
    fn defect(&mut self, defect: WalkDefect) {
        self.defects.push(defect);
    }
}

fn reachable(mem: &MemBlocks) -> Vec<u32> {
    let mut reach = Reach {
        counts: vec![0; mem.nr_blocks() as usize],
        defects: Vec::new(),
    };
    reach.counts[0] = 1;
    let root = u64_at(mem.bytes(), BITSET_ROOT_AT);
    walk::walk(mem, ARRAY_TREE, root, Mode::Strict, &mut reach).unwrap();
    assert_eq!(reach.defects, []);
    reach.counts.truncate(sm_root(mem).nr_blocks as usize);
    reach.counts
}

fn findings(mem: &MemBlocks) -> Vec<SmFinding> {
    let loaded = load(mem, sm_root(mem)).unwrap();
    check(&loaded, reachable(mem))
}

/// The superblock `old` with a new space map root and bitset root, sealed.
fn superblock(old: &[u8], root: &SmRoot, bitset_root: u64) -> Box<crate::pdata::block::Block> {
    let mut block = Box::new([0u8; BLOCK_BYTES]);
    block.copy_from_slice(&old[..BLOCK_BYTES]);
    block[SM_ROOT_AT..SM_ROOT_AT + 128].copy_from_slice(&root.encode());
    block[BITSET_ROOT_AT..BITSET_ROOT_AT + 8].copy_from_slice(&bitset_root.to_le_bytes());
    seal(BlockKind::CloneSuperblock, 0, &mut block[..]);
    block
}

fn array_block(location: u64, nr_entries: u32) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK_BYTES];
    block[4..8].copy_from_slice(&(WORDS_PER_ARRAY_BLOCK as u32).to_le_bytes());
    block[8..12].copy_from_slice(&nr_entries.to_le_bytes());
    block[12..16].copy_from_slice(&8u32.to_le_bytes());
    seal(BlockKind::ArrayBlock, location, &mut block);
    block
}

/// Formats a zero bitset of `words` words the kernel's way (its root leaf
/// first, then one array block per 509 words) with the fresh writer.
fn fresh_format(nr_blocks: u64, words: usize, old_superblock: &[u8]) -> (MemBlocks, SmRoot) {
    let mut mem = MemBlocks::zeroed(nr_blocks);
    let mut writer = MetadataWriter::fresh(nr_blocks, &mut mem).unwrap();
    let (space, out) = writer.parts();
    let leaf_at = space.alloc().unwrap();
    let mut leaf = Node::new(NodeKind::Leaf, 8);
    for key in 0..words.div_ceil(WORDS_PER_ARRAY_BLOCK) {
        let location = space.alloc().unwrap();
        let nr = (words - key * WORDS_PER_ARRAY_BLOCK).min(WORDS_PER_ARRAY_BLOCK);
        out.write_blocks(location, &array_block(location, nr as u32))
            .unwrap();
        leaf.push(key as u64, &location.to_le_bytes());
    }
    out.write_blocks(leaf_at, &leaf.encode(leaf_at)[..])
        .unwrap();
    let root = writer
        .commit(|root| superblock(old_superblock, root, leaf_at))
        .unwrap();
    (mem, root)
}

#[test]
fn a_fresh_format_is_the_kernels_byte_for_byte() {
    for (name, words) in [
        ("a-region8-131072regions", 2048),
        ("b-region128-1024regions", 16),
        ("d-region2097152-4regions", 1),
    ] {
        let want = kernel(name, "formatted");
        let (mem, root) = fresh_format(want.nr_blocks(), words, want.bytes());
        assert_eq!(root, sm_root(&want), "{name}");
        crate::test_images::assert_same_blocks(name, mem.bytes(), want.bytes());
    }
}

#[test]
fn the_kernels_images_load_and_check_clean() {
    let mut images = vec![("golden".to_string(), golden())];
    for name in [
        "a-region8-131072regions",
        "b-region128-1024regions",
        "c-region8-8388608regions",
        "d-region2097152-4regions",
    ] {
        for which in ["formatted", "final"] {
            images.push((format!("{name} {which}"), kernel(name, which)));
        }
    }
    for (name, mem) in &images {
        let loaded = load(mem, sm_root(mem)).unwrap();
        assert_eq!(loaded.nr_allocated(), loaded.root.nr_allocated, "{name}");
        assert_eq!(check(&loaded, reachable(mem)), [], "{name}");
    }
}

#[test]
fn the_golden_space_map_is_what_the_kernel_committed() {
    let mem = golden();
    let loaded = load(&mem, sm_root(&mem)).unwrap();
    let used: Vec<u64> = (0..1024)
        .filter(|&b| loaded.counts[b as usize] > 0)
        .collect();
    assert_eq!(used, [0, 2, 10, 11, 12, 13]);
    assert_eq!(
        loaded.index.unwrap().entries,
        [IndexEntry {
            blocknr: 11,
            nr_free: 16_314,
            none_free_before: 1
        }]
    );
}

/// Rewrites the bitmap and index of `mem` through `damage`, resealed.
fn damage_bitmap(mem: &mut MemBlocks, damage: impl FnOnce(&mut Bitmap, &mut IndexEntry)) {
    let root = sm_root(mem);
    let index_block = mem
        .read_block(root.index_block, &|| "index".into())
        .unwrap();
    let mut index =
        MetadataIndex::decode(root.index_block, &index_block[..], root.nr_blocks).unwrap();
    let at = index.entries[0].blocknr;
    let block = mem.read_block(at, &|| "bitmap".into()).unwrap();
    let mut bitmap = Bitmap::decode(at, &block[..]).unwrap();
    damage(&mut bitmap, &mut index.entries[0]);
    mem.write_blocks(at, &bitmap.encode(at)[..]).unwrap();
    mem.write_blocks(root.index_block, &index.encode(root.index_block)[..])
        .unwrap();
}

/// A change to the bitmap and its index entry.
type Damage = dyn Fn(&mut Bitmap, &mut IndexEntry);

#[test]
fn each_damage_is_found() {
    let clean = kernel("b-region128-1024regions", "formatted");
    let cases: Vec<(&str, Box<Damage>, Vec<SmFinding>)> = vec![
        (
            "a count of 2 for a block used once",
            Box::new(|b, _| b.set(5, 2)),
            vec![SmFinding::OverCounted {
                blocks: 5..6,
                counted: 2,
                reachable: 1,
            }],
        ),
        (
            "a leaked block",
            Box::new(|b, e| {
                b.set(9, 1);
                e.nr_free -= 1;
            }),
            vec![
                SmFinding::NrAllocated {
                    stored: 6,
                    counted: 7,
                },
                SmFinding::Leaked {
                    blocks: 9..10,
                    counted: 1,
                },
            ],
        ),
        (
            "a used block counted free",
            Box::new(|b, e| {
                b.set(4, 0);
                e.nr_free += 1;
                e.none_free_before = 4;
            }),
            vec![
                SmFinding::NrAllocated {
                    stored: 6,
                    counted: 5,
                },
                SmFinding::UnderCounted {
                    blocks: 4..5,
                    counted: 0,
                    reachable: 1,
                },
            ],
        ),
        (
            "a wrong nr_free and a hint past a free entry",
            Box::new(|_, e| {
                e.nr_free = 100;
                e.none_free_before = 7;
            }),
            vec![
                SmFinding::NrFree {
                    bitmap: 0,
                    stored: 100,
                    counted: 16_314,
                },
                SmFinding::NoneFreeBefore {
                    bitmap: 0,
                    stored: 7,
                    first_free: 6,
                },
            ],
        ),
        (
            "an entry past the end of the space map",
            Box::new(|b, e| {
                b.set(2000, 1);
                e.nr_free -= 1;
            }),
            vec![SmFinding::EntryPastEnd {
                bitmap: 0,
                block: 2000,
                value: 1,
            }],
        ),
        (
            "a count of 3 the ref-count tree does not hold",
            Box::new(|b, _| b.set(5, 3)),
            vec![
                SmFinding::RefCountMissing { block: 5 },
                SmFinding::OverCounted {
                    blocks: 5..6,
                    counted: 3,
                    reachable: 1,
                },
            ],
        ),
    ];
    for (what, damage, want) in cases {
        let mut mem = clean.clone();
        damage_bitmap(&mut mem, damage);
        assert_eq!(findings(&mem), want, "{what}");
    }
}

#[test]
fn a_block_reached_twice_is_doubly_used() {
    let mem = kernel("a-region8-131072regions", "formatted");
    let loaded = load(&mem, sm_root(&mem)).unwrap();
    let mut reach = reachable(&mem);
    reach[6] += 1;
    reach[7] += 1;
    assert_eq!(
        check(&loaded, reach),
        [SmFinding::UnderCounted {
            blocks: 6..8,
            counted: 1,
            reachable: 2
        }]
    );
}

#[test]
fn a_damaged_bitmap_leaves_its_counts_unknown_not_leaked() {
    let mut mem = kernel("b-region128-1024regions", "formatted");
    mem.bytes_mut()[3 * BLOCK_BYTES + 100] ^= 1;
    let loaded = load(&mem, sm_root(&mem)).unwrap();
    assert_eq!(loaded.unknown, vec![0..1024]);
    let found = check(&loaded, reachable(&mem));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        matches!(
            &found[0],
            SmFinding::Bitmap {
                bitmap: 0,
                location: 3,
                ..
            }
        ),
        "{}",
        found[0]
    );
    assert!(matches!(
        MetadataWriter::open(&loaded, &mut mem.clone()),
        Err(WriteError::Damaged { .. })
    ));
}

/// A fresh image of `nr_blocks` blocks whose bitset root leaf names one full
/// array block four times (count 4, in the ref-count tree); the shared block.
fn shared_image(nr_blocks: u64) -> (MemBlocks, u64) {
    let mut mem = MemBlocks::zeroed(nr_blocks);
    let mut writer = MetadataWriter::fresh(nr_blocks, &mut mem).unwrap();
    let (space, out) = writer.parts();
    let leaf_at = space.alloc().unwrap();
    let shared = space.alloc().unwrap();
    out.write_blocks(shared, &array_block(shared, 509)).unwrap();
    let mut leaf = Node::new(NodeKind::Leaf, 8);
    for key in 0..4 {
        if key > 0 {
            space.inc(shared);
        }
        leaf.push(key, &shared.to_le_bytes());
    }
    out.write_blocks(leaf_at, &leaf.encode(leaf_at)[..])
        .unwrap();
    writer
        .commit(|root| superblock(&[0u8; BLOCK_BYTES], root, leaf_at))
        .unwrap();
    (mem, shared)
}

#[test]
fn shared_blocks_are_counted_in_the_ref_count_tree_and_check_clean() {
    let (mem, shared) = shared_image(64);
    let root = sm_root(&mem);
    let loaded = load(&mem, root).unwrap();
    assert_eq!(loaded.counts[shared as usize], 4);
    assert_eq!(check(&loaded, reachable(&mem)), []);
    let tree = Node::decode(2, &mem.read_block(2, &|| "rc".into()).unwrap()[..], 4).unwrap();
    assert_eq!(root.ref_count_root, 2);
    assert_eq!(
        (tree.keys.as_slice(), tree.value_u32(0)),
        (&[shared][..], 4)
    );
}

/// Replaces the ref-count root leaf of `mem` by one holding `entries`.
fn put_ref_counts(mem: &mut MemBlocks, entries: &[(u64, u32)]) {
    let at = sm_root(mem).ref_count_root;
    let mut leaf = Node::new(NodeKind::Leaf, 4);
    for &(block, count) in entries {
        leaf.push(block, &count.to_le_bytes());
    }
    mem.write_blocks(at, &leaf.encode(at)[..]).unwrap();
}

#[test]
fn ref_count_tree_damage_is_found() {
    let (clean, shared) = shared_image(64);
    let mut mem = clean.clone();
    put_ref_counts(&mut mem, &[(shared, 2)]);
    assert_eq!(
        findings(&mem),
        [
            SmFinding::RefCountTooSmall {
                block: shared,
                count: 2
            },
            SmFinding::UnderCounted {
                blocks: shared..shared + 1,
                counted: 3,
                reachable: 4
            }
        ]
    );
    let mut mem = clean.clone();
    put_ref_counts(&mut mem, &[(1, 5), (shared, 4)]);
    assert_eq!(
        findings(&mem),
        [SmFinding::RefCountNotOverflow {
            block: 1,
            count: 5,
            entry: 1
        }]
    );
    let mut mem = clean.clone();
    put_ref_counts(&mut mem, &[(shared, 4), (64, 3)]);
    assert!(
        matches!(
            findings(&mem).as_slice(),
            [SmFinding::PointerPastEnd { location: 64, .. }]
        ),
        "{:?}",
        findings(&mem)
    );
    let mut mem = clean;
    mem.bytes_mut()[2 * BLOCK_BYTES + 40] ^= 1;
    let loaded = load(&mem, sm_root(&mem)).unwrap();
    assert_eq!(loaded.unknown, vec![shared..shared + 1]);
    let found = check(&loaded, reachable(&mem));
    assert!(
        matches!(found.as_slice(), [SmFinding::RefCountTree(_)]),
        "{found:?}"
    );
    assert!(
        found[0].to_string().contains("ref-count btree node 2"),
        "{}",
        found[0]
    );
}

#[test]
fn a_damaged_root_or_index_is_named() {
    let clean = kernel("b-region128-1024regions", "formatted");
    let mut root = sm_root(&clean);
    root.nr_blocks = 2048;
    let loaded = load(&clean, root).unwrap();
    assert_eq!(
        loaded.findings[0],
        SmFinding::PastDevice {
            nr_blocks: 2048,
            device_blocks: 1024
        }
    );
    let mut root = sm_root(&clean);
    root.index_block = 5000;
    let loaded = load(&clean, root).unwrap();
    assert_eq!(loaded.unknown, vec![0..1024]);
    assert_eq!(
        loaded.findings[0].to_string(),
        "space map index block: block 5000 is past the end of the space map (1024 blocks)"
    );
    let mut mem = clean.clone();
    mem.bytes_mut()[BLOCK_BYTES + 9] ^= 1;
    let loaded = load(&mem, sm_root(&mem)).unwrap();
    assert!(
        matches!(
            loaded.findings.as_slice(),
            [SmFinding::Index {
                location: 1,
                defect: IndexDefect::Block(_)
            }]
        ),
        "{:?}",
        loaded.findings
    );
}

#[test]
fn a_space_map_of_several_bitmaps_checks_clean_and_counts_past_the_end_as_free() {
    let (mem, shared) = shared_image(40_000);
    let loaded = load(&mem, sm_root(&mem)).unwrap();
    assert_eq!(check(&loaded, reachable(&mem)), []);
    let index = loaded.index.unwrap();
    let bitmaps: Vec<u64> = index.entries.iter().map(|e| e.blocknr).collect();
    assert_eq!(bitmaps, [3, 4, 5]);
    assert_eq!(shared, 7);
    assert_eq!(
        index.entries.iter().map(|e| e.nr_free).collect::<Vec<_>>(),
        [16_320 - 8, 16_320, 16_320]
    );
}

#[test]
fn a_transaction_keeps_shared_counts_and_frees_the_old_space_map() {
    let (before, shared) = shared_image(64);
    let loaded = load(&before, sm_root(&before)).unwrap();
    let mut mem = before.clone();
    let writer = MetadataWriter::open(&loaded, &mut mem).unwrap();
    let root = writer
        .commit(|root| superblock(before.bytes(), root, u64_at(before.bytes(), BITSET_ROOT_AT)))
        .unwrap();
    let after = load(&mem, root).unwrap();
    assert_eq!(after.counts[shared as usize], 4);
    for old in [1, 2, 3] {
        assert_eq!(after.counts[old], 0, "old space map block {old}");
    }
    assert_eq!(findings(&mem), []);
    assert_eq!(root.nr_allocated, loaded.root.nr_allocated);
}

#[test]
fn a_transaction_never_writes_a_block_the_committed_state_uses() {
    let before = kernel("a-region8-131072regions", "final");
    let loaded = load(&before, sm_root(&before)).unwrap();
    let mut mem = before.clone();
    let old_root = u64_at(before.bytes(), BITSET_ROOT_AT);
    let old_leaf = Node::decode(
        old_root,
        &before.read_block(old_root, &|| "leaf".into()).unwrap()[..],
        8,
    )
    .unwrap();
    let mut writer = MetadataWriter::open(&loaded, &mut mem).unwrap();
    let (space, out) = writer.parts();
    let err = out
        .write_blocks(old_root, &old_leaf.encode(old_root)[..])
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("block {old_root}")),
        "{err}"
    );
    // Shadow the first array block and the leaf naming it: set its bit 1.
    let old_block = old_leaf.value_u64(0);
    let mut data = before.read_block(old_block, &|| "array".into()).unwrap();
    let new_block = space.alloc().unwrap();
    data[24] |= 2;
    seal(BlockKind::ArrayBlock, new_block, &mut data[..]);
    out.write_blocks(new_block, &data[..]).unwrap();
    space.dec(old_block);
    let new_root = space.alloc().unwrap();
    let mut leaf = Node::new(NodeKind::Leaf, 8);
    for i in 0..old_leaf.len() {
        let child = if i == 0 {
            new_block
        } else {
            old_leaf.value_u64(i)
        };
        leaf.push(old_leaf.keys[i], &child.to_le_bytes());
    }
    out.write_blocks(new_root, &leaf.encode(new_root)[..])
        .unwrap();
    space.dec(old_root);
    let root = writer
        .commit(|root| superblock(before.bytes(), root, new_root))
        .unwrap();
    for block in 1..loaded.counts.len() {
        if loaded.counts[block] > 0 {
            let range = block * BLOCK_BYTES..(block + 1) * BLOCK_BYTES;
            assert!(
                mem.bytes()[range.clone()] == before.bytes()[range],
                "committed block {block} was written"
            );
        }
    }
    assert_eq!(root.nr_allocated, loaded.root.nr_allocated);
    assert_eq!(findings(&mem), []);
    assert_ne!(root.index_block, loaded.root.index_block);
}

#[test]
fn more_shared_blocks_than_a_leaf_holds_get_a_ref_count_tree_of_several_nodes() {
    let mut mem = MemBlocks::zeroed(1024);
    let mut writer = MetadataWriter::fresh(1024, &mut mem).unwrap();
    let (space, out) = writer.parts();
    let mut blocks = Vec::new();
    for _ in 0..400 {
        let location = space.alloc().unwrap();
        out.write_blocks(location, &array_block(location, 509))
            .unwrap();
        space.inc(location);
        space.inc(location);
        blocks.push(location);
    }
    let entries = (0..1200u64).map(|key| (key, blocks[key as usize / 3].to_le_bytes()));
    let root = crate::pdata::btree::build::build(space, out, 8, entries).unwrap();
    let sm = writer
        .commit(|sm| superblock(&[0u8; BLOCK_BYTES], sm, root))
        .unwrap();
    assert_ne!(sm.ref_count_root, 2, "400 counts do not fit the fresh leaf");
    let tree = Node::decode(
        sm.ref_count_root,
        &mem.read_block(sm.ref_count_root, &|| "rc".into()).unwrap()[..],
        4,
    )
    .unwrap();
    assert_eq!(tree.kind, NodeKind::Internal);
    let loaded = load(&mem, sm).unwrap();
    assert!(blocks.iter().all(|&b| loaded.counts[b as usize] == 3));
    assert_eq!(loaded.counts[2], 0);
    assert_eq!(check(&loaded, reachable(&mem)), []);

    let before = mem.clone();
    let writer = MetadataWriter::open(&loaded, &mut mem).unwrap();
    let again = writer
        .commit(|sm| superblock(before.bytes(), sm, root))
        .unwrap();
    let after = load(&mem, again).unwrap();
    assert_eq!(check(&after, reachable(&mem)), []);
    assert!(after
        .own_blocks
        .iter()
        .all(|b| !loaded.own_blocks.contains(b)));
    assert_eq!(after.counts, {
        let mut counts = loaded.counts.clone();
        for &b in &loaded.own_blocks {
            counts[b as usize] = 0;
        }
        for &b in &after.own_blocks {
            counts[b as usize] = 1;
        }
        counts
    });
}
