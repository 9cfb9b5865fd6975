//! Model-based tests of the shared store engine: random (proptest) and seeded
//! sequences of origin writes, snapshot writes, snapshot creation (also of a
//! snapshot), deletion and reopen, compared with a plain in-memory model of the
//! origin and every snapshot.
//!
//! What is compared when ([`Run::step`]):
//! - after every step the store is committed, and cowcheck's checker must find
//!   nothing; every chunk the step wrote is read back through `snapshot_read`
//!   for every snapshot; the origin image equals the model; and every
//!   snapshot's whole view, derived from one pass over the tree's records and
//!   the COW and origin images, equals the model;
//! - every `full_every` steps and at the end, every snapshot is also read back
//!   whole through `snapshot_read`, and the independent structural check of
//!   `shared_support` (tree shape, references, bitmap) runs.

use crate::shared_support;

use std::collections::BTreeMap;
use std::ops::Range;

use cowengine::{CopyData, SharedStore};
use cowfmt::shared::check::{check, CheckOptions};
use cowfmt::shared::leaf::max_snapshots;
use cowfmt::{Access, Device, Error};
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

/// A seeded xorshift generator for the deterministic sequences.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// One operation of every kind, writes most often.
    fn op(&mut self, origin_chunks: u64, max_run: u64, chunk_bytes: u64) -> Op {
        let pick = self.below(1 << 16) as usize;
        match self.below(100) {
            0..=29 => Op::OriginWrite {
                chunk: self.below(origin_chunks),
                chunks: 1 + self.below(max_run),
                byte: self.below(256) as u8,
            },
            30..=59 => Op::SnapshotWrite {
                pick,
                chunk: self.below(origin_chunks),
                within: self.below(chunk_bytes),
                len: 1 + self.below(chunk_bytes),
                byte: self.below(256) as u8,
            },
            60..=69 => Op::Create,
            70..=73 => Op::CreateWithId {
                id: self.below(64) as u32,
            },
            74..=81 => Op::CreateOf { pick },
            82..=93 => Op::Delete { pick },
            _ => Op::Reopen,
        }
    }
}

/// The COW image mapped read-only and shared: what the engine writes through
/// its own descriptor shows through the mapping, so the checks read committed
/// COW chunks without copying the whole image at every step.
struct MappedImage {
    addr: *mut libc::c_void,
    len: usize,
}

impl MappedImage {
    fn new(path: &std::path::Path) -> Self {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a fresh read-only mapping of a whole open file; the kernel
        // keeps it after the descriptor closes.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "cannot map {}", path.display());
        MappedImage { addr, len }
    }

    /// The image's bytes. Callers hold them only while the store does not write.
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping lives as long as `self` and is `len` bytes long.
        unsafe { std::slice::from_raw_parts(self.addr.cast::<u8>(), self.len) }
    }
}

impl Drop for MappedImage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

fn pick(model: &Model, pick: usize) -> Option<u32> {
    let ids: Vec<u32> = model.snapshots.keys().copied().collect();
    (!ids.is_empty()).then(|| ids[pick % ids.len()])
}

/// A store, its model, and the checks run after every step.
struct Run {
    fx: Fixture,
    store: SharedStore,
    model: Model,
    full_every: u64,
    steps: u64,
    deepest: u32,
    cow: MappedImage,
}

impl Run {
    fn new(fx: Fixture, full_every: u64) -> Self {
        let store = fx.create();
        let cow = MappedImage::new(&fx.cow_path());
        let model = Model {
            origin: fx.origin_bytes(),
            snapshots: BTreeMap::new(),
        };
        Run {
            fx,
            store,
            model,
            full_every,
            steps: 0,
            deepest: 0,
            cow,
        }
    }

    fn chunk_bytes(&self) -> u64 {
        self.fx.chunk_bytes
    }

    /// Applies `op` and runs the checks of the module documentation.
    fn step(&mut self, op: &Op) {
        let touched = self.apply(op);
        self.steps += 1;
        self.store.commit().unwrap();
        self.deepest = self.deepest.max(self.store.tree_level());
        self.assert_checker_clean();
        self.assert_touched(touched);
        self.assert_record_views();
        if self.steps.is_multiple_of(self.full_every) {
            self.assert_full();
        }
    }

