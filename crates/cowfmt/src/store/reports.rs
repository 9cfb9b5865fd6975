//! The kinds' report types, and the few helpers the tools render them with
//! (table lines, snapshot masks), re-exported here so that a tool reaches no
//! kind except through the facade (docs/architecture.md, M5). One module per
//! kind; a new kind adds its module and nothing else.

/// Persistent (and legacy) stores: check, repair, migrate and restore
/// reports, the header and geometry they name, the table line.
pub mod persistent {
    pub use crate::persistent::check::{CheckReport, CheckSummary};
    pub use crate::persistent::dump::RestoreHead;
    pub use crate::persistent::migrate::{MigrateMode, MigrateReport, Relocation, StoreShape};
    pub use crate::persistent::repair::{ChunkSizeSource, DroppedRecord, RepairReport};
    pub use crate::persistent::table::{snapshot_table_line, TableDevices};
    pub use crate::persistent::{Geometry, Header};
}

/// Shared stores: check and repair reports, the header and geometry they
/// name, snapshot masks, the table line, the note on in-place commits.
pub mod shared {
    pub use crate::shared::check::{CheckReport, CheckSummary};
    pub use crate::shared::journal::in_place_note;
    pub use crate::shared::mask;
    pub use crate::shared::repair::{
        DroppedRecord, LostRange, RepairReport, ScanMode, ScanSummary, SnapshotTally,
    };
    pub use crate::shared::{table_line, Geometry, SharedHeader};
}

/// Migrations between kinds (import, export, shared re-chunk): their report.
pub mod cross {
    pub use crate::cross::migrate::{SharedJob, SharedMigrateReport, SharedShape, Side};
}

/// dm-clone metadata: the geometry, what the writer committed, and its dump
/// (head, hydrated runs, lost regions).
pub mod clone {
    pub use crate::clone::dump::{
        CloneDump, CloneDumpHead, CloneDumpTail, RegionRun, SpaceMapSummary, SuperblockSummary,
    };
    pub use crate::clone::geometry::Geometry;
    pub use crate::clone::write::CloneWritten;
}
