//! The shared store dump model: a hand-built two-level tree dumped in each view,
//! and damaged stores dumped as far as they can be read. (A store written by the
//! engine is dumped in cowengine's offline_reads_engine_stores test.)

use cowfmt::kind::SHARED_MAGIC;
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::dump::chunks::stream_chunk_runs;
use cowfmt::shared::dump::records::stream_exceptions;
use cowfmt::shared::dump::{
    BitmapDump, ChunkClass, ChunkRun, ClassTotals, SharedDump, SharedSource, SnapshotDump,
    TreeBody, TreeDump,
};
use cowfmt::shared::format::format_store;
use cowfmt::shared::header::SharedHeader;
use cowfmt::shared::leaf::MapEntry;
use cowfmt::shared::{Exception, Geometry, Leaf, Node, NodeEntry};
use cowfmt::{Access, Device, Error};
use serde_json::json;

/// Chunks of the hand-built image (512-byte chunks).
const CHUNKS: u64 = 256;
/// Journal chunks of the hand-built image: chunks 2 and 3.
const JOURNAL: u64 = 2;
const ROOT: u64 = 10;
const NODE_LOW: u64 = 11;
const NODE_HIGH: u64 = 12;
const LEAF_A: u64 = 20;
const LEAF_B: u64 = 21;
const LEAF_C: u64 = 22;

fn exc(share: u64, chunk: u64) -> Exception {
    Exception { share, chunk }
}

/// A leaf at `base` holding `entries` of (origin chunk, records in leaf order).
fn leaf(base: u64, entries: &[(u64, &[Exception])]) -> Leaf {
    let mut leaf = Leaf::new(base);
    for (origin, records) in entries {
        leaf.map.push(MapEntry {
            rchunk: (origin - base) as u32,
            first: leaf.records.len() as u32,
        });
        leaf.records.extend_from_slice(records);
    }
    leaf
}

fn node(entries: &[(u64, u64)]) -> Node {
    Node {
        entries: entries
            .iter()
            .map(|&(key, chunk)| NodeEntry { key, chunk })
            .collect(),
        unused: 0,
    }
}

/// A shared store with snapshots 0, 1, 2 and a tree of two node levels:
///
/// ```text
/// root 10: [0 -> 11, 1000 -> 12]
///   node 11: [0 -> leaf 20, 100 -> leaf 21]
///     leaf 20 (base 0):    5: {0,1}@30 {2}@31;  7: {0}@32
///     leaf 21 (base 100):  100: {1,2}@33;  150: {0}@34 {1}@35 {2}@36
///   node 12: [1000 -> leaf 22]
///     leaf 22 (base 1000): 1003: {0,1,2}@37
/// ```
///
/// The bitmap marks the header, bitmap, journal, the six blocks and the eight
/// data chunks; format_store's own leaf and root (4 and 5) are left free.
struct Built {
    dir: tempfile::TempDir,
    geometry: Geometry,
}

