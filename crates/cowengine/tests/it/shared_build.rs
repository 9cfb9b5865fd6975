//! The bulk builder writes a store that holds exactly the exceptions given and
//! that the engine opens and keeps using.

use crate::shared_support;

use cowengine::CopyData;
use cowfmt::shared::build::StoreBuilder;
use cowfmt::{Access, Device};
use shared_support::{assert_consistent, Fixture};

#[test]
fn rebuilt_store_holds_the_same_exceptions_and_stays_usable() {
    let fx = Fixture::new(1, 4000, 30_000, 4);
    let mut store = fx.create();
    for id in 0..5 {
        store.create_snapshot(None).unwrap();
        for c in (id..4000).step_by(3 + id as usize) {
            store.copy_out(c, CopyData::Yes).unwrap();
        }
        store
            .snapshot_write(id as u32, 17 * 512, &[id as u8; 100])
            .unwrap();
    }
    store.commit().unwrap();
    let before = store.exceptions().unwrap();
    assert!(store.header().tree_level >= 2);

    // Rebuilt over a copy of the store, so the data chunks stay where they are.
    let out = fx.dir.path().join("rebuilt.img");
    std::fs::copy(fx.cow_path(), &out).unwrap();
    let device = Device::open(&out, Access::ReadWrite).unwrap();
    let mut builder = StoreBuilder::new(&device, 1, 4).unwrap();
    for (_, records) in &before {
        for r in records {
            builder.claim(r.chunk).unwrap();
        }
    }
    let mut tree = builder.into_tree();
    for (origin, records) in &before {
        tree.push(*origin, records).unwrap();
    }
    let built = tree.finish(store.snapmask()).unwrap();
    assert_eq!(
        built.records,
        before.iter().map(|e| e.1.len() as u64).sum::<u64>()
    );
    drop(device);

    std::fs::copy(&out, fx.cow_path()).unwrap();
    let mut rebuilt = fx.reopen();
    assert_eq!(rebuilt.exceptions().unwrap(), before);
    assert_eq!(rebuilt.header().tree_level, built.header.tree_level);
    assert_consistent(&fx, &mut rebuilt);
    let mut buf = vec![0u8; 100];
    rebuilt.snapshot_read(3, 17 * 512, &mut buf).unwrap();
    assert_eq!(buf, vec![3u8; 100]);
    rebuilt.create_snapshot(None).unwrap();
    for c in 0..4000 {
        rebuilt.copy_out(c, CopyData::No).unwrap();
    }
    rebuilt.commit().unwrap();
    assert_consistent(&fx, &mut rebuilt);
}

#[test]
fn exceptions_out_of_order_or_overfull_are_refused() {
    let fx = Fixture::new(1, 8, 1000, 0);
    let device = Device::open(fx.cow_path(), Access::ReadWrite).unwrap();
    let mut builder = StoreBuilder::new(&device, 1, 0).unwrap();
    assert!(builder.claim(0).is_err());
    builder.claim(500).unwrap();
    assert!(builder.claim(500).is_err());
    let mut tree = builder.into_tree();
    let r = cowfmt::shared::Exception {
        share: 1,
        chunk: 500,
    };
    tree.push(5, &[r]).unwrap();
    assert!(tree.push(5, &[r]).is_err());
    let many: Vec<_> = (0..40)
        .map(|i| cowfmt::shared::Exception {
            share: 1 << i,
            chunk: 600 + i,
        })
        .collect();
    assert!(tree.push(9, &many).is_err());
}
