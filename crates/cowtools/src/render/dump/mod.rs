//! cowdump's output for people: the tables and aligned lines of each kind's
//! dump (`--format table`), the journal view, and the problems a dump found as
//! lines for stderr. The JSON and YAML documents are the schema's own
//! (`cowfmt::persistent::dump::text`, `cowfmt::shared::dump::text`,
//! `cowfmt::clone::dump::text`).

pub mod clone;
pub mod clone_blocks;
pub mod journal;
pub mod persistent;
pub mod shared;

use std::io::Write;

use comfy_table::Table;
use cowfmt::dump_lines::{Batch, DumpWriteError};
use cowfmt::store::dump::{DumpOptions, Prepared, Tail};
use cowfmt::units::human_bytes;

use crate::progress::RecordCounter;

/// Writes the tables of the dump `prepared` with `options`; returns its tail.
pub fn write_tables(
    out: &mut dyn Write,
    prepared: &Prepared<'_>,
    options: &DumpOptions,
    progress: &RecordCounter,
) -> anyhow::Result<Tail> {
    Ok(match prepared {
        Prepared::Persistent { store, head } => {
            Tail::Persistent(persistent::write(out, store, head, options.runs, progress)?)
        }
        Prepared::Shared {
            source,
            head,
            bitmap,
        } => Tail::Shared(shared::write(
            out,
            source,
            head,
            bitmap,
            options.view,
            progress,
        )?),
        Prepared::Clone(dump) => Tail::Clone(clone::write(out, dump, picture_width(), progress)?),
    })
}

/// Cells of a clone dump's picture row: what the terminal on stdout has room
/// for beside the row's first region, or
/// [`clone::DEFAULT_PICTURE_WIDTH`] when stdout is not a terminal.
fn picture_width() -> u64 {
    console::Term::stdout()
        .size_checked()
        .map_or(clone::DEFAULT_PICTURE_WIDTH, |(_, columns)| {
            u64::from(columns).saturating_sub(16).clamp(16, 256)
        })
}

/// The problems of a dump's tail, one line each, for stderr.
pub fn problem_lines(tail: &Tail) -> Vec<String> {
    match tail {
        Tail::Persistent(tail) => tail.problems.clone(),
        Tail::Shared(tail) => tail.problems.iter().map(shared::problem_text).collect(),
        Tail::Clone(problems) => problems.clone(),
    }
}

/// The error of writing a document as the tools report it: the cause itself,
/// so that a closed stdout still ends the tool quietly.
pub fn write_error(error: DumpWriteError) -> anyhow::Error {
    match error {
        DumpWriteError::Store(e) => e.into(),
        DumpWriteError::Io(e) => e.into(),
        DumpWriteError::Json(e) => e.into(),
        DumpWriteError::Yaml(e) => e.into(),
    }
}

/// Writes a streamed list as lines through one [`Batch`]: `stream` runs the
/// kind's stream with the batch; returns the stream's tail and how many
/// lines it wrote.
pub(crate) fn batched_lines<T>(
    out: &mut dyn Write,
    stream: impl FnOnce(&mut Batch<'_>) -> cowfmt::Result<T>,
) -> anyhow::Result<(T, u64)> {
    let mut batch = Batch::new(out);
    let tail = stream(&mut batch)?;
    batch.drain()?;
    Ok((tail, batch.count))
}

/// The rows a header table of every kind starts with.
pub(crate) struct HeadRows<'h> {
    /// The store kind.
    pub kind: cowfmt::StoreKind,
    pub magic: &'h str,
    pub valid_raw: u32,
    pub valid: bool,
    pub version: u32,
    pub chunk_size: u32,
}

/// The [`HeadRows`] of a dump head of any kind (its fields have the same names).
macro_rules! head_rows {
    ($head:expr) => {
        $crate::render::dump::HeadRows {
            kind: $head.kind,
            magic: &$head.magic,
            valid_raw: $head.valid_raw,
            valid: $head.valid,
            version: $head.version,
            chunk_size: $head.chunk_size,
        }
        .rows()
    };
}
pub(crate) use head_rows;

impl HeadRows<'_> {
    /// kind, magic, valid, version and chunk_size as `field`, `value` rows.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", self.kind.to_string()),
            ("magic", self.magic.to_string()),
            (
                "valid",
                format!(
                    "{} ({})",
                    self.valid_raw,
                    if self.valid { "valid" } else { "invalid" }
                ),
            ),
            ("version", self.version.to_string()),
            ("chunk_size", sectors_text(u64::from(self.chunk_size))),
        ]
    }
}

/// `N sectors (human size)`.
pub(crate) fn sectors_text(sectors: u64) -> String {
    format!("{sectors} sectors ({})", human_bytes(sectors * 512))
}

pub(crate) fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

pub(crate) fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
    table
}

pub(crate) fn two_columns(rows: Vec<(&str, String)>) -> Table {
    let mut table = new_table();
    table.set_header(vec!["field", "value"]);
    for (field, value) in rows {
        table.add_row(vec![field.to_string(), value]);
    }
    table
}

/// Digits of `n`: how wide a column of numbers up to `n` is.
pub(crate) fn digits(n: u64) -> usize {
    itoa::Buffer::new().format(n).len()
}

/// Writes the `Problems` section after the tables, when there are any.
pub(crate) fn write_problems(out: &mut dyn Write, problems: &[String]) -> std::io::Result<()> {
    if !problems.is_empty() {
        writeln!(out, "\nProblems")?;
        for problem in problems {
            writeln!(out, "  {problem}")?;
        }
    }
    Ok(())
}

/// Writes a counted list's closing line: `(N things)` and a blank line.
pub(crate) fn count_line(out: &mut dyn Write, count: u64, what: &str) -> std::io::Result<()> {
    writeln!(out, "({count} {what}{})\n", plural(count))
}
