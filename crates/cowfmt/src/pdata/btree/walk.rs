//! The one read-only B-tree walker: level by level from the root, each level
//! read in windows whose blocks are fetched in sorted runs of consecutive
//! locations, each node checked on its own ([`Node::decode`]) and against its
//! parent (its keys inside the parent's key range, non-root nodes at least a
//! third full, every leaf at the same depth). A visitor gets every node, the
//! leaves in key order, the blocks reached more than once (it decides whether
//! they are walked again) and every defect.

use crate::bitset::DenseBitmap;
use crate::error::Result;
use crate::pdata::io::{in_windows, BlockSource, BlockWindow};

use super::node::{Node, NodeDefect, NodeKind};

/// Nodes of one level decoded together: at most this many blocks (1 MiB)
/// are held at once, whatever the size of the tree.
const WINDOW_NODES: usize = 256;

/// The keys a node may hold, from its parent: `start..end` (`end` `None`
/// for no upper bound, as at the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// The lowest key allowed.
    pub start: u64,
    /// The first key not allowed, if any.
    pub end: Option<u64>,
}

impl KeyRange {
    /// Every key (the root's range).
    pub const ALL: KeyRange = KeyRange {
        start: 0,
        end: None,
    };

    /// Whether `key` lies inside.
    pub fn contains(&self, key: u64) -> bool {
        key >= self.start && self.end.is_none_or(|end| key < end)
    }
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.end {
            Some(end) => write!(f, "keys {}..{}", self.start, end),
            None => write!(f, "keys {}..", self.start),
        }
    }
}

/// Where a node was reached: its block, the key range its parent gave it
/// and its depth (the root is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAt {
    /// The node's block.
    pub location: u64,
    /// The keys its parent allows it.
    pub range: KeyRange,
    /// Levels above it.
    pub depth: u32,
}

/// Which tree is walked: its name in messages and the size of its leaf values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSpec {
    /// The tree's name in messages (`array btree`, `ref count btree`).
    pub name: &'static str,
    /// Bytes of each leaf value.
    pub leaf_value_size: u32,
}

/// What is wrong at one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalkDefectKind {
    /// The node itself is invalid; nothing below it is walked.
    #[error(transparent)]
    Node(#[from] NodeDefect),
    /// The parent points past the end of the metadata device.
    #[error("the block is past the end of the metadata device ({nr_blocks} blocks)")]
    PastEnd {
        /// Blocks of the metadata device.
        nr_blocks: u64,
    },
    /// A key lies outside the range the parent gives the node.
    #[error("key {index} ({key}) is outside the parent's range")]
    KeyOutOfRange {
        /// Index of the key in the node.
        index: u32,
        /// The key.
        key: u64,
    },
    /// A non-root node holds fewer than a third of its `max_entries`.
    #[error("{nr_entries} entries, a non-root node holds at least {min}")]
    TooFewEntries {
        /// Entries held.
        nr_entries: u32,
        /// `max_entries / 3`.
        min: u32,
    },
    /// A leaf is not at the depth of the first leaf.
    #[error("a leaf at depth {depth}, the first leaf is at depth {expected}")]
    LeafDepth {
        /// Its depth.
        depth: u32,
        /// The depth of the first leaf reached.
        expected: u32,
    },
}

/// A defect, with the tree, the node's block and its key range: the
/// message reads `array btree node 37 (keys 0..252): ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{tree} node {} ({}): {kind}", at.location, at.range)]
pub struct WalkDefect {
    /// The tree's name.
    pub tree: &'static str,
    /// Where the node was reached.
    pub at: NodeAt,
    /// What is wrong.
    pub kind: WalkDefectKind,
}

/// What to do with a block reached again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revisit {
    /// Do not walk it again (its subtree was delivered once).
    Skip,
    /// Walk it again, delivering its subtree again.
    Walk,
}

/// Whether the walk goes on after a defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stop at the first defect.
    Strict,
    /// Report every defect and walk whatever can still be read.
    Tolerant,
}

/// What the walker tells its caller.
pub trait Visitor {
    /// A node decoded and checked (also when its checks against the parent
    /// failed: the defect comes first).
    fn node(&mut self, _at: &NodeAt, _node: &Node) {}

