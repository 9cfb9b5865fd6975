//! The engine never trusts a value read from disk: a damaged header level, a
//! record naming a chunk outside the data range (or a tree block, or a free
//! chunk), a node child outside the data range, a leaf where a node belongs,
//! and a child reached twice all give a clean `Error::Corrupt`, with nothing
//! written anywhere. And the block decoders never panic on arbitrary bytes.

use crate::shared_support;

use byteorder::{ByteOrder, LittleEndian};
use cowengine::SharedStore;
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{Leaf, Node, SharedHeader};
use cowfmt::{Access, Device, Error};
use proptest::prelude::*;
use shared_support::Fixture;

const JOURNAL: u64 = 2;

/// A committed 512-byte-chunk store with two snapshots, origin writes and
/// snapshot writes, under a tree of two node levels.
fn damaged_store_base() -> Fixture {
    let fx = Fixture::new(1, 1500, 6000, JOURNAL);
    let mut store = fx.create();
    for id in 0..2u32 {
        store.create_snapshot(None).unwrap();
        for c in (u64::from(id)..1500).step_by(2) {
            store.origin_write(c * 512, &[id as u8 + 1; 512]).unwrap();
        }
    }
    store.snapshot_write(0, 7 * 512, &[0xee; 100]).unwrap();
    store.commit().unwrap();
    assert!(store.tree_level() >= 2);
    fx
}

/// The tree as the read-only walk finds it.
#[derive(Default)]
struct Blocks {
    nodes: Vec<(BlockAt, Node)>,
    leaves: Vec<(BlockAt, Leaf)>,
}

impl TreeVisitor for Blocks {
    fn node(&mut self, at: &BlockAt, node: &Node) -> cowfmt::Result<()> {
        self.nodes.push((*at, node.clone()));
        Ok(())
    }
    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        self.leaves.push((*at, leaf.clone()));
        Ok(())
    }
    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> cowfmt::Result<()> {
        panic!("block {}: {problem:?}", at.chunk)
    }
}

fn blocks(fx: &Fixture) -> (SharedHeader, cowfmt::shared::Geometry, Blocks) {
    let store = fx.reopen();
    let (header, geometry) = (store.header(), *store.geometry());
    drop(store);
    let cow = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let mut found = Blocks::default();
    walk_tree(
        &cow,
        &geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut found,
    )
    .unwrap();
    (header, geometry, found)
}

/// Writes `value` as a little-endian u64 at byte `offset` of chunk `chunk`.
fn poke_u64(fx: &Fixture, chunk: u64, offset: u64, value: u64) {
    let cow = Device::open(fx.cow_path(), Access::ReadWrite).unwrap();
    let mut bytes = [0u8; 8];
    LittleEndian::write_u64(&mut bytes, value);
    cow.write_at(&bytes, chunk * fx.chunk_bytes + offset)
        .unwrap();
}

fn poke_u32(fx: &Fixture, chunk: u64, offset: u64, value: u32) {
    let cow = Device::open(fx.cow_path(), Access::ReadWrite).unwrap();
    let mut bytes = [0u8; 4];
    LittleEndian::write_u32(&mut bytes, value);
    cow.write_at(&bytes, chunk * fx.chunk_bytes + offset)
        .unwrap();
}

/// The images, to show that a refused operation wrote nothing.
fn images(fx: &Fixture) -> (Vec<u8>, Vec<u8>) {
    (std::fs::read(fx.cow_path()).unwrap(), fx.origin_bytes())
}

fn open(fx: &Fixture) -> cowfmt::Result<SharedStore> {
    SharedStore::open(
        Device::open(fx.cow_path(), Access::ReadWrite).unwrap(),
        Device::open(fx.origin_path(), Access::ReadWrite).unwrap(),
    )
}

/// `result` is `Error::Corrupt` naming block `chunk` with `words` in its detail.
#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(result: cowfmt::Result<T>, chunk: u64, words: &str) {
    match result {
        Err(Error::Corrupt {
            chunk: found,
            detail,
            ..
        }) => {
            assert_eq!(found, chunk, "{detail}");
            assert!(detail.contains(words), "{detail:?} lacks {words:?}");
        }
        other => panic!("expected a corrupt error at chunk {chunk}, got {other:?}"),
    }
}

