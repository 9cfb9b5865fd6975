//! The corruption matrix for shared stores: a store built by the engine (512-byte
//! chunks, four snapshots, one of them a snapshot of a snapshot and one written
//! to, a few thousand records under a tree of two node levels) is damaged on
//! purpose; cowcheck must report the damage with the right code and place, and
//! cowrepair must produce a store that checks clean, opens in the engine, and
//! holds exactly the records the damage did not touch, each snapshot reading
//! them back as before.

use crate::corruption_support;
use crate::shared_support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use corruption_support::{assert_codes, first, Rng};
use cowengine::SharedStore;
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::check::{check, CheckOptions, CheckReport};
use cowfmt::shared::mask;
use cowfmt::shared::repair::{self, RepairOptions, RepairReport, WriteOptions};
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{Exception, Geometry, Leaf, Node, SharedHeader};
use cowfmt::{Access, Device, FindingCode, Location, Severity};
use shared_support::Fixture;

const SECTORS: u32 = 1;
const CHUNK: u64 = 512;
const ORIGIN_CHUNKS: u64 = 4000;
const COW_CHUNKS: u64 = 6000;
const JOURNAL: u64 = 4;

/// One record: its origin chunk and the exception.
type Record = (u64, Exception);

/// A tree block as the walk of the undamaged store found it.
#[derive(Debug, Clone)]
struct LeafBlock {
    at: BlockAt,
    leaf: Leaf,
    records: Vec<Record>,
}

#[derive(Debug, Clone)]
struct NodeBlock {
    at: BlockAt,
    node: Node,
}

/// The generated store, built once: where its images are and everything
/// known about it before any damage.
struct Template {
    fixture: Fixture,
    geometry: Geometry,
    header: SharedHeader,
    snapshots: Vec<u32>,
    records: Vec<Record>,
    /// The bytes of every record's COW chunk.
    data: HashMap<u64, Vec<u8>>,
    leaves: Vec<LeafBlock>,
    /// Nodes in walk order: the root first.
    nodes: Vec<NodeBlock>,
}

#[derive(Default)]
struct Blocks {
    leaves: Vec<LeafBlock>,
    nodes: Vec<NodeBlock>,
    problems: Vec<String>,
}

