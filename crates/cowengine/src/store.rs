//! The shared store engine over image files or block devices: snapshots are
//! created and deleted, origin writes copy out the chunks that snapshots still
//! need, snapshots read and write their own view. Metadata changes stay in memory
//! until [`SharedStore::commit`] makes them durable in one step: one journal
//! transaction ([`crate::journal`]), or in place when the store has no usable
//! journal ([`SharedStore::commit_mode`]).

use std::path::Path;

use cowfmt::blockdev::BlockDev;
use cowfmt::device::Device;
use cowfmt::error::{Error, FormatError, Result};
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::format::format_store;
use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::header::SharedHeader;
use cowfmt::shared::journal::{replay, ReplayReport, Transaction, TxHeader};
use cowfmt::shared::leaf::{max_snapshots, Exception};
use cowfmt::shared::mask::{self, MAX_SNAPSHOTS};
use cowfmt::shared::open::{self, OpenError, OpenedHeader, Policy};

use crate::alloc::{Allocator, FreePolicy};
use crate::batch::BatchScratch;
use crate::btree::Tree;
use crate::cache::BlockCache;
use crate::commit::{CommitWork, Scratch};
use crate::copy_plan::PlanScratch;
use crate::journal::{Checkpointed, CommitMode, JournalWriter};

/// How to format a new store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Chunk size in sectors (512 B to 1 MiB, a power of two).
    pub chunk_sectors: u64,
    /// Journal chunks reserved after the bitmap.
    pub journal_chunks: u64,
}

/// What a snapshot's own chunk must be filled with before part of it is
/// written ([`SharedStore::plan_snapshot_chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Nothing: the chunk was already the snapshot's own.
    Nothing,
    /// The content of this COW chunk (the record the snapshot shared).
    Cow(u64),
    /// The content of this origin chunk (zero-padded past the origin's end).
    Origin(u64),
}

/// Whether a copy-out moves data or only records the exception (store
/// generators building metadata for benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyData {
    /// Read the origin chunk and write it to the new COW chunk.
    Yes,
    /// Allocate and record only.
    No,
}

/// An open shared store and its origin, both on devices of type `D` (image
/// files and block devices by default; any [`BlockDev`]).
///
/// Dropping it commits and checkpoints, best effort ([`SharedStore::close`]
/// reports errors).
#[derive(Debug)]
pub struct SharedStore<D: BlockDev = Device> {
    pub(crate) header: SharedHeader,
    geometry: Geometry,
    origin: D,
    origin_chunks: u64,
    pub(crate) tree: Tree<D>,
    buf: Vec<u8>,
    mode: CommitMode,
    journal: Option<JournalWriter>,
    durable: TxHeader,
    batch: u64,
    scratch: Scratch,
    pub(crate) batch_scratch: BatchScratch,
    pub(crate) plan_scratch: PlanScratch,
    failed: bool,
    closed: bool,
    auto_commit: bool,
    durable_batch: u64,
    transactions: u64,
    replayed: Option<ReplayReport>,
}

impl<D: BlockDev> SharedStore<D> {
    /// Formats `cow` as an empty shared store for `origin` and opens it.
    pub fn create(cow: D, origin: D, options: &CreateOptions) -> Result<Self> {
        format_store(&cow, options.chunk_sectors, options.journal_chunks)?;
        SharedStore::open(cow, origin)
    }