    /// A leaf, in key order among the leaves: its keys and values.
    fn leaf(&mut self, at: &NodeAt, node: &Node);

    /// A block reached again (`at` is the new path's place); the default
    /// does not walk it twice.
    fn revisit(&mut self, _at: &NodeAt) -> Revisit {
        Revisit::Skip
    }

    /// A defect.
    fn defect(&mut self, defect: WalkDefect);
}

/// How the walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkSummary {
    /// Nodes decoded.
    pub nodes: u64,
    /// Defects reported.
    pub defects: u64,
    /// Whether a strict walk stopped at a defect.
    pub stopped: bool,
}

/// Walks the tree rooted at `root` in `source`. Fails only when the source
/// cannot be read; every defect goes to the visitor.
pub fn walk(
    source: &dyn BlockSource,
    spec: TreeSpec,
    root: u64,
    mode: Mode,
    visitor: &mut dyn Visitor,
) -> Result<WalkSummary> {
    let mut walker = Walker {
        source,
        spec,
        mode,
        visitor,
        reached: DenseBitmap::new(source.nr_blocks()),
        leaf_depth: None,
        summary: WalkSummary::default(),
        blocks: BlockWindow::default(),
    };
    let mut level = vec![NodeAt {
        location: root,
        range: KeyRange::ALL,
        depth: 0,
    }];
    while !level.is_empty() && !walker.summary.stopped {
        let mut next = Vec::new();
        in_windows(&level, WINDOW_NODES, |window| {
            walker.window(window, &mut next)?;
            Ok(walker.summary.stopped)
        })?;
        level = next;
    }
    Ok(walker.summary)
}

struct Walker<'a> {
    source: &'a dyn BlockSource,
    spec: TreeSpec,
    mode: Mode,
    visitor: &'a mut dyn Visitor,
    reached: DenseBitmap,
    leaf_depth: Option<u32>,
    summary: WalkSummary,
    blocks: BlockWindow,
}

