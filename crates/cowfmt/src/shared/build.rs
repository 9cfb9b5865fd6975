//! Writing a whole shared store in one pass from a sorted list of exceptions:
//! restore from a dump, repair, migration and compaction. Data chunks are
//! placed first (kept where they are, or handed out contiguously); the tree is
//! then bulk-loaded bottom-up with full leaves, and the header written last.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::SHARED_MAGIC;

use super::bitmap::ChunkBitmap;
use super::format::plan;
use super::geometry::Geometry;
use super::header::{SharedHeader, SHARED_VERSION};
use super::journal::write_empty_journal;
use super::leaf::{Exception, Leaf, MAP_ENTRY_BYTES, RECORD_BYTES};
use super::node::{node_capacity, Node, NodeEntry};

/// Places data chunks and then writes the tree of a new store on `device`.
#[derive(Debug)]
pub struct StoreBuilder<'a> {
    device: &'a Device,
    geometry: Geometry,
    chunk_sectors: u32,
    bitmap: ChunkBitmap,
    cursor: u64,
}

impl<'a> StoreBuilder<'a> {
    /// Starts a store of `chunk_sectors` with `journal_chunks` of journal on `device`.
    pub fn new(device: &'a Device, chunk_sectors: u64, journal_chunks: u64) -> Result<Self> {
        let geometry = plan(device.size_bytes(), chunk_sectors, journal_chunks)
            .map_err(|e| Error::format(device.path(), e))?;
        let mut bitmap = ChunkBitmap::empty(&geometry);
        bitmap.set_range(0, geometry.data_start());
        Ok(StoreBuilder {
            device,
            cursor: geometry.data_start(),
            geometry,
            chunk_sectors: chunk_sectors as u32,
            bitmap,
        })
    }

    /// The layout being written.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Claims data chunk `chunk` where it already is; refuses one outside the
    /// data range or claimed twice.
    pub fn claim(&mut self, chunk: u64) -> Result<()> {
        if !self.geometry.in_data_range(chunk) {
            return Err(Error::Invalid(format!(
                "{}: data chunk {chunk} is outside the data range {}..{}",
                self.device.path().display(),
                self.geometry.data_start(),
                self.geometry.nr_chunks
            )));
        }
        if self.bitmap.is_used(chunk) {
            return Err(Error::Invalid(format!(
                "{}: data chunk {chunk} is used twice",
                self.device.path().display()
            )));
        }
        self.bitmap.set(chunk, true);
        Ok(())
    }

    /// Hands out the next free chunk (data placed contiguously, then the tree).
    pub fn allocate(&mut self) -> Result<u64> {
        let found = self
            .bitmap
            .next_free(self.cursor, self.geometry.nr_chunks)
            .or_else(|| {
                self.bitmap
                    .next_free(self.geometry.data_start(), self.cursor)
            })
            .ok_or_else(|| Error::StoreFull {
                path: self.device.path().to_path_buf(),
                free: 0,
                needed: 1,
            })?;
        self.bitmap.set(found, true);
        self.cursor = found + 1;
        Ok(found)
    }

    /// Free chunks left in the data range.
    pub fn free_chunks(&self) -> u64 {
        self.geometry.nr_chunks - self.bitmap.count_used()
    }

    /// Ends data placement; the tree is written next, in origin order.
    pub fn into_tree(self) -> TreeWriter<'a> {
        TreeWriter {
            leaf: Leaf::new(0),
            level1: Vec::new(),
            buf: vec![0; self.geometry.chunk_bytes as usize],
            last_origin: None,
            records: 0,
            builder: self,
        }
    }
}

/// Bulk-loads the tree from `(origin chunk, records)` in ascending origin order.
#[derive(Debug)]
pub struct TreeWriter<'a> {
    builder: StoreBuilder<'a>,
    leaf: Leaf,
    level1: Vec<NodeEntry>,
    buf: Vec<u8>,
    last_origin: Option<u64>,
    records: u64,
}

/// What a finished build wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    /// The header written.
    pub header: SharedHeader,
    /// Leaves written.
    pub leaves: u64,
    /// Records written.
    pub records: u64,
}