/// Every operation that reaches origin chunk `origin` is refused with a
/// corrupt error naming `chunk`, and neither image changes.
fn assert_refused_at(fx: &Fixture, origin: u64, chunk: u64, words: &str) {
    let before = images(fx);
    let mut store = open(fx).unwrap();
    let mut buf = [0u8; 512];
    assert_corrupt(store.snapshot_read(1, origin * 512, &mut buf), chunk, words);
    assert_corrupt(
        store.snapshot_write(1, origin * 512, &[9; 512]),
        chunk,
        words,
    );
    assert_corrupt(store.origin_write(origin * 512, &[9; 512]), chunk, words);
    assert_corrupt(store.lookup(origin), chunk, words);
    drop(store);
    assert!(images(fx) == before, "a refused operation wrote");
}

#[test]
fn tree_levels_past_the_checkers_cap_are_refused_on_open() {
    let fx = damaged_store_base();
    for level in [0, 65, 1000, u32::MAX] {
        poke_u32(&fx, 0, 32, level);
        assert_corrupt(open(&fx), 0, "tree_level");
    }
    poke_u32(&fx, 0, 32, 64);
    let mut store = open(&fx).unwrap();
    assert!(matches!(store.lookup(3), Err(Error::Corrupt { .. })));
}

#[test]
fn records_naming_reserved_or_missing_chunks_are_refused() {
    let fx = damaged_store_base();
    let (_, geometry, found) = blocks(&fx);
    let (at, leaf) = found
        .leaves
        .iter()
        .find(|(_, l)| l.records.len() >= 2)
        .cloned()
        .unwrap();
    let origin = leaf.origin_of(0);
    let first = (512 - 16 * leaf.records.len()) as u64;
    let pristine = images(&fx).0;
    for bad in [
        0,
        1,
        geometry.journal_start(),
        geometry.nr_chunks,
        u64::MAX / 512 + 1,
        u64::MAX,
    ] {
        poke_u64(&fx, at.chunk, first + 8, bad);
        assert_refused_at(&fx, origin, at.chunk, &format!("COW chunk {bad},"));
        let mut store = open(&fx).unwrap();
        assert_corrupt(store.delete_snapshot(0), at.chunk, "COW chunk");
        assert_corrupt(store.create_snapshot_of(0), at.chunk, "COW chunk");
        assert_eq!(store.snapmask(), 0b11);
        std::fs::write(fx.cow_path(), &pristine).unwrap();
    }
}

#[test]
fn own_records_naming_a_tree_block_or_a_free_chunk_are_not_written_in_place() {
    let fx = damaged_store_base();
    let (header, geometry, found) = blocks(&fx);
    let (at, leaf) = found
        .leaves
        .iter()
        .find(|(_, l)| l.entries().any(|(o, _)| o == 7))
        .cloned()
        .unwrap();
    let i = leaf.find(7).unwrap();
    let own = leaf
        .record_range(i)
        .find(|&r| leaf.records[r].share == 1)
        .unwrap();
    let offset = (512 - 16 * (leaf.records.len() - own) + 8) as u64;
    let free = geometry.nr_chunks - 1;
    for (bad, words) in [
        (header.root_tree_chunk, "is a tree block"),
        (at.chunk, "is a tree block"),
        (free, "is free in the bitmap"),
    ] {
        poke_u64(&fx, at.chunk, offset, bad);
        let before = images(&fx);
        let mut store = open(&fx).unwrap();
        assert_corrupt(store.snapshot_write(0, 7 * 512, &[1; 512]), at.chunk, words);
        drop(store);
        assert!(images(&fx) == before, "a refused snapshot write wrote");
    }
}

#[test]
fn node_children_outside_the_data_range_are_refused() {
    let fx = damaged_store_base();
    let (header, geometry, found) = blocks(&fx);
    let root = header.root_tree_chunk;
    let (_, root_node) = &found.nodes[0];
    let pristine = images(&fx).0;
    for bad in [0, 1, geometry.journal_start(), geometry.nr_chunks, u64::MAX] {
        for i in 0..root_node.entries.len() as u64 {
            poke_u64(&fx, root, 8 + 16 * i + 8, bad);
        }
        assert_refused_at(&fx, 3, root, &format!("chunk {bad},"));
        let mut store = open(&fx).unwrap();
        assert_corrupt(store.delete_snapshot(1), root, "outside the data range");
        assert_corrupt(store.exceptions(), root, "outside the data range");
        std::fs::write(fx.cow_path(), &pristine).unwrap();
    }
}

