//! The engine through `&self` from several threads: origin writers never change
//! what a snapshot reads, even while readers race them chunk for chunk and a
//! third thread keeps creating and deleting another snapshot (so copy-outs
//! never stop); what
//! was written is what the store holds after a commit and a reopen; requests
//! the store cannot serve fail with the errno a block device would report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use cowengine::errno::errno;
use cowengine::{CreateOptions, Engine, SharedStore};
use cowfmt::shared::check::{check, CheckOptions};
use cowfmt::{Access, BlockDev, CrashDev, Device, MemDev};

const CHUNK: u64 = 512;
const ORIGIN_CHUNKS: u64 = 128;
/// Chunks each writer owns: writer `t` writes only `t * REGION..(t + 1) * REGION`.
const REGION: u64 = 64;

fn pattern() -> Vec<u8> {
    (0..ORIGIN_CHUNKS * CHUNK)
        .map(|i| (i / CHUNK * 7 + i % 251) as u8)
        .collect()
}

fn engine() -> Engine<MemDev> {
    let engine = Engine::create(
        MemDev::new("mem:cow", 2048 * CHUNK),
        MemDev::from_bytes("mem:origin", pattern()),
        &CreateOptions {
            chunk_sectors: CHUNK / 512,
            journal_chunks: 4,
        },
    )
    .unwrap();
    assert_eq!(engine.create_snapshot(None).unwrap(), 0);
    engine.commit().unwrap();
    engine
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn the_engine_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine<Device>>();
    send_sync::<Engine<MemDev>>();
    send_sync::<Engine<CrashDev>>();
}

#[test]
fn origin_writers_never_change_what_racing_snapshot_readers_see() {
    for round in 0..50 {
        race(round);
    }
}