impl Built {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        let device = Device::create_or_extend(&path, CHUNKS * 512).unwrap();
        format_store(&device, 1, JOURNAL).unwrap();
        let geometry = Geometry::new(CHUNKS * 512, 1, JOURNAL);
        let built = Built { dir, geometry };
        let blocks: [(u64, Vec<u8>); 6] = [
            (
                ROOT,
                encode_node(&node(&[(0, NODE_LOW), (1000, NODE_HIGH)])),
            ),
            (NODE_LOW, encode_node(&node(&[(0, LEAF_A), (100, LEAF_B)]))),
            (NODE_HIGH, encode_node(&node(&[(1000, LEAF_C)]))),
            (
                LEAF_A,
                encode_leaf(&leaf(
                    0,
                    &[
                        (5, &[exc(0b011, 30), exc(0b100, 31)]),
                        (7, &[exc(0b001, 32)]),
                    ],
                )),
            ),
            (
                LEAF_B,
                encode_leaf(&leaf(
                    100,
                    &[
                        (100, &[exc(0b110, 33)]),
                        (150, &[exc(0b001, 34), exc(0b010, 35), exc(0b100, 36)]),
                    ],
                )),
            ),
            (
                LEAF_C,
                encode_leaf(&leaf(1000, &[(1003, &[exc(0b111, 37)])])),
            ),
        ];
        for (chunk, bytes) in &blocks {
            device.write_chunk(*chunk, bytes).unwrap();
        }
        let mut used: Vec<u64> = (0..geometry.data_start()).collect();
        used.extend([ROOT, NODE_LOW, NODE_HIGH, LEAF_A, LEAF_B, LEAF_C]);
        used.extend(30..38);
        built.write_bitmap(&used);
        built.write_header(|h| {
            h.root_tree_chunk = ROOT;
            h.tree_level = 2;
            h.snapmask = 0b111;
        });
        built
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("cow.img")
    }

    fn device(&self) -> Device {
        Device::open(self.path(), Access::ReadWrite).unwrap()
    }

    fn source(&self) -> SharedSource {
        SharedSource::open(Device::open(self.path(), Access::ReadOnly).unwrap()).unwrap()
    }

    fn write_bitmap(&self, used: &[u64]) {
        let mut bitmap = ChunkBitmap::empty(&self.geometry);
        for &c in used {
            bitmap.set(c, true);
        }
        bitmap.write_dirty(&self.device()).unwrap();
    }

    fn write_header(&self, change: impl FnOnce(&mut SharedHeader)) {
        let device = self.device();
        let mut chunk = vec![0u8; 512];
        device.read_chunk(0, &mut chunk).unwrap();
        let mut header = SharedHeader::decode(&chunk).unwrap();
        change(&mut header);
        device.write_chunk(0, &header.to_chunk(512)).unwrap();
    }

    fn poke(&self, offset: u64, bytes: &[u8]) {
        self.device().write_at(bytes, offset).unwrap();
    }
}

fn encode_node(node: &Node) -> Vec<u8> {
    let mut chunk = vec![0u8; 512];
    node.encode(&mut chunk);
    chunk
}

fn encode_leaf(leaf: &Leaf) -> Vec<u8> {
    let mut chunk = vec![0u8; 512];
    leaf.encode(&mut chunk);
    chunk
}

fn all_exceptions() -> serde_json::Value {
    json!([
        {"origin_chunk": 5, "cow_chunk": 30, "snapshots": [0, 1]},
        {"origin_chunk": 5, "cow_chunk": 31, "snapshots": [2]},
        {"origin_chunk": 7, "cow_chunk": 32, "snapshots": [0]},
        {"origin_chunk": 100, "cow_chunk": 33, "snapshots": [1, 2]},
        {"origin_chunk": 150, "cow_chunk": 34, "snapshots": [0]},
        {"origin_chunk": 150, "cow_chunk": 35, "snapshots": [1]},
        {"origin_chunk": 150, "cow_chunk": 36, "snapshots": [2]},
        {"origin_chunk": 1003, "cow_chunk": 37, "snapshots": [0, 1, 2]},
    ])
}

