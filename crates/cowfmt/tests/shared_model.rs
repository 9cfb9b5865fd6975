//! Model-based tests of the shared store engine: random sequences of origin
//! writes, snapshot writes, snapshot creation (also of a snapshot), deletion,
//! commit and reopen, compared after every step with a plain in-memory model of
//! the origin and every snapshot; and the store's structure is checked after
//! every step.

mod shared_support;

use std::collections::BTreeMap;

use cowfmt::shared::{CopyData, SharedStore};
use cowfmt::Error;
use proptest::prelude::*;
use shared_support::{assert_consistent, Fixture};

/// The reference: what the origin and each snapshot hold.
#[derive(Debug, Clone)]
struct Model {
    origin: Vec<u8>,
    snapshots: BTreeMap<u32, Vec<u8>>,
}

#[derive(Debug, Clone)]
enum Op {
    OriginWrite {
        chunk: u64,
        chunks: u64,
        byte: u8,
    },
    SnapshotWrite {
        pick: usize,
        chunk: u64,
        within: u64,
        len: u64,
        byte: u8,
    },
    Create,
    CreateWithId {
        id: u32,
    },
    CreateOf {
        pick: usize,
    },
    Delete {
        pick: usize,
    },
    Reopen,
}

fn op(origin_chunks: u64, max_run: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..origin_chunks, 1..=max_run, any::<u8>())
            .prop_map(|(chunk, chunks, byte)| Op::OriginWrite { chunk, chunks, byte }),
        5 => (any::<usize>(), 0..origin_chunks, 0u64..1024, 1u64..1024, any::<u8>())
            .prop_map(|(pick, chunk, within, len, byte)| Op::SnapshotWrite { pick, chunk, within, len, byte }),
        2 => Just(Op::Create),
        1 => (0u32..64).prop_map(|id| Op::CreateWithId { id }),
        1 => any::<usize>().prop_map(|pick| Op::CreateOf { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => Just(Op::Reopen),
    ]
}

fn pick(model: &Model, pick: usize) -> Option<u32> {
    let ids: Vec<u32> = model.snapshots.keys().copied().collect();
    (!ids.is_empty()).then(|| ids[pick % ids.len()])
}

/// Applies `op` to the store and, where the store accepted it, to the model.
/// A store that is full must refuse cleanly and leave every view unchanged.
fn apply(fx: &mut Fixture, store: &mut SharedStore, model: &mut Model, op: &Op) {
    let cb = fx.chunk_bytes;
    match *op {
        Op::OriginWrite {
            chunk,
            chunks,
            byte,
        } => {
            let chunks = chunks.min(fx.origin_chunks - chunk);
            let data = vec![byte; (chunks * cb) as usize];
            match store.origin_write(chunk * cb, &data) {
                Ok(()) => {
                    model.origin[(chunk * cb) as usize..][..data.len()].copy_from_slice(&data)
                }
                Err(Error::StoreFull { .. }) => {}
                Err(e) => panic!("origin write: {e}"),
            }
        }
        Op::SnapshotWrite {
            pick: p,
            chunk,
            within,
            len,
            byte,
        } => {
            let Some(id) = pick(model, p) else { return };
            let within = within % cb;
            let len = len.min(cb - within);
            let at = chunk * cb + within;
            let data = vec![byte; len as usize];
            match store.snapshot_write(id, at, &data) {
                Ok(()) => model.snapshots.get_mut(&id).unwrap()[at as usize..][..data.len()]
                    .copy_from_slice(&data),
                Err(Error::StoreFull { .. }) => {}
                Err(Error::Invalid(msg)) if msg.contains("the most a leaf") => {}
                Err(e) => panic!("snapshot write: {e}"),
            }
        }
        Op::Create | Op::CreateWithId { .. } => {
            let wanted = match *op {
                Op::CreateWithId { id } => Some(id),
                _ => None,
            };
            let full = model.snapshots.len() == 64;
            let taken = wanted.is_some_and(|id| model.snapshots.contains_key(&id));
            match store.create_snapshot(wanted) {
                Ok(id) => {
                    assert!(!full && !taken);
                    if wanted.is_none() {
                        assert_eq!(Some(id), (0..64).find(|i| !model.snapshots.contains_key(i)));
                    }
                    model.snapshots.insert(id, model.origin.clone());
                }
                Err(Error::Invalid(_)) => assert!(full || taken),
                Err(e) => panic!("create: {e}"),
            }
        }
        Op::CreateOf { pick: p } => {
            let Some(parent) = pick(model, p) else { return };
            match store.create_snapshot_of(parent) {
                Ok(id) => {
                    let view = model.snapshots[&parent].clone();
                    model.snapshots.insert(id, view);
                }
                Err(Error::Invalid(_)) => assert_eq!(model.snapshots.len(), 64),
                Err(e) => panic!("create of {parent}: {e}"),
            }
        }
        Op::Delete { pick: p } => {
            let Some(id) = pick(model, p) else { return };
            store.delete_snapshot(id).unwrap();
            model.snapshots.remove(&id);
        }
        Op::Reopen => {
            store.commit().unwrap();
            *store = fx.reopen();
        }
    }
}

