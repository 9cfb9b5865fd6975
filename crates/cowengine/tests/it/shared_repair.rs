//! Shared-store repair: stores built with the engine, damaged on purpose, then
//! salvaged. Each test asserts exactly which records survive, that the output
//! reopens in the engine with every surviving record reading back the same
//! data, and that the checker finds nothing wrong with it.

use crate::shared_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cowengine::SharedStore;
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::check::{check, CheckOptions};
use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::repair::{
    analyze, probe_wiped_header, DropReason, JobError, RepairOptions, RepairReport, Source,
    WriteOptions,
};
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{Leaf, Node};
use cowfmt::{Access, Device};
use proptest::prelude::*;
use shared_support::{assert_consistent, Fixture};

/// One record: (origin chunk, share mask, COW chunk).
type Rec = (u64, u64, u64);

/// Snapshots 0..4 exist in the populated stores.
const SNAPSHOTS: u32 = 4;

/// A fixture with 512-byte chunks, so a few thousand records make a tree of
/// three levels.
fn fixture() -> Fixture {
    Fixture::new(1, 3000, 20_000, 4)
}

/// Four snapshots, each followed by origin writes over a different stride, and
/// a snapshot write in each (so some records are unshared).
fn populate(fx: &Fixture) -> SharedStore {
    let mut store = fx.create();
    for id in 0..SNAPSHOTS {
        store.create_snapshot(None).unwrap();
        for c in (u64::from(id)..fx.origin_chunks).step_by(2 + id as usize) {
            store
                .origin_write(c * fx.chunk_bytes + 7, &[id as u8 + 1; 3])
                .unwrap();
        }
        for s in 0..=id {
            store
                .snapshot_write(
                    s,
                    (40 + u64::from(id)) * fx.chunk_bytes,
                    &[0xe0 | id as u8; 9],
                )
                .unwrap();
        }
    }
    store.commit().unwrap();
    store
}

fn records(store: &mut SharedStore) -> BTreeSet<Rec> {
    store
        .exceptions()
        .unwrap()
        .into_iter()
        .flat_map(|(origin, recs)| recs.into_iter().map(move |r| (origin, r.share, r.chunk)))
        .collect()
}

/// Every snapshot's whole view.
fn views(fx: &Fixture, store: &mut SharedStore) -> Vec<Vec<u8>> {
    (0..SNAPSHOTS)
        .map(|id| {
            let mut buf = vec![0u8; (fx.origin_chunks * fx.chunk_bytes) as usize];
            store.snapshot_read(id, 0, &mut buf).unwrap();
            buf
        })
        .collect()
}

/// Tree blocks of a committed store: (chunk, level, lo, hi) of nodes and
/// leaves, and the records of each leaf.
#[derive(Default)]
struct Blocks {
    nodes: Vec<(u64, u32)>,
    leaves: Vec<(u64, Vec<Rec>)>,
}

impl TreeVisitor for Blocks {
    fn node(&mut self, at: &BlockAt, _: &Node) -> cowfmt::Result<()> {
        self.nodes.push((at.chunk, at.level));
        Ok(())
    }
    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        let recs = leaf
            .entries()
            .flat_map(|(o, rs)| rs.iter().map(move |r| (o, r.share, r.chunk)))
            .collect();
        self.leaves.push((at.chunk, recs));
        Ok(())
    }
    fn problem(&mut self, at: &BlockAt, p: &WalkProblem) -> cowfmt::Result<()> {
        panic!("the clean store has a problem at {}: {p:?}", at.chunk);
    }
}

