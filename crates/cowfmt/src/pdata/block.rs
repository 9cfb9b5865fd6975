//! persistent-data blocks: every metadata block is 4 KiB, starts with a
//! checksum of the rest of the block salted per block type, and stores its
//! own location (`blocknr`). Reading one checks both (the kernel's
//! validators, `-ENOTBLK` then `-EILSEQ`); writing one seals both last.

/// Bytes of a persistent-data metadata block.
pub const BLOCK_BYTES: usize = 4096;
/// Sectors of a persistent-data metadata block.
pub const BLOCK_SECTORS: u64 = (BLOCK_BYTES / 512) as u64;

/// One metadata block.
pub type Block = [u8; BLOCK_BYTES];

/// The block types a dm-clone metadata device holds, each with its salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockKind {
    /// A B-tree node (`BTREE_CSUM_XOR`).
    BtreeNode,
    /// A dm-array block (`dm-array.c CSUM_XOR`).
    ArrayBlock,
    /// The metadata space map's index block (`INDEX_CSUM_XOR`).
    SmIndex,
    /// A space-map bitmap block (`BITMAP_CSUM_XOR`).
    SmBitmap,
    /// A dm-clone superblock (`SUPERBLOCK_CSUM_XOR`).
    CloneSuperblock,
}

impl BlockKind {
    /// Every block type, in a fixed order.
    pub const ALL: [BlockKind; 5] = [
        BlockKind::BtreeNode,
        BlockKind::ArrayBlock,
        BlockKind::SmIndex,
        BlockKind::SmBitmap,
        BlockKind::CloneSuperblock,
    ];

    /// The value the block's checksum is xored with.
    pub const fn salt(self) -> u32 {
        match self {
            BlockKind::BtreeNode => 121_107,
            BlockKind::ArrayBlock => 595_846_735,
            BlockKind::SmIndex => 160_478,
            BlockKind::SmBitmap => 240_779,
            BlockKind::CloneSuperblock => 257_649_492,
        }
    }

    /// Byte offset of the le64 `blocknr` the block stores of itself.
    pub const fn blocknr_at(self) -> usize {
        match self {
            BlockKind::ArrayBlock => 16,
            _ => 8,
        }
    }

    /// What the block is, in a finding or a dump (`btree node`, `array block`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            BlockKind::BtreeNode => "btree node",
            BlockKind::ArrayBlock => "array block",
            BlockKind::SmIndex => "space map index",
            BlockKind::SmBitmap => "space map bitmap",
            BlockKind::CloneSuperblock => "clone superblock",
        }
    }
}

impl std::fmt::Display for BlockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a block read at some location is not a valid block of the expected type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockDefect {
    /// The block names another location (the kernel's `-ENOTBLK`).
    #[error("the {kind} names itself block {found}, expected {expected}")]
    Blocknr {
        /// The type the block was read as.
        kind: BlockKind,
        /// The `blocknr` stored in the block.
        found: u64,
        /// Where it was read from.
        expected: u64,
    },
    /// The checksum does not match the bytes (the kernel's `-EILSEQ`).
    #[error("the {kind} checksum is {stored:#010x}, the bytes give {computed:#010x}")]
    Checksum {
        /// The type the block was read as.
        kind: BlockKind,
        /// The checksum stored at byte 0.
        stored: u32,
        /// The checksum the bytes give for this type.
        computed: u32,
    },
}

/// The checksum the kernel stores at byte 0 of a block of type `kind`:
/// crc32c of bytes 4.. seeded with !0 and not inverted, xor the salt.
pub fn checksum(kind: BlockKind, block: &[u8]) -> u32 {
    !crc32c::crc32c(&block[4..]) ^ kind.salt()
}

/// The checksum stored at byte 0.
pub fn stored_checksum(block: &[u8]) -> u32 {
    u32::from_le_bytes([block[0], block[1], block[2], block[3]])
}

