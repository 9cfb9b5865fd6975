//! The persistent dump schema as text, both ways: the JSON and YAML document
//! `cowdump` writes (head, `exceptions` streamed in on-disk order, tail,
//! `runs`, `problems`) and the record lines `mkcow --from-dump` reads back.
//! The head and tail go through serde; the list lines are written by hand, in
//! serde's field order, for speed.

use std::io::Write;

use serde::Serialize;

use super::{stream_records, DumpHead, DumpTail};
use crate::dump_lines::{open_list, write_fields, DumpWriteError, ListWriter, TextSyntax};
use crate::dump_read::FlatRecord;
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
        write_record(&mut list, record);
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

/// One `exceptions` item, as [`ListWriter::numbers`] writes it with
/// [`RECORD_FIELDS`], but with the keys as literals of a known length: the
/// hot loop of a dump, where copying a key from the writer's table cost a
/// fifth of the time.
#[inline]
fn write_record(list: &mut ListWriter<'_>, record: &ExceptionRecord) {
    list.item();
    match list.syntax {
        TextSyntax::Json => {
            list.batch.text(b"{\"old_chunk\":");
            list.batch.number(record.old_chunk);
            list.batch.text(b",\"new_chunk\":");
        }
        TextSyntax::Yaml => {
            list.batch.text(b"{old_chunk: ");
            list.batch.number(record.old_chunk);
            list.batch.text(b", new_chunk: ");
        }
    }
    list.batch.number(record.new_chunk);
    list.batch.text(b"}");
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

#[cfg(test)]
mod tests;
