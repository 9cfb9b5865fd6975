//! Every cowcheck invariant of the shared store, broken on purpose: each test
//! damages a clean store and asserts the finding's code and location.

use crate::corruption_support::first;

use cowfmt::finding::Location;
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::check::{check, CheckOptions, CheckReport};
use cowfmt::shared::format::format_store;
use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::leaf::MapEntry;
use cowfmt::shared::{Exception, Leaf, Node, NodeEntry, SharedHeader};
use cowfmt::{Device, Error, Finding, FindingCode, Severity};

/// Chunk size of the hand-built stores: 512 bytes, so nodes hold 31 entries.
const SECTORS: u64 = 1;
const CHUNK: u64 = 512;
/// Chunks of the hand-built stores (header, 1 bitmap, 4 journal, data from 6).
const CHUNKS: u64 = 512;
const JOURNAL: u64 = 4;
const DATA_START: u64 = 6;
/// Snapshots 0, 1 and 2 exist in the sample stores.
const SNAPMASK: u64 = 0b111;
/// Key range of each sample leaf.
const SPAN: u64 = 100;

/// A store image in a temporary directory, with where its tree blocks are.
struct Store {
    _dir: tempfile::TempDir,
    device: Device,
    geometry: Geometry,
    /// Leaf chunks in key order.
    leaves: Vec<u64>,
    /// Node chunks per level (index 0 = level 1), in key order.
    nodes: Vec<Vec<u64>>,
    root: u64,
}

/// The sample leaf `k`: origin chunks `100k + 10` (records 0 and 1: snapshots
/// 1-2 in chunk `d + 1`, snapshot 0 in chunk `d`) and `100k + 50` (record 2:
/// all three in chunk `d + 2`), with `d = 100 + 3k`. Odd leaves have their own
/// base_chunk, even ones base 0 (both are valid).
fn sample_leaf(k: u64) -> Leaf {
    let base = if k % 2 == 1 { SPAN * k } else { 0 };
    let lo = SPAN * k;
    let data = 100 + 3 * k;
    let mut leaf = Leaf::new(base);
    leaf.insert_entry(0, (lo + 10 - base) as u32, exc(0b001, data));
    leaf.push_record(0, exc(0b110, data + 1));
    leaf.insert_entry(1, (lo + 50 - base) as u32, exc(0b111, data + 2));
    leaf
}

fn exc(share: u64, chunk: u64) -> Exception {
    Exception { share, chunk }
}

/// A clean store whose tree has `levels` node levels, fanout 2, and 2^levels
/// sample leaves.
fn sample(levels: u32) -> Store {
    let leaves = (0..1u64 << levels).map(sample_leaf).collect();
    build(SECTORS, CHUNKS, JOURNAL, levels, leaves, SNAPMASK)
}

/// Formats an image and writes a tree of `levels` node levels over `leaves`
/// (2^levels of them; leaf k covers keys from 100k), every node with two
/// children. Tree blocks are allocated from the data start; the bitmap marks
/// exactly the reserved chunks, the tree and the records' chunks.
fn build(
    sectors: u64,
    chunks: u64,
    journal: u64,
    levels: u32,
    leaves: Vec<Leaf>,
    snapmask: u64,
) -> Store {
    assert_eq!(leaves.len(), 1 << levels);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.cow");
    let device = Device::create_or_extend(&path, chunks * sectors * 512).unwrap();
    format_store(&device, sectors, journal).unwrap();
    let geometry = Geometry::new(device.size_bytes(), sectors as u32, journal);
    let mut bitmap = ChunkBitmap::empty(&geometry);
    bitmap.set_range(0, geometry.data_start());
    let mut next = geometry.data_start();
    let mut buf = vec![0u8; geometry.chunk_bytes as usize];
    let mut level: Vec<(u64, u64)> = Vec::new();
    for (k, leaf) in leaves.iter().enumerate() {
        leaf.encode(&mut buf);
        device.write_chunk(next, &buf).unwrap();
        bitmap.set(next, true);
        for r in &leaf.records {
            bitmap.set(r.chunk, true);
        }
        level.push((SPAN * k as u64, next));
        next += 1;
    }
    let leaf_chunks = level.iter().map(|&(_, c)| c).collect();
    let mut nodes = Vec::new();
    for _ in 0..levels {
        let mut up = Vec::new();
        for pair in level.chunks(2) {
            let node = Node {
                entries: pair
                    .iter()
                    .map(|&(key, chunk)| NodeEntry { key, chunk })
                    .collect(),
                unused: 0,
            };
            node.encode(&mut buf);
            device.write_chunk(next, &buf).unwrap();
            bitmap.set(next, true);
            up.push((pair[0].0, next));
            next += 1;
        }
        nodes.push(up.iter().map(|&(_, c)| c).collect());
        level = up;
    }
    let root = level[0].1;
    bitmap.write_dirty(&device).unwrap();
    let store = Store {
        _dir: dir,
        device,
        geometry,
        leaves: leaf_chunks,
        nodes,
        root,
    };
    store.edit_header(|h| {
        h.root_tree_chunk = root;
        h.tree_level = levels;
        h.snapmask = snapmask;
    });
    store
}

