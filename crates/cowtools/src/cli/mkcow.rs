//! The command line of mkcow: its arguments, help text and examples.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use super::common::{help, ChunkSize, Force, Kind, Origin, Quiet, Target};
use crate::args;

/// The examples and notes printed after the options by `--help`.
pub const EXAMPLES: &str = "\
EXAMPLES:
  Create a 64 MiB sparse image and format it with 4 KiB chunks:
    mkcow --size 64M cow.img
  Format a logical volume with 64 KiB chunks, for origin /dev/vg/data:
    mkcow --chunk-size 64k --origin /dev/vg/data /dev/vg/data-cow
  Format for the pre-2.6.29 kernels (deprecated table syntax, 32-bit chunks):
    mkcow --kind legacy cow.img
  A shared store for up to 64 snapshots, with a 16 MiB journal and 4 snapshots:
    mkcow --kind shared --size 1G --journal-size 16M --snapshots 4 shared.img
  Format dm-clone metadata for a 1 GiB target in 64 KiB regions, on a 4 MiB file:
    mkcow --kind clone --region-size 64k --target-size 1G --size 4M clone-meta.img
  Restore the metadata of a store from a dump (data chunks are left alone):
    cowdump -o cow.yaml cow.img && mkcow --force --from-dump cow.yaml cow.img
    mkcow --force -i cow.yaml cow.img    (-i/--input: thin_restore's spelling)

The target must exist unless --size is given. mkcow refuses a target that holds
any signature libblkid knows (a file system, LVM, md, LUKS, swap, a partition
table, a backup GPT at the end), a store or dm metadata, or whose first chunk is
not all zero, unless --force is given; it then says what it overwrites.
On success it prints the dmsetup table line that activates the store; with -q it
prints only that line. Until its header is written last, the target carries an
incomplete marker that the kernel refuses, so a cut job never leaves a store.
Exit codes: 0 formatted or restored, 2 usage or I/O error, an unusable dump, or
a target refused (it holds data and --force was not given), 4 the target is held
open elsewhere (mounted, claimed, attached to a loop device; even with --force).";

/// Command line of mkcow.
#[derive(Debug, Parser)]
#[command(name = "mkcow", version, about = "Format a dm-snapshot COW store, or restore one from a dump", after_help = EXAMPLES)]
#[command(mut_arg("target", help("The image file or block device to format")))]
#[command(mut_arg(
    "kind",
    help("Store kind to write [default: persistent; with --from-dump: the dump's kind]")
))]
#[command(mut_arg("chunk_size", |arg| help("Chunk size: a power of two of at least 512 bytes (4k, 64k, 8s...) [default: 4k]")(arg).conflicts_with("from_dump")))]
#[command(mut_arg(
    "force",
    help("Overwrite a target that holds a signature or a non-zero first chunk (mkcow says what)")
))]
#[command(mut_arg(
    "origin",
    help("The origin device, to fill in its path and size in the table line")
))]
#[command(mut_arg("quiet", help("Print nothing but the table line")))]
pub struct Cli {
    #[command(flatten)]
    pub store: Target,

    #[command(flatten)]
    pub store_kind: Kind,

    #[command(flatten)]
    pub chunk: ChunkSize,

    /// Create the image file, or extend it (sparse), to this size (64M, 1G...).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
    pub size: Option<u64>,

    #[command(flatten)]
    pub overwrite: Force,

    #[command(flatten)]
    pub origin: Origin,

    /// Shared stores: the journal size (16M, 0...) [default: 128 MiB, at most 1/8 of the device].
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size, conflicts_with = "from_dump")]
    pub journal_size: Option<u64>,

    /// Shared stores: create snapshots 0..N-1 right away (at most 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=64), conflicts_with = "from_dump")]
    pub snapshots: Option<u32>,

    /// dm-clone: the region size, a power of two from 4k to 1G (the table's region_size).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_sectors, conflicts_with = "from_dump")]
    pub region_size: Option<u64>,

    /// dm-clone: the size of the target (source and destination), in bytes (512-byte multiple).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_sectors, conflicts_with = "from_dump")]
    pub target_size: Option<u64>,

    /// Restore the metadata from a cowdump YAML or JSON dump ('-' for stdin); also
    /// spelt --input, as thin_restore has it.
    #[arg(short = 'i', long, alias = "input", value_name = "FILE")]
    pub from_dump: Option<PathBuf>,

    #[command(flatten)]
    pub verbosity: Quiet,
}

/// The clap command of mkcow, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
