//! The metadata space map (`dm-space-map-metadata.c`): a reference count for
//! every block of a persistent-data metadata device.
//!
//! - [`root`]: the 32-byte root a superblock keeps;
//! - [`index`]: the index block naming every bitmap block;
//! - [`bitmap`]: bitmap blocks, 2 bits of count per block;
//! - [`refcount`]: the ref-count B-tree (counts of 3 and more);
//! - [`load`]: the committed space map read into one count per block;
//! - [`check`]: those counts against what the metadata references;
//! - [`write`]: a transaction: allocation, shadowing, batched writes, commit;
//! - [`finding`]: what can be wrong with a space map.

pub mod bitmap;
pub mod check;
pub mod finding;
pub mod index;
pub mod load;
pub mod refcount;
pub mod root;
pub mod write;

#[cfg(test)]
mod tests;

pub use bitmap::{Bitmap, ENTRIES_PER_BITMAP};
pub use check::check;
pub use finding::SmFinding;
pub use index::{IndexDefect, IndexEntry, MetadataIndex, MAX_BITMAPS, MAX_METADATA_BLOCKS};
pub use load::{load, CommittedSpaceMap};
pub use root::SmRoot;
pub use write::{BatchTarget, MetadataWriter, TxSpace, WriteError, SUPERBLOCK_LOCATION};
