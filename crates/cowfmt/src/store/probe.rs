//! Store detection from a whole first block (4 KiB): the magic, and what else
//! identifies a kind: a persistent header (valid flag, version, chunk size), a
//! shared header, a dm-clone superblock, the output guard's marker on an
//! unfinished output. [`FirstBlock::kind`] names a dm-clone superblock
//! `Clone`, never from the four bytes at offset 0 alone.

use byteorder::{ByteOrder, LittleEndian};

use crate::blockdev::BlockDev;
use crate::clone::superblock::{CloneSuperblock, METADATA_BLOCK_BYTES};
use crate::error::{FormatError, Result};
use crate::kind::{StoreKind, PERSISTENT_MAGIC, SHARED_MAGIC};
use crate::output::Marker;
use crate::persistent::header::Header;
use crate::probe::own_kinds::CLONE_MAGIC;
use crate::shared::header::SharedHeader;

/// Bytes read to identify a device: one metadata block of dm-clone, more
/// than any header of ours.
pub const FIRST_BLOCK_BYTES: usize = METADATA_BLOCK_BYTES;

/// Offset of a persistent-data superblock's magic.
const PD_MAGIC_AT: usize = 32;

/// What the first block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// A persistent ("SnAp") header, decoded as stored.
    Snap(Header),
    /// A shared store header, decoded as stored.
    Shared(SharedHeader),
    /// A dm-clone superblock (not necessarily one the kernel accepts).
    Clone(CloneSuperblock),
    /// The output guard's marker: a job writing this device did not finish.
    Unfinished(Marker),
    /// Zeros only.
    Blank,
    /// Nothing this crate knows.
    Other,
}

/// The first block of a device and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstBlock {
    /// The little-endian word at offset 0.
    pub magic: u32,
    /// What the block holds.
    pub holds: Holds,
}

impl FirstBlock {
    /// Reads and identifies the first block of `device` (all of it when the
    /// device is shorter). A device shorter than 4 bytes fails as a truncated
    /// read of `what`.
    pub fn read(device: &dyn BlockDev, what: &dyn Fn() -> String) -> Result<Self> {
        let len = device.size().clamp(4, FIRST_BLOCK_BYTES as u64) as usize;
        let mut bytes = vec![0u8; len];
        device.read_at(&mut bytes, 0, what)?;
        Ok(Self::identify(&bytes))
    }

    /// Identifies `bytes`, the start of a device (at least 4 bytes).
    pub fn identify(bytes: &[u8]) -> Self {
        let magic = bytes.get(..4).map_or(0, LittleEndian::read_u32);
        FirstBlock {
            magic,
            holds: holds(magic, bytes),
        }
    }

    /// The kind the block holds: `Clone` for a dm-clone superblock (its
    /// magic at byte 32 in a whole block), else what the magic at offset 0
    /// names ([`FirstBlock::magic_kind`]).
    pub fn kind(&self) -> std::result::Result<StoreKind, FormatError> {
        match self.holds {
            Holds::Clone(_) => Ok(StoreKind::Clone),
            _ => self.magic_kind(),
        }
    }

    /// The kind the magic at offset 0 alone names, exactly as
    /// [`crate::kind::detect`] answers: `Persistent` for a SnAp header,
    /// `Shared`, or why it is none.
    pub fn magic_kind(&self) -> std::result::Result<StoreKind, FormatError> {
        crate::kind::detect(&self.magic.to_le_bytes())
    }
}

fn holds(magic: u32, bytes: &[u8]) -> Holds {
    if let Some(marker) = Marker::decode(bytes) {
        return Holds::Unfinished(marker);
    }
    match magic {
        PERSISTENT_MAGIC => {
            if let Ok(header) = Header::decode(bytes) {
                return Holds::Snap(header);
            }
        }
        SHARED_MAGIC => {
            if let Ok(header) = SharedHeader::decode(bytes) {
                return Holds::Shared(header);
            }
        }
        _ => {}
    }
    if let Ok(block) = <&[u8; METADATA_BLOCK_BYTES]>::try_from(bytes) {
        let pd_magic = LittleEndian::read_u64(&block[PD_MAGIC_AT..PD_MAGIC_AT + 8]);
        if pd_magic == CLONE_MAGIC {
            return Holds::Clone(CloneSuperblock::decode(block));
        }
    }
    if bytes.iter().all(|&b| b == 0) {
        Holds::Blank
    } else {
        Holds::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_our_headers_by_more_than_the_magic() {
        let mut block = vec![0u8; FIRST_BLOCK_BYTES];
        Header::new(16).encode(&mut block);
        let first = FirstBlock::identify(&block);
        assert_eq!(first.kind(), Ok(StoreKind::Persistent));
        let Holds::Snap(header) = first.holds else {
            panic!("not a SnAp header: {first:?}");
        };
        assert_eq!(header.chunk_size, 16);
        assert!(header.is_valid());
    }

    #[test]
    fn a_clone_superblock_is_the_clone_kind_by_its_whole_block() {
        let mut block = [0u8; METADATA_BLOCK_BYTES];
        CloneSuperblock::new(8, 1 << 20).encode(&mut block);
        let first = FirstBlock::identify(&block);
        assert!(matches!(first.holds, Holds::Clone(sb) if sb.magic == CLONE_MAGIC));
        assert_eq!(first.kind(), Ok(StoreKind::Clone));
        assert!(matches!(
            first.magic_kind(),
            Err(FormatError::UnknownMagic { .. })
        ));
        let four_bytes = FirstBlock::identify(&block[..4]);
        assert!(matches!(
            four_bytes.kind(),
            Err(FormatError::UnknownMagic { .. })
        ));
    }

    #[test]
    fn the_golden_clone_metadata_is_the_clone_kind() {
        let bytes = crate::clone::golden_metadata();
        let first = FirstBlock::identify(&bytes[..FIRST_BLOCK_BYTES]);
        assert_eq!(first.kind(), Ok(StoreKind::Clone));
        assert_eq!(first.magic_kind(), crate::kind::detect(&bytes[..4]));
    }

    #[test]
    fn blank_and_foreign_blocks() {
        let first = FirstBlock::identify(&[0u8; FIRST_BLOCK_BYTES]);
        assert_eq!(first.holds, Holds::Blank);
        assert_eq!(first.kind(), Err(FormatError::Unformatted));
        let mut block = vec![0u8; FIRST_BLOCK_BYTES];
        block[100] = 1;
        let first = FirstBlock::identify(&block);
        assert_eq!(first.holds, Holds::Other);
        assert_eq!(first.kind(), Err(FormatError::Unformatted));
        let first = FirstBlock::identify(b"JUNKJUNK");
        assert_eq!(first.holds, Holds::Other);
        assert!(matches!(
            first.kind(),
            Err(FormatError::UnknownMagic { .. })
        ));
    }

    #[test]
    fn reads_a_short_device_whole_and_refuses_a_tiny_one() {
        let device = crate::memdev::MemDev::new("small", 100);
        let first = FirstBlock::read(&device, &|| "the store magic".to_string()).unwrap();
        assert_eq!(first.holds, Holds::Blank);
        let tiny = crate::memdev::MemDev::new("tiny", 2);
        let error = FirstBlock::read(&tiny, &|| "the store magic".to_string()).unwrap_err();
        assert!(error.to_string().contains("the store magic"), "{error}");
    }
}
