//! The command line of cowrepair: its arguments, help text and examples.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueEnum};
use cowfmt::repair::RepairRequest;
use cowfmt::store::reports::clone::LostRegions;
use cowfmt::store::reports::shared::mask;
use cowfmt::StoreKind;

use crate::args;
use crate::cli::common::{help, ChunkSize, Force, Origin, Quiet};

/// The examples and notes printed after the options by `--help`.
pub const EXAMPLES: &str = "\
EXAMPLES:
  Salvage a damaged store into a new image (the input is only read):
    cowrepair -i /dev/vg/data-cow -o salvaged.img
  See what would be kept and dropped, writing nothing:
    cowrepair -i cow.img --dry-run
  Drop records whose origin chunk lies past the end of the origin:
    cowrepair -i cow.img -o fixed.img --origin /dev/vg/data
  The header is wiped and the chunk size is known:
    cowrepair -i cow.img -o fixed.img --chunk-size 8k
  Rewrite the store in place, after copying it to a verified backup:
    cowrepair -i /dev/vg/data-cow --in-place --backup /srv/data-cow.bak
  (interrupted? run the same command again: it finishes from that backup)
  Machine-readable report:
    cowrepair -i cow.img -o fixed.img --format json
  Rather no snapshot than one that reads the origin where records were lost:
    cowrepair -i cow.img -o fixed.img --invalidate-on-loss
  A shared store whose header was wiped, with snapshots 0-3 and 5:
    cowrepair -i shared.img -o fixed.img --kind shared --snapshots 0-3,5
  dm-clone metadata whose lost regions are decided from the data:
    cowrepair -i clone-meta.img -o fixed.img --source /dev/vg/origin --dest /dev/vg/clone
  dm-clone metadata whose lost regions are copied again from the source:
    cowrepair -i clone-meta.img -o fixed.img --lost-regions unhydrated
  dm-clone metadata whose superblock is unreadable, rebuilt in place:
    cowrepair -i clone-meta.img --in-place --backup meta.bak --region-size 64k --target-size 10G --lost-regions unhydrated

Persistent stores: every area location on the device is scanned, so records
after a zeroed or overwritten area, or after a premature terminator, are
recovered when credible. Shared stores: the tree is walked from the root; when
a block is damaged, the chunks nothing reachable accounts for are scanned for
leaves, and the report names every lost origin range and what each snapshot
kept and lost. dm-clone metadata: every readable bitset word is kept; each
lost region is decided from --source/--dest data or set by --lost-regions
(required when regions are lost). The kind comes from the header's magic or
the dm-clone superblock (or --kind). An input
without a store's magic that holds another kind (dm-clone or dm-thin metadata,
a file system...) is refused unless --kind and --force are both given.
Exit codes: 0 the output was written and no record was lost, 3 the output was
written but records were lost (dropped, or in unreadable ranges: the report
names the origin ranges that now read through to the origin; --dry-run exits
the same way), 1 nothing could be salvaged or the damage stopped the job (or
the chunk size must be given with --chunk-size), 2 usage or I/O error, 4 the
output (or the input, --in-place) is held open elsewhere (even with --force).";

/// The kinds cowrepair salvages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepairKind {
    /// The kernel's "SnAp" v1 store (dm-snapshot `P`).
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits and made safe to reload there.
    Legacy,
    /// The multi-snapshot shared store.
    Shared,
    /// dm-clone metadata.
    Clone,
}

/// The state `--lost-regions` gives every region of clone metadata whose state is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LostRegionsArg {
    /// Hydrated: the kernel reads them from the destination.
    Hydrated,
    /// Not hydrated: the kernel copies them again from the source.
    Unhydrated,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Plain lines: one per dropped record (and lost range), then a summary.
    Text,
    /// The dropped records (and per-snapshot counts) as tables, then the summary.
    Table,
    /// One JSON document (format_version 1).
    Json,
}

