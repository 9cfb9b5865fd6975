//! `SharedStore::origin_write_batch`: a batch leaves every snapshot and the
//! origin as `origin_write` of each write followed by a commit does (random
//! batches, a chunk written several times in one batch, writes across chunks,
//! the origin's partial last chunk), and at every crash point of a batch no
//! snapshot reads data the batch wrote: no origin chunk is overwritten before
//! the commit record of its copy-out is durable.

use std::sync::Arc;

use cowengine::{CreateOptions, SharedStore};
use cowfmt::{BlockDev, CrashDev, CrashLog, MemDev};

const CHUNK: u64 = 512;
/// Origin bytes: 96 whole chunks and a partial last one.
const ORIGIN_BYTES: u64 = 96 * CHUNK + 200;
const COW_CHUNKS: u64 = 1024;
/// Enough journal for the engine to commit through it.
const JOURNAL: u64 = 128;

fn options() -> CreateOptions {
    CreateOptions {
        chunk_sectors: CHUNK / 512,
        journal_chunks: JOURNAL,
    }
}

fn origin_pattern() -> Vec<u8> {
    (0..ORIGIN_BYTES)
        .map(|i| (i / CHUNK * 7 + i % 251) as u8)
        .collect()
}

/// A small seeded generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random batch: writes of 1 byte to three chunks at any offset, some of
/// them again at offsets already written in the batch, some at the origin's
/// end; each write's bytes are `fill` plus its index.
fn random_batch(rng: &mut Rng, fill: u8) -> Vec<(u64, Vec<u8>)> {
    let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
    for i in 0..rng.below(40) + 1 {
        let len = rng.below(3 * CHUNK) + 1;
        let offset = match rng.below(6) {
            0 if !writes.is_empty() => writes[rng.below(writes.len() as u64) as usize].0,
            1 => ORIGIN_BYTES - len,
            2 => rng.below(ORIGIN_BYTES / CHUNK) * CHUNK,
            _ => rng.below(ORIGIN_BYTES - len + 1),
        };
        let offset = offset.min(ORIGIN_BYTES - len);
        writes.push((offset, vec![fill.wrapping_add(i as u8); len as usize]));
    }
    if rng.below(3) == 0 {
        let (offset, data) = writes[0].clone();
        let next = offset + data.len() as u64;
        if next + CHUNK <= ORIGIN_BYTES {
            writes.insert(1, (next, vec![fill ^ 0x55; CHUNK as usize]));
        }
    }
    writes
}

fn as_refs(writes: &[(u64, Vec<u8>)]) -> Vec<(u64, &[u8])> {
    writes.iter().map(|(o, d)| (*o, d.as_slice())).collect()
}

fn read_snapshot<D: BlockDev>(store: &mut SharedStore<D>, id: u32) -> Vec<u8> {
    let mut out = vec![0; ORIGIN_BYTES as usize];
    store.snapshot_read(id, 0, &mut out).unwrap();
    out
}

fn read_origin<D: BlockDev>(store: &SharedStore<D>) -> Vec<u8> {
    let mut out = vec![0; ORIGIN_BYTES as usize];
    store
        .origin_device()
        .read_at(&mut out, 0, &|| "origin".to_string())
        .unwrap();
    out
}

type Store = SharedStore<Arc<MemDev>>;

fn new_store() -> (Store, Arc<MemDev>, Arc<MemDev>) {
    let cow = Arc::new(MemDev::new("mem:cow", COW_CHUNKS * CHUNK));
    let origin = Arc::new(MemDev::from_bytes("mem:origin", origin_pattern()));
    let store = SharedStore::create(Arc::clone(&cow), Arc::clone(&origin), &options()).unwrap();
    (store, cow, origin)
}

#[test]
fn batches_leave_every_snapshot_and_the_origin_as_sequential_writes_do() {
    for seed in 1..=6 {
        let mut rng = Rng(seed);
        let (mut batched, cow, origin) = new_store();
        let (mut sequential, _, _) = new_store();
        let mut model_origin = origin_pattern();
        let mut model_snaps: Vec<(u32, Vec<u8>)> = Vec::new();
        for round in 0..12u8 {
            if round % 3 == 0 {
                let id = batched.create_snapshot(None).unwrap();
                assert_eq!(sequential.create_snapshot(None).unwrap(), id);
                model_snaps.push((id, model_origin.clone()));
            }
            let writes = random_batch(&mut rng, round.wrapping_mul(37));
            batched.origin_write_batch(&as_refs(&writes)).unwrap();
            for (offset, data) in &writes {
                sequential.origin_write(*offset, data).unwrap();
                let at = *offset as usize;
                model_origin[at..at + data.len()].copy_from_slice(data);
            }
            sequential.commit().unwrap();
            assert_eq!(
                read_origin(&batched),
                model_origin,
                "seed {seed} round {round}"
            );
            assert_eq!(read_origin(&sequential), model_origin);
            for (id, want) in &model_snaps {
                assert_eq!(
                    &read_snapshot(&mut batched, *id),
                    want,
                    "seed {seed} round {round}: snapshot {id} after a batch"
                );
                assert_eq!(&read_snapshot(&mut sequential, *id), want);
            }
            assert_eq!(
                batched.exceptions().unwrap().len(),
                sequential.exceptions().unwrap().len()
            );
        }
        drop(batched);
        let mut reopened = SharedStore::open(cow, origin).unwrap();
        for (id, want) in &model_snaps {
            assert_eq!(
                &read_snapshot(&mut reopened, *id),
                want,
                "seed {seed} reopened"
            );
        }
    }
}

