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

use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use cowfmt::shared::dump::journal::JournalDump;
use cowfmt::shared::dump::SharedSource;
use cowfmt::{Device, StoreKind};
use cowtools::cli::cowdump::{Cli, DumpFormat};
use cowtools::{exit, hexdump, open, output};

use crate::batch::Progress;
use crate::shared::View;

const TOOL: &str = "cowdump";

/// What cowdump's command line tells beyond its fields.
trait CliExt {
    fn shared_view(&self) -> Option<(View, &'static str)>;
    fn open_output(&self) -> anyhow::Result<output::Output>;
    fn progress(&self) -> Progress;
    fn warn(&self, problem: &str);
}

impl CliExt for Cli {
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
        output::open_output(
            TOOL,
            self.output.as_deref(),
            self.overwrite.force,
            &[&self.store.target],
        )
    }

    fn progress(&self) -> Progress {
        Progress::new(self.verbosity.quiet, self.output.is_some())
    }

    fn warn(&self, problem: &str) {
        if !self.verbosity.quiet {
            eprintln!(
                "{TOOL}: warning: {}: {problem}",
                self.store.target.display()
            );
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let (device, kind) = open::detect_kind(&cli.store.target, cli.store_kind.kind.map(Into::into))?;
    match kind {
        StoreKind::Shared => run_shared(cli, device),
        kind if kind.is_snap_v1() => run_persistent(cli, device, kind),
        kind => Err(open::unsupported(kind, &cli.store.target, TOOL)),
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
            cli.store.target.display()
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
            cli.store.target.display()
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
    warn_unreplayed(cli, &source);
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

/// Warns when the journal holds committed transactions the dump cannot show
/// (their images are not home yet). A journal that cannot be read is left to
/// cowcheck.
fn warn_unreplayed(cli: &Cli, source: &SharedSource) {
    let Ok(found) = cowfmt::shared::journal::scan(source.device(), source.geometry()) else {
        return;
    };
    if found.needs_replay() {
        let n = found.committed.len();
        cli.warn(&format!(
            "the journal holds {n} committed transaction{} not yet written home: this dump shows the store before {}; open it with the engine or run cowrepair (cowdump --journal lists {})",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" },
            if n == 1 { "it" } else { "them" },
        ));
    }
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
            cli.store.target.display(),
        );
    }
    let mut bytes = vec![0u8; chunk_bytes as usize];
    device.read_chunk(chunk, &mut bytes)?;
    let mut out = cli.open_output()?;
    hexdump::write_hex(&mut out, chunk * chunk_bytes, &bytes)?;
    out.finish()?;
    Ok(exit::EXIT_OK)
}
