//! The logical image of a snapshot: every origin chunk reads from the origin
//! device unless an exception maps it, in which case it reads from the COW
//! device. This is what the snapshot device shows, and what repair and
//! migration must preserve.

use std::collections::HashMap;

use super::record::ExceptionRecord;
use super::store::PersistentStore;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::SECTOR_BYTES;

/// A read-only view of a snapshot: an origin device, a COW device and the
/// exceptions that map origin chunks to COW chunks. The snapshot is as long as
/// the origin.
#[derive(Debug)]
pub struct SnapshotView<'a> {
    origin: &'a Device,
    cow: &'a Device,
    chunk_bytes: u64,
    map: HashMap<u64, u64>,
}

impl<'a> SnapshotView<'a> {
    /// A view over `records` with chunks of `chunk_sectors`. When two records map
    /// the same origin chunk, the first one wins (as repair keeps the first).
    pub fn new(
        origin: &'a Device,
        cow: &'a Device,
        chunk_sectors: u32,
        records: impl IntoIterator<Item = ExceptionRecord>,
    ) -> Self {
        let mut map = HashMap::new();
        for record in records {
            map.entry(record.old_chunk).or_insert(record.new_chunk);
        }
        SnapshotView {
            origin,
            cow,
            chunk_bytes: u64::from(chunk_sectors) * SECTOR_BYTES,
            map,
        }
    }

    /// The view of an open store, with the records the kernel reads.
    pub fn of_store(origin: &'a Device, store: &'a PersistentStore) -> Result<Self> {
        let metadata = store.load()?;
        Ok(Self::new(
            origin,
            store.device(),
            metadata.geometry.chunk_sectors(),
            metadata.records.iter().map(|placed| placed.record),
        ))
    }

    /// The snapshot size in bytes (the origin's size).
    pub fn size_bytes(&self) -> u64 {
        self.origin.size_bytes()
    }

    /// The chunk size in bytes.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// Chunks of the snapshot, counting a partial last chunk.
    pub fn chunks(&self) -> u64 {
        self.size_bytes().div_ceil(self.chunk_bytes)
    }

    /// The COW chunk that holds origin chunk `chunk`, if an exception maps it.
    pub fn lookup(&self, chunk: u64) -> Option<u64> {
        self.map.get(&chunk).copied()
    }

    /// Reads `buf.len()` bytes of the snapshot at byte `offset`; the range must
    /// lie inside the snapshot.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size_bytes()) {
            return Err(Error::Invalid(format!(
                "snapshot of {}: {} bytes at offset {offset} lie past its end ({} bytes)",
                self.origin.path().display(),
                buf.len(),
                self.size_bytes()
            )));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let position = offset + done as u64;
            let chunk = position / self.chunk_bytes;
            let within = position % self.chunk_bytes;
            let len = ((self.chunk_bytes - within) as usize).min(buf.len() - done);
            let piece = &mut buf[done..done + len];
            match self.lookup(chunk) {
                Some(new_chunk) => {
                    let at = new_chunk
                        .checked_mul(self.chunk_bytes)
                        .and_then(|base| base.checked_add(within))
                        .unwrap_or(u64::MAX);
                    self.cow.read_at(piece, at, || {
                        format!("COW chunk {new_chunk} (snapshot chunk {chunk})")
                    })?
                }
                None => self
                    .origin
                    .read_at(piece, position, || format!("origin chunk {chunk}"))?,
            }
            done += len;
        }
        Ok(())
    }

    /// Reads snapshot chunk `chunk` into `buf` (one chunk long) and returns how
    /// many bytes belong to the snapshot; past its end (a partial last chunk)
    /// the buffer is zero-filled.
    pub fn read_chunk(&self, chunk: u64, buf: &mut [u8]) -> Result<usize> {
        let start = chunk.saturating_mul(self.chunk_bytes);
        let len = self
            .size_bytes()
            .saturating_sub(start)
            .min(buf.len() as u64) as usize;
        self.read_at(&mut buf[..len], start)?;
        buf[len..].fill(0);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Access;

    fn device(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> Device {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        Device::open(&path, Access::ReadOnly).unwrap()
    }

    #[test]
    fn mapped_chunks_read_from_the_cow_and_others_from_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        let origin_bytes: Vec<u8> = (0..2560u32).map(|i| (i / 512) as u8).collect();
        let mut cow_bytes = vec![0u8; 8 * 512];
        cow_bytes[3 * 512..4 * 512].fill(0xaa);
        cow_bytes[5 * 512..6 * 512].fill(0xbb);
        let origin = device(&dir, "origin", &origin_bytes);
        let cow = device(&dir, "cow", &cow_bytes);
        let records = [
            ExceptionRecord {
                old_chunk: 1,
                new_chunk: 3,
            },
            ExceptionRecord {
                old_chunk: 4,
                new_chunk: 5,
            },
            ExceptionRecord {
                old_chunk: 1,
                new_chunk: 5,
            },
        ];
        let view = SnapshotView::new(&origin, &cow, 1, records);
        assert_eq!(view.chunks(), 5);
        assert_eq!(view.lookup(1), Some(3));
        let mut image = vec![0u8; 2560];
        view.read_at(&mut image, 0).unwrap();
        assert!(image[..512].iter().all(|&b| b == 0));
        assert!(image[512..1024].iter().all(|&b| b == 0xaa));
        assert!(image[1024..1536].iter().all(|&b| b == 2));
        assert!(image[2048..].iter().all(|&b| b == 0xbb));
        let mut piece = [0u8; 4];
        view.read_at(&mut piece, 1022).unwrap();
        assert_eq!(piece, [0xaa, 0xaa, 2, 2]);
        assert!(view.read_at(&mut piece, 2558).is_err());
    }

    #[test]
    fn partial_last_chunk_is_zero_filled() {
        let dir = tempfile::tempdir().unwrap();
        let origin = device(&dir, "origin", &[7u8; 1536]);
        let cow = device(&dir, "cow", &[0u8; 4096]);
        let view = SnapshotView::new(&origin, &cow, 2, []);
        assert_eq!(view.chunks(), 2);
        let mut buf = [1u8; 1024];
        assert_eq!(view.read_chunk(1, &mut buf).unwrap(), 512);
        assert!(buf[..512].iter().all(|&b| b == 7));
        assert!(buf[512..].iter().all(|&b| b == 0));
    }
}
