//! `cowengine`: the live engine of the shared exception store.
//!
//! It opens a shared store formatted by `cowfmt`, creates and deletes
//! snapshots, copies origin chunks out before they are overwritten, reads and
//! writes each snapshot's view, and commits its metadata. The on-disk structs
//! (header, geometry, bitmap, node, leaf), the checker and the offline jobs stay
//! in `cowfmt`; this crate stands on them and nothing in `cowfmt` or `cowtools`
//! depends on it (docs/architecture.md).
//!
//! Modules:
//! - [`alloc`]: the chunk allocator over the bitmap;
//! - [`cache`], [`btree`]: decoded blocks and the tree operations on them;
//! - [`store`]: the engine (snapshots, origin and snapshot I/O, commit), one
//!   caller at a time (`&mut self`), with its crash-safe batched origin
//!   writes (`SharedStore::origin_write_batch`) and its copy-outs of a run
//!   of origin chunks planned leaf by leaf (`SharedStore::plan_copy_outs`);
//! - [`journal`], [`commit`]: commits through the write-ahead journal (or in
//!   place when the store has none), captured under the caller's lock and
//!   written outside it;
//! - [`delete`]: a snapshot delete split into transactions that each fit the
//!   journal;
//! - [`engine`]: the store behind `&self` for several I/O threads, with
//!   [`locks`] (per-origin-chunk locks) and [`errno`] (what a block device
//!   reports for each error);
//! - [`crash_proof`]: the crash replay proof (a seeded workload on recording
//!   crash devices, every crash image checked against a model), used by the
//!   tests and `cargo xtask crash-soak`, never by the engine.
//!
//! Every device is a [`cowfmt::BlockDev`]: image files and block devices,
//! memory, or a recording crash device.

pub mod alloc;
mod batch;
pub mod btree;
pub mod cache;
pub mod commit;
mod copy_plan;
pub mod crash_proof;
pub mod delete;
pub mod engine;
pub mod errno;
pub mod journal;
pub mod locks;
pub mod store;

pub use engine::Engine;
pub use journal::{CommitMode, InPlaceReason};
pub use store::{CopyData, CreateOptions, Fill, SharedStore};