impl TreeVisitor for Blocks {
    fn node(&mut self, at: &BlockAt, node: &Node) -> cowfmt::Result<()> {
        self.nodes.push(NodeBlock {
            at: *at,
            node: node.clone(),
        });
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        let records = leaf
            .entries()
            .flat_map(|(origin, records)| records.iter().map(move |r| (origin, *r)))
            .collect();
        self.leaves.push(LeafBlock {
            at: *at,
            leaf: leaf.clone(),
            records,
        });
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> cowfmt::Result<()> {
        self.problems.push(format!("{}: {problem:?}", at.chunk));
        Ok(())
    }
}

/// Chunk `origin`'s bytes for the `n`th write: different for every write.
fn write_data(origin: u64, n: u64) -> Vec<u8> {
    corruption_support::bytes(origin << 20 | n, CHUNK as usize)
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

/// Drives the engine: snapshot 0, origin writes, snapshot 1, more writes,
/// snapshot 2 of snapshot 0, writes into snapshot 1, snapshot 40 and a last
/// round of origin writes; then records what the walk finds.
fn build_template() -> Template {
    let fixture = Fixture::new(SECTORS, ORIGIN_CHUNKS, COW_CHUNKS, JOURNAL);
    let mut store = fixture.create();
    let mut n = 0u64;
    let mut origin_write = |store: &mut SharedStore, chunk: u64| {
        n += 1;
        store
            .origin_write(chunk * CHUNK, &write_data(chunk, n))
            .unwrap();
    };
    let s0 = store.create_snapshot(None).unwrap();
    for i in 0..1200 {
        origin_write(&mut store, (i * 7) % ORIGIN_CHUNKS);
    }
    let s1 = store.create_snapshot(None).unwrap();
    for i in 0..1200 {
        origin_write(&mut store, (i * 13 + 5) % ORIGIN_CHUNKS);
    }
    let s2 = store.create_snapshot_of(s0).unwrap();
    for i in 0..150u64 {
        let chunk = (i * 11) % ORIGIN_CHUNKS;
        store
            .snapshot_write(s1, chunk * CHUNK, &write_data(chunk, 1 << 19 | i))
            .unwrap();
    }
    let s40 = store.create_snapshot(Some(40)).unwrap();
    for i in 0..300 {
        origin_write(&mut store, (i * 17 + 3) % ORIGIN_CHUNKS);
    }
    store.commit().unwrap();
    let header = store.header();
    let geometry = *store.geometry();
    let records: Vec<Record> = store
        .exceptions()
        .unwrap()
        .into_iter()
        .flat_map(|(origin, records)| records.into_iter().map(move |r| (origin, r)))
        .collect();
    drop(store);

    let cow = Device::open(fixture.cow_path(), Access::ReadOnly).unwrap();
    let mut blocks = Blocks::default();
    walk_tree(
        &cow,
        &geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut blocks,
    )
    .unwrap();
    assert!(blocks.problems.is_empty(), "{:?}", blocks.problems);
    let walked: Vec<Record> = blocks
        .leaves
        .iter()
        .flat_map(|l| l.records.iter().copied())
        .collect();
    assert_eq!(walked, records, "the walk and the engine disagree");
    let mut data = HashMap::new();
    let mut buf = vec![0u8; CHUNK as usize];
    for (_, r) in &records {
        cow.read_chunk(r.chunk, &mut buf).unwrap();
        data.insert(r.chunk, buf.clone());
    }
    assert!(header.tree_level >= 2, "{header:?}");
    assert!(blocks.leaves.len() >= 100, "{} leaves", blocks.leaves.len());
    assert!(records.len() >= 2500, "{} records", records.len());
    Template {
        fixture,
        geometry,
        header,
        snapshots: vec![s0, s1, s2, s40],
        records,
        data,
        leaves: blocks.leaves,
        nodes: blocks.nodes,
    }
}

/// A fresh copy of the template's images to damage.
struct Case {
    fixture: Fixture,
    name: String,
}

impl Case {
    fn new(name: impl Into<String>) -> Self {
        let t = template();
        let dir = tempfile::tempdir().unwrap();
        for file in ["cow.img", "origin.img"] {
            std::fs::copy(t.fixture.dir.path().join(file), dir.path().join(file)).unwrap();
        }
        Case {
            fixture: Fixture {
                dir,
                chunk_sectors: SECTORS,
                chunk_bytes: CHUNK,
                origin_chunks: ORIGIN_CHUNKS,
                cow_chunks: COW_CHUNKS,
                journal_chunks: JOURNAL,
            },
            name: name.into(),
        }
    }

    fn cow(&self) -> PathBuf {
        self.fixture.cow_path()
    }

    fn device(&self) -> Device {
        Device::open(self.cow(), Access::ReadWrite).unwrap()
    }

    fn poke(&self, offset: u64, data: &[u8]) {
        corruption_support::poke(&self.cow(), offset, data);
    }

    fn poke_u32(&self, chunk: u64, at: u64, value: u32) {
        self.poke(chunk * CHUNK + at, &value.to_le_bytes());
    }

    fn read_chunk(&self, chunk: u64) -> Vec<u8> {
        corruption_support::peek(&self.cow(), chunk * CHUNK, CHUNK as usize)
    }

    fn write_chunk(&self, chunk: u64, data: &[u8]) {
        self.poke(chunk * CHUNK, data);
    }

    fn zero_chunk(&self, chunk: u64) {
        self.write_chunk(chunk, &[0u8; CHUNK as usize]);
    }

    fn edit_header(&self, edit: impl FnOnce(&mut SharedHeader)) {
        let mut header = SharedHeader::decode(&self.read_chunk(0)).unwrap();
        edit(&mut header);
        let mut raw = [0u8; 40];
        header.encode(&mut raw);
        self.poke(0, &raw);
    }

    fn edit_node(&self, chunk: u64, edit: impl FnOnce(&mut Node)) {
        let mut node = Node::decode(&self.read_chunk(chunk)).unwrap();
        edit(&mut node);
        let mut buf = vec![0u8; CHUNK as usize];
        node.encode(&mut buf);
        self.write_chunk(chunk, &buf);
    }

    /// Overwrites record `index` of `leaf` in place, as a flipped bit on disk
    /// would: the leaf's using_mask is left as it was.
    fn poke_record(&self, leaf: &LeafBlock, index: usize, record: Exception) {
        let first = CHUNK - 16 * leaf.leaf.records.len() as u64;
        let at = leaf.at.chunk * CHUNK + first + 16 * index as u64;
        self.poke(at, &record.share.to_le_bytes());
        self.poke(at + 8, &record.chunk.to_le_bytes());
    }

    fn mark(&self, chunk: u64, used: bool) {
        let device = self.device();
        let geometry = template().geometry;
        let mut bitmap = ChunkBitmap::load(&device, &geometry).unwrap();
        bitmap.set(chunk, used);
        bitmap.write_dirty(&device).unwrap();
    }

    fn check_with(&self, options: &CheckOptions) -> CheckReport {
        let device = Device::open(self.cow(), Access::ReadOnly).unwrap();
        check(&device, options).unwrap()
    }

    /// A check that insists on the kind, so a damaged magic is a finding.
    fn check(&self) -> CheckReport {
        self.check_with(&CheckOptions {
            kind_forced: true,
            ..CheckOptions::default()
        })
    }

    /// Repairs the damaged image into `fixed.img` (the input's size) with
    /// `options`.
    fn repair_with(&self, options: &RepairOptions) -> (RepairReport, PathBuf) {
        let source = Device::open(self.cow(), Access::ReadOnly).unwrap();
        let salvage = repair::analyze(&source, options, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{}: analyze: {e}", self.name));
        let out = self.fixture.dir.path().join("fixed.img");
        let output = Device::create_or_extend(&out, source.size_bytes()).unwrap();
        let write = WriteOptions {
            output_zeroed: true,
            data_in_place: false,
        };
        let report = salvage
            .write(&source, output, write, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{}: write: {e}", self.name));
        (report, out)
    }

    /// Repairs with `options` and requires exactly `survivors`: the output
    /// checks clean, opens in the engine with the generated snapmask, holds
    /// exactly those records, and every snapshot of a record reads its data
    /// back as before the damage.
    fn assert_repair(&self, options: &RepairOptions, survivors: &[Record]) -> RepairReport {
        let t = template();
        let (report, out) = self.repair_with(options);
        let name = &self.name;
        let device = Device::open(&out, Access::ReadOnly).unwrap();
        let checked = check(
            &device,
            &CheckOptions {
                origin_bytes: Some(ORIGIN_CHUNKS * CHUNK),
                ..CheckOptions::default()
            },
        )
        .unwrap();
        assert!(
            checked.is_clean(),
            "{name}: the repaired store does not check clean: {:#?}",
            checked.findings
        );
        let cow = Device::open(&out, Access::ReadWrite).unwrap();
        let origin = Device::open(self.fixture.origin_path(), Access::ReadOnly).unwrap();
        let mut store = SharedStore::open(cow, origin)
            .unwrap_or_else(|e| panic!("{name}: the repaired store does not open: {e}"));
        assert_eq!(store.snapmask(), t.header.snapmask, "{name}: snapmask");
        let got: BTreeSet<(u64, u64, u64)> = store
            .exceptions()
            .unwrap()
            .into_iter()
            .flat_map(|(o, rs)| rs.into_iter().map(move |r| (o, r.share, r.chunk)))
            .collect();
        let want: BTreeSet<(u64, u64, u64)> = survivors
            .iter()
            .map(|&(o, r)| (o, r.share, r.chunk))
            .collect();
        if got != want {
            let missing: Vec<_> = want.difference(&got).take(10).collect();
            let extra: Vec<_> = got.difference(&want).take(10).collect();
            panic!(
                "{name}: the repaired store holds {} records, {} expected; missing (origin, share, chunk) {} e.g. {missing:?}; unexpected {} e.g. {extra:?}; report {report:#?}",
                got.len(),
                want.len(),
                want.difference(&got).count(),
                got.difference(&want).count(),
            );
        }
        assert_eq!(report.kept, survivors.len() as u64, "{name}");
        let mut buf = vec![0u8; CHUNK as usize];
        for &(origin, record) in survivors {
            for id in mask::ids(record.share) {
                store.snapshot_read(id, origin * CHUNK, &mut buf).unwrap();
                assert!(
                    buf == t.data[&record.chunk],
                    "{name}: snapshot {id} reads origin chunk {origin} differently after the repair"
                );
            }
        }
        report
    }

    fn assert_repair_default(&self, survivors: &[Record]) -> RepairReport {
        self.assert_repair(&RepairOptions::default(), survivors)
    }

    fn codes(&self, report: &CheckReport, expected: &[FindingCode]) {
        assert_codes(&report.findings, expected, &self.name);
    }

    fn first<'a>(&self, report: &'a CheckReport, code: FindingCode) -> &'a cowfmt::Finding {
        first(&report.findings, code, &self.name)
    }
}

// ---------------------------------------------------------------- places

fn header_field(offset: u64) -> Location {
    Location {
        chunk: Some(0),
        offset: Some(offset),
        ..Location::default()
    }
}

/// Where the checker names a tree block: chunk, level, key range, referrer.
fn block_location(at: &BlockAt) -> Location {
    Location {
        chunk: Some(at.chunk),
        level: Some(at.level),
        key_lo: Some(at.lo),
        key_hi: (at.hi != u64::MAX).then_some(at.hi),
        parent: at.parent.map(|(node, _)| node),
        entry: at.parent.map(|(_, entry)| entry as u64),
        ..Location::default()
    }
}

/// Where the checker names entry `entry` of a block.
fn entry_location(at: &BlockAt, entry: usize) -> Location {
    Location {
        chunk: Some(at.chunk),
        level: Some(at.level),
        key_lo: Some(at.lo),
        key_hi: (at.hi != u64::MAX).then_some(at.hi),
        entry: Some(entry as u64),
        ..Location::default()
    }
}

/// Where the checker names record `index` of map entry `entry` of a leaf.
fn record_location(leaf: &LeafBlock, entry: usize, index: usize, record: Exception) -> Location {
    Location {
        record: Some(index as u64),
        old_chunk: Some(leaf.leaf.origin_of(entry)),
        new_chunk: Some(record.chunk),
        mask: Some(record.share),
        ..entry_location(&leaf.at, entry)
    }
}

// ---------------------------------------------------------------- targets

/// A leaf in the middle of the key space that is not its parent's first child
/// and holds at least two map entries, one with two records or more.
fn middle_leaf() -> &'static LeafBlock {
    let t = template();
    let half = t.leaves.len() / 2;
    t.leaves[half..]
        .iter()
        .find(|l| {
            l.at.parent.is_some_and(|(_, e)| e > 0)
                && l.leaf.count() >= 2
                && (0..l.leaf.count()).any(|i| l.leaf.records_of(i).len() >= 2)
        })
        .expect("a middle leaf with a shared origin chunk")
}

/// Another leaf, well after `middle_leaf`.
fn later_leaf() -> &'static LeafBlock {
    let t = template();
    &t.leaves[t.leaves.len() * 3 / 4]
}

