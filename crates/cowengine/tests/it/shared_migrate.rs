//! Shared store migrations at the library level: classic stores imported into
//! one shared store (identical copies stored once), snapshots exported back to
//! classic stores, shared stores re-chunked up and down and compacted. After
//! every migration every snapshot must read byte-identical through the engine
//! (or, for a classic output, through the snapshot view), and the space used
//! must be exactly what sharing leaves.

use crate::corruption_support::golden_image;
use crate::shared_support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use cowengine::{CopyData, SharedStore};
use cowfmt::cross::migrate::{
    self, plan_export, plan_import, plan_rechunk, ExportOptions, ImportOptions, JournalSize,
    RechunkOptions, SharedInput, SharedMigrateReport, SharedPlan, Side,
};
use cowfmt::finding::Severity;
use cowfmt::job::JobError;
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::persistent::migrate::MigrateMode;
use cowfmt::persistent::view::SnapshotView;
use cowfmt::persistent::{ExceptionRecord, PersistentStore, StoreWriter};
use cowfmt::{Access, Device, StoreKind};
use shared_support::{assert_consistent, lcg, Fixture};
use tempfile::TempDir;

/// Deterministic bytes: a xorshift stream seeded by `seed`.
fn fill(buf: &mut [u8], seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for piece in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        piece.copy_from_slice(&state.to_le_bytes()[..piece.len()]);
    }
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    fill(&mut data, seed);
    data
}

fn ro(path: &Path) -> Device {
    Device::open(path, Access::ReadOnly).unwrap()
}

/// Classic snapshots of one origin, simulated the way dm-snapshot keeps them:
/// an origin write first copies the old chunk into every snapshot that has no
/// copy of it yet; a snapshot write replaces the snapshot's own copy.
struct Sim {
    chunk_bytes: usize,
    origin: Vec<u8>,
    snapshots: Vec<BTreeMap<u64, Vec<u8>>>,
}

impl Sim {
    fn new(chunk_bytes: usize, chunks: u64, seed: u64) -> Self {
        Sim {
            chunk_bytes,
            origin: bytes(chunk_bytes * chunks as usize, seed),
            snapshots: Vec::new(),
        }
    }

    fn origin_chunk(&self, c: u64) -> &[u8] {
        let cb = self.chunk_bytes;
        &self.origin[c as usize * cb..(c as usize + 1) * cb]
    }

    fn snapshot(&mut self) {
        self.snapshots.push(BTreeMap::new());
    }

    fn origin_write(&mut self, c: u64, seed: u64) {
        let old = self.origin_chunk(c).to_vec();
        for snap in &mut self.snapshots {
            snap.entry(c).or_insert_with(|| old.clone());
        }
        let cb = self.chunk_bytes;
        fill(
            &mut self.origin[c as usize * cb..(c as usize + 1) * cb],
            seed,
        );
    }

    fn snapshot_write(&mut self, i: usize, c: u64, seed: u64) {
        let data = bytes(self.chunk_bytes, seed);
        self.snapshots[i].insert(c, data);
    }

    /// Snapshot i as the device shows it.
    fn view(&self, i: usize) -> Vec<u8> {
        let mut image = self.origin.clone();
        let cb = self.chunk_bytes;
        for (&c, data) in &self.snapshots[i] {
            image[c as usize * cb..(c as usize + 1) * cb].copy_from_slice(data);
        }
        image
    }

    /// Copies over all snapshots, and distinct contents per origin chunk.
    fn copies_and_distinct(&self) -> (u64, u64) {
        let mut per_chunk: BTreeMap<u64, HashSet<&[u8]>> = BTreeMap::new();
        let mut copies = 0;
        for snap in &self.snapshots {
            for (&c, data) in snap {
                per_chunk.entry(c).or_default().insert(data);
                copies += 1;
            }
        }
        (copies, per_chunk.values().map(|s| s.len() as u64).sum())
    }

    fn write_origin(&self, path: &Path) {
        std::fs::write(path, &self.origin).unwrap();
    }

