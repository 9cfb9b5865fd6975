//! Opening a shared store for a dump: the header must be usable (magic,
//! version, chunk size, and a device large enough for the chunks it reserves);
//! nothing below the header is trusted.

use crate::device::Device;
use crate::dump_format::DUMP_FORMAT_VERSION;
use crate::error::{Error, FormatError, Result};
use crate::kind::StoreKind;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::mask;
use crate::shared::open::{self, OpenError, OpenStore, Policy};

use super::model::{ChunkRange, ShareMask, SharedDumpHead, SharedGeometry};

/// A shared store opened read-only for a dump (tolerantly: see
/// [`SharedSource::open`]); its device, header and geometry are
/// [`OpenStore`]'s.
#[derive(Debug)]
pub struct SharedSource(OpenStore);

impl std::ops::Deref for SharedSource {
    type Target = OpenStore;

    fn deref(&self) -> &OpenStore {
        &self.0
    }
}

impl SharedSource {
    /// Reads the header of `device` and works out the geometry. Fails on a magic
    /// or version that is not the shared store's, a chunk size that is not a power
    /// of two from 512 bytes to 1 MiB, or a device too small for the header,
    /// bitmap and journal the header describes.
    pub fn open(device: Device) -> Result<Self> {
        let opened = open::open(&device, Policy::Tolerant).map_err(|e| match e {
            OpenError::DoesNotFit(geometry) => Error::format(
                device.path(),
                FormatError::TooSmall {
                    what: format!(
                        "the header describes {}-byte chunks with {} bitmap and {} journal chunks",
                        geometry.chunk_bytes, geometry.nr_bitmap_chunks, geometry.nr_journal_chunks
                    ),
                    device_bytes: device.size_bytes(),
                    needed_bytes: geometry.data_start() * geometry.chunk_bytes,
                },
            ),
            other => other.into_error(device.path()),
        })?;
        Ok(SharedSource(OpenStore::new(device, opened)))
    }

    /// Reads the allocation bitmap.
    pub fn load_bitmap(&self) -> Result<ChunkBitmap> {
        ChunkBitmap::load(&self.device, &self.geometry)
    }

    /// Checks that snapshot `id` exists; the error names the ones that do.
    pub fn require_snapshot(&self, id: u32) -> Result<()> {
        if ShareMask(self.header.snapmask).contains(id) {
            return Ok(());
        }
        let existing = if self.header.snapmask == 0 {
            "the store has no snapshots".to_string()
        } else {
            format!("the snapshots are {}", mask::describe(self.header.snapmask))
        };
        Err(Error::Invalid(format!(
            "{}: snapshot {id} does not exist (snapmask {:#x}); {existing}",
            self.device.path().display(),
            self.header.snapmask
        )))
    }

    /// The head of a dump, with chunk counts from `bitmap`, and the snapshot
    /// whose view is dumped, if one is.
    pub fn head(&self, bitmap: &ChunkBitmap, snapshot: Option<u32>) -> SharedDumpHead {
        let g = &self.geometry;
        let h = &self.header;
        let used = bitmap.count_used();
        SharedDumpHead {
            format_version: DUMP_FORMAT_VERSION,
            kind: StoreKind::Shared,
            magic: format!("{:#010x}", h.magic),
            chunk_size: h.chunk_size,
            valid: h.valid != 0,
            valid_raw: h.valid,
            version: h.version,
            snapshots: ShareMask(h.snapmask),
            snapshot,
            tree_level: h.tree_level,
            root_tree_chunk: h.root_tree_chunk,
            journal_chunks: u64::from(h.nr_journal_chunks),
            device_sectors: self.device.size_sectors(),
            geometry: SharedGeometry {
                chunk_bytes: g.chunk_bytes,
                nr_chunks: g.nr_chunks,
                bitmap: ChunkRange {
                    start: 1,
                    end: g.journal_start(),
                },
                journal: ChunkRange {
                    start: g.journal_start(),
                    end: g.data_start(),
                },
                data: ChunkRange {
                    start: g.data_start(),
                    end: g.nr_chunks,
                },
            },
            used_chunks: used,
            free_chunks: g.nr_chunks - used,
        }
    }
}
