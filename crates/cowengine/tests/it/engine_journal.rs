//! The engine commits through the write-ahead journal: a commit survives a
//! reopen, a clean close leaves an empty journal and a store the checker
//! passes, a store dropped without closing replays its committed transactions
//! at open, a store without a usable journal commits in place and says so,
//! freed chunks wait for a checkpoint, concurrent commits share transactions,
//! a delete too large for one transaction is split, and a store full of
//! chunks waiting for a checkpoint recovers by checkpointing.

use crate::shared_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use cowengine::{CommitMode, CopyData, CreateOptions, Engine, InPlaceReason, SharedStore};
use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::journal::scan;
use cowfmt::{BlockDev, MemDev};

const CHUNK: u64 = 512;
const ORIGIN_CHUNKS: u64 = 2048;
/// Enough journal for the journal to be used (half the log takes the
/// smallest transaction the engine allows).
const JOURNAL: u64 = 128;

type Store = SharedStore<Arc<MemDev>>;

fn origin_pattern() -> Vec<u8> {
    shared_support::patterned_origin(ORIGIN_CHUNKS, CHUNK, 13, 241)
}

fn devices(cow_chunks: u64) -> (Arc<MemDev>, Arc<MemDev>) {
    (
        Arc::new(MemDev::new("mem:cow", cow_chunks * CHUNK)),
        Arc::new(MemDev::from_bytes("mem:origin", origin_pattern())),
    )
}

fn create(cow: &Arc<MemDev>, origin: &Arc<MemDev>, journal_chunks: u64) -> Store {
    shared_support::create_in_memory(cow, Arc::clone(origin), CHUNK, journal_chunks)
}

fn open(cow: &Arc<MemDev>, origin: &Arc<MemDev>) -> Store {
    SharedStore::open(Arc::clone(cow), Arc::clone(origin)).unwrap()
}

fn write_chunk(store: &mut Store, chunk: u64, fill: u8) {
    store
        .origin_write(chunk * CHUNK, &[fill; CHUNK as usize])
        .unwrap();
}

fn read_snapshot(store: &mut Store, id: u32, chunk: u64) -> Vec<u8> {
    let mut buf = vec![0; CHUNK as usize];
    store.snapshot_read(id, chunk * CHUNK, &mut buf).unwrap();
    buf
}

fn original(chunk: u64) -> Vec<u8> {
    origin_pattern()[(chunk * CHUNK) as usize..((chunk + 1) * CHUNK) as usize].to_vec()
}

fn assert_checker_passes(cow: &MemDev) {
    shared_support::assert_checker_passes_on(cow, ORIGIN_CHUNKS * CHUNK);
}

/// An engine over memory with a usable journal and `cow_chunks` COW chunks.
fn engine(cow_chunks: u64) -> Engine<MemDev> {
    Engine::create(
        MemDev::new("mem:cow", cow_chunks * CHUNK),
        MemDev::from_bytes("mem:origin", origin_pattern()),
        &CreateOptions {
            chunk_sectors: CHUNK / 512,
            journal_chunks: JOURNAL,
        },
    )
    .unwrap()
}

fn geometry(store: &Store) -> Geometry {
    *store.geometry()
}

#[test]
fn a_commit_survives_a_reopen_and_a_clean_close_empties_the_journal() {
    let (cow, origin) = devices(4096);
    let mut store = create(&cow, &origin, JOURNAL);
    assert!(store.commit_mode().journaled(), "{}", store.commit_mode());
    let snap = store.create_snapshot(None).unwrap();
    for c in 0..300 {
        write_chunk(&mut store, c * 3, 0xa0);
    }
    store.commit().unwrap();
    assert!(store.transactions() >= 1);
    let g = geometry(&store);
    let before_close = scan(&*cow, &g).unwrap();
    assert!(
        !before_close.committed.is_empty(),
        "a commit goes through the journal"
    );
    store.close().unwrap();

    let after_close = scan(&*cow, &g).unwrap();
    assert!(after_close.committed.is_empty(), "{after_close:?}");
    assert_checker_passes(&cow);
    let mut reopened = open(&cow, &origin);
    assert_eq!(reopened.replayed().unwrap().transactions, 0);
    assert_eq!(reopened.snapmask(), 1 << snap);
    for c in [0, 3, 600, 897] {
        assert_eq!(
            read_snapshot(&mut reopened, snap, c),
            original(c),
            "chunk {c}"
        );
    }
}

