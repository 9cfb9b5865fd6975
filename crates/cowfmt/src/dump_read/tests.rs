//! The streaming readers: records arrive while the input is still being
//! read, both syntaxes and both YAML paths read the same, and errors name
//! the place.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::{json, Map, Value};

use super::*;
use crate::persistent::ExceptionRecord;

/// Collects records; with `produced`, checks that each arrives before the
/// input got further than `lookahead` bytes past it.
#[derive(Default)]
struct Collect {
    records: Vec<ExceptionRecord>,
    produced: Option<(Rc<Cell<u64>>, u64)>,
    restarts: u32,
}

impl RecordSink for Collect {
    fn record<'de, D: Deserializer<'de>>(
        &mut self,
        _fields: &Map<String, Value>,
        element: D,
    ) -> Result<(), D::Error> {
        let record = ExceptionRecord::deserialize(element)?;
        if let Some((produced, lookahead)) = &self.produced {
            let due = GENERATED_HEAD.len() as u64 + (self.records.len() as u64 + 1) * LINE_BYTES;
            if produced.get() > due + lookahead {
                return Err(D::Error::custom(format!(
                    "record {} arrived after {} bytes were read",
                    self.records.len(),
                    produced.get()
                )));
            }
        }
        if record.old_chunk == 666 {
            return Err(D::Error::custom("old_chunk 666 is refused"));
        }
        self.records.push(record);
        Ok(())
    }

    fn restart(&mut self) {
        self.records.clear();
        self.restarts += 1;
    }
}

const GENERATED_HEAD: &str =
    "format_version: 1\nkind: persistent\nchunk_size: 8\nvalid: true\nexceptions:\n";
/// Bytes of each generated record line (numbers padded to 10 digits).
const LINE_BYTES: u64 = "- {old_chunk: 1000000000, new_chunk: 1000000000}\n".len() as u64;

/// A YAML dump of `count` records made on the fly, counting the bytes handed out.
struct Generated {
    count: u64,
    next: u64,
    pending: Vec<u8>,
    produced: Rc<Cell<u64>>,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            if self.next == 0 {
                self.pending.extend_from_slice(GENERATED_HEAD.as_bytes());
            } else if self.next <= self.count {
                let n = 1_000_000_000 + self.next;
                self.pending.extend_from_slice(
                    format!("- {{old_chunk: {n}, new_chunk: {n}}}\n").as_bytes(),
                );
            } else if self.next == self.count + 1 {
                self.pending.extend_from_slice(b"status: done\n");
            }
            self.next += 1;
        }
        let len = buf.len().min(self.pending.len());
        buf[..len].copy_from_slice(&self.pending[..len]);
        self.pending.drain(..len);
        self.produced.set(self.produced.get() + len as u64);
        Ok(len)
    }
}

fn generated(count: u64) -> (Box<dyn BufRead>, Rc<Cell<u64>>) {
    let produced = Rc::new(Cell::new(0));
    let input = Generated {
        count,
        next: 0,
        pending: Vec::new(),
        produced: Rc::clone(&produced),
    };
    (Box::new(BufReader::with_capacity(1 << 12, input)), produced)
}

fn read(
    text: &str,
    syntax: DumpSyntax,
    fast: bool,
) -> (Result<DumpFields, DumpReadError>, Collect) {
    let mut sink = Collect::default();
    let mut reopen = || -> io::Result<Box<dyn BufRead>> {
        Ok(Box::new(io::Cursor::new(text.as_bytes().to_vec())))
    };
    let source = DumpSource {
        input: Box::new(io::Cursor::new(text.as_bytes().to_vec())),
        reopen: fast.then_some(&mut reopen as _),
    };
    let request = DumpRequest {
        list: "exceptions",
        keep: &["chunk_size", "kind"],
        sink: &mut sink,
    };
    let result = read_dump(source, syntax, request);
    (result, sink)
}

#[test]
fn records_reach_the_sink_while_the_input_is_read() {
    // 200,000 records (9.8 MB of text); each must arrive before the reader is
    // more than its buffers past it: it never holds the list.
    for fast in [true, false] {
        let (input, produced) = generated(200_000);
        let mut sink = Collect {
            produced: Some((Rc::clone(&produced), 1 << 16)),
            ..Collect::default()
        };
        let mut never = || -> io::Result<Box<dyn BufRead>> { Err(io::Error::other("no reread")) };
        let source = DumpSource {
            input,
            reopen: fast.then_some(&mut never as _),
        };
        let request = DumpRequest {
            list: "exceptions",
            keep: &["chunk_size"],
            sink: &mut sink,
        };
        let fields = read_dump(source, DumpSyntax::Yaml, request).unwrap();
        assert_eq!(fields.records, 200_000, "fast path: {fast}");
        assert_eq!(sink.records.len(), 200_000);
        assert_eq!(sink.restarts, 0);
        assert_eq!(fields.fields["chunk_size"], json!(8));
        assert!(
            !fields.fields.contains_key("status"),
            "fields not asked for are dropped"
        );
    }
}

