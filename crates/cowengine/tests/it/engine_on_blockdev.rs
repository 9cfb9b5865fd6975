//! The engine over `BlockDev`s other than files: in memory it writes exactly
//! the bytes it writes to image files, and on recording crash devices every
//! image a power cut leaves right after a commit, or between commits with the
//! unsynced writes lost, opens again with the views of that commit and checks
//! clean.

use cowengine::{CreateOptions, SharedStore};
use cowfmt::shared::check::{check, CheckOptions};
use cowfmt::shared::mask;
use cowfmt::{Access, BlockDev, CrashLog, Device, MemDev};

const CHUNK: u64 = 512;
const ORIGIN_CHUNKS: u64 = 96;
const COW_CHUNKS: u64 = 1024;

fn origin_bytes() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..ORIGIN_CHUNKS * CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn options() -> CreateOptions {
    CreateOptions {
        chunk_sectors: CHUNK / 512,
        journal_chunks: 4,
    }
}

/// One step of the workload: snapshots made, written, deleted; origin written.
fn step<D: BlockDev>(store: &mut SharedStore<D>, round: u64) {
    if round.is_multiple_of(3) {
        store.create_snapshot(None).unwrap();
    }
    if round == 4 {
        store.create_snapshot_of(0).unwrap();
    }
    if round == 7 {
        store.delete_snapshot(1).unwrap();
    }
    for i in 0..20 {
        let chunk = (round * 37 + i * 11) % ORIGIN_CHUNKS;
        store
            .origin_write(chunk * CHUNK + i, &[round as u8 + 1; 300])
            .unwrap();
    }
    let live = mask::id_list(store.snapmask());
    let id = live[round as usize % live.len()];
    store
        .snapshot_write(id, (round * 5 % ORIGIN_CHUNKS) * CHUNK, &[0xee; 700])
        .unwrap();
}

/// The origin and every snapshot's whole view, as the store reads them now.
fn views<D: BlockDev>(store: &mut SharedStore<D>) -> Vec<(Option<u32>, Vec<u8>)> {
    let mut origin = vec![0u8; (ORIGIN_CHUNKS * CHUNK) as usize];
    store
        .origin_device()
        .read_at(&mut origin, 0, &String::new)
        .unwrap();
    let mut out = vec![(None, origin)];
    for id in mask::id_list(store.snapmask()) {
        let mut view = vec![0u8; (ORIGIN_CHUNKS * CHUNK) as usize];
        store.snapshot_read(id, 0, &mut view).unwrap();
        out.push((Some(id), view));
    }
    out
}

fn assert_checks_clean(cow: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    std::fs::write(&path, cow).unwrap();
    let options = CheckOptions {
        origin_bytes: Some(ORIGIN_CHUNKS * CHUNK),
        ..CheckOptions::default()
    };
    let report = check(&Device::open(&path, Access::ReadOnly).unwrap(), &options).unwrap();
    assert!(report.is_clean(), "{what}: {:#?}", report.findings);
}

#[test]
fn in_memory_the_engine_writes_the_bytes_it_writes_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cow_path, origin_path) = (dir.path().join("cow.img"), dir.path().join("origin.img"));
    std::fs::write(&origin_path, origin_bytes()).unwrap();
    let mut on_files = SharedStore::create(
        Device::create_or_extend(&cow_path, COW_CHUNKS * CHUNK).unwrap(),
        Device::open(&origin_path, Access::ReadWrite).unwrap(),
        &options(),
    )
    .unwrap();
    let mut in_memory = SharedStore::create(
        MemDev::new("mem:cow", COW_CHUNKS * CHUNK),
        MemDev::from_bytes("mem:origin", origin_bytes()),
        &options(),
    )
    .unwrap();
    for round in 0..10 {
        step(&mut on_files, round);
        step(&mut in_memory, round);
        assert_eq!(views(&mut on_files), views(&mut in_memory), "round {round}");
        if round % 4 == 3 {
            on_files.commit().unwrap();
            in_memory.commit().unwrap();
        }
    }
    on_files.commit().unwrap();
    in_memory.commit().unwrap();
    drop(on_files);
    let cow = in_memory.cow_device().to_bytes();
    assert_eq!(cow, std::fs::read(&cow_path).unwrap());
    assert_eq!(
        in_memory.origin_device().to_bytes(),
        std::fs::read(&origin_path).unwrap()
    );
    assert_checks_clean(&cow, "in memory");
    let err = in_memory
        .origin_write(ORIGIN_CHUNKS * CHUNK - 1, &[0; 2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("mem:origin"), "errors name the device: {err}");
}

/// A commit of the workload and the views it made durable.
struct Committed {
    /// Events in the log when the commit began.
    began: usize,
    /// Events in the log when the commit returned.
    at: usize,
    views: Vec<(Option<u32>, Vec<u8>)>,
}

/// The store reopened from the crash images of both devices after the first
/// `at` events, with the writes in `lost_cow` / `lost_origin` lost.
fn reopen(
    log: &CrashLog,
    at: usize,
    lost_cow: &[usize],
    lost_origin: &[usize],
) -> SharedStore<MemDev> {
    let cow = log.image(0, at, lost_cow).unwrap();
    assert_checks_clean(&cow, &format!("crash after event {at}"));
    SharedStore::open(
        MemDev::from_bytes("crash:cow", cow),
        MemDev::from_bytes("crash:origin", log.image(1, at, lost_origin).unwrap()),
    )
    .unwrap()
}

#[test]
fn crash_images_at_and_between_commits_read_as_the_last_commit() {
    let log = CrashLog::new();
    let cow = log.device("crash:cow", vec![0; (COW_CHUNKS * CHUNK) as usize]);
    let origin = log.device("crash:origin", origin_bytes());
    let mut store = SharedStore::create(cow, origin, &options()).unwrap();
    let mut commits = vec![Committed {
        began: 0,
        at: log.len(),
        views: views(&mut store),
    }];
    for round in 0..9 {
        step(&mut store, round);
        if round % 2 == 1 {
            let began = log.len();
            store.commit().unwrap();
            commits.push(Committed {
                began,
                at: log.len(),
                views: views(&mut store),
            });
        }
    }
    let end = log.len();
    assert!(
        end > commits.last().unwrap().at,
        "writes after the last commit"
    );

    for (i, commit) in commits.iter().enumerate() {
        assert!(log.unsynced(0, commit.at).is_empty() && log.unsynced(1, commit.at).is_empty());
        let mut reopened = reopen(&log, commit.at, &[], &[]);
        assert!(
            views(&mut reopened) == commit.views,
            "commit {i}: views differ"
        );
    }
    for (i, pair) in commits.windows(2).enumerate() {
        for crash in [(pair[0].at + pair[1].began) / 2, pair[1].began] {
            let (lost_cow, lost_origin) = (log.unsynced(0, crash), log.unsynced(1, crash));
            assert!(!lost_cow.is_empty() && !lost_origin.is_empty());
            let mut reopened = reopen(&log, crash, &lost_cow, &lost_origin);
            assert!(
                views(&mut reopened) == pair[0].views,
                "crash after event {crash}, between commits {i} and {}: views differ from commit {i}",
                i + 1
            );
        }
    }
}
