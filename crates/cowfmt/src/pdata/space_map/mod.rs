//! The metadata space map (`dm-space-map-metadata.c`): a reference count for
//! every block of a persistent-data metadata device.
//!
//! - [`root`]: the 32-byte root a superblock keeps;
//! - [`index`]: the index block naming every bitmap block;
//! - [`bitmap`]: bitmap blocks, 2 bits of count per block;
//! - [`finding`]: what can be wrong with a space map.

pub mod bitmap;
pub mod finding;
pub mod index;
pub mod root;

pub use bitmap::{Bitmap, ENTRIES_PER_BITMAP};
pub use finding::SmFinding;
pub use index::{IndexDefect, IndexEntry, MetadataIndex, MAX_BITMAPS, MAX_METADATA_BLOCKS};
pub use root::SmRoot;