    /// Every view read back whole, and the independent structural check.
    fn assert_full(&mut self) {
        self.store.commit().unwrap();
        self.assert_full_views();
        assert_consistent(&self.fx, &mut self.store);
    }

    /// Applies `op` to the store and, where the store accepted it, to the
    /// model; returns the origin chunks it wrote. A store that is full must
    /// refuse cleanly and leave every view unchanged; a create must be refused
    /// exactly at the snapshot limit.
    fn apply(&mut self, op: &Op) -> Range<u64> {
        let cb = self.chunk_bytes();
        match *op {
            Op::OriginWrite {
                chunk,
                chunks,
                byte,
            } => {
                let chunks = chunks.min(self.fx.origin_chunks - chunk);
                let data = vec![byte; (chunks * cb) as usize];
                match self.store.origin_write(chunk * cb, &data) {
                    Ok(()) => self.model.origin[(chunk * cb) as usize..][..data.len()]
                        .copy_from_slice(&data),
                    Err(Error::StoreFull { .. }) => {}
                    Err(e) => panic!("origin write: {e}"),
                }
                chunk..chunk + chunks
            }
            Op::SnapshotWrite {
                pick: p,
                chunk,
                within,
                len,
                byte,
            } => {
                let Some(id) = pick(&self.model, p) else {
                    return 0..0;
                };
                let within = within % cb;
                let len = len.min(cb - within);
                let at = chunk * cb + within;
                let data = vec![byte; len as usize];
                match self.store.snapshot_write(id, at, &data) {
                    Ok(()) => self.model.snapshots.get_mut(&id).unwrap()[at as usize..]
                        [..data.len()]
                        .copy_from_slice(&data),
                    Err(Error::StoreFull { .. }) => {}
                    Err(e) => panic!("snapshot write: {e}"),
                }
                chunk..chunk + 1
            }
            Op::Create | Op::CreateWithId { .. } => {
                let wanted = match *op {
                    Op::CreateWithId { id } => Some(id),
                    _ => None,
                };
                self.create(wanted);
                0..0
            }
            Op::CreateOf { pick: p } => {
                if let Some(parent) = pick(&self.model, p) {
                    self.create_of(parent);
                }
                0..0
            }
            Op::Delete { pick: p } => {
                if let Some(id) = pick(&self.model, p) {
                    self.store.delete_snapshot(id).unwrap();
                    self.model.snapshots.remove(&id);
                }
                0..0
            }
            Op::Reopen => {
                self.store.commit().unwrap();
                self.store = self.fx.reopen();
                0..0
            }
        }
    }

    fn at_limit(&self) -> bool {
        self.model.snapshots.len() >= max_snapshots(self.chunk_bytes()) as usize
    }

    fn create(&mut self, wanted: Option<u32>) {
        let taken = wanted.is_some_and(|id| self.model.snapshots.contains_key(&id));
        let at_limit = self.at_limit();
        match self.store.create_snapshot(wanted) {
            Ok(id) => {
                assert!(!at_limit && !taken);
                if wanted.is_none() {
                    let lowest = (0..64).find(|i| !self.model.snapshots.contains_key(i));
                    assert_eq!(Some(id), lowest);
                }
                self.model.snapshots.insert(id, self.model.origin.clone());
            }
            Err(Error::Invalid(_)) => assert!(taken),
            Err(Error::SnapshotLimit { max, .. }) => {
                assert!(at_limit && !taken);
                assert_eq!(max, max_snapshots(self.chunk_bytes()));
            }
            Err(e) => panic!("create: {e}"),
        }
    }

    fn create_of(&mut self, parent: u32) {
        let at_limit = self.at_limit();
        match self.store.create_snapshot_of(parent) {
            Ok(id) => {
                assert!(!at_limit);
                let view = self.model.snapshots[&parent].clone();
                self.model.snapshots.insert(id, view);
            }
            Err(Error::SnapshotLimit { .. }) => assert!(at_limit),
            Err(e) => panic!("create of {parent}: {e}"),
        }
    }

    fn assert_checker_clean(&mut self) {
        let cow = Device::open(self.fx.cow_path(), Access::ReadOnly).unwrap();
        let options = CheckOptions {
            origin_bytes: Some(self.fx.origin_chunks * self.chunk_bytes()),
            ..CheckOptions::default()
        };
        let report = check(&cow, &options).unwrap();
        assert!(
            report.is_clean(),
            "step {}: cowcheck findings: {:#?}",
            self.steps,
            report.findings
        );
    }

