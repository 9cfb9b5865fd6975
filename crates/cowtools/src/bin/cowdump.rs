//! cowdump: dumps the metadata of a persistent or legacy COW store (header,
//! geometry, every exception in on-disk order, usage) as YAML, JSON or tables,
//! or one raw chunk in hex.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use comfy_table::Table;
use cowfmt::persistent::dump::{head_of, stream_records, DumpHead, DumpTail};
use cowfmt::persistent::runs::Run;
use cowfmt::persistent::store::AreaSummary;
use cowfmt::persistent::{ExceptionRecord, PersistentStore};
use cowfmt::units::human_bytes;
use cowtools::args::KindArg;
use cowtools::{exit, hexdump, open, output, progress};
use serde::Serialize;

const TOOL: &str = "cowdump";

const EXAMPLES: &str = "\
EXAMPLES:
  Dump a store as YAML:
    cowdump cow.img
  Dump as JSON into a file, with the kernel's in-memory runs:
    cowdump --format json --runs -o cow.json cow.img
  Human-readable tables:
    cowdump --format table /dev/vg/snap-cow
  Show metadata area 0 (chunk 1) in hex:
    cowdump --hex 1 cow.img

The YAML and JSON dumps are one document (format_version 1) that mkcow --from-dump
restores.";

/// Output formats of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DumpFormat {
    /// YAML, one exception per line.
    Yaml,
    /// JSON, one exception per line.
    Json,
    /// Tables for people.
    Table,
}

/// Command line of cowdump.
#[derive(Debug, Parser)]
#[command(name = "cowdump", version, about = "Dump the metadata of a dm-snapshot COW store", after_help = EXAMPLES)]
struct Cli {
    /// The image file or block device to read.
    #[arg(value_name = "TARGET")]
    target: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Yaml)]
    format: DumpFormat,

    /// Write the output to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Insist on a store kind (legacy labels a SnAp store as legacy).
    #[arg(long, value_enum)]
    kind: Option<KindArg>,

    /// Add the kernel's in-memory runs of consecutive chunks.
    #[arg(long)]
    runs: bool,

    /// Print chunk CHUNK of the device in hex, and nothing else.
    #[arg(long, value_name = "CHUNK", conflicts_with_all = ["format", "runs"])]
    hex: Option<u64>,

    /// No warnings and no progress on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let (store, kind) = open::open_snap_store(&cli.target, cli.kind.map(Into::into), TOOL)?;
    if let Some(chunk) = cli.hex {
        return hex_chunk(cli, &store, chunk);
    }
    let head = head_of(&store, kind);
    let mut out = output::open_output(cli.output.as_deref())?;
    let progress = Progress::new(cli);
    let tail = match cli.format {
        DumpFormat::Json => write_json(&mut out, &store, &head, cli.runs, &progress)?,
        DumpFormat::Yaml => write_yaml(&mut out, &store, &head, cli.runs, &progress)?,
        DumpFormat::Table => write_tables(&mut out, &store, &head, cli.runs, &progress)?,
    };
    out.flush()?;
    progress.finish();
    if !cli.quiet {
        for problem in &tail.problems {
            eprintln!("{TOOL}: warning: {}: {problem}", cli.target.display());
        }
    }
    Ok(exit::EXIT_OK)
}

fn hex_chunk(cli: &Cli, store: &PersistentStore, chunk: u64) -> anyhow::Result<u8> {
    let geometry = store.geometry();
    if chunk >= geometry.device_chunks() {
        bail!(
            "{}: chunk {chunk} is past the end of the device ({} chunks of {} bytes)",
            cli.target.display(),
            geometry.device_chunks(),
            geometry.chunk_bytes()
        );
    }
    let mut bytes = vec![0u8; geometry.chunk_bytes()];
    store.device().read_chunk(chunk, &mut bytes)?;
    let mut out = output::open_output(cli.output.as_deref())?;
    hexdump::write_hex(&mut out, chunk * geometry.chunk_bytes() as u64, &bytes)?;
    out.flush()?;
    Ok(exit::EXIT_OK)
}

/// A record counter on stderr, shown only when the dump does not go to the terminal.
struct Progress {
    bar: indicatif::ProgressBar,
}

/// Records between two progress updates.
const PROGRESS_STEP: u64 = 1 << 16;

impl Progress {
    fn new(cli: &Cli) -> Self {
        let to_terminal = cli.output.is_none() && io::stdout().is_terminal();
        Progress {
            bar: progress::counter("dumping", "records", cli.quiet || to_terminal),
        }
    }

