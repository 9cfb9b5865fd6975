//! The command line of cowdump: its arguments, help text and examples.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueEnum};

use super::common::{help, Force, Kind, Quiet, Target};

/// The examples and notes printed after the options by `--help`.
pub const EXAMPLES: &str = "\
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
  dm-clone metadata: every metadata block, its checksum verdict and references:
    cowdump --blocks --format table clone-meta.img

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
#[command(mut_arg("target", help("The image file or block device to read")))]
#[command(mut_arg("force", |arg| help("Overwrite an existing, non-empty output file")(arg).requires("output")))]
#[command(mut_arg(
    "kind",
    help("Insist on a store kind (legacy labels a SnAp store as legacy)")
))]
#[command(mut_arg("quiet", help("No warnings and no progress on stderr")))]
pub struct Cli {
    #[command(flatten)]
    pub store: Target,

    /// Output format.
    #[arg(long, value_enum, default_value_t = DumpFormat::Yaml)]
    pub format: DumpFormat,

    /// Write the output to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub overwrite: Force,

    #[command(flatten)]
    pub store_kind: Kind,

    /// Add the kernel's in-memory runs of consecutive chunks (persistent, legacy).
    #[arg(long)]
    pub runs: bool,

    /// Shared store: only the records snapshot ID sees, as origin_chunk and cow_chunk.
    #[arg(long, value_name = "ID", group = "view")]
    pub snapshot: Option<u32>,

    /// Shared store: every node and leaf of the B-tree in walk order.
    #[arg(long, group = "view")]
    pub tree: bool,

    /// Shared store: every chunk of the device by class, as runs.
    #[arg(long, group = "view")]
    pub bitmap: bool,

    /// Shared store: the journal's superblock and every transaction in its log.
    #[arg(long, group = "view")]
    pub journal: bool,

    /// dm-clone metadata: every metadata block reached (number, type, checksum
    /// verdict, the block referencing it, what it covers) and the bad ones.
    #[arg(long, group = "view")]
    pub blocks: bool,

    /// Print chunk CHUNK of the device in hex, and nothing else.
    #[arg(long, value_name = "CHUNK", conflicts_with_all = ["format", "runs", "view"])]
    pub hex: Option<u64>,

    #[command(flatten)]
    pub verbosity: Quiet,
}

/// The clap command of cowdump, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
