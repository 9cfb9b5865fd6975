//! A B-tree node on disk (`dm-btree-internal.h`): a 32-byte header, then
//! `max_entries` le64 keys, then `max_entries` values of `value_size` bytes.
//! Decoding makes every check the kernel's `node_check` and
//! thin-provisioning-tools make on one node; the checks that need the
//! parent (key range, minimum fill of non-root nodes) belong to the walker.

use crate::pdata::block::{self, Block, BlockDefect, BlockKind, BLOCK_BYTES};

/// Bytes of the node header.
pub const NODE_HEADER_BYTES: usize = 32;
/// The header flag of an internal node.
pub const INTERNAL_NODE: u32 = 1;
/// The header flag of a leaf.
pub const LEAF_NODE: u32 = 2;
/// Bytes of an internal node's value: the le64 child block.
pub const CHILD_VALUE_SIZE: u32 = 8;

/// The kernel's `calc_max_entries`: how many entries of `value_size`-byte
/// values fit after the header, rounded down to a multiple of 3
/// (8 -> 252, 4 -> 336).
pub const fn max_entries(value_size: u32) -> u32 {
    let fit = (BLOCK_BYTES - NODE_HEADER_BYTES) as u32 / (8 + value_size);
    fit / 3 * 3
}

/// Whether a node holds children or values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// Keys are lower bounds of children; values are le64 child blocks.
    Internal,
    /// Keys map to the tree's values.
    Leaf,
}

impl NodeKind {
    /// The header flag of this kind.
    pub const fn flag(self) -> u32 {
        match self {
            NodeKind::Internal => INTERNAL_NODE,
            NodeKind::Leaf => LEAF_NODE,
        }
    }

    /// `internal` or `leaf`.
    pub const fn name(self) -> &'static str {
        match self {
            NodeKind::Internal => "internal",
            NodeKind::Leaf => "leaf",
        }
    }
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a block is not a valid B-tree node of the expected tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NodeDefect {
    /// The block fails the node validator (location, then checksum).
    #[error(transparent)]
    Block(#[from] BlockDefect),
    /// Flags name neither an internal node nor a leaf (or both).
    #[error("flags are {flags:#x}, expected 1 (internal) or 2 (leaf)")]
    Flags {
        /// The stored flags.
        flags: u32,
    },
    /// `max_entries` entries of this value size do not fit in a block.
    #[error("max_entries {max_entries} with {value_size}-byte values does not fit in a block")]
    ValueAreaTooLarge {
        /// The stored `max_entries`.
        max_entries: u32,
        /// The stored `value_size`.
        value_size: u32,
    },
    /// `max_entries` is not a multiple of 3 (what every writer produces).
    #[error("max_entries {max_entries} is not a multiple of 3")]
    MaxEntriesNotMultipleOf3 {
        /// The stored `max_entries`.
        max_entries: u32,
    },
    /// More entries than the node has room for.
    #[error("nr_entries {nr_entries} is above max_entries {max_entries}")]
    TooManyEntries {
        /// The stored `nr_entries`.
        nr_entries: u32,
        /// The stored `max_entries`.
        max_entries: u32,
    },
    /// The value size is not the tree's.
    #[error("{kind} node value_size is {found}, expected {expected}")]
    ValueSize {
        /// Internal or leaf.
        kind: NodeKind,
        /// The stored `value_size`.
        found: u32,
        /// What this tree's nodes of that kind hold.
        expected: u32,
    },
    /// An internal node without children.
    #[error("internal node has no entries")]
    EmptyInternal,
    /// Keys are not strictly ascending.
    #[error("key {index} ({key}) is not above key {} ({previous})", index - 1)]
    KeysNotAscending {
        /// Index of the first key out of order.
        index: u32,
        /// The key before it.
        previous: u64,
        /// The key itself.
        key: u64,
    },
}

/// A decoded node: its kind, geometry, keys and values (raw bytes,
/// `value_size` each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Internal or leaf.
    pub kind: NodeKind,
    /// Where the node lives (its stored `blocknr`).
    pub blocknr: u64,
    /// The entries the node has room for.
    pub max_entries: u32,
    /// Bytes of each value.
    pub value_size: u32,
    /// The keys, strictly ascending.
    pub keys: Vec<u64>,
    /// The values, `keys.len() * value_size` bytes.
    pub values: Vec<u8>,
}

