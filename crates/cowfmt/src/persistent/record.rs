//! The 16-byte exception record: `old_chunk` (origin) then `new_chunk` (COW).

use byteorder::{ByteOrder, LittleEndian};
use serde::{Deserialize, Serialize};

/// Bytes of one record on disk.
pub const RECORD_BYTES: usize = 16;

/// One exception: origin chunk `old_chunk` is kept in COW chunk `new_chunk`.
/// A record with `new_chunk == 0` terminates the list (chunk 0 is the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExceptionRecord {
    /// Chunk index on the origin, in snapshot chunk units.
    pub old_chunk: u64,
    /// Chunk index on the COW device.
    pub new_chunk: u64,
}

impl ExceptionRecord {
    /// Decodes one record from the first 16 bytes of `bytes`.
    #[inline]
    pub fn decode(bytes: &[u8]) -> Self {
        ExceptionRecord {
            old_chunk: LittleEndian::read_u64(&bytes[0..8]),
            new_chunk: LittleEndian::read_u64(&bytes[8..16]),
        }
    }

    /// Encodes into the first 16 bytes of `out`.
    #[inline]
    pub fn encode(&self, out: &mut [u8]) {
        LittleEndian::write_u64(&mut out[0..8], self.old_chunk);
        LittleEndian::write_u64(&mut out[8..16], self.new_chunk);
    }

    /// Whether the kernel reads this record as the end of the list.
    #[inline]
    pub fn is_terminator(&self) -> bool {
        self.new_chunk == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_little_endian_old_then_new() {
        let record = ExceptionRecord {
            old_chunk: 0x0102_0304_0506_0708,
            new_chunk: 2,
        };
        let mut bytes = [0u8; 16];
        record.encode(&mut bytes);
        assert_eq!(bytes[0], 0x08);
        assert_eq!(bytes[7], 0x01);
        assert_eq!(bytes[8], 2);
        assert_eq!(ExceptionRecord::decode(&bytes), record);
    }

    #[test]
    fn terminator_is_new_chunk_zero_only() {
        assert!(ExceptionRecord {
            old_chunk: 5,
            new_chunk: 0
        }
        .is_terminator());
        assert!(!ExceptionRecord {
            old_chunk: 0,
            new_chunk: 5
        }
        .is_terminator());
    }
}