/// An interior node below the root, in the middle of the key space.
fn middle_node() -> &'static NodeBlock {
    let t = template();
    let level1: Vec<&NodeBlock> = t.nodes.iter().filter(|n| n.at.level == 1).collect();
    level1[level1.len() / 2]
}

fn root() -> &'static NodeBlock {
    &template().nodes[0]
}

/// The records of every leaf under `at` (a node), in key order.
fn records_under(at: &BlockAt) -> BTreeSet<(u64, u64, u64)> {
    template()
        .leaves
        .iter()
        .filter(|l| l.at.lo >= at.lo && l.at.hi <= at.hi)
        .flat_map(|l| l.records.iter().map(|&(o, r)| (o, r.share, r.chunk)))
        .collect()
}

/// Every generated record except `lost`.
fn all_but(lost: &[Record]) -> Vec<Record> {
    template()
        .records
        .iter()
        .filter(|r| !lost.contains(r))
        .copied()
        .collect()
}

fn all() -> Vec<Record> {
    template().records.clone()
}

// ---------------------------------------------------------------- the store

#[test]
fn the_generated_store_is_clean_and_deep() {
    let t = template();
    let case = Case::new("clean");
    let report = case.check();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.summary.records, t.records.len() as u64);
    assert_eq!(report.summary.leaves, t.leaves.len() as u64);
    assert_eq!(report.summary.snapshots, 4);
    assert!(t.header.tree_level >= 2);
    let masks: BTreeSet<u64> = t.records.iter().map(|r| r.1.share).collect();
    assert!(masks.len() >= 4, "masks {masks:?}");
    assert_eq!(
        records_under(&root().at).len(),
        t.records.len(),
        "the leaves cover the records"
    );
    assert_eq!(t.snapshots, vec![0, 1, 2, 40]);
    let repair = case.assert_repair_default(&all());
    assert_eq!(repair.dropped_total, 0);
    assert!(!repair.header_repaired);
    assert!(repair.scan.is_none(), "no damage, no scan");
    assert!(repair.lost_ranges.is_empty());
}

// ---------------------------------------------------------------- header

#[test]
fn header_magic_and_version() {
    let case = Case::new("magic");
    case.poke(0, b"XXXX");
    let device = Device::open(case.cow(), Access::ReadOnly).unwrap();
    assert!(check(&device, &CheckOptions::default()).is_err());
    let report = case.check();
    case.codes(&report, &[FindingCode::BadMagic]);
    assert_eq!(report.findings[0].location, header_field(0));
    assert!(case.assert_repair_default(&all()).header_repaired);

    let case = Case::new("version");
    case.edit_header(|h| h.version = 9);
    let report = case.check();
    case.codes(&report, &[FindingCode::BadVersion]);
    assert_eq!(report.findings[0].location, header_field(8));
    assert!(case.assert_repair_default(&all()).header_repaired);
}

#[test]
fn header_chunk_size() {
    for bad in [0u32, 3, 4096] {
        let case = Case::new(format!("chunk size {bad}"));
        case.edit_header(|h| h.chunk_size = bad);
        let report = case.check();
        case.codes(&report, &[FindingCode::BadChunkSize]);
        assert_eq!(report.findings[0].location, header_field(12));
        let given = case.check_with(&CheckOptions {
            kind_forced: true,
            chunk_size_fallback: Some(SECTORS),
            ..CheckOptions::default()
        });
        case.codes(&given, &[FindingCode::BadChunkSize]);
        assert_eq!(given.summary.records, template().records.len() as u64);
        let repair = case.assert_repair_default(&all());
        assert_eq!(repair.chunk_size_source, repair::Source::Inferred);
    }
}

