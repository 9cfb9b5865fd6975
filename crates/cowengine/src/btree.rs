//! The exception B-tree: lookup, insert with leaf and node splits and root
//! growth, removal of a snapshot across the whole tree with merging and level
//! collapse, and an in-order walk. Blocks live in a [`BlockCache`]; chunks come
//! from and go back to the [`Allocator`].

use std::collections::HashSet;

use cowfmt::blockdev::BlockDev;
use cowfmt::device::Device;
use cowfmt::error::{Error, Result};
use cowfmt::shared::leaf::{
    max_records_per_origin, max_snapshots, Exception, Leaf, LEAF_HEADER_BYTES, MAP_ENTRY_BYTES,
    RECORD_BYTES,
};
use cowfmt::shared::node::{node_capacity, Node, NodeEntry};

use crate::alloc::Allocator;
use crate::cache::BlockCache;

/// The tree of one store: its blocks, its allocator, its root and depth.
#[derive(Debug)]
pub struct Tree<D: BlockDev = Device> {
    /// Decoded blocks.
    pub cache: BlockCache<D>,
    /// The chunk allocator (shared with data chunks).
    pub alloc: Allocator,
    /// Chunk of the root node.
    pub root: u64,
    /// Node levels above the leaves.
    pub levels: u32,
}

/// The path from the root to a leaf: `(node chunk, child index)` per level, root
/// first, and the leaf chunk.
#[derive(Debug, Clone)]
struct Path {
    steps: Vec<(u64, usize)>,
    leaf: u64,
}

impl<D: BlockDev> Tree<D> {
    /// Free chunks needed to be sure an insert can split every level and grow
    /// the root, plus one data chunk.
    pub fn insert_reserve(&self) -> u64 {
        u64::from(self.levels) + 3
    }

    fn descend(&mut self, origin: u64) -> Result<Path> {
        let mut steps = Vec::with_capacity(self.levels as usize);
        let mut chunk = self.root;
        for _ in 0..self.levels {
            let node = self.cache.node(chunk)?;
            let i = node.child_for(origin);
            steps.push((chunk, i));
            chunk = node.entries[i].chunk;
        }
        Ok(Path { steps, leaf: chunk })
    }

    /// The leaf that covers `origin` (its chunk); allocates nothing once the
    /// blocks on the way are cached.
    pub fn leaf_for(&mut self, origin: u64) -> Result<u64> {
        let mut chunk = self.root;
        for _ in 0..self.levels {
            let node = self.cache.node(chunk)?;
            chunk = node.entries[node.child_for(origin)].chunk;
        }
        Ok(chunk)
    }

    /// The leaf that covers `origin` (its chunk) and the first origin chunk
    /// past that leaf's key range (`u64::MAX` for the last leaf): one descent
    /// serves every origin chunk up to there.
    pub fn leaf_span(&mut self, origin: u64) -> Result<(u64, u64)> {
        let mut chunk = self.root;
        let mut upper = u64::MAX;
        for _ in 0..self.levels {
            let node = self.cache.node(chunk)?;
            let i = node.child_for(origin);
            if let Some(next) = node.entries.get(i + 1) {
                upper = upper.min(next.key);
            }
            chunk = node.entries[i].chunk;
        }
        Ok((chunk, upper))
    }

    /// Adds `record` for `origin` to the leaf at `leaf_chunk` when that leaf
    /// takes it as it is (no split, no rebase) and returns whether it did.
    /// The caller knows that `origin` lies in the leaf's key range
    /// ([`Tree::leaf_span`]).
    pub fn insert_if_room(
        &mut self,
        leaf_chunk: u64,
        origin: u64,
        record: Exception,
    ) -> Result<bool> {
        let chunk_bytes = self.cache.chunk_bytes();
        if next_step(
            self.cache.leaf(leaf_chunk)?,
            origin,
            chunk_bytes,
            Order::Any,
        ) != Step::Ready
        {
            return Ok(false);
        }
        add_record(self.cache.leaf_mut(leaf_chunk)?, origin, record);
        Ok(true)
    }

    /// The records of origin chunk `origin` (empty when it has none).
    pub fn lookup(&mut self, origin: u64) -> Result<Vec<Exception>> {
        self.with_records(origin, <[Exception]>::to_vec)
    }

