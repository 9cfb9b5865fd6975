//! Test fixtures for shared stores: an origin and a COW image in a temporary
//! directory, and an independent structural check of a committed store.

#![allow(dead_code)]

use std::collections::HashSet;

use cowengine::{CreateOptions, SharedStore};
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::check::{check, CheckOptions};
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{Leaf, Node};
use cowfmt::{Access, Device, MemDev};

/// An origin image filled with a seeded pattern and a COW image.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub chunk_sectors: u32,
    pub chunk_bytes: u64,
    pub origin_chunks: u64,
    pub cow_chunks: u64,
    pub journal_chunks: u64,
}

impl Fixture {
    /// Images for `origin_chunks` and `cow_chunks` chunks of `chunk_sectors`.
    pub fn new(
        chunk_sectors: u32,
        origin_chunks: u64,
        cow_chunks: u64,
        journal_chunks: u64,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let chunk_bytes = u64::from(chunk_sectors) * 512;
        let mut origin = vec![0u8; (origin_chunks * chunk_bytes) as usize];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for b in origin.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        std::fs::write(dir.path().join("origin.img"), origin).unwrap();
        Device::create_or_extend(dir.path().join("cow.img"), cow_chunks * chunk_bytes).unwrap();
        Fixture {
            dir,
            chunk_sectors,
            chunk_bytes,
            origin_chunks,
            cow_chunks,
            journal_chunks,
        }
    }

    pub fn cow_path(&self) -> std::path::PathBuf {
        self.dir.path().join("cow.img")
    }

    pub fn origin_path(&self) -> std::path::PathBuf {
        self.dir.path().join("origin.img")
    }

    fn devices(&self) -> (Device, Device) {
        (
            Device::open(self.cow_path(), Access::ReadWrite).unwrap(),
            Device::open(self.origin_path(), Access::ReadWrite).unwrap(),
        )
    }

    /// Formats the COW image and opens the store.
    pub fn create(&self) -> SharedStore {
        let (cow, origin) = self.devices();
        let options = CreateOptions {
            chunk_sectors: u64::from(self.chunk_sectors),
            journal_chunks: self.journal_chunks,
        };
        SharedStore::create(cow, origin, &options).unwrap()
    }

    /// Opens the store again from the images.
    pub fn reopen(&self) -> SharedStore {
        let (cow, origin) = self.devices();
        SharedStore::open(cow, origin).unwrap()
    }

    pub fn origin_bytes(&self) -> Vec<u8> {
        std::fs::read(self.origin_path()).unwrap()
    }
}

#[derive(Default)]
struct Collect {
    problems: Vec<String>,
    tree_chunks: Vec<u64>,
    records: Vec<(u64, u64, u64)>,
    leaf_depths: HashSet<u32>,
}

