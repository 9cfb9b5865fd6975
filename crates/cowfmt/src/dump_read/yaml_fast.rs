//! The fast path for YAML in the layout `cowdump` writes: top-level fields at
//! column 0, and the list as one flow mapping per line,
//! `- {old_chunk: 7, new_chunk: 2}` (`snapshots: [0, 3]` for a shared record).
//! Those lines are read directly; every other field is read by the general
//! reader on its own (a field's text ends before the next line that starts
//! with a plain key at column 0). Wherever the text leaves that layout, or a
//! field does not read on its own, the fast path gives up and the caller reads
//! the whole dump again with the general reader, which then names any error:
//! the fast path never decides what a document means when it is unsure.

use std::io::{BufRead, Read};

use super::record_line::{LineStyle, RecordLine};
use super::yaml::{read_document, starts_entry, Events, Utf8Chars};
use super::{DumpFields, DumpReadError, DumpRequest, RecordSink};

/// Reads `input` into `out` if it is in cowdump's layout: `Ok(true)` when
/// done, `Ok(false)` when the text leaves the layout (the records handed to
/// the sink so far are to be forgotten). Only a failure to read is an error.
pub(super) fn read<S: RecordSink>(
    input: &mut dyn BufRead,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
) -> Result<bool, DumpReadError> {
    let list_line = format!("{}:", request.list);
    let mut line = Vec::with_capacity(256);
    let mut record = RecordLine::default();
    let mut fields = 0u64;
    loop {
        let Some(&first) = input.fill_buf()?.first() else {
            return Ok(fields > 0);
        };
        if !starts_entry(first) {
            return Ok(false);
        }
        fields += 1;
        line.clear();
        input.read_until(b'\n', &mut line)?;
        let key_line = line.strip_suffix(b"\n").unwrap_or(&line);
        if key_line == list_line.as_bytes() {
            if out.has_list {
                return Ok(false);
            }
            out.has_list = true;
            if !read_records(input, request, out, &mut line, &mut record)? {
                return Ok(false);
            }
            continue;
        }
        let chars = Utf8Chars::new((&line[..]).chain(&mut *input), true);
        match read_document(&mut Events::new(chars), request, out) {
            Ok(()) => {}
            Err(DumpReadError::Io(e)) => return Err(DumpReadError::Io(e)),
            Err(DumpReadError::Syntax(_)) => return Ok(false),
        }
    }
}

/// Reads the record lines after the list's key line; false when a line
/// leaves the layout or a record does not fit the sink.
fn read_records<S: RecordSink>(
    input: &mut dyn BufRead,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
    line: &mut Vec<u8>,
    record: &mut RecordLine,
) -> Result<bool, DumpReadError> {
    let mut any = false;
    loop {
        match input.fill_buf()?.first() {
            Some(b'-') => {}
            Some(&byte) if starts_entry(byte) => return Ok(any),
            None => return Ok(any),
            Some(_) => return Ok(false),
        }
        // A line whole in the input's buffer is read in place.
        let buffer = input.fill_buf()?;
        if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            if !take_record(&buffer[..end], request, out, record) {
                return Ok(false);
            }
            input.consume(end + 1);
        } else {
            line.clear();
            input.read_until(b'\n', line)?;
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            if !take_record(text, request, out, record) {
                return Ok(false);
            }
        }
        out.records += 1;
        any = true;
    }
}

/// Hands one record line to the sink; false when it leaves the layout or
/// does not fit the sink.
#[inline(always)]
fn take_record<S: RecordSink>(
    text: &[u8],
    request: &mut DumpRequest<'_, S>,
    out: &DumpFields,
    record: &mut RecordLine,
) -> bool {
    record.parse(text, &LineStyle::YAML)
        && (request.sink.flat_record(&out.fields, &record.flat(text))
            || request
                .sink
                .record(&out.fields, record.deserializer(text))
                .is_ok())
}
