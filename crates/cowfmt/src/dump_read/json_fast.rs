//! The fast path for JSON in the layout `cowdump` writes: `{` alone on the
//! first line, each top-level field starting a line with two spaces and its
//! key, the list as one record per line (`    {"old_chunk":7,"new_chunk":2},`)
//! closed by `  ]`, and `}` alone on the last line. The record lines are read
//! directly; every other field is read by the general reader on its own (a
//! JSON string never spans lines, so a field's text is its lines up to the
//! next field's). Wherever the text leaves that layout, or a field does not
//! read on its own, the fast path gives up and the caller reads the whole dump
//! again with the general reader, which then names any error.

use std::io::{self, BufRead, Read};

use super::json::read_into;
use super::record_line::{LineStyle, RecordLine};
use super::{DumpFields, DumpReadError, DumpRequest, RecordSink};

/// The JSON side of `yaml_fast::read`, with its contract: `Ok(false)` when
/// the text leaves cowdump's layout.
pub(super) fn read<S: RecordSink>(
    input: &mut dyn BufRead,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
) -> Result<bool, DumpReadError> {
    let mut lines = Lines {
        input,
        line: Vec::with_capacity(512),
        ready: false,
    };
    if lines.peek()? != Some(b"{") {
        return Ok(false);
    }
    lines.take();
    let list_open = format!("  \"{}\": [", request.list);
    let list_empty = format!("  \"{}\": []", request.list);
    let mut record = RecordLine::default();
    // Whether the field before ended with a comma (another must follow).
    let mut more: Option<bool> = None;
    loop {
        let Some(line) = lines.peek()? else {
            return Ok(false);
        };
        if line == b"}" {
            lines.take();
            if more == Some(true) {
                return Ok(false);
            }
            return lines.rest_is_blank();
        }
        if !line.starts_with(b"  \"") || more == Some(false) {
            return Ok(false);
        }
        let (text, comma) = strip_comma(line);
        if text == list_open.as_bytes() || text == list_empty.as_bytes() {
            let empty = text == list_empty.as_bytes();
            if out.has_list || (comma && !empty) {
                return Ok(false);
            }
            out.has_list = true;
            lines.take();
            if empty {
                more = Some(comma);
                continue;
            }
            match read_records(&mut lines, request, out, &mut record)? {
                Some(comma) => more = Some(comma),
                None => return Ok(false),
            }
            continue;
        }
        let mut field = FieldText::new(&mut lines);
        let parsed = read_into(&mut field, request, out);
        let comma = field.ended_with_comma;
        match parsed {
            Ok(()) => more = Some(comma),
            Err(DumpReadError::Io(e)) => return Err(DumpReadError::Io(e)),
            Err(DumpReadError::Syntax(_)) => return Ok(false),
        }
    }
}

/// Reads the record lines after the list's opening line up to `  ]`; the
/// closing line's comma, or `None` when a line leaves the layout or a record
/// does not fit the sink.
fn read_records<S: RecordSink>(
    lines: &mut Lines<'_>,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
    record: &mut RecordLine,
) -> Result<Option<bool>, DumpReadError> {
    let mut expect_more = None;
    loop {
        let Some(line) = lines.peek()? else {
            return Ok(None);
        };
        let (text, comma) = strip_comma(line);
        if text == b"  ]" {
            lines.take();
            return Ok((expect_more != Some(true)).then_some(comma));
        }
        if expect_more == Some(false) || !record.parse(text, &LineStyle::JSON) {
            return Ok(None);
        }
        if !request.sink.flat_record(&out.fields, &record.flat(text))
            && request
                .sink
                .record(&out.fields, record.deserializer(text))
                .is_err()
        {
            return Ok(None);
        }
        lines.take();
        out.records += 1;
        expect_more = Some(comma);
    }
}

fn strip_comma(line: &[u8]) -> (&[u8], bool) {
    match line.strip_suffix(b",") {
        Some(text) => (text, true),
        None => (line, false),
    }
}

/// The dump's lines, one at a time, without their line feed.
struct Lines<'a> {
    input: &'a mut dyn BufRead,
    line: Vec<u8>,
    ready: bool,
}

impl Lines<'_> {
    /// The next line, read but not consumed.
    fn peek(&mut self) -> io::Result<Option<&[u8]>> {
        if !self.ready {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(None);
            }
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
            }
            self.ready = true;
        }
        Ok(Some(&self.line))
    }

    fn take(&mut self) {
        self.ready = false;
    }

    /// Whether only white space follows.
    fn rest_is_blank(&mut self) -> Result<bool, DumpReadError> {
        let mut rest = Vec::new();
        self.input.read_to_end(&mut rest)?;
        Ok(rest.iter().all(u8::is_ascii_whitespace))
    }
}

/// One top-level field's text as an object of its own: `{`, the field's
/// lines, and `}` (after `"":null` when the field ended with a comma, so that
/// the object stays JSON; the general reader drops that field).
struct FieldText<'l, 'a> {
    lines: &'l mut Lines<'a>,
    pending: Vec<u8>,
    at: usize,
    state: FieldState,
    ended_with_comma: bool,
}

#[derive(PartialEq)]
enum FieldState {
    Opening,
    First,
    Rest,
    Done,
}

impl<'l, 'a> FieldText<'l, 'a> {
    fn new(lines: &'l mut Lines<'a>) -> Self {
        FieldText {
            lines,
            pending: Vec::new(),
            at: 0,
            state: FieldState::Opening,
            ended_with_comma: false,
        }
    }

    /// Fills `pending` with the next piece of text; false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.pending.clear();
        self.at = 0;
        match self.state {
            FieldState::Opening => {
                self.pending.push(b'{');
                self.state = FieldState::First;
            }
            FieldState::First | FieldState::Rest => {
                let first = self.state == FieldState::First;
                match self.lines.peek()? {
                    Some(line)
                        if first || !(line.starts_with(b"  \"") || line.starts_with(b"}")) =>
                    {
                        self.pending.extend_from_slice(line);
                        self.pending.push(b'\n');
                        if let Some(last) = line.iter().rev().find(|b| !b.is_ascii_whitespace()) {
                            self.ended_with_comma = *last == b',';
                        }
                        self.lines.take();
                        self.state = FieldState::Rest;
                    }
                    _ => {
                        if self.ended_with_comma {
                            self.pending.extend_from_slice(b"\"\":null");
                        }
                        self.pending.push(b'}');
                        self.state = FieldState::Done;
                    }
                }
            }
            FieldState::Done => return Ok(false),
        }
        Ok(true)
    }
}

impl Read for FieldText<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.pending.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let len = buf.len().min(self.pending.len() - self.at);
        buf[..len].copy_from_slice(&self.pending[self.at..self.at + len]);
        self.at += len;
        Ok(len)
    }
}

impl BufRead for FieldText<'_, '_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.pending.len() {
            if !self.refill()? {
                return Ok(&[]);
            }
        }
        Ok(&self.pending[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at += amount;
    }
}
