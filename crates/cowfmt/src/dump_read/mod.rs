//! Reading a `cowdump` dump (YAML or JSON) as a stream: the top-level fields a
//! reader asks for are kept as small values, every element of the one list
//! field (`exceptions`) is decoded on its own and handed to a callback, and
//! everything else is checked for syntax and dropped. Memory stays flat in the
//! number of records. Kind-neutral: the record type and the fields kept are
//! the caller's (`persistent::dump`, `shared::dump`). [`spool`] keeps the
//! records of a restore in a temporary file while they are read.

mod json;
mod json_fast;
mod record_line;
pub mod spool;
mod yaml;
mod yaml_fast;

pub use record_line::FlatRecord;

use std::io::{self, BufRead};

use serde::de::{self, DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

/// The syntax of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpSyntax {
    /// JSON (`cowdump --format json`).
    Json,
    /// YAML (`cowdump --format yaml`, the default).
    Yaml,
}

impl DumpSyntax {
    /// The syntax a file name's extension names (`.json`, `.yaml`, `.yml`).
    pub fn of_extension(path: &std::path::Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(DumpSyntax::Json),
            "yaml" | "yml" => Some(DumpSyntax::Yaml),
            _ => None,
        }
    }

    /// The syntax text starting with `first` looks like: JSON when it opens
    /// with `{`, YAML otherwise.
    pub fn of_first_byte(first: Option<u8>) -> Self {
        if first == Some(b'{') {
            DumpSyntax::Json
        } else {
            DumpSyntax::Yaml
        }
    }
}

/// The first byte of `input` that is not white space, without consuming it.
pub fn peek_first_byte(input: &mut impl BufRead) -> io::Result<Option<u8>> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => {
                let first = buf[at];
                input.consume(at);
                return Ok(Some(first));
            }
            None => {
                let len = buf.len();
                input.consume(len);
            }
        }
    }
}

/// Where the list's elements go, one at a time.
pub trait RecordSink {
    /// Decodes one list element from `element` and keeps what it needs;
    /// `fields` are the top-level fields read before it. An element that does
    /// not fit is refused with `D::Error::custom` (one clause; the reader adds
    /// the place).
    fn record<'de, D: Deserializer<'de>>(
        &mut self,
        fields: &Map<String, Value>,
        element: D,
    ) -> Result<(), D::Error>;

    /// Forgets every element handed so far: the dump is read again from the
    /// start.
    fn restart(&mut self);

    /// Takes a record line of the fast paths (numbers and at most one list
    /// of numbers) directly, without serde: true when the sink kept it, false
    /// to have it decoded by [`RecordSink::record`] (the default), which then
    /// decides what the line means and words any error.
    fn flat_record(&mut self, _fields: &Map<String, Value>, _record: &FlatRecord<'_>) -> bool {
        false
    }
}

/// Where a dump is read from.
pub struct DumpSource<'a> {
    /// The text.
    pub input: Box<dyn BufRead + 'a>,
    /// Opens the text again from the start (a file), so that a dump can take
    /// the fast path for `cowdump`'s own layout and fall back to the general
    /// reader; `None` for a stream (stdin), which takes the general reader
    /// only.
    pub reopen: Option<&'a mut dyn FnMut() -> io::Result<Box<dyn BufRead + 'a>>>,
}

/// Why a dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DumpReadError {
    /// The text is not a usable dump: one clause naming the place (line,
    /// column, list index) and what was expected there.
    #[error("{0}")]
    Syntax(String),
    /// Reading the dump failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The dump as read, without its list.
#[derive(Debug, Default)]
pub struct DumpFields {
    /// The top-level fields asked for, as found.
    pub fields: Map<String, Value>,
    /// Elements of the list handed to the callback.
    pub records: u64,
    /// Whether the list field was there.
    pub has_list: bool,
}

impl DumpFields {
    /// Decodes the fields kept into `T` (a head struct): missing or mistyped
    /// fields are reported as serde says (`missing field `chunk_size``).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DumpReadError> {
        serde_json::from_value(Value::Object(self.fields.clone()))
            .map_err(|e| DumpReadError::Syntax(e.to_string()))
    }
}

/// What to read: the list field, the fields to keep, and where the list's
/// elements go.
pub struct DumpRequest<'a, S> {
    /// The list streamed to the sink (`exceptions`).
    pub list: &'a str,
    /// The top-level fields to keep; the others are checked and dropped.
    pub keep: &'a [&'a str],
    /// Gets each element in order.
    pub sink: &'a mut S,
}

