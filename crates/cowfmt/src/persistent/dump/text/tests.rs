//! The persistent dump schema round trip: what the writer writes, the reader
//! reads back as the store holds it, in both syntaxes and on both read paths.

use super::*;
use crate::device::{Access, Device};
use crate::dump_read::{read_text, DumpSyntax, ReadBack};
use crate::persistent::dump::{dump, head_of, PersistentDump, RestoreHead};
use crate::persistent::test_store::committed_store;
use crate::StoreKind;

fn written(store: &PersistentStore, syntax: TextSyntax, with_runs: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let head = head_of(store, StoreKind::Persistent);
    write_document(&mut out, store, &head, syntax, with_runs, &|_| {}).unwrap();
    out
}

/// What the schema's reader reads back: the head a restore uses and every record.
type Back = ReadBack<RestoreHead, ExceptionRecord>;

fn read_back(text: &[u8], syntax: DumpSyntax, fast: bool) -> Back {
    read_text(text, syntax, fast, flat_record)
}

#[test]
fn what_is_written_reads_back_as_the_store_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    committed_store(&path, 2048, 700, |i| i * 7 + 3);
    let store =
        PersistentStore::open(Device::open(&path, Access::ReadOnly).unwrap(), None).unwrap();
    let model = dump(&store, StoreKind::Persistent, false).unwrap();
    assert_eq!(model.exceptions.len(), 700);
    for (syntax, read_as) in [
        (TextSyntax::Json, DumpSyntax::Json),
        (TextSyntax::Yaml, DumpSyntax::Yaml),
    ] {
        for with_runs in [false, true] {
            let text = written(&store, syntax, with_runs);
            for fast in [true, false] {
                let back = read_back(&text, read_as, fast);
                assert_eq!(
                    back.records, model.exceptions,
                    "{syntax:?} runs {with_runs} fast {fast}"
                );
                assert_eq!(back.head.chunk_size, model.head.chunk_size);
                assert_eq!(back.head.valid, model.head.valid);
                assert_eq!(back.head.valid_raw, Some(model.head.valid_raw));
                assert_eq!(back.head.kind, Some(StoreKind::Persistent));
                assert_eq!(back.head.device_chunks, Some(model.head.device_chunks));
            }
        }
    }
}

#[test]
fn the_whole_document_reads_back_as_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    committed_store(&path, 512, 40, |i| 1000 - i);
    let store =
        PersistentStore::open(Device::open(&path, Access::ReadOnly).unwrap(), None).unwrap();
    let model = dump(&store, StoreKind::Persistent, true).unwrap();
    let json: PersistentDump =
        serde_json::from_slice(&written(&store, TextSyntax::Json, true)).unwrap();
    assert_eq!(json, model);
    let yaml: PersistentDump =
        serde_yaml::from_slice(&written(&store, TextSyntax::Yaml, true)).unwrap();
    assert_eq!(yaml, model);
}

#[test]
fn a_line_in_another_field_order_is_left_to_serde() {
    let text = b"chunk_size: 8\nvalid: true\nexceptions:\n- {new_chunk: 5, old_chunk: 9}\n";
    for fast in [true, false] {
        let back = read_back(text, DumpSyntax::Yaml, fast);
        assert_eq!(
            back.records,
            vec![ExceptionRecord {
                old_chunk: 9,
                new_chunk: 5
            }]
        );
    }
}

#[test]
fn the_literal_record_writer_writes_what_the_field_table_writes() {
    for syntax in [TextSyntax::Json, TextSyntax::Yaml] {
        let records = [(0, 2), (7, 123_456_789), (u64::MAX, 1)];
        let mut literal = Vec::new();
        let mut table = Vec::new();
        {
            let mut list = ListWriter::new(&mut literal, syntax, &RECORD_FIELDS);
            for (old_chunk, new_chunk) in records {
                write_record(
                    &mut list,
                    &ExceptionRecord {
                        old_chunk,
                        new_chunk,
                    },
                );
                list.batch.end_record().unwrap();
            }
            list.close().unwrap();
        }
        {
            let mut list = ListWriter::new(&mut table, syntax, &RECORD_FIELDS);
            for (old_chunk, new_chunk) in records {
                list.numbers(&[old_chunk, new_chunk]);
                list.batch.end_record().unwrap();
            }
            list.close().unwrap();
        }
        assert_eq!(
            String::from_utf8(literal).unwrap(),
            String::from_utf8(table).unwrap(),
            "{syntax:?}"
        );
    }
}