impl TreeVisitor for Collect {
    fn node(&mut self, at: &BlockAt, node: &Node) -> cowfmt::Result<()> {
        self.tree_chunks.push(at.chunk);
        if node.entries[1..].windows(2).any(|w| w[0].key >= w[1].key) {
            self.problems
                .push(format!("node {}: keys out of order", at.chunk));
        }
        for e in &node.entries[1..] {
            if e.key < at.lo || e.key >= at.hi {
                self.problems.push(format!(
                    "node {}: key {} outside {}..{}",
                    at.chunk, e.key, at.lo, at.hi
                ));
            }
        }
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        self.tree_chunks.push(at.chunk);
        self.leaf_depths.insert(at.level);
        let mut last = None;
        for (i, (origin, records)) in leaf.entries().enumerate() {
            if records.is_empty() {
                self.problems
                    .push(format!("leaf {} entry {i} is empty", at.chunk));
            }
            if last.is_some_and(|l| l >= origin) || origin < at.lo || origin >= at.hi {
                self.problems.push(format!(
                    "leaf {} entry {i}: origin {origin} out of order or range",
                    at.chunk
                ));
            }
            last = Some(origin);
            let mut seen = 0u64;
            for r in records {
                if r.share == 0 || r.share & seen != 0 {
                    self.problems.push(format!(
                        "leaf {}: origin {origin}: bad or overlapping mask {:#x}",
                        at.chunk, r.share
                    ));
                }
                seen |= r.share;
                self.records.push((origin, r.share, r.chunk));
            }
        }
        if leaf.stored_using_mask != leaf.using_mask() {
            self.problems.push(format!("leaf {}: using_mask", at.chunk));
        }
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> cowfmt::Result<()> {
        self.problems
            .push(format!("block {}: {problem:?}", at.chunk));
        Ok(())
    }
}

/// Checks a committed store from its bytes, twice: with cowfmt's checker (which
/// must find nothing), and independently here: the tree's structure, masks
/// inside snapmask and disjoint, every chunk referenced once, and the bitmap
/// marking exactly the reserved, tree and data chunks.
pub fn assert_consistent(fx: &Fixture, store: &mut SharedStore) {
    let cow = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let options = CheckOptions {
        origin_bytes: Some(store.origin_chunks() * store.geometry().chunk_bytes),
        ..CheckOptions::default()
    };
    let report = check(&cow, &options).unwrap();
    assert!(
        report.is_clean(),
        "cowcheck findings: {:#?}",
        report.findings
    );
    let header = store.header();
    let geometry = *store.geometry();
    let mut collect = Collect::default();
    walk_tree(
        &cow,
        &geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut collect,
    )
    .unwrap();
    assert!(collect.problems.is_empty(), "{:?}", collect.problems);
    assert!(collect.leaf_depths.iter().all(|&d| d == 0));
    let mut referenced = HashSet::new();
    for c in collect
        .tree_chunks
        .iter()
        .copied()
        .chain(collect.records.iter().map(|r| r.2))
    {
        assert!(
            geometry.in_data_range(c),
            "chunk {c} outside the data range"
        );
        assert!(referenced.insert(c), "chunk {c} referenced twice");
    }
    for &(origin, share, _) in &collect.records {
        assert_eq!(
            share & !header.snapmask,
            0,
            "origin {origin}: mask {share:#x} leaves snapmask"
        );
    }
    let bitmap = ChunkBitmap::load(&cow, &geometry).unwrap();
    for c in 0..geometry.nr_chunks {
        let expected = c < geometry.data_start() || referenced.contains(&c);
        assert_eq!(bitmap.is_used(c), expected, "bitmap bit of chunk {c}");
    }
    assert_eq!(
        store.free_chunks(),
        geometry.data_chunks() - referenced.len() as u64
    );
}

/// Runs cowfmt's shared checker on the bytes of `cow` (written to a file, as
/// the checker reads devices by path) and requires it clean.
pub fn assert_checker_passes_on(cow: &MemDev, origin_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    std::fs::write(&path, cow.to_bytes()).unwrap();
    let options = CheckOptions {
        origin_bytes: Some(origin_bytes),
        ..CheckOptions::default()
    };
    let report = check(&Device::open(&path, Access::ReadOnly).unwrap(), &options).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

/// A deterministic stream of 31-bit numbers from `seed` (the PCG
/// multiplier and increment), for reproducible histories.
pub fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut step = seed;
    move || {
        step = step
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        step >> 33
    }
}

/// A new store over devices in memory, with chunks of `chunk_bytes` and
/// `journal_chunks` journal chunks.
pub fn create_in_memory(
    cow: &std::sync::Arc<MemDev>,
    origin: std::sync::Arc<MemDev>,
    chunk_bytes: u64,
    journal_chunks: u64,
) -> SharedStore<std::sync::Arc<MemDev>> {
    let options = CreateOptions {
        chunk_sectors: chunk_bytes / 512,
        journal_chunks,
    };
    SharedStore::create(std::sync::Arc::clone(cow), origin, &options).unwrap()
}

/// The bytes of an origin of `chunks` chunks of `chunk_bytes`: byte `i` is
/// `i / chunk_bytes * step + i % period`, truncated, so chunks differ.
pub fn patterned_origin(chunks: u64, chunk_bytes: u64, step: u64, period: u64) -> Vec<u8> {
    (0..chunks * chunk_bytes)
        .map(|i| (i / chunk_bytes * step + i % period) as u8)
        .collect()
}