#[test]
fn json_records_reach_the_sink_while_the_input_is_read() {
    let produced = Rc::new(Cell::new(0u64));
    let count = 100_000u64;
    let counted = Rc::clone(&produced);
    let mut lines = (0..=count + 1).map(move |i| match i {
        0 => "{\"chunk_size\":8,\"exceptions\":[\n".to_string(),
        i if i <= count => format!(
            "{{\"old_chunk\":{},\"new_chunk\":{}}}{}\n",
            i,
            i,
            if i < count { "," } else { "" }
        ),
        _ => "],\"status\":\"done\"}\n".to_string(),
    });
    let mut pending = Vec::new();
    let input = std::iter::from_fn(move || {
        if pending.is_empty() {
            pending = lines.next()?.into_bytes();
        }
        counted.set(counted.get() + 1);
        Some(pending.remove(0))
    });
    struct Bytes<I>(I);
    impl<I: Iterator<Item = u8>> Read for Bytes<I> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut n = 0;
            while n < buf.len() {
                match self.0.next() {
                    Some(b) => buf[n] = b,
                    None => break,
                }
                n += 1;
            }
            Ok(n)
        }
    }
    struct Bounded {
        produced: Rc<Cell<u64>>,
        seen: u64,
    }
    impl RecordSink for Bounded {
        fn record<'de, D: Deserializer<'de>>(
            &mut self,
            _: &Map<String, Value>,
            element: D,
        ) -> Result<(), D::Error> {
            ExceptionRecord::deserialize(element)?;
            self.seen += 1;
            // At most ~40 bytes a record, plus the two buffers.
            assert!(self.produced.get() <= self.seen * 40 + (1 << 17));
            Ok(())
        }
        fn restart(&mut self) {}
    }
    let mut sink = Bounded {
        produced: Rc::clone(&produced),
        seen: 0,
    };
    let source = DumpSource {
        input: Box::new(BufReader::with_capacity(1 << 12, Bytes(input))),
        reopen: None,
    };
    let request = DumpRequest {
        list: "exceptions",
        keep: &["chunk_size"],
        sink: &mut sink,
    };
    let fields = read_dump(source, DumpSyntax::Json, request).unwrap();
    assert_eq!(fields.records, count);
    assert_eq!(sink.seen, count);
}

const CANONICAL: &str = "format_version: 1\nkind: persistent\nchunk_size: 8\nexceptions:\n- {old_chunk: 5, new_chunk: 2}\n- {old_chunk: 9, new_chunk: 3}\nareas:\n- index: 0\n  chunk: 1\nstatus: 24/2048 16\n";

#[test]
fn the_fast_path_reads_what_the_general_reader_reads() {
    let variants = [
        CANONICAL.to_string(),
        // Block-style records, a comment, an indented list, quoted numbers:
        // the fast path hands these to the general reader.
        CANONICAL.replace(
            "- {old_chunk: 9, new_chunk: 3}",
            "- old_chunk: 9\n  new_chunk: 3",
        ),
        CANONICAL.replace(
            "- {old_chunk: 9, new_chunk: 3}\n",
            "- {old_chunk: 9, new_chunk: 3}  # x\n",
        ),
        CANONICAL.replace("\n- {", "\n  - {"),
        CANONICAL.replace("chunk_size: 8", "chunk_size: 0x8"),
        CANONICAL.replace("kind: persistent", "kind: &k persistent\nalias: *k"),
        format!("---\n{CANONICAL}"),
        CANONICAL.replace("{old_chunk: 5,", "{old_chunk: 05,"),
    ];
    for text in &variants {
        let (general, general_sink) = read(text, DumpSyntax::Yaml, false);
        let (fast, fast_sink) = read(text, DumpSyntax::Yaml, true);
        let general = general.unwrap();
        let fast = fast.unwrap();
        assert_eq!(fast_sink.records, general_sink.records, "{text}");
        assert_eq!(fast.fields, general.fields, "{text}");
        assert_eq!(fast.records, 2, "{text}");
        assert_eq!(fast_sink.records[1].old_chunk, 9, "{text}");
    }
    let (_, sink) = read(CANONICAL, DumpSyntax::Yaml, true);
    assert_eq!(sink.restarts, 0, "cowdump's layout needs no second reading");
}

