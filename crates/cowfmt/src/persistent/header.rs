//! The 16-byte "SnAp" header in chunk 0 of a persistent store.

use byteorder::{ByteOrder, LittleEndian};
use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::kind::PERSISTENT_MAGIC;

/// Bytes of the header proper; the rest of chunk 0 is zero.
pub const HEADER_BYTES: usize = 16;
/// The only on-disk version the kernel reads.
pub const DISK_VERSION: u32 = 1;
/// The largest chunk size the kernel accepts, in sectors (`INT_MAX >> 9`).
pub const MAX_CHUNK_SECTORS: u64 = (i32::MAX as u64) >> 9;

/// The header fields as stored, without any validation: a checker needs to see
/// wrong values, not an error instead of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// `0x70416e53` ("SnAp") for a formatted store; 0 means "format me".
    pub magic: u32,
    /// 1 valid, 0 invalidated (the kernel treats any non-zero value as valid).
    pub valid: u32,
    /// Must be 1.
    pub version: u32,
    /// Chunk size in sectors.
    pub chunk_size: u32,
}

impl Header {
    /// A fresh, valid header for the given chunk size.
    pub fn new(chunk_size: u32) -> Self {
        Header {
            magic: PERSISTENT_MAGIC,
            valid: 1,
            version: DISK_VERSION,
            chunk_size,
        }
    }

    /// Decodes the first 16 bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_BYTES {
            return Err(FormatError::ShortBuffer {
                what: "a persistent store header",
                needed: HEADER_BYTES,
                got: bytes.len(),
            });
        }
        Ok(Header {
            magic: LittleEndian::read_u32(&bytes[0..4]),
            valid: LittleEndian::read_u32(&bytes[4..8]),
            version: LittleEndian::read_u32(&bytes[8..12]),
            chunk_size: LittleEndian::read_u32(&bytes[12..16]),
        })
    }

    /// Encodes into the first 16 bytes of `out` (which must hold them).
    pub fn encode(&self, out: &mut [u8]) {
        LittleEndian::write_u32(&mut out[0..4], self.magic);
        LittleEndian::write_u32(&mut out[4..8], self.valid);
        LittleEndian::write_u32(&mut out[8..12], self.version);
        LittleEndian::write_u32(&mut out[12..16], self.chunk_size);
    }

    /// A whole header chunk as the kernel writes it: 16 header bytes, then zeros.
    pub fn to_chunk(&self, chunk_bytes: usize) -> Vec<u8> {
        let mut chunk = vec![0u8; chunk_bytes.max(HEADER_BYTES)];
        self.encode(&mut chunk);
        chunk.truncate(chunk_bytes.max(HEADER_BYTES));
        chunk
    }

    /// Whether the kernel would consider the store valid (non-zero `valid`).
    pub fn is_valid(&self) -> bool {
        self.valid != 0
    }

    /// Checks the magic and version the way the kernel does on load.
    pub fn validate_identity(&self) -> Result<(), FormatError> {
        match self.magic {
            PERSISTENT_MAGIC => {}
            0 => return Err(FormatError::Unformatted),
            found => {
                return Err(FormatError::WrongMagic {
                    kind: "persistent",
                    found,
                    expected: PERSISTENT_MAGIC,
                })
            }
        }
        if self.version != DISK_VERSION {
            return Err(FormatError::BadVersion {
                found: self.version,
                expected: DISK_VERSION,
            });
        }
        Ok(())
    }
}

/// Checks a chunk size in sectors against the kernel's rules: non-zero, a power
/// of two, at most `INT_MAX >> 9`.
pub fn validate_chunk_size(sectors: u64) -> Result<(), FormatError> {
    if sectors == 0 {
        return Err(FormatError::BadChunkSize {
            sectors,
            why: "is zero; the kernel needs a power of two of at least 1 sector",
        });
    }
    if !sectors.is_power_of_two() {
        return Err(FormatError::BadChunkSize {
            sectors,
            why: "is not a power of two; the kernel needs a power of two of at least 1 sector",
        });
    }
    if sectors > MAX_CHUNK_SECTORS {
        return Err(FormatError::BadChunkSize {
            sectors,
            why: "is larger than the kernel's limit of 4194303 sectors (INT_MAX >> 9)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_byte_layout() {
        let header = Header::new(8);
        let chunk = header.to_chunk(4096);
        assert_eq!(chunk.len(), 4096);
        assert_eq!(&chunk[0..4], b"SnAp");
        assert_eq!(&chunk[4..16], &[1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]);
        assert!(chunk[16..].iter().all(|&b| b == 0));
        assert_eq!(Header::decode(&chunk).unwrap(), header);
    }

    #[test]
    fn short_buffer() {
        assert!(matches!(
            Header::decode(&[0; 15]),
            Err(FormatError::ShortBuffer {
                needed: 16,
                got: 15,
                ..
            })
        ));
    }

    #[test]
    fn identity_checks() {
        let mut header = Header::new(8);
        assert!(header.validate_identity().is_ok());
        header.version = 2;
        assert!(matches!(
            header.validate_identity(),
            Err(FormatError::BadVersion { found: 2, .. })
        ));
        header.magic = 0;
        assert_eq!(header.validate_identity(), Err(FormatError::Unformatted));
        header.magic = 0xdead_beef;
        assert!(matches!(
            header.validate_identity(),
            Err(FormatError::WrongMagic { .. })
        ));
    }

    #[test]
    fn chunk_size_limits() {
        assert!(validate_chunk_size(1).is_ok());
        assert!(validate_chunk_size(1 << 21).is_ok());
        assert!(validate_chunk_size(0).is_err());
        assert!(validate_chunk_size(12).is_err());
        assert!(validate_chunk_size(1 << 22).is_err());
    }
}