#[test]
fn committed_transactions_of_a_store_never_closed_replay_at_open() {
    let (cow, origin) = devices(4096);
    let mut store = create(&cow, &origin, JOURNAL);
    let snap = store.create_snapshot(None).unwrap();
    for c in 0..200 {
        write_chunk(&mut store, c, 0x5c);
    }
    store.commit().unwrap();
    for c in 200..260 {
        write_chunk(&mut store, c, 0x5d);
    }
    store.commit().unwrap();
    let g = geometry(&store);
    // A power cut: the store is neither closed nor dropped.
    std::mem::forget(store);
    let log = scan(&*cow, &g).unwrap();
    assert!(log.needs_replay(), "{log:?}");

    let mut reopened = open(&cow, &origin);
    let replayed = reopened.replayed().unwrap().clone();
    assert_eq!(replayed.transactions, log.committed.len() as u64);
    assert!(replayed.transactions >= 2, "{replayed:?}");
    assert_eq!(reopened.snapmask(), 1 << snap);
    for c in [0, 199, 200, 259] {
        assert_eq!(
            read_snapshot(&mut reopened, snap, c),
            original(c),
            "chunk {c}"
        );
    }
    reopened.close().unwrap();
    assert_checker_passes(&cow);
}

#[test]
fn a_store_without_a_usable_journal_commits_in_place_and_says_so() {
    for (journal, expected) in [
        (0, InPlaceReason::NoJournal),
        (
            8,
            InPlaceReason::JournalTooSmall {
                journal_chunks: 8,
                needed_chunks: 69,
            },
        ),
    ] {
        let (cow, origin) = devices(4096);
        let mut store = create(&cow, &origin, journal);
        assert_eq!(store.commit_mode(), CommitMode::InPlace(expected));
        assert!(store.commit_mode().to_string().contains("not crash-safe"));
        let snap = store.create_snapshot(None).unwrap();
        for c in 0..100 {
            write_chunk(&mut store, c, 0x11);
        }
        store.commit().unwrap();
        // Committed in place: the store on disk is complete without a close.
        std::mem::forget(store);
        assert_checker_passes(&cow);
        let mut reopened = open(&cow, &origin);
        assert_eq!(read_snapshot(&mut reopened, snap, 42), original(42));
    }
}

/// Data chunks named by the records of snapshot bit `bit`.
fn chunks_of(store: &mut Store, bit: u64) -> BTreeSet<u64> {
    store
        .exceptions()
        .unwrap()
        .into_iter()
        .flat_map(|(_, records)| records)
        .filter(|r| r.share & bit != 0)
        .map(|r| r.chunk)
        .collect()
}

#[test]
fn chunks_freed_by_a_delete_are_not_reused_before_the_checkpoint() {
    let (cow, origin) = devices(4096);
    let mut store = create(&cow, &origin, 2048);
    let old = store.create_snapshot(None).unwrap();
    for c in 0..200 {
        write_chunk(&mut store, c, 1);
    }
    store.commit().unwrap();
    let freed = chunks_of(&mut store, 1 << old);
    assert_eq!(store.delete_snapshot(old).unwrap(), freed.len() as u64);
    store.commit().unwrap();
    assert!(store.pending_frees() >= freed.len() as u64);

    let new = store.create_snapshot(None).unwrap();
    for c in 200..600 {
        write_chunk(&mut store, c, 2);
    }
    store.commit().unwrap();
    let taken = chunks_of(&mut store, 1 << new);
    assert!(
        taken.is_disjoint(&freed),
        "chunks handed out again before the checkpoint: {:?}",
        taken.intersection(&freed).collect::<Vec<_>>()
    );

    store.checkpoint().unwrap();
    assert_eq!(store.pending_frees(), 0);
    let free_before = store.free_chunks();
    assert!(free_before >= freed.len() as u64);
    store.close().unwrap();
    assert_checker_passes(&cow);
}

