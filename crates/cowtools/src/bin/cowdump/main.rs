//! cowdump: dumps the metadata of a COW store as YAML, JSON or tables, or one
//! raw chunk in hex. Persistent and legacy stores: header, geometry, every
//! exception in on-disk order, usage. Shared stores: header, geometry,
//! snapshots, and the records in origin order, one snapshot's view, the tree,
//! the chunks by class, or the journal.

use std::process::ExitCode;

use anyhow::bail;
use clap::Parser;
use cowfmt::device::{Access, Device};
use cowfmt::dump_lines::TextSyntax;
use cowfmt::store::dump::{
    write_clone_blocks, write_journal, DumpOptions, Dumped, JournalDump, View,
};
use cowfmt::StoreKind;
use cowtools::cli::cowdump::{Cli, DumpFormat};
use cowtools::progress::RecordCounter;
use cowtools::render::dump::{self as render, write_error};
use cowtools::{exit, hexdump, open, output};

const TOOL: &str = "cowdump";

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let target = &cli.store.target;
    let wanted: Option<StoreKind> = cli.store_kind.kind.map(Into::into);
    if cli.blocks && wanted == Some(StoreKind::Clone) {
        return clone_blocks(cli, &Device::open(target, Access::ReadOnly)?);
    }
    let (device, kind) = open::detect_kind(target, wanted)?;
    refuse_other_kinds_options(cli, kind)?;
    if cli.blocks {
        return clone_blocks(cli, &device);
    }
    let Some(dumped) = Dumped::open(device, kind)? else {
        return Err(open::unsupported(kind, target, TOOL));
    };
    if let Some(chunk) = cli.hex {
        return hex_chunk(cli, &dumped, chunk);
    }
    let syntax = syntax(cli);
    if let (true, Dumped::Shared(source)) = (cli.journal, &dumped) {
        let dump = JournalDump::of(source)?;
        let mut out = open_output(cli)?;
        match syntax {
            Some(syntax) => write_journal(&mut out, &dump, syntax).map_err(write_error)?,
            None => render::journal::write_table(&mut out, &dump)?,
        }
        out.finish()?;
        return Ok(exit::EXIT_OK);
    }
    let options = DumpOptions {
        runs: cli.runs,
        view: shared_view(cli).map_or(View::Exceptions, |(view, _)| view),
    };
    if let (View::Snapshot(id), Dumped::Shared(source)) = (options.view, &dumped) {
        source.require_snapshot(id)?;
    }
    warn_unreplayed(cli, &dumped);
    let mut out = open_output(cli)?;
    let progress = RecordCounter::new("dumping", cli.verbosity.quiet, cli.output.is_some());
    let prepared = dumped.prepare(&options)?;
    let tail = match syntax {
        Some(syntax) => prepared
            .write_document(&mut out, &options, syntax, &|count| progress.tick(count))
            .map_err(write_error)?,
        None => render::write_tables(&mut out, &prepared, &options, &progress)?,
    };
    out.finish()?;
    progress.finish();
    for problem in render::problem_lines(&tail) {
        warn(cli, &problem);
    }
    Ok(exit::EXIT_OK)
}

/// `--blocks`: every metadata block of dm-clone metadata, streamed; with
/// `--kind clone` also when block 0 is too damaged to say it is clone.
fn clone_blocks(cli: &Cli, device: &Device) -> anyhow::Result<u8> {
    let mut out = open_output(cli)?;
    let progress = RecordCounter::new("listing blocks", cli.verbosity.quiet, cli.output.is_some());
    let problems = match syntax(cli) {
        Some(syntax) => {
            write_clone_blocks(&mut out, device, syntax, &|count| progress.tick(count))
                .map_err(write_error)?;
            Vec::new()
        }
        None => render::clone_blocks::write_blocks(&mut out, device, &progress)?,
    };
    out.finish()?;
    progress.finish();
    for problem in problems {
        warn(cli, &problem);
    }
    Ok(exit::EXIT_OK)
}

/// The document syntax `--format` asks for (`None`: tables).
fn syntax(cli: &Cli) -> Option<TextSyntax> {
    match cli.format {
        DumpFormat::Json => Some(TextSyntax::Json),
        DumpFormat::Yaml => Some(TextSyntax::Yaml),
        DumpFormat::Table => None,
    }
}

/// The shared view the command line asks for, and its flag.
fn shared_view(cli: &Cli) -> Option<(View, &'static str)> {
    if let Some(id) = cli.snapshot {
        Some((View::Snapshot(id), "--snapshot"))
    } else if cli.tree {
        Some((View::Tree, "--tree"))
    } else if cli.bitmap {
        Some((View::Bitmap, "--bitmap"))
    } else {
        None
    }
}

/// Refuses the options of one kind on a store of another, before the store
/// is opened.
fn refuse_other_kinds_options(cli: &Cli, kind: StoreKind) -> anyhow::Result<()> {
    let target = cli.store.target.display();
    if cli.blocks && kind != StoreKind::Clone {
        bail!("{target}: --blocks is for dm-clone metadata, and this is a {kind} store");
    }
    if kind.is_snap_v1() {
        let shared_flag = shared_view(cli)
            .map(|(_, flag)| flag)
            .or(cli.journal.then_some("--journal"));
        if let Some(flag) = shared_flag {
            bail!("{target}: {flag} is for shared stores, and this is a {kind} store");
        }
    } else if kind == StoreKind::Shared && cli.runs {
        bail!("{target}: --runs is for persistent and legacy stores, and this is a shared store");
    } else if kind == StoreKind::Clone {
        let flag = shared_view(cli)
            .map(|(_, flag)| flag)
            .or(cli.journal.then_some("--journal"))
            .or(cli.runs.then_some("--runs"));
        if let Some(flag) = flag {
            bail!("{target}: {flag} is not for dm-clone metadata");
        }
    }
    Ok(())
}

/// Opens `-o FILE` (never the target, never an existing file without
/// `--force`) or stdout.
fn open_output(cli: &Cli) -> anyhow::Result<output::Output> {
    output::open_output(
        TOOL,
        cli.output.as_deref(),
        cli.overwrite.force,
        &[&cli.store.target],
    )
}

fn warn(cli: &Cli, problem: &str) {
    if !cli.verbosity.quiet {
        eprintln!("{TOOL}: warning: {}: {problem}", cli.store.target.display());
    }
}

/// Warns when the journal holds committed transactions the dump cannot show.
fn warn_unreplayed(cli: &Cli, dumped: &Dumped) {
    let n = dumped.unreplayed_transactions();
    if n > 0 {
        let (s, them) = if n == 1 { ("", "it") } else { ("s", "them") };
        warn(cli, &format!(
            "the journal holds {n} committed transaction{s} not yet written home: this dump shows the store before {them}; open it with the engine or run cowrepair (cowdump --journal lists {them})",
        ));
    }
}

fn hex_chunk(cli: &Cli, dumped: &Dumped, chunk: u64) -> anyhow::Result<u8> {
    let (chunk_bytes, nr_chunks) = dumped.chunks();
    if chunk >= nr_chunks {
        bail!(
            "{}: chunk {chunk} is past the end of the device ({nr_chunks} chunks of {chunk_bytes} bytes)",
            cli.store.target.display(),
        );
    }
    let mut bytes = vec![0u8; chunk_bytes as usize];
    dumped.device().read_chunk(chunk, &mut bytes)?;
    let mut out = open_output(cli)?;
    hexdump::write_hex(&mut out, chunk * chunk_bytes, &bytes)?;
    out.finish()?;
    Ok(exit::EXIT_OK)
}
