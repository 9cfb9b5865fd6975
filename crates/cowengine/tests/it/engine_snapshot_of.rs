//! A snapshot of a snapshot is one journal transaction (it sets the new bit in
//! every leaf its parent uses; split, a crash would leave records of a snapshot
//! that does not exist). When it cannot fit, the engine refuses it and changes
//! nothing, and the store stays usable; when it fits, the new snapshot reads
//! as its parent.

use crate::shared_support;

use std::sync::Arc;

use cowengine::SharedStore;
use cowfmt::MemDev;

const CHUNK: u64 = 512;
const ORIGIN_CHUNKS: u64 = 3000;

type Store = SharedStore<Arc<MemDev>>;

fn origin_bytes() -> Vec<u8> {
    shared_support::patterned_origin(ORIGIN_CHUNKS, CHUNK, 7, 251)
}

fn store(journal_chunks: u64) -> (Store, Arc<MemDev>) {
    let cow = Arc::new(MemDev::new("mem:cow", 8192 * CHUNK));
    let origin = Arc::new(MemDev::from_bytes("mem:origin", origin_bytes()));
    let store = shared_support::create_in_memory(&cow, origin, CHUNK, journal_chunks);
    (store, cow)
}

/// Snapshot 0, then every origin chunk written once: snapshot 0's records
/// fill many leaves.
fn with_many_leaves(store: &mut Store) {
    assert_eq!(store.create_snapshot(Some(0)).unwrap(), 0);
    for chunk in 0..ORIGIN_CHUNKS {
        store
            .origin_write(chunk * CHUNK, &[0xee; CHUNK as usize])
            .unwrap();
    }
    store.commit().unwrap();
}

fn assert_checker_passes(cow: &MemDev) {
    shared_support::assert_checker_passes_on(cow, ORIGIN_CHUNKS * CHUNK);
}

#[test]
fn a_snapshot_of_a_snapshot_too_large_for_a_transaction_is_refused_and_changes_nothing() {
    let (mut store, cow) = store(72);
    with_many_leaves(&mut store);
    let before = store.snapmask();
    let err = store.create_snapshot_of(0).unwrap_err().to_string();
    assert!(
        err.contains("more than one journal transaction holds")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(store.snapmask(), before);
    assert!(store
        .exceptions()
        .unwrap()
        .iter()
        .flat_map(|(_, records)| records)
        .all(|r| r.share == 1));
    // Still usable: a new snapshot, a write, a clean close.
    assert_eq!(store.create_snapshot(None).unwrap(), 1);
    store.origin_write(0, &[0x11; CHUNK as usize]).unwrap();
    store.close().unwrap();
    assert_checker_passes(&cow);
}

#[test]
fn a_snapshot_of_a_snapshot_that_fits_reads_as_its_parent() {
    let (mut store, cow) = store(4096);
    with_many_leaves(&mut store);
    let id = store.create_snapshot_of(0).unwrap();
    let mut a = vec![0; CHUNK as usize];
    let mut b = vec![0; CHUNK as usize];
    for chunk in [0, ORIGIN_CHUNKS / 2, ORIGIN_CHUNKS - 1] {
        store.snapshot_read(0, chunk * CHUNK, &mut a).unwrap();
        store.snapshot_read(id, chunk * CHUNK, &mut b).unwrap();
        assert_eq!(a, b, "chunk {chunk}");
        assert_ne!(a, vec![0xee; CHUNK as usize]);
    }
    store.close().unwrap();
    assert_checker_passes(&cow);
}
