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

    /// What cowdump's tables of a persistent store are written from: the
    /// dump's head and tail, its streamed records and the kernel's runs.
    pub mod dump {
        pub use crate::persistent::dump::{stream_records, DumpHead, DumpTail};
        pub use crate::persistent::runs::Run;
        pub use crate::persistent::store::AreaSummary;
        pub use crate::persistent::{ExceptionRecord, PersistentStore};
    }
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

    /// What cowdump's tables of a shared store are written from: the dump's
    /// head and tail, its streamed lists (exceptions, tree, chunk runs) and
    /// the journal listing.
    pub mod dump {
        pub use crate::shared::bitmap::ChunkBitmap;
        pub use crate::shared::dump::chunks::stream_chunk_runs;
        pub use crate::shared::dump::journal::{JournalDump, JournalListing, JournalTx, TxState};
        pub use crate::shared::dump::records::stream_exceptions;
        pub use crate::shared::dump::text::View;
        pub use crate::shared::dump::tree::stream_tree;
        pub use crate::shared::dump::{
            BlockProblem, ChunkRange, ClassTotals, ShareMask, SharedDumpHead, SharedDumpTail,
            SharedSource, TreeBlock, TreeBody,
        };
    }
}

/// Migrations between kinds (import, export, shared re-chunk): their report.
pub mod cross {
    pub use crate::cross::migrate::{SharedJob, SharedMigrateReport, SharedShape, Side};
}

/// dm-clone metadata: the geometry, what the writer committed, its dump
/// (head, hydrated runs, lost regions) and its check report.
pub mod clone {
    pub use crate::clone::check::{CloneCheckReport, CloneStatus};
    pub use crate::clone::dump::blocks::{BlockRow, BlocksHead, BlocksTail, Span, Verdict};
    pub use crate::clone::dump::{
        CloneDump, CloneDumpHead, CloneDumpTail, RegionRun, SpaceMapSummary, SuperblockSummary,
    };
    pub use crate::clone::geometry::Geometry;
    pub use crate::clone::lost::LostRegions;
    pub use crate::clone::migrate::CloneShape;
    pub use crate::clone::repair::CloneRepairReport;
    pub use crate::clone::write::CloneWritten;
}
