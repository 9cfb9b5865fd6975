//! The command line of cowmigrate: its arguments, help text and examples.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, CommandFactory, Parser, ValueEnum};
use cowfmt::store::migrate::OutputTarget;
use cowfmt::StoreKind;

use crate::args;
use crate::cli::common::{helps, ChunkSize, Force, Origin, Quiet};

/// The examples and notes printed after the options by `--help`.
pub const EXAMPLES: &str = "\
EXAMPLES:
  Re-chunk to 2 KiB chunks (each record becomes two):
    cowmigrate -i cow.img -o cow-2k.img --chunk-size 2k
  Re-chunk to 16 KiB chunks; the pieces that never changed come from the origin:
    cowmigrate -i cow.img -o cow-16k.img --chunk-size 16k --origin /dev/vg/data
  Make a store safe for a pre-2.6.29 kernel (and print its table line):
    cowmigrate -i cow.img -o cow-legacy.img --to legacy --origin /dev/vg/data
  The migrated store needs more room than the input:
    cowmigrate -i cow.img -o big.img --chunk-size 64k --origin /dev/sdb --size 1G
  Three snapshots of one origin into one shared store (snapshots 0, 1, 2):
    cowmigrate -i mon.img tue.img wed.img -o shared.img --to shared
  The same, as snapshots 5, 6 and 9, with room to grow:
    cowmigrate -i mon.img tue.img wed.img --ids 5,6,9 -o shared.img --to shared --size 4G
  Snapshot 6 of a shared store as a classic store the kernel can activate:
    cowmigrate -i shared.img -o tue.img --to persistent --snapshot 6 --origin /dev/vg/data
  A shared store with 16 KiB chunks, or compacted (fresh tree, contiguous data):
    cowmigrate -i shared.img -o shared-16k.img --chunk-size 16k --origin /dev/vg/data
    cowmigrate -i shared.img -o compact.img --to shared
  The data of a snapshot as a raw image (sparse), or streamed to a pipe:
    cowmigrate -i cow.img --to raw --origin /dev/vg/data -o snap.raw
    cowmigrate -i shared.img --to raw --snapshot 6 --origin /dev/vg/data -o - | sha256sum
  dm-clone metadata with 64 KiB regions instead of 4 KiB (each 16 regions
  merge; one is hydrated only when all 16 were):
    cowmigrate -i clone-meta.img -o clone-meta-64k.img --region-size 64k
  Roll the origin back to a snapshot offline (the store is emptied, or the
  snapshot deleted from a shared store; rerun the same command after a crash):
    cowmigrate -i cow.img --merge --origin /dev/vg/data
    cowmigrate -i shared.img --merge --snapshot 6 --origin /dev/vg/data

The inputs are only read and must be undamaged (repair them with cowrepair first);
--merge writes the store and the origin, and refuses either when it is held open
elsewhere (mounted, active in device-mapper, attached to a loop device).
Exit codes: 0 migrated, exported or merged, 1 the input has problems, 2 usage or
I/O error, 4 a device to write is held open elsewhere (refused even with --force).";

/// The kinds a store can be converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToKind {
    /// The kernel's "SnAp" v1 store as current kernels use it.
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits and made safe to reload there.
    Legacy,
    /// One store for up to 64 snapshots, each copied chunk stored once.
    Shared,
}

impl From<ToKind> for StoreKind {
    fn from(kind: ToKind) -> Self {
        match kind {
            ToKind::Persistent => StoreKind::Persistent,
            ToKind::Legacy => StoreKind::Legacy,
            ToKind::Shared => StoreKind::Shared,
        }
    }
}

/// What `--to` writes: a store of a kind, or a snapshot's raw image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToTarget {
    /// The kernel's "SnAp" v1 store as current kernels use it.
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits and made safe to reload there.
    Legacy,
    /// One store for up to 64 snapshots, each copied chunk stored once.
    Shared,
    /// One snapshot's data: its full logical image (origin plus exceptions).
    Raw,
}

impl ToTarget {
    /// The store kind written, or `None` for a raw image.
    pub fn kind(self) -> Option<ToKind> {
        match self {
            ToTarget::Persistent => Some(ToKind::Persistent),
            ToTarget::Legacy => Some(ToKind::Legacy),
            ToTarget::Shared => Some(ToKind::Shared),
            ToTarget::Raw => None,
        }
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Plain lines.
    Text,
    /// One JSON document (format_version 1).
    Json,
}

/// Command line of cowmigrate.
#[derive(Debug, Parser)]
#[command(name = "cowmigrate", version, about = "Re-chunk or convert a dm-snapshot COW store", after_help = EXAMPLES)]
#[command(group(ArgGroup::new("target").required(true).multiple(true).args(["chunk_size", "region_size", "to", "merge"])))]
#[command(mut_args(helps(&[
    ("chunk_size", "The new chunk size (a power of two: 4k, 8s...)"),
    ("origin", "The origin device: needed for a larger chunk size; fills the table line"),
    ("force", "Overwrite an existing output file, or a device holding data"),
    ("quiet", "No progress bar and no text report; JSON is still printed"),
])))]
pub struct Cli {
    /// The store to migrate (image file or block device); opened read-only.
    /// Several classic stores of one origin with --to shared.
    #[arg(short, long, value_name = "IN", num_args = 1.., action = clap::ArgAction::Append, required = true)]
    pub input: Vec<PathBuf>,