    /// Opens the shared store on `cow` for `origin`, replaying the committed
    /// transactions its journal holds first (a damaged journal superblock is
    /// refused).
    pub fn open(cow: D, origin: D) -> Result<Self> {
        let OpenedHeader { header, geometry } = open::open(&cow, Policy::StrictBeforeReplay)
            .map_err(|e| match e {
                OpenError::DoesNotFit(geometry) => Error::format(
                    cow.path(),
                    FormatError::TooSmall {
                        what: format!(
                            "the header's {} bitmap and {} journal chunks",
                            geometry.nr_bitmap_chunks, geometry.nr_journal_chunks
                        ),
                        device_bytes: cow.size(),
                        needed_bytes: geometry.data_start() * geometry.chunk_bytes,
                    },
                ),
                other => other.into_error(cow.path()),
            })?;
        let mode = CommitMode::of(&geometry);
        let mut header = header;
        let replayed = if geometry.nr_journal_chunks > 0 {
            let report = replay(&cow, &geometry)?;
            if report.transactions > 0 {
                header = read_header(&cow)?;
            }
            Some(report)
        } else {
            None
        };
        if let Some(problem) = header.root_problem(&geometry) {
            return Err(Error::Corrupt {
                path: cow.path().to_path_buf(),
                chunk: 0,
                detail: format!("header {problem}"),
            });
        }
        let journal = match mode {
            CommitMode::Journaled { .. } => Some(JournalWriter::open(&cow, &geometry)?),
            CommitMode::InPlace(_) => None,
        };
        let bitmap = ChunkBitmap::load(&cow, &geometry)?;
        let mut alloc = Allocator::new(&geometry, bitmap);
        if journal.is_some() {
            alloc.set_policy(FreePolicy::AfterCheckpoint);
        }
        let chunk_bytes = geometry.chunk_bytes as usize;
        let origin_chunks = origin.size().div_ceil(geometry.chunk_bytes);
        Ok(SharedStore {
            tree: Tree {
                cache: BlockCache::new(cow, &geometry),
                alloc,
                root: header.root_tree_chunk,
                levels: header.tree_level,
            },
            durable: TxHeader::from(&header),
            header,
            geometry,
            origin,
            origin_chunks,
            buf: vec![0; chunk_bytes],
            mode,
            journal,
            batch: 0,
            scratch: Scratch::default(),
            batch_scratch: BatchScratch::default(),
            plan_scratch: PlanScratch::default(),
            failed: false,
            closed: false,
            auto_commit: true,
            durable_batch: 0,
            transactions: 0,
            replayed,
        })
    }

    /// How commits are made durable: through the journal, or in place (not
    /// crash-safe) with the reason.
    pub fn commit_mode(&self) -> CommitMode {
        self.mode
    }

    /// What the replay at open did (`None` for a store without journal chunks).
    pub fn replayed(&self) -> Option<&ReplayReport> {
        self.replayed.as_ref()
    }

    /// The header as it will be written at the next commit.
    pub fn header(&self) -> SharedHeader {
        SharedHeader {
            root_tree_chunk: self.tree.root,
            tree_level: self.tree.levels,
            ..self.header
        }
    }

    /// The store's layout.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Bit s set: snapshot s exists.
    pub fn snapmask(&self) -> u64 {
        self.header.snapmask
    }

    /// Free chunks in the data range.
    pub fn free_chunks(&self) -> u64 {
        self.tree.alloc.free_chunks()
    }

    /// Chunks of the origin (a partial last chunk counts).
    pub fn origin_chunks(&self) -> u64 {
        self.origin_chunks
    }

    /// The COW device.
    pub fn cow_device(&self) -> &D {
        self.tree.cache.device()
    }

    /// The origin device.
    pub fn origin_device(&self) -> &D {
        &self.origin
    }

    /// The COW device's path.
    pub fn path(&self) -> &Path {
        self.tree.cache.device().path()
    }

    /// Creates snapshot `id`, or the lowest free id, and returns it. It sees the
    /// origin as it is now. Refused with [`Error::SnapshotLimit`] when the
    /// store already serves [`max_snapshots`] snapshots.
    pub fn create_snapshot(&mut self, id: Option<u32>) -> Result<u32> {
        let id = self.free_id(id)?;
        self.header.snapmask |= mask::bit(id);
        Ok(id)
    }