#[test]
fn exceptions_of_a_two_level_tree_are_exact() {
    let built = Built::new();
    let dump = SharedDump::of(&built.source()).unwrap();
    let json = serde_json::to_value(&dump).unwrap();
    assert_eq!(json["exceptions"], all_exceptions());
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["kind"], "shared");
    assert_eq!(json["magic"], "0x55378008");
    assert_eq!(json["chunk_size"], 1);
    assert_eq!(json["valid"], true);
    assert_eq!(json["version"], 1);
    assert_eq!(json["snapshots"], json!([0, 1, 2]));
    assert_eq!(json["tree_level"], 2);
    assert_eq!(json["root_tree_chunk"], ROOT);
    assert_eq!(json["journal_chunks"], JOURNAL);
    assert_eq!(
        json["geometry"],
        json!({"chunk_bytes": 512, "nr_chunks": CHUNKS,
               "bitmap": {"start": 1, "end": 2}, "journal": {"start": 2, "end": 4},
               "data": {"start": 4, "end": CHUNKS}})
    );
    assert_eq!(json["used_chunks"], 4 + 6 + 8);
    assert_eq!(json["free_chunks"], CHUNKS - 18);
    assert_eq!(
        (
            dump.tail.nodes,
            dump.tail.leaves,
            dump.tail.origin_chunks,
            dump.tail.records
        ),
        (3, 3, 5, 8)
    );
    assert!(dump.tail.problems.is_empty());
    assert!(json.get("problems").is_none() && json.get("snapshot").is_none());
}

#[test]
fn json_and_yaml_read_back_as_the_same_document() {
    let built = Built::new();
    let source = built.source();
    let dump = SharedDump::of(&source).unwrap();
    let json: SharedDump = serde_json::from_str(&serde_json::to_string(&dump).unwrap()).unwrap();
    let yaml: SharedDump = serde_yaml::from_str(&serde_yaml::to_string(&dump).unwrap()).unwrap();
    assert_eq!(json, dump);
    assert_eq!(yaml, dump);
    let tree = TreeDump::of(&source).unwrap();
    let yaml: TreeDump = serde_yaml::from_str(&serde_yaml::to_string(&tree).unwrap()).unwrap();
    assert_eq!(yaml, tree);
    let bitmap = BitmapDump::of(&source).unwrap();
    let json: BitmapDump = serde_json::from_str(&serde_json::to_string(&bitmap).unwrap()).unwrap();
    assert_eq!(json, bitmap);
}

#[test]
fn a_snapshot_sees_only_its_records() {
    let built = Built::new();
    let source = built.source();
    let dump = SnapshotDump::of(&source, 1).unwrap();
    assert_eq!(
        serde_json::to_value(&dump.exceptions).unwrap(),
        json!([
            {"origin_chunk": 5, "cow_chunk": 30},
            {"origin_chunk": 100, "cow_chunk": 33},
            {"origin_chunk": 150, "cow_chunk": 35},
            {"origin_chunk": 1003, "cow_chunk": 37},
        ])
    );
    assert_eq!(dump.head.snapshot, Some(1));
    assert_eq!(dump.tail.records, 8, "the tail counts every record");
    let two: Vec<(u64, u64)> = SnapshotDump::of(&source, 2)
        .unwrap()
        .exceptions
        .iter()
        .map(|r| (r.origin_chunk, r.cow_chunk))
        .collect();
    assert_eq!(two, [(5, 31), (100, 33), (150, 36), (1003, 37)]);
}

#[test]
fn a_missing_snapshot_names_the_existing_ones() {
    let built = Built::new();
    let source = built.source();
    for id in [3, 63, 64, u32::MAX] {
        let error = SnapshotDump::of(&source, id).unwrap_err().to_string();
        assert!(
            error.contains(&format!("snapshot {id} does not exist")),
            "{error}"
        );
        assert!(error.contains("the snapshots are 0-2"), "{error}");
        assert!(error.contains("cow.img"), "{error}");
    }
    built.write_header(|h| h.snapmask = 0);
    let error = SnapshotDump::of(&built.source(), 0)
        .unwrap_err()
        .to_string();
    assert!(error.contains("the store has no snapshots"), "{error}");
}

