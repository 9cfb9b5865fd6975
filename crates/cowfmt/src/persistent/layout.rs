//! Layout arithmetic: where the header, the metadata areas and the data chunks of
//! a persistent store lie on the COW device.
//!
//! Chunk 0 is the header; area `a` is at chunk `1 + a * (epa + 1)` and the `epa`
//! chunks after it are data, where `epa` (exceptions per area) is the number of
//! 16-byte records in one chunk.

use serde::{Deserialize, Serialize};

use super::header::validate_chunk_size;
use super::record::RECORD_BYTES;
use crate::error::FormatError;
use crate::SECTOR_BYTES;

/// Chunks before area 0 (the header).
pub const HEADER_CHUNKS: u64 = 1;

/// The geometry of a persistent store: its chunk size and the size of its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    chunk_sectors: u32,
    device_bytes: u64,
}

impl Geometry {
    /// A geometry for a valid chunk size (see [`validate_chunk_size`]) on a device
    /// of `device_bytes`. The device may be too small to hold anything: callers
    /// that need area 0 check [`Geometry::holds_first_area`].
    pub fn new(chunk_sectors: u32, device_bytes: u64) -> Result<Self, FormatError> {
        validate_chunk_size(u64::from(chunk_sectors))?;
        Ok(Geometry {
            chunk_sectors,
            device_bytes,
        })
    }

    /// Chunk size in sectors.
    pub fn chunk_sectors(&self) -> u32 {
        self.chunk_sectors
    }

