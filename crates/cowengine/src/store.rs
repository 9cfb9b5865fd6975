//! The shared store engine over image files or block devices: snapshots are
//! created and deleted, origin writes copy out the chunks that snapshots still
//! need, snapshots read and write their own view. Metadata changes stay in memory
//! until [`SharedStore::commit`] writes them back in one step.

use std::path::Path;

use cowfmt::blockdev::BlockDev;
use cowfmt::device::Device;
use cowfmt::error::{Error, FormatError, Result};
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::format::format_store;
use cowfmt::shared::geometry::{validate_chunk_size, Geometry};
use cowfmt::shared::header::{SharedHeader, HEADER_BYTES};
use cowfmt::shared::leaf::{max_snapshots, Exception};
use cowfmt::shared::mask::{self, MAX_SNAPSHOTS};

use crate::alloc::Allocator;
use crate::btree::Tree;
use crate::cache::BlockCache;

/// How to format a new store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Chunk size in sectors (512 B to 1 MiB, a power of two).
    pub chunk_sectors: u64,
    /// Journal chunks reserved after the bitmap.
    pub journal_chunks: u64,
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
#[derive(Debug)]
pub struct SharedStore<D: BlockDev = Device> {
    header: SharedHeader,
    geometry: Geometry,
    origin: D,
    origin_chunks: u64,
    tree: Tree<D>,
    buf: Vec<u8>,
}

impl<D: BlockDev> SharedStore<D> {
    /// Formats `cow` as an empty shared store for `origin` and opens it.
    pub fn create(cow: D, origin: D, options: &CreateOptions) -> Result<Self> {
        format_store(&cow, options.chunk_sectors, options.journal_chunks)?;
        SharedStore::open(cow, origin)
    }

    /// Opens the shared store on `cow` for `origin`.
    pub fn open(cow: D, origin: D) -> Result<Self> {
        let mut first = [0u8; HEADER_BYTES];
        cow.read_at(&mut first, 0, &|| "the shared store header".to_string())?;
        let header = SharedHeader::decode(&first).map_err(|e| Error::format(cow.path(), e))?;
        header
            .validate_identity()
            .and_then(|()| validate_chunk_size(u64::from(header.chunk_size)))
            .map_err(|e| Error::format(cow.path(), e))?;
        if header.valid == 0 {
            return Err(Error::Invalidated {
                path: cow.path().to_path_buf(),
            });
        }
        let geometry = Geometry::new(
            cow.size(),
            header.chunk_size,
            u64::from(header.nr_journal_chunks),
        );
        if !geometry.reserved_fits() {
            return Err(Error::format(
                cow.path(),
                FormatError::TooSmall {
                    what: format!(
                        "the header's {} bitmap and {} journal chunks",
                        geometry.nr_bitmap_chunks, geometry.nr_journal_chunks
                    ),
                    device_bytes: cow.size(),
                    needed_bytes: geometry.data_start() * geometry.chunk_bytes,
                },
            ));
        }
        if let Some(problem) = header.root_problem(&geometry) {
            return Err(Error::Corrupt {
                path: cow.path().to_path_buf(),
                chunk: 0,
                detail: format!("header {problem}"),
            });
        }
        let bitmap = ChunkBitmap::load(&cow, &geometry)?;
        let chunk_bytes = geometry.chunk_bytes as usize;
        let origin_chunks = origin.size().div_ceil(geometry.chunk_bytes);
        Ok(SharedStore {
            tree: Tree {
                cache: BlockCache::new(cow, &geometry),
                alloc: Allocator::new(&geometry, bitmap),
                root: header.root_tree_chunk,
                levels: header.tree_level,
            },
            header,
            geometry,
            origin,
            origin_chunks,
            buf: vec![0; chunk_bytes],
        })
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
        self.tree.copy_bit(mask::bit(parent), mask::bit(id))?;
        self.header.snapmask |= mask::bit(id);
        Ok(id)
    }

    /// Deletes snapshot `id`: its records go, chunks no snapshot needs any more
    /// are freed, and the tree shrinks. Returns the data chunks freed.
    pub fn delete_snapshot(&mut self, id: u32) -> Result<u64> {
        self.require(id)?;
        let freed = self.tree.remove_snapshot(mask::bit(id))?;
        self.header.snapmask &= !mask::bit(id);
        Ok(freed)
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

    fn require(&self, id: u32) -> Result<()> {
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
        Ok(self.copy_out_to(origin, data)?.is_some())
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
    fn copy_out_to(&mut self, origin: u64, data: CopyData) -> Result<Option<u64>> {
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
            let own = self.own_chunk(origin, bit)?;
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
        let records = self.tree.lookup(origin)?;
        let current = records.iter().find(|r| r.share & bit != 0).copied();
        if let Some(r) = current {
            if r.share == bit {
                self.check_in_place(origin, r.chunk)?;
                return Ok(r.chunk);
            }
        }
        let leaf = self.tree.prepare_insert(origin)?;
        let chunk = self.tree.alloc_chunk()?;
        match current {
            Some(r) => {
                let device = self.tree.cache.device();
                device.read_chunk(r.chunk, &mut self.buf)?;
                device.write_chunk(chunk, &self.buf)?;
                let lost = self.lost(origin);
                let leaf_block = self.tree.cache.leaf_mut(leaf)?;
                let i = leaf_block.find(origin).map_err(|_| lost)?;
                let range = leaf_block.record_range(i);
                for rec in &mut leaf_block.records[range] {
                    if rec.chunk == r.chunk {
                        rec.share &= !bit;
                    }
                }
            }
            None => {
                self.read_origin_chunk(origin)?;
                self.tree.cache.device().write_chunk(chunk, &self.buf)?;
            }
        }
        self.add_record(leaf, origin, Exception { share: bit, chunk })?;
        Ok(chunk)
    }

    fn lost(&self, origin: u64) -> Error {
        Error::Corrupt {
            path: self.path().to_path_buf(),
            chunk: self.tree.root,
            detail: format!("the records of origin chunk {origin} vanished from their leaf"),
        }
    }

    fn add_record(&mut self, leaf: u64, origin: u64, record: Exception) -> Result<()> {
        let block = self.tree.cache.leaf_mut(leaf)?;
        match block.find(origin) {
            Ok(i) => block.push_record(i, record),
            Err(i) => {
                let rchunk = (origin - block.base_chunk) as u32;
                block.insert_entry(i, rchunk, record);
            }
        }
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

    fn check_origin_chunk(&self, origin: u64) -> Result<()> {
        if origin >= self.origin_chunks {
            return Err(Error::Invalid(format!(
                "{}: origin chunk {origin} is past the end of the origin ({} chunks)",
                self.origin.path().display(),
                self.origin_chunks
            )));
        }
        Ok(())
    }

    fn check_span(&self, offset: u64, len: usize) -> Result<()> {
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

    /// Writes every change since the last commit: tree blocks, bitmap chunks,
    /// then the header, each step synced. This is the one step a write-ahead
    /// journal will wrap.
    pub fn commit(&mut self) -> Result<()> {
        self.tree.cache.write_dirty()?;
        self.tree
            .alloc
            .bitmap_mut()
            .write_dirty(self.tree.cache.device())?;
        let device = self.tree.cache.device();
        device.sync()?;
        let header = self.header();
        device.write_chunk(0, &header.to_chunk(self.geometry.chunk_bytes as usize))?;
        device.sync()?;
        self.header = header;
        self.origin.sync()
    }
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