/// Reads a dump of `syntax` from `input`, streaming the list to the request's
/// sink. Errors name the line (and column, or list index) and the
/// expectation, never the file: the caller adds it.
pub fn read_dump<S: RecordSink>(
    source: DumpSource<'_>,
    syntax: DumpSyntax,
    mut request: DumpRequest<'_, S>,
) -> Result<DumpFields, DumpReadError> {
    let Some(reopen) = source.reopen else {
        return match syntax {
            DumpSyntax::Json => json::read(source.input, request),
            DumpSyntax::Yaml => yaml::read(source.input, request),
        };
    };
    let mut input = source.input;
    let mut out = DumpFields::default();
    let done = match syntax {
        DumpSyntax::Json => json_fast::read(&mut *input, &mut request, &mut out)?,
        DumpSyntax::Yaml => yaml_fast::read(&mut *input, &mut request, &mut out)?,
    };
    if done {
        return Ok(out);
    }
    request.sink.restart();
    match syntax {
        DumpSyntax::Json => json::read(reopen()?, request),
        DumpSyntax::Yaml => yaml::read(reopen()?, request),
    }
}

/// A whole dump read into memory: its head and every record of its list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack<H, R> {
    /// The head fields read.
    pub head: H,
    /// The records, in the dump's order.
    pub records: Vec<R>,
}

/// Reads a whole dump of `syntax` into memory: the head `H` (its fields the
/// ones kept) and every element of `list` as an `R`, each record line of the
/// fast paths taken by `flat` (a schema's own line reader) or else by serde.
pub fn read_whole<H: DeserializeOwned, R: DeserializeOwned>(
    source: DumpSource<'_>,
    syntax: DumpSyntax,
    list: &str,
    flat: fn(&FlatRecord<'_>) -> Option<R>,
) -> Result<ReadBack<H, R>, DumpReadError> {
    let mut records = Whole {
        records: Vec::new(),
        flat,
    };
    let request = DumpRequest {
        list,
        keep: struct_fields::<H>(),
        sink: &mut records,
    };
    let fields = read_dump(source, syntax, request)?;
    Ok(ReadBack {
        head: fields.decode()?,
        records: records.records,
    })
}

/// Every element of a dump's list, kept in memory.
struct Whole<R> {
    records: Vec<R>,
    flat: fn(&FlatRecord<'_>) -> Option<R>,
}

impl<R: DeserializeOwned> RecordSink for Whole<R> {
    fn record<'de, D: Deserializer<'de>>(
        &mut self,
        _fields: &Map<String, Value>,
        element: D,
    ) -> Result<(), D::Error> {
        self.records.push(R::deserialize(element)?);
        Ok(())
    }

    fn restart(&mut self) {
        self.records.clear();
    }

    fn flat_record(&mut self, _fields: &Map<String, Value>, line: &FlatRecord<'_>) -> bool {
        (self.flat)(line).map(|r| self.records.push(r)).is_some()
    }
}

/// Hands `read` the text `text` as a dump source, able to reopen it
/// (`fast`: the fast paths are tried first) or not.
#[cfg(test)]
pub(crate) fn with_text<T>(text: &[u8], fast: bool, read: impl FnOnce(DumpSource<'_>) -> T) -> T {
    let reader = |text: &[u8]| -> Box<dyn BufRead> {
        Box::new(io::BufReader::new(io::Cursor::new(text.to_vec())))
    };
    let mut reopen = || Ok(reader(text));
    read(DumpSource {
        input: reader(text),
        reopen: fast.then_some(&mut reopen as _),
    })
}

/// Reads the whole dump `text` of `syntax` with [`read_whole`] (`fast`: the
/// fast paths are tried first), as a schema's round-trip test does.
#[cfg(test)]
pub(crate) fn read_text<H: DeserializeOwned, R: DeserializeOwned>(
    text: &[u8],
    syntax: DumpSyntax,
    fast: bool,
    flat: fn(&FlatRecord<'_>) -> Option<R>,
) -> ReadBack<H, R> {
    with_text(text, fast, |source| {
        read_whole(source, syntax, "exceptions", flat)
    })
    .unwrap()
}

/// The field names of the struct `T` deserializes as (what `#[derive(Deserialize)]`
/// declares), so that a head struct alone says which fields to keep.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields.unwrap_or(&[])
}

/// A deserializer that only notes the fields a struct asks for.
struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("fields noted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The error of a duplicated top-level field, as serde words it.
fn duplicate(field: &str) -> String {
    format!("duplicate field `{field}`")
}

/// The place of list element `index`.
fn element(list: &str, index: u64) -> String {
    format!("{list}[{index}]")
}

#[cfg(test)]
mod tests;
