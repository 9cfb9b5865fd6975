//! The signatures this crate recognises itself: its COW stores, and the
//! device-mapper metadata built on persistent-data (dm-clone, dm-thin,
//! dm-cache, dm-era), which libblkid does not know. Those all start with a
//! 4 KiB superblock holding its csum at byte 0, its own block number (0) at
//! byte 8 and a 64-bit magic at byte 32 (docs/formats.md §2.2, §3).

use byteorder::{ByteOrder, LittleEndian};

use super::{Signature, Source};
use crate::device::Device;
use crate::error::Result;
use crate::kind::{PERSISTENT_MAGIC, SHARED_MAGIC};
use crate::output::Marker;
use crate::persistent::header::Header;

/// The name of a persistent (or legacy) store's signature.
pub const SNAP: &str = "snap";
/// The name of a shared store's signature.
pub const SHARED: &str = "shared";
/// The name of the output guard's marker on an unfinished output or a store
/// in repair.
pub const MARKER: &str = "cowtools-marker";

/// dm-clone's `SUPERBLOCK_MAGIC`.
pub const CLONE_MAGIC: u64 = 0x8af2_7f64;
/// dm-thin's `THIN_SUPERBLOCK_MAGIC`.
pub const THIN_MAGIC: u64 = 27_022_010;
/// dm-cache's `CACHE_SUPERBLOCK_MAGIC` (the kernel's literal 06142003 is octal).
pub const CACHE_MAGIC: u64 = 0o6_142_003;
/// dm-era's `SUPERBLOCK_MAGIC`.
pub const ERA_MAGIC: u64 = 2_126_579_579;

/// Offset of the magic in a persistent-data superblock.
const PD_MAGIC_OFFSET: usize = 32;
/// Offset of the superblock's own block number.
const PD_BLOCKNR_OFFSET: usize = 8;

/// The persistent-data metadata kinds: signature name, magic, description.
const PERSISTENT_DATA: [(&str, u64, &str); 4] = [
    ("dm-clone", CLONE_MAGIC, "dm-clone metadata"),
    ("dm-thin", THIN_MAGIC, "dm-thin pool metadata"),
    ("dm-cache", CACHE_MAGIC, "dm-cache metadata"),
    ("dm-era", ERA_MAGIC, "dm-era metadata"),
];

impl Signature {
    /// Whether this is one of this crate's COW stores (persistent, legacy or
    /// shared), as opposed to a foreign signature.
    pub fn is_cow_store(&self) -> bool {
        self.source == Source::Cowfmt && (self.name == SNAP || self.name == SHARED)
    }
}

/// The signatures of this crate's kinds at the start of `device`.
pub fn probe(device: &Device) -> Result<Vec<Signature>> {
    let len = device.size_bytes().min(4096) as usize;
    let mut bytes = vec![0u8; len];
    device.read_at(&mut bytes, 0, || "the first block".to_string())?;
    Ok(recognise(&bytes).into_iter().collect())
}

/// The kind whose magic the first bytes of a device carry, if any.
pub fn recognise(bytes: &[u8]) -> Option<Signature> {
    let own = |name: &str, what: String, place: &str, offset: u64| Signature {
        name: name.to_string(),
        what,
        place: place.to_string(),
        offset,
        label: None,
        source: Source::Cowfmt,
    };
    let magic = LittleEndian::read_u32(bytes.get(..4)?);
    if let Some(marker) = Marker::decode(bytes) {
        return Some(own(MARKER, marker.describe(), "marker", 0));
    }
    if magic == PERSISTENT_MAGIC {
        let header = Header::decode(bytes).ok()?;
        let state = if header.is_valid() {
            ""
        } else {
            ", marked invalid"
        };
        let what = format!(
            "a persistent store (SnAp, chunk size {}{state})",
            header.chunk_size
        );
        return Some(own(SNAP, what, "", 0));
    }
    if magic == SHARED_MAGIC {
        return Some(own(SHARED, "a shared store".to_string(), "", 0));
    }
    let field = |at: usize| bytes.get(at..at + 8).map(LittleEndian::read_u64);
    if field(PD_BLOCKNR_OFFSET)? != 0 {
        return None;
    }
    let found = field(PD_MAGIC_OFFSET)?;
    PERSISTENT_DATA
        .iter()
        .find(|(_, magic, _)| *magic == found)
        .map(|(name, _, what)| own(name, what.to_string(), "superblock", PD_MAGIC_OFFSET as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(magic: u64, blocknr: u64) -> Vec<u8> {
        let mut block = vec![0u8; 4096];
        block[0..4].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        block[8..16].copy_from_slice(&blocknr.to_le_bytes());
        block[32..40].copy_from_slice(&magic.to_le_bytes());
        block
    }

    #[test]
    fn recognises_every_persistent_data_superblock_at_block_zero() {
        for (name, magic, what) in PERSISTENT_DATA {
            let found = recognise(&superblock(magic, 0)).expect(name);
            assert_eq!(found.name, name);
            assert_eq!(found.to_string(), format!("{what} (superblock at byte 32)"));
            assert!(!found.is_cow_store());
            assert_eq!(recognise(&superblock(magic, 7)), None, "{name}: blocknr 7");
        }
        assert_eq!(CACHE_MAGIC, 1_623_043);
    }

    #[test]
    fn recognises_our_stores_by_magic() {
        let mut header = vec![0u8; 4096];
        Header::new(16).encode(&mut header);
        let found = recognise(&header).unwrap();
        assert_eq!(
            found.to_string(),
            "a persistent store (SnAp, chunk size 16)"
        );
        assert!(found.is_cow_store());
        header[4] = 0;
        assert!(recognise(&header).unwrap().what.contains("marked invalid"));
        let shared = SHARED_MAGIC.to_le_bytes();
        assert_eq!(recognise(&shared).unwrap().to_string(), "a shared store");
        assert_eq!(recognise(&[0u8; 4096]), None);
        assert_eq!(recognise(&[1u8; 2]), None);
    }
}