#[test]
fn a_full_store_with_chunks_waiting_for_a_checkpoint_recovers_by_checkpointing() {
    let (cow, origin) = devices(1200);
    let mut store = create(&cow, &origin, JOURNAL);
    let first = store.create_snapshot(None).unwrap();
    let mut c = 0;
    while store.free_chunks() > 40 {
        write_chunk(&mut store, c, 3);
        c += 1;
    }
    store.commit().unwrap();
    let used = c;
    store.delete_snapshot(first).unwrap();
    store.commit().unwrap();
    assert!(store.pending_frees() > 100);
    let second = store.create_snapshot(None).unwrap();
    for c in 0..used {
        store
            .origin_write(c * CHUNK, &[4; CHUNK as usize])
            .unwrap_or_else(|e| panic!("origin chunk {c}: {e}"));
    }
    assert_eq!(
        store.pending_frees(),
        0,
        "the allocator ran dry and checkpointed"
    );
    store.commit().unwrap();
    let mut view = vec![0; CHUNK as usize];
    store.snapshot_read(second, 5 * CHUNK, &mut view).unwrap();
    assert_eq!(view, vec![3; CHUNK as usize]);
    store.close().unwrap();
    assert_checker_passes(&cow);
}

#[test]
fn a_delete_larger_than_a_transaction_is_split_and_leaves_a_consistent_store() {
    let (cow, origin) = devices(8192);
    let mut store = create(&cow, &origin, 70);
    assert!(store.commit_mode().journaled(), "{}", store.commit_mode());
    let gone = store.create_snapshot(None).unwrap();
    for c in 0..1500 {
        store.copy_out(c, CopyData::Yes).unwrap();
    }
    let keep = store.create_snapshot(None).unwrap();
    for c in 0..100 {
        write_chunk(&mut store, c, 5);
    }
    store.commit().unwrap();
    let leaves_before = store.exceptions().unwrap().len();
    let before = store.transactions();
    assert_eq!(store.delete_snapshot(gone).unwrap(), 1500);
    store.commit().unwrap();
    let steps = store.transactions() - before;
    assert!(
        steps > 1,
        "one transaction for {leaves_before} origin chunks"
    );
    assert_eq!(store.snapmask(), 1 << keep);
    store.close().unwrap();
    assert_checker_passes(&cow);
    let mut reopened = open(&cow, &origin);
    for c in [0, 50, 99, 100, 1499] {
        assert_eq!(
            read_snapshot(&mut reopened, keep, c),
            original(c),
            "chunk {c}"
        );
    }
}

/// A device whose sync takes a while, so that committers overlap.
#[derive(Debug)]
struct SlowSync(MemDev);

