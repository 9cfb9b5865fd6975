//! An origin of more than 2^32 chunks: leaves get their own base_chunk so that
//! every rchunk fits 32 bits, and chunks on both sides of 2^32 read back, also
//! in a bulk-built store whose first leaf is based far above chunk 0.

use crate::shared_support;

use cowengine::{CopyData, CreateOptions, SharedStore};
use cowfmt::shared::build::StoreBuilder;
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{Exception, Leaf, Node};
use cowfmt::{Access, Device};
use shared_support::{assert_consistent, Fixture};

#[test]
fn chunks_beyond_two_to_the_32_get_their_own_leaf_base() {
    let fx = Fixture::new(1, 4, 4096, 0);
    // A sparse origin of 2^33 chunks of 512 bytes (4 TiB, nothing allocated).
    let origin_path = fx.dir.path().join("huge-origin.img");
    let huge = (1u64 << 33) * 512;
    Device::create_or_extend(&origin_path, huge).unwrap();
    let cow = Device::open(fx.cow_path(), Access::ReadWrite).unwrap();
    let origin = Device::open(&origin_path, Access::ReadWrite).unwrap();
    let options = CreateOptions {
        chunk_sectors: 1,
        journal_chunks: 0,
    };
    let mut store = SharedStore::create(cow, origin, &options).unwrap();
    store.create_snapshot(None).unwrap();
    let chunks = [
        7u64,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 5,
        (1 << 33) - 1,
        12,
    ];
    for &c in &chunks {
        assert!(store.copy_out(c, CopyData::Yes).unwrap());
    }
    store
        .origin_write(((1u64 << 32) + 5) * 512, &[9u8; 512])
        .unwrap();
    let mut buf = [1u8; 512];
    store
        .snapshot_read(0, ((1u64 << 32) + 5) * 512, &mut buf)
        .unwrap();
    assert_eq!(buf, [0u8; 512]);
    store.commit().unwrap();
    let origins: Vec<u64> = store.exceptions().unwrap().iter().map(|e| e.0).collect();
    let mut sorted = chunks.to_vec();
    sorted.sort_unstable();
    assert_eq!(origins, sorted);
    for &c in &chunks {
        assert_eq!(store.lookup(c).unwrap().len(), 1, "origin chunk {c}");
    }
    assert_consistent(&fx, &mut store);

    let cow = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let mut bases = Bases::default();
    let header = store.header();
    walk_tree(
        &cow,
        store.geometry(),
        header.root_tree_chunk,
        header.tree_level,
        &mut bases,
    )
    .unwrap();
    assert!(
        bases.0.iter().any(|&b| b >= 1 << 32),
        "leaf bases {:?}",
        bases.0
    );
}

/// A bulk-built store whose only record is at origin chunk 2^33: its leaf is
/// based there although its parent key is 0. Origin writes far below that base
/// (more than 2^32 chunks) get a leaf of their own, and the checker agrees.
#[test]
fn writes_far_below_a_bulk_built_leaf_base_get_their_own_leaf() {
    let fx = Fixture::new(1, 4, 4096, 0);
    let far = 1u64 << 33;
    let origin_path = fx.dir.path().join("huge-origin.img");
    Device::create_or_extend(&origin_path, (far + 1) * 512).unwrap();
    let cow = Device::open(fx.cow_path(), Access::ReadWrite).unwrap();
    let mut builder = StoreBuilder::new(&cow, 1, 0).unwrap();
    let data_chunk = builder.allocate().unwrap();
    cow.write_chunk(data_chunk, &[0x77; 512]).unwrap();
    let mut tree = builder.into_tree();
    tree.push(
        far,
        &[Exception {
            share: 1,
            chunk: data_chunk,
        }],
    )
    .unwrap();
    tree.finish(1).unwrap();
    drop(cow);

    let open = || {
        SharedStore::open(
            Device::open(fx.cow_path(), Access::ReadWrite).unwrap(),
            Device::open(&origin_path, Access::ReadWrite).unwrap(),
        )
        .unwrap()
    };
    let mut store = open();
    for chunk in [5, (1 << 32) + 9, far - 1, 0] {
        store.origin_write(chunk * 512, &[0xaa; 512]).unwrap();
    }
    store.commit().unwrap();
    assert_consistent(&fx, &mut store);
    drop(store);

    let mut store = open();
    let mut buf = [1u8; 512];
    for chunk in [5, (1 << 32) + 9, far - 1, 0] {
        store.snapshot_read(0, chunk * 512, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 512], "snapshot 0, origin chunk {chunk}");
        assert_eq!(store.lookup(chunk).unwrap().len(), 1);
    }
    store.snapshot_read(0, far * 512, &mut buf).unwrap();
    assert_eq!(buf, [0x77; 512]);
    store.create_snapshot(None).unwrap();
    store.snapshot_write(1, 3 * 512, &[4; 10]).unwrap();
    store.commit().unwrap();
    assert_consistent(&fx, &mut store);
}

#[derive(Default)]
struct Bases(Vec<u64>);

impl TreeVisitor for Bases {
    fn node(&mut self, _: &BlockAt, _: &Node) -> cowfmt::Result<()> {
        Ok(())
    }
    fn leaf(&mut self, _: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        self.0.push(leaf.base_chunk);
        Ok(())
    }
    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> cowfmt::Result<()> {
        panic!("block {}: {problem:?}", at.chunk)
    }
}