fn blocks(fx: &Fixture, store: &SharedStore) -> Blocks {
    let device = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let h = store.header();
    let mut b = Blocks::default();
    walk_tree(
        &device,
        store.geometry(),
        h.root_tree_chunk,
        h.tree_level,
        &mut b,
    )
    .unwrap();
    b
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn zero_chunk(fx: &Fixture, chunk: u64) {
    poke(
        &fx.cow_path(),
        chunk * fx.chunk_bytes,
        &vec![0u8; fx.chunk_bytes as usize],
    );
}

fn output_path(fx: &Fixture) -> PathBuf {
    fx.dir.path().join("repaired.img")
}

/// Analyses the fixture's COW image and writes the output next to it.
fn try_repair(fx: &Fixture, options: &RepairOptions) -> Result<RepairReport, JobError> {
    let input = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let salvage = analyze(&input, options, &mut |_, _| {})?;
    let out = output_path(fx);
    let _ = std::fs::remove_file(&out);
    let output = Device::create_or_extend(&out, input.size_bytes()).unwrap();
    salvage.write(
        &input,
        output,
        WriteOptions {
            output_zeroed: true,
            data_in_place: false,
        },
        &mut |_, _| {},
    )
}

fn repair(fx: &Fixture, options: &RepairOptions) -> RepairReport {
    try_repair(fx, options).unwrap()
}

/// Checks the output with the checker, then puts it in place of the fixture's
/// COW image and reopens it with the engine.
fn install(fx: &Fixture) -> SharedStore {
    let out = output_path(fx);
    let device = Device::open(&out, Access::ReadOnly).unwrap();
    let checked = check(&device, &CheckOptions::default()).unwrap();
    assert!(checked.is_clean(), "{:#?}", checked.findings);
    std::fs::copy(&out, fx.cow_path()).unwrap();
    let mut store = fx.reopen();
    assert_consistent(fx, &mut store);
    store
}

/// What each snapshot must read after losing `lost`: the view from before,
/// except the origin (as it is now) where one of its records was lost.
fn expected_views(fx: &Fixture, before: &[Vec<u8>], lost: &BTreeSet<Rec>) -> Vec<Vec<u8>> {
    let origin = fx.origin_bytes();
    let cb = fx.chunk_bytes as usize;
    let mut out = before.to_vec();
    for &(o, share, _) in lost {
        for id in 0..SNAPSHOTS {
            if share & (1 << id) != 0 {
                let at = o as usize * cb;
                out[id as usize][at..at + cb].copy_from_slice(&origin[at..at + cb]);
            }
        }
    }
    out
}

struct Built {
    fx: Fixture,
    records: BTreeSet<Rec>,
    views: Vec<Vec<u8>>,
    blocks: Blocks,
    store: SharedStore,
}

fn built() -> Built {
    let fx = fixture();
    let mut store = populate(&fx);
    let records = records(&mut store);
    let views = views(&fx, &mut store);
    let blocks = blocks(&fx, &store);
    assert!(store.header().tree_level >= 2, "a deep enough tree");
    Built {
        fx,
        records,
        views,
        blocks,
        store,
    }
}

fn assert_survivors(b: &Built, report: &RepairReport, lost: &BTreeSet<Rec>) {
    let mut store = install(&b.fx);
    let survivors: BTreeSet<Rec> = b.records.difference(lost).copied().collect();
    assert_eq!(records(&mut store), survivors);
    assert_eq!(report.kept, survivors.len() as u64);
    assert_eq!(
        views(&b.fx, &mut store),
        expected_views(&b.fx, &b.views, lost)
    );
    for t in &report.per_snapshot {
        let bit = 1u64 << t.id;
        assert_eq!(
            t.kept,
            survivors.iter().filter(|r| r.1 & bit != 0).count() as u64,
            "snapshot {}",
            t.id
        );
    }
}

#[test]
fn an_intact_store_repairs_to_identical_exceptions() {
    let b = built();
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.dropped_total, 0);
    assert!(report.lost_ranges.is_empty());
    assert!(report.scan.is_none());
    assert!(!report.header_repaired, "{:?}", report.header_problems);
    assert!(!report.records_unknown);
    assert_eq!(report.snapmask, 0b1111);
    assert_eq!(report.chunks.leaked_freed, 0);
    assert_eq!(report.journal_chunks, 4);
    assert_eq!(
        report.chunks.old_tree_blocks as usize,
        b.blocks.nodes.len() + b.blocks.leaves.len()
    );
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_zeroed_leaf_loses_exactly_its_records() {
    let b = built();
    let (leaf, lost) = b.blocks.leaves[b.blocks.leaves.len() / 2].clone();
    assert!(!lost.is_empty());
    zero_chunk(&b.fx, leaf);
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.dropped_total, 0);
    assert_eq!(report.lost_ranges.len(), 1);
    let range = &report.lost_ranges[0];
    assert_eq!(range.block, Some(leaf));
    assert_eq!(range.level, 0);
    assert_eq!(range.recovered_leaves, 0);
    assert_eq!(range.unresolved.len(), 1);
    let first = lost.iter().map(|r| r.0).min().unwrap();
    let last = lost.iter().map(|r| r.0).max().unwrap();
    assert!(range.range.lo <= first && range.range.hi.unwrap_or(u64::MAX) > last);
    assert!(report.records_unknown);
    // Every record had its own data chunk: the freed leaks count them exactly.
    assert_eq!(report.unknown_records_at_most, Some(lost.len() as u64));
    assert_eq!(report.chunks.leaked_freed, lost.len() as u64);
    assert!(report
        .per_snapshot
        .iter()
        .all(|t| t.lost_unknown && t.lost == 0));
    assert_eq!(report.scan.unwrap().leaves_found, 0);
    let lost: BTreeSet<Rec> = lost.into_iter().collect();
    assert_survivors(&b, &report, &lost);
}

