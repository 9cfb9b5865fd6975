//! Reading a shared store as a migration input: the header is checked, then
//! the tree is streamed leaf by leaf in origin order. Every structural rule a
//! migration relies on is checked on the way (keys in order and in range, share
//! masks non-zero, inside `snapmask` and disjoint, every chunk in the data range
//! and used once), and a store that breaks one is refused as damaged.

use std::collections::HashMap;

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::{Error, FormatError};
use crate::job::{EntrySource, InEntry, InRecord, JobError};
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;
use crate::shared::open::{self, OpenError, OpenStore, Policy};
use crate::shared::walk::{BlockAt, Tree, TreeVisitor, WalkProblem};

/// An undamaged shared store opened read-only for a migration (strictly: see
/// [`SharedInput::open`]); its device, header and geometry are
/// [`OpenStore`]'s.
#[derive(Debug)]
pub struct SharedInput(OpenStore);

impl std::ops::Deref for SharedInput {
    type Target = OpenStore;

    fn deref(&self) -> &OpenStore {
        &self.0
    }
}

/// Counts of one walk over the tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Nodes read.
    pub nodes: u64,
    /// Leaves read.
    pub leaves: u64,
    /// Origin chunks with records.
    pub entries: u64,
    /// Records (each holds one data chunk).
    pub records: u64,
    /// Records seen by more than one snapshot.
    pub shared_records: u64,
}

impl SharedInput {
    /// Opens the shared store on `device`: the header must name a valid store
    /// whose tree root lies in the data range.
    pub fn open(device: Device) -> Result<Self, JobError> {
        let path = device.path();
        let opened = open::open(&device, Policy::Strict).map_err(|e| match e {
                OpenError::Unreadable(e) => JobError::from(e),
                OpenError::ChunkSize(e) => damage_format(path, e),
                OpenError::Invalidated => JobError::Damage(format!(
                    "{}: the store is marked invalid (header valid=0), so its snapshots cannot be read",
                    path.display()
                )),
                OpenError::DoesNotFit(geometry) => JobError::Damage(format!(
                    "{}: the header's {} bitmap and {} journal chunks do not fit the device's {} chunks",
                    path.display(),
                    geometry.nr_bitmap_chunks,
                    geometry.nr_journal_chunks,
                    geometry.nr_chunks
                )),
                OpenError::Root(problem) => {
                    JobError::Damage(format!("{}: header {problem}", path.display()))
                }
            })?;
        Ok(SharedInput(OpenStore::new(device, opened)))
    }

    /// Walks the whole tree, checking it, and returns its counts.
    pub fn survey(&self) -> Result<TreeStats, JobError> {
        let mut entries = self.entries(u64::MAX)?;
        while entries.next_entry()?.is_some() {}
        Ok(entries.stats)
    }

    /// Streams the entries in origin order, keeping only the snapshots in
    /// `filter` (records and entries left with no snapshot are skipped).
    pub(crate) fn entries(&self, filter: u64) -> Result<SharedEntries<'_>, JobError> {
        let mut walk = SharedEntries {
            input: self,
            filter,
            leaves: Vec::new(),
            next_leaf: 0,
            current: Vec::new(),
            next_in_leaf: 0,
            seen: DenseBitmap::new(self.geometry.nr_chunks),
            last_origin: None,
            buf: vec![0; self.geometry.chunk_bytes as usize],
            stats: TreeStats::default(),
        };
        walk.collect_leaves()?;
        Ok(walk)
    }

    fn damage(&self, chunk: u64, what: &str, detail: impl std::fmt::Display) -> JobError {
        JobError::Damage(format!(
            "{}: chunk {chunk} ({what}): {detail}; the store is damaged (cowcheck tells more)",
            self.device.path().display()
        ))
    }
}

fn damage_format(path: &std::path::Path, e: FormatError) -> JobError {
    JobError::Damage(format!("{}: {e}", path.display()))
}

/// A leaf still to read, with the key range its parent gives it.
#[derive(Debug, Clone, Copy)]
struct LeafAt {
    chunk: u64,
    lo: u64,
    hi: u64,
}

