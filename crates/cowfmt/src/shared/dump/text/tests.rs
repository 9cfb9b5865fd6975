//! The shared dump schema round trip: what the writer writes, the reader
//! reads back as the store holds it, in both syntaxes, on both read paths and
//! in every view.

use super::*;
use crate::device::{Access, Device};
use crate::dump_read::{read_text, read_whole, with_text, DumpSyntax, ReadBack};
use crate::memdev::MemDev;
use crate::shared::build::StoreBuilder;
use crate::shared::dump::{BitmapDump, SharedDump, SharedRestoreHead, SnapshotDump, TreeDump};
use crate::shared::leaf::Exception;

/// A store of 1-sector chunks with snapshots 0, 1 and 5 whose records fill
/// several leaves, written to a file in `dir`.
fn store(dir: &std::path::Path) -> SharedSource {
    let cow = MemDev::new("mem:cow", 2048 * 512);
    let mut builder = StoreBuilder::new(&cow, 1, 0).unwrap();
    let mut next = 200;
    let mut entries = Vec::new();
    for origin in (0..300).step_by(3) {
        let mut records = vec![Exception {
            share: 0b11,
            chunk: next,
        }];
        if origin % 2 == 0 {
            records.push(Exception {
                share: 1 << 5,
                chunk: next + 1,
            });
        }
        next += 2;
        entries.push((origin, records));
    }
    for (_, records) in &entries {
        for r in records {
            builder.claim(r.chunk).unwrap();
        }
    }
    let mut writer = builder.into_tree();
    for (origin, records) in &entries {
        writer.push(*origin, records).unwrap();
    }
    writer.finish(0b100011).unwrap();
    let path = dir.join("shared.img");
    std::fs::write(&path, cow.to_bytes()).unwrap();
    SharedSource::open(Device::open(&path, Access::ReadOnly).unwrap()).unwrap()
}

fn written(source: &SharedSource, view: View, syntax: TextSyntax) -> Vec<u8> {
    let bitmap = source.load_bitmap().unwrap();
    let snapshot = match view {
        View::Snapshot(id) => Some(id),
        _ => None,
    };
    let head = source.head(&bitmap, snapshot);
    let mut out = Vec::new();
    write_document(&mut out, source, &head, &bitmap, view, syntax, &|_| {}).unwrap();
    out
}

/// What the schema's reader reads back: the head a restore uses and every record.
type Back = ReadBack<SharedRestoreHead, SharedRecord>;

fn read_back(text: &[u8], syntax: DumpSyntax, fast: bool) -> Back {
    read_text(text, syntax, fast, flat_record)
}

#[test]
fn the_records_written_read_back_as_the_store_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let source = store(dir.path());
    let model = SharedDump::of(&source).unwrap();
    assert!(model.tail.leaves > 1, "the records fill several leaves");
    for (syntax, read_as) in [
        (TextSyntax::Json, DumpSyntax::Json),
        (TextSyntax::Yaml, DumpSyntax::Yaml),
    ] {
        let text = written(&source, View::Exceptions, syntax);
        for fast in [true, false] {
            let back = read_back(&text, read_as, fast);
            assert_eq!(back.records, model.exceptions, "{syntax:?} fast {fast}");
            assert_eq!(back.head.chunk_size, 1);
            assert_eq!(back.head.snapshots, vec![0, 1, 5]);
            assert!(back.head.valid);
        }
    }
}

#[test]
fn every_view_reads_back_as_its_document() {
    let dir = tempfile::tempdir().unwrap();
    let source = store(dir.path());
    let json = |view| written(&source, view, TextSyntax::Json);
    let yaml = |view| written(&source, view, TextSyntax::Yaml);

    let exceptions = SharedDump::of(&source).unwrap();
    assert_eq!(
        serde_json::from_slice::<SharedDump>(&json(View::Exceptions)).unwrap(),
        exceptions
    );
    assert_eq!(
        serde_yaml::from_slice::<SharedDump>(&yaml(View::Exceptions)).unwrap(),
        exceptions
    );

    let snapshot = SnapshotDump::of(&source, 5).unwrap();
    assert_eq!(
        serde_json::from_slice::<SnapshotDump>(&json(View::Snapshot(5))).unwrap(),
        snapshot
    );
    assert_eq!(
        serde_yaml::from_slice::<SnapshotDump>(&yaml(View::Snapshot(5))).unwrap(),
        snapshot
    );

    let tree = TreeDump::of(&source).unwrap();
    assert_eq!(
        serde_json::from_slice::<TreeDump>(&json(View::Tree)).unwrap(),
        tree
    );
    assert_eq!(
        serde_yaml::from_slice::<TreeDump>(&yaml(View::Tree)).unwrap(),
        tree
    );

    let bitmap = BitmapDump::of(&source).unwrap();
    assert_eq!(
        serde_json::from_slice::<BitmapDump>(&json(View::Bitmap)).unwrap(),
        bitmap
    );
    assert_eq!(
        serde_yaml::from_slice::<BitmapDump>(&yaml(View::Bitmap)).unwrap(),
        bitmap
    );
}

#[test]
fn the_writer_writes_what_serde_writes() {
    let dir = tempfile::tempdir().unwrap();
    let source = store(dir.path());
    let tree = TreeDump::of(&source).unwrap();
    let by_hand: serde_json::Value =
        serde_json::from_slice(&written(&source, View::Tree, TextSyntax::Json)).unwrap();
    assert_eq!(by_hand, serde_json::to_value(&tree).unwrap());
}

#[test]
fn an_id_out_of_range_is_left_to_serde() {
    let text = b"chunk_size: 8\nvalid: true\nsnapshots: [0]\nexceptions:\n- {origin_chunk: 1, cow_chunk: 9, snapshots: [64]}\n";
    let error = with_text(text, false, |source| {
        read_whole::<SharedRestoreHead, _>(source, DumpSyntax::Yaml, "exceptions", flat_record)
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("snapshot id 64 is out of range"),
        "{error}"
    );
}

#[test]
fn the_literal_record_keys_are_the_field_table_keys() {
    let r = SharedRecord {
        origin_chunk: 5,
        cow_chunk: 123_456_789,
        snapshots: crate::shared::dump::ShareMask(0b1011),
    };
    for syntax in [TextSyntax::Json, TextSyntax::Yaml] {
        for with_snapshots in [false, true] {
            let mut literal = Vec::new();
            let mut keyed = Vec::new();
            {
                let mut batch = Batch::new(&mut literal);
                record(&mut batch, syntax, &r, with_snapshots);
                batch.drain().unwrap();
            }
            {
                let mut batch = Batch::new(&mut keyed);
                flow_key(&mut batch, syntax, RECORD_FIELDS[0], true);
                batch.number(r.origin_chunk);
                flow_key(&mut batch, syntax, RECORD_FIELDS[1], false);
                batch.number(r.cow_chunk);
                if with_snapshots {
                    flow_key(&mut batch, syntax, RECORD_FIELDS[2], false);
                    batch.id_list(r.snapshots.0, syntax);
                }
                batch.text(b"}");
                batch.drain().unwrap();
            }
            assert_eq!(
                String::from_utf8(literal).unwrap(),
                String::from_utf8(keyed).unwrap(),
                "{syntax:?} {with_snapshots}"
            );
        }
    }
}