#[test]
fn a_zeroed_root_is_rebuilt_from_the_scanned_leaves() {
    let b = built();
    zero_chunk(&b.fx, b.store.header().root_tree_chunk);
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.leaves_reached, 0);
    let scan = report.scan.unwrap();
    assert_eq!(scan.leaves_used as usize, b.blocks.leaves.len());
    assert_eq!(scan.leaves_overlapping, 0);
    assert!(!report.records_unknown);
    assert_eq!(report.unknown_records_at_most, Some(0));
    assert_eq!(report.chunks.leaked_freed, 0);
    assert_eq!(report.lost_ranges[0].range.hi, None);
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_zeroed_interior_node_loses_nothing() {
    let b = built();
    let root_level = b.store.header().tree_level;
    let &(node, _) = b
        .blocks
        .nodes
        .iter()
        .filter(|(_, level)| *level < root_level)
        .nth(1)
        .unwrap();
    zero_chunk(&b.fx, node);
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.lost_ranges.len(), 1);
    assert_eq!(report.lost_ranges[0].block, Some(node));
    assert!(report.lost_ranges[0].recovered_leaves > 0);
    assert!(!report.records_unknown);
    assert_eq!(report.dropped_total, 0);
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_zeroed_header_is_rebuilt_from_what_the_device_shows() {
    let b = built();
    zero_chunk(&b.fx, 0);
    let report = repair(&b.fx, &RepairOptions::default());
    assert!(report.header_repaired);
    assert_eq!(report.chunk_size, 1);
    assert_eq!(report.chunk_size_source, Source::Inferred);
    assert_eq!(report.journal_chunks, 4);
    assert_eq!(report.journal_source, Source::Inferred);
    assert_eq!(report.snapmask, 0b1111);
    assert_eq!(report.snapmask_source, Source::Inferred);
    assert_eq!(report.input_valid, None);
    assert!(report.output_valid);
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_wrong_chunk_size_field_is_corrected_from_the_leaves() {
    let b = built();
    poke(&b.fx.cow_path(), 12, &8u32.to_le_bytes());
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.chunk_size, 1);
    assert_eq!(report.chunk_size_source, Source::Inferred);
    assert!(report
        .header_problems
        .iter()
        .any(|p| p.contains("chunk size field says 8")));
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_wiped_header_and_first_bitmap_chunk_are_recognised_by_the_leaves_alone() {
    let b = built();
    // 512-byte chunks: the first KiB is the header and bitmap chunk 1.
    poke(&b.fx.cow_path(), 0, &[0u8; 1024]);
    let input = Device::open(b.fx.cow_path(), Access::ReadOnly).unwrap();
    assert_eq!(probe_wiped_header(&input).unwrap(), Some(1));
    drop(input);
    let report = repair(&b.fx, &RepairOptions::default());
    assert!(!report.bitmap_credible);
    assert_eq!(report.chunk_size_source, Source::Inferred);
    assert_eq!(report.journal_chunks, 4);
    assert_eq!(report.snapmask, 0b1111);
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_store_with_few_leaves_is_recognised_by_its_bitmap() {
    let fx = Fixture::new(8, 64, 512, 4);
    let mut store = fx.create();
    store.create_snapshot(None).unwrap();
    for c in 0..10 {
        store.origin_write(c * fx.chunk_bytes, &[1; 4]).unwrap();
    }
    store.commit().unwrap();
    drop(store);
    let probe = || {
        let input = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
        probe_wiped_header(&input).unwrap()
    };
    zero_chunk(&fx, 0);
    assert_eq!(probe(), Some(8));
    // One leaf with no bitmap to back it is too little to tell.
    zero_chunk(&fx, 1);
    assert_eq!(probe(), None);
}

#[test]
fn a_chunk_size_too_large_for_the_device_is_corrected_from_the_leaves() {
    // 4 KiB chunks on a 2 MiB device; 1 MiB chunks leave no room for a store.
    let fx = Fixture::new(8, 256, 512, 4);
    let mut store = fx.create();
    for id in 0..2u64 {
        store.create_snapshot(None).unwrap();
        for c in (id..fx.origin_chunks).step_by(3) {
            store.origin_write(c * fx.chunk_bytes, &[7; 5]).unwrap();
        }
    }
    store.commit().unwrap();
    let before = records(&mut store);
    drop(store);
    poke(&fx.cow_path(), 12, &2048u32.to_le_bytes());
    let report = repair(&fx, &RepairOptions::default());
    assert_eq!(
        (report.chunk_size, report.chunk_size_source),
        (8, Source::Inferred)
    );
    assert!(
        report
            .header_problems
            .iter()
            .any(|p| p.contains("2048 sectors, too large for a device of 2097152 bytes")),
        "{:?}",
        report.header_problems
    );
    assert_eq!(report.kept, before.len() as u64);
    let mut store = install(&fx);
    assert_eq!(records(&mut store), before);
}

#[test]
fn a_wiped_header_over_a_store_without_records_asks_for_the_snapshots() {
    // As `mkcow --kind shared --size 8M --snapshots 3 --journal-size 64k`.
    let fx = Fixture::new(8, 64, 2048, 16);
    let mut store = fx.create();
    for _ in 0..3 {
        store.create_snapshot(None).unwrap();
    }
    store.commit().unwrap();
    assert_eq!(store.geometry().data_start(), 18);
    drop(store);
    zero_chunk(&fx, 0);
    let err = try_repair(&fx, &RepairOptions::default()).unwrap_err();
    assert!(matches!(err, JobError::Damage(_)), "{err}");
    assert!(err.to_string().contains("--snapshots"), "{err}");
    let given = RepairOptions {
        snapmask: Some(0b111),
        ..RepairOptions::default()
    };
    let report = repair(&fx, &given);
    // The empty leaf the store was made with lies right after the journal.
    assert_eq!(
        (report.journal_chunks, report.journal_source),
        (16, Source::Inferred)
    );
    assert_eq!(report.snapshots, vec![0, 1, 2]);
    assert_eq!(report.kept, 0);
    assert!(!report.records_unknown);
    let mut store = install(&fx);
    assert_eq!(store.snapmask(), 0b111);
    assert_eq!(store.geometry().nr_journal_chunks, 16);
    assert!(records(&mut store).is_empty());
}

#[test]
fn a_snapmask_of_zero_is_refused_as_a_bad_request() {
    let fx = fixture();
    drop(populate(&fx));
    let zero = RepairOptions {
        snapmask: Some(0),
        ..RepairOptions::default()
    };
    let err = try_repair(&fx, &zero).unwrap_err();
    assert!(
        matches!(err, JobError::Failed(cowfmt::Error::Invalid(_))),
        "{err}"
    );
    assert!(err.to_string().contains("snapmask of 0"), "{err}");
}

#[test]
fn options_override_a_wiped_header() {
    let b = built();
    zero_chunk(&b.fx, 0);
    let options = RepairOptions {
        chunk_size: Some(1),
        journal_chunks: Some(4),
        snapmask: Some(0b11111),
        ..RepairOptions::default()
    };
    let report = repair(&b.fx, &options);
    assert_eq!(report.chunk_size_source, Source::Option);
    assert_eq!(report.journal_source, Source::Option);
    assert_eq!(
        (report.snapmask, report.snapmask_source),
        (0b11111, Source::Option)
    );
    assert_eq!(report.snapshots, vec![0, 1, 2, 3, 4]);
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_snapmask_missing_snapshots_is_never_widened() {
    let b = built();
    poke(&b.fx.cow_path(), 24, &0b0101u64.to_le_bytes());
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.snapmask, 0b0101);
    assert_eq!(report.snapmask_source, Source::Header);
    assert_eq!(report.bits_outside_snapmask, 0b1010);
    assert!(!report.header_repaired);
    let outside: BTreeSet<Rec> = b
        .records
        .iter()
        .filter(|r| r.1 & 0b1010 != 0)
        .copied()
        .collect();
    assert!(!outside.is_empty());
    assert_eq!(report.dropped_total, outside.len() as u64);
    assert!(report.records_lost);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("repair again with --snapmask 0xf")),
        "{:?}",
        report.notes
    );
    let survivors: BTreeSet<Rec> = b.records.difference(&outside).copied().collect();
    let mut store = install(&b.fx);
    assert_eq!(records(&mut store), survivors);
    assert_eq!(store.snapmask(), 0b0101);
}