impl Store {
    fn header(&self) -> SharedHeader {
        let mut bytes = [0u8; 40];
        self.device.read_at(&mut bytes, 0, String::new).unwrap();
        SharedHeader::decode(&bytes).unwrap()
    }

    fn edit_header(&self, edit: impl FnOnce(&mut SharedHeader)) {
        let mut header = self.header();
        edit(&mut header);
        let mut bytes = [0u8; 40];
        header.encode(&mut bytes);
        self.poke(0, &bytes);
    }

    fn poke(&self, offset: u64, bytes: &[u8]) {
        self.device.write_at(bytes, offset).unwrap();
    }

    fn poke_u32(&self, chunk: u64, at: u64, value: u32) {
        self.poke(chunk * self.geometry.chunk_bytes + at, &value.to_le_bytes());
    }

    fn poke_u64(&self, chunk: u64, at: u64, value: u64) {
        self.poke(chunk * self.geometry.chunk_bytes + at, &value.to_le_bytes());
    }

    fn read(&self, chunk: u64) -> Vec<u8> {
        let mut buf = vec![0u8; self.geometry.chunk_bytes as usize];
        self.device.read_chunk(chunk, &mut buf).unwrap();
        buf
    }

    fn write(&self, chunk: u64, buf: &[u8]) {
        self.device.write_chunk(chunk, buf).unwrap();
    }

    fn edit_leaf(&self, chunk: u64, edit: impl FnOnce(&mut Leaf)) {
        let mut leaf = Leaf::decode(&self.read(chunk)).unwrap();
        edit(&mut leaf);
        let mut buf = vec![0u8; self.geometry.chunk_bytes as usize];
        leaf.encode(&mut buf);
        self.write(chunk, &buf);
    }

    fn edit_node(&self, chunk: u64, edit: impl FnOnce(&mut Node)) {
        let mut node = Node::decode(&self.read(chunk)).unwrap();
        edit(&mut node);
        let mut buf = vec![0u8; self.geometry.chunk_bytes as usize];
        node.encode(&mut buf);
        self.write(chunk, &buf);
    }

    fn mark(&self, chunk: u64, used: bool) {
        let mut bitmap = ChunkBitmap::load(&self.device, &self.geometry).unwrap();
        bitmap.set(chunk, used);
        bitmap.write_dirty(&self.device).unwrap();
    }

    fn check_with(&self, options: CheckOptions) -> CheckReport {
        check(&self.device, &options).unwrap()
    }

    fn check(&self) -> CheckReport {
        self.check_with(CheckOptions::default())
    }
}

fn codes(report: &CheckReport) -> Vec<FindingCode> {
    report.findings.iter().map(|f| f.code).collect()
}

/// Asserts that the report's findings have exactly `expected` codes, in order.
fn assert_codes_in_order(report: &CheckReport, expected: &[FindingCode]) {
    assert_eq!(codes(report), expected, "{:#?}", report.findings);
}

/// Asserts that the finding's message contains `text`.
fn assert_says(finding: &Finding, text: &str) {
    assert!(finding.message.contains(text), "{}", finding.message);
}

/// The one finding of the report, which must have `code`.
fn only(report: &CheckReport, code: FindingCode) -> Finding {
    assert_eq!(codes(report), vec![code], "{:#?}", report.findings);
    report.findings[0].clone()
}

/// The location of a block at `chunk` of `level` covering `lo..hi`, pointed at by
/// entry `entry` of node `parent`.
fn block_at(chunk: u64, level: u32, lo: u64, hi: Option<u64>, parent: u64, entry: u64) -> Location {
    Location {
        chunk: Some(chunk),
        level: Some(level),
        key_lo: Some(lo),
        key_hi: hi,
        parent: Some(parent),
        entry: Some(entry),
        ..Location::default()
    }
}

/// The location of entry `entry` of the block at `chunk`.
fn entry_of(chunk: u64, level: u32, lo: u64, hi: Option<u64>, entry: u64) -> Location {
    Location {
        chunk: Some(chunk),
        level: Some(level),
        key_lo: Some(lo),
        key_hi: hi,
        entry: Some(entry),
        ..Location::default()
    }
}

// ---------------------------------------------------------------- clean stores

#[test]
fn a_freshly_formatted_store_is_clean() {
    for (sectors, chunks, journal) in [
        (1u64, 64u64, 0u64),
        (8, 1000, 16),
        (2048, 8, 1),
        (1, 5000, 3),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let device =
            Device::create_or_extend(dir.path().join("s.cow"), chunks * sectors * 512).unwrap();
        format_store(&device, sectors, journal).unwrap();
        let report = check(&device, &CheckOptions::default()).unwrap();
        assert!(
            report.is_clean(),
            "{sectors}/{chunks}/{journal}: {:#?}",
            report.findings
        );
        let s = &report.summary;
        assert_eq!(
            (s.nodes, s.leaves, s.records, s.tree_level, s.snapshots),
            (1, 1, 0, 1, 0)
        );
        assert_eq!(s.device_chunks, Some(chunks));
        assert_eq!(s.leaked_chunks, Some(0));
        let data_start = 1 + s.bitmap_chunks.unwrap() + journal;
        assert_eq!(s.used_chunks, Some(data_start + 2));
        assert_eq!(s.free_chunks, Some(chunks - data_start - 2));
    }
}