    /// Writes snapshot i as a persistent store, records in a scrambled order
    /// (the kernel allocates in the order chunks are first written).
    fn write_cow(&self, i: usize, path: &Path) {
        let cb = self.chunk_bytes as u64;
        let records = self.snapshots[i].len() as u64;
        let device = Device::create_or_extend(path, (records * 2 + 8) * cb).unwrap();
        let mut writer = StoreWriter::format(device, (cb / 512) as u32).unwrap();
        let mut order: Vec<(&u64, &Vec<u8>)> = self.snapshots[i].iter().collect();
        order.sort_by_key(|(c, _)| (*c * 7919) % 1009);
        for (&old_chunk, data) in order {
            let new_chunk = writer.allocate().unwrap();
            writer.device().write_chunk(new_chunk, data).unwrap();
            writer
                .commit(ExceptionRecord {
                    old_chunk,
                    new_chunk,
                })
                .unwrap();
        }
        writer.finish().unwrap();
    }
}

/// A history of `n` snapshots over `chunks` origin chunks: origin writes
/// between snapshot creations (so later snapshots copy the same old bytes as
/// earlier ones where nothing changed in between), snapshot writes, and a last
/// burst of origin writes that every snapshot copies identically.
fn history(chunk_bytes: usize, chunks: u64, n: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(chunk_bytes, chunks, seed);
    let mut next = lcg(seed);
    for i in 0..n {
        sim.snapshot();
        for _ in 0..chunks / 8 {
            let c = next() % chunks;
            sim.origin_write(c, next());
        }
        if i % 2 == 1 {
            let c = next() % chunks;
            sim.snapshot_write(i, c, next());
        }
    }
    for _ in 0..chunks / 4 {
        let c = next() % chunks;
        sim.origin_write(c, next());
    }
    sim
}

fn write_sim(dir: &TempDir, sim: &Sim) -> (PathBuf, Vec<PathBuf>) {
    let origin = dir.path().join("origin.img");
    sim.write_origin(&origin);
    let cows = (0..sim.snapshots.len())
        .map(|i| {
            let path = dir.path().join(format!("cow{i}.img"));
            sim.write_cow(i, &path);
            path
        })
        .collect();
    (origin, cows)
}

/// Writes `plan` into a new image of exactly the size it needs.
fn write_exact(
    mut plan: SharedPlan,
    out: &Path,
    origin: Option<&Path>,
) -> (SharedMigrateReport, u64) {
    let origin = origin.map(ro);
    plan.count(origin.as_ref(), &mut |_, _| {}).unwrap();
    let needed = plan.needed_bytes().unwrap();
    assert!(plan.fits(needed).unwrap());
    let chunk_bytes = u64::from(plan.to_chunk_size()) * 512;
    assert!(
        !plan.fits(needed - chunk_bytes).unwrap(),
        "{needed} is the least"
    );
    let output = Device::create_or_extend(out, needed).unwrap();
    let report = migrate::migrate(&plan, origin.as_ref(), output, true, &mut |_, _| {}).unwrap();
    (report, needed)
}

fn import(
    cows: &[PathBuf],
    out: &Path,
    ids: Option<Vec<u32>>,
    chunk_size: Option<u32>,
    origin: Option<&Path>,
) -> SharedMigrateReport {
    let stores = cows
        .iter()
        .map(|p| PersistentStore::open(ro(p), None).unwrap())
        .collect();
    let options = ImportOptions {
        kind: StoreKind::Persistent,
        ids,
        chunk_size,
        journal: JournalSize::Chunks(3),
    };
    let origin_bytes = origin.map(|p| ro(p).size_bytes());
    let plan = plan_import(stores, &options, origin_bytes).unwrap();
    write_exact(plan, out, origin).0
}

fn export(
    shared: &Path,
    id: u32,
    kind: StoreKind,
    out: &Path,
    origin: &Path,
) -> SharedMigrateReport {
    export_chunked(shared, id, kind, None, out, origin)
}

fn export_chunked(
    shared: &Path,
    id: u32,
    kind: StoreKind,
    chunk_size: Option<u32>,
    out: &Path,
    origin: &Path,
) -> SharedMigrateReport {
    let input = SharedInput::open(ro(shared)).unwrap();
    let options = ExportOptions {
        snapshot: id,
        kind,
        chunk_size,
    };
    let plan = plan_export(input, &options, Some(ro(origin).size_bytes())).unwrap();
    write_exact(plan, out, Some(origin)).0
}

