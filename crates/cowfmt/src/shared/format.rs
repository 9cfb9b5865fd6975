//! Writing a fresh shared store: header, bitmap, an empty journal (its
//! superblock with tail_seq 1), one empty
//! leaf and the root node above it.

use crate::blockdev::BlockDev;
use crate::error::{Error, FormatError, Result};
use crate::kind::SHARED_MAGIC;

use super::bitmap::ChunkBitmap;
use super::geometry::{validate_chunk_size, Geometry};
use super::header::{SharedHeader, SHARED_VERSION};
use super::journal::write_empty_journal;
use super::leaf::Leaf;
use super::node::{Node, NodeEntry};

/// The layout a fresh store will have, or why it cannot be formatted on a device
/// of `device_bytes`.
pub fn plan(
    device_bytes: u64,
    chunk_sectors: u64,
    nr_journal_chunks: u64,
) -> Result<Geometry, FormatError> {
    validate_chunk_size(chunk_sectors)?;
    if nr_journal_chunks > u64::from(u32::MAX) {
        return Err(FormatError::TooSmall {
            what: format!(
                "a journal of {nr_journal_chunks} chunks (the header holds at most 2^32-1)"
            ),
            device_bytes,
            needed_bytes: u64::MAX,
        });
    }
    let geometry = Geometry::new(device_bytes, chunk_sectors as u32, nr_journal_chunks);
    let needed = geometry.data_start() + 2;
    if geometry.nr_chunks < needed {
        return Err(FormatError::TooSmall {
            what: format!(
                "a shared store (header, {} bitmap, {} journal, a leaf and a root chunk)",
                geometry.nr_bitmap_chunks, nr_journal_chunks
            ),
            device_bytes,
            needed_bytes: needed * geometry.chunk_bytes,
        });
    }
    Ok(geometry)
}

/// Formats `device` as an empty shared store with no snapshots and returns its
/// header. The header is written last, after everything it points at is synced.
pub fn format_store<D: BlockDev + ?Sized>(
    device: &D,
    chunk_sectors: u64,
    nr_journal_chunks: u64,
) -> Result<SharedHeader> {
    let geometry = plan(device.size(), chunk_sectors, nr_journal_chunks)
        .map_err(|e| Error::format(device.path(), e))?;
    let chunk_bytes = geometry.chunk_bytes as usize;
    let leaf_chunk = geometry.data_start();
    let root_chunk = leaf_chunk + 1;

    let mut bitmap = ChunkBitmap::empty(&geometry);
    bitmap.set_range(0, root_chunk + 1);

    let mut buf = vec![0u8; chunk_bytes];
    Leaf::new(0).encode(&mut buf);
    device.write_chunk(leaf_chunk, &buf)?;
    Node {
        entries: vec![NodeEntry {
            key: 0,
            chunk: leaf_chunk,
        }],
        unused: 0,
    }
    .encode(&mut buf);
    device.write_chunk(root_chunk, &buf)?;
    bitmap.write_dirty(device)?;
    write_empty_journal(device, &geometry)?;
    device.sync()?;

    let header = SharedHeader {
        magic: SHARED_MAGIC,
        valid: 1,
        version: SHARED_VERSION,
        chunk_size: chunk_sectors as u32,
        root_tree_chunk: root_chunk,
        snapmask: 0,
        tree_level: 1,
        nr_journal_chunks: nr_journal_chunks as u32,
    };
    device.write_chunk(0, &header.to_chunk(chunk_bytes))?;
    device.sync()?;
    Ok(header)
}

/// Makes `len` bytes at `offset` read as zeros.
pub fn zero_range<D: BlockDev + ?Sized>(device: &D, offset: u64, len: u64) -> Result<()> {
    device.zero_range(offset, len)
}