    /// The chunks in `touched` read back through `snapshot_read` for every
    /// snapshot as the model says.
    fn assert_touched(&mut self, touched: Range<u64>) {
        let cb = self.chunk_bytes() as usize;
        let mut buf = vec![0u8; cb];
        for c in touched {
            for (&id, view) in &self.model.snapshots {
                self.store
                    .snapshot_read(id, c * cb as u64, &mut buf)
                    .unwrap();
                if buf[..] != view[c as usize * cb..][..cb] {
                    panic!("step {}: snapshot {id} differs at chunk {c}", self.steps);
                }
            }
        }
    }

    /// Every snapshot's view as the committed records make it (a record's COW
    /// chunk where the snapshot has one, the origin elsewhere) equals the
    /// model, and so does the origin.
    fn assert_record_views(&mut self) {
        let cb = self.chunk_bytes() as usize;
        let origin = self.fx.origin_bytes();
        assert!(origin == self.model.origin, "step {}: origin", self.steps);
        let snapmask = self.store.snapmask();
        let mut covered = vec![0u64; self.fx.origin_chunks as usize];
        let (model, cow, step) = (&self.model, self.cow.bytes(), self.steps);
        self.store
            .for_each_exception(|c, records| {
                let c = c as usize;
                for r in records {
                    assert_eq!(r.share & !snapmask, 0, "step {step}: chunk {c}");
                    assert_eq!(r.share & covered[c], 0, "step {step}: chunk {c}");
                    covered[c] |= r.share;
                    let data = &cow[r.chunk as usize * cb..][..cb];
                    let mut bits = r.share;
                    while bits != 0 {
                        let id = bits.trailing_zeros();
                        bits &= bits - 1;
                        if model.snapshots[&id][c * cb..][..cb] != *data {
                            panic!("step {step}: snapshot {id}'s record of chunk {c}");
                        }
                    }
                }
            })
            .unwrap();
        for (&id, view) in &self.model.snapshots {
            for (c, &mask) in covered.iter().enumerate() {
                let range = c * cb..(c + 1) * cb;
                if mask & 1 << id == 0 && view[range.clone()] != origin[range] {
                    panic!("step {step}: snapshot {id} at chunk {c} should read the origin");
                }
            }
        }
    }

    /// Every snapshot read back whole through `snapshot_read`.
    fn assert_full_views(&mut self) {
        let expected: u64 = self.model.snapshots.keys().map(|&id| 1u64 << id).sum();
        assert_eq!(self.store.snapmask(), expected);
        let mut buf = vec![0u8; self.model.origin.len()];
        for (&id, view) in &self.model.snapshots {
            self.store.snapshot_read(id, 0, &mut buf).unwrap();
            if &buf != view {
                let at = buf.iter().zip(view).position(|(a, b)| a != b).unwrap();
                panic!(
                    "step {}: snapshot {id} differs from the model at byte {at} (chunk {})",
                    self.steps,
                    at as u64 / self.chunk_bytes()
                );
            }
        }
    }
}

/// Runs `ops` after `initial` snapshots; returns the deepest tree seen.
fn run(chunk_sectors: u32, origin_chunks: u64, cow_chunks: u64, initial: u32, ops: &[Op]) -> u32 {
    let fx = Fixture::new(chunk_sectors, origin_chunks, cow_chunks, 0);
    let mut run = Run::new(fx, 8);
    for _ in 0..initial {
        run.step(&Op::Create);
    }
    for op in ops {
        run.step(op);
    }
    run.assert_full();
    run.deepest
}

/// Origin chunks of the deep-tree runs.
const DEEP_ORIGIN_CHUNKS: u64 = 1000;