    /// `f` of the records of origin chunk `origin` (empty when it has none),
    /// without copying them.
    pub fn with_records<R>(&mut self, origin: u64, f: impl FnOnce(&[Exception]) -> R) -> Result<R> {
        let leaf_chunk = self.leaf_for(origin)?;
        let leaf = self.cache.leaf(leaf_chunk)?;
        Ok(match leaf.find(origin) {
            Ok(i) => f(leaf.records_of(i)),
            Err(_) => f(&[]),
        })
    }

    /// Makes room for one more record of `origin` (a new map entry if it has none)
    /// and returns the leaf that will hold it. Splits leaves and nodes as needed;
    /// each split first checks that the whole worst case still fits, so running
    /// out of space leaves a consistent tree. An origin chunk whose records
    /// already fill a leaf is refused before anything changes.
    pub fn prepare_insert(&mut self, origin: u64) -> Result<u64> {
        self.prepare_insert_as(origin, Order::Any)
    }

    /// [`Tree::prepare_insert`] for one of a run of consecutive origin chunks
    /// inserted in ascending order: a full leaf whose last entry is
    /// `origin - 1` is split after that entry, so it stays full and the run
    /// goes on into a new leaf (a median split would leave every leaf of a
    /// sequential writer half empty).
    pub fn prepare_insert_in_run(&mut self, origin: u64) -> Result<u64> {
        self.prepare_insert_as(origin, Order::Ascending)
    }

    fn prepare_insert_as(&mut self, origin: u64, order: Order) -> Result<u64> {
        for _ in 0..4 {
            let path = self.descend(origin)?;
            let chunk_bytes = self.cache.chunk_bytes();
            match next_step(self.cache.leaf(path.leaf)?, origin, chunk_bytes, order) {
                Step::Ready => return Ok(path.leaf),
                Step::Rebase => self.rebase_leaf(path.leaf, origin)?,
                Step::Split { at, key } => {
                    self.ensure_free(self.insert_reserve())?;
                    self.split_leaf(&path, at, key)?;
                }
                Step::Full { records } => return Err(self.record_limit(origin, records)),
            }
        }
        Err(Error::Corrupt {
            path: self.cache.device().path().to_path_buf(),
            chunk: self.root,
            detail: format!("no leaf can take a record for origin chunk {origin}"),
        })
    }

    fn record_limit(&self, origin: u64, records: usize) -> Error {
        let chunk_bytes = self.cache.chunk_bytes();
        Error::SnapshotLimit {
            path: self.cache.device().path().to_path_buf(),
            chunk_bytes: chunk_bytes as u64,
            max: max_snapshots(chunk_bytes as u64),
            detail: format!(
                "origin chunk {origin} already has {records} records, the most a leaf holds"
            ),
        }
    }

    /// Gives the leaf at `leaf_chunk` the base `origin` (see [`Step::Rebase`]).
    fn rebase_leaf(&mut self, leaf_chunk: u64, origin: u64) -> Result<()> {
        let leaf = self.cache.leaf_mut(leaf_chunk)?;
        let mut target = Leaf::new(origin);
        target.append(std::mem::take(leaf));
        *leaf = target;
        Ok(())
    }

    fn ensure_free(&self, needed: u64) -> Result<()> {
        let free = self.alloc.free_chunks();
        if free < needed {
            return Err(Error::StoreFull {
                path: self.cache.device().path().to_path_buf(),
                free,
                needed,
            });
        }
        Ok(())
    }

    /// Takes a chunk from the allocator.
    pub fn alloc_chunk(&mut self) -> Result<u64> {
        self.alloc.alloc().ok_or_else(|| Error::StoreFull {
            path: self.cache.device().path().to_path_buf(),
            free: 0,
            needed: 1,
        })
    }

    /// Splits the leaf at the end of `path`: entries from `at` on move to a new
    /// leaf based at `key`, and the parent gets `{key, new leaf}`.
    fn split_leaf(&mut self, path: &Path, at: usize, key: u64) -> Result<()> {
        let new_chunk = self.alloc_chunk()?;
        let upper = self.cache.leaf_mut(path.leaf)?.split_off(at, key);
        self.cache.put_leaf(new_chunk, upper);
        self.insert_into_parent(
            &path.steps,
            NodeEntry {
                key,
                chunk: new_chunk,
            },
        )
    }