/// One race on a fresh store (the first write to each chunk is the copy-out
/// a reader can race), seeded by `round`.
fn race(round: u64) {
    let engine = engine();
    let before = pattern();
    let writing = AtomicBool::new(true);
    let churned = AtomicU64::new(0);
    let finals: Vec<BTreeMap<u64, u8>> = thread::scope(|s| {
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (engine, before, writing) = (&engine, &before, &writing);
                s.spawn(move || {
                    let mut rng = Rng(round * 10 + r + 100);
                    let mut reads = 0u64;
                    let mut buf = vec![0u8; 4 * CHUNK as usize];
                    while writing.load(Ordering::SeqCst) || reads < 200 {
                        let first = rng.below(ORIGIN_CHUNKS);
                        let n = (1 + rng.below(4)).min(ORIGIN_CHUNKS - first);
                        let at = first * CHUNK + rng.below(CHUNK / 2);
                        let len = (n * CHUNK - (at - first * CHUNK)) as usize;
                        engine.snapshot_read(0, at, &mut buf[..len]).unwrap();
                        let want = &before[at as usize..at as usize + len];
                        assert!(
                            buf[..len] == *want,
                            "round {round}: snapshot 0 changed at byte {at}"
                        );
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let churn = {
            let (engine, writing, churned) = (&engine, &writing, &churned);
            s.spawn(move || {
                while writing.load(Ordering::SeqCst) {
                    let id = engine.create_snapshot(None).unwrap();
                    thread::yield_now();
                    engine.delete_snapshot(id).unwrap();
                    churned.fetch_add(1, Ordering::SeqCst);
                }
                churned.load(Ordering::SeqCst)
            })
        };
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let (engine, churned) = (&engine, &churned);
                s.spawn(move || {
                    while churned.load(Ordering::SeqCst) == 0 {
                        thread::yield_now();
                    }
                    let mut rng = Rng(round * 10 + t + 1);
                    let mut last = BTreeMap::new();
                    for i in 0..300u64 {
                        let first = t * REGION + rng.below(REGION);
                        let n = (1 + rng.below(3)).min((t + 1) * REGION - first);
                        let fill = (t * 100 + i % 100) as u8;
                        let data = vec![fill; (n * CHUNK) as usize];
                        engine.origin_write(first * CHUNK, &data).unwrap();
                        for c in first..first + n {
                            last.insert(c, fill);
                        }
                    }
                    last
                })
            })
            .collect();
        let finals = writers.into_iter().map(|w| w.join().unwrap()).collect();
        writing.store(false, Ordering::SeqCst);
        for reader in readers {
            assert!(reader.join().unwrap() >= 200);
        }
        assert!(churn.join().unwrap() > 0);
        finals
    });
    engine.commit().unwrap();

    let cow = engine.cow_device().to_bytes();
    let origin = engine.origin_device().to_bytes();
    let mut expected = before.clone();
    for (c, fill) in finals.iter().flatten() {
        let at = (c * CHUNK) as usize;
        expected[at..at + CHUNK as usize].fill(*fill);
    }
    assert!(
        origin == expected,
        "the origin holds the last write of each chunk"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    std::fs::write(&path, &cow).unwrap();
    let options = CheckOptions {
        origin_bytes: Some(ORIGIN_CHUNKS * CHUNK),
        ..CheckOptions::default()
    };
    let report = check(&Device::open(&path, Access::ReadOnly).unwrap(), &options).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    let mut reopened = SharedStore::open(
        MemDev::from_bytes("mem:cow", cow),
        MemDev::from_bytes("mem:origin", origin),
    )
    .unwrap();
    let mut view = vec![0u8; before.len()];
    reopened.snapshot_read(0, 0, &mut view).unwrap();
    assert!(view == before, "snapshot 0 after reopening");
    let copied = report.summary.records;
    assert!(copied > 0 && copied <= 2 * REGION, "{copied} records");
}

#[test]
fn snapshots_made_between_writes_see_the_origin_of_their_moment() {
    let engine = engine();
    engine.origin_write(3 * CHUNK, &[1; 512]).unwrap();
    let second = engine.create_snapshot(None).unwrap();
    engine.origin_write(3 * CHUNK + 10, &[2; 1000]).unwrap();
    let child = engine.create_snapshot_of(0).unwrap();
    engine.snapshot_write(child, 3 * CHUNK, &[3; 4]).unwrap();

    let mut now = [0u8; 512];
    engine.origin_read(3 * CHUNK, &mut now).unwrap();
    assert_eq!((now[0], now[10], now[511]), (1, 2, 2));
    let mut seen = [0u8; 512];
    engine.snapshot_read(0, 3 * CHUNK, &mut seen).unwrap();
    assert!(seen[..] == pattern()[3 * 512..4 * 512]);
    engine.snapshot_read(second, 3 * CHUNK, &mut seen).unwrap();
    assert_eq!(seen, [1; 512]);
    engine.snapshot_read(child, 3 * CHUNK, &mut seen).unwrap();
    assert_eq!(&seen[..4], &[3; 4]);
    assert!(seen[4..] == pattern()[3 * 512 + 4..4 * 512]);

    assert!(engine.delete_snapshot(second).unwrap() > 0);
    engine.commit().unwrap();
    assert_eq!(engine.snapmask(), 0b101);
    assert_eq!(engine.header().snapmask, 0b101);
}

#[test]
fn requests_the_store_cannot_serve_carry_a_block_device_errno() {
    let engine = engine();
    let past_end = engine
        .origin_write(ORIGIN_CHUNKS * CHUNK - 1, &[0; 2])
        .unwrap_err();
    assert_eq!(errno(&past_end), libc::EINVAL, "{past_end}");
    assert!(past_end.to_string().contains("mem:origin"), "{past_end}");
    let missing = engine.snapshot_read(9, 0, &mut [0; 512]).unwrap_err();
    assert_eq!(errno(&missing), libc::EINVAL, "{missing}");

    let small = Engine::create(
        MemDev::new("mem:small", 12 * CHUNK),
        MemDev::from_bytes("mem:origin", pattern()),
        &CreateOptions {
            chunk_sectors: 1,
            journal_chunks: 0,
        },
    )
    .unwrap();
    small.create_snapshot(None).unwrap();
    let (chunk, full) = (0..ORIGIN_CHUNKS)
        .find_map(|c| {
            small
                .origin_write(c * CHUNK, &[1; 512])
                .err()
                .map(|e| (c, e))
        })
        .expect("a store of 12 chunks fills up");
    assert_eq!(errno(&full), libc::ENOSPC, "{full}");
    let mut kept = [0u8; 512];
    small
        .origin_device()
        .read_at(&mut kept, chunk * CHUNK, &String::new)
        .unwrap();
    assert!(
        kept[..] == pattern()[(chunk * CHUNK) as usize..((chunk + 1) * CHUNK) as usize],
        "origin chunk {chunk} was overwritten without its copy-out"
    );
}