#[test]
fn header_root_out_of_range() {
    let t = template();
    for root in [0u64, 1, COW_CHUNKS + 5] {
        let case = Case::new(format!("root {root}"));
        case.edit_header(|h| h.root_tree_chunk = root);
        let report = case.check();
        case.codes(&report, &[FindingCode::RootOutOfRange]);
        assert_eq!(
            report.findings[0].location,
            Location {
                new_chunk: Some(root),
                ..header_field(16)
            }
        );
        assert_eq!(report.summary.records, 0);
        assert_eq!(report.summary.leaked_chunks, None);
        let repair = case.assert_repair_default(&all());
        assert_eq!(repair.leaves_reached, 0, "{}", case.name);
        assert_eq!(
            repair.scan.map(|s| s.leaves_used),
            Some(t.leaves.len() as u64)
        );
    }
}

#[test]
fn header_root_on_a_data_chunk() {
    let t = template();
    let data = t.records[10].1.chunk;
    let case = Case::new("root on a data chunk");
    case.edit_header(|h| h.root_tree_chunk = data);
    let report = case.check();
    let at = BlockAt {
        chunk: data,
        level: t.header.tree_level,
        lo: 0,
        hi: u64::MAX,
        parent: None,
    };
    // Data read as a node: a count no node can have.
    case.codes(&report, &[FindingCode::NodeBadCount]);
    assert_eq!(report.findings[0].location, block_location(&at));
    case.assert_repair_default(&all());
}

#[test]
fn header_snapmask_missing_a_snapshot() {
    let t = template();
    let case = Case::new("snapmask without snapshot 2");
    case.edit_header(|h| h.snapmask &= !(1 << 2));
    let report = case.check();
    let with_bit: Vec<&Record> = t.records.iter().filter(|r| r.1.share & 4 != 0).collect();
    assert!(
        with_bit.len() > 1000,
        "{} records see snapshot 2",
        with_bit.len()
    );
    case.codes(
        &report,
        &[
            FindingCode::ShareMaskOutsideSnapmask,
            FindingCode::FindingsSuppressed,
        ],
    );
    let listed = report
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::ShareMaskOutsideSnapmask)
        .count();
    assert_eq!(listed, 1000);
    let suppressed = case.first(&report, FindingCode::FindingsSuppressed);
    assert!(
        suppressed
            .message
            .contains(&format!("({} in all)", with_bit.len())),
        "{}",
        suppressed.message
    );
    let finding = case.first(&report, FindingCode::ShareMaskOutsideSnapmask);
    let (origin, record) = *with_bit[0];
    assert_eq!(finding.location.old_chunk, Some(origin));
    assert_eq!(finding.location.new_chunk, Some(record.chunk));
    assert_eq!(finding.location.mask, Some(record.share));
    // The intact header wins (docs/cowrepair.md): snapshot 2 is not added
    // back; its records are dropped and the note gives the snapmask that
    // keeps them.
    let (repair, _) = case.repair_with(&RepairOptions::default());
    assert_eq!(repair.snapmask_source, repair::Source::Header);
    assert_eq!(repair.snapmask, t.header.snapmask & !(1 << 2));
    assert_eq!(repair.bits_outside_snapmask, 1 << 2);
    assert_eq!(
        repair.dropped_for(repair::DropReason::MaskOutsideSnapmask),
        with_bit.len() as u64
    );
    assert!(repair.records_lost);
    let keep = format!("repair again with --snapmask {:#x}", t.header.snapmask);
    assert!(
        repair.notes.iter().any(|n| n.contains(&keep)),
        "{:?}",
        repair.notes
    );
    let given = RepairOptions {
        snapmask: Some(t.header.snapmask),
        ..RepairOptions::default()
    };
    case.assert_repair(&given, &all());
}

#[test]
fn header_tree_level() {
    let t = template();
    for (level, code) in [
        (0u32, FindingCode::BadTreeLevel),
        (65, FindingCode::BadTreeLevel),
        (t.header.tree_level + 1, FindingCode::TreeDepthMismatch),
        (t.header.tree_level - 1, FindingCode::TreeDepthMismatch),
    ] {
        let case = Case::new(format!("tree_level {level}"));
        case.edit_header(|h| h.tree_level = level);
        let report = case.check();
        let finding = case.first(&report, code);
        if code == FindingCode::BadTreeLevel {
            case.codes(&report, &[code]);
            assert_eq!(
                finding.location,
                Location {
                    level: Some(level),
                    ..header_field(32)
                }
            );
        } else {
            // One level too many: every leaf sits where a node belongs; one
            // too few: every node below the root sits where a leaf belongs.
            let expected: BTreeSet<u64> = if level > t.header.tree_level {
                t.leaves.iter().map(|l| l.at.chunk).collect()
            } else {
                t.nodes
                    .iter()
                    .filter(|n| n.at.level == level)
                    .map(|n| n.at.chunk)
                    .collect()
            };
            case.codes(&report, &[code]);
            let found: BTreeSet<u64> = report
                .findings
                .iter()
                .map(|f| f.location.chunk.unwrap())
                .collect();
            assert_eq!(found, expected, "{}", case.name);
            assert_eq!(report.findings.len(), expected.len());
            assert_eq!(
                finding.location.level,
                Some(level.min(t.header.tree_level) - 1)
            );
        }
        case.assert_repair_default(&all());
    }
}

#[test]
fn header_journal_size() {
    let case = Case::new("journal too large");
    case.edit_header(|h| h.nr_journal_chunks = COW_CHUNKS as u32);
    let report = case.check();
    case.codes(&report, &[FindingCode::JournalTooLarge]);
    assert_eq!(report.findings[0].location, header_field(36));
    case.assert_repair_default(&all());

    // A smaller journal: its last chunks become data chunks marked in use
    // that nothing references.
    let case = Case::new("journal shrunk");
    case.edit_header(|h| h.nr_journal_chunks = 1);
    let report = case.check();
    // The journal superblock mkcow wrote still names the old size.
    case.codes(
        &report,
        &[
            FindingCode::ChunkLeaked,
            FindingCode::JournalSuperblockDamaged,
        ],
    );
    let leaked = report
        .findings
        .iter()
        .find(|f| f.code == FindingCode::ChunkLeaked)
        .expect("listed above");
    let data_start = template().geometry.data_start();
    assert_eq!(
        leaked.location,
        Location::run(data_start - (JOURNAL - 1), JOURNAL - 1)
    );
    case.assert_repair_default(&all());

    // A larger one swallows the first tree blocks and data chunks.
    let case = Case::new("journal grown");
    case.edit_header(|h| h.nr_journal_chunks = JOURNAL as u32 + 8);
    let report = case.check();
    assert!(report.has_errors(), "{:#?}", report.findings);
    // A sound header's journal is trusted: what now lies in the journal (a
    // leaf's records, records whose data is there) is dropped, and said.
    let swallowed = &(data_start..data_start + 8);
    let t = template();
    let lost: Vec<Record> = t
        .leaves
        .iter()
        .flat_map(|l| {
            let whole = swallowed.contains(&l.at.chunk);
            l.records
                .iter()
                .filter(move |r| whole || swallowed.contains(&r.1.chunk))
                .copied()
        })
        .collect();
    assert!(!lost.is_empty());
    let repair = case.assert_repair_default(&all_but(&lost));
    assert_eq!(repair.journal_source, repair::Source::Header);
    assert!(repair.records_unknown);
    // Given the journal size, everything is kept.
    let given = RepairOptions {
        journal_chunks: Some(JOURNAL),
        ..RepairOptions::default()
    };
    let repair = case.assert_repair(&given, &all());
    assert_eq!(repair.journal_source, repair::Source::Option);
}