/// The `blocknr` a block of type `kind` stores of itself.
pub fn stored_blocknr(kind: BlockKind, block: &[u8]) -> u64 {
    let at = kind.blocknr_at();
    u64::from_le_bytes(block[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks a block read at `location` as the kernel's validator for `kind`
/// does: its `blocknr` first, then its checksum.
pub fn verify(kind: BlockKind, location: u64, block: &[u8]) -> Result<(), BlockDefect> {
    let found = stored_blocknr(kind, block);
    if found != location {
        return Err(BlockDefect::Blocknr {
            kind,
            found,
            expected: location,
        });
    }
    let (stored, computed) = (stored_checksum(block), checksum(kind, block));
    if stored != computed {
        return Err(BlockDefect::Checksum {
            kind,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Writes `location` into the block's `blocknr` and then its checksum, as the
/// kernel's `prepare_for_write` does just before a block goes to disk.
pub fn seal(kind: BlockKind, location: u64, block: &mut [u8]) {
    let at = kind.blocknr_at();
    block[at..at + 8].copy_from_slice(&location.to_le_bytes());
    let csum = checksum(kind, block);
    block[..4].copy_from_slice(&csum.to_le_bytes());
}

/// The type whose salt makes the stored checksum match the bytes, if any: how
/// a block of unknown type is named (one crc, then one xor per type).
pub fn identify(block: &[u8]) -> Option<BlockKind> {
    let salt = stored_checksum(block) ^ !crc32c::crc32c(&block[4..]);
    BlockKind::ALL.into_iter().find(|kind| kind.salt() == salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored checksums of a block whose bytes 4.. are zero, from the
    /// kernel's definition computed independently (docs of the format).
    const ZERO_BLOCK_CSUMS: [(BlockKind, u32); 5] = [
        (BlockKind::BtreeNode, 0x58CC_7E82),
        (BlockKind::ArrayBlock, 0x7B4E_41DE),
        (BlockKind::SmIndex, 0x58CF_D54F),
        (BlockKind::SmBitmap, 0x58CE_0B1A),
        (BlockKind::CloneSuperblock, 0x5796_CCC5),
    ];

    #[test]
    fn checksums_of_a_zero_block_match_the_kernels_values() {
        let block = [0u8; BLOCK_BYTES];
        for (kind, want) in ZERO_BLOCK_CSUMS {
            assert_eq!(checksum(kind, &block), want, "{kind}");
        }
    }

    #[test]
    fn a_sealed_block_verifies_and_is_identified() {
        for kind in BlockKind::ALL {
            let mut block = [7u8; BLOCK_BYTES];
            seal(kind, 42, &mut block);
            assert_eq!(verify(kind, 42, &block), Ok(()));
            assert_eq!(stored_blocknr(kind, &block), 42);
            assert_eq!(identify(&block), Some(kind));
        }
    }

    #[test]
    fn a_wrong_location_is_found_before_the_checksum() {
        let mut block = [0u8; BLOCK_BYTES];
        seal(BlockKind::BtreeNode, 5, &mut block);
        block[100] ^= 1;
        assert_eq!(
            verify(BlockKind::BtreeNode, 6, &block),
            Err(BlockDefect::Blocknr {
                kind: BlockKind::BtreeNode,
                found: 5,
                expected: 6
            })
        );
        let err = verify(BlockKind::BtreeNode, 5, &block).unwrap_err();
        assert!(matches!(err, BlockDefect::Checksum { .. }), "{err}");
        assert_eq!(identify(&block), None);
    }

    #[test]
    fn the_array_block_keeps_its_blocknr_at_byte_16() {
        let mut block = [0u8; BLOCK_BYTES];
        seal(BlockKind::ArrayBlock, 9, &mut block);
        assert_eq!(u64::from_le_bytes(block[16..24].try_into().unwrap()), 9);
        assert_eq!(&block[8..16], &[0u8; 8]);
    }

    #[test]
    fn the_golden_clone_superblock_checksum_is_reproduced() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/golden/d-clone-partial-hydration/meta.img.xz"
        );
        let mut meta = Vec::new();
        let file = std::fs::File::open(path).expect("golden meta image");
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut meta).expect("xz");
        let block = &meta[..BLOCK_BYTES];
        assert_eq!(verify(BlockKind::CloneSuperblock, 0, block), Ok(()));
        assert_eq!(identify(block), Some(BlockKind::CloneSuperblock));
    }
}
