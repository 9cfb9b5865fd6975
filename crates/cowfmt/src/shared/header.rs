//! The shared store header in chunk 0: 40 bytes, the rest of the chunk zero.

use byteorder::{ByteOrder, LittleEndian};
use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::kind::SHARED_MAGIC;
use crate::shared::geometry::Geometry;

/// The deepest tree any tool accepts: every level needs at least a chunk of
/// its own, and with at least two children per node 64 levels already address
/// more than 2^64 origin chunks.
pub const MAX_TREE_LEVEL: u32 = 64;

/// Bytes of the header proper.
pub const HEADER_BYTES: usize = 40;
/// The only on-disk version this crate reads and writes.
pub const SHARED_VERSION: u32 = 1;

/// The header fields exactly as stored, unvalidated, so that a checker can see
/// wrong values instead of an error in their place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedHeader {
    /// `0x55378008` for a formatted store; 0 means "not formatted".
    pub magic: u32,
    /// 1 valid, 0 invalidated.
    pub valid: u32,
    /// Must be 1.
    pub version: u32,
    /// Chunk size in 512-byte sectors.
    pub chunk_size: u32,
    /// Chunk of the root node of the B-tree.
    pub root_tree_chunk: u64,
    /// Bit s set: snapshot s exists.
    pub snapmask: u64,
    /// Node levels above the leaves (1 for a fresh store).
    pub tree_level: u32,
    /// Chunks reserved for the journal after the bitmap.
    pub nr_journal_chunks: u32,
}

impl SharedHeader {
    /// Decodes the first 40 bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_BYTES {
            return Err(FormatError::ShortBuffer {
                what: "a shared store header",
                needed: HEADER_BYTES,
                got: bytes.len(),
            });
        }
        Ok(SharedHeader {
            magic: LittleEndian::read_u32(&bytes[0..4]),
            valid: LittleEndian::read_u32(&bytes[4..8]),
            version: LittleEndian::read_u32(&bytes[8..12]),
            chunk_size: LittleEndian::read_u32(&bytes[12..16]),
            root_tree_chunk: LittleEndian::read_u64(&bytes[16..24]),
            snapmask: LittleEndian::read_u64(&bytes[24..32]),
            tree_level: LittleEndian::read_u32(&bytes[32..36]),
            nr_journal_chunks: LittleEndian::read_u32(&bytes[36..40]),
        })
    }

    /// Encodes into the first 40 bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        LittleEndian::write_u32(&mut out[0..4], self.magic);
        LittleEndian::write_u32(&mut out[4..8], self.valid);
        LittleEndian::write_u32(&mut out[8..12], self.version);
        LittleEndian::write_u32(&mut out[12..16], self.chunk_size);
        LittleEndian::write_u64(&mut out[16..24], self.root_tree_chunk);
        LittleEndian::write_u64(&mut out[24..32], self.snapmask);
        LittleEndian::write_u32(&mut out[32..36], self.tree_level);
        LittleEndian::write_u32(&mut out[36..40], self.nr_journal_chunks);
    }

    /// A whole header chunk: the 40 header bytes, then zeros.
    pub fn to_chunk(&self, chunk_bytes: usize) -> Vec<u8> {
        let mut chunk = vec![0u8; chunk_bytes.max(HEADER_BYTES)];
        self.encode(&mut chunk);
        chunk
    }

    /// Checks magic and version.
    pub fn validate_identity(&self) -> Result<(), FormatError> {
        match self.magic {
            SHARED_MAGIC => {}
            0 => return Err(FormatError::Unformatted),
            found => {
                return Err(FormatError::WrongMagic {
                    kind: "shared",
                    found,
                    expected: SHARED_MAGIC,
                })
            }
        }
        if self.version != SHARED_VERSION {
            return Err(FormatError::BadVersion {
                found: self.version,
                expected: SHARED_VERSION,
            });
        }
        Ok(())
    }

    /// Why the root this header names cannot be walked under `geometry`, if
    /// it cannot: a `tree_level` outside 1 to [`MAX_TREE_LEVEL`], or a
    /// `root_tree_chunk` outside the data range. One phrase, naming the field.
    pub fn root_problem(&self, geometry: &Geometry) -> Option<String> {
        if self.tree_level == 0 || self.tree_level > MAX_TREE_LEVEL {
            return Some(format!(
                "tree_level {} (offset 32) is not between 1 and {MAX_TREE_LEVEL}",
                self.tree_level
            ));
        }
        if !geometry.in_data_range(self.root_tree_chunk) {
            return Some(format!(
                "root_tree_chunk {} (offset 16) is outside the data range {}..{}",
                self.root_tree_chunk,
                geometry.data_start(),
                geometry.nr_chunks
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SharedHeader {
        SharedHeader {
            magic: SHARED_MAGIC,
            valid: 1,
            version: 1,
            chunk_size: 8,
            root_tree_chunk: 0x0102_0304_0506_0708,
            snapmask: 0x8000_0000_0000_0001,
            tree_level: 3,
            nr_journal_chunks: 32768,
        }
    }

    #[test]
    fn fields_sit_at_their_offsets() {
        let chunk = sample().to_chunk(512);
        assert_eq!(chunk.len(), 512);
        assert_eq!(&chunk[0..4], &[0x08, 0x80, 0x37, 0x55]);
        assert_eq!(LittleEndian::read_u32(&chunk[12..16]), 8);
        assert_eq!(&chunk[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(chunk[31], 0x80);
        assert_eq!(LittleEndian::read_u32(&chunk[32..36]), 3);
        assert_eq!(LittleEndian::read_u32(&chunk[36..40]), 32768);
        assert!(chunk[40..].iter().all(|&b| b == 0));
    }

    #[test]
    fn round_trips() {
        let h = sample();
        assert_eq!(SharedHeader::decode(&h.to_chunk(4096)).unwrap(), h);
    }

    #[test]
    fn short_buffer_is_an_error() {
        assert!(matches!(
            SharedHeader::decode(&[0u8; 39]),
            Err(FormatError::ShortBuffer { needed: 40, .. })
        ));
    }

    #[test]
    fn identity_is_checked() {
        let mut h = sample();
        assert!(h.validate_identity().is_ok());
        h.version = 2;
        assert!(matches!(
            h.validate_identity(),
            Err(FormatError::BadVersion { .. })
        ));
        h.magic = 0;
        assert_eq!(h.validate_identity(), Err(FormatError::Unformatted));
    }
}
