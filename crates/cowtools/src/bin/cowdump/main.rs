//! cowdump: dumps the metadata of a COW store as YAML, JSON or tables, or one
//! raw chunk in hex. Persistent and legacy stores: header, geometry, every
//! exception in on-disk order, usage. Shared stores: header, geometry,
//! snapshots, and the records in origin order, one snapshot's view, the tree,
//! the chunks by class, or the journal.

mod batch;
mod journal;
mod persistent;
mod shared;
mod shared_table;
mod tree_items;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use cowfmt::shared::dump::journal::JournalDump;
use cowfmt::shared::dump::SharedSource;
use cowfmt::{Device, StoreKind};
use cowtools::args::KindArg;
use cowtools::{exit, hexdump, open, output};

use crate::batch::Progress;
use crate::shared::View;

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
  Shared store: what snapshot 3 sees, the B-tree, the chunks by class, the journal:
    cowdump --snapshot 3 shared.img
    cowdump --tree --format table shared.img
    cowdump --bitmap --format json shared.img
    cowdump --journal --format table shared.img

The YAML and JSON dumps of a persistent store are one document (format_version 1)
that mkcow --from-dump restores. -o never writes over the store it dumps (under
any name) nor, without --force, over an existing file; the file appears only
once the dump is complete.
Exit codes: 0 dumped, 2 usage or I/O error, or not a store.";

/// Output formats of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
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

    /// Overwrite an existing, non-empty output file.
    #[arg(short, long, requires = "output")]
    force: bool,

    /// Insist on a store kind (legacy labels a SnAp store as legacy).
    #[arg(long, value_enum)]
    kind: Option<KindArg>,

    /// Add the kernel's in-memory runs of consecutive chunks (persistent, legacy).
    #[arg(long)]
    runs: bool,

    /// Shared store: only the records snapshot ID sees, as origin_chunk and cow_chunk.
    #[arg(long, value_name = "ID", group = "view")]
    snapshot: Option<u32>,

    /// Shared store: every node and leaf of the B-tree in walk order.
    #[arg(long, group = "view")]
    tree: bool,

    /// Shared store: every chunk of the device by class, as runs.
    #[arg(long, group = "view")]
    bitmap: bool,

    /// Shared store: the journal's superblock and every transaction in its log.
    #[arg(long, group = "view")]
    journal: bool,

    /// Print chunk CHUNK of the device in hex, and nothing else.
    #[arg(long, value_name = "CHUNK", conflicts_with_all = ["format", "runs", "view"])]
    hex: Option<u64>,

    /// No warnings and no progress on stderr.
    #[arg(short, long)]
    quiet: bool,
}

impl Cli {
    fn shared_view(&self) -> Option<(View, &'static str)> {
        if let Some(id) = self.snapshot {
            Some((View::Snapshot(id), "--snapshot"))
        } else if self.tree {
            Some((View::Tree, "--tree"))
        } else if self.bitmap {
            Some((View::Bitmap, "--bitmap"))
        } else {
            None
        }
    }

    /// Opens `-o FILE` (never the target, never an existing file without
    /// `--force`) or stdout.
    fn open_output(&self) -> anyhow::Result<output::Output> {
        output::open_output(TOOL, self.output.as_deref(), self.force, &[&self.target])
    }

    fn progress(&self) -> Progress {
        Progress::new(self.quiet, self.output.is_some())
    }

    fn warn(&self, problem: &str) {
        if !self.quiet {
            eprintln!("{TOOL}: warning: {}: {problem}", self.target.display());
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let (device, kind) = open::detect_kind(&cli.target, cli.kind.map(Into::into))?;
    match kind {
        StoreKind::Shared => run_shared(cli, device),
        kind if kind.is_snap_v1() => run_persistent(cli, device, kind),
        kind => Err(open::unsupported(kind, &cli.target, TOOL)),
    }
}

fn run_persistent(cli: &Cli, device: Device, kind: StoreKind) -> anyhow::Result<u8> {
    if let Some(flag) = cli
        .shared_view()
        .map(|(_, flag)| flag)
        .or(cli.journal.then_some("--journal"))
    {
        bail!(
            "{}: {flag} is for shared stores, and this is a {kind} store",
            cli.target.display()
        );
    }
    let store = open::open_persistent(device)?;
    if let Some(chunk) = cli.hex {
        let geometry = store.geometry();
        return hex_chunk(
            cli,
            store.device(),
            geometry.chunk_bytes() as u64,
            geometry.device_chunks(),
            chunk,
        );
    }
    let mut out = cli.open_output()?;
    let progress = cli.progress();
    let tail = persistent::write(&mut out, &store, kind, cli.format, cli.runs, &progress)?;
    out.finish()?;
    progress.finish();
    for problem in &tail.problems {
        cli.warn(problem);
    }
    Ok(exit::EXIT_OK)
}

fn run_shared(cli: &Cli, device: Device) -> anyhow::Result<u8> {
    if cli.runs {
        bail!(
            "{}: --runs is for persistent and legacy stores, and this is a shared store",
            cli.target.display()
        );
    }
    let source = SharedSource::open(device)?;
    if let Some(chunk) = cli.hex {
        let geometry = source.geometry();
        return hex_chunk(
            cli,
            source.device(),
            geometry.chunk_bytes,
            geometry.nr_chunks,
            chunk,
        );
    }
    if cli.journal {
        let dump = JournalDump::of(&source)?;
        let mut out = cli.open_output()?;
        journal::write(&mut out, &dump, cli.format)?;
        out.finish()?;
        return Ok(exit::EXIT_OK);
    }
    let view = cli.shared_view().map_or(View::Exceptions, |(view, _)| view);
    if let View::Snapshot(id) = view {
        source.require_snapshot(id)?;
    }
    let mut out = cli.open_output()?;
    let progress = cli.progress();
    let tail = shared::write(&mut out, &source, view, cli.format, &progress)?;
    out.finish()?;
    progress.finish();
    for problem in &tail.problems {
        cli.warn(&shared::problem_text(problem));
    }
    Ok(exit::EXIT_OK)
}

fn hex_chunk(
    cli: &Cli,
    device: &Device,
    chunk_bytes: u64,
    nr_chunks: u64,
    chunk: u64,
) -> anyhow::Result<u8> {
    if chunk >= nr_chunks {
        bail!(
            "{}: chunk {chunk} is past the end of the device ({nr_chunks} chunks of {chunk_bytes} bytes)",
            cli.target.display(),
        );
    }
    let mut bytes = vec![0u8; chunk_bytes as usize];
    device.read_chunk(chunk, &mut bytes)?;
    let mut out = cli.open_output()?;
    hexdump::write_hex(&mut out, chunk * chunk_bytes, &bytes)?;
    out.finish()?;
    Ok(exit::EXIT_OK)
}