#[test]
fn hand_built_trees_are_clean_with_their_figures() {
    for levels in 1..=3 {
        let store = sample(levels);
        let report = store.check();
        assert!(report.is_clean(), "level {levels}: {:#?}", report.findings);
        let leaves = 1u64 << levels;
        let s = &report.summary;
        assert_eq!(s.tree_level, levels);
        assert_eq!(s.snapshots, 3);
        assert_eq!(s.leaves, leaves);
        assert_eq!(s.nodes, leaves - 1);
        assert_eq!(s.records, 3 * leaves);
        assert_eq!(s.origin_chunks, 2 * leaves);
        assert_eq!(s.data_chunks, 3 * leaves);
        assert_eq!(s.leaked_chunks, Some(0));
        assert_eq!(s.chunk_size, Some(1));
        assert_eq!(
            s.used_chunks,
            Some(DATA_START + 2 * leaves - 1 + 3 * leaves)
        );
    }
}

// ---------------------------------------------------------------- header

#[test]
fn a_wrong_magic_is_not_a_store_unless_the_kind_is_forced() {
    let store = sample(1);
    store.edit_header(|h| h.magic = 0xdead_beef);
    let err = check(&store.device, &CheckOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err}");
    let forced = CheckOptions {
        kind_forced: true,
        ..CheckOptions::default()
    };
    let finding = only(&store.check_with(forced.clone()), FindingCode::BadMagic);
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(
        finding.location,
        Location {
            chunk: Some(0),
            offset: Some(0),
            ..Location::default()
        }
    );
    assert_says(&finding, "0xdeadbeef");
    store.edit_header(|h| h.magic = 0);
    assert!(check(&store.device, &CheckOptions::default()).is_err());
    let finding = only(&store.check_with(forced), FindingCode::BadMagic);
    assert_says(&finding, "unformatted");
}

#[test]
fn header_flags_and_version() {
    let store = sample(1);
    store.edit_header(|h| h.version = 2);
    let finding = only(&store.check(), FindingCode::BadVersion);
    assert_eq!(finding.location.offset, Some(8));
    assert_eq!(finding.severity, Severity::Error);
    store.edit_header(|h| {
        h.version = 1;
        h.valid = 0;
    });
    let finding = only(&store.check(), FindingCode::Invalidated);
    assert_eq!(
        (finding.severity, finding.location.offset),
        (Severity::Warning, Some(4))
    );
    store.edit_header(|h| h.valid = 7);
    let finding = only(&store.check(), FindingCode::ValidFlagUnusual);
    assert_eq!(
        (finding.severity, finding.location.offset),
        (Severity::Warning, Some(4))
    );
}

#[test]
fn bad_chunk_sizes_stop_the_check_unless_one_is_given() {
    let store = sample(1);
    for bad in [0u32, 3, 4096] {
        store.edit_header(|h| h.chunk_size = bad);
        let report = store.check();
        let finding = only(&report, FindingCode::BadChunkSize);
        assert_eq!(finding.location.offset, Some(12), "{bad}");
        assert_eq!(report.summary.chunk_size, None);
        let report = store.check_with(CheckOptions {
            chunk_size_fallback: Some(1),
            ..CheckOptions::default()
        });
        only(&report, FindingCode::BadChunkSize);
        assert_eq!(report.summary.records, 6, "read with the given chunk size");
    }
}

#[test]
fn a_device_too_small_for_header_and_tree() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::create_or_extend(dir.path().join("s.cow"), 2 * 4096).unwrap();
    let header = SharedHeader {
        magic: cowfmt::kind::SHARED_MAGIC,
        valid: 1,
        version: 1,
        chunk_size: 8,
        root_tree_chunk: 2,
        snapmask: 0,
        tree_level: 1,
        nr_journal_chunks: 0,
    };
    device.write_chunk(0, &header.to_chunk(4096)).unwrap();
    let report = check(&device, &CheckOptions::default()).unwrap();
    let finding = only(&report, FindingCode::DeviceTooSmall);
    assert_eq!(finding.location, Location::chunk(0));
}

#[test]
fn a_journal_that_does_not_fit() {
    let store = sample(1);
    store.edit_header(|h| h.nr_journal_chunks = 600);
    let finding = only(&store.check(), FindingCode::JournalTooLarge);
    assert_eq!(finding.location.offset, Some(36));
    store.edit_header(|h| h.nr_journal_chunks = u32::MAX);
    only(&store.check(), FindingCode::JournalTooLarge);
}

#[test]
fn a_root_outside_the_data_range() {
    let store = sample(1);
    for (root, what) in [
        (0u64, "the header"),
        (3, "in the journal"),
        (CHUNKS, "past the end"),
    ] {
        store.edit_header(|h| h.root_tree_chunk = root);
        let report = store.check();
        let finding = only(&report, FindingCode::RootOutOfRange);
        assert_eq!(finding.location.offset, Some(16));
        assert_eq!(finding.location.new_chunk, Some(root));
        assert_says(&finding, what);
        assert_eq!(
            report.summary.leaked_chunks, None,
            "leaks are not guessed without a tree"
        );
    }
}

