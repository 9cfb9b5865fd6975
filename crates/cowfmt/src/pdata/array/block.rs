//! A dm-array block on disk (`dm-array.c`): a 24-byte header (csum,
//! max_entries, nr_entries, value_size, blocknr at 16), then `max_entries`
//! packed values of which the first `nr_entries` are in use.

use crate::pdata::block::{self, Block, BlockDefect, BlockKind, BLOCK_BYTES};

/// Bytes of the array block header.
pub const ARRAY_HEADER_BYTES: usize = 24;

/// Values of `value_size` bytes an array block holds (509 for le64).
pub const fn array_max_entries(value_size: u32) -> u32 {
    (BLOCK_BYTES - ARRAY_HEADER_BYTES) as u32 / value_size
}

/// Why a block is not a valid array block of the expected array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArrayBlockDefect {
    /// The block fails the array block validator (location, then checksum).
    #[error(transparent)]
    Block(#[from] BlockDefect),
    /// The value size is not the array's.
    #[error("value_size is {found}, expected {expected}")]
    ValueSize {
        /// The stored `value_size`.
        found: u32,
        /// The array's value size.
        expected: u32,
    },
    /// `max_entries` is not what a block of that value size holds.
    #[error("max_entries is {found}, expected {expected}")]
    MaxEntries {
        /// The stored `max_entries`.
        found: u32,
        /// `(4096 - 24) / value_size`.
        expected: u32,
    },
    /// More entries than the block holds.
    #[error("nr_entries {nr_entries} is above max_entries {max_entries}")]
    TooManyEntries {
        /// The stored `nr_entries`.
        nr_entries: u32,
        /// The stored `max_entries`.
        max_entries: u32,
    },
}

/// A decoded array block, its values borrowed from the block's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayBlock<'a> {
    /// Where the block lives.
    pub blocknr: u64,
    /// Values the block has room for.
    pub max_entries: u32,
    /// Bytes of each value.
    pub value_size: u32,
    /// The values in use, `nr_entries * value_size` bytes.
    pub values: &'a [u8],
}

fn le32(block: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(block[at..at + 4].try_into().expect("4 bytes"))
}

impl<'a> ArrayBlock<'a> {
    /// Decodes the block read at `location` as an array block of
    /// `value_size`-byte values: the kernel's validator, then the header.
    pub fn decode(
        location: u64,
        block: &'a [u8],
        value_size: u32,
    ) -> Result<ArrayBlock<'a>, ArrayBlockDefect> {
        block::verify(BlockKind::ArrayBlock, location, block)?;
        let max_entries = le32(block, 4);
        let nr_entries = le32(block, 8);
        let found = le32(block, 12);
        if found != value_size {
            return Err(ArrayBlockDefect::ValueSize {
                found,
                expected: value_size,
            });
        }
        let expected = array_max_entries(value_size);
        if max_entries != expected {
            return Err(ArrayBlockDefect::MaxEntries {
                found: max_entries,
                expected,
            });
        }
        if nr_entries > max_entries {
            return Err(ArrayBlockDefect::TooManyEntries {
                nr_entries,
                max_entries,
            });
        }
        let end = ARRAY_HEADER_BYTES + (nr_entries * value_size) as usize;
        Ok(ArrayBlock {
            blocknr: location,
            max_entries,
            value_size,
            values: &block[ARRAY_HEADER_BYTES..end],
        })
    }

    /// Values in use.
    pub fn nr_entries(&self) -> u32 {
        (self.values.len() / self.value_size as usize) as u32
    }

    /// The bytes of value `i`.
    pub fn value(&self, i: usize) -> &'a [u8] {
        let size = self.value_size as usize;
        &self.values[i * size..(i + 1) * size]
    }

    /// The values as le64 words (an array of `value_size` 8).
    pub fn words(&self) -> impl Iterator<Item = u64> + 'a {
        self.values
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
    }
}

/// The sealed array block stored at `location` holding `values` (packed,
/// `value_size` bytes each, at most [`array_max_entries`] of them).
pub fn encode_array_block(location: u64, value_size: u32, values: &[u8]) -> Box<Block> {
    let max_entries = array_max_entries(value_size);
    let nr_entries = values.len() / value_size as usize;
    debug_assert!(nr_entries <= max_entries as usize);
    let mut out = Box::new([0u8; BLOCK_BYTES]);
    out[4..8].copy_from_slice(&max_entries.to_le_bytes());
    out[8..12].copy_from_slice(&(nr_entries as u32).to_le_bytes());
    out[12..16].copy_from_slice(&value_size.to_le_bytes());
    out[ARRAY_HEADER_BYTES..ARRAY_HEADER_BYTES + values.len()].copy_from_slice(values);
    block::seal(BlockKind::ArrayBlock, location, &mut out[..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: u64) -> Vec<u8> {
        (0..n).flat_map(|w| (w * 3).to_le_bytes()).collect()
    }

    #[test]
    fn an_array_block_round_trips() {
        assert_eq!(array_max_entries(8), 509);
        let block = encode_array_block(7, 8, &words(12));
        let decoded = ArrayBlock::decode(7, &block[..], 8).unwrap();
        assert_eq!(decoded.nr_entries(), 12);
        assert_eq!(decoded.max_entries, 509);
        assert_eq!(
            decoded.words().collect::<Vec<_>>(),
            (0..12).map(|w| w * 3).collect::<Vec<_>>()
        );
        let full = encode_array_block(8, 8, &words(509));
        assert_eq!(
            ArrayBlock::decode(8, &full[..], 8).unwrap().nr_entries(),
            509
        );
    }

    #[test]
    fn each_defect_is_named() {
        let good = encode_array_block(7, 8, &words(3));
        assert!(matches!(
            ArrayBlock::decode(6, &good[..], 8),
            Err(ArrayBlockDefect::Block(BlockDefect::Blocknr {
                found: 7,
                ..
            }))
        ));
        let mut bad = good.clone();
        bad[30] ^= 1;
        assert!(matches!(
            ArrayBlock::decode(7, &bad[..], 8),
            Err(ArrayBlockDefect::Block(BlockDefect::Checksum { .. }))
        ));
        let cases = [
            (
                12,
                4,
                ArrayBlockDefect::ValueSize {
                    found: 4,
                    expected: 8,
                },
            ),
            (
                4,
                508,
                ArrayBlockDefect::MaxEntries {
                    found: 508,
                    expected: 509,
                },
            ),
            (
                8,
                510,
                ArrayBlockDefect::TooManyEntries {
                    nr_entries: 510,
                    max_entries: 509,
                },
            ),
        ];
        for (at, value, want) in cases {
            let mut block = good.clone();
            block[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
            block::seal(BlockKind::ArrayBlock, 7, &mut block[..]);
            assert_eq!(ArrayBlock::decode(7, &block[..], 8), Err(want), "{want}");
        }
    }
}
