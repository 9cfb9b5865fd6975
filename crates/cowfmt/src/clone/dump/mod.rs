//! The dump of dm-clone metadata: what `cowdump` shows of it (the superblock,
//! the space map's root, the hydrated regions as runs) read from a device,
//! and the head a restore takes back. The schema's text, both ways, is
//! [`text`]; every metadata block reached (`--blocks`) is [`blocks`].

pub mod blocks;
pub mod text;

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::geometry::Geometry;
use super::superblock::{CloneSuperblock, METADATA_BLOCK_BYTES};
use super::walk::{walk, Policy};
use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::dump_format::DUMP_FORMAT_VERSION;
use crate::error::{Error, Result};
use crate::kind::StoreKind;
use crate::pdata::bitset::set_runs;
use crate::pdata::space_map::SmRoot;

/// The fields of a clone dump before its `hydrated` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneDumpHead {
    /// [`DUMP_FORMAT_VERSION`].
    pub format_version: u32,
    /// `clone`.
    pub kind: StoreKind,
    /// Region size in sectors.
    pub region_size: u64,
    /// Target (source and destination) length in sectors.
    pub target_size: u64,
    /// Regions of the target.
    pub nr_regions: u64,
    /// Regions whose bit is set.
    pub hydrated_regions: u64,
    /// The figures of `dmsetup status` the metadata decides, as the kernel
    /// prints them: `<metadata block sectors> <used>/<total> <region size>
    /// <hydrated>/<regions>`.
    pub status: String,
    /// The superblock's fields.
    pub superblock: SuperblockSummary,
    /// The metadata space map's root.
    pub space_map: SpaceMapSummary,
}

/// The superblock as the dump shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuperblockSummary {
    /// The magic, as hex.
    pub magic: String,
    /// The metadata version.
    pub version: u32,
    /// The flags word.
    pub flags: u32,
    /// The block number the superblock stores of itself.
    pub blocknr: u64,
    /// The UUID field, as hex.
    pub uuid: String,
    /// The stored checksum, as hex.
    pub checksum: String,
    /// Whether the stored checksum is the one computed.
    pub checksum_valid: bool,
    /// The root of the bitset's array B-tree.
    pub bitset_root: u64,
}

/// The metadata space map's root as the dump shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceMapSummary {
    /// Metadata blocks the space map covers.
    pub nr_blocks: u64,
    /// Blocks in use (the status's "used").
    pub nr_allocated: u64,
    /// The index block.
    pub index_block: u64,
    /// The root of the ref-count B-tree.
    pub ref_count_root: u64,
}

/// A run of regions: `count` regions from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRun {
    /// The first region.
    pub start: u64,
    /// Regions in the run.
    pub count: u64,
}

/// What a dump found past the hydrated runs: regions whose bitset words
/// could not be read, and every problem as a sentence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneDumpTail {
    /// Regions whose state is lost (their bits read as not hydrated).
    pub lost_regions: u64,
    /// Those regions, as runs.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub lost: Vec<RegionRun>,
    /// Problems found on the way, one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub problems: Vec<String>,
}

/// Clone metadata read for a dump: its head, its hydration bits (one per
/// region) and its tail.
#[derive(Debug, Clone)]
pub struct CloneDump {
    /// The head.
    pub head: CloneDumpHead,
    /// The hydration bits; those of lost regions are clear.
    pub bits: DenseBitmap,
    /// Lost regions and problems.
    pub tail: CloneDumpTail,
}

impl CloneDump {
    /// Reads the metadata on `device` for a dump: the superblock must be
    /// readable and its sizes ones the kernel accepts (else the error names
    /// what is wrong); the bitset is read tolerantly, words that cannot be
    /// read are reported as lost regions.
    pub fn read(device: &dyn BlockDev) -> Result<Self> {
        let path = device.path().display().to_string();
        let walked = walk(device, None, Policy::Tolerant, &mut ())?;
        let opened = &walked.opened;
        let (Some(superblock), Some(geometry), true) =
            (&opened.superblock, opened.geometry, walked.bits.is_some())
        else {
            let why = if walked.violations.is_empty() {
                "block 0 is all zero: no dm-clone metadata yet (the kernel formats it on activation)".to_string()
            } else {
                let each: Vec<String> = walked.violations.iter().map(|v| v.describe()).collect();
                each.join("; ")
            };
            return Err(Error::Invalid(format!(
                "{path}: cannot dump dm-clone metadata: {why}"
            )));
        };
        let problems = walked.violations.iter().map(|v| v.describe()).collect();
        let tail = CloneDumpTail {
            lost_regions: walked.lost_regions(),
            lost: walked.lost.iter().map(run_of).collect(),
            problems,
        };
        let head = head_of(superblock, &geometry, walked.hydrated_regions());
        let bits = walked.bits.expect("matched above");
        Ok(CloneDump { head, bits, tail })
    }

    /// The hydrated regions as runs, ascending.
    pub fn hydrated(&self) -> impl Iterator<Item = RegionRun> + '_ {
        set_runs(&self.bits).map(|(start, count)| RegionRun { start, count })
    }

    /// Hands every hydrated run to `take`, ascending, until it fails. A
    /// second thread finds the runs (a scan of one bit per region, bound by
    /// memory bandwidth) a few batches ahead of `take`, which writes them.
    pub fn for_each_hydrated<E>(
        &self,
        mut take: impl FnMut(RegionRun) -> Result<(), E>,
    ) -> Result<(), E> {
        const BATCH: usize = 4096;
        const BATCHES_AHEAD: usize = 4;
        std::thread::scope(|scope| {
            let (send, receive) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                for run in self.hydrated() {
                    batch.push(run);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if send.send(full).is_err() {
                            return;
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = send.send(batch);
                }
            });
            for batch in receive {
                for run in batch {
                    take(run)?;
                }
            }
            Ok(())
        })
    }
}

fn run_of(range: &Range<u64>) -> RegionRun {
    RegionRun {
        start: range.start,
        count: range.end - range.start,
    }
}

/// The head of the dump of `superblock`, whose sizes are `geometry`, with
/// `hydrated` regions.
fn head_of(superblock: &CloneSuperblock, geometry: &Geometry, hydrated: u64) -> CloneDumpHead {
    let sm = SmRoot::decode(&superblock.sm_root);
    let block_sectors = METADATA_BLOCK_BYTES as u64 / 512;
    CloneDumpHead {
        format_version: DUMP_FORMAT_VERSION,
        kind: StoreKind::Clone,
        region_size: geometry.region_sectors(),
        target_size: geometry.target_sectors(),
        nr_regions: geometry.nr_regions(),
        hydrated_regions: hydrated,
        status: format!(
            "{block_sectors} {}/{} {} {hydrated}/{}",
            sm.nr_allocated,
            sm.nr_blocks,
            geometry.region_sectors(),
            geometry.nr_regions()
        ),
        superblock: SuperblockSummary {
            magic: format!("{:#x}", superblock.magic),
            version: superblock.version,
            flags: superblock.flags,
            blocknr: superblock.blocknr,
            uuid: superblock.uuid.iter().map(|b| format!("{b:02x}")).collect(),
            checksum: format!("{:#010x}", superblock.stored_csum),
            checksum_valid: superblock.stored_csum == superblock.computed_csum,
            bitset_root: superblock.bitset_root,
        },
        space_map: SpaceMapSummary {
            nr_blocks: sm.nr_blocks,
            nr_allocated: sm.nr_allocated,
            index_block: sm.index_block,
            ref_count_root: sm.ref_count_root,
        },
    }
}