#[test]
fn tree_lists_every_block_with_its_range() {
    let built = Built::new();
    let dump = TreeDump::of(&built.source()).unwrap();
    type Placed<'a> = (u64, u32, u64, Option<u64>, Option<u64>, &'a str);
    let blocks: Vec<Placed> = dump
        .tree
        .iter()
        .map(|b| {
            let kind = match b.body {
                TreeBody::Node { .. } => "node",
                TreeBody::Leaf { .. } => "leaf",
                TreeBody::Damaged { .. } => "damaged",
            };
            (
                b.chunk,
                b.level,
                b.lo,
                b.hi,
                b.parent.map(|p| p.chunk),
                kind,
            )
        })
        .collect();
    assert_eq!(
        blocks,
        [
            (ROOT, 2, 0, None, None, "node"),
            (NODE_LOW, 1, 0, Some(1000), Some(ROOT), "node"),
            (LEAF_A, 0, 0, Some(100), Some(NODE_LOW), "leaf"),
            (LEAF_B, 0, 100, Some(1000), Some(NODE_LOW), "leaf"),
            (NODE_HIGH, 1, 1000, None, Some(ROOT), "node"),
            (LEAF_C, 0, 1000, None, Some(NODE_HIGH), "leaf"),
        ]
    );
    let json = serde_json::to_value(&dump.tree).unwrap();
    assert_eq!(
        json[0],
        json!({"chunk": ROOT, "level": 2, "lo": 0, "hi": null, "parent": null, "type": "node",
               "entries": 2, "bytes_used": 40, "fill_percent": 7.8,
               "children": [{"key": 0, "chunk": NODE_LOW}, {"key": 1000, "chunk": NODE_HIGH}]})
    );
    assert_eq!(
        json[3],
        json!({"chunk": LEAF_B, "level": 0, "lo": 100, "hi": 1000,
               "parent": {"chunk": NODE_LOW, "entry": 1}, "type": "leaf",
               "entries": 2, "records": 4, "bytes_used": 24 + 3 * 8 + 4 * 16,
               "fill_percent": 21.8, "base_chunk": 100, "using_mask": [0, 1, 2],
               "exceptions": all_exceptions().as_array().unwrap()[3..7]})
    );
    let records: Vec<serde_json::Value> = dump
        .tree
        .iter()
        .filter_map(|b| match &b.body {
            TreeBody::Leaf { exceptions, .. } => Some(exceptions.clone()),
            _ => None,
        })
        .flatten()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(serde_json::Value::Array(records), all_exceptions());
}

#[test]
fn bitmap_runs_classify_every_chunk() {
    let built = Built::new();
    let mut used: Vec<u64> = (0..4).collect();
    used.extend([ROOT, NODE_LOW, NODE_HIGH, LEAF_A, LEAF_B, LEAF_C, 50]);
    used.extend(30..37);
    built.write_bitmap(&used);
    let dump = BitmapDump::of(&built.source()).unwrap();
    let run = |start, end, class, used| ChunkRun {
        start,
        end,
        class,
        used,
    };
    use ChunkClass::*;
    assert_eq!(
        dump.bitmap,
        [
            run(0, 1, Header, true),
            run(1, 2, Bitmap, true),
            run(2, 4, Journal, true),
            run(4, 10, Free, false),
            run(10, 13, Node, true),
            run(13, 20, Free, false),
            run(20, 23, Leaf, true),
            run(23, 30, Free, false),
            run(30, 37, Data, true),
            run(37, 38, Data, false),
            run(38, 50, Free, false),
            run(50, 51, Leaked, true),
            run(51, CHUNKS, Free, false),
        ]
    );
    assert_eq!(
        dump.tail.classes,
        Some(ClassTotals {
            header: 1,
            bitmap: 1,
            journal: 2,
            node: 3,
            leaf: 3,
            data: 8,
            leaked: 1,
            free: CHUNKS - 19,
            unmarked: 1,
        })
    );
    assert_eq!(dump.head.used_chunks, 18);
    assert_eq!(
        serde_json::to_value(dump.bitmap[11]).unwrap(),
        json!({"start": 50, "end": 51, "class": "leaked", "used": true})
    );
}