#[test]
fn a_snapmask_given_smaller_drops_the_other_snapshots_records_and_counts_them() {
    let b = built();
    let report = repair(
        &b.fx,
        &RepairOptions {
            snapmask: Some(0b0111),
            ..RepairOptions::default()
        },
    );
    let outside: BTreeSet<Rec> = b
        .records
        .iter()
        .filter(|r| r.1 & 0b1000 != 0)
        .copied()
        .collect();
    assert!(!outside.is_empty());
    assert_eq!(
        report.dropped_for(DropReason::MaskOutsideSnapmask),
        outside.len() as u64
    );
    assert_eq!(report.dropped_total, outside.len() as u64);
    for t in &report.per_snapshot {
        let lost = outside.iter().filter(|r| r.1 & (1 << t.id) != 0).count() as u64;
        assert_eq!(t.lost, lost, "snapshot {}", t.id);
        assert!(!t.lost_unknown);
    }
    let survivors: BTreeSet<Rec> = b.records.difference(&outside).copied().collect();
    let mut store = install(&b.fx);
    assert_eq!(records(&mut store), survivors);
    assert_eq!(store.snapmask(), 0b0111);
}

/// The byte offset of record `index` of the leaf at `leaf`.
fn record_offset(fx: &Fixture, leaf: u64, index: usize) -> u64 {
    let mut chunk = vec![0u8; fx.chunk_bytes as usize];
    let bytes = std::fs::read(fx.cow_path()).unwrap();
    let at = (leaf * fx.chunk_bytes) as usize;
    chunk.copy_from_slice(&bytes[at..at + fx.chunk_bytes as usize]);
    let decoded = Leaf::decode(&chunk).unwrap();
    let n = decoded.records.len();
    leaf * fx.chunk_bytes + fx.chunk_bytes - 16 * (n - index) as u64
}