#[test]
fn impossible_tree_levels() {
    let store = sample(1);
    for level in [0u32, 65, u32::MAX] {
        store.edit_header(|h| h.tree_level = level);
        let finding = only(&store.check(), FindingCode::BadTreeLevel);
        assert_eq!(finding.location.offset, Some(32));
        assert_eq!(finding.location.level, Some(level));
    }
}

#[test]
fn trailing_bytes_in_the_header_chunk() {
    let store = sample(1);
    store.poke(300, &[0x55]);
    let finding = only(&store.check(), FindingCode::HeaderTrailingGarbage);
    assert_eq!(finding.severity, Severity::Warning);
    assert_eq!(finding.location.offset, Some(300));
}

#[test]
fn header_only_reads_nothing_else() {
    let store = sample(1);
    store.poke_u32(store.leaves[0], 0, 0);
    store.mark(0, false);
    let report = store.check_with(CheckOptions {
        header_only: true,
        ..CheckOptions::default()
    });
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.summary.leaves, 0);
    assert_eq!(report.summary.used_chunks, None);
}

// ---------------------------------------------------------------- nodes

#[test]
fn node_counts_that_do_not_decode() {
    let store = sample(2);
    let node = store.nodes[0][1];
    for count in [0u32, 32] {
        store.poke_u32(node, 0, count);
        let report = store.check();
        let finding = only(&report, FindingCode::NodeBadCount);
        assert_eq!(
            finding.location,
            block_at(node, 1, 200, None, store.root, 1)
        );
        assert_says(&finding, "origin chunks 200..");
        assert_eq!(
            report.summary.leaked_chunks, None,
            "the unread subtree is not called leaked"
        );
    }
}

#[test]
fn node_keys_out_of_order() {
    let store = build(
        SECTORS,
        CHUNKS,
        JOURNAL,
        1,
        vec![sample_leaf(0), sample_leaf(1)],
        SNAPMASK,
    );
    // A third child with a key below the second's: 0, 100, 60.
    let extra = 300;
    let mut buf = vec![0u8; CHUNK as usize];
    Leaf::new(0).encode(&mut buf);
    store.write(extra, &buf);
    store.mark(extra, true);
    store.edit_node(store.root, |n| {
        n.entries.push(NodeEntry {
            key: 60,
            chunk: extra,
        })
    });
    let report = store.check();
    let order: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::NodeKeysOutOfOrder)
        .collect();
    assert_eq!(order.len(), 1, "{:#?}", report.findings);
    assert_eq!(
        order[0].location,
        Location {
            old_chunk: Some(60),
            ..entry_of(store.root, 1, 0, None, 2)
        }
    );
    // The second leaf's range became 100..60: its entries are out of range too.
    assert!(codes(&report)
        .iter()
        .all(|&c| c == FindingCode::NodeKeysOutOfOrder || c == FindingCode::LeafEntryOutOfRange));
}

#[test]
fn node_keys_outside_the_parent_range() {
    let store = sample(2);
    let node = store.nodes[0][0];
    // The node covers 0..200; a key of 250 or 0 lies outside (or on its lower bound).
    for key in [250u64, 200, 0] {
        store.edit_node(node, |n| n.entries[1].key = key);
        let report = store.check();
        let finding = report
            .findings
            .iter()
            .find(|f| f.code == FindingCode::NodeKeyOutOfRange)
            .unwrap_or_else(|| panic!("{key}: {:#?}", report.findings));
        assert_eq!(
            finding.location,
            Location {
                old_chunk: Some(key),
                ..entry_of(node, 1, 0, Some(200), 1)
            }
        );
    }
    // Entry 0's key is never read: any value is fine.
    store.edit_node(node, |n| {
        n.entries[1].key = 100;
        n.entries[0].key = 999_999;
    });
    store.edit_node(store.root, |n| n.entries[0].key = u64::MAX);
    assert!(store.check().is_clean());
}

#[test]
fn a_child_outside_the_data_range() {
    let store = sample(2);
    let node = store.nodes[0][1];
    let lost = store.leaves[3];
    for (child, what) in [
        (2u64, "in the journal"),
        (1, "in the allocation bitmap"),
        (CHUNKS + 5, "past the end"),
    ] {
        store.edit_node(node, |n| n.entries[1].chunk = child);
        let report = store.check();
        let finding = only(&report, FindingCode::TreeChunkOutOfRange);
        assert_eq!(finding.location, block_at(child, 0, 300, None, node, 1));
        assert_says(&finding, what);
        assert_says(&finding, &format!("entry 1 of node {node}"));
        assert_eq!(report.summary.leaked_chunks, None);
    }
    store.edit_node(node, |n| n.entries[1].chunk = lost);
    assert!(store.check().is_clean());
}

