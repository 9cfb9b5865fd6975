//! The report of a shared migration: every input and the output as stores
//! (with the space each uses), and what was shared, split, merged or read from
//! the origin on the way. Serialized as JSON by the tools.

use serde::Serialize;

use crate::error::Result;
use crate::kind::StoreKind;
use crate::persistent::migrate::{MigrateMode, StoreShape};
use crate::persistent::rebuild::Relocation;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::mask;
use crate::shared::stream::{SharedInput, TreeStats};
use crate::SECTOR_BYTES;

/// The version of the shared migration report schema.
pub const SHARED_MIGRATE_FORMAT_VERSION: u32 = 1;

/// Which shared migration ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedJob {
    /// Classic stores into one new shared store, one snapshot each.
    Import,
    /// One snapshot of a shared store into a classic store.
    Export,
    /// A shared store into a new one: another chunk size, or compacted.
    Rechunk,
}

/// A shared store on one side of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedShape {
    /// Always `shared`.
    pub kind: StoreKind,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// Device size in bytes.
    pub device_bytes: u64,
    /// Whole chunks on the device.
    pub device_chunks: u64,
    /// The snapshot ids.
    pub snapshots: Vec<u32>,
    /// Records (origin chunk copies), each with its own data chunk.
    pub records: u64,
    /// Records seen by more than one snapshot.
    pub shared_records: u64,
    /// Leaves and nodes.
    pub tree_chunks: u64,
    /// Header, bitmap and journal chunks.
    pub reserved_chunks: u64,
    /// Journal chunks (part of the reserved ones).
    pub journal_chunks: u64,
    /// Chunks the bitmap marks in use.
    pub used_chunks: u64,
    /// Chunks free for new copies.
    pub free_chunks: u64,
    /// `used_chunks` in bytes.
    pub used_bytes: u64,
}

/// A store on one side of a migration: classic or shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Side {
    /// A persistent or legacy store.
    Classic(StoreShape),
    /// A shared store.
    Shared(SharedShape),
}

impl Side {
    /// Bytes the store uses: handed-out chunks of a classic store (header,
    /// areas, data), chunks marked in use in a shared store.
    pub fn used_bytes(&self) -> u64 {
        match self {
            Side::Classic(shape) => {
                shape
                    .usage
                    .sectors_allocated
                    .unwrap_or(shape.usage.total_sectors)
                    * SECTOR_BYTES
            }
            Side::Shared(shape) => shape.used_bytes,
        }
    }

    /// The chunk size in sectors.
    pub fn chunk_size(&self) -> u32 {
        match self {
            Side::Classic(shape) => shape.chunk_size,
            Side::Shared(shape) => shape.chunk_size,
        }
    }
}

/// One input of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputReport {
    /// The path.
    pub path: String,
    /// For an import, the snapshot id this input became.
    pub snapshot: Option<u32>,
    /// The store.
    pub shape: Side,
}

/// What a shared migration did.
#[derive(Debug, Clone, Serialize)]
pub struct SharedMigrateReport {
    /// [`SHARED_MIGRATE_FORMAT_VERSION`].
    pub format_version: u32,
    /// Which migration.
    pub job: SharedJob,
    /// Same chunk size, split or merged.
    pub mode: MigrateMode,
    /// Chunks of the smaller size in one of the larger (1 for a copy).
    pub factor: u64,
    /// The inputs.
    pub inputs: Vec<InputReport>,
    /// The output path.
    pub output: String,
    /// The output store.
    pub to: Side,
    /// For an export, the snapshot exported.
    pub snapshot: Option<u32>,
    /// Chunk contents carried over: what the output would store without sharing.
    pub copies: u64,
    /// Distinct contents stored (data chunks written).
    pub stored: u64,
    /// Pieces of merged chunks read from the origin (they never changed).
    pub pieces_from_origin: u64,
    /// Pieces of split chunks left out because they lie past the end of the origin.
    pub pieces_past_origin: u64,
    /// Bytes the inputs use together.
    pub space_before: u64,
    /// Bytes the output uses.
    pub space_after: u64,
    /// For a legacy export, the data chunk moved for the pre-2.6.29 reload hazard.
    pub relocation: Option<Relocation>,
    /// For an export to a reused device, stale area locations zeroed.
    pub stale_areas_zeroed: u64,
}

/// A shared store, from its header, bitmap and a walk's counts.
pub(super) fn shared_shape(input: &SharedInput, stats: &TreeStats) -> Result<SharedShape> {
    let geometry = input.geometry();
    let bitmap = ChunkBitmap::load(input.device(), geometry)?;
    let used = bitmap.count_used();
    Ok(SharedShape {
        kind: StoreKind::Shared,
        chunk_size: input.header().chunk_size,
        device_bytes: input.device().size_bytes(),
        device_chunks: geometry.nr_chunks,
        snapshots: mask::id_list(input.header().snapmask),
        records: stats.records,
        shared_records: stats.shared_records,
        tree_chunks: stats.nodes + stats.leaves,
        reserved_chunks: geometry.data_start(),
        journal_chunks: geometry.nr_journal_chunks,
        used_chunks: used,
        free_chunks: geometry.nr_chunks.saturating_sub(used),
        used_bytes: used * geometry.chunk_bytes,
    })
}
