//! The kind-neutral job layer: every job that writes a new store (migrate,
//! re-chunk, repair, restore) runs the same stream through the same pipeline.
//!
//! - [`stream`]: the exception stream, the intermediate representation every
//!   job speaks: the copies of each origin chunk ([`InEntry`]), each with the
//!   snapshots that see it, from an [`EntrySource`] (a kind's input adapter:
//!   a store's records, a salvage, a dump reader).
//! - [`assemble`]: entries become output chunks of another chunk size (copy,
//!   split or merge), each with one [`Signature`] per way snapshots see it.
//! - [`window`]: the data a run of output chunks needs, read in large sorted
//!   batches.
//! - [`kept`]: the place-keeping form: entries whose data stays at its
//!   chunk (a restore, a shared repair), handed to a kind's [`KeptSink`].
//! - [`dedup`]: the contents of one output chunk grouped by their bytes.
//! - [`pipeline`]: the loop from a source to a [`Sink`] (a kind's output
//!   adapter: a counter, a store writer).
//! - [`error`]: the error every job stops with ([`JobError`]).
//!
//! Nothing here knows a store kind: kinds provide sources and sinks (see
//! `persistent::stream` and `shared::stream`), and the jobs that need two
//! kinds at once live in `crate::cross`.

mod assemble;
mod dedup;
mod error;
mod kept;
mod pipeline;
mod stream;
mod window;

pub use assemble::MigrateMode;
pub(crate) use assemble::{Assembler, Rechunk};
pub(crate) use dedup::ChunkGroups;
pub use error::JobError;
pub(crate) use kept::{kept_entries, run_kept, KeptSink};
pub(crate) use pipeline::{run, Sink, Totals};
pub(crate) use stream::{EntrySource, InEntry, InRecord};

/// Output data is written in contiguous runs of at most this many bytes.
pub(crate) const BATCH_BYTES: usize = 1 << 20;