/// Command line of cowrepair.
#[derive(Debug, Parser)]
#[command(name = "cowrepair", version, about = "Salvage a damaged dm-snapshot COW store", after_help = EXAMPLES)]
#[command(mut_arg(
    "chunk_size",
    help("Chunk size to read the store with, overriding the header (4k, 8s...)")
))]
#[command(mut_arg("origin", |arg| help(
    "The origin device: records past its end are dropped, and the table line names it"
)(arg)
.conflicts_with("origin_size")))]
#[command(mut_arg("force", help(
    "Overwrite an existing output (or backup) file, or a device holding data; with --kind, also repair an input that holds another kind's signature"
)))]
#[command(mut_arg(
    "quiet",
    help("No progress bars and no text report; JSON is still printed")
))]
pub struct Cli {
    /// The damaged store (image file or block device); opened read-only.
    #[arg(short, long, value_name = "DAMAGED")]
    pub input: PathBuf,

    /// The new store: an image file (created sparse) or an empty block device.
    #[arg(short, long, value_name = "NEW", conflicts_with = "in_place")]
    pub output: Option<PathBuf>,

    /// Rebuild the input itself, from a verified copy in --backup.
    #[arg(long)]
    pub in_place: bool,

    /// Where --in-place copies the input first (must be new or empty); to
    /// finish an interrupted --in-place repair, the backup it made.
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,

    /// Analyse and report only; write nothing.
    #[arg(short = 'n', long, conflicts_with_all = ["output", "in_place"])]
    pub dry_run: bool,

    /// Size of a new output image (4k, 64M, 1G, 8s...); the input's size by default.
    #[arg(short, long, value_name = "SIZE", value_parser = args::parse_size, conflicts_with = "in_place")]
    pub size: Option<u64>,

    #[command(flatten)]
    pub chunk: ChunkSize,

    #[command(flatten)]
    pub origin: Origin,

    /// The origin's size (bytes, or 64M, 1G, 8s...), when the device is not at hand.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_size)]
    pub origin_size: Option<u64>,

    /// persistent, legacy (also hold the output to the pre-2.6.29 limits),
    /// shared, or clone; by default the header's magic (or a dm-clone
    /// superblock) decides.
    #[arg(long, value_enum)]
    pub kind: Option<RepairKind>,

    /// Shared stores: journal chunks, overriding the header's.
    #[arg(long, value_name = "N")]
    pub journal_chunks: Option<u64>,

    /// Shared stores: the snapshot ids that exist (0,3-5,63), overriding the header's.
    #[arg(long, value_name = "IDS", value_parser = parse_snapshot_ids, conflicts_with = "snapmask")]
    pub snapshots: Option<u64>,

    /// Shared stores: the snapmask (bit s = snapshot s; 0x... or decimal), overriding the header's.
    #[arg(long, value_name = "MASK", value_parser = parse_mask)]
    pub snapmask: Option<u64>,

    /// Shared stores: when the tree is damaged, also look for leaves in chunks
    /// the bitmap marks free (stale leaves the engine freed look like this too).
    #[arg(long)]
    pub full_scan: bool,

    /// Mark the output valid even if the input was invalidated (its data may be incomplete).
    #[arg(long, conflicts_with = "invalidate_on_loss")]
    pub mark_valid: bool,

    /// When records are lost, write the output marked invalid (valid=0): the
    /// kernel (or engine) then refuses the snapshot instead of reading the
    /// origin where the records were. No data rather than wrong data.
    #[arg(long)]
    pub invalidate_on_loss: bool,

    /// Salvage only the areas the kernel reads (leave out records beyond them,
    /// e.g. when the device held an earlier snapshot).
    #[arg(long)]
    pub kernel_areas_only: bool,