#[test]
fn a_tree_block_reached_twice() {
    let store = sample(2);
    let node = store.nodes[0][1];
    let stolen = store.leaves[0];
    store.edit_node(node, |n| n.entries[1].chunk = stolen);
    let report = store.check();
    let reused = first(
        &report.findings,
        FindingCode::TreeChunkReused,
        "TreeChunkReused",
    );
    assert_eq!(reused.location, block_at(stolen, 0, 300, None, node, 1));
    // The leaf no longer referenced is leaked (the walk saw every block it could).
    let leaked = first(&report.findings, FindingCode::ChunkLeaked, "ChunkLeaked");
    assert_eq!(leaked.location, Location::run(store.leaves[3], 1));
    assert_eq!(
        report.summary.leaked_chunks,
        Some(4),
        "the leaf and its three data chunks"
    );
}

#[test]
fn a_cycle_is_a_reused_block() {
    let store = sample(2);
    let node = store.nodes[0][0];
    store.edit_node(node, |n| n.entries[1].chunk = store.root);
    let report = store.check();
    let reused = first(
        &report.findings,
        FindingCode::TreeChunkReused,
        "TreeChunkReused",
    );
    assert_eq!(
        reused.location,
        block_at(store.root, 0, 100, Some(200), node, 1)
    );
}

#[test]
fn tree_blocks_must_be_marked() {
    let store = sample(2);
    store.mark(store.nodes[0][0], false);
    let finding = only(&store.check(), FindingCode::TreeChunkNotMarked);
    assert_eq!(
        finding.location,
        block_at(store.nodes[0][0], 1, 0, Some(200), store.root, 0)
    );
    store.mark(store.nodes[0][0], true);
    store.mark(store.leaves[2], false);
    let finding = only(&store.check(), FindingCode::TreeChunkNotMarked);
    assert_eq!(
        finding.location,
        block_at(store.leaves[2], 0, 200, Some(300), store.nodes[0][1], 0)
    );
}

// ---------------------------------------------------------------- depth

/// Points the root's second entry of a two-level `store` at a leaf (freeing
/// the subtree it replaces), checks the store and returns the report with its
/// one finding, a depth mismatch at that leaf.
fn check_leaf_where_a_node_belongs(store: &Store) -> (CheckReport, Finding) {
    store.edit_node(store.root, |n| n.entries[1].chunk = store.leaves[3]);
    store.mark(store.nodes[0][1], false);
    store.mark(store.leaves[2], false);
    for c in 106..109 {
        store.mark(c, false);
    }
    let report = store.check();
    let finding = only(&report, FindingCode::TreeDepthMismatch);
    assert_eq!(
        finding.location,
        block_at(store.leaves[3], 1, 200, None, store.root, 1)
    );
    (report, finding)
}

#[test]
fn a_leaf_where_a_node_belongs() {
    // Small chunks: the leaf's head reads as a node count too large for a chunk.
    let store = sample(2);
    let (_, finding) = check_leaf_where_a_node_belongs(&store);
    assert_says(&finding, "holds a leaf");
}

#[test]
fn a_leaf_where_a_node_belongs_in_large_chunks() {
    // 128 KiB chunks hold 8191 node entries, so the leaf's head (0x1eaf) decodes
    // as a node; nothing under it may be reported.
    let leaves = (0..4).map(sample_leaf).collect();
    let store = build(256, 200, 2, 2, leaves, SNAPMASK);
    let (report, _) = check_leaf_where_a_node_belongs(&store);
    assert_eq!(report.summary.leaked_chunks, None);
}

#[test]
fn a_node_where_a_leaf_belongs() {
    let store = sample(2);
    store.edit_header(|h| h.tree_level = 1);
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::TreeDepthMismatch; 2]);
    assert_eq!(
        report.findings[0].location,
        block_at(store.nodes[0][0], 0, 0, Some(200), store.root, 0)
    );
    assert!(report.findings[0].message.contains("holds a node"));
    assert_eq!(
        report.findings[1].location,
        block_at(store.nodes[0][1], 0, 200, None, store.root, 1)
    );
}

#[test]
fn a_tree_level_deeper_than_the_tree() {
    let store = sample(1);
    store.edit_header(|h| h.tree_level = 2);
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::TreeDepthMismatch; 2]);
    assert_eq!(
        report.findings[0].location,
        block_at(store.leaves[0], 1, 0, Some(100), store.root, 0)
    );
}

// ---------------------------------------------------------------- leaves

fn leaf_damage(at: u64, value: u32, code: FindingCode) {
    let store = sample(1);
    let leaf = store.leaves[1];
    store.poke_u32(leaf, at, value);
    let report = store.check();
    let finding = only(&report, code);
    assert_eq!(
        finding.location,
        block_at(leaf, 0, 100, None, store.root, 1),
        "{code}"
    );
    assert!(
        finding.message.starts_with(&format!(
            "leaf at chunk {leaf} (level 0, origin chunks 100..)"
        )),
        "{}",
        finding.message
    );
    assert_eq!(report.summary.leaked_chunks, None);
}

#[test]
fn leaf_magic_version_and_count() {
    leaf_damage(0, 0x0000_1eae, FindingCode::LeafBadMagic);
    leaf_damage(0, 0x0001_1eaf, FindingCode::LeafBadVersion);
    leaf_damage(4, 61, FindingCode::LeafBadCount);
}

