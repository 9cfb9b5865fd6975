//! Output plumbing shared by every dump: record lines gathered in large blocks,
//! a record counter on stderr, serde fields without their braces, small tables.

use std::io::{self, IsTerminal, Write};

use comfy_table::Table;
use cowtools::progress;
use serde::Serialize;

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
    pub fn new(out: &'a mut dyn Write) -> Self {
        Batch {
            out,
            buf: Vec::with_capacity(BATCH_BYTES + 256),
            count: 0,
            number: itoa::Buffer::new(),
            id_lists: IdLists::default(),
        }
    }

    #[inline]
    pub fn text(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
    }

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
    pub fn id_list(&mut self, mask: u64, style: IdStyle) {
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

    pub fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// How an id list is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdStyle {
    /// `[0,3]`.
    Json,
    /// `[0, 3]`.
    Yaml,
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
    fn write(&mut self, mask: u64, style: IdStyle, out: &mut Vec<u8>) {
        let line = match style {
            IdStyle::Json => self.json.get_or_insert_with(|| IdLine::new(b",")),
            IdStyle::Yaml => self.yaml.get_or_insert_with(|| IdLine::new(b", ")),
        };
        out.push(b'[');
        line.write(mask, out);
        out.push(b']');
    }
}

/// A record counter on stderr, shown only when the dump does not go to the terminal.
pub struct Progress {
    bar: indicatif::ProgressBar,
}

/// Records between two progress updates.
const PROGRESS_STEP: u64 = 1 << 16;

impl Progress {
    pub fn new(quiet: bool, to_file: bool) -> Self {
        let to_terminal = !to_file && io::stdout().is_terminal();
        Progress {
            bar: progress::counter("dumping", "records", quiet || to_terminal),
        }
    }

    #[inline]
    pub fn tick(&self, count: u64) {
        if count.is_multiple_of(PROGRESS_STEP) {
            self.bar.set_position(count);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The fields of a JSON object, pretty-printed without the braces around them.
pub fn json_fields(value: &impl Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let inner = text.strip_prefix('{').unwrap_or(&text);
    Ok(inner.strip_suffix("\n}").unwrap_or(inner).to_string())
}

pub fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

pub fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
    table
}

pub fn two_columns(rows: Vec<(&str, String)>) -> Table {
    let mut table = new_table();
    table.set_header(vec!["field", "value"]);
    for (field, value) in rows {
        table.add_row(vec![field.to_string(), value]);
    }
    table
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
    fn id_ranges_read_as_the_library_describes_masks() {
        for mask in [
            0,
            1,
            0b1011,
            0b111001,
            1 << 63,
            u64::MAX,
            u64::MAX - 1,
            0x8000_0000_0000_0003,
        ] {
            assert_eq!(
                text(|b| b.id_ranges(mask)),
                cowfmt::shared::mask::describe(mask),
                "{mask:#x}"
            );
        }
    }

    #[test]
    fn id_lists_in_each_style() {
        assert_eq!(text(|b| b.id_list(0, IdStyle::Json)), "[]");
        assert_eq!(text(|b| b.id_list(0b101, IdStyle::Yaml)), "[0, 2]");
        assert_eq!(text(|b| b.id_list(1 << 63 | 2, IdStyle::Json)), "[1,63]");
        assert_eq!(
            text(|b| {
                b.id_list(0b101, IdStyle::Json);
                b.id_list(0b101, IdStyle::Yaml);
                b.id_list(0b101, IdStyle::Json);
                b.id_list(0b11, IdStyle::Json);
            }),
            "[0,2][0, 2][0,2][0,1]",
            "a cached list is kept per style"
        );
    }
}
