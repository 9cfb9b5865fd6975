//! The migration report: the store on each side and what was moved (serialized
//! as JSON).

use serde::Serialize;

use super::plan::MigrateMode;
use crate::kind::StoreKind;
use crate::persistent::rebuild::Relocation;
use crate::persistent::state::Usage;
use crate::persistent::store::Metadata;

/// The version of the migration report schema.
pub const MIGRATE_FORMAT_VERSION: u32 = 1;

/// A store on one side of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreShape {
    /// `persistent` or `legacy`.
    pub kind: StoreKind,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// Device size in bytes.
    pub device_bytes: u64,
    /// Whole chunks on the device.
    pub device_chunks: u64,
    /// Records the kernel reads.
    pub records: u64,
    /// Whether the header says valid.
    pub valid: bool,
    /// The usage `dmsetup status` would print.
    pub usage: Usage,
    /// The status text: `allocated/total metadata`, or `Invalid`.
    pub status: String,
}

impl StoreShape {
    /// A classic store as the kernel reads it (`kind` names persistent or
    /// legacy).
    pub fn of(kind: StoreKind, metadata: &Metadata) -> Self {
        let usage = metadata.usage();
        StoreShape {
            kind,
            chunk_size: metadata.geometry.chunk_sectors(),
            device_bytes: metadata.geometry.device_bytes(),
            device_chunks: metadata.geometry.device_chunks(),
            records: metadata.records.len() as u64,
            valid: metadata.header.is_valid(),
            status: usage.status_text(metadata.header.is_valid()),
            usage,
        }
    }
}

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// [`MIGRATE_FORMAT_VERSION`].
    pub format_version: u32,
    /// The input path.
    pub input: String,
    /// The output path.
    pub output: String,
    /// How records were carried over.
    pub mode: MigrateMode,
    /// Chunks of the smaller size in one of the larger (1 for a copy).
    pub factor: u64,
    /// The input store.
    pub from: StoreShape,
    /// The output store.
    pub to: StoreShape,
    /// Pieces of merged chunks read from the origin (they never changed).
    pub pieces_from_origin: u64,
    /// Pieces of split chunks left out because they lie past the end of the origin.
    pub pieces_past_origin: u64,
    /// The data chunk moved for the pre-2.6.29 reload hazard, if any.
    pub relocation: Option<Relocation>,
    /// Stale area locations zeroed on a reused output device.
    pub stale_areas_zeroed: u64,
}