fn rechunk(
    shared: &Path,
    out: &Path,
    chunk_size: Option<u32>,
    origin: &Path,
) -> SharedMigrateReport {
    let input = SharedInput::open(ro(shared)).unwrap();
    let options = RechunkOptions {
        chunk_size,
        journal: None,
    };
    let plan = plan_rechunk(input, &options, Some(ro(origin).size_bytes())).unwrap();
    write_exact(plan, out, Some(origin)).0
}

/// Every snapshot of a shared store, read whole through the engine.
fn engine_views(cow: &Path, origin: &Path) -> BTreeMap<u32, Vec<u8>> {
    let origin = ro(origin);
    let size = origin.size_bytes() as usize;
    let mut store = SharedStore::open(ro(cow), origin).unwrap();
    let ids = cowfmt::shared::mask::id_list(store.snapmask());
    ids.into_iter()
        .map(|id| {
            let mut image = vec![0u8; size];
            store.snapshot_read(id, 0, &mut image).unwrap();
            (id, image)
        })
        .collect()
}

/// The snapshot of a classic store, read whole through the snapshot view.
fn classic_view(cow: &Path, origin: &Path) -> Vec<u8> {
    let origin = ro(origin);
    let store = PersistentStore::open(ro(cow), None).unwrap();
    let view = SnapshotView::of_store(&origin, &store).unwrap();
    let mut image = vec![0u8; view.size_bytes() as usize];
    view.read_at(&mut image, 0).unwrap();
    image
}

fn assert_clean(path: &Path, kind: StoreKind) {
    let options = CheckOptions {
        kind,
        ..CheckOptions::default()
    };
    let report = check(&ro(path), &options).unwrap();
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn shared_side(side: &Side) -> &migrate::SharedShape {
    match side {
        Side::Shared(shape) => shape,
        Side::Classic(shape) => {
            panic!("a classic store where a shared one was expected: {shape:?}")
        }
    }
}

/// Opens a shared store written by a migration with the engine and checks
/// its structure with the test fixture's independent checker.
fn assert_shared_consistent(cow: &Path, origin: &Path) {
    let fx = Fixture::new(1, 1, 1, 0);
    std::fs::copy(cow, fx.cow_path()).unwrap();
    std::fs::copy(origin, fx.origin_path()).unwrap();
    let mut store = fx.reopen();
    assert_consistent(&fx, &mut store);
}

#[test]
fn classic_snapshots_import_with_sharing_and_export_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let sim = history(4096, 192, 7, 11);
    let (origin, cows) = write_sim(&dir, &sim);
    let (copies, distinct) = sim.copies_and_distinct();
    assert!(
        distinct < copies,
        "the history must leave something to share"
    );

    let shared = dir.path().join("shared.img");
    let report = import(&cows, &shared, None, None, Some(&origin));
    assert_eq!(report.copies, copies);
    assert_eq!(report.stored, distinct);
    let shape = shared_side(&report.to);
    assert_eq!(shape.records, distinct);
    assert_eq!(shape.snapshots, (0..7).collect::<Vec<u32>>());
    assert!(shape.shared_records > 0);
    assert_eq!(
        shape.used_chunks,
        shape.reserved_chunks + shape.records + shape.tree_chunks
    );
    assert_eq!(
        shape.free_chunks, 0,
        "the image has exactly the size needed"
    );
    assert_eq!(report.space_after, shape.used_chunks * 4096);
    assert_eq!(
        report.space_before,
        report
            .inputs
            .iter()
            .map(|i| i.shape.used_bytes())
            .sum::<u64>()
    );
    assert_shared_consistent(&shared, &origin);

    let views = engine_views(&shared, &origin);
    for (i, cow) in cows.iter().enumerate() {
        assert!(views[&(i as u32)] == sim.view(i), "snapshot {i}");
        assert!(classic_view(cow, &origin) == sim.view(i), "input {i}");
    }

    for i in 0..7u32 {
        let kind = if i % 2 == 0 {
            StoreKind::Persistent
        } else {
            StoreKind::Legacy
        };
        let out = dir.path().join(format!("export{i}.img"));
        let report = export(&shared, i, kind, &out, &origin);
        assert_eq!(report.snapshot, Some(i));
        assert_eq!(report.stored, sim.snapshots[i as usize].len() as u64);
        assert_clean(&out, kind);
        assert!(
            classic_view(&out, &origin) == sim.view(i as usize),
            "export {i}"
        );
    }
}

