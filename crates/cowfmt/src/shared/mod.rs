//! The shared exception store: one COW device for up to 64 snapshots of one
//! origin, with an allocation bitmap and a B-tree of exceptions whose share
//! masks say which snapshots see each copied chunk. The format is specified in
//! docs/format-shared.md.
//!
//! Modules, from the bytes up:
//! - [`header`], [`geometry`], [`bitmap`], [`node`], [`leaf`]: on-disk structs and layout;
//! - [`walk`]: a damage-tolerant read-only tree walk (check, dump, repair);
//! - [`tree_read`]: the whole tree read strictly over any device (export, merge);
//! - [`format`]: writing a fresh store; [`build`]: bulk-loading a whole store;
//! - [`check`], [`dump`], [`repair`], [`migrate`], [`merge`]: the offline jobs.
//!
//! The live engine (snapshots, origin and snapshot I/O, commit) is the
//! `cowengine` crate, which stands on these modules (docs/architecture.md).

pub mod bitmap;
pub mod build;
pub mod check;
pub mod dump;
pub mod format;
pub mod geometry;
pub mod header;
pub mod journal;
pub mod leaf;
pub mod mask;
pub mod merge;
pub mod node;
pub mod open;
pub mod repair;
pub mod restore;
pub mod rules;
pub mod stream;
pub mod tree_read;
pub mod walk;

pub use geometry::Geometry;
pub use header::SharedHeader;
pub use leaf::{Exception, Leaf};
pub use node::{Node, NodeEntry};

/// The table line the seed's shared exception store takes for snapshot `id`:
/// `0 <origin-sectors> snapshot <origin> shared 3 <cow> <chunk-sectors> <id>`.
/// Mainline kernels have no shared store; cowrt serves these stores.
pub fn table_line(
    origin: Option<&str>,
    origin_sectors: Option<u64>,
    cow: &str,
    chunk_sectors: u32,
    id: u32,
) -> String {
    let length = origin_sectors.map_or_else(|| "<origin-sectors>".to_string(), |s| s.to_string());
    format!(
        "0 {length} snapshot {} shared 3 {cow} {chunk_sectors} {id}",
        origin.unwrap_or("<origin>")
    )
}
