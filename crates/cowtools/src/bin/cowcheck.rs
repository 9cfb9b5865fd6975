//! cowcheck: verifies every invariant of a persistent, legacy or shared COW
//! store or of dm-clone metadata and reports each problem with its location;
//! the exit code says whether any was found.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use cowfmt::device::{Access, Device};
use cowfmt::store::check::{self as check, CheckOptions, ProgressUnit, Refusal};
use cowfmt::StoreKind;
use cowtools::cli::cowcheck::{Cli, ReportFormat};
use cowtools::exit::StoreProblems;
use cowtools::render::check::{write_json, write_text};
use cowtools::{exit, open, progress};

const TOOL: &str = "cowcheck";

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    open::warn_if_in_use(TOOL, &cli.store.target);
    let device = Device::open(&cli.store.target, Access::ReadOnly)?;
    let options = CheckOptions {
        kind: cli.store_kind.kind.map(StoreKind::from),
        origin_bytes: None,
        header_only: cli.super_block_only,
        chunk_size_fallback: cli.chunk.chunk_size,
    };
    let mut plan = match check::plan(&device, &options)? {
        Ok(plan) => plan,
        Err(Refusal::Unfinished(text)) => return Err(StoreProblems(text).into()),
        Err(Refusal::Unsupported(kind)) => {
            return Err(open::unsupported(kind, device.path(), TOOL))
        }
    };
    plan.set_origin_bytes(origin_bytes(cli)?);
    let bar = match plan.progress_unit() {
        ProgressUnit::DeviceChunks | ProgressUnit::ArrayBlocks => {
            progress::bar(0, "checking", cli.verbosity.quiet)
        }
        ProgressUnit::TreeBlocks => {
            progress::counter("checking", "tree blocks", cli.verbosity.quiet)
        }
    };
    let report = progress::show(bar, |p| plan.run(&device, p))?;
    if !cli.verbosity.quiet {
        let mut out = io::stdout().lock();
        match cli.format {
            ReportFormat::Text => {
                write_text(&mut out, &cli.store.target, &report, cli.super_block_only)?
            }
            ReportFormat::Json => write_json(&mut out, &cli.store.target, &report)?,
        }
        out.flush()?;
    }
    Ok(if report.fails(cli.ignore_non_fatal) {
        exit::EXIT_PROBLEMS
    } else {
        exit::EXIT_OK
    })
}

/// The origin size: `--origin` opened for its size, or `--origin-size`.
fn origin_bytes(cli: &Cli) -> anyhow::Result<Option<u64>> {
    Ok(match &cli.origin.origin {
        Some(origin) => Some(Device::open(origin, Access::ReadOnly)?.size_bytes()),
        None => cli.origin_size,
    })
}
