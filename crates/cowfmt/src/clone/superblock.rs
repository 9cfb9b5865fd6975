//! The superblock of dm-clone metadata (block 0): the one codec of
//! `struct superblock_disk` (kernel 6.12 `dm-clone-metadata.c`), and the
//! checks of the kernel's `sb_check` in its order. The 128-byte space map
//! root is kept as raw bytes; `pdata` decodes it.

use byteorder::{ByteOrder, LittleEndian};

use crate::blockdev::BlockDev;
use crate::error::Result;
use crate::pdata::block::{checksum, Block, BlockKind, BLOCK_BYTES};
pub use crate::probe::own_kinds::CLONE_MAGIC;

/// Size of a persistent-data metadata block, the superblock's size.
pub const METADATA_BLOCK_BYTES: usize = BLOCK_BYTES;
/// The only metadata version 6.12 reads (`DM_CLONE_{MIN,MAX}_METADATA_VERSION`).
pub const CLONE_METADATA_VERSION: u32 = 1;
/// Bytes of the space map root field (`SPACE_MAP_ROOT_SIZE`).
pub const SM_ROOT_BYTES: usize = 128;
/// Bytes of the uuid field (written as zeros by the kernel).
pub const UUID_BYTES: usize = 16;

/// Byte offsets in `struct superblock_disk`.
const CSUM_AT: usize = 0;
const FLAGS_AT: usize = 4;
const BLOCKNR_AT: usize = 8;
const UUID_AT: usize = 16;
const MAGIC_AT: usize = 32;
const VERSION_AT: usize = 40;
const SM_ROOT_AT: usize = 44;
const REGION_SIZE_AT: usize = 172;
const TARGET_SIZE_AT: usize = 180;
const BITSET_ROOT_AT: usize = 188;
/// The first byte past the superblock's fields; the kernel zeroes the rest.
pub const SUPERBLOCK_END: usize = 196;

/// What block 0 of a dm-clone metadata device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneMetadata {
    /// All zero: the kernel formats the metadata when the table is loaded.
    Blank,
    /// A superblock (maybe not a valid one: see [`CloneSuperblock::defect`]).
    Superblock(Box<CloneSuperblock>),
}

/// The decoded fields of a dm-clone superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneSuperblock {
    /// The checksum stored at byte 0.
    pub stored_csum: u32,
    /// The checksum of bytes 4..4096, as the kernel computes it.
    pub computed_csum: u32,
    /// The flags word (written as 0, never checked by the kernel).
    pub flags: u32,
    /// The block's own number (0 for a superblock).
    pub blocknr: u64,
    /// The uuid (written as zeros, unused by the kernel).
    pub uuid: [u8; UUID_BYTES],
    /// The magic.
    pub magic: u64,
    /// The metadata version.
    pub version: u32,
    /// The metadata space map root, as stored (the first 32 bytes are used).
    pub sm_root: [u8; SM_ROOT_BYTES],
    /// Region size in sectors.
    pub region_sectors: u64,
    /// Length of the clone target in sectors.
    pub target_sectors: u64,
    /// Block of the hydration bitset's root.
    pub bitset_root: u64,
    /// Whether bytes past the fields ([`SUPERBLOCK_END`]..4096) are all zero,
    /// as the kernel writes them.
    pub tail_zero: bool,
}

/// Why the kernel would refuse a superblock whatever the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockDefect {
    /// The device is shorter than one metadata block.
    #[error("is {bytes} bytes long, shorter than one {METADATA_BLOCK_BYTES}-byte metadata block")]
    TooShort {
        /// The device's size.
        bytes: u64,
    },
    /// The magic is not dm-clone's.
    #[error("holds no dm-clone metadata: superblock magic {found:#x} at byte 32, expected {CLONE_MAGIC:#x}")]
    Magic {
        /// The magic found.
        found: u64,
    },
    /// The block number field is not 0.
    #[error("the dm-clone superblock names itself block {blocknr}, expected 0")]
    Blocknr {
        /// The number found.
        blocknr: u64,
    },
    /// The checksum does not match the bytes.
    #[error("the dm-clone superblock's checksum {stored:#010x} does not match its bytes ({computed:#010x})")]
    Checksum {
        /// Stored.
        stored: u32,
        /// Computed.
        computed: u32,
    },
    /// A version the kernel does not read.
    #[error("the dm-clone metadata is version {version}; the kernel reads version {CLONE_METADATA_VERSION} only")]
    Version {
        /// The version found.
        version: u32,
    },
}

impl CloneSuperblock {
    /// The fields of a valid superblock for `region_sectors` and
    /// `target_sectors` (checksums, space map root and bitset root zero
    /// until encoded or set).
    pub fn new(region_sectors: u64, target_sectors: u64) -> Self {
        CloneSuperblock {
            stored_csum: 0,
            computed_csum: 0,
            flags: 0,
            blocknr: 0,
            uuid: [0; UUID_BYTES],
            magic: CLONE_MAGIC,
            version: CLONE_METADATA_VERSION,
            sm_root: [0; SM_ROOT_BYTES],
            region_sectors,
            target_sectors,
            bitset_root: 0,
            tail_zero: true,
        }
    }

