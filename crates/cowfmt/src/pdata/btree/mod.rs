//! persistent-data B-trees (`dm-btree.c`): single-level trees of le64 keys
//! whose leaves hold fixed-size values.
//!
//! - [`node`]: one node on disk, decoded with every check the kernel makes
//!   and encoded sealed.

pub mod node;

pub use node::{max_entries, Node, NodeDefect, NodeKind};