    /// Chunk size in bytes.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_sectors as usize * SECTOR_BYTES as usize
    }

    /// The device size in bytes.
    pub fn device_bytes(&self) -> u64 {
        self.device_bytes
    }

    /// The device size in sectors, as `dmsetup status` reports it.
    pub fn device_sectors(&self) -> u64 {
        self.device_bytes / SECTOR_BYTES
    }

    /// Whole chunks on the device (a partial last chunk is never used).
    pub fn device_chunks(&self) -> u64 {
        self.device_bytes / self.chunk_bytes() as u64
    }

    /// Records per metadata area: `chunk_bytes / 16`.
    pub fn exceptions_per_area(&self) -> u64 {
        (self.chunk_bytes() / RECORD_BYTES) as u64
    }

    /// Chunks from one area to the next: the area and its data chunks.
    pub fn stride(&self) -> u64 {
        self.exceptions_per_area() + 1
    }

    /// The chunk holding metadata area `area`.
    pub fn area_location(&self, area: u64) -> u64 {
        HEADER_CHUNKS + area.saturating_mul(self.stride())
    }

    /// Whether `chunk` holds the header or a metadata area.
    pub fn is_metadata_chunk(&self, chunk: u64) -> bool {
        chunk < HEADER_CHUNKS || (chunk - HEADER_CHUNKS).is_multiple_of(self.stride())
    }

    /// The area whose data stripe (or location) contains `chunk`; the header
    /// belongs to no area.
    pub fn area_of_chunk(&self, chunk: u64) -> Option<u64> {
        chunk
            .checked_sub(HEADER_CHUNKS)
            .map(|rel| rel / self.stride())
    }

    /// Whether area `area` lies inside the device.
    pub fn area_fits(&self, area: u64) -> bool {
        self.area_location(area) < self.device_chunks()
    }

    /// Whether the device holds the header and area 0 (the smallest store).
    pub fn holds_first_area(&self) -> bool {
        self.device_chunks() > HEADER_CHUNKS
    }

    /// Number of area locations that lie inside the device.
    pub fn areas_on_device(&self) -> u64 {
        self.device_chunks()
            .saturating_sub(HEADER_CHUNKS)
            .div_ceil(self.stride())
    }

    /// The kernel's `skip_metadata`: the first chunk at or after `chunk` that is
    /// not a metadata area (and not the header).
    pub fn skip_metadata(&self, chunk: u64) -> u64 {
        if chunk < HEADER_CHUNKS + 1 {
            HEADER_CHUNKS + 1
        } else if self.is_metadata_chunk(chunk) {
            chunk + 1
        } else {
            chunk
        }
    }

    /// How many data chunks (neither header nor metadata) lie below `chunk`.
    pub fn data_chunks_below(&self, chunk: u64) -> u64 {
        if chunk <= HEADER_CHUNKS {
            return 0;
        }
        let rel = chunk - HEADER_CHUNKS;
        let areas_started = rel.div_ceil(self.stride());
        rel - areas_started
    }

    /// The `index`-th data chunk of the device, counting from 0 in allocation order.
    pub fn nth_data_chunk(&self, index: u64) -> u64 {
        let epa = self.exceptions_per_area();
        HEADER_CHUNKS + (index / epa) * self.stride() + 1 + index % epa
    }

    /// Data chunks the device can hold while leaving room for the metadata areas
    /// they need, including the zeroed area the kernel writes after a full one.
    pub fn data_capacity(&self) -> u64 {
        let chunks = self.device_chunks();
        if chunks <= HEADER_CHUNKS + 1 {
            return 0;
        }
        // Largest n such that the allocator (next_free + 1 <= chunks) can hand out
        // n data chunks: the n-th data chunk must lie below the last chunk.
        let mut n = self.data_chunks_below(chunks);
        // The kernel needs area k+1 on disk when area k fills.
        let epa = self.exceptions_per_area();
        if n > 0 && n.is_multiple_of(epa) && !self.area_fits(n / epa) {
            n -= 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(chunk_sectors: u32, chunks: u64) -> Geometry {
        Geometry::new(chunk_sectors, chunks * chunk_sectors as u64 * 512).unwrap()
    }

    #[test]
    fn worked_example_from_the_format_notes() {
        let g = geo(16, 10_000);
        assert_eq!(g.exceptions_per_area(), 512);
        assert_eq!(g.stride(), 513);
        assert_eq!(g.area_location(0), 1);
        assert_eq!(g.area_location(1), 514);
        assert_eq!(g.area_location(2), 1027);
        assert!(g.is_metadata_chunk(0));
        assert!(g.is_metadata_chunk(1));
        assert!(!g.is_metadata_chunk(2));
        assert!(!g.is_metadata_chunk(513));
        assert!(g.is_metadata_chunk(514));
        assert!(!g.is_metadata_chunk(515));
    }

    #[test]
    fn area_boundaries_at_chunk_512_bytes() {
        let g = geo(1, 100);
        assert_eq!(g.exceptions_per_area(), 32);
        assert_eq!(g.stride(), 33);
        assert_eq!(g.area_of_chunk(0), None);
        assert_eq!(g.area_of_chunk(1), Some(0));
        assert_eq!(g.area_of_chunk(33), Some(0));
        assert_eq!(g.area_of_chunk(34), Some(1));
        assert_eq!(g.skip_metadata(0), 2);
        assert_eq!(g.skip_metadata(33), 33);
        assert_eq!(g.skip_metadata(34), 35);
        assert_eq!(g.areas_on_device(), 3); // areas at 1, 34, 67
        assert!(g.area_fits(2));
        assert!(!g.area_fits(3));
    }

    #[test]
    fn data_chunk_numbering() {
        let g = geo(8, 2048);
        assert_eq!(g.nth_data_chunk(0), 2);
        assert_eq!(g.nth_data_chunk(255), 257);
        assert_eq!(g.nth_data_chunk(256), 259);
        assert_eq!(g.data_chunks_below(2), 0);
        assert_eq!(g.data_chunks_below(258), 256);
        assert_eq!(g.data_chunks_below(259), 256);
        assert_eq!(g.data_chunks_below(260), 257);
        for i in [0u64, 1, 255, 256, 257, 1000] {
            let c = g.nth_data_chunk(i);
            assert!(!g.is_metadata_chunk(c));
            assert_eq!(g.data_chunks_below(c), i);
        }
    }

    #[test]
    fn capacity_matches_the_kernel_allocator() {
        // golden c: 64 chunks of 4 KiB hold 62 exceptions.
        assert_eq!(geo(8, 64).data_capacity(), 62);
        // golden b2: 512 chunks hold 256 + 254.
        assert_eq!(geo(8, 512).data_capacity(), 509);
        // exactly one full area and nowhere for area 1: the last record is lost.
        assert_eq!(geo(8, 258).data_capacity(), 255);
        assert_eq!(geo(8, 259).data_capacity(), 256);
        assert_eq!(geo(8, 1).data_capacity(), 0);
        assert_eq!(geo(8, 2).data_capacity(), 0);
        assert_eq!(geo(8, 3).data_capacity(), 1);
        assert_eq!(geo(8, 4).data_capacity(), 2);
    }
}