    /// Inserts `entry` after the child taken at the last step of `steps`,
    /// splitting nodes upward and growing the root when needed.
    fn insert_into_parent(&mut self, steps: &[(u64, usize)], entry: NodeEntry) -> Result<()> {
        let capacity = node_capacity(self.cache.chunk_bytes());
        let mut entry = entry;
        for depth in (0..steps.len()).rev() {
            let (chunk, i) = steps[depth];
            let node = self.cache.node_mut(chunk)?;
            node.entries.insert(i + 1, entry);
            if node.entries.len() <= capacity {
                return Ok(());
            }
            let mid = node.entries.len() / 2;
            let upper = Node {
                entries: node.entries.split_off(mid),
                unused: 0,
            };
            let key = upper.entries[0].key;
            let new_chunk = self.alloc_chunk()?;
            self.cache.put_node(new_chunk, upper);
            entry = NodeEntry {
                key,
                chunk: new_chunk,
            };
        }
        let new_root = self.alloc_chunk()?;
        self.cache.put_node(
            new_root,
            Node {
                entries: vec![
                    NodeEntry {
                        key: 0,
                        chunk: self.root,
                    },
                    entry,
                ],
                unused: 0,
            },
        );
        self.root = new_root;
        self.levels += 1;
        Ok(())
    }

    /// Removes snapshot bit `bit` from every record; records left with no
    /// snapshot are removed and their data chunks freed, then leaves and nodes
    /// that fit into their left neighbour are merged and the root collapses while
    /// it has one child. Returns the data chunks freed.
    pub fn remove_snapshot(&mut self, bit: u64) -> Result<u64> {
        self.load_every_leaf()?;
        let mut freed = 0;
        self.remove_in(self.root, self.levels, bit, &mut freed)?;
        self.collapse_root()?;
        Ok(freed)
    }

    /// Drops root nodes with a single child while the tree has more than one
    /// node level.
    pub(crate) fn collapse_root(&mut self) -> Result<()> {
        while self.levels > 1 {
            let root = self.cache.node(self.root)?;
            if root.entries.len() != 1 {
                break;
            }
            let child = root.entries[0].chunk;
            self.cache.forget(self.root);
            self.alloc.free(self.root);
            self.root = child;
            self.levels -= 1;
        }
        Ok(())
    }

    fn remove_in(&mut self, chunk: u64, level: u32, bit: u64, freed: &mut u64) -> Result<()> {
        if level == 0 {
            return self.clear_leaf(chunk, bit, freed);
        }
        for child in self.children(chunk)? {
            self.remove_in(child, level - 1, bit, freed)?;
        }
        self.merge_children(chunk, level)
    }

    /// The children of the node at `chunk`, in key order.
    pub(crate) fn children(&mut self, chunk: u64) -> Result<Vec<u64>> {
        Ok(self
            .cache
            .node(chunk)?
            .entries
            .iter()
            .map(|e| e.chunk)
            .collect())
    }

    /// Removes snapshot bit `bit` from every record of the leaf at `chunk`;
    /// records left with no snapshot go and their data chunks are freed
    /// (counted in `freed`). A leaf without the bit is not touched.
    pub(crate) fn clear_leaf(&mut self, chunk: u64, bit: u64, freed: &mut u64) -> Result<()> {
        let leaf = self.cache.leaf(chunk)?;
        if leaf.using_mask() & bit == 0 {
            return Ok(());
        }
        let leaf = self.cache.leaf_mut(chunk)?;
        let mut dropped = Vec::new();
        let mut r = 0;
        while r < leaf.records.len() {
            leaf.records[r].share &= !bit;
            if leaf.records[r].share == 0 {
                dropped.push(leaf.records[r].chunk);
                leaf.remove_record(r);
            } else {
                r += 1;
            }
        }
        for c in dropped {
            self.alloc.free(c);
            *freed += 1;
        }
        Ok(())
    }

