//! The ref-count B-tree: the full count (le32, keyed by block) of every block
//! whose bitmap entry is 3. Read with the one B-tree walker; written whole
//! at each commit.

use crate::error::Result;
use crate::pdata::btree::walk::{
    self, Mode, NodeAt, TreeSpec, Visitor, WalkDefect, WalkDefectKind,
};
use crate::pdata::btree::Node;
use crate::pdata::io::BlockSource;

use super::finding::SmFinding;
use super::load::CommittedSpaceMap;

/// Bytes of a ref-count tree value (a le32 count).
pub const VALUE_SIZE: u32 = 4;
/// The tree as the walker names it.
pub const SPEC: TreeSpec = TreeSpec {
    name: "space map ref-count btree",
    leaf_value_size: VALUE_SIZE,
};
/// The smallest count the tree holds.
pub const MIN_TREE_COUNT: u32 = 3;

/// A count table entry whose bitmap says 3 and whose tree count is not yet read.
pub(crate) const PENDING: u32 = u32::MAX;

/// Reads the ref-count tree of `loaded.root` and puts each count into the
/// table; a bitmap entry of 3 left without a count is a finding (and taken
/// as 3), unless the tree was damaged, in which case its count is unknown.
pub(crate) fn apply_tree(source: &dyn BlockSource, loaded: &mut CommittedSpaceMap) -> Result<()> {
    let root = loaded.root.ref_count_root;
    let mut visitor = Apply {
        loaded,
        damaged: false,
    };
    walk::walk(source, SPEC, root, Mode::Tolerant, &mut visitor)?;
    let damaged = visitor.damaged;
    for block in 0..loaded.counts.len() {
        if loaded.counts[block] != PENDING {
            continue;
        }
        let block = block as u64;
        if damaged {
            loaded.counts[block as usize] = 0;
            loaded.unknown.push(block..block + 1);
        } else {
            loaded.counts[block as usize] = MIN_TREE_COUNT;
            loaded.findings.push(SmFinding::RefCountMissing { block });
        }
    }
    Ok(())
}

struct Apply<'a> {
    loaded: &'a mut CommittedSpaceMap,
    damaged: bool,
}

impl Visitor for Apply<'_> {
    fn node(&mut self, at: &NodeAt, _node: &Node) {
        self.loaded.own_blocks.push(at.location);
    }

    fn leaf(&mut self, _at: &NodeAt, node: &Node) {
        for (i, &block) in node.keys.iter().enumerate() {
            let count = node.value_u32(i);
            let Some(&slot) = self.loaded.counts.get(block as usize) else {
                self.loaded.findings.push(SmFinding::PointerPastEnd {
                    what: format!("ref-count btree node {} key", node.blocknr),
                    location: block,
                    nr_blocks: self.loaded.root.nr_blocks,
                });
                continue;
            };
            if slot != PENDING && self.loaded.unknown.iter().any(|r| r.contains(&block)) {
                continue;
            }
            let (finding, count) = if slot != PENDING {
                let entry = slot.min(MIN_TREE_COUNT) as u8;
                let finding = SmFinding::RefCountNotOverflow {
                    block,
                    count,
                    entry,
                };
                (Some(finding), slot)
            } else if count < MIN_TREE_COUNT {
                (
                    Some(SmFinding::RefCountTooSmall { block, count }),
                    MIN_TREE_COUNT,
                )
            } else {
                (None, count)
            };
            self.loaded.counts[block as usize] = count;
            self.loaded.findings.extend(finding);
        }
    }

    fn defect(&mut self, defect: WalkDefect) {
        self.damaged = true;
        if matches!(defect.kind, WalkDefectKind::Node(_)) {
            self.loaded.own_blocks.push(defect.at.location);
        }
        self.loaded.findings.push(SmFinding::RefCountTree(defect));
    }
}
