//! The space map root: the 32 meaningful bytes at the start of the 128-byte
//! `metadata_space_map_root` field a superblock keeps.

/// Bytes of the root field in a superblock (`SPACE_MAP_ROOT_SIZE`).
pub const SM_ROOT_FIELD_BYTES: usize = 128;
/// Bytes of the field the metadata space map uses.
pub const SM_ROOT_BYTES: usize = 32;

/// Where the committed metadata space map lives and how full it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmRoot {
    /// Blocks the space map covers.
    pub nr_blocks: u64,
    /// Blocks whose reference count is above zero.
    pub nr_allocated: u64,
    /// The index block (named `bitmap_root` on disk).
    pub index_block: u64,
    /// The root of the ref-count B-tree (counts of 3 and more).
    pub ref_count_root: u64,
}

impl SmRoot {
    /// Reads the root from the first 32 bytes of `field`; the rest of the
    /// 128-byte field is not the space map's (see [`SmRoot::tail_is_zero`]).
    pub fn decode(field: &[u8; SM_ROOT_FIELD_BYTES]) -> Self {
        let u64_at = |at: usize| u64::from_le_bytes(field[at..at + 8].try_into().expect("8 bytes"));
        SmRoot {
            nr_blocks: u64_at(0),
            nr_allocated: u64_at(8),
            index_block: u64_at(16),
            ref_count_root: u64_at(24),
        }
    }

    /// The 128-byte field: the root, then zeros.
    pub fn encode(&self) -> [u8; SM_ROOT_FIELD_BYTES] {
        let mut field = [0u8; SM_ROOT_FIELD_BYTES];
        for (at, value) in [
            self.nr_blocks,
            self.nr_allocated,
            self.index_block,
            self.ref_count_root,
        ]
        .into_iter()
        .enumerate()
        {
            field[at * 8..at * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        field
    }

    /// Whether bytes 32..128 of the field are zero, as the kernel leaves them.
    pub fn tail_is_zero(field: &[u8; SM_ROOT_FIELD_BYTES]) -> bool {
        field[SM_ROOT_BYTES..].iter().all(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_round_trips_and_leaves_the_tail_zero() {
        let root = SmRoot {
            nr_blocks: 1024,
            nr_allocated: 6,
            index_block: 13,
            ref_count_root: 2,
        };
        let field = root.encode();
        assert_eq!(SmRoot::decode(&field), root);
        assert!(SmRoot::tail_is_zero(&field));
        assert_eq!(&field[16..24], &13u64.to_le_bytes());
        let mut dirty = field;
        dirty[100] = 1;
        assert!(!SmRoot::tail_is_zero(&dirty));
    }
}