#[test]
fn leaf_offsets_and_sentinel() {
    // Map entries sit at 24 + 8i: {offset, rchunk}; the sentinel is entry 2.
    leaf_damage(24, 30, FindingCode::LeafBadOffsets);
    leaf_damage(24, 513, FindingCode::LeafBadOffsets);
    leaf_damage(32, 512 - 64, FindingCode::LeafBadOffsets);
    leaf_damage(40, 496, FindingCode::LeafBadSentinel);
}

#[test]
fn a_zeroed_leaf_is_a_bad_magic_not_a_node() {
    let store = sample(1);
    store.write(store.leaves[0], &vec![0u8; CHUNK as usize]);
    let finding = only(&store.check(), FindingCode::LeafBadMagic);
    assert_eq!(
        finding.location,
        block_at(store.leaves[0], 0, 0, Some(100), store.root, 0)
    );
}

#[test]
fn a_sentinel_rchunk_is_a_warning() {
    let store = sample(1);
    store.poke_u32(store.leaves[0], 44, 9);
    let report = store.check();
    let finding = only(&report, FindingCode::LeafSentinelRchunk);
    assert_eq!(finding.severity, Severity::Warning);
    assert_eq!(
        finding.location,
        entry_of(store.leaves[0], 0, 0, Some(100), 2)
    );
    assert!(!report.has_errors());
}

#[test]
fn a_map_out_of_order() {
    let store = sample(1);
    let leaf = store.leaves[0];
    store.edit_leaf(leaf, |l| {
        l.map.swap(0, 1);
        // Keep each entry's records with it.
        l.map[0].first = 0;
        l.map[1].first = 1;
        l.records = vec![exc(0b111, 102), exc(0b001, 100), exc(0b110, 101)];
    });
    let finding = only(&store.check(), FindingCode::LeafMapOutOfOrder);
    assert_eq!(
        finding.location,
        Location {
            old_chunk: Some(10),
            ..entry_of(leaf, 0, 0, Some(100), 1)
        }
    );
    store.edit_leaf(leaf, |l| l.map[1].rchunk = l.map[0].rchunk);
    let report = store.check();
    assert!(
        codes(&report).contains(&FindingCode::LeafMapOutOfOrder),
        "a repeated rchunk: {:#?}",
        report.findings
    );
}

#[test]
fn an_entry_without_records() {
    let store = sample(1);
    let leaf = store.leaves[1];
    // Entry 0's records move to entry 1 (their masks stay disjoint).
    store.edit_leaf(leaf, |l| {
        l.records = vec![exc(0b001, 103), exc(0b010, 104), exc(0b100, 105)];
        l.map[1].first = 0;
    });
    let finding = only(&store.check(), FindingCode::LeafEmptyEntry);
    assert_eq!(
        finding.location,
        Location {
            old_chunk: Some(110),
            ..entry_of(leaf, 0, 100, None, 0)
        }
    );
}

#[test]
fn entries_outside_the_leaf_range() {
    let store = sample(1);
    let leaf = store.leaves[0];
    // Leaf 0 covers 0..100; move its second entry (origin 50) to 150.
    store.edit_leaf(leaf, |l| l.map[1].rchunk = 150);
    let finding = only(&store.check(), FindingCode::LeafEntryOutOfRange);
    assert_eq!(
        finding.location,
        Location {
            old_chunk: Some(150),
            ..entry_of(leaf, 0, 0, Some(100), 1)
        }
    );
    // A base_chunk that makes the origin chunk overflow.
    store.edit_leaf(leaf, |l| {
        l.map[1].rchunk = 50;
        l.base_chunk = u64::MAX - 20;
    });
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::LeafEntryOutOfRange; 2]);
    assert_eq!(
        report.findings[1].location,
        entry_of(leaf, 0, 0, Some(100), 1)
    );
    assert!(report.findings[1].message.contains("overflows"));
}

#[test]
fn using_mask_zero_or_the_or_of_the_masks() {
    let store = sample(1);
    let leaf = store.leaves[0];
    store.poke_u64(leaf, 16, 0);
    assert!(store.check().is_clean());
    store.poke_u64(leaf, 16, 0b011);
    let finding = only(&store.check(), FindingCode::UsingMaskMismatch);
    assert_eq!(
        finding.location,
        Location {
            mask: Some(0b011),
            ..block_at(leaf, 0, 0, Some(100), store.root, 0)
        }
    );
}

#[test]
fn origin_chunks_past_the_origin() {
    let store = sample(1);
    let options = |chunks: u64| CheckOptions {
        origin_bytes: Some(chunks * CHUNK),
        ..CheckOptions::default()
    };
    assert!(store.check_with(options(151)).is_clean());
    let finding = only(
        &store.check_with(options(150)),
        FindingCode::OldChunkPastOrigin,
    );
    assert_eq!(
        finding.location,
        Location {
            old_chunk: Some(150),
            ..entry_of(store.leaves[1], 0, 100, None, 1)
        }
    );
    // A partial last chunk is a chunk.
    let report = store.check_with(CheckOptions {
        origin_bytes: Some(150 * CHUNK + 1),
        ..CheckOptions::default()
    });
    assert!(report.is_clean());
}

// ---------------------------------------------------------------- records

