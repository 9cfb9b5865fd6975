//! The text of every dump schema's JSON and YAML documents, shared by the
//! kinds' writers (`persistent::dump::text`, `shared::dump::text`): list lines
//! gathered in large blocks and written by hand (numbers, id lists), a serde
//! head or tail without its braces, and the error of writing a document.

use std::io::{self, Write};

use serde::Serialize;

/// Why a dump document could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DumpWriteError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// Writing the output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A head or tail could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A head or tail could not be written as YAML.
    #[error(transparent)]
    Yaml(#[from] serde_yaml::Error),
}

/// The syntax a document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSyntax {
    /// One JSON object, one list item per line.
    Json,
    /// One YAML mapping, one flow-mapping list item per line.
    Yaml,
}

/// Exception lines gathered in a buffer and written to the output in large blocks.
pub struct Batch<'a> {
    out: &'a mut dyn Write,
    buf: Vec<u8>,
    /// Records ended so far.
    pub count: u64,
    number: itoa::Buffer,
    id_lists: IdLists,
}

/// Bytes gathered before a write to the output: at least the output's buffer
/// (1 MiB, `output::open_output`), so that a `BufWriter` passes each block
/// straight through instead of copying it into its own buffer first.
const BATCH_BYTES: usize = 1 << 20;

impl<'a> Batch<'a> {
    /// Gathers lines for `out`.
    pub fn new(out: &'a mut dyn Write) -> Self {
        Batch {
            out,
            buf: Vec::with_capacity(BATCH_BYTES + 256),
            count: 0,
            number: itoa::Buffer::new(),
            id_lists: IdLists::default(),
        }
    }

    /// Appends bytes as they are.
    #[inline]
    pub fn text(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
    }

    /// Appends a number in decimal.
    #[inline]
    pub fn number(&mut self, value: u64) {
        self.buf
            .extend_from_slice(self.number.format(value).as_bytes());
    }

    /// Right-aligns `value` in `width` columns.
    #[inline]
    pub fn padded(&mut self, value: u64, width: usize) {
        let digits = self.number.format(value).as_bytes();
        let pad = width.saturating_sub(digits.len());
        self.buf.resize(self.buf.len() + pad, b' ');
        self.buf.extend_from_slice(digits);
    }

    /// A share mask as a flow list of snapshot ids: `[0,3]` in JSON, `[0, 3]`
    /// in YAML.
    #[inline]
    pub fn id_list(&mut self, mask: u64, style: TextSyntax) {
        self.id_lists.write(mask, style, &mut self.buf);
    }

    /// A share mask as people read it: `0,3-5`, or `none`.
    #[inline]
    pub fn id_ranges(&mut self, mask: u64) {
        if mask == 0 {
            self.text(b"none");
            return;
        }
        let mut rest = mask;
        while rest != 0 {
            let first = rest.trailing_zeros();
            let len = (rest >> first).trailing_ones();
            self.number(u64::from(first));
            if len > 1 {
                self.text(b"-");
                self.number(u64::from(first + len - 1));
            }
            rest &= !(u64::MAX >> (64 - len) << first);
            if rest != 0 {
                self.text(b",");
            }
        }
    }