    /// Creates a snapshot (the lowest free id) that sees what snapshot `parent`
    /// sees now, and returns it. Refused like [`SharedStore::create_snapshot`]
    /// at the snapshot limit.
    pub fn create_snapshot_of(&mut self, parent: u32) -> Result<u32> {
        self.require(parent)?;
        let id = self.free_id(None)?;
        self.commit_if_full()?;
        let leaves = self.tree.leaves_using(mask::bit(parent))?;
        self.fit_one_transaction(leaves, || format!("a snapshot of snapshot {parent}"))?;
        self.tree.copy_bit(mask::bit(parent), mask::bit(id))?;
        self.header.snapmask |= mask::bit(id);
        Ok(id)
    }

    /// The id a new snapshot gets: `wanted`, or the lowest free one.
    fn free_id(&self, wanted: Option<u32>) -> Result<u32> {
        let taken = self.header.snapmask;
        match wanted {
            Some(id) if id >= MAX_SNAPSHOTS => {
                return Err(Error::Invalid(format!(
                    "{}: snapshot id {id} is out of range (0-63)",
                    self.path().display()
                )))
            }
            Some(id) if taken & mask::bit(id) != 0 => {
                return Err(Error::Invalid(format!(
                    "{}: snapshot {id} already exists",
                    self.path().display()
                )))
            }
            _ => {}
        }
        self.check_snapshot_limit()?;
        Ok(wanted.unwrap_or_else(|| (!taken).trailing_zeros()))
    }

    /// One more snapshot must stay within [`max_snapshots`].
    fn check_snapshot_limit(&self) -> Result<()> {
        let live = self.header.snapmask.count_ones();
        let max = max_snapshots(self.geometry.chunk_bytes);
        if live < max {
            return Ok(());
        }
        Err(Error::SnapshotLimit {
            path: self.path().to_path_buf(),
            chunk_bytes: self.geometry.chunk_bytes,
            max,
            detail: format!("cannot create a snapshot: {live} snapshots exist"),
        })
    }

    pub(crate) fn require(&self, id: u32) -> Result<()> {
        if id >= MAX_SNAPSHOTS || self.header.snapmask & mask::bit(id) == 0 {
            return Err(Error::Invalid(format!(
                "{}: snapshot {id} does not exist (snapshots: {})",
                self.path().display(),
                mask::describe(self.header.snapmask)
            )));
        }
        Ok(())
    }

    /// The records of origin chunk `origin`.
    pub fn lookup(&mut self, origin: u64) -> Result<Vec<Exception>> {
        self.tree.lookup(origin)
    }

    /// Every `(origin chunk, records)` in origin order.
    pub fn exceptions(&mut self) -> Result<Vec<(u64, Vec<Exception>)>> {
        let mut out = Vec::new();
        self.tree
            .for_each(|origin, records| out.push((origin, records.to_vec())))?;
        Ok(out)
    }

    /// Calls `f(origin chunk, records)` for every origin chunk with records, in
    /// origin order, without collecting them.
    pub fn for_each_exception(&mut self, f: impl FnMut(u64, &[Exception])) -> Result<()> {
        self.tree.for_each(f)
    }

    /// Node levels above the leaves now (committed or not).
    pub fn tree_level(&self) -> u32 {
        self.tree.levels
    }

    /// Before origin chunk `origin` changes, copies it out for every snapshot
    /// that still sees the origin there. Returns whether a record was added.
    pub fn copy_out(&mut self, origin: u64, data: CopyData) -> Result<bool> {
        Ok(self.with_room(|s| s.copy_out_to(origin, data))?.is_some())
    }

    /// Runs `op`, one of the store's own operations (every record it makes
    /// names data already written): commits first when the changes so far
    /// approach the transaction bound, and when `op` finds the store full
    /// while freed chunks wait for a checkpoint, checkpoints and runs it again.
    fn with_room<T>(&mut self, mut op: impl FnMut(&mut Self) -> Result<T>) -> Result<T> {
        self.commit_if_full()?;
        match op(self) {
            Err(Error::StoreFull { .. }) if self.auto_commit && self.pending_frees() > 0 => {
                self.checkpoint()?;
                op(self)
            }
            other => other,
        }
    }