fn le32(block: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(block[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(block: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(block[at..at + 8].try_into().expect("8 bytes"))
}

impl Node {
    /// An empty node of `kind` holding `value_size`-byte values, with the
    /// kernel's `max_entries` for that size.
    pub fn new(kind: NodeKind, value_size: u32) -> Self {
        let max = max_entries(value_size);
        Node {
            kind,
            blocknr: 0,
            max_entries: max,
            value_size,
            keys: Vec::with_capacity(max as usize),
            values: Vec::with_capacity((max * value_size) as usize),
        }
    }

    /// Decodes the block read at `location` as a node of a tree whose leaves
    /// hold `leaf_value_size`-byte values (internal nodes hold 8), making
    /// the kernel's checks in its order, then thin-provisioning-tools'.
    pub fn decode(location: u64, block: &[u8], leaf_value_size: u32) -> Result<Node, NodeDefect> {
        block::verify(BlockKind::BtreeNode, location, block)?;
        let flags = le32(block, 4);
        let nr_entries = le32(block, 16);
        let max_entries = le32(block, 20);
        let value_size = le32(block, 24);
        let area = (8 + u64::from(value_size)) * u64::from(max_entries);
        if NODE_HEADER_BYTES as u64 + area > BLOCK_BYTES as u64 {
            return Err(NodeDefect::ValueAreaTooLarge {
                max_entries,
                value_size,
            });
        }
        if nr_entries > max_entries {
            return Err(NodeDefect::TooManyEntries {
                nr_entries,
                max_entries,
            });
        }
        let kind = match flags {
            INTERNAL_NODE => NodeKind::Internal,
            LEAF_NODE => NodeKind::Leaf,
            _ => return Err(NodeDefect::Flags { flags }),
        };
        if !max_entries.is_multiple_of(3) {
            return Err(NodeDefect::MaxEntriesNotMultipleOf3 { max_entries });
        }
        let expected = match kind {
            NodeKind::Internal => CHILD_VALUE_SIZE,
            NodeKind::Leaf => leaf_value_size,
        };
        if value_size != expected {
            return Err(NodeDefect::ValueSize {
                kind,
                found: value_size,
                expected,
            });
        }
        if kind == NodeKind::Internal && nr_entries == 0 {
            return Err(NodeDefect::EmptyInternal);
        }
        let nr = nr_entries as usize;
        let keys: Vec<u64> = (0..nr)
            .map(|i| le64(block, NODE_HEADER_BYTES + 8 * i))
            .collect();
        if let Some(i) = keys.windows(2).position(|w| w[0] >= w[1]) {
            return Err(NodeDefect::KeysNotAscending {
                index: i as u32 + 1,
                previous: keys[i],
                key: keys[i + 1],
            });
        }
        let values_at = NODE_HEADER_BYTES + 8 * max_entries as usize;
        let values = block[values_at..values_at + nr * value_size as usize].to_vec();
        Ok(Node {
            kind,
            blocknr: location,
            max_entries,
            value_size,
            keys,
            values,
        })
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the node holds no entry.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether no more entry fits.
    pub fn is_full(&self) -> bool {
        self.keys.len() >= self.max_entries as usize
    }

    /// The bytes of value `i`.
    pub fn value(&self, i: usize) -> &[u8] {
        let size = self.value_size as usize;
        &self.values[i * size..(i + 1) * size]
    }

    /// Value `i` as a le64 (a child block, an array block).
    pub fn value_u64(&self, i: usize) -> u64 {
        le64(self.value(i), 0)
    }

    /// Value `i` as a le32 (a reference count).
    pub fn value_u32(&self, i: usize) -> u32 {
        le32(self.value(i), 0)
    }

    /// The child blocks of an internal node (its values as le64).
    pub fn children(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len()).map(|i| self.value_u64(i))
    }

    /// Appends an entry; `value` must be `value_size` bytes and `key` above
    /// the last key (the builder's job; checked in debug builds).
    pub fn push(&mut self, key: u64, value: &[u8]) {
        debug_assert_eq!(value.len(), self.value_size as usize);
        debug_assert!(!self.is_full());
        debug_assert!(self.keys.last().is_none_or(|&last| last < key));
        self.keys.push(key);
        self.values.extend_from_slice(value);
    }

    /// The sealed block of this node stored at `location` (header, keys,
    /// values, zero padding; `blocknr` and checksum last).
    pub fn encode(&self, location: u64) -> Box<Block> {
        let mut out = Box::new([0u8; BLOCK_BYTES]);
        out[4..8].copy_from_slice(&self.kind.flag().to_le_bytes());
        out[16..20].copy_from_slice(&(self.keys.len() as u32).to_le_bytes());
        out[20..24].copy_from_slice(&self.max_entries.to_le_bytes());
        out[24..28].copy_from_slice(&self.value_size.to_le_bytes());
        for (i, key) in self.keys.iter().enumerate() {
            let at = NODE_HEADER_BYTES + 8 * i;
            out[at..at + 8].copy_from_slice(&key.to_le_bytes());
        }
        let values_at = NODE_HEADER_BYTES + 8 * self.max_entries as usize;
        out[values_at..values_at + self.values.len()].copy_from_slice(&self.values);
        block::seal(BlockKind::BtreeNode, location, &mut out[..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_u32(keys: &[u64]) -> Node {
        let mut node = Node::new(NodeKind::Leaf, 4);
        for &key in keys {
            node.push(key, &(key as u32 * 10).to_le_bytes());
        }
        node
    }

    fn set32(block: &mut Block, at: usize, value: u32, location: u64) {
        block[at..at + 4].copy_from_slice(&value.to_le_bytes());
        block::seal(BlockKind::BtreeNode, location, &mut block[..]);
    }

    #[test]
    fn max_entries_are_the_kernels() {
        assert_eq!(max_entries(8), 252);
        assert_eq!(max_entries(4), 336);
        assert_eq!(max_entries(16), 168);
    }

    #[test]
    fn a_leaf_and_an_internal_node_round_trip() {
        let leaf = leaf_u32(&[3, 7, 100]);
        let block = leaf.encode(9);
        let back = Node::decode(9, &block[..], 4).unwrap();
        assert_eq!(back, Node { blocknr: 9, ..leaf });
        assert_eq!(back.value_u32(2), 1000);

        let mut internal = Node::new(NodeKind::Internal, 8);
        internal.push(0, &5u64.to_le_bytes());
        internal.push(252, &6u64.to_le_bytes());
        let back = Node::decode(4, &internal.encode(4)[..], 4).unwrap();
        assert_eq!(back.kind, NodeKind::Internal);
        assert_eq!(back.children().collect::<Vec<_>>(), [5, 6]);
        assert_eq!(back.keys, [0, 252]);
    }

    #[test]
    fn a_full_leaf_fills_the_block_exactly_where_the_kernel_puts_values() {
        let keys: Vec<u64> = (0..252).collect();
        let mut leaf = Node::new(NodeKind::Leaf, 8);
        for &key in &keys {
            leaf.push(key, &(key + 1000).to_le_bytes());
        }
        assert!(leaf.is_full());
        let block = leaf.encode(1);
        assert_eq!(le64(&block[..], 32 + 8 * 252), 1000);
        assert_eq!(le64(&block[..], 32 + 8 * 252 + 8 * 251), 1251);
        let back = Node::decode(1, &block[..], 8).unwrap();
        assert_eq!(back.len(), 252);
    }

    #[test]
    fn the_validator_comes_first() {
        let mut block = leaf_u32(&[1]).encode(3);
        assert!(matches!(
            Node::decode(4, &block[..], 4),
            Err(NodeDefect::Block(BlockDefect::Blocknr { found: 3, .. }))
        ));
        block[40] ^= 1;
        assert!(matches!(
            Node::decode(3, &block[..], 4),
            Err(NodeDefect::Block(BlockDefect::Checksum { .. }))
        ));
    }

    #[test]
    fn each_header_defect_is_named() {
        let good = leaf_u32(&[1, 2]).encode(3);
        let cases: [(usize, u32, NodeDefect); 6] = [
            (
                20,
                400,
                NodeDefect::ValueAreaTooLarge {
                    max_entries: 400,
                    value_size: 4,
                },
            ),
            (
                16,
                337,
                NodeDefect::TooManyEntries {
                    nr_entries: 337,
                    max_entries: 336,
                },
            ),
            (4, 0, NodeDefect::Flags { flags: 0 }),
            (4, 3, NodeDefect::Flags { flags: 3 }),
            (
                20,
                335,
                NodeDefect::MaxEntriesNotMultipleOf3 { max_entries: 335 },
            ),
            (
                24,
                2,
                NodeDefect::ValueSize {
                    kind: NodeKind::Leaf,
                    found: 2,
                    expected: 4,
                },
            ),
        ];
        for (at, value, want) in cases {
            let mut block = good.clone();
            set32(&mut block, at, value, 3);
            assert_eq!(Node::decode(3, &block[..], 4), Err(want), "{want}");
        }
    }

    #[test]
    fn an_internal_node_holds_eight_byte_children_and_at_least_one() {
        let mut internal = Node::new(NodeKind::Internal, 8);
        internal.push(0, &5u64.to_le_bytes());
        let mut block = internal.encode(2);
        set32(&mut block, 24, 4, 2);
        assert_eq!(
            Node::decode(2, &block[..], 4),
            Err(NodeDefect::ValueSize {
                kind: NodeKind::Internal,
                found: 4,
                expected: 8
            })
        );
        let empty = Node::new(NodeKind::Internal, 8).encode(2);
        assert_eq!(
            Node::decode(2, &empty[..], 8),
            Err(NodeDefect::EmptyInternal)
        );
    }

    #[test]
    fn keys_must_be_strictly_ascending() {
        let mut block = leaf_u32(&[1, 5, 9]).encode(3);
        block[32 + 16..32 + 24].copy_from_slice(&5u64.to_le_bytes());
        block::seal(BlockKind::BtreeNode, 3, &mut block[..]);
        let err = Node::decode(3, &block[..], 4).unwrap_err();
        assert_eq!(
            err,
            NodeDefect::KeysNotAscending {
                index: 2,
                previous: 5,
                key: 5
            }
        );
        assert_eq!(err.to_string(), "key 2 (5) is not above key 1 (5)");
    }

    #[test]
    fn an_empty_leaf_is_a_valid_empty_tree() {
        let block = Node::new(NodeKind::Leaf, 4).encode(2);
        let node = Node::decode(2, &block[..], 4).unwrap();
        assert!(node.is_empty());
        assert_eq!(node.max_entries, 336);
    }
}
