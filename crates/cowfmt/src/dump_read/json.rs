//! The JSON reader: serde_json over the input stream, with a visitor that
//! hands each list element to the callback as soon as it is parsed.

use std::fmt;
use std::io::{BufRead, BufReader};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{duplicate, element, DumpFields, DumpReadError, DumpRequest, RecordSink};

/// Bytes of the outer buffer.
const INPUT_BUFFER_BYTES: usize = 1 << 16;

/// Reads a JSON dump; see [`super::read_dump`].
pub(super) fn read<S: RecordSink>(
    input: impl BufRead,
    mut request: DumpRequest<'_, S>,
) -> Result<DumpFields, DumpReadError> {
    let mut out = DumpFields::default();
    read_into(input, &mut request, &mut out)?;
    Ok(out)
}

/// Reads one JSON object of fields into `out`.
pub(super) fn read_into<S: RecordSink>(
    input: impl BufRead,
    request: &mut DumpRequest<'_, S>,
    out: &mut DumpFields,
) -> Result<(), DumpReadError> {
    let mut state = State {
        request,
        out,
        in_list: None,
    };
    // serde_json reads a byte at a time: an outer `BufReader` of a known type
    // makes each of those reads a buffer access instead of a call through the
    // caller's reader.
    let input = BufReader::with_capacity(INPUT_BUFFER_BYTES, input);
    let mut deserializer = serde_json::Deserializer::from_reader(input);
    let parsed = Document(&mut state)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match parsed {
        Ok(()) => Ok(()),
        Err(e) if e.is_io() => Err(DumpReadError::Io(e.into())),
        Err(e) => Err(DumpReadError::Syntax(match state.in_list {
            Some(index) => format!("{}: {e}", element(state.request.list, index)),
            None => e.to_string(),
        })),
    }
}

struct State<'s, 'a, S> {
    request: &'s mut DumpRequest<'a, S>,
    out: &'s mut DumpFields,
    /// The index of the element being parsed, while inside the list.
    in_list: Option<u64>,
}

/// The top-level object.
struct Document<'t, 's, 'a, S>(&'t mut State<'s, 'a, S>);

impl<'de, S: RecordSink> DeserializeSeed<'de> for Document<'_, '_, '_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: RecordSink> Visitor<'de> for Document<'_, '_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a dump: an object of fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        while let Some(key) = map.next_key::<String>()? {
            if key == state.request.list {
                if state.out.has_list {
                    return Err(de::Error::custom(duplicate(&key)));
                }
                state.out.has_list = true;
                map.next_value_seed(List(&mut *state))?;
            } else if state.request.keep.contains(&key.as_str()) {
                if state.out.fields.contains_key(&key) {
                    return Err(de::Error::custom(duplicate(&key)));
                }
                let value: Value = map.next_value()?;
                state.out.fields.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The list field's array.
struct List<'t, 's, 'a, S>(&'t mut State<'s, 'a, S>);

impl<'de, S: RecordSink> DeserializeSeed<'de> for List<'_, '_, '_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, S: RecordSink> Visitor<'de> for List<'_, '_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        loop {
            state.in_list = Some(state.out.records);
            let element = Element {
                fields: &state.out.fields,
                sink: &mut *state.request.sink,
            };
            if seq.next_element_seed(element)?.is_none() {
                break;
            }
            state.out.records += 1;
        }
        state.in_list = None;
        Ok(())
    }
}

/// One element, handed to the sink.
struct Element<'s, S> {
    fields: &'s Map<String, Value>,
    sink: &'s mut S,
}

impl<'de, S: RecordSink> DeserializeSeed<'de> for Element<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.sink.record(self.fields, deserializer)
    }
}