/// A leaf, and the index (in its records) of an origin chunk's second record.
fn leaf_with_shared_origin(b: &Built) -> (u64, usize, Rec, Rec) {
    for (leaf, recs) in &b.blocks.leaves {
        for i in 1..recs.len() {
            if recs[i].0 == recs[i - 1].0 {
                return (*leaf, i, recs[i - 1], recs[i]);
            }
        }
    }
    panic!("no origin chunk with two records");
}

/// Asserts that each snapshot lost one record per mask of `masks` naming it.
fn assert_lost_per_snapshot(report: &RepairReport, masks: &[u64]) {
    for t in &report.per_snapshot {
        let lost = masks.iter().filter(|&&m| m & (1 << t.id) != 0).count() as u64;
        assert_eq!(t.lost, lost, "snapshot {}", t.id);
    }
}

/// Two records of different leaves claim one data chunk after `damaged`'s
/// chunk field was overwritten with `owner`'s chunk: nothing tells which one
/// the chunk belongs to, so both go, and each snapshot of either loses it.
fn assert_both_claimants_dropped(b: &Built, damaged: (u64, usize, Rec), owner: Rec) {
    let (leaf, index, victim) = damaged;
    poke(
        &b.fx.cow_path(),
        record_offset(&b.fx, leaf, index) + 8,
        &owner.2.to_le_bytes(),
    );
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.dropped_total, 2);
    assert_eq!(report.dropped_for(DropReason::ChunkUsedTwice), 2);
    let dropped: BTreeSet<Rec> = report
        .dropped
        .iter()
        .map(|d| (d.origin, d.share, d.chunk))
        .collect();
    let expected: BTreeSet<Rec> = [(victim.0, victim.1, owner.2), owner].into_iter().collect();
    assert_eq!(dropped, expected);
    let d = report.dropped.iter().find(|d| d.leaf == leaf).unwrap();
    assert!(
        d.message.contains("claimed by another record"),
        "{}",
        d.message
    );
    // The victim's own data chunk is referenced by nothing now: freed; the
    // contested one is a dropped record's.
    assert_eq!(report.chunks.leaked_freed, 1);
    assert_eq!(report.chunks.dropped_record_chunks, 1);
    assert_lost_per_snapshot(&report, &[victim.1, owner.1]);
    let lost: BTreeSet<Rec> = [victim, owner].into_iter().collect();
    assert_survivors(b, &report, &lost);
}

#[test]
fn a_cow_chunk_claimed_by_a_later_record_drops_both_claimants() {
    let b = built();
    let middle = b.blocks.leaves.len() / 2;
    let owner = b.blocks.leaves[middle].1[0];
    let (victim_leaf, victim_recs) = &b.blocks.leaves[middle + 1];
    assert_both_claimants_dropped(&b, (*victim_leaf, 1, victim_recs[1]), owner);
}

