//! The allocation bitmap: one bit per chunk of the COW device, 1 = in use, in
//! ext2 bit order (chunk c is bit `c % 8` of byte `c / 8`, counted from bit 0).

use crate::blockdev::BlockDev;
use crate::error::Result;

use super::geometry::Geometry;

/// The whole bitmap of a store in memory, as the bytes of its bitmap chunks, with
/// the chunks changed since the last [`ChunkBitmap::take_dirty`].
#[derive(Debug, Clone)]
pub struct ChunkBitmap {
    bytes: Vec<u8>,
    chunk_bytes: usize,
    nr_chunks: u64,
    dirty: Vec<bool>,
}

impl ChunkBitmap {
    /// An all-free bitmap for `geometry` (every chunk marked dirty).
    pub fn empty(geometry: &Geometry) -> Self {
        let chunks = geometry.nr_bitmap_chunks as usize;
        ChunkBitmap {
            bytes: vec![0; chunks * geometry.chunk_bytes as usize],
            chunk_bytes: geometry.chunk_bytes as usize,
            nr_chunks: geometry.nr_chunks,
            dirty: vec![true; chunks],
        }
    }

    /// Reads every bitmap chunk of `geometry` from `device` in one sequential read.
    pub fn load<D: BlockDev + ?Sized>(device: &D, geometry: &Geometry) -> Result<Self> {
        let mut bitmap = ChunkBitmap::empty(geometry);
        bitmap.dirty.fill(false);
        device.read_at(&mut bitmap.bytes, geometry.chunk_bytes, &|| {
            format!(
                "the allocation bitmap ({} chunks)",
                geometry.nr_bitmap_chunks
            )
        })?;
        Ok(bitmap)
    }

    /// Builds a bitmap from raw bitmap-chunk bytes (as read from a device).
    pub fn from_bytes(geometry: &Geometry, bytes: Vec<u8>) -> Self {
        let chunks = geometry.nr_bitmap_chunks as usize;
        let mut bytes = bytes;
        bytes.resize(chunks * geometry.chunk_bytes as usize, 0);
        ChunkBitmap {
            bytes,
            chunk_bytes: geometry.chunk_bytes as usize,
            nr_chunks: geometry.nr_chunks,
            dirty: vec![false; chunks],
        }
    }

    /// Chunks on the device the bitmap describes.
    pub fn nr_chunks(&self) -> u64 {
        self.nr_chunks
    }

    /// Whether chunk `c` is marked in use. Bits past the bitmap read as clear.
    #[inline]
    pub fn is_used(&self, c: u64) -> bool {
        self.bytes
            .get((c / 8) as usize)
            .is_some_and(|b| b & (1 << (c % 8)) != 0)
    }

    /// Marks chunk `c` (inside the bitmap) in use or free.
    pub fn set(&mut self, c: u64, used: bool) {
        let byte = (c / 8) as usize;
        if used {
            self.bytes[byte] |= 1 << (c % 8);
        } else {
            self.bytes[byte] &= !(1 << (c % 8));
        }
        self.dirty[byte / self.chunk_bytes] = true;
    }

    /// Marks every chunk in `from..to` in use.
    pub fn set_range(&mut self, from: u64, to: u64) {
        for c in from..to {
            self.set(c, true);
        }
    }

    /// Chunks in `0..nr_chunks` marked in use.
    pub fn count_used(&self) -> u64 {
        let full_bytes = (self.nr_chunks / 8) as usize;
        let mut n: u64 = self.bytes[..full_bytes.min(self.bytes.len())]
            .iter()
            .map(|b| u64::from(b.count_ones()))
            .sum();
        for c in (full_bytes as u64 * 8)..self.nr_chunks {
            n += u64::from(self.is_used(c));
        }
        n
    }

    /// Bits at or past `nr_chunks` that are set (they describe no chunk).
    pub fn used_past_end(&self) -> Vec<u64> {
        let total = self.bytes.len() as u64 * 8;
        let mut out = Vec::new();
        let mut c = self.nr_chunks;
        while c < total {
            if c.is_multiple_of(8) && self.bytes[(c / 8) as usize] == 0 {
                c += 8;
                continue;
            }
            if self.is_used(c) {
                out.push(c);
            }
            c += 1;
        }
        out
    }

