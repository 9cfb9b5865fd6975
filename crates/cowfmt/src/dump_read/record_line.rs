//! One list element written on one line, as `cowdump` writes records: a flow
//! mapping of numbers and at most one list of numbers, in a fixed spelling
//! (`- {old_chunk: 7, new_chunk: 2}` in YAML, `{"old_chunk":7,"new_chunk":2}`
//! in JSON). Such a line means the same in both syntaxes and is read
//! directly; anything else is left to the general readers.

use serde::de::value::{BytesDeserializer, Error as ValueError, MapDeserializer, SeqDeserializer};
use serde::de::{Deserializer, IntoDeserializer, Visitor};

/// Most fields in a record line.
const MAX_FIELDS: usize = 4;
/// Most ids in a record line's list (one per snapshot).
const MAX_IDS: usize = 64;

/// How a syntax spells a record line.
pub(super) struct LineStyle {
    /// Before the first key: `- {`.
    pub open: &'static [u8],
    /// Around each key: `"` in JSON.
    pub key_quote: &'static [u8],
    /// After a key: `: `.
    pub colon: &'static [u8],
    /// Between fields and between ids: `, `.
    pub comma: &'static [u8],
    /// After the last field: `}`.
    pub close: &'static [u8],
}

impl LineStyle {
    /// `    {"old_chunk":7,"new_chunk":2}` (then `,` unless it is the last).
    pub(super) const JSON: LineStyle = LineStyle {
        open: b"    {",
        key_quote: b"\"",
        colon: b":",
        comma: b",",
        close: b"}",
    };

    /// `- {old_chunk: 7, new_chunk: 2}`, `snapshots: [0, 3]`.
    pub(super) const YAML: LineStyle = LineStyle {
        open: b"- {",
        key_quote: b"",
        colon: b": ",
        comma: b", ",
        close: b"}",
    };
}

/// One record line, parsed: up to [`MAX_FIELDS`] fields of a number or one
/// list of numbers.
pub(super) struct RecordLine {
    keys: [(usize, usize); MAX_FIELDS],
    values: [Field; MAX_FIELDS],
    len: usize,
    ids: [u64; MAX_IDS],
    id_count: usize,
}

impl Default for RecordLine {
    fn default() -> Self {
        RecordLine {
            keys: [(0, 0); MAX_FIELDS],
            values: [Field::Number(0); MAX_FIELDS],
            len: 0,
            ids: [0; MAX_IDS],
            id_count: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Number(u64),
    Ids,
}

impl RecordLine {
    /// Parses a line of `style` exactly (`- {key: N, key: [N, N]}`); false
    /// for anything else.
    #[inline(always)]
    pub(super) fn parse(&mut self, line: &[u8], style: &LineStyle) -> bool {
        self.len = 0;
        self.id_count = 0;
        let Some(body) = line
            .strip_prefix(style.open)
            .and_then(|rest| rest.strip_suffix(style.close))
        else {
            return false;
        };
        let base = style.open.len();
        let mut at = 0;
        loop {
            if !body[at..].starts_with_bytes(style.key_quote) {
                return false;
            }
            at += style.key_quote.len();
            let key_len = body[at..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
                .count();
            if key_len == 0
                || self.len == MAX_FIELDS
                || !body[at + key_len..].starts_with_bytes(style.key_quote)
                || !body[at + key_len + style.key_quote.len()..].starts_with_bytes(style.colon)
            {
                return false;
            }
            self.keys[self.len] = (base + at, base + at + key_len);
            at += key_len + style.key_quote.len() + style.colon.len();
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
                        if body[at..].starts_with_bytes(b"]") {
                            at += 1;
                            break;
                        }
                        if !body[at..].starts_with_bytes(style.comma) {
                            return false;
                        }
                        at += style.comma.len();
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
            if at == body.len() {
                return true;
            }
            if !body[at..].starts_with_bytes(style.comma) {
                return false;
            }
            at += style.comma.len();
        }
    }

    /// The line last parsed (`line`), for the sink. Keys go to serde as
    /// bytes, which derived structs match like strings.
    pub(super) fn deserializer<'s>(
        &'s self,
        line: &'s [u8],
    ) -> impl Deserializer<'s, Error = ValueError> + 's {
        MapDeserializer::new((0..self.len).map(move |i| {
            let (start, end) = self.keys[i];
            let value = match self.values[i] {
                Field::Number(n) => Value::Number(n),
                Field::Ids => Value::Ids(&self.ids[..self.id_count]),
            };
            (Key(&line[start..end]), value)
        }))
    }
}

/// A record line's fields as they were read, for a sink that takes them
/// without serde ([`super::RecordSink::flat_record`]).
pub struct FlatRecord<'l> {
    line: &'l [u8],
    record: &'l RecordLine,
}

impl FlatRecord<'_> {
    /// How many fields the line has.
    pub fn len(&self) -> usize {
        self.record.len
    }