#[test]
fn a_cow_chunk_claimed_by_an_earlier_record_drops_both_claimants() {
    // The damaged record comes first in origin order: it must not win the
    // chunk and hand its snapshots another origin chunk's data.
    let b = built();
    let middle = b.blocks.leaves.len() / 2;
    let (victim_leaf, victim_recs) = &b.blocks.leaves[middle];
    let owner = b.blocks.leaves[middle + 5].1[0];
    assert_both_claimants_dropped(&b, (*victim_leaf, 0, victim_recs[0]), owner);
}

#[test]
fn a_record_pointing_at_a_leaf_is_dropped_and_the_leaf_kept() {
    let b = built();
    let (leaf, recs) = &b.blocks.leaves[5];
    let victim = recs[0];
    let other_leaf = b.blocks.leaves[9].0;
    poke(
        &b.fx.cow_path(),
        record_offset(&b.fx, *leaf, 0) + 8,
        &other_leaf.to_le_bytes(),
    );
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.dropped_total, 1);
    assert_eq!(report.dropped[0].reason, DropReason::ChunkIsTreeBlock);
    assert_eq!(report.dropped[0].chunk, other_leaf);
    assert_eq!(report.chunks.leaked_freed, 1, "the victim's own chunk");
    let lost: BTreeSet<Rec> = [victim].into_iter().collect();
    assert_survivors(&b, &report, &lost);
}

#[test]
fn a_mask_outside_the_snapmask_drops_its_record() {
    let b = built();
    let (leaf, recs) = &b.blocks.leaves[3];
    let victim = recs[2];
    poke(
        &b.fx.cow_path(),
        record_offset(&b.fx, *leaf, 2),
        &(victim.1 | 1 << 9).to_le_bytes(),
    );
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(
        report.snapmask, 0b1111,
        "one damaged mask is no proof of snapshot 9"
    );
    assert_eq!(report.dropped_total, 1);
    assert_eq!(report.dropped_for(DropReason::MaskOutsideSnapmask), 1);
    assert!(
        report.dropped[0].message.contains("snapshots 9"),
        "{}",
        report.dropped[0].message
    );
    assert_eq!(report.chunks.dropped_record_chunks, 1);
    let lost: BTreeSet<Rec> = [victim].into_iter().collect();
    assert_survivors(&b, &report, &lost);
    for t in &report.per_snapshot {
        assert_eq!(t.lost, u64::from(victim.1 & (1 << t.id) != 0));
    }
}

#[test]
fn bits_a_later_record_shares_with_an_earlier_one_are_removed_from_both() {
    let b = built();
    let (leaf, i, earlier, later) = leaf_with_shared_origin(&b);
    assert_eq!(earlier.1 & later.1, 0);
    poke(
        &b.fx.cow_path(),
        record_offset(&b.fx, leaf, i),
        &(later.1 | earlier.1).to_le_bytes(),
    );
    let report = repair(&b.fx, &RepairOptions::default());
    // The earlier record's snapshots cannot tell which copy they read: the
    // earlier record has no bit left and goes; the later keeps its own bits.
    assert_eq!(report.masks_trimmed, 1);
    assert_eq!(report.dropped_total, 1);
    assert_eq!(report.dropped_for(DropReason::MaskOverlap), 1);
    assert_eq!(report.dropped[0].chunk, earlier.2);
    assert_lost_per_snapshot(&report, &[earlier.1]);
    let lost: BTreeSet<Rec> = [earlier].into_iter().collect();
    assert_survivors(&b, &report, &lost);
}

#[test]
fn a_mask_equal_to_an_earlier_record_drops_both_records() {
    let b = built();
    let (leaf, i, earlier, later) = leaf_with_shared_origin(&b);
    poke(
        &b.fx.cow_path(),
        record_offset(&b.fx, leaf, i),
        &earlier.1.to_le_bytes(),
    );
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.dropped_for(DropReason::MaskOverlap), 2);
    assert_eq!(report.dropped_total, 2);
    assert_eq!(report.masks_trimmed, 0);
    assert_eq!(report.chunks.dropped_record_chunks, 2);
    // The later record's own snapshots are not named on disk any more.
    assert_lost_per_snapshot(&report, &[earlier.1]);
    let lost: BTreeSet<Rec> = [earlier, later].into_iter().collect();
    assert_survivors(&b, &report, &lost);
}