    /// Decodes a 4 KiB superblock block.
    pub fn decode(block: &Block) -> Self {
        let u64_at = |at: usize| LittleEndian::read_u64(&block[at..at + 8]);
        CloneSuperblock {
            stored_csum: LittleEndian::read_u32(&block[CSUM_AT..]),
            computed_csum: checksum(BlockKind::CloneSuperblock, &block[..]),
            flags: LittleEndian::read_u32(&block[FLAGS_AT..]),
            blocknr: u64_at(BLOCKNR_AT),
            uuid: block[UUID_AT..UUID_AT + UUID_BYTES]
                .try_into()
                .expect("16 bytes"),
            magic: u64_at(MAGIC_AT),
            version: LittleEndian::read_u32(&block[VERSION_AT..]),
            sm_root: block[SM_ROOT_AT..SM_ROOT_AT + SM_ROOT_BYTES]
                .try_into()
                .expect("128 bytes"),
            region_sectors: u64_at(REGION_SIZE_AT),
            target_sectors: u64_at(TARGET_SIZE_AT),
            bitset_root: u64_at(BITSET_ROOT_AT),
            tail_zero: block[SUPERBLOCK_END..].iter().all(|&b| b == 0),
        }
    }

    /// Writes the whole block as the kernel does (`write_lock_zero`): every
    /// field at its offset, zeros past [`SUPERBLOCK_END`], and the checksum
    /// of the result (`stored_csum`, `computed_csum` and `tail_zero` are not
    /// used).
    pub fn encode(&self, block: &mut Block) {
        block.fill(0);
        LittleEndian::write_u32(&mut block[FLAGS_AT..], self.flags);
        LittleEndian::write_u64(&mut block[BLOCKNR_AT..], self.blocknr);
        block[UUID_AT..UUID_AT + UUID_BYTES].copy_from_slice(&self.uuid);
        LittleEndian::write_u64(&mut block[MAGIC_AT..], self.magic);
        LittleEndian::write_u32(&mut block[VERSION_AT..], self.version);
        block[SM_ROOT_AT..SM_ROOT_AT + SM_ROOT_BYTES].copy_from_slice(&self.sm_root);
        LittleEndian::write_u64(&mut block[REGION_SIZE_AT..], self.region_sectors);
        LittleEndian::write_u64(&mut block[TARGET_SIZE_AT..], self.target_sectors);
        LittleEndian::write_u64(&mut block[BITSET_ROOT_AT..], self.bitset_root);
        let csum = checksum(BlockKind::CloneSuperblock, &block[..]);
        LittleEndian::write_u32(&mut block[CSUM_AT..], csum);
    }

    /// The first check of the kernel's `sb_check` this superblock fails, in
    /// the kernel's order (block number, magic, checksum, version).
    pub fn defect(&self) -> Option<SuperblockDefect> {
        let defects = self.defects();
        // A foreign block names another location too: its magic says more.
        defects
            .iter()
            .find(|d| matches!(d, SuperblockDefect::Magic { .. }))
            .or(defects.first())
            .copied()
    }