    #[inline]
    fn tick(&self, count: u64) {
        if count % PROGRESS_STEP == 0 {
            self.bar.set_position(count);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Exception lines gathered in a buffer and written to the output in large blocks.
struct Batch<'a> {
    out: &'a mut dyn Write,
    buf: Vec<u8>,
    count: u64,
    number: itoa::Buffer,
}

/// Bytes gathered before a write to the output.
const BATCH_BYTES: usize = 1 << 18;

impl<'a> Batch<'a> {
    fn new(out: &'a mut dyn Write) -> Self {
        Batch {
            out,
            buf: Vec::with_capacity(BATCH_BYTES + 256),
            count: 0,
            number: itoa::Buffer::new(),
        }
    }

    #[inline]
    fn text(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
    }

    #[inline]
    fn number(&mut self, value: u64) {
        self.buf
            .extend_from_slice(self.number.format(value).as_bytes());
    }

    /// Right-aligns `value` in `width` columns.
    #[inline]
    fn padded(&mut self, value: u64, width: usize) {
        let digits = self.number.format(value).as_bytes();
        let pad = width.saturating_sub(digits.len());
        self.buf.resize(self.buf.len() + pad, b' ');
        self.buf.extend_from_slice(digits);
    }

    /// Ends one record: counts it and writes the buffer out when it is full.
    #[inline]
    fn end_record(&mut self) -> io::Result<()> {
        self.count += 1;
        if self.buf.len() >= BATCH_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

fn write_json(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    write!(out, "{{{},\n  \"exceptions\": [", json_fields(head)?)?;
    let mut batch = Batch::new(out);
    let tail = stream_records(store, runs, |record| {
        batch.text(if batch.count == 0 {
            b"\n    {\"old_chunk\":"
        } else {
            b",\n    {\"old_chunk\":"
        });
        batch.number(record.old_chunk);
        batch.text(b",\"new_chunk\":");
        batch.number(record.new_chunk);
        batch.text(b"}");
        progress.tick(batch.count);
        batch.end_record()
    })?;
    batch.text(if batch.count == 0 { b"]" } else { b"\n  ]" });
    batch.drain()?;
    let parts = TailParts::split(tail);
    write!(out, ",{}", json_fields(&parts.rest)?)?;
    if let Some(runs) = &parts.runs {
        write_json_runs(out, runs)?;
    }
    if !parts.problems.problems.is_empty() {
        write!(out, ",{}", json_fields(&parts.problems)?)?;
    }
    writeln!(out, "\n}}")?;
    Ok(parts.join())
}

/// The fields of a JSON object, pretty-printed without the braces around them.
fn json_fields(value: &impl Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    let inner = text.strip_prefix('{').unwrap_or(&text);
    Ok(inner.strip_suffix("\n}").unwrap_or(inner).to_string())
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

fn write_json_runs(out: &mut dyn Write, runs: &[Run]) -> io::Result<()> {
    out.write_all(b",\n  \"runs\": [")?;
    let mut batch = Batch::new(out);
    for run in runs {
        batch.text(if batch.count == 0 {
            b"\n    {\"old_chunk\":"
        } else {
            b",\n    {\"old_chunk\":"
        });
        batch.number(run.old_chunk);
        batch.text(b",\"new_chunk\":");
        batch.number(run.new_chunk);
        batch.text(b",\"count\":");
        batch.number(run.count);
        batch.text(b"}");
        batch.end_record()?;
    }
    batch.text(if batch.count == 0 { b"]" } else { b"\n  ]" });
    batch.drain()
}

fn write_yaml(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    out.write_all(serde_yaml::to_string(head)?.as_bytes())?;
    out.write_all(b"exceptions:")?;
    let mut batch = Batch::new(out);
    let tail = stream_records(store, runs, |record| {
        batch.text(b"\n- {old_chunk: ");
        batch.number(record.old_chunk);
        batch.text(b", new_chunk: ");
        batch.number(record.new_chunk);
        batch.text(b"}");
        progress.tick(batch.count);
        batch.end_record()
    })?;
    batch.text(if batch.count == 0 { b" []\n" } else { b"\n" });
    batch.drain()?;
    let parts = TailParts::split(tail);
    out.write_all(serde_yaml::to_string(&parts.rest)?.as_bytes())?;
    if let Some(runs) = &parts.runs {
        write_yaml_runs(out, runs)?;
    }
    if !parts.problems.problems.is_empty() {
        out.write_all(serde_yaml::to_string(&parts.problems)?.as_bytes())?;
    }
    Ok(parts.join())
}

fn write_yaml_runs(out: &mut dyn Write, runs: &[Run]) -> io::Result<()> {
    out.write_all(b"runs:")?;
    let mut batch = Batch::new(out);
    for run in runs {
        batch.text(b"\n- {old_chunk: ");
        batch.number(run.old_chunk);
        batch.text(b", new_chunk: ");
        batch.number(run.new_chunk);
        batch.text(b", count: ");
        batch.number(run.count);
        batch.text(b"}");
        batch.end_record()?;
    }
    batch.text(if batch.count == 0 { b" []\n" } else { b"\n" });
    batch.drain()
}

fn write_tables(
    out: &mut dyn Write,
    store: &PersistentStore,
    head: &DumpHead,
    runs: bool,
    progress: &Progress,
) -> anyhow::Result<DumpTail> {
    writeln!(out, "Header\n{}\n", header_table(head))?;
    writeln!(out, "Geometry\n{}\n", geometry_table(head))?;
    let widths = ColumnWidths::for_device(head.device_chunks);
    writeln!(out, "Exceptions (on-disk order)")?;
    writeln!(
        out,
        "{:>iw$}  {:>ow$}  {:>nw$}",
        "index",
        "old_chunk",
        "new_chunk",
        iw = widths.index,
        ow = widths.old,
        nw = widths.new
    )?;
    let mut batch = Batch::new(out);
    let tail = stream_records(store, runs, |record| {
        table_record(&mut batch, record, &widths);
        progress.tick(batch.count);
        batch.end_record()
    })?;
    batch.drain()?;
    let count = batch.count;
    writeln!(out, "({count} exception{})\n", plural(count))?;
    writeln!(out, "Areas\n{}\n", areas_table(&tail.areas))?;
    writeln!(out, "Usage\n{}", usage_table(&tail))?;
    if let Some(runs) = &tail.runs {
        write_runs(out, runs, &widths)?;
    }
    if !tail.problems.is_empty() {
        writeln!(out, "\nProblems")?;
        for problem in &tail.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    Ok(tail)
}

/// Column widths of the streamed exception lines.
struct ColumnWidths {
    index: usize,
    old: usize,
    new: usize,
}

impl ColumnWidths {
    /// Wide enough for every chunk number of a device of `device_chunks`.
    fn for_device(device_chunks: u64) -> Self {
        let digits = itoa::Buffer::new().format(device_chunks).len();
        ColumnWidths {
            index: digits.max("index".len()),
            old: digits.max(12),
            new: digits.max("new_chunk".len()),
        }
    }
}

#[inline]
fn table_record(batch: &mut Batch<'_>, record: &ExceptionRecord, widths: &ColumnWidths) {
    batch.padded(batch.count, widths.index);
    batch.text(b"  ");
    batch.padded(record.old_chunk, widths.old);
    batch.text(b"  ");
    batch.padded(record.new_chunk, widths.new);
    batch.text(b"\n");
}

fn write_runs(out: &mut dyn Write, runs: &[Run], widths: &ColumnWidths) -> io::Result<()> {
    writeln!(out, "\nRuns (the kernel's in-memory exceptions)")?;
    writeln!(
        out,
        "{:>ow$}  {:>nw$}  {:>6}",
        "old_chunk",
        "new_chunk",
        "count",
        ow = widths.old,
        nw = widths.new
    )?;
    let mut batch = Batch::new(out);
    for run in runs {
        batch.padded(run.old_chunk, widths.old);
        batch.text(b"  ");
        batch.padded(run.new_chunk, widths.new);
        batch.text(b"  ");
        batch.padded(run.count, 6);
        batch.text(b"\n");
        batch.end_record()?;
    }
    batch.drain()?;
    writeln!(out, "({} run{})", runs.len(), plural(runs.len() as u64))
}

fn plural(count: u64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED);
    table
}

fn two_columns(rows: Vec<(&str, String)>) -> Table {
    let mut table = new_table();
    table.set_header(vec!["field", "value"]);
    for (field, value) in rows {
        table.add_row(vec![field.to_string(), value]);
    }
    table
}

fn header_table(head: &DumpHead) -> Table {
    two_columns(vec![
        ("kind", head.kind.to_string()),
        ("magic", head.magic.clone()),
        (
            "valid",
            format!(
                "{} ({})",
                head.valid_raw,
                if head.valid { "valid" } else { "invalid" }
            ),
        ),
        ("version", head.version.to_string()),
        (
            "chunk_size",
            format!(
                "{} sectors ({})",
                head.chunk_size,
                human_bytes(u64::from(head.chunk_size) * 512)
            ),
        ),
    ])
}

fn geometry_table(head: &DumpHead) -> Table {
    two_columns(vec![
        (
            "device",
            format!(
                "{} sectors ({})",
                head.device_sectors,
                human_bytes(head.device_sectors * 512)
            ),
        ),
        ("device_chunks", head.device_chunks.to_string()),
        ("exceptions_per_area", head.exceptions_per_area.to_string()),
    ])
}

fn areas_table(areas: &[AreaSummary]) -> Table {
    let mut table = new_table();
    table.set_header(vec!["area", "chunk", "entries", "full"]);
    for area in areas {
        table.add_row(vec![
            area.index.to_string(),
            area.chunk.to_string(),
            area.entries.to_string(),
            if area.full { "yes" } else { "no" }.to_string(),
        ]);
    }
    table
}

fn usage_table(tail: &DumpTail) -> Table {
    two_columns(vec![
        ("areas_in_use", tail.areas_in_use.to_string()),
        ("next_free", tail.state.next_free.to_string()),
        (
            "sectors_allocated",
            tail.usage.sectors_allocated.to_string(),
        ),
        ("total_sectors", tail.usage.total_sectors.to_string()),
        ("metadata_sectors", tail.usage.metadata_sectors.to_string()),
        ("status", tail.status.clone()),
    ])
}
