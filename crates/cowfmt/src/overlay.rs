//! Chunks a [`Device`](crate::device::Device) reads in place of its own
//! bytes, so that a job can read a store as a write would leave it without
//! writing: cowrepair reads a shared store whose journal holds committed
//! transactions through the images replay would write home.

use std::collections::BTreeMap;

/// Whole chunks of one size, by chunk number, read instead of the device's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    chunk_bytes: u64,
    chunks: BTreeMap<u64, Vec<u8>>,
}

impl Overlay {
    /// An empty overlay of chunks of `chunk_bytes` (at least 1).
    pub fn new(chunk_bytes: u64) -> Self {
        Overlay {
            chunk_bytes: chunk_bytes.max(1),
            chunks: BTreeMap::new(),
        }
    }

    /// Makes chunk `chunk` read as `bytes` (its first `chunk_bytes`, zero
    /// padded), replacing an earlier one.
    pub fn insert(&mut self, chunk: u64, bytes: &[u8]) {
        let mut owned = bytes.to_vec();
        owned.resize(self.chunk_bytes as usize, 0);
        self.chunks.insert(chunk, owned);
    }

    /// Chunks held.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether no chunk is held.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn overlapping(&self, offset: u64, len: u64) -> impl Iterator<Item = (u64, &Vec<u8>)> {
        let first = offset / self.chunk_bytes;
        let last = offset.saturating_add(len.max(1) - 1) / self.chunk_bytes;
        let cb = self.chunk_bytes;
        self.chunks
            .range(first..=last)
            .filter(move |_| len > 0)
            .map(move |(&c, bytes)| (c * cb, bytes))
    }

    /// Copies the held chunks' bytes over `buf`, read from `offset`.
    pub fn apply(&self, buf: &mut [u8], offset: u64) {
        let end = offset + buf.len() as u64;
        for (start, bytes) in self.overlapping(offset, buf.len() as u64) {
            let from = start.max(offset);
            let to = (start + self.chunk_bytes).min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]);
        }
    }

    /// `ranges` (sorted `[start, end)` byte ranges) joined with the held
    /// chunks inside `offset..offset+len`, sorted and merged.
    pub fn merge_ranges(&self, ranges: Vec<(u64, u64)>, offset: u64, len: u64) -> Vec<(u64, u64)> {
        let end = offset.saturating_add(len);
        let mut all = ranges;
        all.extend(
            self.overlapping(offset, len)
                .map(|(start, _)| (start.max(offset), (start + self.chunk_bytes).min(end))),
        );
        all.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(all.len());
        for (a, b) in all {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_the_held_chunks_in_part_and_in_whole() {
        let mut overlay = Overlay::new(4);
        overlay.insert(1, &[1, 2, 3, 4]);
        overlay.insert(3, &[9]);
        let mut buf = vec![0xffu8; 12];
        overlay.apply(&mut buf, 2);
        assert_eq!(buf, [0xff, 0xff, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 9, 0]);
        let mut one = [0u8; 1];
        overlay.apply(&mut one, 7);
        assert_eq!(one, [4]);
        let mut none = [0u8; 0];
        overlay.apply(&mut none, 4);
        assert_eq!(overlay.len(), 2);
    }

    #[test]
    fn held_chunks_count_as_data() {
        let mut overlay = Overlay::new(4);
        overlay.insert(1, &[1]);
        overlay.insert(5, &[1]);
        assert_eq!(
            overlay.merge_ranges(vec![(0, 6), (16, 18)], 0, 22),
            vec![(0, 8), (16, 18), (20, 22)]
        );
        overlay.insert(4, &[1]);
        assert_eq!(
            overlay.merge_ranges(vec![(0, 6), (16, 18)], 0, 22),
            vec![(0, 8), (16, 22)]
        );
        assert_eq!(overlay.merge_ranges(Vec::new(), 6, 2), vec![(6, 8)]);
    }

    #[test]
    fn a_device_reads_through_its_overlay_and_refuses_writes() {
        use crate::device::{Access, Device};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        std::fs::write(&path, vec![1u8; 4 * 512]).unwrap();
        let mut overlay = Overlay::new(512);
        overlay.insert(2, &[7u8; 512]);
        let dev = Device::open(&path, Access::ReadWrite)
            .unwrap()
            .with_overlay(overlay);
        assert!(dev.has_overlay());
        let mut buf = vec![0u8; 1024];
        dev.read_at(&mut buf, 1024 + 256, String::new).unwrap_err();
        dev.read_at(&mut buf, 512, String::new).unwrap();
        assert_eq!(&buf[..512], &[1u8; 512][..]);
        assert_eq!(&buf[512..], &[7u8; 512][..]);
        let err = dev.write_chunk(0, &[0u8; 512]).unwrap_err();
        assert!(err.to_string().contains("read through an overlay"), "{err}");
        dev.zero_range(0, 512).unwrap_err();
        assert_eq!(std::fs::read(&path).unwrap(), vec![1u8; 4 * 512]);
    }
}