/// The entries of a [`SharedInput`] in origin order (see [`SharedInput::entries`]).
#[derive(Debug)]
pub(crate) struct SharedEntries<'a> {
    input: &'a SharedInput,
    filter: u64,
    leaves: Vec<LeafAt>,
    next_leaf: usize,
    current: Vec<InEntry>,
    next_in_leaf: usize,
    seen: DenseBitmap,
    last_origin: Option<u64>,
    buf: Vec<u8>,
    pub(crate) stats: TreeStats,
}

impl SharedEntries<'_> {
    fn claim(&mut self, chunk: u64, what: &str) -> Result<(), JobError> {
        let input = self.input;
        if let Some(role) = input.geometry.reserved_role(chunk) {
            return Err(input.damage(chunk, what, format!("lies outside the data range ({role})")));
        }
        if self.seen.test_and_set(chunk) {
            return Err(input.damage(chunk, what, "is used twice"));
        }
        Ok(())
    }

    /// Finds the leaves through the tree walk, checking every node on the way;
    /// the leaves themselves are claimed and read later, one at a time.
    fn collect_leaves(&mut self) -> Result<(), JobError> {
        let input = self.input;
        let mut collector = LeafCollector {
            entries: self,
            ranges: HashMap::new(),
            failure: None,
        };
        let walked = Tree::of(&input.device, &input.geometry, &input.header).walk(&mut collector);
        match (collector.failure, walked) {
            (Some(failure), _) => Err(failure),
            (None, walked) => walked.map(drop).map_err(JobError::from),
        }
    }

    fn read_leaf(&mut self, at: LeafAt) -> Result<(), JobError> {
        let input = self.input;
        self.claim(at.chunk, "a leaf")?;
        input.device.read_chunk(at.chunk, &mut self.buf)?;
        let leaf = Leaf::decode(&self.buf).map_err(|e| input.damage(at.chunk, "a leaf", e))?;
        self.stats.leaves += 1;
        let snapmask = input.header.snapmask;
        self.current.clear();
        self.next_in_leaf = 0;
        for (i, (origin, records)) in leaf.entries().enumerate() {
            let bad = |detail: String| {
                input.damage(
                    at.chunk,
                    "a leaf",
                    format!("entry {i} (origin chunk {origin}): {detail}"),
                )
            };
            if self.last_origin.is_some_and(|last| origin <= last)
                || origin < at.lo
                || origin >= at.hi
            {
                return Err(bad(format!("out of order or outside {}..{}", at.lo, at.hi)));
            }
            if records.is_empty() {
                return Err(bad("has no record".to_string()));
            }
            self.last_origin = Some(origin);
            let mut covered = 0u64;
            let mut kept = Vec::with_capacity(records.len());
            for r in records {
                if r.share == 0 || r.share & !snapmask != 0 || r.share & covered != 0 {
                    return Err(bad(format!(
                        "share mask {:#x} is empty, outside snapmask {:#x} or overlaps another record's",
                        r.share, snapmask
                    )));
                }
                covered |= r.share;
                self.claim(r.chunk, "a data chunk")?;
                if r.share & self.filter != 0 {
                    kept.push(InRecord {
                        mask: r.share & self.filter,
                        dev: 0,
                        chunk: r.chunk,
                    });
                }
            }
            self.stats.entries += 1;
            self.stats.records += records.len() as u64;
            self.stats.shared_records +=
                records.iter().filter(|r| r.share.count_ones() > 1).count() as u64;
            if !kept.is_empty() {
                self.current.push(InEntry {
                    origin,
                    records: kept,
                });
            }
        }
        Ok(())
    }
}

/// The tree walk's visitor for [`SharedEntries::collect_leaves`]: claims and
/// counts the nodes, checks each node entry's key just before the walk goes
/// below it, and queues the leaves.
struct LeafCollector<'e, 'a> {
    entries: &'e mut SharedEntries<'a>,
    /// The key range of every node read, by chunk.
    ranges: HashMap<u64, (u64, u64)>,
    /// The damage that ended the walk.
    failure: Option<JobError>,
}