    /// The bytes gathered and not yet written, to serialize into.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Ends one record: counts it and writes the buffer out when it is full.
    #[inline]
    pub fn end_record(&mut self) -> io::Result<()> {
        self.count += 1;
        if self.buf.len() >= BATCH_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    /// Writes out what is gathered.
    pub fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Every id from 0 to 63 in one line, `0,1,2,...,63` (or `0, 1, 2, ..., 63`),
/// with where each id starts and ends in it: the ids of a run of consecutive
/// bits are one slice of the line, so a share mask (usually one or two runs) is
/// written with a copy per run instead of a number per id.
struct IdLine {
    text: Vec<u8>,
    start: [usize; 64],
    end: [usize; 64],
    separator: &'static [u8],
}

impl IdLine {
    fn new(separator: &'static [u8]) -> Self {
        let mut line = IdLine {
            text: Vec::with_capacity(64 * 4),
            start: [0; 64],
            end: [0; 64],
            separator,
        };
        for id in 0..64 {
            if id > 0 {
                line.text.extend_from_slice(separator);
            }
            line.start[id] = line.text.len();
            line.text.extend_from_slice(id.to_string().as_bytes());
            line.end[id] = line.text.len();
        }
        line
    }

    /// Appends the ids of `mask` to `out`, without brackets.
    #[inline]
    fn write(&self, mask: u64, out: &mut Vec<u8>) {
        let mut rest = mask;
        while rest != 0 {
            let first = rest.trailing_zeros() as usize;
            let len = (rest >> first).trailing_ones() as usize;
            let last = first + len - 1;
            out.extend_from_slice(&self.text[self.start[first]..self.end[last]]);
            rest = if last == 63 {
                0
            } else {
                rest & (u64::MAX << (last + 1))
            };
            if rest != 0 {
                out.extend_from_slice(self.separator);
            }
        }
    }
}

/// The id lines of both styles, made on first use.
#[derive(Default)]
struct IdLists {
    json: Option<IdLine>,
    yaml: Option<IdLine>,
}

impl IdLists {
    #[inline]
    fn write(&mut self, mask: u64, style: TextSyntax, out: &mut Vec<u8>) {
        let line = match style {
            TextSyntax::Json => self.json.get_or_insert_with(|| IdLine::new(b",")),
            TextSyntax::Yaml => self.yaml.get_or_insert_with(|| IdLine::new(b", ")),
        };
        out.push(b'[');
        line.write(mask, out);
        out.push(b']');
    }
}

/// One list of a document, streamed: its items one per line (`\n    {...}`
/// in JSON, `\n- {...}` in YAML), each a flow mapping of numbers whose keys are
/// made once per list.
pub struct ListWriter<'a> {
    /// The lines gathered.
    pub batch: Batch<'a>,
    /// The document's syntax.
    pub syntax: TextSyntax,
    keys: Vec<Vec<u8>>,
}

impl<'a> ListWriter<'a> {
    /// Starts the items of a list whose name is already written; `keys` are
    /// the fields of an item written with [`ListWriter::key`].
    pub fn new(out: &'a mut dyn Write, syntax: TextSyntax, keys: &[&str]) -> Self {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, key)| match (syntax, i) {
                (TextSyntax::Json, 0) => format!("{{\"{key}\":"),
                (TextSyntax::Json, _) => format!(",\"{key}\":"),
                (TextSyntax::Yaml, 0) => format!("{{{key}: "),
                (TextSyntax::Yaml, _) => format!(", {key}: "),
            })
            .map(String::into_bytes)
            .collect();
        ListWriter {
            batch: Batch::new(out),
            syntax,
            keys,
        }
    }

    /// Starts an item on a new line.
    #[inline]
    pub fn item(&mut self) {
        self.batch.text(match (self.syntax, self.batch.count) {
            (TextSyntax::Json, 0) => b"\n    ",
            (TextSyntax::Json, _) => b",\n    ",
            (TextSyntax::Yaml, _) => b"\n- ",
        });
    }

    /// Writes key `index` of the item (with the brace before the first).
    #[inline]
    pub fn key(&mut self, index: usize) {
        self.batch.text(&self.keys[index]);
    }

    /// An item of numbers only, one per key: `{"a":1,"b":2}`.
    #[inline]
    pub fn numbers(&mut self, values: &[u64]) {
        self.item();
        for (index, value) in values.iter().enumerate() {
            self.key(index);
            self.batch.number(*value);
        }
        self.batch.text(b"}");
    }

    /// Ends the list (`]` or `[]` as it is empty or not) and writes it out;
    /// returns its number of items.
    pub fn close(mut self) -> io::Result<u64> {
        self.batch.text(match (self.syntax, self.batch.count) {
            (TextSyntax::Json, 0) => b"]",
            (TextSyntax::Json, _) => b"\n  ]",
            (TextSyntax::Yaml, 0) => b" []\n",
            (TextSyntax::Yaml, _) => b"\n",
        });
        self.batch.drain()?;
        Ok(self.batch.count)
    }
}

/// Opens list `name` after the fields before it: `,\n  "name": [` in JSON,
/// `name:` in YAML.
pub fn open_list(out: &mut dyn Write, syntax: TextSyntax, name: &str) -> io::Result<()> {
    match syntax {
        TextSyntax::Json => write!(out, ",\n  \"{name}\": ["),
        TextSyntax::Yaml => write!(out, "{name}:"),
    }
}

/// Writes `value`'s fields: in JSON after the fields before them
/// (`,` + [`json_fields`]), or opening the object when `first`; in YAML as a
/// block mapping.
pub fn write_fields(
    out: &mut dyn Write,
    syntax: TextSyntax,
    value: &impl Serialize,
    first: bool,
) -> Result<(), DumpWriteError> {
    match syntax {
        TextSyntax::Json => write!(
            out,
            "{}{}",
            if first { "{" } else { "," },
            json_fields(value)?
        )?,
        TextSyntax::Yaml => out.write_all(serde_yaml::to_string(value)?.as_bytes())?,
    }
    Ok(())
}

/// The fields of a JSON object, pretty-printed without the braces around them.
pub fn json_fields(value: &impl Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let inner = text.strip_prefix('{').unwrap_or(&text);
    Ok(inner.strip_suffix("\n}").unwrap_or(inner).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Batch<'_>)) -> String {
        let mut out = Vec::new();
        let mut batch = Batch::new(&mut out);
        write(&mut batch);
        batch.drain().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn id_ranges_as_people_read_them() {
        for (mask, ranges) in [
            (0, "none"),
            (1, "0"),
            (0b1011, "0-1,3"),
            (0b111001, "0,3-5"),
            (1 << 63, "63"),
            (u64::MAX, "0-63"),
            (u64::MAX - 1, "1-63"),
            (0x8000_0000_0000_0003, "0-1,63"),
        ] {
            assert_eq!(text(|b| b.id_ranges(mask)), ranges, "{mask:#x}");
        }
    }

    #[test]
    fn id_lists_in_each_style() {
        assert_eq!(text(|b| b.id_list(0, TextSyntax::Json)), "[]");
        assert_eq!(text(|b| b.id_list(0b101, TextSyntax::Yaml)), "[0, 2]");
        assert_eq!(text(|b| b.id_list(1 << 63 | 2, TextSyntax::Json)), "[1,63]");
        assert_eq!(
            text(|b| {
                b.id_list(0b101, TextSyntax::Json);
                b.id_list(0b101, TextSyntax::Yaml);
                b.id_list(0b101, TextSyntax::Json);
                b.id_list(0b11, TextSyntax::Json);
            }),
            "[0,2][0, 2][0,2][0,1]",
            "a cached list is kept per style"
        );
    }
}