#[test]
fn bitmap_runs_cover_the_device_one_at_a_time() {
    // The runs are handed out one at a time: a caller that keeps none sees them all.
    let built = Built::new();
    let source = built.source();
    let bitmap = source.load_bitmap().unwrap();
    let mut count = 0;
    let mut covered = 0;
    let tail = stream_chunk_runs(&source, &bitmap, |r| {
        count += 1;
        covered += r.end - r.start;
        Ok(())
    })
    .unwrap();
    assert_eq!(covered, CHUNKS);
    assert!(count > 5);
    assert_eq!(tail.records, 8);
}

#[test]
fn a_damaged_leaf_is_reported_and_the_rest_dumped() {
    let built = Built::new();
    built.poke(LEAF_B * 512, &[0, 0]);
    built.write_header(|h| h.valid = 0);
    let source = built.source();
    let dump = SharedDump::of(&source).unwrap();
    assert!(!dump.head.valid);
    assert_eq!(dump.head.valid_raw, 0);
    let origins: Vec<u64> = dump.exceptions.iter().map(|r| r.origin_chunk).collect();
    assert_eq!(origins, [5, 5, 7, 1003]);
    assert_eq!(dump.tail.problems.len(), 1);
    let problem = &dump.tail.problems[0];
    assert_eq!(
        (problem.chunk, problem.level, problem.lo, problem.hi),
        (LEAF_B, 0, 100, Some(1000))
    );
    assert_eq!(
        problem.problem,
        "not a leaf: leaf magic is 0x0000, not 0x1eaf"
    );
    let tree = TreeDump::of(&source).unwrap();
    assert_eq!(tree.tree.len(), 6);
    assert_eq!(
        tree.tree[3].body,
        TreeBody::Damaged {
            problem: "not a leaf: leaf magic is 0x0000, not 0x1eaf".to_string()
        }
    );
    assert_eq!(tree.tail.problems, dump.tail.problems);
    let bitmap = BitmapDump::of(&source).unwrap();
    assert!(bitmap.bitmap.contains(&ChunkRun {
        start: 20,
        end: 23,
        class: ChunkClass::Leaf,
        used: true
    }));
    let json = serde_json::to_value(&dump).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(
        json["problems"][0]["parent"],
        json!({"chunk": NODE_LOW, "entry": 1})
    );
}

#[test]
fn pointers_out_of_range_and_cycles_are_problems() {
    let built = Built::new();
    // node 12 now points at the journal, past the end, and back at node 11.
    built
        .device()
        .write_chunk(
            NODE_HIGH,
            &encode_node(&node(&[(1000, 2), (2000, CHUNKS + 5), (3000, NODE_LOW)])),
        )
        .unwrap();
    let dump = SharedDump::of(&built.source()).unwrap();
    let problems: Vec<(u64, &str)> = dump
        .tail
        .problems
        .iter()
        .map(|p| (p.chunk, p.problem.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (
                2,
                "the chunk is a journal chunk, outside the data range (chunks 4..256)"
            ),
            (
                CHUNKS + 5,
                "the chunk is past the end of the device, outside the data range (chunks 4..256)"
            ),
            (
                NODE_LOW,
                "the chunk was already reached from another node entry (shared block or cycle)"
            ),
        ]
    );
    assert_eq!(dump.exceptions.len(), 7);
}

#[test]
fn an_absurd_tree_level_is_one_problem_not_a_deep_walk() {
    let built = Built::new();
    built.write_header(|h| h.tree_level = u32::MAX);
    let dump = SharedDump::of(&built.source()).unwrap();
    assert!(dump.exceptions.is_empty());
    assert_eq!(dump.tail.problems.len(), 1);
    assert!(dump.tail.problems[0]
        .problem
        .contains("tree_level 4294967295 is deeper"));
}

#[test]
fn write_errors_of_the_caller_end_the_walk() {
    let built = Built::new();
    let mut seen = 0;
    let result = stream_exceptions(&built.source(), None, |_| {
        seen += 1;
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    });
    assert!(matches!(result, Err(Error::Output(_))));
    assert_eq!(seen, 1);
}