    /// Records the copy-out of origin chunk `origin` for every snapshot that
    /// still sees the origin there, without moving data, and returns the COW
    /// chunk the caller must copy the origin chunk to before the record is
    /// committed; `None` when no snapshot needs a copy.
    pub fn plan_copy_out(&mut self, origin: u64) -> Result<Option<u64>> {
        self.copy_out_to(origin, CopyData::No)
    }

    /// Where snapshot `id` reads origin chunk `origin` from: `Some(COW chunk)`,
    /// or `None` for the origin itself.
    pub fn resolve(&mut self, id: u32, origin: u64) -> Result<Option<u64>> {
        self.require(id)?;
        self.check_origin_chunk(origin)?;
        let bit = mask::bit(id);
        let found = self.tree.with_records(origin, |records| {
            records.iter().find(|r| r.share & bit != 0).map(|r| r.chunk)
        })?;
        match found {
            Some(chunk) => self.cow_offset(chunk, 0).map(|_| Some(chunk)),
            None => Ok(None),
        }
    }

    /// The copy-out of [`SharedStore::copy_out`], returning the chunk it recorded.
    pub(crate) fn copy_out_to(&mut self, origin: u64, data: CopyData) -> Result<Option<u64>> {
        self.check_origin_chunk(origin)?;
        let covered = self
            .tree
            .with_records(origin, |records| records.iter().fold(0, |m, r| m | r.share))?;
        let need = self.header.snapmask & !covered;
        if need == 0 {
            return Ok(None);
        }
        let leaf = self.tree.prepare_insert(origin)?;
        let chunk = self.tree.alloc_chunk()?;
        if data == CopyData::Yes {
            self.read_origin_chunk(origin)?;
            self.tree.cache.device().write_chunk(chunk, &self.buf)?;
        }
        self.add_record(leaf, origin, Exception { share: need, chunk })?;
        Ok(Some(chunk))
    }