impl Walker<'_> {
    /// Reports a defect; whether the walk must stop.
    fn defect(&mut self, at: NodeAt, kind: WalkDefectKind) -> bool {
        self.summary.defects += 1;
        self.visitor.defect(WalkDefect {
            tree: self.spec.name,
            at,
            kind,
        });
        if self.mode == Mode::Strict {
            self.summary.stopped = true;
        }
        self.summary.stopped
    }

    /// Reads and handles the nodes of `window` (in key order), pushing the
    /// children of internal nodes to `next`.
    fn window(&mut self, window: &[NodeAt], next: &mut Vec<NodeAt>) -> Result<()> {
        let nr_blocks = self.source.nr_blocks();
        let mut wanted = Vec::with_capacity(window.len());
        for at in window {
            if at.location >= nr_blocks {
                if self.defect(*at, WalkDefectKind::PastEnd { nr_blocks }) {
                    return Ok(());
                }
            } else if !self.reached.test_and_set(at.location)
                || self.visitor.revisit(at) == Revisit::Walk
            {
                wanted.push(*at);
            }
        }
        let what = format!("{} nodes", self.spec.name);
        let locations = wanted.iter().map(|at| at.location);
        self.blocks.read(self.source, locations, &what)?;
        for at in wanted {
            let block = self.blocks.get(at.location).expect("below the end, read");
            match Node::decode(at.location, block, self.spec.leaf_value_size) {
                Ok(node) => {
                    if self.node(at, &node, next) {
                        return Ok(());
                    }
                }
                Err(defect) => {
                    if self.defect(at, defect.into()) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a decoded node against its parent and hands it on; whether the
    /// walk must stop.
    fn node(&mut self, at: NodeAt, node: &Node, next: &mut Vec<NodeAt>) -> bool {
        self.summary.nodes += 1;
        if let Some(index) = node.keys.iter().position(|&k| !at.range.contains(k)) {
            let key = node.keys[index];
            let kind = WalkDefectKind::KeyOutOfRange {
                index: index as u32,
                key,
            };
            if self.defect(at, kind) {
                return true;
            }
        }
        let min = node.max_entries / 3;
        if at.depth > 0 && (node.len() as u32) < min {
            let kind = WalkDefectKind::TooFewEntries {
                nr_entries: node.len() as u32,
                min,
            };
            if self.defect(at, kind) {
                return true;
            }
        }
        self.visitor.node(&at, node);
        match node.kind {
            NodeKind::Internal => {
                let depth = at.depth + 1;
                for (i, child) in node.children().enumerate() {
                    let end = node.keys.get(i + 1).copied().or(at.range.end);
                    let start = node.keys[i];
                    next.push(NodeAt {
                        location: child,
                        range: KeyRange { start, end },
                        depth,
                    });
                }
            }
            NodeKind::Leaf => {
                let expected = *self.leaf_depth.get_or_insert(at.depth);
                if expected != at.depth {
                    let kind = WalkDefectKind::LeafDepth {
                        depth: at.depth,
                        expected,
                    };
                    if self.defect(at, kind) {
                        return true;
                    }
                }
                self.visitor.leaf(&at, node);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::block::BlockDefect;
    use crate::pdata::block::BLOCK_BYTES;
    use crate::pdata::btree::node::NodeKind;
    use crate::pdata::io::MemBlocks;

    const SPEC: TreeSpec = TreeSpec {
        name: "test btree",
        leaf_value_size: 8,
    };

    /// Collects what the walker reports.
    #[derive(Default)]
    struct Record {
        entries: Vec<(u64, u64)>,
        nodes: Vec<u64>,
        revisits: Vec<u64>,
        defects: Vec<WalkDefect>,
        walk_again: bool,
    }

    impl Visitor for Record {
        fn node(&mut self, at: &NodeAt, _node: &Node) {
            self.nodes.push(at.location);
        }
        fn leaf(&mut self, _at: &NodeAt, node: &Node) {
            for i in 0..node.len() {
                self.entries.push((node.keys[i], node.value_u64(i)));
            }
        }
        fn revisit(&mut self, at: &NodeAt) -> Revisit {
            self.revisits.push(at.location);
            if self.walk_again {
                Revisit::Walk
            } else {
                Revisit::Skip
            }
        }
        fn defect(&mut self, defect: WalkDefect) {
            self.defects.push(defect);
        }
    }

    fn leaf(keys: std::ops::Range<u64>) -> Node {
        let mut node = Node::new(NodeKind::Leaf, 8);
        for key in keys {
            node.push(key, &(key * 2).to_le_bytes());
        }
        node
    }

    fn internal(children: &[(u64, u64)]) -> Node {
        let mut node = Node::new(NodeKind::Internal, 8);
        for &(key, child) in children {
            node.push(key, &child.to_le_bytes());
        }
        node
    }

    fn put(mem: &mut MemBlocks, location: u64, node: &Node) {
        let at = location as usize * BLOCK_BYTES;
        mem.bytes_mut()[at..at + BLOCK_BYTES].copy_from_slice(&node.encode(location)[..]);
    }

    /// Root 1 over leaves at 5 (keys 0..100), 3 (100..200), 4 (200..300):
    /// leaves are stored out of key order.
    fn two_levels() -> MemBlocks {
        let mut mem = MemBlocks::zeroed(8);
        put(&mut mem, 1, &internal(&[(0, 5), (100, 3), (200, 4)]));
        put(&mut mem, 5, &leaf(0..100));
        put(&mut mem, 3, &leaf(100..200));
        put(&mut mem, 4, &leaf(200..300));
        mem
    }

    fn run(mem: &MemBlocks, root: u64, mode: Mode, record: &mut Record) -> WalkSummary {
        walk(mem, SPEC, root, mode, record).unwrap()
    }

    #[test]
    fn leaves_come_in_key_order_whatever_their_places() {
        let mem = two_levels();
        let mut record = Record::default();
        let summary = run(&mem, 1, Mode::Strict, &mut record);
        let want: Vec<(u64, u64)> = (0..300).map(|k| (k, 2 * k)).collect();
        assert_eq!(record.entries, want);
        assert_eq!(record.nodes, [1, 5, 3, 4]);
        assert_eq!(summary.nodes, 4);
        assert!(record.defects.is_empty());
    }

    #[test]
    fn a_child_with_keys_outside_its_parents_range_is_named_with_the_range() {
        let mut mem = two_levels();
        put(&mut mem, 3, &leaf(150..250));
        let mut record = Record::default();
        run(&mem, 1, Mode::Tolerant, &mut record);
        assert_eq!(record.defects.len(), 1);
        assert_eq!(
            record.defects[0].to_string(),
            "test btree node 3 (keys 100..200): key 50 (200) is outside the parent's range"
        );
        assert_eq!(
            record.entries.len(),
            300,
            "tolerant: the leaf is still read"
        );
    }

    #[test]
    fn a_damaged_child_is_reported_and_the_rest_is_walked_when_tolerant() {
        let mut mem = two_levels();
        mem.bytes_mut()[3 * BLOCK_BYTES + 100] ^= 1;
        let mut record = Record::default();
        let summary = run(&mem, 1, Mode::Tolerant, &mut record);
        assert_eq!(record.entries.len(), 200);
        assert!(matches!(
            record.defects[..],
            [WalkDefect {
                at: NodeAt { location: 3, .. },
                kind: WalkDefectKind::Node(NodeDefect::Block(BlockDefect::Checksum { .. })),
                ..
            }]
        ));
        assert_eq!(summary.defects, 1);
        assert!(!summary.stopped);
    }

    #[test]
    fn a_strict_walk_stops_at_the_first_defect() {
        let mut mem = two_levels();
        put(&mut mem, 5, &leaf(0..10));
        put(&mut mem, 4, &leaf(300..400));
        let mut record = Record::default();
        let summary = run(&mem, 1, Mode::Strict, &mut record);
        assert!(summary.stopped);
        assert_eq!(record.defects.len(), 1);
        assert_eq!(
            record.defects[0].kind,
            WalkDefectKind::TooFewEntries {
                nr_entries: 10,
                min: 84
            }
        );
    }

    #[test]
    fn a_block_reached_twice_goes_to_the_visitor_which_decides() {
        let mut mem = MemBlocks::zeroed(8);
        put(&mut mem, 1, &internal(&[(0, 5), (100, 5)]));
        put(&mut mem, 5, &leaf(0..100));
        let mut record = Record::default();
        run(&mem, 1, Mode::Tolerant, &mut record);
        assert_eq!(record.revisits, [5]);
        assert_eq!(record.entries.len(), 100);

        let mut record = Record {
            walk_again: true,
            ..Record::default()
        };
        run(&mem, 1, Mode::Tolerant, &mut record);
        assert_eq!(record.entries.len(), 200);
        assert_eq!(
            record.defects[0].to_string(),
            "test btree node 5 (keys 100..): key 0 (0) is outside the parent's range"
        );
    }

    #[test]
    fn pointers_past_the_end_and_uneven_leaves_are_defects() {
        let mut mem = MemBlocks::zeroed(8);
        put(&mut mem, 1, &internal(&[(0, 2), (100, 99), (200, 3)]));
        put(&mut mem, 2, &leaf(0..100));
        put(&mut mem, 3, &internal(&[(200, 4)]));
        put(&mut mem, 4, &leaf(200..300));
        let mut record = Record::default();
        run(&mem, 1, Mode::Tolerant, &mut record);
        let kinds: Vec<WalkDefectKind> = record.defects.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                WalkDefectKind::PastEnd { nr_blocks: 8 },
                WalkDefectKind::TooFewEntries {
                    nr_entries: 1,
                    min: 84
                },
                WalkDefectKind::LeafDepth {
                    depth: 2,
                    expected: 1
                },
            ]
        );
        assert_eq!(record.entries.len(), 200);
    }

    #[test]
    fn an_empty_root_leaf_is_an_empty_tree() {
        let mut mem = MemBlocks::zeroed(4);
        put(&mut mem, 2, &leaf(0..0));
        let mut record = Record::default();
        let summary = run(&mem, 2, Mode::Strict, &mut record);
        assert_eq!(summary.nodes, 1);
        assert!(record.entries.is_empty() && record.defects.is_empty());
    }
}
