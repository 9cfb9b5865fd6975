//! Interior B-tree nodes: `u32 count`, `u32 unused`, then `count` entries of
//! `{u64 key, u64 chunk}` from offset 8.

use byteorder::{ByteOrder, LittleEndian};

/// Bytes before the first entry.
pub const NODE_HEADER_BYTES: usize = 8;
/// Bytes per entry.
pub const NODE_ENTRY_BYTES: usize = 16;

/// Entries a node of `chunk_bytes` holds.
pub fn node_capacity(chunk_bytes: usize) -> usize {
    chunk_bytes.saturating_sub(NODE_HEADER_BYTES) / NODE_ENTRY_BYTES
}

/// One child of a node: the lowest origin chunk it covers (ignored for entry 0)
/// and the chunk the child lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeEntry {
    /// Lower bound (inclusive) of the child's origin chunks.
    pub key: u64,
    /// The COW chunk of the child node or leaf.
    pub chunk: u64,
}

/// Why a chunk does not decode as a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The count is zero: a node always has at least one child.
    #[error("node count is 0")]
    Empty,
    /// The count is larger than the chunk can hold.
    #[error("node count {count} is more than a chunk holds ({capacity})")]
    CountTooLarge {
        /// The count found.
        count: u32,
        /// Entries the chunk holds.
        capacity: usize,
    },
}

/// A decoded interior node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The children, in key order.
    pub entries: Vec<NodeEntry>,
    /// The `unused` word as found on disk (written back as 0).
    pub unused: u32,
}

impl Node {
    /// Decodes a node chunk. The count is checked against the chunk size before
    /// any entry is read; keys are not checked here (that is the checker's job).
    /// A chunk too short for the count reads as count 0.
    pub fn decode(chunk: &[u8]) -> Result<Self, NodeError> {
        let count = chunk.get(0..4).map_or(0, LittleEndian::read_u32);
        let capacity = node_capacity(chunk.len());
        if count == 0 {
            return Err(NodeError::Empty);
        }
        if count as usize > capacity {
            return Err(NodeError::CountTooLarge { count, capacity });
        }
        let entries = chunk[NODE_HEADER_BYTES..]
            .chunks_exact(NODE_ENTRY_BYTES)
            .take(count as usize)
            .map(|e| NodeEntry {
                key: LittleEndian::read_u64(&e[0..8]),
                chunk: LittleEndian::read_u64(&e[8..16]),
            })
            .collect();
        Ok(Node {
            entries,
            unused: LittleEndian::read_u32(&chunk[4..8]),
        })
    }

    /// Encodes the node over a whole chunk (the rest zeroed).
    pub fn encode(&self, chunk: &mut [u8]) {
        chunk.fill(0);
        LittleEndian::write_u32(&mut chunk[0..4], self.entries.len() as u32);
        for (e, out) in self
            .entries
            .iter()
            .zip(chunk[NODE_HEADER_BYTES..].chunks_exact_mut(NODE_ENTRY_BYTES))
        {
            LittleEndian::write_u64(&mut out[0..8], e.key);
            LittleEndian::write_u64(&mut out[8..16], e.chunk);
        }
    }

    /// The index of the child that covers origin chunk `key`: the last entry whose
    /// key is at most `key`, or entry 0.
    pub fn child_for(&self, key: u64) -> usize {
        self.entries[1..].partition_point(|e| e.key <= key)
    }

    /// The key range `[lo, hi)` of child `i`, given the node's own range.
    pub fn child_range(&self, i: usize, lo: u64, hi: u64) -> (u64, u64) {
        let start = if i == 0 { lo } else { self.entries[i].key };
        let end = self.entries.get(i + 1).map_or(hi, |e| e.key);
        (start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(keys: &[u64]) -> Node {
        Node {
            entries: keys
                .iter()
                .enumerate()
                .map(|(i, &key)| NodeEntry {
                    key,
                    chunk: 100 + i as u64,
                })
                .collect(),
            unused: 0,
        }
    }

    #[test]
    fn round_trips_a_full_node() {
        let cap = node_capacity(512);
        assert_eq!(cap, 31);
        let n = node(&(0..cap as u64).map(|k| k * 10).collect::<Vec<_>>());
        let mut chunk = vec![0xffu8; 512];
        n.encode(&mut chunk);
        assert_eq!(LittleEndian::read_u32(&chunk[0..4]), 31);
        assert_eq!(LittleEndian::read_u64(&chunk[8 + 16..8 + 24]), 10);
        assert_eq!(&chunk[8 + 31 * 16..], &[0u8; 8]);
        assert_eq!(Node::decode(&chunk).unwrap(), n);
    }

    #[test]
    fn count_is_never_trusted() {
        let mut chunk = vec![0u8; 512];
        LittleEndian::write_u32(&mut chunk[0..4], 32);
        assert_eq!(
            Node::decode(&chunk),
            Err(NodeError::CountTooLarge {
                count: 32,
                capacity: 31
            })
        );
        LittleEndian::write_u32(&mut chunk[0..4], 0);
        assert_eq!(Node::decode(&chunk), Err(NodeError::Empty));
    }

    #[test]
    fn child_lookup_takes_the_last_key_not_above() {
        let n = node(&[999, 10, 20]);
        assert_eq!(n.child_for(0), 0);
        assert_eq!(n.child_for(9), 0);
        assert_eq!(n.child_for(10), 1);
        assert_eq!(n.child_for(19), 1);
        assert_eq!(n.child_for(u64::MAX), 2);
        assert_eq!(n.child_range(0, 0, u64::MAX), (0, 10));
        assert_eq!(n.child_range(2, 0, 50), (20, 50));
    }
}