    /// Merges each child of the node at `chunk` into its left neighbour when its
    /// payload fits there. Two nodes merged bring children of different parents
    /// side by side, so those are merged in turn.
    pub(crate) fn merge_children(&mut self, chunk: u64, level: u32) -> Result<()> {
        let chunk_bytes = self.cache.chunk_bytes();
        let capacity = node_capacity(chunk_bytes);
        let mut entries = self.cache.node(chunk)?.entries.clone();
        let mut i = 1;
        let mut changed = false;
        let mut joined = Vec::new();
        while i < entries.len() {
            let (left, right) = (entries[i - 1].chunk, entries[i].chunk);
            let merged = if level == 1 {
                let r = self.cache.leaf(right)?;
                let payload = r.bytes_used() - LEAF_HEADER_BYTES - MAP_ENTRY_BYTES;
                let r = r.clone();
                let l = self.cache.leaf(left)?;
                if payload <= l.free_bytes(chunk_bytes) && l.can_absorb(&r) {
                    self.cache.take_leaf(right)?;
                    self.cache.leaf_mut(left)?.append(r);
                    true
                } else {
                    false
                }
            } else {
                let r_len = self.cache.node(right)?.entries.len();
                let l_len = self.cache.node(left)?.entries.len();
                if l_len + r_len <= capacity {
                    let mut r = self.cache.take_node(right)?;
                    r.entries[0].key = entries[i].key;
                    self.cache.node_mut(left)?.entries.extend(r.entries);
                    if joined.last() != Some(&left) {
                        joined.push(left);
                    }
                    true
                } else {
                    false
                }
            };
            if merged {
                self.alloc.free(right);
                entries.remove(i);
                changed = true;
            } else {
                i += 1;
            }
        }
        if changed {
            self.cache.node_mut(chunk)?.entries = entries;
        }
        for child in joined {
            self.merge_children(child, level - 1)?;
        }
        Ok(())
    }

    /// Sets bit `to` in every record that has bit `from` (a snapshot of a snapshot).
    pub fn copy_bit(&mut self, from: u64, to: u64) -> Result<()> {
        for chunk in self.load_every_leaf()? {
            if self.cache.leaf(chunk)?.using_mask() & from == 0 {
                continue;
            }
            for r in &mut self.cache.leaf_mut(chunk)?.records {
                if r.share & from != 0 {
                    r.share |= to;
                }
            }
        }
        Ok(())
    }