#[test]
fn header_flags_and_tail() {
    let case = Case::new("valid=0");
    case.edit_header(|h| h.valid = 0);
    let report = case.check();
    case.codes(&report, &[FindingCode::Invalidated]);
    assert_eq!(report.findings[0].location, header_field(4));
    let marked = RepairOptions {
        mark_valid: true,
        ..RepairOptions::default()
    };
    assert!(case.assert_repair(&marked, &all()).output_valid);

    let case = Case::new("valid=7");
    case.edit_header(|h| h.valid = 7);
    let report = case.check();
    case.codes(&report, &[FindingCode::ValidFlagUnusual]);
    case.assert_repair_default(&all());

    let case = Case::new("tail");
    case.poke(300, &[1]);
    let report = case.check();
    case.codes(&report, &[FindingCode::HeaderTrailingGarbage]);
    assert_eq!(report.findings[0].location, header_field(300));
    case.assert_repair_default(&all());
}

// ---------------------------------------------------------------- bitmap

#[test]
fn bitmap_chunk_zeroed() {
    let t = template();
    let case = Case::new("bitmap zeroed");
    case.zero_chunk(1);
    let report = case.check();
    case.codes(
        &report,
        &[
            FindingCode::ReservedChunkNotMarked,
            FindingCode::TreeChunkNotMarked,
            FindingCode::CowChunkNotMarked,
            FindingCode::FindingsSuppressed,
        ],
    );
    let reserved: Vec<&Location> = report
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::ReservedChunkNotMarked)
        .map(|f| &f.location)
        .collect();
    let journal_start = t.geometry.journal_start();
    assert_eq!(
        reserved,
        vec![
            &Location::run(0, 1),
            &Location::run(1, journal_start - 1),
            &Location::run(journal_start, JOURNAL),
        ]
    );
    let root_unmarked = case.first(&report, FindingCode::TreeChunkNotMarked);
    assert_eq!(root_unmarked.location, block_location(&root().at));
    case.assert_repair_default(&all());
}

#[test]
fn bitmap_bits_flipped() {
    let t = template();
    let leaf = middle_leaf();
    let (origin, record) = leaf.records[0];
    let case = Case::new("record chunk unmarked");
    case.mark(record.chunk, false);
    let report = case.check();
    case.codes(&report, &[FindingCode::CowChunkNotMarked]);
    assert_eq!(
        report.findings[0].location,
        record_location(leaf, 0, 0, record)
    );
    assert_eq!(report.findings[0].location.old_chunk, Some(origin));
    case.assert_repair_default(&all());

    let case = Case::new("leaf unmarked");
    case.mark(leaf.at.chunk, false);
    let report = case.check();
    case.codes(&report, &[FindingCode::TreeChunkNotMarked]);
    assert_eq!(report.findings[0].location, block_location(&leaf.at));
    case.assert_repair_default(&all());

    let device = Device::open(t.fixture.cow_path(), Access::ReadOnly).unwrap();
    let bitmap = ChunkBitmap::load(&device, &t.geometry).unwrap();
    let free = bitmap
        .next_free(t.geometry.data_start(), t.geometry.nr_chunks)
        .unwrap();
    let case = Case::new("free chunk marked");
    case.mark(free, true);
    let report = case.check();
    case.codes(&report, &[FindingCode::ChunkLeaked]);
    assert_eq!(report.findings[0].location, Location::run(free, 1));
    assert_eq!(report.findings[0].severity, Severity::Warning);
    case.assert_repair_default(&all());

    let bits = t.geometry.nr_bitmap_chunks * t.geometry.bits_per_bitmap();
    assert!(bits > COW_CHUNKS);
    let case = Case::new("bit past the end");
    case.mark(COW_CHUNKS + 3, true);
    let report = case.check();
    case.codes(&report, &[FindingCode::BitmapBitsPastEnd]);
    assert_eq!(
        report.findings[0].location,
        Location::run(COW_CHUNKS + 3, 1)
    );
    case.assert_repair_default(&all());
}

// ---------------------------------------------------------------- nodes

#[test]
fn node_count() {
    let node = middle_node();
    for count in [0u32, 32, u32::MAX] {
        let case = Case::new(format!("node count {count}"));
        case.poke_u32(node.at.chunk, 0, count);
        let report = case.check();
        case.codes(&report, &[FindingCode::NodeBadCount]);
        assert_eq!(report.findings[0].location, block_location(&node.at));
        assert_eq!(report.summary.leaked_chunks, None);
        // The leaves under the node are found by the scan.
        let repair = case.assert_repair_default(&all());
        assert_eq!(repair.lost_ranges.len(), 1);
        assert_all_recovered(&repair, &case.name);
    }
}

/// The leaf at `chunk` now gets a key range none of its entries is in: each
/// of them is reported there, and nothing else below the node.
fn assert_leaf_out_of_its_range(case: &Case, report: &CheckReport, chunk: u64) {
    let leaf = template()
        .leaves
        .iter()
        .find(|l| l.at.chunk == chunk)
        .unwrap();
    let misplaced: Vec<&cowfmt::Finding> = report
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::LeafEntryOutOfRange)
        .collect();
    assert_eq!(misplaced.len(), leaf.leaf.count(), "{}", case.name);
    for (i, f) in misplaced.iter().enumerate() {
        assert_eq!(f.location.chunk, Some(chunk), "{}", case.name);
        assert_eq!(f.location.entry, Some(i as u64), "{}", case.name);
        assert_eq!(f.location.old_chunk, Some(leaf.leaf.origin_of(i)));
    }
}