#[test]
fn a_child_reached_twice_or_a_cycle_is_refused() {
    let fx = damaged_store_base();
    let (header, _, found) = blocks(&fx);
    let root = header.root_tree_chunk;
    let (_, root_node) = &found.nodes[0];
    let twice = root_node.entries[0].chunk;
    poke_u64(&fx, root, 8 + 16 + 8, twice);
    let before = images(&fx);
    let mut store = open(&fx).unwrap();
    assert_corrupt(store.delete_snapshot(1), root, "reaches twice");
    assert_corrupt(store.create_snapshot_of(1), root, "reaches twice");
    assert_eq!(store.snapmask(), 0b11);
    drop(store);
    assert!(images(&fx) == before);

    poke_u64(&fx, root, 8 + 8, root);
    let mut store = open(&fx).unwrap();
    assert_corrupt(store.lookup(0), root, "expected a leaf, found a node");
    assert_corrupt(store.delete_snapshot(1), root, "reaches twice");
}

#[test]
fn a_leaf_where_a_node_belongs_is_named_at_512_bytes() {
    let fx = damaged_store_base();
    let (header, _, found) = blocks(&fx);
    let (leaf, _) = &found.leaves[0];
    poke_u64(&fx, header.root_tree_chunk, 8 + 8, leaf.chunk);
    let before = images(&fx);
    let mut store = open(&fx).unwrap();
    assert_corrupt(store.lookup(0), leaf.chunk, "expected a node, found a leaf");
    assert_corrupt(
        store.origin_write(0, &[1; 512]),
        leaf.chunk,
        "expected a node, found a leaf",
    );
    drop(store);
    assert!(images(&fx) == before);
}

#[test]
fn a_leaf_where_a_node_belongs_is_named() {
    // 128 KiB chunks: a leaf's magic and version read as a node count that fits.
    let fx = Fixture::new(256, 16, 40, 0);
    let mut store = fx.create();
    store.create_snapshot(None).unwrap();
    for c in 0..4 {
        store
            .origin_write(c * fx.chunk_bytes, &vec![5; fx.chunk_bytes as usize])
            .unwrap();
    }
    store.commit().unwrap();
    let (root, levels) = (store.header().root_tree_chunk, store.tree_level());
    drop(store);
    poke_u32(&fx, 0, 32, levels + 1);
    let cow = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let mut block = vec![0u8; fx.chunk_bytes as usize];
    cow.read_chunk(root, &mut block).unwrap();
    let leaf_chunk = Node::decode(&block).unwrap().entries[0].chunk;
    let before = images(&fx);
    let mut store = open(&fx).unwrap();
    assert_corrupt(store.lookup(1), leaf_chunk, "expected a node, found a leaf");
    assert_corrupt(
        store.origin_write(fx.chunk_bytes, &[1; 512]),
        leaf_chunk,
        "expected a node, found a leaf",
    );
    drop(store);
    assert!(images(&fx) == before);
}

/// Arbitrary bytes, sometimes starting like a leaf or a node so that decoding
/// gets past the first check.
fn block_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), 0..3 * 2048),
        0u8..3,
        any::<u32>(),
    )
        .prop_map(|(mut bytes, head, count)| {
            if bytes.len() >= 8 {
                match head {
                    0 => {
                        LittleEndian::write_u16(&mut bytes[0..2], 0x1eaf);
                        LittleEndian::write_u16(&mut bytes[2..4], 0);
                        LittleEndian::write_u32(&mut bytes[4..8], count % 8);
                    }
                    1 => LittleEndian::write_u32(&mut bytes[0..4], count % 64),
                    _ => {}
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn leaf_decode_never_panics(bytes in block_bytes()) {
        if let Ok(leaf) = Leaf::decode(&bytes) {
            prop_assert!(leaf.fits(bytes.len()));
            let _ = leaf.entries().count();
        }
    }

    #[test]
    fn node_decode_never_panics(bytes in block_bytes()) {
        if let Ok(node) = Node::decode(&bytes) {
            prop_assert!(!node.entries.is_empty());
            let _ = node.child_for(u64::MAX / 2);
        }
    }

    #[test]
    fn header_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2 * 512)) {
        if let Ok(header) = SharedHeader::decode(&bytes) {
            let _ = header.validate_identity();
        }
    }
}