impl TreeWriter<'_> {
    /// Adds the records of `origin`, which must be above every origin added so far.
    pub fn push(&mut self, origin: u64, records: &[Exception]) -> Result<()> {
        let path = self.builder.device.path();
        if self.last_origin.is_some_and(|last| last >= origin) {
            return Err(Error::Invalid(format!(
                "{}: origin chunk {origin} comes after {} (exceptions must ascend)",
                path.display(),
                self.last_origin.unwrap_or(0)
            )));
        }
        if records.is_empty() {
            return Ok(());
        }
        let chunk_bytes = self.buf.len();
        let extra = MAP_ENTRY_BYTES + RECORD_BYTES * records.len();
        let first_of_leaf = self.leaf.count() == 0;
        let fits_rchunk = origin - self.leaf.base_chunk <= u64::from(u32::MAX);
        if !first_of_leaf && (self.leaf.bytes_used() + extra > chunk_bytes || !fits_rchunk) {
            self.flush_leaf()?;
        }
        if self.leaf.count() == 0 {
            let first_leaf_fits_zero = self.level1.is_empty() && origin <= u64::from(u32::MAX);
            self.leaf = Leaf::new(if first_leaf_fits_zero { 0 } else { origin });
            if self.leaf.bytes_used() + extra > chunk_bytes {
                return Err(Error::Invalid(format!(
                    "{}: origin chunk {origin} has {} records, more than a leaf of {chunk_bytes} bytes holds",
                    path.display(),
                    records.len()
                )));
            }
        }
        let rchunk = (origin - self.leaf.base_chunk) as u32;
        let at = self.leaf.count();
        let mut rest = records.iter().rev();
        if let Some(&last) = rest.next() {
            self.leaf.insert_entry(at, rchunk, last);
        }
        for &r in rest {
            self.leaf.push_record(at, r);
        }
        self.last_origin = Some(origin);
        self.records += records.len() as u64;
        Ok(())
    }

    fn flush_leaf(&mut self) -> Result<()> {
        let chunk = self.builder.allocate()?;
        self.leaf.encode(&mut self.buf);
        self.builder.device.write_chunk(chunk, &self.buf)?;
        self.level1.push(NodeEntry {
            key: self.leaf.base_chunk,
            chunk,
        });
        self.leaf = Leaf::new(0);
        Ok(())
    }

    /// Writes the last leaf, the node levels, the bitmap, an empty journal (its
    /// superblock with tail_seq 1) and
    /// finally the header with `snapmask`.
    pub fn finish(mut self, snapmask: u64) -> Result<Built> {
        if self.leaf.count() > 0 || self.level1.is_empty() {
            self.flush_leaf()?;
        }
        let leaves = self.level1.len() as u64;
        let capacity = node_capacity(self.buf.len());
        let mut level = std::mem::take(&mut self.level1);
        let mut levels = 0u32;
        loop {
            let mut next = Vec::new();
            for group in level.chunks(capacity) {
                let chunk = self.builder.allocate()?;
                let mut node = Node {
                    entries: group.to_vec(),
                    unused: 0,
                };
                let key = node.entries[0].key;
                if next.is_empty() {
                    node.entries[0].key = 0;
                }
                node.encode(&mut self.buf);
                self.builder.device.write_chunk(chunk, &self.buf)?;
                next.push(NodeEntry {
                    key: if next.is_empty() { 0 } else { key },
                    chunk,
                });
            }
            levels += 1;
            level = next;
            if level.len() == 1 {
                break;
            }
        }
        let b = &mut self.builder;
        b.bitmap.write_dirty(b.device)?;
        let g = b.geometry;
        write_empty_journal(b.device, &g)?;
        b.device.sync()?;
        let header = SharedHeader {
            magic: SHARED_MAGIC,
            valid: 1,
            version: SHARED_VERSION,
            chunk_size: b.chunk_sectors,
            root_tree_chunk: level[0].chunk,
            snapmask,
            tree_level: levels,
            nr_journal_chunks: g.nr_journal_chunks as u32,
        };
        b.device
            .write_chunk(0, &header.to_chunk(g.chunk_bytes as usize))?;
        b.device.sync()?;
        Ok(Built {
            header,
            leaves,
            records: self.records,
        })
    }
}
