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
//! - [`store`]: the engine (snapshots, origin and snapshot I/O, commit).

pub mod alloc;
pub mod btree;
pub mod cache;
pub mod store;

pub use store::{CopyData, CreateOptions, SharedStore};