#[test]
fn identical_copies_cost_one_data_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim::new(2048, 64, 5);
    for _ in 0..9 {
        sim.snapshot();
    }
    for c in (0..64).step_by(3) {
        sim.origin_write(c, 1000 + c);
    }
    let (origin, cows) = write_sim(&dir, &sim);
    let shared = dir.path().join("shared.img");
    let report = import(&cows, &shared, None, None, Some(&origin));
    let per_snapshot = sim.snapshots[0].len() as u64;
    assert_eq!(per_snapshot, 22);
    assert_eq!(report.copies, 9 * per_snapshot);
    assert_eq!(report.stored, per_snapshot);
    let shape = shared_side(&report.to);
    assert_eq!(shape.records, per_snapshot);
    assert_eq!(shape.shared_records, per_snapshot);
    // 22 records of 16 bytes and their map entries fit one leaf; one root node.
    assert_eq!(shape.tree_chunks, 2);
    assert_eq!(shape.used_chunks, shape.reserved_chunks + per_snapshot + 2);
    let views = engine_views(&shared, &origin);
    for i in 0..9 {
        assert!(views[&(i as u32)] == sim.view(i));
    }
}

#[test]
fn ids_name_the_snapshots_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let sim = history(1024, 96, 4, 3);
    let (origin, cows) = write_sim(&dir, &sim);
    let shared = dir.path().join("shared.img");
    let ids = vec![40, 2, 63, 17];
    let report = import(&cows, &shared, Some(ids.clone()), None, None);
    assert_eq!(
        report.inputs.iter().map(|i| i.snapshot).collect::<Vec<_>>(),
        ids.iter().map(|&id| Some(id)).collect::<Vec<_>>()
    );
    let views = engine_views(&shared, &origin);
    assert_eq!(views.len(), 4);
    for (i, id) in ids.iter().enumerate() {
        assert!(views[id] == sim.view(i), "input {i} as snapshot {id}");
    }
}

#[test]
fn import_can_change_the_chunk_size_on_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let sim = history(2048, 128, 5, 21);
    let (origin, cows) = write_sim(&dir, &sim);
    for (chunk_size, mode) in [(1u32, MigrateMode::Split), (16, MigrateMode::Merge)] {
        let shared = dir.path().join(format!("shared{chunk_size}.img"));
        let report = import(&cows, &shared, None, Some(chunk_size), Some(&origin));
        assert_eq!(report.mode, mode);
        assert_eq!(report.to.chunk_size(), chunk_size);
        let views = engine_views(&shared, &origin);
        for i in 0..5 {
            assert!(
                views[&(i as u32)] == sim.view(i),
                "{chunk_size}: snapshot {i}"
            );
        }
    }
}

/// A shared store with `n` snapshots built through the engine: origin writes
/// between creations, snapshot writes into shared and private chunks, and a
/// few deletions.
fn engine_store(n: u32, seed: u64) -> Fixture {
    let fx = Fixture::new(8, 160, 20_000, 4);
    let mut store = fx.create();
    let mut next = lcg(seed);
    for id in 0..n {
        store.create_snapshot(Some(id)).unwrap();
        for _ in 0..6 {
            let c = next() % 160;
            let data = bytes(4096, next());
            store.origin_write(c * 4096, &data).unwrap();
        }
        if id % 3 == 0 {
            let at = next() % (160 * 4096 - 700);
            store.snapshot_write(id, at, &bytes(600, next())).unwrap();
        }
        if id % 5 == 4 {
            store.copy_out(next() % 160, CopyData::Yes).unwrap();
        }
    }
    store.delete_snapshot(n / 2).unwrap();
    store.create_snapshot_of(0).unwrap();
    for _ in 0..20 {
        let c = next() % 160;
        store
            .origin_write(c * 4096 + 100, &bytes(300, next()))
            .unwrap();
    }
    store.commit().unwrap();
    fx
}

