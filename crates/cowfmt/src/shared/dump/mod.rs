//! The dump model of a shared store, for `cowdump`: a head (header, geometry,
//! snapshots, chunk counts), one streamed list, and a tail (tree totals and the
//! blocks that could not be read).
//!
//! The list is one of five views, each streamed while the tree is walked so that
//! memory grows with the device, never with the number of records:
//! - [`records::stream_exceptions`]: every record in origin-chunk order, or only
//!   those one snapshot sees;
//! - [`tree::stream_tree`]: every node and leaf in walk order;
//! - [`chunks::stream_chunk_runs`]: the device as runs of chunks of one class;
//! - [`journal::journal_listing`]: the journal's superblock and transactions
//!   (read whole: the log is bounded, and the tree is not walked).
//!
//! [`source::SharedSource`] opens a store for this: it refuses only a header it
//! cannot use; damage below the header is dumped and reported. [`documents`]
//! holds each view whole in memory, for tests and readers; [`text`] writes a
//! view as JSON or YAML and reads its record lines back.

pub mod chunks;
pub mod documents;
pub mod journal;
pub mod model;
pub mod records;
pub mod source;
pub mod text;
pub mod tree;
mod walker;

pub use documents::{BitmapDump, SharedDump, SnapshotDump, TreeDump};
pub use model::{
    BlockParent, BlockProblem, ChunkClass, ChunkRange, ChunkRun, ClassTotals, NodeChild, ShareMask,
    SharedDumpHead, SharedDumpTail, SharedGeometry, SharedRecord, SharedRestoreHead,
    SnapshotRecord, TreeBlock, TreeBody,
};
pub use source::SharedSource;
