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

use serde::de::value::{Error as ValueError, MapDeserializer, SeqDeserializer};
use serde::de::{Deserializer, IntoDeserializer, Visitor};

use super::yaml::{read_document, starts_entry, Events, Utf8Chars};
use super::{DumpFields, DumpReadError, DumpRequest, RecordSink};

/// Most fields in a record line.
const MAX_FIELDS: usize = 4;
/// Most ids in a record line's list (one per snapshot).
const MAX_IDS: usize = 64;

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
        line.clear();
        input.read_until(b'\n', line)?;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if !record.parse(text) {
            return Ok(false);
        }
        if request.sink.record(&out.fields, record.deserializer()).is_err() {
            return Ok(false);
        }
        out.records += 1;
        any = true;
    }
}

/// One record line, parsed: up to [`MAX_FIELDS`] fields of a number or one
/// list of numbers.
struct RecordLine {
    keys: [(usize, usize); MAX_FIELDS],
    values: [Field; MAX_FIELDS],
    len: usize,
    ids: [u64; MAX_IDS],
    id_count: usize,
    text: Vec<u8>,
}

impl Default for RecordLine {
    fn default() -> Self {
        RecordLine {
            keys: [(0, 0); MAX_FIELDS],
            values: [Field::Number(0); MAX_FIELDS],
            len: 0,
            ids: [0; MAX_IDS],
            id_count: 0,
            text: Vec::with_capacity(256),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Number(u64),
    Ids,
}

impl RecordLine {
    /// Parses `- {key: N, key: N, key: [N, N]}` exactly; false for anything else.
    fn parse(&mut self, line: &[u8]) -> bool {
        self.len = 0;
        self.id_count = 0;
        self.text.clear();
        self.text.extend_from_slice(line);
        let Some(body) = line
            .strip_prefix(b"- {")
            .and_then(|rest| rest.strip_suffix(b"}"))
        else {
            return false;
        };
        let base = 3;
        let mut at = 0;
        loop {
            let key_len = body[at..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
                .count();
            if key_len == 0 || self.len == MAX_FIELDS || !body[at + key_len..].starts_with(b": ")
            {
                return false;
            }
            self.keys[self.len] = (base + at, base + at + key_len);
            at += key_len + 2;
            let value = if body.get(at) == Some(&b'[') {
                if self.id_count > 0 {
                    return false;
                }
                at += 1;
                if body.get(at) == Some(&b']') {
                    at += 1;
                } else {
                    loop {
                        let Some((id, len)) = number(&body[at..]) else {
                            return false;
                        };
                        if self.id_count == MAX_IDS {
                            return false;
                        }
                        self.ids[self.id_count] = id;
                        self.id_count += 1;
                        at += len;
                        match &body[at..] {
                            [b']', ..] => {
                                at += 1;
                                break;
                            }
                            [b',', b' ', ..] => at += 2,
                            _ => return false,
                        }
                    }
                }
                Field::Ids
            } else {
                let Some((n, len)) = number(&body[at..]) else {
                    return false;
                };
                at += len;
                Field::Number(n)
            };
            self.values[self.len] = value;
            self.len += 1;
            match &body[at..] {
                [] => return true,
                [b',', b' ', ..] => at += 2,
                _ => return false,
            }
        }
    }

    fn deserializer<'s>(&'s self) -> impl Deserializer<'s, Error = ValueError> + 's {
        MapDeserializer::new((0..self.len).map(move |i| {
            let (start, end) = self.keys[i];
            let key = std::str::from_utf8(&self.text[start..end]).unwrap_or_default();
            let value = match self.values[i] {
                Field::Number(n) => Value::Number(n),
                Field::Ids => Value::Ids(&self.ids[..self.id_count]),
            };
            (key, value)
        }))
    }
}

/// A decimal number without a sign or leading zeros that fits 64 bits, and
/// its length; what YAML's core schema reads as that integer.
fn number(text: &[u8]) -> Option<(u64, usize)> {
    let len = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || (len > 1 && text[0] == b'0') {
        return None;
    }
    let mut n = 0u64;
    for &digit in &text[..len] {
        n = n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some((n, len))
}

/// A value of a record line, for serde.
#[derive(Debug, Clone, Copy)]
enum Value<'l> {
    Number(u64),
    Ids(&'l [u64]),
}

impl<'de, 'l> IntoDeserializer<'de, ValueError> for Value<'l> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Value<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Number(n) => visitor.visit_u64(n),
            Value::Ids(ids) => {
                let mut seq = SeqDeserializer::new(ids.iter().copied());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
