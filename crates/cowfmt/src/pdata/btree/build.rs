//! Building a B-tree bottom-up from entries sorted by key, streamed: full
//! nodes are written as soon as the next one starts, so memory is two nodes
//! per level. The last two nodes of each level share their entries so that
//! every non-root node holds at least a third of its `max_entries`.
//! Blocks come from an [`Allocator`] (each counted once) and go to a
//! [`BlockTarget`] sealed, in key order.

use crate::pdata::alloc::{AllocError, Allocator};
use crate::pdata::io::BlockTarget;

use super::node::{Node, NodeKind, CHILD_VALUE_SIZE};

/// Why a tree could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No block was left for a node.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// A node could not be written.
    #[error(transparent)]
    Io(#[from] crate::Error),
    /// The entries were not sorted by key.
    #[error("btree entries out of order: key {key} after key {previous}")]
    KeysNotAscending {
        /// The key before.
        previous: u64,
        /// The key that is not above it.
        key: u64,
    },
    /// A value is not of the tree's value size.
    #[error("btree value for key {key} is {len} bytes, the tree holds {value_size}-byte values")]
    ValueSize {
        /// The entry's key.
        key: u64,
        /// Bytes given.
        len: usize,
        /// Bytes of the tree's values.
        value_size: u32,
    },
}

/// The nodes of one level not yet written: the last full one is held back
/// so that it can share its entries with an underfull last node.
struct Level {
    held: Option<Node>,
    open: Node,
}

/// A tree being built: push entries in ascending key order, then
/// [`finish`](TreeBuilder::finish) to get the root.
pub struct TreeBuilder<'a> {
    alloc: &'a mut dyn Allocator,
    target: &'a mut dyn BlockTarget,
    value_size: u32,
    last_key: Option<u64>,
    levels: Vec<Level>,
    nodes: u64,
}

impl<'a> TreeBuilder<'a> {
    /// A builder of a tree whose leaves hold `value_size`-byte values.
    pub fn new(
        alloc: &'a mut dyn Allocator,
        target: &'a mut dyn BlockTarget,
        value_size: u32,
    ) -> Self {
        TreeBuilder {
            alloc,
            target,
            value_size,
            last_key: None,
            levels: Vec::new(),
            nodes: 0,
        }
    }

    /// Adds an entry; its key must be above every key pushed before.
    pub fn push(&mut self, key: u64, value: &[u8]) -> Result<(), BuildError> {
        if let Some(previous) = self.last_key.filter(|&p| p >= key) {
            return Err(BuildError::KeysNotAscending { previous, key });
        }
        if value.len() != self.value_size as usize {
            return Err(BuildError::ValueSize {
                key,
                len: value.len(),
                value_size: self.value_size,
            });
        }
        self.last_key = Some(key);
        self.add(0, key, value)
    }

    /// Writes the nodes still held and returns the root's block (an empty
    /// leaf when nothing was pushed).
    pub fn finish(mut self) -> Result<u64, BuildError> {
        self.level(0);
        let mut depth = 0;
        loop {
            let Level { held, open } = self.levels[depth].take();
            let nodes = balance(held, open);
            let top = depth + 1 == self.levels.len();
            if top && nodes.len() == 1 {
                return self.write(&nodes[0]);
            }
            for node in nodes {
                let location = self.write(&node)?;
                self.add(depth + 1, node.keys[0], &location.to_le_bytes())?;
            }
            depth += 1;
        }
    }

    /// Nodes written so far.
    pub fn nodes(&self) -> u64 {
        self.nodes
    }

    fn level(&mut self, depth: usize) -> &mut Level {
        while self.levels.len() <= depth {
            let (kind, size) = match self.levels.len() {
                0 => (NodeKind::Leaf, self.value_size),
                _ => (NodeKind::Internal, CHILD_VALUE_SIZE),
            };
            self.levels.push(Level {
                held: None,
                open: Node::new(kind, size),
            });
        }
        &mut self.levels[depth]
    }

    fn add(&mut self, depth: usize, key: u64, value: &[u8]) -> Result<(), BuildError> {
        let level = self.level(depth);
        if level.open.is_full() {
            let fresh = Node::new(level.open.kind, level.open.value_size);
            let full = std::mem::replace(&mut level.open, fresh);
            if let Some(done) = level.held.replace(full) {
                let location = self.write(&done)?;
                self.add(depth + 1, done.keys[0], &location.to_le_bytes())?;
            }
        }
        self.levels[depth].open.push(key, value);
        Ok(())
    }

    fn write(&mut self, node: &Node) -> Result<u64, BuildError> {
        let location = self.alloc.alloc()?;
        self.target
            .write_blocks(location, &node.encode(location)[..])?;
        self.nodes += 1;
        Ok(location)
    }
}

impl Level {
    fn take(&mut self) -> Level {
        let open = Node::new(self.open.kind, self.open.value_size);
        Level {
            held: self.held.take(),
            open: std::mem::replace(&mut self.open, open),
        }
    }
}

/// The last nodes of a level, with an underfull last node merged into the
/// held one or sharing its entries evenly with it.
fn balance(held: Option<Node>, open: Node) -> Vec<Node> {
    let Some(held) = held else {
        return vec![open];
    };
    if open.len() >= (open.max_entries / 3) as usize {
        return vec![held, open];
    }
    let size = held.value_size as usize;
    let total = held.len() + open.len();
    let keys: Vec<u64> = held.keys.iter().chain(&open.keys).copied().collect();
    let values: Vec<u8> = held.values.iter().chain(&open.values).copied().collect();
    let parts = if total <= held.max_entries as usize {
        1
    } else {
        2
    };
    let mut nodes = Vec::with_capacity(parts);
    let mut start = 0;
    for part in 0..parts {
        let end = total * (part + 1) / parts;
        let mut node = Node::new(held.kind, held.value_size);
        for i in start..end {
            node.push(keys[i], &values[i * size..(i + 1) * size]);
        }
        nodes.push(node);
        start = end;
    }
    nodes
}

