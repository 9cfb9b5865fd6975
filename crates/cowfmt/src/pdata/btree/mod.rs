//! persistent-data B-trees (`dm-btree.c`): single-level trees of le64 keys
//! whose leaves hold fixed-size values.
//!
//! - [`node`]: one node on disk, decoded with every check the kernel makes
//!   and encoded sealed;
//! - [`walk`]: the one read-only walker (levels read in sorted runs, key
//!   ranges from the parents, strict or tolerant);
//! - [`build`]: the bottom-up builder from sorted entries into new blocks.

pub mod build;
pub mod node;
pub mod walk;

pub use build::{build, BuildError, TreeBuilder};
pub use node::{max_entries, Node, NodeDefect, NodeKind};
pub use walk::{
    walk, KeyRange, Mode, NodeAt, Revisit, TreeSpec, Visitor, WalkDefect, WalkDefectKind,
    WalkSummary,
};