#[test]
fn leaked_chunks_are_freed() {
    let b = built();
    let geometry = *b.store.geometry();
    let device = Device::open(b.fx.cow_path(), Access::ReadOnly).unwrap();
    let bitmap = ChunkBitmap::load(&device, &geometry).unwrap();
    let free: Vec<u64> = (geometry.data_start()..geometry.nr_chunks)
        .filter(|&c| !bitmap.is_used(c))
        .take(10)
        .collect();
    for &c in &free {
        let byte = geometry.chunk_bytes + c / 8;
        let mut old = [0u8];
        use std::os::unix::fs::FileExt;
        std::fs::File::open(b.fx.cow_path())
            .unwrap()
            .read_exact_at(&mut old, byte)
            .unwrap();
        poke(&b.fx.cow_path(), byte, &[old[0] | 1 << (c % 8)]);
    }
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.chunks.leaked_freed, 10);
    let scan = report.scan.expect("leaked chunks are looked at for leaves");
    assert_eq!((scan.chunks_scanned, scan.leaves_found), (10, 0));
    assert!(report.lost_ranges.is_empty());
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn a_live_leaf_no_node_points_at_is_found_by_its_bitmap_bit() {
    let b = built();
    // A commit cut short can leave a node that no longer points at a leaf the
    // bitmap still marks in use; the walk sees nothing wrong.
    let &(node, _) = b.blocks.nodes.iter().find(|n| n.1 == 1).unwrap();
    let path = b.fx.cow_path();
    let bytes = std::fs::read(&path).unwrap();
    let at = (node * b.fx.chunk_bytes) as usize;
    let mut chunk = bytes[at..at + b.fx.chunk_bytes as usize].to_vec();
    let mut decoded = Node::decode(&chunk).unwrap();
    assert!(decoded.entries.len() > 2);
    let orphan = decoded.entries.remove(1).chunk;
    decoded.encode(&mut chunk);
    poke(&path, node * b.fx.chunk_bytes, &chunk);
    let report = repair(&b.fx, &RepairOptions::default());
    assert!(report.lost_ranges.is_empty());
    let scan = report.scan.unwrap();
    assert_eq!(scan.leaves_used, 1);
    assert!(!report.records_unknown);
    assert_eq!(report.chunks.leaked_freed, 0);
    assert!(b.blocks.leaves.iter().any(|l| l.0 == orphan));
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn stale_leaves_of_a_deleted_snapshot_are_not_resurrected() {
    let fx = fixture();
    let mut store = populate(&fx);
    store.delete_snapshot(1).unwrap();
    for c in (0..fx.origin_chunks).step_by(5) {
        store.origin_write(c * fx.chunk_bytes, &[0x55; 2]).unwrap();
    }
    store.commit().unwrap();
    let records = records(&mut store);
    let views: Vec<Vec<u8>> = views_of(&fx, &mut store, &[0, 2, 3]);
    let live = blocks(&fx, &store);
    // Freed leaves are still on the device, and not zeroed.
    let device = Device::open(fx.cow_path(), Access::ReadOnly).unwrap();
    let geometry: Geometry = *store.geometry();
    let bitmap = ChunkBitmap::load(&device, &geometry).unwrap();
    let mut buf = vec![0u8; fx.chunk_bytes as usize];
    let stale = (geometry.data_start()..geometry.nr_chunks)
        .filter(|&c| !bitmap.is_used(c))
        .filter(|&c| {
            device.read_chunk(c, &mut buf).unwrap();
            Leaf::decode(&buf).is_ok_and(|l| l.count() > 0)
        })
        .count();
    assert!(stale > 0, "the delete left stale leaves behind");
    drop(device);
    zero_chunk(&fx, store.header().root_tree_chunk);
    let report = repair(&fx, &RepairOptions::default());
    let scan = report.scan.unwrap();
    assert_eq!(scan.leaves_used as usize, live.leaves.len());
    let mut repaired = install(&fx);
    assert_eq!(self::records(&mut repaired), records);
    assert_eq!(views_of(&fx, &mut repaired, &[0, 2, 3]), views);
}

fn views_of(fx: &Fixture, store: &mut SharedStore, ids: &[u32]) -> Vec<Vec<u8>> {
    ids.iter()
        .map(|&id| {
            let mut buf = vec![0u8; (fx.origin_chunks * fx.chunk_bytes) as usize];
            store.snapshot_read(id, 0, &mut buf).unwrap();
            buf
        })
        .collect()
}

#[test]
fn an_invalidated_store_stays_invalid_unless_marked_valid() {
    let b = built();
    poke(&b.fx.cow_path(), 4, &0u32.to_le_bytes());
    let report = repair(&b.fx, &RepairOptions::default());
    assert_eq!(report.input_valid, Some(false));
    assert!(!report.output_valid);
    let out = std::fs::read(output_path(&b.fx)).unwrap();
    assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 0);
    let report = repair(
        &b.fx,
        &RepairOptions {
            mark_valid: true,
            ..RepairOptions::default()
        },
    );
    assert!(report.output_valid);
    assert_survivors(&b, &report, &BTreeSet::new());
}