#[test]
fn many_snapshots_read_the_same_after_rechunking_up_down_and_compacting() {
    let fx = engine_store(48, 7);
    let origin = fx.origin_path();
    let before = engine_views(&fx.cow_path(), &origin);
    assert_eq!(before.len(), 48);
    let now = fx.origin_bytes();
    assert!(before.values().filter(|v| **v != now).count() >= 40);
    let input_records = {
        let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
        input.survey().unwrap().records
    };

    let compact = fx.dir.path().join("compact.img");
    let report = rechunk(&fx.cow_path(), &compact, None, &origin);
    assert_eq!(report.mode, MigrateMode::Copy);
    assert_eq!(report.copies, input_records);
    assert!(report.stored <= input_records);
    assert!(engine_views(&compact, &origin) == before);
    assert_shared_consistent(&compact, &origin);

    let big = fx.dir.path().join("big.img");
    let report = rechunk(&compact, &big, Some(32), &origin);
    assert_eq!((report.mode, report.factor), (MigrateMode::Merge, 4));
    assert!(report.pieces_from_origin > 0);
    assert!(shared_side(&report.to).shared_records > 0);
    assert!(engine_views(&big, &origin) == before);
    assert_shared_consistent(&big, &origin);

    let small = fx.dir.path().join("small.img");
    let report = rechunk(&big, &small, Some(2), &origin);
    assert_eq!((report.mode, report.factor), (MigrateMode::Split, 16));
    assert!(
        report.stored < report.copies,
        "pieces equal across snapshots are stored once"
    );
    assert!(engine_views(&small, &origin) == before);
    assert_shared_consistent(&small, &origin);

    let back = fx.dir.path().join("back.img");
    rechunk(&small, &back, Some(8), &origin);
    assert!(engine_views(&back, &origin) == before);

    for id in [0u32, 17, 47] {
        let out = fx.dir.path().join(format!("snap{id}.img"));
        export(&back, id, StoreKind::Persistent, &out, &origin);
        assert!(classic_view(&out, &origin) == before[&id], "export {id}");
        let out = fx.dir.path().join(format!("snap{id}-16k.img"));
        export_chunked(&big, id, StoreKind::Persistent, Some(32), &out, &origin);
        assert!(
            classic_view(&out, &origin) == before[&id],
            "export {id} at 16k"
        );
    }
}

#[test]
fn a_compacted_store_stays_usable_by_the_engine() {
    let fx = engine_store(10, 99);
    let origin = fx.origin_path();
    let before = engine_views(&fx.cow_path(), &origin);
    let out = fx.dir.path().join("compact.img");
    let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
    let size = input.device().size_bytes();
    let options = RechunkOptions {
        chunk_size: None,
        journal: None,
    };
    let plan = plan_rechunk(input, &options, None).unwrap();
    assert!(plan.fits(size).unwrap());
    let output = Device::create_or_extend(&out, size).unwrap();
    migrate::migrate(&plan, None, output, true, &mut |_, _| {}).unwrap();
    std::fs::copy(&out, fx.cow_path()).unwrap();
    assert!(engine_views(&fx.cow_path(), &origin) == before);
    let mut store = fx.reopen();
    let id = store.create_snapshot(None).unwrap();
    let old = fx.origin_bytes()[5 * 4096..6 * 4096].to_vec();
    store.origin_write(5 * 4096, &[0xee; 4096]).unwrap();
    store.snapshot_write(0, 9 * 4096, &[0xab; 10]).unwrap();
    store.commit().unwrap();
    assert_consistent(&fx, &mut store);
    let mut buf = [0u8; 10];
    store.snapshot_read(0, 9 * 4096, &mut buf).unwrap();
    assert_eq!(buf, [0xab; 10]);
    let mut chunk = vec![0u8; 4096];
    store.snapshot_read(id, 5 * 4096, &mut chunk).unwrap();
    assert_eq!(chunk, old);
}

#[test]
fn golden_a_goes_into_a_shared_store_and_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "a", "cow");
    let origin = golden_image(&dir, "a", "origin");
    let before = classic_view(&cow, &origin);
    let twin = dir.path().join("twin.img");
    std::fs::copy(&cow, &twin).unwrap();

    let shared = dir.path().join("shared.img");
    let report = import(
        &[cow.clone(), twin],
        &shared,
        Some(vec![5, 9]),
        None,
        Some(&origin),
    );
    assert_eq!(report.copies, 106);
    assert_eq!(report.stored, 53, "the twin shares every chunk");
    let views = engine_views(&shared, &origin);
    assert!(views[&5] == before && views[&9] == before);

    for (kind, name) in [
        (StoreKind::Persistent, "p.img"),
        (StoreKind::Legacy, "l.img"),
    ] {
        let out = dir.path().join(name);
        let report = export(&shared, 9, kind, &out, &origin);
        assert_eq!(report.stored, 53);
        assert_clean(&out, kind);
        assert!(classic_view(&out, &origin) == before, "{kind}");
    }
}