impl LeafCollector<'_, '_> {
    /// Stops the walk with `failure`.
    fn fail(&mut self, failure: JobError) -> crate::error::Result<()> {
        self.failure = Some(failure);
        Err(Error::Invalid(
            "the migration input's tree walk stopped".into(),
        ))
    }

    /// Checks the key of the parent's entry that leads to `at`.
    fn check_entry(&mut self, at: &BlockAt) -> crate::error::Result<()> {
        let Some((parent, i)) = at.parent else {
            return Ok(());
        };
        let (lo, hi) = self.ranges.get(&parent).copied().unwrap_or((0, u64::MAX));
        if at.lo >= at.hi || (i > 0 && (at.lo < lo || at.lo >= hi)) {
            let input = self.entries.input;
            return self.fail(input.damage(
                parent,
                "a tree node",
                format!(
                    "entry {i}: key {} is out of order or outside {lo}..{hi}",
                    at.lo
                ),
            ));
        }
        Ok(())
    }

    fn queue_leaf(&mut self, at: &BlockAt) {
        self.entries.leaves.push(LeafAt {
            chunk: at.chunk,
            lo: at.lo,
            hi: at.hi,
        });
    }

    /// A node chunk the walk reached before: a node (used twice), or a leaf
    /// not claimed yet, which is read as the node its parent says it is.
    fn node_reached_again(&mut self, at: &BlockAt) -> crate::error::Result<()> {
        let input = self.entries.input;
        if self.entries.seen.test_and_set(at.chunk) {
            return self.fail(input.damage(at.chunk, "a tree node", "is used twice"));
        }
        input.device.read_chunk(at.chunk, &mut self.entries.buf)?;
        let detail = match Node::decode(&self.entries.buf) {
            Err(e) => e.to_string(),
            Ok(_) => "is used twice".to_string(),
        };
        self.fail(input.damage(at.chunk, "a tree node", detail))
    }
}

impl TreeVisitor for LeafCollector<'_, '_> {
    fn node(&mut self, at: &BlockAt, _node: &Node) -> crate::error::Result<()> {
        self.check_entry(at)?;
        self.entries.seen.test_and_set(at.chunk);
        self.entries.stats.nodes += 1;
        self.ranges.insert(at.chunk, (at.lo, at.hi));
        Ok(())
    }

    fn leaf(&mut self, _at: &BlockAt, _leaf: &Leaf) -> crate::error::Result<()> {
        Ok(())
    }

    fn leaf_reached(&mut self, at: &BlockAt) -> crate::error::Result<bool> {
        self.check_entry(at)?;
        self.queue_leaf(at);
        Ok(false)
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> crate::error::Result<()> {
        self.check_entry(at)?;
        if at.level == 0 {
            // Claimed when it is read, in stream order, as every leaf is.
            self.queue_leaf(at);
            return Ok(());
        }
        let input = self.entries.input;
        match problem {
            WalkProblem::OutOfRange { role } => self.fail(input.damage(
                at.chunk,
                "a tree node",
                format!("lies outside the data range ({role})"),
            )),
            WalkProblem::Revisited => self.node_reached_again(at),
            WalkProblem::BadNode(e) => self.fail(input.damage(at.chunk, "a tree node", e)),
            WalkProblem::BadLeaf(e) => self.fail(input.damage(at.chunk, "a leaf", e)),
        }
    }
}

impl EntrySource for SharedEntries<'_> {
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
        loop {
            if self.next_in_leaf < self.current.len() {
                let entry = std::mem::replace(
                    &mut self.current[self.next_in_leaf],
                    InEntry {
                        origin: 0,
                        records: Vec::new(),
                    },
                );
                self.next_in_leaf += 1;
                return Ok(Some(entry));
            }
            let Some(&at) = self.leaves.get(self.next_leaf) else {
                return Ok(None);
            };
            self.next_leaf += 1;
            self.read_leaf(at)?;
        }
    }
}