    /// How many leaves hold a record whose share mask has `bit`: the leaves a
    /// [`Tree::copy_bit`] from `bit` changes.
    pub fn leaves_using(&mut self, bit: u64) -> Result<usize> {
        let mut n = 0;
        for chunk in self.load_every_leaf()? {
            if self.cache.leaf(chunk)?.using_mask() & bit != 0 {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Reads (and so checks) every block of the tree into the cache, so that an
    /// operation over the whole tree finds any damage before it changes
    /// anything. Returns the leaf chunks in key order.
    fn load_every_leaf(&mut self) -> Result<Vec<u64>> {
        let leaves = self.leaf_chunks()?;
        for &chunk in &leaves {
            self.cache.leaf(chunk)?;
        }
        Ok(leaves)
    }

    /// The chunks of every leaf, in key order. A chunk reached twice (from two
    /// parents, or a cycle) is an error.
    pub fn leaf_chunks(&mut self) -> Result<Vec<u64>> {
        let mut seen = HashSet::from([self.root]);
        let mut level_chunks = vec![self.root];
        for _ in 0..self.levels {
            let mut next = Vec::new();
            for c in level_chunks {
                let start = next.len();
                next.extend(self.cache.node(c)?.entries.iter().map(|e| e.chunk));
                if let Some(&twice) = next[start..].iter().find(|&&child| !seen.insert(child)) {
                    return Err(Error::Corrupt {
                        path: self.cache.device().path().to_path_buf(),
                        chunk: c,
                        detail: format!(
                            "node points at chunk {twice}, which the tree reaches twice"
                        ),
                    });
                }
            }
            level_chunks = next;
        }
        Ok(level_chunks)
    }

    /// Calls `f(origin chunk, records)` for every map entry, in key order.
    pub fn for_each(&mut self, mut f: impl FnMut(u64, &[Exception])) -> Result<()> {
        for chunk in self.leaf_chunks()? {
            self.cache.with_leaf(chunk, |leaf| {
                for (origin, records) in leaf.entries() {
                    f(origin, records);
                }
            })?;
        }
        Ok(())
    }
}

/// Adds `record` for `origin` to `leaf`, which has room for it: after the
/// origin's other records, or as a new map entry.
pub(crate) fn add_record(leaf: &mut Leaf, origin: u64, record: Exception) {
    match leaf.find(origin) {
        Ok(i) => leaf.push_record(i, record),
        Err(i) => {
            let rchunk = (origin - leaf.base_chunk) as u32;
            leaf.insert_entry(i, rchunk, record);
        }
    }
}

/// How the origin chunks being inserted come (see [`Tree::prepare_insert_in_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// In any order.
    Any,
    /// A run of consecutive chunks, in ascending order.
    Ascending,
}

/// What a leaf must go through before it takes one more record of `origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The record fits as it is.
    Ready,
    /// The leaf's base is above `origin` or too far below it, and every entry
    /// (if any) can be expressed from `origin`: the leaf is based at `origin`.
    Rebase,
    /// Entries from `at` on move to a new leaf keyed (and based) at `key`.
    Split { at: usize, key: u64 },
    /// The origin chunk already has the most records a leaf holds.
    Full { records: usize },
}

/// The next step for `leaf` to take a record of `origin`. An rchunk that
/// does not fit 32 bits rebases the leaf when it can; else `origin` gets a leaf
/// of its own: a new empty leaf keyed at `origin` after this leaf's entries,
/// or, when `origin` lies below the base, this leaf, emptied by moving every
/// entry to a new leaf keyed at the base.
fn next_step(leaf: &Leaf, origin: u64, chunk_bytes: usize, order: Order) -> Step {
    let found = leaf.find(origin);
    if let Ok(i) = found {
        let records = leaf.records_of(i).len();
        if records >= max_records_per_origin(chunk_bytes) {
            return Step::Full { records };
        }
    }
    let rchunk_fits = origin
        .checked_sub(leaf.base_chunk)
        .is_some_and(|r| r <= u64::from(u32::MAX));
    if !rchunk_fits {
        return if Leaf::new(origin).can_absorb(leaf) {
            Step::Rebase
        } else if origin < leaf.base_chunk {
            Step::Split {
                at: 0,
                key: leaf.base_chunk,
            }
        } else {
            Step::Split {
                at: leaf.count(),
                key: origin,
            }
        };
    }
    let needed = match found {
        Ok(_) => RECORD_BYTES,
        Err(_) => MAP_ENTRY_BYTES + RECORD_BYTES,
    };
    if leaf.bytes_used() + needed <= chunk_bytes {
        return Step::Ready;
    }
    let split = match found {
        Ok(i) => median_or(leaf, i),
        Err(i) => split_for_new(leaf, origin, i, order),
    };
    split.map_or(
        Step::Full {
            records: found.map_or(0, |i| leaf.records_of(i).len()),
        },
        |(at, key)| Step::Split { at, key },
    )
}

/// The median split of a leaf that cannot take one more record of entry `i`;
/// `None` when the leaf has a single entry (nothing to split off).
fn median_or(leaf: &Leaf, _i: usize) -> Option<(usize, u64)> {
    if leaf.count() < 2 {
        return None;
    }
    let nhead = leaf.count().div_ceil(2);
    Some((nhead, leaf.origin_of(nhead)))
}

/// Where to split a leaf that cannot take a new entry for `origin` at index `i`:
/// in a run of ascending chunks, after the last entry when `origin` directly
/// follows it (the full leaf stays full and the next ones fill up behind it);
/// else the median when there are two entries or more; otherwise between the
/// lone entry and the new one.
fn split_for_new(leaf: &Leaf, origin: u64, i: usize, order: Order) -> Option<(usize, u64)> {
    let count = leaf.count();
    match count {
        0 => None,
        1 if i == 0 => Some((0, leaf.origin_of(0))),
        1 => Some((1, origin)),
        _ if order == Order::Ascending
            && i == count
            && leaf.origin_of(count - 1).checked_add(1) == Some(origin) =>
        {
            Some((count, origin))
        }
        _ => median_or(leaf, i),
    }
}