/// Every snapshot and the origin read back exactly as the model says.
fn assert_views(fx: &Fixture, store: &mut SharedStore, model: &Model) {
    assert_eq!(
        fx.origin_bytes(),
        model.origin,
        "origin differs from the model"
    );
    let mut buf = vec![0u8; model.origin.len()];
    for (&id, view) in &model.snapshots {
        store.snapshot_read(id, 0, &mut buf).unwrap();
        if &buf != view {
            let at = buf.iter().zip(view).position(|(a, b)| a != b).unwrap();
            panic!(
                "snapshot {id} differs from the model at byte {at} (chunk {})",
                at as u64 / fx.chunk_bytes
            );
        }
    }
    let expected: u64 = model.snapshots.keys().map(|&id| 1u64 << id).sum();
    assert_eq!(store.snapmask(), expected);
}

fn run(chunk_sectors: u32, origin_chunks: u64, cow_chunks: u64, initial: u32, ops: &[Op]) -> u32 {
    let mut fx = Fixture::new(chunk_sectors, origin_chunks, cow_chunks, 0);
    let mut store = fx.create();
    let mut model = Model {
        origin: fx.origin_bytes(),
        snapshots: BTreeMap::new(),
    };
    for _ in 0..initial {
        apply(&mut fx, &mut store, &mut model, &Op::Create);
    }
    let mut deepest = 0;
    for op in ops {
        apply(&mut fx, &mut store, &mut model, op);
        assert_views(&fx, &mut store, &model);
        store.commit().unwrap();
        deepest = deepest.max(store.header().tree_level);
        assert_consistent(&fx, &mut store);
    }
    deepest
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// 512-byte chunks: small leaves and nodes, so trees grow deep quickly.
    #[test]
    fn engine_matches_model_512(initial in 0u32..64, ops in prop::collection::vec(op(384, 48), 1..60)) {
        run(1, 384, 4096, initial, &ops);
    }

    /// 1 KiB chunks.
    #[test]
    fn engine_matches_model_1k(initial in 0u32..8, ops in prop::collection::vec(op(256, 32), 1..60)) {
        run(2, 256, 2048, initial, &ops);
    }

    /// A COW device that fills up: every refusal is clean and leaves the store
    /// consistent and every view intact.
    #[test]
    fn full_device_refuses_cleanly(initial in 1u32..8, ops in prop::collection::vec(op(256, 64), 20..80)) {
        run(1, 256, 160, initial, &ops);
    }
}