    /// Every check of the kernel's `sb_check` this superblock fails, in
    /// the kernel's order (block number, magic, checksum, version).
    pub fn defects(&self) -> Vec<SuperblockDefect> {
        [
            (self.blocknr != 0).then_some(SuperblockDefect::Blocknr {
                blocknr: self.blocknr,
            }),
            (self.magic != CLONE_MAGIC).then_some(SuperblockDefect::Magic { found: self.magic }),
            (self.stored_csum != self.computed_csum).then_some(SuperblockDefect::Checksum {
                stored: self.stored_csum,
                computed: self.computed_csum,
            }),
            (self.version != CLONE_METADATA_VERSION).then_some(SuperblockDefect::Version {
                version: self.version,
            }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Reads block 0 of `device` as dm-clone metadata: blank, or a superblock;
/// `Err(defect)` inside `Ok` when the device is too short to hold one.
pub fn read_clone_metadata(
    device: &dyn BlockDev,
) -> Result<std::result::Result<CloneMetadata, SuperblockDefect>> {
    let bytes = device.size();
    if bytes < METADATA_BLOCK_BYTES as u64 {
        return Ok(Err(SuperblockDefect::TooShort { bytes }));
    }
    let mut block = [0u8; METADATA_BLOCK_BYTES];
    device.read_at(&mut block, 0, &|| "the dm-clone superblock".to_string())?;
    if block.iter().all(|&b| b == 0) {
        return Ok(Ok(CloneMetadata::Blank));
    }
    Ok(Ok(CloneMetadata::Superblock(Box::new(
        CloneSuperblock::decode(&block),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::golden_metadata;
    use crate::device::{Access, Device};

    fn decode(bytes: &[u8]) -> CloneSuperblock {
        CloneSuperblock::decode(bytes[..METADATA_BLOCK_BYTES].try_into().unwrap())
    }

    #[test]
    fn the_kernels_superblock_decodes_with_its_manifest_fields() {
        let superblock = decode(&golden_metadata());
        assert_eq!(superblock.defect(), None);
        assert_eq!(superblock.stored_csum, superblock.computed_csum);
        assert_eq!(
            (
                superblock.magic,
                superblock.version,
                superblock.region_sectors,
                superblock.target_sectors,
                superblock.bitset_root
            ),
            (0x8af2_7f64, 1, 64, 32768, 12)
        );
    }

    #[test]
    fn encoding_the_kernels_fields_gives_its_block_back() {
        let golden = golden_metadata();
        let decoded = decode(&golden);
        assert_eq!(
            (decoded.flags, decoded.uuid, decoded.tail_zero),
            (0, [0; 16], true)
        );
        let sm_root_words: Vec<u64> = decoded.sm_root[..32]
            .chunks(8)
            .map(LittleEndian::read_u64)
            .collect();
        assert_eq!(sm_root_words, vec![1024, 6, 13, 2]);
        assert!(decoded.sm_root[32..].iter().all(|&b| b == 0));
        let mut block = [0xa5u8; METADATA_BLOCK_BYTES];
        decoded.encode(&mut block);
        assert_eq!(block[..], golden[..METADATA_BLOCK_BYTES]);

        let mut fresh = [0u8; METADATA_BLOCK_BYTES];
        let mut fields = CloneSuperblock::new(128, 4096);
        fields.flags = 7;
        fields.uuid[3] = 9;
        fields.sm_root[127] = 1;
        fields.encode(&mut fresh);
        let round = decode(&fresh);
        assert_eq!(
            (
                round.flags,
                round.uuid[3],
                round.sm_root[127],
                round.defect()
            ),
            (7, 9, 1, None)
        );
        assert_eq!(
            (round.region_sectors, round.target_sectors, round.tail_zero),
            (128, 4096, true)
        );
        fresh[SUPERBLOCK_END] = 1;
        assert!(!decode(&fresh).tail_zero);
    }

    #[test]
    fn each_defect_is_named_in_the_kernels_order() {
        let golden = golden_metadata();
        let mut damaged = golden.clone();
        damaged[REGION_SIZE_AT] ^= 0x40;
        let defect = decode(&damaged).defect().unwrap();
        assert!(matches!(defect, SuperblockDefect::Checksum { .. }));
        assert!(defect
            .to_string()
            .starts_with("the dm-clone superblock's checksum 0x"));

        let mut moved = golden.clone();
        moved[BLOCKNR_AT] = 5;
        assert_eq!(
            decode(&moved).defect(),
            Some(SuperblockDefect::Blocknr { blocknr: 5 })
        );
        assert!(matches!(
            decode(&moved).defects()[..],
            [
                SuperblockDefect::Blocknr { blocknr: 5 },
                SuperblockDefect::Checksum { .. }
            ]
        ));

        let mut version: [u8; METADATA_BLOCK_BYTES] =
            golden[..METADATA_BLOCK_BYTES].try_into().unwrap();
        CloneSuperblock {
            version: 2,
            ..decode(&golden)
        }
        .encode(&mut version);
        assert_eq!(
            decode(&version).defect().unwrap().to_string(),
            "the dm-clone metadata is version 2; the kernel reads version 1 only"
        );

        let mut foreign = vec![0u8; METADATA_BLOCK_BYTES];
        foreign[..4].copy_from_slice(b"SnAp");
        assert_eq!(
            decode(&foreign).defect().unwrap().to_string(),
            "holds no dm-clone metadata: superblock magic 0x0 at byte 32, expected 0x8af27f64"
        );
    }

    #[test]
    fn a_blank_or_short_device_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let blank = Device::create_or_extend(dir.path().join("blank"), 1 << 20).unwrap();
        assert_eq!(
            read_clone_metadata(&blank).unwrap(),
            Ok(CloneMetadata::Blank)
        );
        let short = Device::create_or_extend(dir.path().join("short"), 512).unwrap();
        assert_eq!(
            read_clone_metadata(&short).unwrap(),
            Err(SuperblockDefect::TooShort { bytes: 512 })
        );
        let path = dir.path().join("golden");
        std::fs::write(&path, golden_metadata()).unwrap();
        let golden = Device::open(&path, Access::ReadOnly).unwrap();
        let Ok(CloneMetadata::Superblock(superblock)) = read_clone_metadata(&golden).unwrap()
        else {
            panic!("a superblock expected");
        };
        assert_eq!(superblock.region_sectors, 64);
    }
}