    /// The new store: an image file (created sparse) or an empty block device;
    /// with --to raw the image file, or - for stdout.
    #[arg(short, long, value_name = "OUT", required_unless_present = "merge")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub chunk: ChunkSize,

    /// dm-clone metadata: the new region size, a power of two from 4k to 1G
    /// (the kernel's limits); the target size stays.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_sectors, conflicts_with_all = ["chunk_size", "to", "merge"])]
    pub region_size: Option<u64>,

    /// The kind to convert to, or raw: the snapshot's data as an image.
    #[arg(long, value_enum)]
    pub to: Option<ToTarget>,

    /// Merge the snapshot into --origin offline (a rollback): the origin then
    /// reads as the snapshot; the store is emptied (a shared store loses that
    /// snapshot only). Rerun it to finish a merge a crash interrupted.
    #[arg(long, conflicts_with_all = ["to", "chunk_size", "output", "ids", "journal_size", "size"])]
    pub merge: bool,

    #[command(flatten)]
    pub origin: Origin,

    /// The kind the input is (found from its magic; legacy only changes labels).
    #[arg(long, value_enum)]
    pub kind: Option<ToKind>,

    /// The snapshot of a shared input to export (--to persistent|legacy|raw) or
    /// merge (--merge).
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(u32).range(0..64))]
    pub snapshot: Option<u32>,

    /// With --to shared: the snapshot id of each input, in order (5,6,9); 0,1,2... by default.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,

    /// A new shared store's journal (16M, 0...) [default: an import takes 128 MiB,
    /// at most 1/8 of the device; a re-chunk keeps the input's].
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
    pub journal_size: Option<u64>,

    /// Size of a new output image (4k, 64M, 1G, 8s...) [default: what the store
    /// needs plus a quarter (at least 64 chunks) to grow, and at least the
    /// input's size].
    #[arg(short, long, value_name = "SIZE", value_parser = args::parse_size)]
    pub size: Option<u64>,

    #[command(flatten)]
    pub overwrite: Force,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    #[command(flatten)]
    pub verbosity: Quiet,
}

impl Cli {
    /// The output path (present unless --merge, which writes none).
    pub fn output(&self) -> &Path {
        self.output.as_deref().unwrap_or(Path::new(""))
    }

    /// The store kind --to asks for (`None` for raw or no --to).
    pub fn to_kind(&self) -> Option<ToKind> {
        self.to.and_then(ToTarget::kind)
    }

    /// Where the output goes; every file the job reads (the inputs and the
    /// origin) is named so that none is the output.
    pub fn target(&self) -> OutputTarget<'_> {
        OutputTarget {
            path: self.output(),
            size: self.size,
            force: self.overwrite.force,
            reads: (self.input.iter().map(PathBuf::as_path))
                .chain(self.origin.origin.as_deref())
                .collect(),
        }
    }

    /// Refuses the options that only shared migrations take, saying `why` not.
    pub fn refuse_shared_options(&self, why: &str) -> anyhow::Result<()> {
        let given = [
            ("--snapshot", self.snapshot.is_some()),
            ("--ids", self.ids.is_some()),
            ("--journal-size", self.journal_size.is_some()),
        ];
        refuse(&given, |flag| format!("{flag} does not apply here: {why}"))
    }

    /// Refuses the options a clone region-size change does not take.
    pub fn refuse_clone_options(&self) -> anyhow::Result<()> {
        let given = [
            ("--origin", self.origin.origin.is_some()),
            ("--snapshot", self.snapshot.is_some()),
            ("--ids", self.ids.is_some()),
            ("--journal-size", self.journal_size.is_some()),
        ];
        refuse(&given, |flag| {
            format!(
                "{}: {flag} does not apply to dm-clone metadata (its region size is changed with --region-size)",
                self.input[0].display()
            )
        })
    }

    /// Refuses the options of a migration that `job` (`--to raw`, `--merge`)
    /// does not take.
    pub fn refuse_raw_options(&self, job: &str) -> anyhow::Result<()> {
        let given = [
            ("--chunk-size", self.chunk.chunk_size.is_some()),
            ("--ids", self.ids.is_some()),
            ("--journal-size", self.journal_size.is_some()),
            ("--size", self.size.is_some()),
        ];
        refuse(&given, |flag| format!("{flag} does not apply to {job}"))?;
        if self.input.len() > 1 {
            anyhow::bail!("{job} takes one store (-i), not {}", self.input.len());
        }
        Ok(())
    }
}

/// Fails with `message(flag)` for the first of `flags` given.
fn refuse(flags: &[(&str, bool)], message: impl Fn(&str) -> String) -> anyhow::Result<()> {
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => anyhow::bail!("{}", message(flag)),
        None => Ok(()),
    }
}

/// The clap command of cowmigrate, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
