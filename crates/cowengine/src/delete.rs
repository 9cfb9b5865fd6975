//! Deleting a snapshot within the journal's transaction bound.
//!
//! A delete touches every leaf that names the snapshot and then merges
//! leaves and nodes. When the whole tree fits one transaction it is one
//! operation, as before. Otherwise it runs in steps, each committed as its own
//! transaction and each leaving a consistent tree: first the snapshot's bit is
//! cleared leaf by leaf (records left with no snapshot go, their chunks wait
//! for a checkpoint), then neighbours are merged one parent node at a time
//! (merges that would not fit a transaction are skipped: the tree stays valid,
//! only less compact), and last the snapshot leaves the snapmask. A crash in
//! between leaves the snapshot in the snapmask with part of its records gone:
//! its contents are undefined and deleting it again finishes the job
//! (clearing a clear bit changes nothing).

use cowfmt::blockdev::BlockDev;
use cowfmt::error::Result;
use cowfmt::shared::mask;
use cowfmt::shared::node::node_capacity;

use crate::store::SharedStore;

impl<D: BlockDev> SharedStore<D> {
    /// Deletes snapshot `id`: its records go, chunks no snapshot needs any more
    /// are freed (for reuse after the next checkpoint when journaled), and the
    /// tree shrinks. Returns the data chunks freed. On a journaled store whose
    /// tree does not fit one transaction, the delete commits several (unless
    /// [`SharedStore::set_auto_commit`] is off: then it is one change).
    pub fn delete_snapshot(&mut self, id: u32) -> Result<u64> {
        self.require(id)?;
        let bit = mask::bit(id);
        let freed = if self.delete_fits_one_transaction()? {
            self.tree.remove_snapshot(bit)?
        } else {
            self.delete_in_steps(bit)?
        };
        self.header.snapmask &= !bit;
        Ok(freed)
    }

    /// Whether every tree block and bitmap chunk, with the changes not yet
    /// committed, fits one transaction (always true in place).
    fn delete_fits_one_transaction(&mut self) -> Result<bool> {
        if !self.commit_mode().journaled() || !self.auto_commit() {
            return Ok(true);
        }
        let blocks = self.tree_blocks()? + self.geometry().nr_bitmap_chunks;
        Ok(!self.wants_commit_with(blocks as usize))
    }

    /// Nodes and leaves of the tree.
    fn tree_blocks(&mut self) -> Result<u64> {
        let mut level_chunks = vec![self.tree.root];
        let mut blocks = 1;
        for _ in 1..self.tree.levels {
            let mut next = Vec::new();
            for c in level_chunks {
                next.extend(self.tree.children(c)?);
            }
            blocks += next.len() as u64;
            level_chunks = next;
        }
        Ok(blocks + self.tree.leaf_chunks()?.len() as u64)
    }

    /// The delete of [`SharedStore::delete_snapshot`] in committed steps.
    fn delete_in_steps(&mut self, bit: u64) -> Result<u64> {
        self.commit_metadata()?;
        let widest = 2 * node_capacity(self.geometry().chunk_bytes as usize) + 8;
        let mut freed = 0;
        for leaf in self.tree.leaf_chunks()? {
            if self.wants_commit_with(widest) {
                self.commit_metadata()?;
            }
            self.tree.clear_leaf(leaf, bit, &mut freed)?;
        }
        self.merge_in_steps(self.tree.root, self.tree.levels, widest)?;
        self.commit_if_full()?;
        self.tree.collapse_root()?;
        Ok(freed)
    }

    /// Merges the children of every node under `chunk` (at `level`), bottom
    /// up, committing before a merge that could overflow the transaction and
    /// skipping one that would not fit even an empty transaction.
    fn merge_in_steps(&mut self, chunk: u64, level: u32, widest: usize) -> Result<()> {
        if level > 1 {
            for child in self.tree.children(chunk)? {
                self.merge_in_steps(child, level - 1, widest)?;
            }
        }
        if self.wants_commit_with(widest) {
            self.commit_metadata()?;
            if self.wants_commit_with(widest) {
                return Ok(());
            }
        }
        self.tree.merge_children(chunk, level)
    }
}