#[test]
fn yaml_errors_name_the_line_and_the_record() {
    let cases = [
        (
            CANONICAL.replace("new_chunk: 3}", "new_chunk: x}"),
            "exceptions[1] at line 6 column 3: invalid type: string \"x\", expected u64",
        ),
        (
            CANONICAL.replace(", new_chunk: 3}", "}"),
            "exceptions[1] at line 6 column 3: missing field `new_chunk`",
        ),
        (
            CANONICAL.replace("old_chunk: 9", "old_chunk: 666"),
            "exceptions[1] at line 6 column 3: old_chunk 666 is refused",
        ),
        (
            CANONICAL.replace(
                "- {old_chunk: 9, new_chunk: 3}",
                "- {old_chunk: 9, new_chunk: [3}",
            ),
            "line 7 column 1: invalid indentation in flow construct",
        ),
        (
            format!("{CANONICAL}chunk_size: 9\n"),
            "duplicate field `chunk_size`",
        ),
        (String::new(), "the dump is empty"),
        (
            "- 1\n- 2\n".to_string(),
            "line 1 column 1: expected a mapping of fields",
        ),
    ];
    for (text, expected) in &cases {
        for fast in [false, true] {
            let (result, _) = read(text, DumpSyntax::Yaml, fast);
            let error = result.unwrap_err().to_string();
            assert!(error.contains(expected), "fast {fast}: {error}\n{text}");
        }
    }
}

#[test]
fn json_errors_name_the_line_and_the_record() {
    let text = "{\"chunk_size\":8,\n\"exceptions\":[\n{\"old_chunk\":1,\"new_chunk\":2},\n{\"old_chunk\":1,\"new_chunk\":\"x\"}]}";
    let (result, _) = read(text, DumpSyntax::Json, false);
    let error = result.unwrap_err().to_string();
    assert!(
        error.starts_with("exceptions[1]: invalid type: string \"x\", expected u64 at line 4"),
        "{error}"
    );
    let text = "{\"chunk_size\":8,\"exceptions\":[{\"old_chunk\":666,\"new_chunk\":2}]}";
    let error = read(text, DumpSyntax::Json, false)
        .0
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("exceptions[0]: old_chunk 666 is refused at line 1"),
        "{error}"
    );
    let error = read(
        "{\"chunk_size\":8,\"chunk_size\":8,\"exceptions\":[]}",
        DumpSyntax::Json,
        false,
    )
    .0
    .unwrap_err()
    .to_string();
    assert!(error.contains("duplicate field `chunk_size`"), "{error}");
}

#[test]
fn struct_fields_lists_a_head_struct() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Head {
        chunk_size: u32,
        #[serde(default)]
        valid: Option<bool>,
    }
    assert_eq!(struct_fields::<Head>(), ["chunk_size", "valid"]);
}

const CANONICAL_JSON: &str = "{\n  \"format_version\": 1,\n  \"kind\": \"persistent\",\n  \"geometry\": {\n    \"chunk_bytes\": 4096\n  },\n  \"chunk_size\": 8,\n  \"exceptions\": [\n    {\"old_chunk\":5,\"new_chunk\":2},\n    {\"old_chunk\":9,\"new_chunk\":3}\n  ],\n  \"status\": \"24/2048 16\"\n}\n";

#[test]
fn the_json_fast_path_reads_what_the_general_reader_reads() {
    let variants = [
        CANONICAL_JSON.to_string(),
        CANONICAL_JSON.replace("\n    {\"old_chunk\":9", "\n      {\"old_chunk\":9"),
        CANONICAL_JSON.replace(
            "{\"old_chunk\":9,\"new_chunk\":3}",
            "{ \"old_chunk\": 9, \"new_chunk\": 3 }",
        ),
        CANONICAL_JSON.replace("\n  \"status\"", "\n\"status\""),
        CANONICAL_JSON.replace("\n", ""),
        CANONICAL_JSON.replace("\"chunk_size\": 8", "\"chunk_size\":\n    8"),
        CANONICAL_JSON.replace("  ],\n", "  ]\n  ,\n"),
    ];
    for text in &variants {
        let (general, general_sink) = read(text, DumpSyntax::Json, false);
        let (fast, fast_sink) = read(text, DumpSyntax::Json, true);
        let general = general.unwrap();
        let fast = fast.unwrap();
        assert_eq!(fast_sink.records, general_sink.records, "{text}");
        assert_eq!(fast.fields, general.fields, "{text}");
        assert_eq!(fast.records, 2, "{text}");
        assert_eq!(fast.fields["chunk_size"], json!(8), "{text}");
    }
    let (_, sink) = read(CANONICAL_JSON, DumpSyntax::Json, true);
    assert_eq!(sink.restarts, 0, "cowdump's layout needs no second reading");
    // Text the fast path must not accept although each line looks right.
    for broken in [
        CANONICAL_JSON.replace(
            "{\"old_chunk\":9,\"new_chunk\":3}",
            "{\"old_chunk\":9,\"new_chunk\":3},",
        ),
        CANONICAL_JSON.replace("\"status\": \"24/2048 16\"", "\"status\": \"24/2048 16\","),
        CANONICAL_JSON.replace("  ],\n", "  ]\n"),
        CANONICAL_JSON.replace("\"kind\": \"persistent\",", "\"kind\": \"persistent\""),
        format!("{CANONICAL_JSON}x"),
    ] {
        for fast in [false, true] {
            assert!(
                read(&broken, DumpSyntax::Json, fast).0.is_err(),
                "fast {fast}: {broken}"
            );
        }
    }
}
