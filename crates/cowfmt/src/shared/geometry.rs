//! Where everything lives on a shared store: header, bitmap, journal, and the
//! data range that the allocator hands out for nodes, leaves and copied chunks.

use serde::Serialize;

use crate::error::FormatError;
use crate::SECTOR_BYTES;

/// Smallest chunk size, in sectors (512 bytes).
pub const MIN_CHUNK_SECTORS: u32 = 1;
/// Largest chunk size, in sectors (1 MiB).
pub const MAX_CHUNK_SECTORS: u32 = 2048;
/// The journal size mkcow asks for when none is given.
pub const DEFAULT_JOURNAL_BYTES: u64 = 128 << 20;
/// The default journal never takes more than this fraction (1/n) of the device.
pub const DEFAULT_JOURNAL_DEVICE_FRACTION: u64 = 8;

/// Checks a chunk size in sectors: a power of two from 512 bytes to 1 MiB.
pub fn validate_chunk_size(sectors: u64) -> Result<(), FormatError> {
    let why = if sectors == 0 {
        "is zero; a shared store's chunk size is a power of two from 1 to 2048 sectors"
    } else if !sectors.is_power_of_two() {
        "is not a power of two; a shared store's chunk size is a power of two from 1 to 2048 sectors"
    } else if sectors > u64::from(MAX_CHUNK_SECTORS) {
        "is larger than the shared store's limit of 2048 sectors (1 MiB)"
    } else {
        return Ok(());
    };
    Err(FormatError::BadChunkSize { sectors, why })
}

/// The layout of a shared store of a given chunk size on a device of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Bytes per chunk.
    pub chunk_bytes: u64,
    /// Whole chunks on the device.
    pub nr_chunks: u64,
    /// Chunks of allocation bitmap, starting at chunk 1.
    pub nr_bitmap_chunks: u64,
    /// Chunks of journal, right after the bitmap.
    pub nr_journal_chunks: u64,
}

impl Geometry {
    /// The geometry for `chunk_sectors` (already validated) on a device of
    /// `device_bytes`, with a journal of `nr_journal_chunks`.
    pub fn new(device_bytes: u64, chunk_sectors: u32, nr_journal_chunks: u64) -> Self {
        let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
        let nr_chunks = device_bytes / chunk_bytes;
        Geometry {
            chunk_bytes,
            nr_chunks,
            nr_bitmap_chunks: bitmap_chunks_for(nr_chunks, chunk_bytes),
            nr_journal_chunks,
        }
    }

    /// Bits (chunks described) per bitmap chunk.
    pub fn bits_per_bitmap(&self) -> u64 {
        self.chunk_bytes * 8
    }

    /// The first journal chunk.
    pub fn journal_start(&self) -> u64 {
        1 + self.nr_bitmap_chunks
    }

    /// The first chunk the allocator may hand out.
    pub fn data_start(&self) -> u64 {
        self.journal_start() + self.nr_journal_chunks
    }

    /// Chunks in the data range (0 if the reserved chunks do not fit).
    pub fn data_chunks(&self) -> u64 {
        self.nr_chunks.saturating_sub(self.data_start())
    }

    /// Whether chunk `c` lies in the data range.
    pub fn in_data_range(&self, c: u64) -> bool {
        c >= self.data_start() && c < self.nr_chunks
    }

    /// The bitmap chunk that describes chunk `c`.
    pub fn bitmap_chunk_of(&self, c: u64) -> u64 {
        1 + c / self.bits_per_bitmap()
    }

    /// Whether the header, bitmap and journal fit the device.
    pub fn reserved_fits(&self) -> bool {
        self.data_start() <= self.nr_chunks
    }

    /// What a chunk outside the data range is: "header", "bitmap", "journal" or
    /// "past the end"; `None` inside the data range.
    pub fn reserved_role(&self, c: u64) -> Option<&'static str> {
        if c == 0 {
            Some("header")
        } else if c < self.journal_start() {
            Some("bitmap")
        } else if c < self.data_start() {
            Some("journal")
        } else if c >= self.nr_chunks {
            Some("past the end")
        } else {
            None
        }
    }

    /// Where chunk `c`, outside the data range, lies, as a phrase that follows
    /// "is": "the header", "in the allocation bitmap", "in the journal" or
    /// "past the end of the device (N chunks)".
    pub fn where_outside(&self, c: u64) -> String {
        match self.reserved_role(c) {
            Some("header") => "the header".to_string(),
            Some("bitmap") => "in the allocation bitmap".to_string(),
            Some("journal") => "in the journal".to_string(),
            _ => format!("past the end of the device ({} chunks)", self.nr_chunks),
        }
    }
}

/// Bitmap chunks needed for `nr_chunks` chunks of `chunk_bytes`.
pub fn bitmap_chunks_for(nr_chunks: u64, chunk_bytes: u64) -> u64 {
    nr_chunks.div_ceil(8).div_ceil(chunk_bytes)
}

/// The default journal for a new store: 128 MiB, but at most an eighth of the
/// device's chunks so that small devices keep most of their space for data
/// (0 for a chunk size of 0, which no store has).
pub fn default_journal_chunks(device_bytes: u64, chunk_bytes: u64) -> u64 {
    let Some(nr_chunks) = device_bytes.checked_div(chunk_bytes) else {
        return 0;
    };
    (DEFAULT_JOURNAL_BYTES / chunk_bytes).min(nr_chunks / DEFAULT_JOURNAL_DEVICE_FRACTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_chunks_at_boundaries() {
        assert_eq!(bitmap_chunks_for(0, 512), 0);
        assert_eq!(bitmap_chunks_for(1, 512), 1);
        assert_eq!(bitmap_chunks_for(4096, 512), 1);
        assert_eq!(bitmap_chunks_for(4097, 512), 2);
        assert_eq!(bitmap_chunks_for(32768, 4096), 1);
        assert_eq!(bitmap_chunks_for(32769, 4096), 2);
    }

    #[test]
    fn ranges_follow_each_other() {
        let g = Geometry::new(64 << 20, 8, 16);
        assert_eq!(g.chunk_bytes, 4096);
        assert_eq!(g.nr_chunks, 16384);
        assert_eq!(g.nr_bitmap_chunks, 1);
        assert_eq!(g.journal_start(), 2);
        assert_eq!(g.data_start(), 18);
        assert_eq!(g.data_chunks(), 16384 - 18);
        assert_eq!(g.reserved_role(0), Some("header"));
        assert_eq!(g.reserved_role(1), Some("bitmap"));
        assert_eq!(g.reserved_role(17), Some("journal"));
        assert_eq!(g.reserved_role(18), None);
        assert_eq!(g.reserved_role(16384), Some("past the end"));
        assert_eq!(g.bitmap_chunk_of(32767), 1);
        assert_eq!(g.bitmap_chunk_of(32768), 2);
    }

    #[test]
    fn partial_trailing_chunk_is_not_counted() {
        assert_eq!(Geometry::new(4096 * 3 + 100, 8, 0).nr_chunks, 3);
    }

    #[test]
    fn default_journal_is_capped() {
        assert_eq!(default_journal_chunks(64 << 30, 4096), 32768);
        assert_eq!(default_journal_chunks(64 << 20, 4096), 2048);
    }

    #[test]
    fn chunk_size_limits() {
        assert!(validate_chunk_size(1).is_ok());
        assert!(validate_chunk_size(2048).is_ok());
        assert!(validate_chunk_size(0).is_err());
        assert!(validate_chunk_size(3).is_err());
        assert!(validate_chunk_size(4096).is_err());
    }
}