#[test]
fn an_output_too_small_is_refused_clearly() {
    let b = built();
    let input = Device::open(b.fx.cow_path(), Access::ReadOnly).unwrap();
    let salvage = analyze(&input, &RepairOptions::default(), &mut |_, _| {}).unwrap();
    let needed = salvage.needed_bytes();
    assert!(needed < input.size_bytes());
    assert!(salvage.output_problem(needed).is_none());
    let small = b.fx.dir.path().join("small.img");
    let output = Device::create_or_extend(&small, needed - b.fx.chunk_bytes * 4).unwrap();
    let options = WriteOptions {
        output_zeroed: true,
        data_in_place: false,
    };
    let err = salvage
        .write(&input, output, options, &mut |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("bytes are needed"), "{err}");

    let salvage = analyze(&input, &RepairOptions::default(), &mut |_, _| {}).unwrap();
    let exact = b.fx.dir.path().join("exact.img");
    let output = Device::create_or_extend(&exact, needed).unwrap();
    salvage
        .write(&input, output, options, &mut |_, _| {})
        .unwrap();
    let checked = check(
        &Device::open(&exact, Access::ReadOnly).unwrap(),
        &CheckOptions::default(),
    )
    .unwrap();
    assert!(checked.is_clean(), "{:#?}", checked.findings);
}

#[test]
fn a_blank_device_has_nothing_to_salvage() {
    let fx = fixture();
    let err = match try_repair(&fx, &RepairOptions::default()) {
        Err(e) => e,
        Ok(report) => panic!("{report:#?}"),
    };
    assert!(matches!(err, JobError::Damage(_)), "{err}");
    assert!(err.to_string().contains("nothing to salvage"), "{err}");
}

/// A small store for the random-damage property: two snapshots, a tree of
/// two levels.
fn small_store() -> (Fixture, Vec<u64>) {
    let fx = Fixture::new(1, 300, 2_000, 2);
    let mut store = fx.create();
    for id in 0..2 {
        store.create_snapshot(None).unwrap();
        for c in (id..300).step_by(2) {
            store
                .origin_write(c * fx.chunk_bytes, &[id as u8; 4])
                .unwrap();
        }
    }
    store.commit().unwrap();
    let b = blocks(&fx, &store);
    let mut metadata: Vec<u64> = vec![0, 1];
    metadata.extend(b.nodes.iter().map(|n| n.0));
    metadata.extend(b.leaves.iter().map(|l| l.0));
    (fx, metadata)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random bytes over random metadata chunks: the repair either fails
    /// cleanly or writes a store the checker finds clean and the engine opens.
    #[test]
    fn random_damage_never_panics_and_repairs_cleanly(
        hits in proptest::collection::vec((0usize..1000, 0usize..512, proptest::collection::vec(any::<u8>(), 1..64)), 1..6)
    ) {
        let (fx, metadata) = small_store();
        for (which, offset, bytes) in &hits {
            let chunk = metadata[which % metadata.len()];
            let at = chunk * fx.chunk_bytes + (*offset as u64).min(fx.chunk_bytes - bytes.len() as u64);
            poke(&fx.cow_path(), at, bytes);
        }
        match try_repair(&fx, &RepairOptions::default()) {
            Err(JobError::Damage(message)) => prop_assert!(!message.is_empty()),
            Err(JobError::Failed(e)) => prop_assert!(!e.to_string().is_empty()),
            Ok(report) => {
                let out = output_path(&fx);
                let checked = check(&Device::open(&out, Access::ReadOnly).unwrap(), &CheckOptions::default()).unwrap();
                prop_assert!(!checked.has_errors(), "{:#?}", checked.findings);
                if report.output_valid {
                    std::fs::copy(&out, fx.cow_path()).unwrap();
                    let mut store = fx.reopen();
                    prop_assert_eq!(store.exceptions().unwrap().iter().map(|e| e.1.len() as u64).sum::<u64>(), report.kept);
                }
            }
        }
    }
}
