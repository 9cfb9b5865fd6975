//! `SharedStore::plan_copy_outs`, the copy-outs of a run of origin chunks
//! planned leaf by leaf (what `Engine::origin_write` does with a request):
//! it makes the same records as `plan_copy_out` on each chunk in turn
//! (random runs, snapshots taken between them, small chunks and a small
//! journal, so leaves split, the tree grows and the transaction bound stops
//! runs), and a sequential writer gets its copy-outs in one run of COW chunks
//! and full leaves.

use crate::shared_support;

use std::sync::Arc;

use cowengine::{CreateOptions, SharedStore};
use cowfmt::MemDev;

use shared_support::assert_checker_passes_on;

type Store = SharedStore<Arc<MemDev>>;

fn store(
    chunk_bytes: u64,
    origin_chunks: u64,
    cow_chunks: u64,
    journal: u64,
) -> (Store, Arc<MemDev>) {
    let cow = Arc::new(MemDev::new("mem:cow", cow_chunks * chunk_bytes));
    let origin = Arc::new(MemDev::new("mem:origin", origin_chunks * chunk_bytes));
    let options = CreateOptions {
        chunk_sectors: chunk_bytes / 512,
        journal_chunks: journal,
    };
    let store = SharedStore::create(Arc::clone(&cow), origin, &options).unwrap();
    (store, cow)
}

/// Every origin chunk with records and the share masks of its records.
fn masks(store: &mut Store) -> Vec<(u64, Vec<u64>)> {
    store
        .exceptions()
        .unwrap()
        .into_iter()
        .map(|(origin, records)| {
            let mut shares: Vec<u64> = records.iter().map(|r| r.share).collect();
            shares.sort_unstable();
            (origin, shares)
        })
        .collect()
}

/// A small seeded generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn planned_runs_make_the_records_of_one_chunk_at_a_time() {
    const ORIGIN: u64 = 3000;
    let (mut one, cow_one) = store(512, ORIGIN, 12_000, 80);
    let (mut run, cow_run) = store(512, ORIGIN, 12_000, 80);
    assert!(run.commit_mode().journaled(), "{}", run.commit_mode());
    let mut rng = Rng(10);
    let mut stopped_at_the_bound = 0;
    for step in 0..80 {
        if step % 20 == 0 {
            assert_eq!(
                one.create_snapshot(None).unwrap(),
                run.create_snapshot(None).unwrap()
            );
        }
        let at = rng.below(ORIGIN);
        let end = (at + 1 + rng.below(400)).min(ORIGIN);
        let mut expected = Vec::new();
        for origin in at..end {
            if one.wants_commit() {
                one.commit().unwrap();
            }
            if let Some(chunk) = one.plan_copy_out(origin).unwrap() {
                expected.push((origin, chunk));
            }
        }
        let mut planned = Vec::new();
        let mut next = at;
        while next < end {
            let mut plans = Vec::new();
            let stop = run.plan_copy_outs(next, end, &mut plans).unwrap();
            assert!(plans.windows(2).all(|w| w[0].0 < w[1].0), "{plans:?}");
            assert!(plans.iter().all(|&(o, _)| (next..stop).contains(&o)));
            planned.extend(plans);
            if stop < end {
                stopped_at_the_bound += 1;
                run.commit().unwrap();
            }
            next = stop;
        }
        let origins = |v: &[(u64, u64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            origins(&planned),
            origins(&expected),
            "step {step}: {at}..{end}"
        );
    }
    assert!(
        stopped_at_the_bound > 0,
        "no run reached the transaction bound"
    );
    assert!(run.tree_level() >= 2, "the tree never grew a level");
    assert_eq!(masks(&mut one), masks(&mut run));
    one.close().unwrap();
    run.close().unwrap();
    assert_checker_passes_on(&cow_one, ORIGIN * 512);
    assert_checker_passes_on(&cow_run, ORIGIN * 512);
}

#[test]
fn a_sequential_writer_copies_each_run_in_one_piece_and_fills_its_leaves() {
    const CHUNK: u64 = 4096;
    const PER_REQUEST: u64 = 256;
    const REQUESTS: u64 = 8;
    let (mut store, cow) = store(CHUNK, PER_REQUEST * REQUESTS, 4096, 256);
    store.create_snapshot(None).unwrap();
    store.commit().unwrap();
    let free = store.free_chunks();
    for r in 0..REQUESTS {
        let mut plans = Vec::new();
        let (at, end) = (r * PER_REQUEST, (r + 1) * PER_REQUEST);
        assert_eq!(store.plan_copy_outs(at, end, &mut plans).unwrap(), end);
        assert_eq!(plans.len() as u64, PER_REQUEST);
        assert!(
            plans.windows(2).all(|w| w[1] == (w[0].0 + 1, w[0].1 + 1)),
            "request {r}: the COW chunks are not one run"
        );
        store.commit().unwrap();
    }
    // A 4 KiB leaf holds 169 entries: 2048 of them fill 13 leaves (12 new
    // ones); median splits would leave them half full (about 24 leaves).
    let leaves = free - store.free_chunks() - PER_REQUEST * REQUESTS;
    assert!(leaves <= 12, "{leaves} new leaves for 2048 entries");
    store.close().unwrap();
    assert_checker_passes_on(&cow, PER_REQUEST * REQUESTS * CHUNK);
}