    /// The first chunk at or after `from` and before `to` that is free.
    pub fn next_free(&self, from: u64, to: u64) -> Option<u64> {
        let to = to.min(self.nr_chunks);
        let mut c = from;
        while c < to {
            if c.is_multiple_of(64) && c + 64 <= to {
                let i = (c / 8) as usize;
                let word = u64::from_le_bytes(self.bytes[i..i + 8].try_into().unwrap());
                if word == u64::MAX {
                    c += 64;
                    continue;
                }
                return Some(c + u64::from((!word).trailing_zeros()));
            }
            if !self.is_used(c) {
                return Some(c);
            }
            c += 1;
        }
        None
    }

    /// The bytes of bitmap chunk `i` (0-based; it lives at device chunk `1 + i`).
    pub fn chunk(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.chunk_bytes..(i + 1) * self.chunk_bytes]
    }

    /// The indices of bitmap chunks changed since the last call, and forgets them.
    pub fn take_dirty(&mut self) -> Vec<usize> {
        let out = (0..self.dirty.len()).filter(|&i| self.dirty[i]).collect();
        self.dirty.fill(false);
        out
    }

    /// Writes the changed bitmap chunks to `device`.
    pub fn write_dirty<D: BlockDev + ?Sized>(&mut self, device: &D) -> Result<()> {
        for i in self.take_dirty() {
            device.write_chunk(1 + i as u64, self.chunk(i))?;
        }
        Ok(())
    }

    /// The maximal runs `[start, end)` of chunks with the same state, in order.
    pub fn runs(&self) -> Vec<(u64, u64, bool)> {
        let mut runs = Vec::new();
        let mut start = 0;
        while start < self.nr_chunks {
            let used = self.is_used(start);
            let mut end = start + 1;
            while end < self.nr_chunks && self.is_used(end) == used {
                end += 1;
            }
            runs.push((start, end, used));
            start = end;
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry::new(512 * 5000, 1, 0)
    }

    #[test]
    fn bit_order_is_ext2() {
        let mut b = ChunkBitmap::empty(&geometry());
        b.set(0, true);
        b.set(9, true);
        b.set(4095, true);
        b.set(4096, true);
        assert_eq!(b.chunk(0)[0], 0b0000_0001);
        assert_eq!(b.chunk(0)[1], 0b0000_0010);
        assert_eq!(b.chunk(0)[511], 0b1000_0000);
        assert_eq!(b.chunk(1)[0], 0b0000_0001);
        assert_eq!(b.count_used(), 4);
    }

    #[test]
    fn next_free_skips_full_words_and_stops_at_the_end() {
        let mut b = ChunkBitmap::empty(&geometry());
        b.set_range(0, 130);
        assert_eq!(b.next_free(0, 5000), Some(130));
        b.set_range(130, 5000);
        assert_eq!(b.next_free(0, 5000), None);
        assert_eq!(b.next_free(0, 9000), None);
        assert_eq!(b.count_used(), 5000);
        assert!(b.used_past_end().is_empty());
    }

    #[test]
    fn bits_past_the_end_are_reported() {
        let mut b = ChunkBitmap::empty(&geometry());
        b.set(5001, true);
        assert_eq!(b.used_past_end(), vec![5001]);
        assert_eq!(b.count_used(), 0);
    }

    #[test]
    fn dirty_chunks_are_tracked() {
        let mut b = ChunkBitmap::from_bytes(&geometry(), vec![0; 1024]);
        assert!(b.take_dirty().is_empty());
        b.set(4100, true);
        assert_eq!(b.take_dirty(), vec![1]);
        assert!(b.take_dirty().is_empty());
    }

    #[test]
    fn runs_cover_the_device() {
        let mut b = ChunkBitmap::empty(&geometry());
        b.set_range(0, 3);
        b.set(10, true);
        assert_eq!(
            b.runs(),
            vec![
                (0, 3, true),
                (3, 10, false),
                (10, 11, true),
                (11, 5000, false)
            ]
        );
    }
}