#[test]
fn mixed_chunk_sizes_and_invalid_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sim = history(4096, 32, 1, 1);
    let (_, cows) = write_sim(&dir, &sim);
    let small = dir.path().join("small.img");
    let sim2 = history(2048, 64, 1, 2);
    sim2.write_cow(0, &small);
    let stores = vec![
        PersistentStore::open(ro(&cows[0]), None).unwrap(),
        PersistentStore::open(ro(&small), None).unwrap(),
    ];
    let options = ImportOptions {
        kind: StoreKind::Persistent,
        ids: None,
        chunk_size: None,
        journal: JournalSize::Default,
    };
    let err = plan_import(stores, &options, None).unwrap_err().to_string();
    assert!(
        err.contains("small.img") && err.contains("4 sectors"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    let c = golden_image(&dir, "c", "cow");
    let stores = vec![PersistentStore::open(ro(&c), None).unwrap()];
    let err = plan_import(stores, &options, None).unwrap_err();
    assert!(
        matches!(err, JobError::Damage(ref m) if m.contains("invalid")),
        "{err}"
    );

    let stores = vec![PersistentStore::open(ro(&cows[0]), None).unwrap()];
    let with_ids = ImportOptions {
        ids: Some(vec![1, 2]),
        ..options
    };
    let err = plan_import(stores, &with_ids, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 snapshot ids were given for 1 input"),
        "{err}"
    );
}

#[test]
fn exports_of_missing_snapshots_and_outputs_too_small_are_refused() {
    let fx = engine_store(3, 5);
    let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
    let options = ExportOptions {
        snapshot: 7,
        kind: StoreKind::Persistent,
        chunk_size: None,
    };
    let err = plan_export(input, &options, None).unwrap_err().to_string();
    assert!(
        err.contains("snapshot 7 does not exist (snapshots: 0-2)"),
        "{err}"
    );

    let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
    let options = RechunkOptions {
        chunk_size: Some(32),
        journal: Some(JournalSize::Chunks(0)),
    };
    let mut plan = plan_rechunk(input, &options, None).unwrap();
    assert!(plan.needs_origin());
    let origin = ro(&fx.origin_path());
    plan.count(Some(&origin), &mut |_, _| {}).unwrap();
    let needed = plan.needed_bytes().unwrap();
    let out = fx.dir.path().join("tight.img");
    let output = Device::create_or_extend(&out, needed - 16384).unwrap();
    let err = migrate::migrate(&plan, Some(&origin), output, true, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs at least"), "{err}");
    let output = Device::create_or_extend(fx.dir.path().join("none.img"), needed).unwrap();
    let err = migrate::migrate(&plan, None, output, true, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("origin"), "{err}");
}

#[test]
fn a_damaged_shared_store_is_refused() {
    let fx = engine_store(4, 8);
    let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
    let root = input.header().root_tree_chunk;
    drop(input);
    // Point the root node's first child at the header chunk.
    let mut node = vec![0u8; 4096];
    let cow = ro(&fx.cow_path());
    cow.read_chunk(root, &mut node).unwrap();
    node[16..24].copy_from_slice(&0u64.to_le_bytes());
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(fx.cow_path())
        .unwrap()
        .write_all_at(&node, root * 4096)
        .unwrap();
    let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
    let err = input.survey().unwrap_err();
    assert!(
        matches!(err, JobError::Damage(ref m) if m.contains("header") && m.contains("damaged")),
        "{err}"
    );
}

#[test]
fn a_chunk_size_too_small_for_the_snapshots_is_refused() {
    let fx = engine_store(40, 9);
    let plan_for = |chunk_size| {
        let input = SharedInput::open(ro(&fx.cow_path())).unwrap();
        let options = RechunkOptions {
            chunk_size: Some(chunk_size),
            journal: None,
        };
        plan_rechunk(input, &options, Some(ro(&fx.origin_path()).size_bytes()))
    };
    let err = plan_for(1).unwrap_err().to_string();
    assert!(
        err.contains("40 snapshots are more than a shared store of 512-byte chunks serves (29"),
        "{err}"
    );
    assert!(plan_for(2).is_ok(), "1 KiB chunks serve 61 snapshots");
}