/// Builds a tree of `value_size`-byte values from entries sorted by key and
/// returns its root.
pub fn build<I, V>(
    alloc: &mut dyn Allocator,
    target: &mut dyn BlockTarget,
    value_size: u32,
    entries: I,
) -> Result<u64, BuildError>
where
    I: IntoIterator<Item = (u64, V)>,
    V: AsRef<[u8]>,
{
    let mut builder = TreeBuilder::new(alloc, target, value_size);
    for (key, value) in entries {
        builder.push(key, value.as_ref())?;
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::alloc::BumpAllocator;
    use crate::pdata::btree::node::max_entries;
    use crate::pdata::btree::walk::{walk, Mode, NodeAt, TreeSpec, Visitor, WalkDefect};
    use crate::pdata::io::MemBlocks;

    /// Entries, depth of the leaves and defects, as the walker reports them.
    #[derive(Default)]
    struct Seen {
        entries: Vec<(u64, Vec<u8>)>,
        leaf_depth: u32,
        nodes: u64,
        defects: Vec<WalkDefect>,
    }

    impl Visitor for Seen {
        fn node(&mut self, _at: &NodeAt, _node: &Node) {
            self.nodes += 1;
        }
        fn leaf(&mut self, at: &NodeAt, node: &Node) {
            self.leaf_depth = at.depth;
            for i in 0..node.len() {
                self.entries.push((node.keys[i], node.value(i).to_vec()));
            }
        }
        fn defect(&mut self, defect: WalkDefect) {
            self.defects.push(defect);
        }
    }

    /// Builds `entries` into a fresh device and walks them back strictly.
    fn round_trip(value_size: u32, entries: &[(u64, Vec<u8>)]) -> (Seen, BumpAllocator) {
        let mut mem = MemBlocks::zeroed(1024);
        let mut alloc = BumpAllocator::new(1, 1024);
        let root = build(&mut alloc, &mut mem, value_size, entries.iter().cloned()).unwrap();
        let mut seen = Seen::default();
        let spec = TreeSpec {
            name: "built btree",
            leaf_value_size: value_size,
        };
        let summary = walk(&mem, spec, root, Mode::Strict, &mut seen).unwrap();
        assert!(seen.defects.is_empty(), "{:?}", seen.defects);
        assert_eq!(summary.nodes, seen.nodes);
        (seen, alloc)
    }

    fn entries(n: u64, step: u64, value_size: u32) -> Vec<(u64, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let key = i * step + (i * 7919) % step;
                let value = (key ^ 0x5a5a).to_le_bytes()[..value_size as usize].to_vec();
                (key, value)
            })
            .collect()
    }

    fn levels(n: u64, leaf_max: u64) -> u32 {
        let (mut nodes, mut levels) = (n.div_ceil(leaf_max).max(1), 1);
        while nodes > 1 {
            nodes = nodes.div_ceil(252);
            levels += 1;
        }
        levels
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn what_is_built_walks_back_entry_for_entry(
            n in proptest::prop_oneof![0u64..600, 63_400u64..63_700],
            step in 1u64..50,
            four in proptest::bool::ANY,
        ) {
            let value_size = if four { 4 } else { 8 };
            let want = entries(n, step, value_size);
            let (seen, alloc) = round_trip(value_size, &want);
            proptest::prop_assert_eq!(&seen.entries, &want);
            let leaf_max = u64::from(max_entries(value_size));
            proptest::prop_assert_eq!(seen.leaf_depth + 1, levels(n, leaf_max));
            proptest::prop_assert!(alloc.counts()[1..].iter().all(|&c| c == 1));
            proptest::prop_assert_eq!(alloc.next() - 1, seen.nodes);
        }
    }

    #[test]
    fn one_two_and_three_levels() {
        for (n, depth) in [(252, 0), (253, 1), (63_504, 1), (63_505, 2)] {
            let want = entries(n, 1, 8);
            let (seen, _) = round_trip(8, &want);
            assert_eq!(seen.entries.len() as u64, n);
            assert_eq!(seen.leaf_depth, depth, "{n} entries");
        }
    }

    #[test]
    fn an_underfull_last_leaf_shares_with_the_one_before() {
        // 253 entries: a full leaf and one entry would leave a leaf of 1.
        let (seen, alloc) = round_trip(8, &entries(253, 3, 8));
        assert_eq!(seen.entries.len(), 253);
        assert_eq!(alloc.next() - 1, 3, "two leaves and a root");
    }

    #[test]
    fn entries_out_of_order_or_of_the_wrong_size_are_refused() {
        let mut mem = MemBlocks::zeroed(8);
        let mut alloc = BumpAllocator::new(1, 8);
        let err = build(&mut alloc, &mut mem, 8, [(5, [0u8; 8]), (5, [0u8; 8])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "btree entries out of order: key 5 after key 5"
        );
        let err = build(&mut alloc, &mut mem, 4, [(1, [0u8; 8])]).unwrap_err();
        assert!(matches!(err, BuildError::ValueSize { len: 8, .. }), "{err}");
    }

    #[test]
    fn a_full_device_is_an_allocation_error() {
        let mut mem = MemBlocks::zeroed(3);
        let mut alloc = BumpAllocator::new(1, 3);
        let err = build(&mut alloc, &mut mem, 8, entries(600, 1, 8)).unwrap_err();
        assert!(matches!(
            err,
            BuildError::Alloc(AllocError::Full { nr_blocks: 3 })
        ));
    }
}