/// Rewrites record `r` of leaf 0 of a level-1 sample and returns its single finding.
fn record_damage(r: usize, record: Exception, code: FindingCode) -> (Store, Finding) {
    let store = sample(1);
    store.edit_leaf(store.leaves[0], |l| l.records[r] = record);
    let report = store.check();
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("{code}: {:#?}", report.findings))
        .clone();
    (store, finding)
}

fn record_at(
    store: &Store,
    entry: u64,
    record: u64,
    origin: u64,
    share: u64,
    chunk: u64,
) -> Location {
    Location {
        record: Some(record),
        old_chunk: Some(origin),
        new_chunk: Some(chunk),
        mask: Some(share),
        ..entry_of(store.leaves[0], 0, 0, Some(100), entry)
    }
}

#[test]
fn an_empty_share_mask() {
    let (store, finding) = record_damage(1, exc(0, 100), FindingCode::ShareMaskEmpty);
    assert_eq!(finding.location, record_at(&store, 0, 1, 10, 0, 100));
    assert_eq!(codes(&store.check()), vec![FindingCode::ShareMaskEmpty]);
    assert!(
        finding
            .message
            .contains("entry 0 (origin chunk 10) record 1"),
        "{}",
        finding.message
    );
}

#[test]
fn a_share_mask_outside_snapmask() {
    let (store, finding) = record_damage(
        2,
        exc(0b1000_0111, 102),
        FindingCode::ShareMaskOutsideSnapmask,
    );
    assert_eq!(
        finding.location,
        record_at(&store, 1, 2, 50, 0b1000_0111, 102)
    );
    assert_says(&finding, "snapshot(s) 7 ");
}

#[test]
fn overlapping_share_masks_of_one_origin_chunk() {
    let (store, finding) = record_damage(1, exc(0b011, 100), FindingCode::ShareMasksOverlap);
    assert_eq!(finding.location, record_at(&store, 0, 1, 10, 0b011, 100));
    assert_says(&finding, "in snapshot(s) 1;");
    assert_eq!(codes(&store.check()), vec![FindingCode::ShareMasksOverlap]);
}

#[test]
fn cow_chunks_outside_the_data_range() {
    for (chunk, what) in [
        (0u64, "the header"),
        (1, "bitmap"),
        (5, "journal"),
        (CHUNKS, "past the end"),
        (u64::MAX, "past the end"),
    ] {
        let (store, finding) = record_damage(0, exc(0b110, chunk), FindingCode::CowChunkOutOfRange);
        assert_eq!(finding.location, record_at(&store, 0, 0, 10, 0b110, chunk));
        assert_says(&finding, what);
        // Chunk 101, no longer referenced, is a leak.
        let report = store.check();
        assert_codes_in_order(
            &report,
            &[FindingCode::CowChunkOutOfRange, FindingCode::ChunkLeaked],
        );
        assert_eq!(report.findings[1].location, Location::run(101, 1));
    }
}

#[test]
fn a_cow_chunk_used_twice() {
    let store = sample(1);
    // Leaf 1's first record takes leaf 0's chunk 101.
    store.edit_leaf(store.leaves[1], |l| l.records[0].chunk = 101);
    let report = store.check();
    assert_codes_in_order(
        &report,
        &[FindingCode::CowChunkDuplicate, FindingCode::ChunkLeaked],
    );
    assert_eq!(
        report.findings[0].location,
        Location {
            record: Some(0),
            old_chunk: Some(110),
            new_chunk: Some(101),
            mask: Some(0b110),
            ..entry_of(store.leaves[1], 0, 100, None, 0)
        }
    );
    assert_eq!(report.findings[1].location, Location::run(104, 1));
}

#[test]
fn a_cow_chunk_that_is_a_tree_block() {
    // The record comes after the block in the walk...
    let store = sample(1);
    store.edit_leaf(store.leaves[1], |l| l.records[2].chunk = store.leaves[0]);
    let report = store.check();
    assert_codes_in_order(
        &report,
        &[FindingCode::CowChunkIsTree, FindingCode::ChunkLeaked],
    );
    assert_eq!(report.findings[0].location.new_chunk, Some(store.leaves[0]));
    assert_eq!(report.findings[0].location.chunk, Some(store.leaves[1]));
    // ... or before it: then the block is named.
    let store = sample(1);
    store.edit_leaf(store.leaves[0], |l| l.records[2].chunk = store.leaves[1]);
    let report = store.check();
    assert_codes_in_order(
        &report,
        &[FindingCode::CowChunkIsTree, FindingCode::ChunkLeaked],
    );
    assert_eq!(
        report.findings[0].location,
        block_at(store.leaves[1], 0, 100, None, store.root, 1)
    );
    // The root node counts too.
    let store = sample(1);
    store.edit_leaf(store.leaves[0], |l| l.records[2].chunk = store.root);
    assert!(codes(&store.check()).contains(&FindingCode::CowChunkIsTree));
}

#[test]
fn a_cow_chunk_not_marked_in_the_bitmap() {
    let store = sample(1);
    store.mark(104, false);
    let finding = only(&store.check(), FindingCode::CowChunkNotMarked);
    assert_eq!(
        finding.location,
        Location {
            record: Some(0),
            old_chunk: Some(110),
            new_chunk: Some(104),
            mask: Some(0b110),
            ..entry_of(store.leaves[1], 0, 100, None, 0)
        }
    );
}

