//! The persistent dump schema as text, both ways: the JSON and YAML document
//! `cowdump` writes (head, `exceptions` streamed in on-disk order, tail,
//! `runs`, `problems`) and the record lines `mkcow --from-dump` reads back.
//! The head and tail go through serde; the list lines are written by hand, in
//! serde's field order, for speed.

use std::io::Write;

use serde::de::{Deserialize, Deserializer};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{stream_records, DumpHead, DumpTail, RestoreHead};
use crate::dump_lines::{open_list, write_fields, DumpWriteError, ListWriter, TextSyntax};
use crate::dump_read::{
    read_dump, struct_fields, DumpReadError, DumpRequest, DumpSource, DumpSyntax, FlatRecord,
    RecordSink,
};
use crate::persistent::runs::Run;
use crate::persistent::{ExceptionRecord, PersistentStore};

/// The fields of an `exceptions` item, in order.
pub const RECORD_FIELDS: [&str; 2] = ["old_chunk", "new_chunk"];
/// The fields of a `runs` item, in order.
const RUN_FIELDS: [&str; 3] = ["old_chunk", "new_chunk", "count"];

/// Writes the document of `store` (whose head is `head`) in `syntax`, the
/// kernel's runs too when `with_runs`; `tick` gets the count of records
/// written after each one. Returns the tail.
pub fn write_document(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    syntax: TextSyntax,
    with_runs: bool,
    tick: &dyn Fn(u64),
) -> Result<DumpTail, DumpWriteError> {
    write_fields(out, syntax, head, true)?;
    open_list(out, syntax, "exceptions")?;
    let mut list = ListWriter::new(out, syntax, &RECORD_FIELDS);
    let tail = stream_records(store, with_runs, |record| {
        list.numbers(&[record.old_chunk, record.new_chunk]);
        tick(list.batch.count);
        list.batch.end_record()
    })?;
    list.close()?;
    let parts = TailParts::split(tail);
    write_fields(out, syntax, &parts.rest, false)?;
    if let Some(runs) = &parts.runs {
        write_runs(out, syntax, runs)?;
    }
    if !parts.problems.problems.is_empty() {
        write_fields(out, syntax, &parts.problems, false)?;
    }
    if syntax == TextSyntax::Json {
        writeln!(out, "\n}}")?;
    }
    Ok(parts.join())
}

fn write_runs(out: &mut dyn Write, syntax: TextSyntax, runs: &[Run]) -> Result<(), DumpWriteError> {
    open_list(out, syntax, "runs")?;
    let mut list = ListWriter::new(out, syntax, &RUN_FIELDS);
    for run in runs {
        list.numbers(&[run.old_chunk, run.new_chunk, run.count]);
        list.batch.end_record()?;
    }
    list.close()?;
    Ok(())
}

/// The problems of a dump, serialized after the runs as the schema orders them.
#[derive(Serialize)]
struct Problems {
    problems: Vec<String>,
}

/// A dump tail split for writing: the small fields, the runs (one line each),
/// then the problems.
struct TailParts {
    rest: DumpTail,
    runs: Option<Vec<Run>>,
    problems: Problems,
}

impl TailParts {
    fn split(mut tail: DumpTail) -> Self {
        TailParts {
            runs: tail.runs.take(),
            problems: Problems {
                problems: std::mem::take(&mut tail.problems),
            },
            rest: tail,
        }
    }

    fn join(self) -> DumpTail {
        DumpTail {
            runs: self.runs,
            problems: self.problems.problems,
            ..self.rest
        }
    }
}

/// The record of an `exceptions` line in the writer's own field order, or
/// `None` for anything else (left to serde, which words any error).
pub fn flat_record(line: &FlatRecord<'_>) -> Option<ExceptionRecord> {
    if line.len() != RECORD_FIELDS.len()
        || line.key(0) != RECORD_FIELDS[0].as_bytes()
        || line.key(1) != RECORD_FIELDS[1].as_bytes()
    {
        return None;
    }
    Some(ExceptionRecord {
        old_chunk: line.number(0)?,
        new_chunk: line.number(1)?,
    })
}

/// A whole dump read back: the head fields a restore uses and every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// The head.
    pub head: RestoreHead,
    /// The records, in the dump's order.
    pub records: Vec<ExceptionRecord>,
}

/// Reads a whole dump of `syntax` from `source` into memory (the streaming
/// restore of `mkcow` reads the same lines with [`flat_record`]).
pub fn read_document(
    source: DumpSource<'_>,
    syntax: DumpSyntax,
) -> Result<ReadBack, DumpReadError> {
    let mut records = Records::default();
    let request = DumpRequest {
        list: "exceptions",
        keep: struct_fields::<RestoreHead>(),
        sink: &mut records,
    };
    let fields = read_dump(source, syntax, request)?;
    Ok(ReadBack {
        head: fields.decode()?,
        records: records.0,
    })
}

/// Every record of a dump, kept in memory.
#[derive(Default)]
struct Records(Vec<ExceptionRecord>);

impl RecordSink for Records {
    fn record<'de, D: Deserializer<'de>>(
        &mut self,
        _fields: &Map<String, Value>,
        element: D,
    ) -> Result<(), D::Error> {
        self.0.push(ExceptionRecord::deserialize(element)?);
        Ok(())
    }

    fn restart(&mut self) {
        self.0.clear();
    }

    fn flat_record(&mut self, _fields: &Map<String, Value>, line: &FlatRecord<'_>) -> bool {
        flat_record(line)
            .map(|record| self.0.push(record))
            .is_some()
    }
}

#[cfg(test)]
mod tests;