#[test]
fn node_keys_out_of_order() {
    let node = middle_node();
    assert!(node.node.entries.len() >= 3);
    let case = Case::new("node keys swapped");
    case.edit_node(node.at.chunk, |n| {
        let (a, b) = (n.entries[1].key, n.entries[2].key);
        n.entries[1].key = b;
        n.entries[2].key = a;
    });
    let report = case.check();
    let finding = case.first(&report, FindingCode::NodeKeysOutOfOrder);
    assert_eq!(
        finding.location,
        Location {
            old_chunk: Some(node.node.entries[1].key),
            ..entry_location(&node.at, 2)
        }
    );
    // Child 1's range is now key 2..key 1: empty.
    case.codes(
        &report,
        &[
            FindingCode::NodeKeysOutOfOrder,
            FindingCode::LeafEntryOutOfRange,
        ],
    );
    assert_leaf_out_of_its_range(&case, &report, node.node.entries[1].chunk);
    case.assert_repair_default(&all());
}

#[test]
fn node_key_out_of_range() {
    let node = middle_node();
    let case = Case::new("node key past its range");
    let last = node.node.entries.len() - 1;
    let hi = node.at.hi;
    assert_ne!(hi, u64::MAX, "the middle node has an upper bound");
    case.edit_node(node.at.chunk, |n| n.entries[last].key = hi + 10);
    let report = case.check();
    let finding = case.first(&report, FindingCode::NodeKeyOutOfRange);
    assert_eq!(
        finding.location,
        Location {
            old_chunk: Some(hi + 10),
            ..entry_location(&node.at, last)
        }
    );
    case.codes(
        &report,
        &[
            FindingCode::NodeKeyOutOfRange,
            FindingCode::LeafEntryOutOfRange,
        ],
    );
    assert_leaf_out_of_its_range(&case, &report, node.node.entries[last].chunk);
    case.assert_repair_default(&all());
}

#[test]
fn node_child_out_of_range() {
    let node = middle_node();
    for child in [COW_CHUNKS + 1, 2] {
        let case = Case::new(format!("node child {child}"));
        case.edit_node(node.at.chunk, |n| n.entries[1].chunk = child);
        let report = case.check();
        let finding = case.first(&report, FindingCode::TreeChunkOutOfRange);
        let leaf = template()
            .leaves
            .iter()
            .find(|l| l.at.parent == Some((node.at.chunk, 1)))
            .unwrap();
        assert_eq!(
            finding.location,
            block_location(&BlockAt {
                chunk: child,
                ..leaf.at
            })
        );
        // The leaf it pointed at is now marked but unreferenced... but the
        // tree was not read whole, so nothing is called leaked.
        case.codes(&report, &[FindingCode::TreeChunkOutOfRange]);
        // The scan finds the leaf the entry no longer points at.
        let repair = case.assert_repair_default(&all());
        assert_eq!(repair.scan.map(|s| s.leaves_used), Some(1), "{}", case.name);
    }
}

#[test]
fn a_zeroed_node_and_a_zeroed_root() {
    for (name, node) in [("zeroed node", middle_node()), ("zeroed root", root())] {
        let case = Case::new(name);
        case.zero_chunk(node.at.chunk);
        let report = case.check();
        case.codes(&report, &[FindingCode::NodeBadCount]);
        assert_eq!(report.findings[0].location, block_location(&node.at));
        // Every leaf below is found by the scan: nothing is lost.
        let below = records_under(&node.at).len() as u64;
        let repair = case.assert_repair_default(&all());
        let recovered: u64 = repair.lost_ranges.iter().map(|l| l.recovered_records).sum();
        assert_eq!(recovered, below, "{name}");
        assert_all_recovered(&repair, name);
    }
}

// ---------------------------------------------------------------- leaves

#[test]
fn leaf_header_fields() {
    let leaf = middle_leaf();
    let count = leaf.leaf.count() as u64;
    let cases: [(&str, u64, u32, FindingCode); 6] = [
        ("leaf magic", 0, 0x0000_1eae, FindingCode::LeafBadMagic),
        ("leaf version", 0, 0x0001_1eaf, FindingCode::LeafBadVersion),
        ("leaf count", 4, 1000, FindingCode::LeafBadCount),
        (
            "leaf offset misaligned",
            24,
            500,
            FindingCode::LeafBadOffsets,
        ),
        (
            "leaf offset past the chunk",
            24,
            520,
            FindingCode::LeafBadOffsets,
        ),
        (
            "leaf sentinel",
            24 + 8 * count,
            CHUNK as u32 - 16,
            FindingCode::LeafBadSentinel,
        ),
    ];
    for (name, at, value, code) in cases {
        let case = Case::new(name);
        case.poke_u32(leaf.at.chunk, at, value);
        let report = case.check();
        case.codes(&report, &[code]);
        assert_eq!(
            report.findings[0].location,
            block_location(&leaf.at),
            "{name}"
        );
        let repair = case.assert_repair_default(&all_but(&leaf.records));
        assert_leaf_lost(&repair, leaf, name);
    }
}

#[test]
fn a_zeroed_leaf() {
    let leaf = middle_leaf();
    let case = Case::new("zeroed leaf");
    case.zero_chunk(leaf.at.chunk);
    let report = case.check();
    case.codes(&report, &[FindingCode::LeafBadMagic]);
    assert_eq!(report.findings[0].location, block_location(&leaf.at));
    // Exactly that leaf's records are lost, and nothing else.
    let repair = case.assert_repair_default(&all_but(&leaf.records));
    assert_leaf_lost(&repair, leaf, "zeroed leaf");
}

/// A repair that lost exactly `leaf` says so: one lost range, the leaf's
/// own, unresolved, and the bitmap bound on the unknown records is exactly
/// its record count (docs/cowrepair.md, "What was lost").
fn assert_leaf_lost(repair: &RepairReport, leaf: &LeafBlock, name: &str) {
    let range = repair::OriginRange::new(leaf.at.lo, leaf.at.hi);
    assert!(repair.records_unknown, "{name}");
    assert_eq!(
        repair.lost_ranges.len(),
        1,
        "{name}: {:#?}",
        repair.lost_ranges
    );
    assert_eq!(repair.lost_ranges[0].range, range, "{name}");
    assert_eq!(repair.lost_ranges[0].block, Some(leaf.at.chunk), "{name}");
    assert_eq!(repair.lost_ranges[0].unresolved, vec![range], "{name}");
    assert_eq!(
        repair.unknown_records_at_most,
        Some(leaf.records.len() as u64),
        "{name}"
    );
}