    /// Clone metadata: the clone's source device; with --dest, each region whose
    /// state is lost is decided from the data (destination equal to the source or
    /// holding other data: hydrated; all zero where the source is not: unhydrated).
    #[arg(
        long,
        value_name = "DEV",
        requires = "dest",
        conflicts_with = "lost_regions"
    )]
    pub source: Option<PathBuf>,

    /// Clone metadata: the clone's destination device (with --source).
    #[arg(long, value_name = "DEV", requires = "source")]
    pub dest: Option<PathBuf>,

    /// Clone metadata: the state every region whose state is lost gets, when
    /// not decided from the data (required when regions are lost).
    #[arg(long, value_enum, value_name = "STATE")]
    pub lost_regions: Option<LostRegionsArg>,

    /// Clone metadata: the region size (4k ... 1G, a power of two; the
    /// table's region_size), replacing the superblock's (needed when those
    /// are unusable).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_sectors)]
    pub region_size: Option<u64>,

    /// Clone metadata: the target size (512-byte multiple), replacing the
    /// superblock's; when those are unusable, the size of --source by default.
    #[arg(long, value_name = "SIZE", value_parser = args::parse_sectors)]
    pub target_size: Option<u64>,

    #[command(flatten)]
    pub overwrite: Force,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    #[command(flatten)]
    pub verbosity: Quiet,
}

impl RepairKind {
    /// The store kind it names.
    pub fn store_kind(self) -> StoreKind {
        match self {
            RepairKind::Persistent => StoreKind::Persistent,
            RepairKind::Legacy => StoreKind::Legacy,
            RepairKind::Shared => StoreKind::Shared,
            RepairKind::Clone => StoreKind::Clone,
        }
    }
}

impl Cli {
    /// The repair these arguments ask for.
    pub fn request(&self) -> RepairRequest {
        RepairRequest {
            input: self.input.clone(),
            output: self.output.clone(),
            in_place: self.in_place,
            backup: self.backup.clone(),
            dry_run: self.dry_run,
            size: self.size,
            chunk_size: self.chunk.chunk_size,
            origin: self.origin.origin.clone(),
            origin_size: self.origin_size,
            kind: self.kind.map(RepairKind::store_kind),
            journal_chunks: self.journal_chunks,
            snapshots: self.snapshots,
            snapmask: self.snapmask,
            full_scan: self.full_scan,
            mark_valid: self.mark_valid,
            invalidate_on_loss: self.invalidate_on_loss,
            kernel_areas_only: self.kernel_areas_only,
            source: self.source.clone(),
            dest: self.dest.clone(),
            lost_regions: self.lost_regions.map(|arg| match arg {
                LostRegionsArg::Hydrated => LostRegions::Hydrated,
                LostRegionsArg::Unhydrated => LostRegions::Unhydrated,
            }),
            region_size: self.region_size,
            target_size: self.target_size,
            force: self.overwrite.force,
        }
    }
}

/// Parses snapshot ids as people write them ("0,3-5,63") into a snapmask.
pub fn parse_snapshot_ids(text: &str) -> Result<u64, String> {
    let mut mask = 0u64;
    for part in text.split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let id = |t: &str| -> Result<u32, String> {
            let id: u32 = t
                .trim()
                .parse()
                .map_err(|_| format!("{t:?} is not a snapshot id (0-63)"))?;
            if id >= mask::MAX_SNAPSHOTS {
                return Err(format!("snapshot id {id} is out of range (0-63)"));
            }
            Ok(id)
        };
        let (lo, hi) = (id(lo)?, id(hi)?);
        if lo > hi {
            return Err(format!(
                "{part:?} is not an ascending range of snapshot ids"
            ));
        }
        let range = (lo..=hi).fold(0u64, |m, s| m | mask::bit(s));
        if mask & range != 0 {
            return Err(format!(
                "{part:?} names snapshot {} again",
                mask::describe(mask & range)
            ));
        }
        mask |= range;
    }
    Ok(mask)
}

/// Parses a snapmask: `0x...` hexadecimal or decimal.
pub fn parse_mask(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(0) => Err("a snapmask of 0 names no snapshot; a shared store has at least one".into()),
        Ok(mask) => Ok(mask),
        Err(_) => Err(format!("{text:?} is not a snapmask (0x... or decimal)")),
    }
}

/// The clap command of cowrepair, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