#[test]
fn unusable_headers_are_refused_in_one_sentence() {
    let built = Built::new();
    let open = |b: &Built| {
        SharedSource::open(Device::open(b.path(), Access::ReadOnly).unwrap())
            .unwrap_err()
            .to_string()
    };
    built.write_header(|h| h.chunk_size = 3);
    assert!(
        open(&built).contains("cow.img: chunk size 3 sectors is not a power of two;"),
        "{}",
        open(&built)
    );
    built.write_header(|h| {
        h.chunk_size = 1;
        h.version = 2;
    });
    assert!(open(&built).contains("version 2"), "{}", open(&built));
    built.write_header(|h| {
        h.version = 1;
        h.nr_journal_chunks = 1000;
    });
    let text = open(&built);
    assert!(text.contains("1 bitmap and 1000 journal chunks"), "{text}");
    assert!(text.contains("at least 513024 are needed"), "{text}");
    let short = built.dir.path().join("short.img");
    std::fs::write(&short, SHARED_MAGIC.to_le_bytes()).unwrap();
    let text = SharedSource::open(Device::open(&short, Access::ReadOnly).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("truncated") && text.contains("the shared store header"),
        "{text}"
    );
}

#[test]
fn share_masks_read_back_and_refuse_ids_past_63() {
    let dump = SharedDump::of(&Built::new().source()).unwrap();
    let mut json = serde_json::to_value(&dump).unwrap();
    json["exceptions"][0]["snapshots"] = json!([64]);
    let error = serde_json::from_value::<SharedDump>(json)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("snapshot id 64 is out of range (0-63)"),
        "{error}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Random bytes over the tree blocks and the header's tree fields never make
    /// a view fail or panic, and the tree view accounts for every block.
    #[test]
    fn random_damage_is_dumped_never_a_panic(
        pokes in proptest::collection::vec((10u64..38, 0usize..512, proptest::prelude::any::<u64>()), 1..12),
        root in proptest::option::of(0u64..300),
        level in proptest::option::of(0u32..70),
    ) {
        let built = Built::new();
        for (chunk, offset, value) in pokes {
            let bytes = value.to_le_bytes();
            let len = bytes.len().min(512 - offset);
            built.poke(chunk * 512 + offset as u64, &bytes[..len]);
        }
        built.write_header(|h| {
            h.root_tree_chunk = root.unwrap_or(h.root_tree_chunk);
            h.tree_level = level.unwrap_or(h.tree_level);
        });
        let source = built.source();
        let dump = SharedDump::of(&source).unwrap();
        proptest::prop_assert_eq!(dump.exceptions.len() as u64, dump.tail.records);
        let tree = TreeDump::of(&source).unwrap();
        proptest::prop_assert_eq!(
            tree.tree.len() as u64,
            tree.tail.nodes + tree.tail.leaves + tree.tail.problems.len() as u64
        );
        let bitmap = BitmapDump::of(&source).unwrap();
        proptest::prop_assert_eq!(bitmap.bitmap.iter().map(|r| r.end - r.start).sum::<u64>(), CHUNKS);
        for id in 0..3 {
            SnapshotDump::of(&source, id).unwrap();
        }
    }
}

#[test]
fn a_leaf_base_near_the_top_of_u64_does_not_overflow() {
    let built = Built::new();
    built.poke(LEAF_A * 512 + 8, &(u64::MAX - 2).to_le_bytes());
    let source = built.source();
    let dump = SharedDump::of(&source).unwrap();
    assert_eq!(dump.exceptions.len(), 8);
    assert_eq!(
        dump.exceptions[0].origin_chunk, 2,
        "u64::MAX - 2 + 5 wraps to 2"
    );
    TreeDump::of(&source).unwrap();
}