    /// Writes `data` to the origin at byte `offset`, copying out first every
    /// chunk it touches.
    ///
    /// Not crash-safe on its own: the origin is written at once, after the
    /// copy-out's data but before any commit of its record, so a crash before
    /// the next [`SharedStore::commit`] can leave the origin chunk overwritten
    /// (if its write reached the disk) while the record naming the copy is
    /// lost: the snapshots then read the new data. It is safe once that commit
    /// is durable. [`SharedStore::origin_write_batch`] commits the copy-outs
    /// before it writes the origin, and is faster.
    pub fn origin_write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_span(offset, data.len())?;
        for (origin, _, _) in self.chunk_spans(offset, data.len()) {
            self.copy_out(origin, CopyData::Yes)?;
        }
        self.origin.write_at(data, offset)
    }

    /// Reads snapshot `id`'s view at byte `offset` into `buf`.
    pub fn snapshot_read(&mut self, id: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.require(id)?;
        self.check_span(offset, buf.len())?;
        let bit = mask::bit(id);
        let mut done = 0;
        for (origin, within, len) in self.chunk_spans(offset, buf.len()) {
            let out = &mut buf[done..done + len];
            match self
                .tree
                .lookup(origin)?
                .iter()
                .find(|r| r.share & bit != 0)
            {
                Some(r) => {
                    let at = self.cow_offset(r.chunk, within)?;
                    self.tree.cache.device().read_at(out, at, &|| {
                        format!("COW chunk {} of origin chunk {origin}", r.chunk)
                    })?
                }
                None => self.origin.read_at(
                    out,
                    origin * self.geometry.chunk_bytes + within,
                    &|| format!("origin chunk {origin}"),
                )?,
            }
            done += len;
        }
        Ok(())
    }

    /// Writes `data` into snapshot `id`'s view at byte `offset`: in place where
    /// the snapshot's record is its own, else into a new chunk of its own.
    pub fn snapshot_write(&mut self, id: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.require(id)?;
        self.check_span(offset, data.len())?;
        let bit = mask::bit(id);
        let mut done = 0;
        for (origin, within, len) in self.chunk_spans(offset, data.len()) {
            let own = self.with_room(|s| s.own_chunk(origin, bit))?;
            let at = self.cow_offset(own, within)?;
            self.tree
                .cache
                .device()
                .write_at(&data[done..done + len], at)?;
            done += len;
        }
        Ok(())
    }

    /// The byte offset of `within` in COW chunk `chunk`, a data chunk.
    fn cow_offset(&self, chunk: u64, within: u64) -> Result<u64> {
        chunk
            .checked_mul(self.geometry.chunk_bytes)
            .and_then(|start| start.checked_add(within))
            .filter(|_| self.geometry.in_data_range(chunk))
            .ok_or_else(|| Error::Corrupt {
                path: self.path().to_path_buf(),
                chunk,
                detail: format!(
                    "COW chunk {chunk} is outside the data range {}..{}",
                    self.geometry.data_start(),
                    self.geometry.nr_chunks
                ),
            })
    }

    /// Checks that `chunk`, a snapshot's own record of `origin`, can be written
    /// in place: marked in use, and not a tree block in the cache (a damaged
    /// record could name either).
    fn check_in_place(&mut self, origin: u64, chunk: u64) -> Result<()> {
        let unmarked = !self.tree.alloc.bitmap().is_used(chunk);
        if !unmarked && !self.tree.cache.contains(chunk) {
            return Ok(());
        }
        let what = if unmarked {
            "is free in the bitmap"
        } else {
            "is a tree block"
        };
        Err(Error::Corrupt {
            path: self.path().to_path_buf(),
            chunk: self.tree.leaf_for(origin)?,
            detail: format!(
                "the record of origin chunk {origin} names COW chunk {chunk}, which {what}"
            ),
        })
    }

    /// The COW chunk snapshot `bit` alone owns for `origin`, unsharing or copying
    /// the origin first when needed.
    fn own_chunk(&mut self, origin: u64, bit: u64) -> Result<u64> {
        let (chunk, fill) = self.own_chunk_plan(origin, bit)?;
        let copied = match fill {
            Fill::Nothing => Ok(()),
            Fill::Cow(from) => self.tree.cache.device().read_chunk(from, &mut self.buf),
            Fill::Origin(from) => self.read_origin_chunk(from),
        }
        .and_then(|()| match fill {
            Fill::Nothing => Ok(()),
            _ => self.tree.cache.device().write_chunk(chunk, &self.buf),
        });
        if copied.is_err() {
            self.fail();
        }
        copied.map(|()| chunk)
    }

    /// Makes snapshot `id` the only owner of a COW chunk for origin chunk
    /// `origin` (allocating and unsharing as [`SharedStore::snapshot_write`]
    /// does) without moving data: returns the chunk and what the caller must
    /// copy into it before writing part of it. The record is in the tree at
    /// once: the caller must write the chunk before any commit (count it as a
    /// copy in flight) and call [`SharedStore::fail`] if it cannot.
    pub fn plan_snapshot_chunk(&mut self, id: u32, origin: u64) -> Result<(u64, Fill)> {
        self.require(id)?;
        self.check_origin_chunk(origin)?;
        self.own_chunk_plan(origin, mask::bit(id))
    }

    /// The metadata half of [`SharedStore::own_chunk`].
    fn own_chunk_plan(&mut self, origin: u64, bit: u64) -> Result<(u64, Fill)> {
        let current = self.tree.with_records(origin, |records| {
            records.iter().find(|r| r.share & bit != 0).copied()
        })?;
        if let Some(r) = current {
            if r.share == bit {
                self.check_in_place(origin, r.chunk)?;
                return Ok((r.chunk, Fill::Nothing));
            }
        }
        let leaf = self.tree.prepare_insert(origin)?;
        let chunk = self.tree.alloc_chunk()?;
        let fill = match current {
            Some(r) => {
                let leaf_block = self.tree.cache.leaf_mut(leaf)?;
                let Ok(i) = leaf_block.find(origin) else {
                    return Err(self.lost(origin));
                };
                let range = leaf_block.record_range(i);
                for rec in &mut leaf_block.records[range] {
                    if rec.chunk == r.chunk {
                        rec.share &= !bit;
                    }
                }
                Fill::Cow(r.chunk)
            }
            None => Fill::Origin(origin),
        };
        self.add_record(leaf, origin, Exception { share: bit, chunk })?;
        Ok((chunk, fill))
    }

    /// Marks the store failed: data a record names could not be written, so
    /// no further commit may make that record durable (reopen the store).
    pub fn fail(&mut self) {
        self.failed = true;
    }

    fn lost(&self, origin: u64) -> Error {
        Error::Corrupt {
            path: self.path().to_path_buf(),
            chunk: self.tree.root,
            detail: format!("the records of origin chunk {origin} vanished from their leaf"),
        }
    }

    fn add_record(&mut self, leaf: u64, origin: u64, record: Exception) -> Result<()> {
        crate::btree::add_record(self.tree.cache.leaf_mut(leaf)?, origin, record);
        Ok(())
    }

    /// Reads origin chunk `origin` into the buffer, zero-padding a partial last chunk.
    fn read_origin_chunk(&mut self, origin: u64) -> Result<()> {
        let start = origin * self.geometry.chunk_bytes;
        let len = (self.origin.size() - start).min(self.geometry.chunk_bytes) as usize;
        self.buf[len..].fill(0);
        self.origin.read_at(&mut self.buf[..len], start, &|| {
            format!("origin chunk {origin}")
        })
    }

    pub(crate) fn check_origin_chunk(&self, origin: u64) -> Result<()> {
        if origin >= self.origin_chunks {
            return Err(Error::Invalid(format!(
                "{}: origin chunk {origin} is past the end of the origin ({} chunks)",
                self.origin.path().display(),
                self.origin_chunks
            )));
        }
        Ok(())
    }

    pub(crate) fn check_span(&self, offset: u64, len: usize) -> Result<()> {
        check_origin_span(&self.origin, offset, len)
    }

    /// `(origin chunk, offset within it, length)` of each chunk `len` bytes at
    /// `offset` touch.
    fn chunk_spans(&self, offset: u64, len: usize) -> Vec<(u64, u64, usize)> {
        let cb = self.geometry.chunk_bytes;
        let mut spans = Vec::new();
        let mut at = offset;
        let end = offset + len as u64;
        while at < end {
            let within = at % cb;
            let n = (cb - within).min(end - at);
            spans.push((at / cb, within, n as usize));
            at += n;
        }
        spans
    }

    /// Makes every change since the last commit durable, then syncs the
    /// origin: one journal transaction (data first, then descriptor and
    /// images, sync, commit record, sync; then the images go home), or, in
    /// place, tree blocks and bitmap chunks, sync, header, sync. After a
    /// failed commit the store refuses further commits (reopen it).
    pub fn commit(&mut self) -> Result<()> {
        self.commit_metadata()?;
        self.origin.sync()
    }

    /// [`SharedStore::commit`] without the origin's sync.
    pub(crate) fn commit_metadata(&mut self) -> Result<()> {
        if let Some(mut work) = self.begin_commit()? {
            let written = work.write(self.tree.cache.device());
            self.finish_commit(work, written)?;
        }
        Ok(())
    }

    /// Captures every change since the last commit as one transaction to
    /// write outside the caller's lock ([`CommitWork::write`]), then handed
    /// back to [`SharedStore::finish_commit`]; `None` when nothing changed.
    /// The caller must make sure that the data chunks of every record are
    /// written (no copy-out in flight) and that no other commit is under way.
    pub fn begin_commit(&mut self) -> Result<Option<CommitWork>> {
        if self.failed {
            return Err(self.refused());
        }
        if self.mode.journaled() && self.journal.is_none() {
            return Err(self.busy());
        }
        let header = TxHeader::from(&self.header());
        let Scratch {
            mut homes,
            mut images,
            mut changed,
        } = std::mem::take(&mut self.scratch);
        homes.clear();
        images.clear();
        let cb = self.geometry.chunk_bytes as usize;
        self.tree.alloc.take_changed(&mut changed);
        for &i in &changed {
            homes.push(1 + i as u64);
            let at = images.len();
            images.resize(at + cb, 0);
            self.tree.alloc.bitmap_image(i, &mut images[at..]);
        }
        self.tree.cache.capture(&mut homes, &mut images);
        self.batch += 1;
        if homes.is_empty() && header == self.durable {
            self.scratch = Scratch {
                homes,
                images,
                changed,
            };
            self.tree.alloc.captured_durable();
            self.durable_batch = self.batch;
            return Ok(None);
        }
        let journal = self.journal.take();
        let seq = journal.as_ref().map_or(0, JournalWriter::next_seq);
        Ok(Some(CommitWork {
            batch: self.batch,
            tx: Transaction {
                seq,
                header,
                homes,
                images,
            },
            base: self.header,
            journal,
            changed,
        }))
    }

    /// Takes back a transaction from [`SharedStore::begin_commit`] once
    /// written (or not: `written` is the outcome of [`CommitWork::write`]).
    pub fn finish_commit(&mut self, work: CommitWork, written: Result<Checkpointed>) -> Result<()> {
        let CommitWork {
            tx,
            journal,
            changed,
            batch: work_batch,
            ..
        } = work;
        if self.journal.is_none() {
            self.journal = journal;
        }
        let result = match written {
            Ok(Checkpointed::No) => {
                self.tree.alloc.captured_durable();
                Ok(())
            }
            Ok(Checkpointed::Before) => {
                self.tree.alloc.checkpointed();
                self.tree.alloc.captured_durable();
                Ok(())
            }
            Ok(Checkpointed::After) => {
                self.tree.alloc.captured_durable();
                self.tree.alloc.checkpointed();
                Ok(())
            }
            Err(e) => {
                self.tree.alloc.captured_failed();
                self.failed = true;
                Err(e)
            }
        };
        if result.is_ok() {
            self.durable = tx.header;
            self.durable_batch = self.durable_batch.max(work_batch);
            self.transactions += 1;
        }
        self.scratch = Scratch {
            homes: tx.homes,
            images: tx.images,
            changed,
        };
        result
    }

    /// Commits (the origin is not synced), then checkpoints: every
    /// transaction in the journal goes home and the log is emptied; chunks
    /// freed since become reusable.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.commit_metadata()?;
        if self.mode.journaled() {
            let Some(journal) = &mut self.journal else {
                return Err(self.busy());
            };
            journal.checkpoint(self.tree.cache.device(), &self.header)?;
            self.tree.alloc.checkpointed();
        }
        Ok(())
    }

    /// Commits, checkpoints (a cleanly closed store has an empty journal) and
    /// syncs both devices.
    pub fn close(mut self) -> Result<()> {
        self.closed = true;
        self.checkpoint()?;
        self.origin.sync()
    }

    /// Commits begun so far ([`SharedStore::begin_commit`]): a change made
    /// now is durable once [`SharedStore::durable_batch`] reaches
    /// `batch() + 1`.
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The last batch whose commit finished (durable).
    pub fn durable_batch(&self) -> u64 {
        self.durable_batch
    }

    /// Transactions written since the store was opened (journal transactions,
    /// or in-place commits); commits with nothing to write are not counted.
    pub fn transactions(&self) -> u64 {
        self.transactions
    }

    /// Whether the store's own operations may commit by themselves: when
    /// their changes approach the transaction bound, when the store is full
    /// while freed chunks wait for a checkpoint, and between the steps of a
    /// large delete. On by default; a caller that copies data outside the
    /// store ([`SharedStore::plan_copy_out`]) turns it off while copies may
    /// be in flight, and commits itself.
    pub fn set_auto_commit(&mut self, on: bool) {
        self.auto_commit = on;
    }

    /// Whether the store's own operations may commit by themselves.
    pub fn auto_commit(&self) -> bool {
        self.auto_commit
    }

    /// Whether the next commit should come now: the changes made since the
    /// last one, and the most the next operation may add, approach half the
    /// log. Always false in place.
    pub fn wants_commit(&self) -> bool {
        self.wants_commit_with(3 * self.tree.levels as usize + 6)
    }

    /// Whether the changes made since the last commit and `extra` more images
    /// would pass the transaction bound (false in place).
    pub(crate) fn wants_commit_with(&self, extra: usize) -> bool {
        let Some(journal) = &self.journal else {
            return false;
        };
        !journal
            .within_bound(self.tree.cache.dirty_count() + self.tree.alloc.changed_chunks() + extra)
    }

    /// Commits (without syncing the origin) when the changes so far approach
    /// the transaction bound. Only where every record's data is written (the
    /// store's own operations).
    pub(crate) fn commit_if_full(&mut self) -> Result<()> {
        if self.auto_commit && self.wants_commit() {
            self.commit_metadata()?;
        }
        Ok(())
    }

    /// Makes room for an operation that must be one transaction and changes
    /// `images` blocks: commits what is pending when both would not fit, and
    /// refuses, changing nothing, an operation larger than a transaction
    /// (a snapshot of a snapshot sets a bit in every leaf its parent uses; a
    /// crash between two parts would leave records of a snapshot that does
    /// not exist).
    fn fit_one_transaction(&mut self, images: usize, what: impl Fn() -> String) -> Result<()> {
        if !self.wants_commit_with(images) {
            return Ok(());
        }
        if self.auto_commit {
            self.commit_metadata()?;
            if !self.wants_commit_with(images) {
                return Ok(());
            }
        }
        let bound = self
            .journal
            .as_ref()
            .map_or(0, JournalWriter::max_transaction_chunks);
        Err(Error::Invalid(format!(
            "{}: {} changes {images} leaves, more than one journal transaction holds \
             ({bound} log chunks); nothing was changed: give the store a larger journal \
             (cowmigrate --to shared --journal-size)",
            self.path().display(),
            what()
        )))
    }

    /// Freed chunks that wait for a checkpoint before they can be reused.
    pub fn pending_frees(&self) -> u64 {
        self.tree.alloc.pending_frees()
    }

    fn busy(&self) -> Error {
        Error::Invalid(format!(
            "{}: a commit is already under way (begin_commit without finish_commit)",
            self.path().display()
        ))
    }

    fn refused(&self) -> Error {
        Error::Io {
            path: self.path().to_path_buf(),
            action: "commit refused",
            source: std::io::Error::other(
                "an earlier commit failed, so the store in memory is ahead of the disk; reopen it",
            ),
        }
    }
}

impl<D: BlockDev> Drop for SharedStore<D> {
    fn drop(&mut self) {
        if !self.closed && !self.failed {
            let _ = self.checkpoint().and_then(|()| self.origin.sync());
        }
    }
}

/// Reads and checks the store header of `cow`: identity, chunk size, valid.
fn read_header<D: BlockDev>(cow: &D) -> Result<SharedHeader> {
    let header = open::read_header(cow)?;
    open::check_identity(cow, &header, Policy::StrictBeforeReplay)
        .map_err(|e| e.into_error(cow.path()))?;
    Ok(header)
}

/// Refuses `len` bytes at `offset` that pass the end of `origin`.
pub(crate) fn check_origin_span<D: BlockDev>(origin: &D, offset: u64, len: usize) -> Result<()> {
    let size = origin.size();
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return Err(Error::Invalid(format!(
            "{}: {len} bytes at offset {offset} pass the end of the origin ({size} bytes)",
            origin.path().display()
        )));
    }
    Ok(())
}