/// A repair whose lost blocks were all rebuilt from scanned leaves says that
/// nothing is unresolved and that no record can be missing.
fn assert_all_recovered(repair: &RepairReport, name: &str) {
    assert!(!repair.lost_ranges.is_empty(), "{name}");
    assert!(
        repair.lost_ranges.iter().all(|l| l.unresolved.is_empty()),
        "{name}: {:#?}",
        repair.lost_ranges
    );
    assert_eq!(repair.unknown_records_at_most, Some(0), "{name}");
}

/// The map entry of record `index` of `leaf`.
fn entry_of(leaf: &LeafBlock, index: usize) -> usize {
    (0..leaf.leaf.count())
        .find(|&i| leaf.leaf.record_range(i).contains(&index))
        .unwrap()
}

#[test]
fn share_masks_empty_or_outside_snapmask() {
    let leaf = middle_leaf();
    let (_, record) = leaf.records[1];
    let entry = entry_of(leaf, 1);
    for (name, share, code) in [
        ("share mask 0", 0u64, FindingCode::ShareMaskEmpty),
        (
            "share mask outside snapmask",
            record.share | 1 << 50,
            FindingCode::ShareMaskOutsideSnapmask,
        ),
    ] {
        let case = Case::new(name);
        let bad = Exception { share, ..record };
        case.poke_record(leaf, 1, bad);
        let report = case.check();
        assert_eq!(
            case.first(&report, code).location,
            record_location(leaf, entry, 1, bad)
        );
        // The using_mask on disk no longer matches the masks, unless another
        // record of the leaf carries the lost bits.
        let others = leaf
            .records
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 1)
            .fold(0, |m, (_, r)| m | r.1.share);
        if others | share == leaf.leaf.stored_using_mask {
            case.codes(&report, &[code]);
        } else {
            case.codes(&report, &[code, FindingCode::UsingMaskMismatch]);
            assert_eq!(
                case.first(&report, FindingCode::UsingMaskMismatch).location,
                Location {
                    mask: Some(leaf.leaf.stored_using_mask),
                    ..block_location(&leaf.at)
                }
            );
        }
        // The record goes (docs/cowrepair.md): no snapshot can be trusted to
        // read it; the other records of its origin chunk stay.
        let repair = case.assert_repair_default(&all_but(&[leaf.records[1]]));
        assert_eq!(repair.dropped.len(), 1, "{name}");
        // Each snapshot its mask names on disk loses it (a zeroed mask names
        // none, so no snapshot is counted as losing it).
        for tally in &repair.per_snapshot {
            let saw = share & mask::bit(tally.id) != 0;
            assert_eq!(tally.lost, u64::from(saw), "{name}: snapshot {}", tally.id);
        }
        assert_eq!(
            (repair.dropped[0].origin, repair.dropped[0].chunk),
            (leaf.records[1].0, record.chunk)
        );
    }
}

/// The losses each snapshot must report: one per mask of `masks` naming it.
fn assert_lost_per_snapshot(repair: &RepairReport, masks: &[u64], name: &str) {
    for tally in &repair.per_snapshot {
        let lost = masks
            .iter()
            .filter(|&&m| m & mask::bit(tally.id) != 0)
            .count() as u64;
        assert_eq!(tally.lost, lost, "{name}: snapshot {}", tally.id);
    }
}

#[test]
fn cow_chunk_used_twice() {
    let a = middle_leaf();
    let b = later_leaf();
    // The damage in the later record (in origin order), then in the earlier:
    // either way nothing tells which record the chunk belongs to, so both go
    // (docs/cowrepair.md); neither snapshot may read the other's data.
    for (name, damaged, owner) in [
        ("cow chunk duplicate, later record damaged", b, a),
        ("cow chunk duplicate, earlier record damaged", a, b),
    ] {
        let (_, owned) = owner.records[0];
        let (_, victim) = damaged.records[0];
        let case = Case::new(name);
        let bad = Exception {
            chunk: owned.chunk,
            ..victim
        };
        case.poke_record(damaged, 0, bad);
        let report = case.check();
        case.codes(
            &report,
            &[FindingCode::CowChunkDuplicate, FindingCode::ChunkLeaked],
        );
        // The checker names the second user in walk order: the later leaf's.
        let second = if damaged.at.chunk == b.at.chunk {
            bad
        } else {
            owned
        };
        assert_eq!(
            case.first(&report, FindingCode::CowChunkDuplicate).location,
            record_location(b, 0, 0, second),
            "{name}"
        );
        assert_eq!(
            case.first(&report, FindingCode::ChunkLeaked).location,
            Location::run(victim.chunk, 1),
            "{name}"
        );
        let repair = case.assert_repair_default(&all_but(&[a.records[0], b.records[0]]));
        assert_eq!(
            repair.dropped_for(repair::DropReason::ChunkUsedTwice),
            2,
            "{name}"
        );
        assert_eq!(repair.dropped_total, 2, "{name}");
        assert_lost_per_snapshot(&repair, &[victim.share, owned.share], name);
    }
}

/// A map entry with two records or more whose record `multi` (0: the first,
/// 1: the second) names two snapshots or more.
fn entry_with_shared_record(multi: usize) -> (&'static LeafBlock, usize) {
    template()
        .leaves
        .iter()
        .find_map(|l| {
            (0..l.leaf.count())
                .find(|&e| {
                    let records = l.leaf.records_of(e);
                    records.len() >= 2 && records[multi].share.count_ones() >= 2
                })
                .map(|e| (l, e))
        })
        .expect("an origin chunk whose records include a shared one")
}

/// Record `damaged` (0 or 1) of an origin chunk's first two records gets the
/// lowest snapshot bit of the other, which names two snapshots or more. That
/// snapshot then has two copies and nothing tells which it read: its bit is
/// removed from both records (docs/cowrepair.md), the rest stays.
fn assert_overlap_repaired(name: &str, damaged: usize) {
    let (leaf, entry) = entry_with_shared_record(1 - damaged);
    let first = leaf.leaf.record_range(entry).start;
    let (origin, d) = leaf.records[first + damaged];
    let (_, u) = leaf.records[first + 1 - damaged];
    let bit = u.share & u.share.wrapping_neg();
    let case = Case::new(name);
    let bad = Exception {
        share: d.share | bit,
        ..d
    };
    case.poke_record(leaf, first + damaged, bad);
    let report = case.check();
    case.codes(&report, &[FindingCode::ShareMasksOverlap]);
    let later = if damaged == 1 { bad } else { u };
    assert_eq!(
        report.findings[0].location,
        record_location(leaf, entry, first + 1, later),
        "{name}"
    );
    let mut survivors = all_but(&[leaf.records[first], leaf.records[first + 1]]);
    survivors.push((origin, d));
    survivors.push((
        origin,
        Exception {
            share: u.share & !bit,
            ..u
        },
    ));
    let repair = case.assert_repair_default(&survivors);
    assert_eq!(repair.dropped_total, 0, "{name}");
    assert_eq!(repair.masks_trimmed, 2, "{name}");
    assert_lost_per_snapshot(&repair, &[bit], name);
}