/// A store of 512-byte chunks grown to a tree of at least three node levels
/// cheaply: over an all-zero origin, 29 snapshots are taken one by one, each
/// followed by metadata-only copy-outs of about three quarters of the origin
/// (the new COW chunks read as zeros, as the origin did). Every snapshot exists
/// when it returns, and the model holds them.
fn deep_tree(seed: u64, full_every: u64) -> (Run, Rng) {
    const ORIGIN_CHUNKS: u64 = DEEP_ORIGIN_CHUNKS;
    let fx = Fixture::new(1, ORIGIN_CHUNKS, 40_000, 2);
    std::fs::write(fx.origin_path(), vec![0u8; ORIGIN_CHUNKS as usize * 512]).unwrap();
    let mut run = Run::new(fx, full_every);
    let mut rng = Rng(seed);
    for _ in 0..max_snapshots(512) {
        run.apply(&Op::Create);
        for c in 0..ORIGIN_CHUNKS {
            if rng.below(4) != 0 {
                run.store.copy_out(c, CopyData::No).unwrap();
            }
        }
    }
    run.store.commit().unwrap();
    assert!(
        run.store.tree_level() >= 3,
        "tree_level {}",
        run.store.tree_level()
    );
    run.assert_full();
    (run, rng)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// 512-byte chunks: small leaves and nodes, so trees grow quickly; the
    /// initial snapshots may pass the limit of 29.
    #[test]
    fn engine_matches_model_512(initial in 0u32..32, ops in prop::collection::vec(op(384, 48), 1..60)) {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Random sequences over a tree of three node levels or more (512-byte
    /// chunks, the snapshot limit of 29 reached).
    #[test]
    fn deep_tree_matches_model(seed in 1u64.., ops in prop::collection::vec(op(DEEP_ORIGIN_CHUNKS, 8), 20..40)) {
        let (mut run, _) = deep_tree(seed, 10);
        for op in &ops {
            run.step(op);
        }
        run.assert_full();
        prop_assert!(run.deepest >= 3);
    }
}

/// The seeded deep-tree sequence: a tree of three node levels at 512-byte
/// chunks, then 300 steps of every operation mixed, with the model compared
/// and the checker run after every step. Deletes shrink the tree in the end;
/// at least the first 100 steps run on three levels or more.
#[test]
fn seeded_deep_tree_sequence_matches_model() {
    let (mut run, mut rng) = deep_tree(0x9e37_79b9_7f4a_7c15, 25);
    let mut deep_steps = 0;
    for _ in 0..300 {
        let op = rng.op(DEEP_ORIGIN_CHUNKS, 8, 512);
        run.step(&op);
        deep_steps += u32::from(run.store.tree_level() >= 3);
    }
    run.assert_full();
    assert!(run.deepest >= 3, "deepest {}", run.deepest);
    assert!(deep_steps >= 100, "only {deep_steps} steps on three levels");
}

/// All 64 snapshots at 2 KiB chunks: taken while the origin and snapshots are
/// written, then every operation mixed, with checks after every step; finally
/// every snapshot is deleted, which frees every chunk and collapses the tree.
#[test]
fn sixty_four_snapshots_at_2k_match_model_and_delete_back_to_empty() {
    let fx = Fixture::new(4, 128, 6000, 2);
    let mut run = Run::new(fx, 16);
    let fresh_free = run.store.free_chunks();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    while run.model.snapshots.len() < 64 {
        run.step(&Op::Create);
        for _ in 0..2 {
            let op = rng.op(128, 4, 2048);
            run.step(&op);
        }
    }
    assert_eq!(run.store.snapmask(), u64::MAX);
    for _ in 0..150 {
        let op = rng.op(128, 4, 2048);
        run.step(&op);
    }
    run.assert_full();
    while !run.model.snapshots.is_empty() {
        let pick = rng.below(64) as usize;
        run.step(&Op::Delete { pick });
    }
    run.assert_full();
    assert_eq!(run.store.tree_level(), 1);
    assert_eq!(run.store.free_chunks(), fresh_free);
    assert!(run.store.exceptions().unwrap().is_empty());
}

/// 1 MiB chunks (2048 sectors): create, snapshot of a snapshot, origin writes
/// across chunk borders, snapshot writes, delete and reopen.
#[test]
fn one_mib_chunks_work() {
    let mib = 1u64 << 20;
    let fx = Fixture::new(2048, 6, 40, 1);
    let mut run = Run::new(fx, 1);
    for op in [
        Op::Create,
        Op::OriginWrite {
            chunk: 1,
            chunks: 2,
            byte: 1,
        },
        Op::SnapshotWrite {
            pick: 0,
            chunk: 4,
            within: mib - 100,
            len: 100,
            byte: 2,
        },
        Op::CreateOf { pick: 0 },
        Op::OriginWrite {
            chunk: 4,
            chunks: 1,
            byte: 3,
        },
        Op::SnapshotWrite {
            pick: 1,
            chunk: 2,
            within: 7,
            len: 5000,
            byte: 4,
        },
        Op::Create,
        Op::Delete { pick: 0 },
        Op::Reopen,
        Op::OriginWrite {
            chunk: 0,
            chunks: 6,
            byte: 5,
        },
    ] {
        run.step(&op);
    }
    assert_eq!(run.model.snapshots.len(), 2);
    let span = (mib / 2)..(mib * 3 / 2);
    let mut buf = vec![0u8; (span.end - span.start) as usize];
    for (&id, view) in &run.model.snapshots {
        run.store.snapshot_read(id, span.start, &mut buf).unwrap();
        assert!(buf[..] == view[span.start as usize..span.end as usize]);
    }
}

/// The snapshot limit: 29 snapshots at 512 bytes, 61 at 1 KiB, 64 from 2 KiB.
/// At the limit a create (also of a snapshot) is refused with a typed error and
/// changes nothing; every snapshot can still have its own copy of one chunk,
/// and origin and snapshot writes never hit the per-leaf record limit.
#[test]
fn creates_stop_at_the_snapshot_limit_and_writes_never_hit_the_record_limit() {
    assert_eq!(
        [512, 1024, 2048, 4096, 1 << 20].map(max_snapshots),
        [29, 61, 64, 64, 64]
    );
    for (sectors, max) in [(1u32, 29u32), (2, 61)] {
        let fx = Fixture::new(sectors, 8, 400, 0);
        let cb = fx.chunk_bytes;
        let mut run = Run::new(fx, 1_000);
        for _ in 0..max {
            run.step(&Op::Create);
            run.step(&Op::OriginWrite {
                chunk: 1,
                chunks: 1,
                byte: run.model.snapshots.len() as u8,
            });
        }
        assert_eq!(run.store.lookup(1).unwrap().len(), max as usize);
        let snapmask = run.store.snapmask();
        for result in [
            run.store.create_snapshot(None),
            run.store.create_snapshot(Some(63)),
            run.store.create_snapshot_of(0),
        ] {
            assert!(
                matches!(result, Err(Error::SnapshotLimit { max: m, chunk_bytes, .. }) if m == max && chunk_bytes == cb),
                "{result:?}"
            );
        }
        assert_eq!(run.store.snapmask(), snapmask);
        for pick in 0..max as usize {
            run.step(&Op::SnapshotWrite {
                pick,
                chunk: 1,
                within: 0,
                len: cb,
                byte: pick as u8,
            });
        }
        run.step(&Op::Delete { pick: 3 });
        run.step(&Op::CreateOf { pick: 5 });
        run.step(&Op::SnapshotWrite {
            pick: 3,
            chunk: 1,
            within: 1,
            len: 1,
            byte: 0xff,
        });
        run.step(&Op::Delete { pick: 9 });
        run.step(&Op::Create);
        run.step(&Op::OriginWrite {
            chunk: 1,
            chunks: 1,
            byte: 0xfe,
        });
        assert_eq!(run.store.lookup(1).unwrap().len(), max as usize);
        run.assert_full();
    }
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
    let fx = Fixture::new(1, 512, 200, 0);
    let mut run = Run::new(fx, 1_000);
    run.step(&Op::Create);
    let mut refused = None;
    for chunk in 0..512 {
        let before = run.fx.origin_bytes();
        match run.store.origin_write(chunk * 512, &[0xaa; 512]) {
            Ok(()) => run.model.origin[(chunk * 512) as usize..][..512].fill(0xaa),
            Err(Error::StoreFull { free, needed, .. }) => {
                assert!(free < needed);
                assert_eq!(
                    run.fx.origin_bytes(),
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
    run.assert_full();
    let free_before = run.store.free_chunks();
    assert!(run.store.delete_snapshot(0).unwrap() > 150);
    assert!(run.store.free_chunks() > free_before + 150);
    run.store.origin_write(refused * 512, &[1; 512]).unwrap();
    run.store.commit().unwrap();
    assert_consistent(&run.fx, &mut run.store);
}
