//! persistent-data arrays (`dm-array.c`): fixed-size values packed into array
//! blocks, found through a B-tree keyed by array-block index.
//!
//! - [`block`]: one array block on disk, decoded with typed defects and
//!   encoded sealed;
//! - [`walk`]: reading an array of known length in index order, its blocks
//!   in sorted runs;
//! - [`build`]: writing a fresh array (the kernel's block order).

pub mod block;
pub mod build;
pub mod walk;

pub use block::{array_max_entries, encode_array_block, ArrayBlock, ArrayBlockDefect};
pub use build::{build, build_filled};
pub use walk::{walk_array, ArrayDefect, ArraySpec, ArraySummary, ArrayVisitor, ARRAY_BTREE};
