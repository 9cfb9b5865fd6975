//! The command line of cowcheck: its arguments, help text and examples.

use clap::{CommandFactory, Parser, ValueEnum};

use super::common::{help, ChunkSize, Kind, Origin, Quiet, Target};
use crate::args;

/// The examples and notes printed after the options by `--help`.
pub const EXAMPLES: &str = "\
EXAMPLES:
  Check a store (exit 0 clean, 1 problems found, 2 could not check):
    cowcheck cow.img
  Also check every origin chunk number against the origin's size:
    cowcheck --origin /dev/vg/data /dev/vg/data-cow
  Machine-readable report:
    cowcheck --format json cow.img
  Only the exit code, ignoring warnings (holes after a crash, invalidation...):
    cowcheck -q --ignore-non-fatal cow.img
    cowcheck -q --ignore-non-fatal-errors cow.img    (thin_check's spelling)
  Hold a store to the pre-2.6.29 limits:
    cowcheck --kind legacy cow.img
  A shared store (found by its magic; --kind shared insists on it):
    cowcheck --origin /dev/vg/data shared.img
  dm-clone metadata (found by its superblock); --origin is the clone's source,
  whose size the superblock's target size must equal:
    cowcheck --origin /dev/vg/source clone-meta.img

Findings are printed one per line as 'FILE: error|warning: CODE: message', then a
one-line summary. With --kind, a header whose magic is wrong is reported as a
bad-magic finding (exit 1) instead of 'not a store' (exit 2).";

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One line per finding, then a summary line.
    Text,
    /// One JSON document (format_version 1).
    Json,
}

/// Command line of cowcheck.
#[derive(Debug, Parser)]
#[command(name = "cowcheck", version, about = "Check a dm-snapshot COW store or dm-clone metadata", after_help = EXAMPLES)]
#[command(mut_arg("target", help("The image file or block device to check")))]
#[command(mut_arg(
    "origin",
    help("The origin device, to take its size from (clone: the source device)")
))]
#[command(mut_arg("quiet", help("Print nothing; only the exit code tells")))]
#[command(mut_arg(
    "kind",
    help("Insist on a store kind; legacy also checks the pre-2.6.29 limits")
))]
#[command(mut_arg(
    "chunk_size",
    help("Chunk size to read the areas with when the header's is unusable (4k, 8s...)")
))]
pub struct Cli {
    #[command(flatten)]
    pub store: Target,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    /// The origin's size (bytes, or with a suffix: 64M, 1G, 8s), to check old chunks.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size, conflicts_with = "origin")]
    pub origin_size: Option<u64>,

    #[command(flatten)]
    pub origin: Origin,

    /// Check only the header (chunk 0).
    #[arg(long)]
    pub super_block_only: bool,

    #[command(flatten)]
    pub verbosity: Quiet,

    #[command(flatten)]
    pub store_kind: Kind,

    #[command(flatten)]
    pub chunk: ChunkSize,

    /// Exit 0 when only warnings (non-fatal findings) were found; also spelt
    /// --ignore-non-fatal-errors, as thin_check has it.
    #[arg(long, alias = "ignore-non-fatal-errors")]
    pub ignore_non_fatal: bool,
}

/// The clap command of cowcheck, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