#[test]
fn share_masks_overlap_after_damage_to_the_later_record() {
    assert_overlap_repaired("overlap, later record damaged", 1);
}

#[test]
fn share_masks_overlap_after_damage_to_the_earlier_record() {
    assert_overlap_repaired("overlap, earlier record damaged", 0);
}

#[test]
fn share_masks_overlap_on_both_sides_of_a_damaged_record() {
    // Three records; the middle one takes a bit of each neighbour (and loses
    // its own): both bits are uncertain, the middle record has none left.
    let (leaf, entry) = template()
        .leaves
        .iter()
        .find_map(|l| {
            (0..l.leaf.count())
                .find(|&e| l.leaf.records_of(e).len() >= 3)
                .map(|e| (l, e))
        })
        .expect("an origin chunk with three records");
    let first = leaf.leaf.record_range(entry).start;
    let [(origin, r0), (_, r1), (_, r2)] = [0, 1, 2].map(|i| leaf.records[first + i]);
    let (b0, b2) = (
        r0.share & r0.share.wrapping_neg(),
        r2.share & r2.share.wrapping_neg(),
    );
    let case = Case::new("overlap around a damaged middle record");
    let bad = Exception {
        share: b0 | b2,
        ..r1
    };
    case.poke_record(leaf, first + 1, bad);
    let report = case.check();
    let overlaps: Vec<&Location> = report
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::ShareMasksOverlap)
        .map(|f| &f.location)
        .collect();
    assert_eq!(
        overlaps,
        vec![
            &record_location(leaf, entry, first + 1, bad),
            &record_location(leaf, entry, first + 2, r2),
        ]
    );
    let mut survivors = all_but(&[r0, r1, r2].map(|r| (origin, r)));
    for (r, bit) in [(r0, b0), (r2, b2)] {
        if r.share != bit {
            survivors.push((
                origin,
                Exception {
                    share: r.share & !bit,
                    ..r
                },
            ));
        }
    }
    let emptied = [(r0, b0), (r2, b2)]
        .iter()
        .filter(|(r, bit)| r.share == *bit)
        .count() as u64;
    let repair = case.assert_repair_default(&survivors);
    assert_eq!(
        repair.dropped_for(repair::DropReason::MaskOverlap),
        1 + emptied
    );
    assert_lost_per_snapshot(&repair, &[b0, b2], &case.name);
}

// ---------------------------------------------------------------- random bytes

/// What a random-bytes target chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Header,
    Bitmap,
    Node,
    Leaf,
}

/// Whether `after` over `before` changes what a reader decodes from a chunk
/// of `target`: every byte of the header (its tail must be zero) and every
/// bit of the bitmap counts; a node or leaf counts as it decodes (their free
/// space is never read).
fn decoded_changed(target: Target, before: &[u8], after: &[u8]) -> bool {
    match target {
        Target::Header | Target::Bitmap => before != after,
        Target::Node => Node::decode(before).ok() != Node::decode(after).ok(),
        Target::Leaf => Leaf::decode(before).ok() != Leaf::decode(after).ok(),
    }
}

/// Whether `finding` is located in `chunk` of `target`: the header, node or
/// leaf itself, or, for a bitmap chunk, a chunk (or run) whose bit it holds.
fn located_in(finding: &cowfmt::Finding, target: Target, chunk: u64) -> bool {
    let at = &finding.location;
    if target != Target::Bitmap {
        return at.chunk == Some(chunk);
    }
    let bits = template().geometry.bits_per_bitmap();
    let covered = (chunk - 1) * bits..chunk * bits;
    let run = at.chunk.map(|c| (c, c + at.count.unwrap_or(1)));
    run.is_some_and(|(a, b)| a < covered.end && b > covered.start)
        || at.new_chunk.is_some_and(|c| covered.contains(&c))
}

/// Random bytes over the header, a bitmap chunk, a node or a leaf: whenever
/// they change what decodes there, cowcheck reports something located in that
/// chunk, and the repair loses at most the leaf's records. (Journal chunks are
/// not targets: cowcheck does not read the journal's contents, which are
/// reserved and zero until the journal exists.)
#[test]
fn random_bytes_over_any_metadata_chunk() {
    let t = template();
    let nodes: Vec<u64> = t.nodes.iter().map(|n| n.at.chunk).collect();
    let leaves: Vec<u64> = t.leaves.iter().map(|l| l.at.chunk).collect();
    let bitmap: Vec<u64> = (1..t.geometry.journal_start()).collect();
    let mut changed = 0;
    for seed in 0..48u64 {
        let mut rng = Rng::new(seed);
        let (target, chunks): (Target, &[u64]) = match seed % 4 {
            0 => (Target::Header, &[0]),
            1 => (Target::Bitmap, &bitmap),
            2 => (Target::Node, &nodes),
            _ => (Target::Leaf, &leaves),
        };
        let chunk = chunks[rng.below(chunks.len() as u64) as usize];
        let mut data = vec![0u8; CHUNK as usize];
        rng.fill(&mut data);
        let case = Case::new(format!("seed {seed}: random bytes over chunk {chunk}"));
        let before = case.read_chunk(chunk);
        case.write_chunk(chunk, &data);
        let report = case.check();
        let damaged = decoded_changed(target, &before, &data);
        if damaged {
            changed += 1;
            assert!(
                report.findings.iter().any(|f| located_in(f, target, chunk)),
                "{}: no finding located in the damaged {target:?} chunk: {:#?}",
                case.name,
                report.findings
            );
        }
        let lost: Vec<Record> = t
            .leaves
            .iter()
            .find(|l| damaged && l.at.chunk == chunk)
            .map_or_else(Vec::new, |l| l.records.clone());
        case.assert_repair_default(&all_but(&lost));
    }
    assert!(
        changed >= 40,
        "only {changed} of 48 random chunks changed a decoded structure"
    );
}