    /// Whether the line has no field (never, for a line that parsed).
    pub fn is_empty(&self) -> bool {
        self.record.len == 0
    }

    /// The name of field `i`.
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        let (start, end) = self.record.keys[i];
        &self.line[start..end]
    }

    /// Field `i`'s number, if it is one.
    #[inline]
    pub fn number(&self, i: usize) -> Option<u64> {
        match self.record.values[i] {
            Field::Number(n) => Some(n),
            Field::Ids => None,
        }
    }

    /// Field `i`'s list of numbers, if it is one.
    #[inline]
    pub fn list(&self, i: usize) -> Option<&[u64]> {
        match self.record.values[i] {
            Field::Number(_) => None,
            Field::Ids => Some(&self.record.ids[..self.record.id_count]),
        }
    }
}

impl RecordLine {
    /// The line last parsed (`line`), as fields read directly.
    #[inline]
    pub(super) fn flat<'l>(&'l self, line: &'l [u8]) -> FlatRecord<'l> {
        FlatRecord { line, record: self }
    }
}

/// A field name, handed to serde as bytes.
#[derive(Debug, Clone, Copy)]
struct Key<'l>(&'l [u8]);

impl<'de, 'l> IntoDeserializer<'de, ValueError> for Key<'l> {
    type Deserializer = BytesDeserializer<'l, ValueError>;

    fn into_deserializer(self) -> Self::Deserializer {
        BytesDeserializer::new(self.0)
    }
}

/// `starts_with` for the few bytes of a [`LineStyle`]: a byte loop the
/// compiler unrolls for the constant styles, not a call to `memcmp`.
trait StartsWithBytes {
    fn starts_with_bytes(&self, prefix: &[u8]) -> bool;
}

impl StartsWithBytes for [u8] {
    #[inline(always)]
    fn starts_with_bytes(&self, prefix: &[u8]) -> bool {
        self.len() >= prefix.len() && self.iter().zip(prefix).all(|(a, b)| a == b)
    }
}

/// A decimal number without a sign or leading zeros that fits 64 bits, and
/// its length; what YAML's core schema reads as that integer.
#[inline(always)]
fn number(text: &[u8]) -> Option<(u64, usize)> {
    // Up to 19 digits cannot overflow; the 20th is checked.
    let mut n = 0u64;
    let mut len = 0;
    while let Some(&digit) = text.get(len).filter(|b| b.is_ascii_digit()) {
        let digit = u64::from(digit - b'0');
        n = if len < 19 {
            n * 10 + digit
        } else {
            n.checked_mul(10)?.checked_add(digit)?
        };
        len += 1;
    }
    if len == 0 || (len > 1 && text[0] == b'0') {
        return None;
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

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: LineStyle = LineStyle {
        open: b"- {",
        key_quote: b"",
        colon: b": ",
        comma: b", ",
        close: b"}",
    };

    #[test]
    fn numbers_are_read_exactly_or_not_at_all() {
        assert_eq!(number(b"0,"), Some((0, 1)));
        assert_eq!(number(b"18446744073709551615}"), Some((u64::MAX, 20)));
        assert_eq!(number(b"18446744073709551616"), None, "past 64 bits");
        assert_eq!(
            number(b"007"),
            None,
            "leading zeros are left to the general reader"
        );
        assert_eq!(number(b"x"), None);
    }

    #[test]
    fn only_the_exact_spelling_is_a_record_line() {
        let mut line = RecordLine::default();
        assert!(line.parse(
            b"- {origin_chunk: 3, cow_chunk: 40, snapshots: [0, 5]}",
            &YAML
        ));
        assert_eq!(line.len, 3);
        assert_eq!(&line.ids[..line.id_count], [0, 5]);
        assert!(line.parse(b"- {a: 1, b: []}", &YAML));
        for other in [
            &b"- {a: 1,b: 2}"[..],
            b"- {a: 1, b: 2} ",
            b"- {a: '1'}",
            b"- {a: 1, b: [1, 2], c: [3]}",
            b"-  {a: 1}",
            b"- {A: 1}",
            b"- {}",
        ] {
            assert!(
                !line.parse(other, &YAML),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
