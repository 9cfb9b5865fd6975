//! mkcow: formats a persistent or legacy COW store exactly as the kernel does on
//! first activation, a shared store, or dm-clone metadata; or restores one from a cowdump dump
//! (metadata only).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cowfmt::device::Device;
use cowfmt::output::OutputClaim;
use cowfmt::store::create::{self, FormatOptions, NewStore};
use cowfmt::store::restore::ReadProgress;
use cowfmt::StoreKind;
use cowtools::cli::mkcow::Cli;
use cowtools::render::mkcow as render;
use cowtools::target::{self, WriteTarget};
use cowtools::{exit, progress};

const TOOL: &str = "mkcow";

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let kind = cli.store_kind.kind.map(StoreKind::from);
    let outcome = match &cli.from_dump {
        Some(dump) => {
            let counter = progress::counter("reading", "records", cli.verbosity.quiet);
            let reading = ReadProgress {
                show: &|count| counter.set_position(count),
                clear: &|| counter.finish_and_clear(),
            };
            let mut bars = progress::PassBars::new(cli.verbosity.quiet);
            create::restore(&Target(cli), dump, kind, &reading, &mut bars)?
        }
        None => {
            let options = FormatOptions {
                kind,
                chunk_sectors: cli.chunk.chunk_size,
                journal_bytes: cli.journal_size,
                snapshots: cli.snapshots,
                region_sectors: cli.region_size,
                target_sectors: cli.target_size,
            };
            create::format(&Target(cli), &options)?
        }
    };
    render::report(cli, &outcome);
    Ok(exit::EXIT_OK)
}

/// mkcow's target as the command line names it, behind the output guard.
struct Target<'a>(&'a Cli);

impl NewStore for Target<'_> {
    type Error = anyhow::Error;

    fn path(&self) -> &Path {
        &self.0.store.target
    }

    fn size(&self) -> Option<u64> {
        self.0.size
    }

    /// Looks at the target without changing it ([`target::plan_target`]).
    fn plan(&self, chunk_sectors: u32) -> anyhow::Result<u64> {
        let force = self.0.overwrite.force;
        target::plan_target(TOOL, self.path(), self.size(), chunk_sectors, force)
    }

    fn origin_sectors(&self) -> anyhow::Result<Option<u64>> {
        target::origin_sectors(self.0.origin.origin.as_deref())
    }

    /// Opens the target through the output guard, never the origin or the
    /// dump ([`target::open_for_write`]).
    fn open(&self) -> anyhow::Result<(Device, OutputClaim)> {
        let cli = self.0;
        let inputs: Vec<&Path> = (cli.origin.origin.iter())
            .chain(cli.from_dump.iter().filter(|dump| dump.as_os_str() != "-"))
            .map(PathBuf::as_path)
            .collect();
        target::open_for_write(&WriteTarget {
            path: self.path(),
            size: cli.size,
            force: cli.overwrite.force,
            inputs: &inputs,
        })
    }
}