#[test]
fn a_batch_past_the_origin_end_changes_nothing() {
    let (mut store, _, _) = new_store();
    store.create_snapshot(None).unwrap();
    let data = [9u8; CHUNK as usize];
    let err = store
        .origin_write_batch(&[(0, &data[..]), (ORIGIN_BYTES - 10, &data[..])])
        .unwrap_err();
    assert!(
        err.to_string().contains("pass the end of the origin"),
        "{err}"
    );
    assert!(store.exceptions().unwrap().is_empty());
    assert_eq!(read_origin(&store), origin_pattern());
}

#[test]
fn a_batch_larger_than_one_transaction_commits_in_several() {
    const BIG_CHUNKS: u64 = 16384;
    let pattern: Vec<u8> = (0..BIG_CHUNKS * CHUNK).map(|i| (i / CHUNK) as u8).collect();
    let cow = Arc::new(MemDev::new("mem:cow", 3 * BIG_CHUNKS * CHUNK));
    let origin = Arc::new(MemDev::from_bytes("mem:origin", pattern.clone()));
    let mut store = SharedStore::create(Arc::clone(&cow), Arc::clone(&origin), &options()).unwrap();
    assert!(store.commit_mode().journaled(), "{}", store.commit_mode());
    let snaps: Vec<u32> = (0..3)
        .map(|_| store.create_snapshot(None).unwrap())
        .collect();
    let before = store.transactions();
    let data = [0xa5u8; CHUNK as usize];
    // Every other chunk, from the end: no two writes adjacent, more leaves
    // than half the journal holds.
    let writes: Vec<(u64, &[u8])> = (0..BIG_CHUNKS / 2)
        .rev()
        .map(|c| (2 * c * CHUNK, &data[..]))
        .collect();
    store.origin_write_batch(&writes).unwrap();
    assert!(
        store.transactions() > before + 1,
        "{} transactions, tree level {}",
        store.transactions() - before,
        store.tree_level()
    );
    let mut want = pattern.clone();
    for (offset, d) in &writes {
        want[*offset as usize..*offset as usize + d.len()].copy_from_slice(d);
    }
    let mut origin_now = vec![0; want.len()];
    origin
        .read_at(&mut origin_now, 0, &|| "origin".into())
        .unwrap();
    assert!(origin_now == want);
    drop(store);
    let mut reopened = SharedStore::open(cow, origin).unwrap();
    for id in &snaps {
        let mut view = vec![0; pattern.len()];
        reopened.snapshot_read(*id, 0, &mut view).unwrap();
        assert!(view == pattern, "snapshot {id} after reopen");
    }
}

/// Every crash point of a batch (every prefix of the log, and at each the
/// losses `CrashLog::loss_cases` tries): the reopened store (journal
/// replayed) reads every snapshot as before the batch, so no origin chunk the
/// batch overwrote lacks its durable copy-out; and each origin byte holds its
/// old value or one the batch wrote.
#[test]
fn no_crash_point_of_a_batch_exposes_an_overwritten_origin_chunk() {
    let mut images = 0;
    for seed in 1..=4 {
        let mut rng = Rng(seed * 1000);
        let log = CrashLog::new();
        let cow: CrashDev = log.device("crash:cow", vec![0; (COW_CHUNKS * CHUNK) as usize]);
        let origin: CrashDev = log.device("crash:origin", origin_pattern());
        let (cow_id, origin_id) = (cow.id(), origin.id());
        let mut store = SharedStore::create(cow, origin, &options()).unwrap();
        let mut model = origin_pattern();
        let mut snaps = Vec::new();
        for round in 0..2u8 {
            snaps.push((store.create_snapshot(None).unwrap(), model.clone()));
            let writes = random_batch(&mut rng, 0x10 + round);
            store.origin_write_batch(&as_refs(&writes)).unwrap();
            store.commit().unwrap();
            for (offset, data) in &writes {
                model[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
            }
        }
        snaps.push((store.create_snapshot(None).unwrap(), model.clone()));
        store.commit().unwrap();
        let start = log.len();
        let writes = random_batch(&mut rng, 0xc0);
        store.origin_write_batch(&as_refs(&writes)).unwrap();
        let end = log.len();
        let mut written = model.clone();
        for (offset, data) in &writes {
            written[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
        }
        for at in start..=end {
            for lost in log.loss_cases(&[cow_id, origin_id], at) {
                let cow_image = log.image(cow_id, at, &lost[0]).unwrap();
                let origin_image = log.image(origin_id, at, &lost[1]).unwrap();
                for (i, byte) in origin_image.iter().enumerate() {
                    assert!(
                        *byte == model[i]
                            || writes.iter().any(|(o, d)| {
                                (*o as usize..*o as usize + d.len()).contains(&i)
                                    && d[i - *o as usize] == *byte
                            }),
                        "seed {seed} event {at}: origin byte {i} is neither old nor written"
                    );
                }
                let mut reopened = SharedStore::open(
                    MemDev::from_bytes("crash:cow", cow_image),
                    MemDev::from_bytes("crash:origin", origin_image),
                )
                .unwrap();
                for (id, want) in &snaps {
                    assert!(
                        &read_snapshot(&mut reopened, *id) == want,
                        "seed {seed} event {at} lost {lost:?}: snapshot {id} reads data the batch wrote"
                    );
                }
                images += 1;
            }
        }
        assert!(log.image(origin_id, end, &[]).unwrap() == written);
    }
    assert!(images > 100, "only {images} crash images");
}