// ---------------------------------------------------------------- bitmap

#[test]
fn leaks_are_warnings_one_per_run() {
    let store = sample(1);
    for c in [200u64, 201, 202, 300, 511] {
        store.mark(c, true);
    }
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::ChunkLeaked; 3]);
    assert!(report
        .findings
        .iter()
        .all(|f| f.severity == Severity::Warning));
    assert!(!report.has_errors());
    assert_eq!(report.findings[0].location, Location::run(200, 3));
    assert!(
        report.findings[0]
            .message
            .starts_with("chunks 200..203 (3 chunks) are marked in use"),
        "{}",
        report.findings[0].message
    );
    assert_eq!(report.findings[1].location, Location::run(300, 1));
    assert_eq!(report.findings[2].location, Location::run(511, 1));
    assert_eq!(report.summary.leaked_chunks, Some(5));
}

#[test]
fn long_leaked_runs_are_one_finding() {
    // 4000 chunks: whole 64-chunk words of leaks, a run across word boundaries
    // and one ending at the last chunk.
    let leaves = (0..2).map(sample_leaf).collect();
    let store = build(SECTORS, 4000, JOURNAL, 1, leaves, SNAPMASK);
    let mut bitmap = ChunkBitmap::load(&store.device, &store.geometry).unwrap();
    bitmap.set_range(250, 1000);
    bitmap.set_range(3990, 4000);
    bitmap.write_dirty(&store.device).unwrap();
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::ChunkLeaked; 2]);
    assert_eq!(report.findings[0].location, Location::run(250, 750));
    assert_eq!(report.findings[1].location, Location::run(3990, 10));
    assert_eq!(report.summary.leaked_chunks, Some(760));
    assert_eq!(
        report.summary.free_chunks,
        Some(4000 - DATA_START - 3 - 6 - 760)
    );
}

#[test]
fn reserved_chunks_must_be_marked() {
    let store = sample(1);
    store.mark(0, false);
    store.mark(3, false);
    store.mark(4, false);
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::ReservedChunkNotMarked; 2]);
    assert_eq!(report.findings[0].location, Location::run(0, 1));
    assert!(report.findings[0].message.contains("the header"));
    assert_eq!(report.findings[1].location, Location::run(3, 2));
    assert!(report.findings[1].message.contains("the journal"));
    store.mark(0, true);
    store.mark(3, true);
    store.mark(4, true);
    store.mark(1, false);
    let finding = only(&store.check(), FindingCode::ReservedChunkNotMarked);
    assert_eq!(finding.location, Location::run(1, 1));
}

#[test]
fn bits_past_the_end_are_warnings() {
    // 4000 chunks of 512 bytes: one bitmap chunk describes 4096.
    let leaves = (0..2).map(sample_leaf).collect();
    let store = build(SECTORS, 4000, JOURNAL, 1, leaves, SNAPMASK);
    store.poke(CHUNK + 4000 / 8, &[0b0000_0110]);
    store.poke(CHUNK + 511, &[0x80]);
    let report = store.check();
    assert_codes_in_order(&report, &[FindingCode::BitmapBitsPastEnd; 2]);
    assert_eq!(report.findings[0].location, Location::run(4001, 2));
    assert_eq!(report.findings[1].location, Location::run(4095, 1));
    assert!(!report.has_errors());
}

#[test]
fn findings_are_capped_per_code() {
    let leaves = (0..2).map(sample_leaf).collect();
    let store = build(SECTORS, 8000, JOURNAL, 1, leaves, SNAPMASK);
    let mut bitmap = ChunkBitmap::load(&store.device, &store.geometry).unwrap();
    for c in (1000..7000).step_by(2) {
        bitmap.set(c, true);
    }
    bitmap.write_dirty(&store.device).unwrap();
    let report = store.check();
    assert_eq!(report.findings.len(), 1001);
    assert_eq!(report.findings[1000].code, FindingCode::FindingsSuppressed);
    assert_eq!(report.findings[1000].severity, Severity::Warning);
    assert_eq!(report.summary.leaked_chunks, Some(3000));
}

#[test]
fn findings_serialize_their_locations_sparsely() {
    let store = sample(1);
    store.mark(104, false);
    let json = serde_json::to_value(&store.check().findings[0]).unwrap();
    assert_eq!(json["code"], "cow-chunk-not-marked");
    assert_eq!(json["level"], 0);
    assert_eq!(json["key_lo"], 100);
    assert!(
        json.get("key_hi").is_none(),
        "an unbounded range has no key_hi"
    );
    assert_eq!(json["entry"], 0);
    assert_eq!(json["mask"], 6);
    assert!(
        json.get("parent").is_none() && json.get("count").is_none() && json.get("area").is_none()
    );
}

#[test]
fn a_map_entry_struct_is_what_the_tests_edit() {
    // The fixtures rely on the in-memory map being the on-disk map in order.
    let leaf = sample_leaf(1);
    assert_eq!(
        leaf.map,
        vec![
            MapEntry {
                rchunk: 10,
                first: 0
            },
            MapEntry {
                rchunk: 50,
                first: 2
            }
        ]
    );
}