impl BlockDev for SlowSync {
    fn path(&self) -> &Path {
        self.0.path()
    }

    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(
        &self,
        buf: &mut [u8],
        offset: u64,
        what: &dyn Fn() -> String,
    ) -> cowfmt::Result<()> {
        self.0.read_at(buf, offset, what)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> cowfmt::Result<()> {
        self.0.write_at(buf, offset)
    }

    fn sync(&self) -> cowfmt::Result<()> {
        thread::sleep(Duration::from_millis(2));
        Ok(())
    }
}

#[test]
fn concurrent_committers_share_transactions() {
    let engine = Engine::create(
        SlowSync(MemDev::new("mem:cow", 8192 * CHUNK)),
        SlowSync(MemDev::from_bytes("mem:origin", origin_pattern())),
        &CreateOptions {
            chunk_sectors: CHUNK / 512,
            journal_chunks: 1024,
        },
    )
    .unwrap();
    assert!(engine.commit_mode().journaled());
    let snap = engine.create_snapshot(None).unwrap();
    engine.commit().unwrap();
    let start = engine.commit_stats();
    thread::scope(|s| {
        for t in 0..4u64 {
            let engine = &engine;
            s.spawn(move || {
                for i in 0..60 {
                    let c = t * 500 + i;
                    engine
                        .origin_write(c * CHUNK, &[t as u8 + 1; CHUNK as usize])
                        .unwrap();
                }
            });
        }
    });
    let stats = engine.commit_stats();
    let (requested, written) = (
        stats.requested - start.requested,
        stats.written - start.written,
    );
    assert_eq!(requested, 240, "each copy-out asks for a commit");
    assert!(
        written < requested,
        "{written} transactions for {requested} commits asked for"
    );
    let mut buf = vec![0; CHUNK as usize];
    for c in [0, 59, 1559] {
        engine.snapshot_read(snap, c * CHUNK, &mut buf).unwrap();
        assert_eq!(buf, original(c), "chunk {c}");
    }
    engine.close().unwrap();
}

#[test]
fn the_engine_recovers_from_a_full_store_by_checkpointing() {
    let engine = engine(1200);
    let first = engine.create_snapshot(None).unwrap();
    let mut c = 0;
    while engine.free_chunks() > 40 {
        engine
            .origin_write(c * CHUNK, &[6; CHUNK as usize])
            .unwrap();
        c += 1;
    }
    engine.delete_snapshot(first).unwrap();
    engine.commit().unwrap();
    assert!(engine.pending_frees() > 100);
    let second = engine.create_snapshot(None).unwrap();
    for c in 0..c {
        engine
            .snapshot_write(second, c * CHUNK, &[7; CHUNK as usize])
            .unwrap_or_else(|e| panic!("snapshot chunk {c}: {e}"));
    }
    assert_eq!(engine.pending_frees(), 0);
    engine.commit().unwrap();
    engine.close().unwrap();
}

/// Every crash point of a journaled workload (creates, origin writes,
/// commits, a delete, close), with all or none of the unsynced writes lost,
/// opens (replaying its journal) into a store the checker passes.
#[test]
fn every_crash_point_of_a_journaled_workload_opens_clean() {
    use cowfmt::{CrashDev, CrashLog};
    let log = CrashLog::new();
    let cow = Arc::new(log.device("crash:cow", vec![0; (1024 * CHUNK) as usize]));
    let origin = Arc::new(log.device("crash:origin", origin_pattern()));
    let options = CreateOptions {
        chunk_sectors: CHUNK / 512,
        journal_chunks: JOURNAL,
    };
    let start = log.len();
    let mut store: SharedStore<Arc<CrashDev>> =
        SharedStore::create(Arc::clone(&cow), Arc::clone(&origin), &options).unwrap();
    let first = store.create_snapshot(None).unwrap();
    for round in 0..6u64 {
        for c in 0..40 {
            store
                .origin_write((round * 37 + c * 5) % 400 * CHUNK, &[round as u8; 100])
                .unwrap();
        }
        if round == 3 {
            store.delete_snapshot(first).unwrap();
            store.create_snapshot(None).unwrap();
        }
        store.commit().unwrap();
    }
    store.close().unwrap();
    let end = log.len();
    let mut images = 0;
    for at in (start..=end).step_by(3) {
        let unsynced = log.unsynced(cow.id(), at);
        for lost in [&[][..], &unsynced[..]] {
            let bytes = log.image(cow.id(), at, lost).unwrap();
            if bytes[..8] == [0; 8] {
                continue;
            }
            let image = Arc::new(MemDev::from_bytes("mem:cow", bytes));
            let replayed = SharedStore::open(
                Arc::clone(&image),
                Arc::new(MemDev::from_bytes("mem:origin", origin_pattern())),
            )
            .unwrap_or_else(|e| panic!("crash after event {at}: {e}"));
            std::mem::forget(replayed);
            assert_checker_passes(&image);
            images += 1;
        }
    }
    assert!(images > 100, "{images} crash images");
}

/// Snapshot writes through the engine copy their data outside the metadata
/// lock: a part of a chunk keeps the rest of what the snapshot saw (the
/// origin, or a chunk shared with another snapshot), whole chunks and the
/// snapshot's own chunks are written as they are, and the other snapshot
/// keeps its view.
#[test]
fn engine_snapshot_writes_fill_partial_chunks_from_what_the_snapshot_saw() {
    let engine = engine(4096);
    let parent = engine.create_snapshot(None).unwrap();
    engine
        .origin_write(10 * CHUNK, &[9; CHUNK as usize])
        .unwrap();
    let child = engine.create_snapshot_of(parent).unwrap();
    // Chunk 10 is shared by both snapshots (the copy-out); chunk 20 is the origin.
    engine
        .snapshot_write(child, 10 * CHUNK + 100, &[1; 50])
        .unwrap();
    engine
        .snapshot_write(child, 20 * CHUNK + 500, &[2; 30])
        .unwrap();
    engine
        .snapshot_write(child, 20 * CHUNK + 10, &[3; 5])
        .unwrap();
    engine
        .snapshot_write(child, 30 * CHUNK, &[4; CHUNK as usize])
        .unwrap();
    engine.commit().unwrap();

    let mut expected = original(10);
    expected[100..150].fill(1);
    let mut second = original(20);
    second[10..15].fill(3);
    second[500..512].fill(2);
    let mut buf = vec![0; CHUNK as usize];
    for (c, want) in [(10, expected), (20, second), (30, vec![4; CHUNK as usize])] {
        engine.snapshot_read(child, c * CHUNK, &mut buf).unwrap();
        assert_eq!(buf, want, "child chunk {c}");
    }
    let mut third = original(21);
    third[..18].fill(2);
    engine.snapshot_read(child, 21 * CHUNK, &mut buf).unwrap();
    assert_eq!(
        buf, third,
        "the write of 30 bytes at 500 runs into chunk 21"
    );
    for c in [10, 20, 30] {
        engine.snapshot_read(parent, c * CHUNK, &mut buf).unwrap();
        assert_eq!(buf, original(c), "parent chunk {c}");
    }
    engine.close().unwrap();
}

/// Two snapshots share a copied-out chunk; one writes (and so leaves the
/// shared chunk to the other, in memory only), then the other writes in
/// place. A power cut after that must not show the second snapshot's data in
/// the first: the engine commits the unshare before the write in place.
#[test]
fn a_write_in_place_after_an_unshare_never_shows_in_the_other_snapshot() {
    use cowfmt::{CrashDev, CrashLog};
    let log = CrashLog::new();
    let cow = log.device("crash:cow", vec![0; (1024 * CHUNK) as usize]);
    let origin = log.device("crash:origin", origin_pattern());
    let cow_id = cow.id();
    let engine: Engine<CrashDev> = Engine::create(
        cow,
        origin,
        &CreateOptions {
            chunk_sectors: CHUNK / 512,
            journal_chunks: JOURNAL,
        },
    )
    .unwrap();
    let first = engine.create_snapshot(None).unwrap();
    let second = engine.create_snapshot(None).unwrap();
    engine
        .origin_write(7 * CHUNK, &[1; CHUNK as usize])
        .unwrap();
    engine.commit().unwrap();
    engine
        .snapshot_write(first, 7 * CHUNK, &[2; CHUNK as usize])
        .unwrap();
    engine.snapshot_write(second, 7 * CHUNK, &[3; 100]).unwrap();
    let image = log.image(cow_id, log.len(), &[]).unwrap();
    std::mem::forget(engine);

    let mut store = SharedStore::open(
        Arc::new(MemDev::from_bytes("mem:cow", image)),
        Arc::new(MemDev::from_bytes("mem:origin", origin_pattern())),
    )
    .unwrap();
    let seen = read_snapshot(&mut store, first, 7);
    assert!(
        seen == original(7) || seen == vec![2; CHUNK as usize],
        "snapshot {first} reads {:?}.. after the other's write in place",
        &seen[..8]
    );
    std::mem::forget(store);
}

/// Journal of the wide-write tests: half the log takes a few dozen images,
/// far fewer than the copy-outs of one wide origin write need.
const SMALL_JOURNAL: u64 = 72;

/// An engine on `cow` and `origin` with the small journal and `snapshots`
/// snapshots sharing every chunk of the origin.
fn wide_engine<D: BlockDev>(cow: D, origin: D, snapshots: usize) -> (Engine<D>, Vec<u32>) {
    let engine = Engine::create(
        cow,
        origin,
        &CreateOptions {
            chunk_sectors: CHUNK / 512,
            journal_chunks: SMALL_JOURNAL,
        },
    )
    .unwrap();
    let ids = (0..snapshots)
        .map(|_| engine.create_snapshot(None).unwrap())
        .collect();
    engine.commit().unwrap();
    (engine, ids)
}

/// Snapshot `id`'s view of origin chunks `chunks`, read from `store`.
fn assert_snapshot_sees_the_original<D: BlockDev>(
    store: &mut SharedStore<D>,
    id: u32,
    chunks: std::ops::Range<u64>,
    context: &str,
) {
    let pattern = origin_pattern();
    let mut buf = vec![0; CHUNK as usize];
    for c in chunks {
        store.snapshot_read(id, c * CHUNK, &mut buf).unwrap();
        assert!(
            buf[..] == pattern[(c * CHUNK) as usize..((c + 1) * CHUNK) as usize],
            "{context}: snapshot {id} chunk {c} lost its old data"
        );
    }
}

/// A 1 MiB origin write (2048 chunks of 512 B, three snapshots sharing each)
/// needs far more images than half of a 72-chunk journal: it commits its
/// copy-outs in several transactions, then writes the origin.
#[test]
fn a_wide_origin_write_commits_its_copy_outs_in_steps() {
    let cow = Arc::new(MemDev::new("mem:cow", 4096 * CHUNK));
    let origin = Arc::new(MemDev::from_bytes("mem:origin", origin_pattern()));
    let (engine, ids) = wide_engine(Arc::clone(&cow), Arc::clone(&origin), 3);
    let max = match engine.commit_mode() {
        CommitMode::Journaled {
            max_transaction_chunks,
            ..
        } => max_transaction_chunks,
        other => panic!("the small journal is not used: {other:?}"),
    };
    let before = engine.commit_stats().written;
    let data = vec![0xa5; (ORIGIN_CHUNKS * CHUNK) as usize];
    engine.origin_write(0, &data).unwrap();
    let transactions = engine.commit_stats().written - before;
    assert!(
        transactions >= 3,
        "{transactions} transactions for 2048 copy-outs within {max} chunks each"
    );
    let mut buf = vec![0; data.len()];
    engine.origin_read(0, &mut buf).unwrap();
    assert!(buf == data, "the origin holds the new data");
    for &id in &ids {
        for c in [0, 1, 700, 1500, ORIGIN_CHUNKS - 1] {
            let mut chunk = vec![0; CHUNK as usize];
            engine.snapshot_read(id, c * CHUNK, &mut chunk).unwrap();
            assert_eq!(chunk, original(c), "snapshot {id} chunk {c}");
        }
    }
    engine.close().unwrap();
    assert_checker_passes(&cow);
    let mut store = open(&cow, &origin);
    for &id in &ids {
        assert_snapshot_sees_the_original(&mut store, id, 0..ORIGIN_CHUNKS, "after close");
    }
}

/// Every crash point of a wide origin write (600 chunks: several
/// transactions), with none or all of the unsynced COW writes lost and every
/// origin write landed: the store opens (replaying its journal), the checker
/// passes, and every snapshot still reads the old data of every chunk, so no
/// origin chunk was overwritten before its copy-out was durable.
#[test]
fn no_crash_point_of_a_wide_origin_write_loses_old_data() {
    use cowfmt::{CrashDev, CrashLog};
    const WIDE: std::ops::Range<u64> = 100..700;
    let log = CrashLog::new();
    let cow = log.device("crash:cow", vec![0; (2048 * CHUNK) as usize]);
    let origin = log.device("crash:origin", origin_pattern());
    let (cow_id, origin_id) = (cow.id(), origin.id());
    let (engine, ids): (Engine<CrashDev>, _) = wide_engine(cow, origin, 2);
    let start = log.len();
    let before = engine.commit_stats().written;
    engine
        .origin_write(
            WIDE.start * CHUNK,
            &vec![0x5a; ((WIDE.end - WIDE.start) * CHUNK) as usize],
        )
        .unwrap();
    assert!(
        engine.commit_stats().written - before >= 2,
        "one transaction"
    );
    let end = log.len();
    std::mem::forget(engine);
    let mut images = 0;
    for at in start..=end {
        let origin_bytes = log.image(origin_id, at, &[]).unwrap();
        let unsynced = log.unsynced(cow_id, at);
        for lost in [&[][..], &unsynced[..]] {
            let image = Arc::new(MemDev::from_bytes(
                "mem:cow",
                log.image(cow_id, at, lost).unwrap(),
            ));
            let mut store = SharedStore::open(
                Arc::clone(&image),
                Arc::new(MemDev::from_bytes("mem:origin", origin_bytes.clone())),
            )
            .unwrap_or_else(|e| panic!("crash after event {at}: {e}"));
            let context = format!("crash after event {at} ({} writes lost)", lost.len());
            for &id in &ids {
                assert_snapshot_sees_the_original(&mut store, id, WIDE, &context);
            }
            std::mem::forget(store);
            assert_checker_passes(&image);
            images += 1;
        }
    }
    assert!(images > 20, "{images} crash images");
}