/// All 64 snapshots over 512-byte chunks, each writing its own pattern after
/// origin writes, reach a tree of three node levels and read back exactly;
/// then deleting every snapshot frees every chunk and collapses the tree.
#[test]
fn sixty_four_snapshots_build_a_deep_tree_and_delete_back_to_empty() {
    let origin_chunks = 8000;
    let mut fx = Fixture::new(1, origin_chunks, 100_000, 0);
    let mut store = fx.create();
    let mut model = Model {
        origin: fx.origin_bytes(),
        snapshots: BTreeMap::new(),
    };
    let fresh_free = store.free_chunks();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for round in 0..64u64 {
        apply(&mut fx, &mut store, &mut model, &Op::Create);
        for _ in 0..100 {
            let chunk = next(origin_chunks);
            let op = if next(3) == 0 {
                Op::SnapshotWrite {
                    pick: next(64) as usize,
                    chunk,
                    within: next(512),
                    len: 1 + next(511),
                    byte: round as u8,
                }
            } else {
                Op::OriginWrite {
                    chunk,
                    chunks: 1 + next(16),
                    byte: next(256) as u8,
                }
            };
            apply(&mut fx, &mut store, &mut model, &op);
        }
        if round % 16 == 15 {
            apply(&mut fx, &mut store, &mut model, &Op::Reopen);
            assert_views(&fx, &mut store, &model);
        }
    }
    store.commit().unwrap();
    assert_views(&fx, &mut store, &model);
    assert_consistent(&fx, &mut store);
    assert!(
        store.header().tree_level >= 3,
        "tree_level {}",
        store.header().tree_level
    );
    assert_eq!(store.snapmask(), u64::MAX);

    let ids: Vec<u32> = model.snapshots.keys().copied().collect();
    for n in 0..ids.len() {
        apply(&mut fx, &mut store, &mut model, &Op::Delete { pick: n * 7 });
        if n % 8 == 0 {
            store.commit().unwrap();
            assert_views(&fx, &mut store, &model);
            assert_consistent(&fx, &mut store);
        }
    }
    store.commit().unwrap();
    assert_consistent(&fx, &mut store);
    assert_eq!(store.header().tree_level, 1);
    assert_eq!(store.free_chunks(), fresh_free);
    assert!(store.exceptions().unwrap().is_empty());
}

/// Copy-out without data (the generator's mode) records exactly one exception
/// per chunk for all current snapshots, and none twice.
#[test]
fn metadata_only_copy_out_records_once() {
    let fx = Fixture::new(8, 64, 1024, 0);
    let mut store = fx.create();
    store.create_snapshot(None).unwrap();
    store.create_snapshot(Some(5)).unwrap();
    assert!(store.copy_out(3, CopyData::No).unwrap());
    assert!(!store.copy_out(3, CopyData::No).unwrap());
    store.create_snapshot(None).unwrap();
    assert!(store.copy_out(3, CopyData::No).unwrap());
    let records = store.lookup(3).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].share, 0b10_0001);
    assert_eq!(records[0].share, 0b10);
    store.commit().unwrap();
    assert_consistent(&fx, &mut store);
}

/// Origin writes until the COW device is full: the refusal is a StoreFull error,
/// the origin is left unwritten, and the store stays consistent and usable
/// (deleting the snapshot frees the space again).
#[test]
fn filling_the_device_fails_cleanly() {
    let mut fx = Fixture::new(1, 512, 200, 0);
    let mut store = fx.create();
    let mut model = Model {
        origin: fx.origin_bytes(),
        snapshots: BTreeMap::new(),
    };
    apply(&mut fx, &mut store, &mut model, &Op::Create);
    let mut refused = None;
    for chunk in 0..512 {
        let before = fx.origin_bytes();
        match store.origin_write(chunk * 512, &[0xaa; 512]) {
            Ok(()) => model.origin[(chunk * 512) as usize..][..512].fill(0xaa),
            Err(Error::StoreFull { free, needed, .. }) => {
                assert!(free < needed);
                assert_eq!(
                    fx.origin_bytes(),
                    before,
                    "a refused write reached the origin"
                );
                refused = Some(chunk);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let refused = refused.expect("a 200-chunk device must fill up");
    assert!(refused > 150, "refused at chunk {refused}");
    store.commit().unwrap();
    assert_views(&fx, &mut store, &model);
    assert_consistent(&fx, &mut store);
    let free_before = store.free_chunks();
    assert!(store.delete_snapshot(0).unwrap() > 150);
    assert!(store.free_chunks() > free_before + 150);
    store.origin_write(refused * 512, &[1; 512]).unwrap();
    store.commit().unwrap();
    assert_consistent(&fx, &mut store);
}
