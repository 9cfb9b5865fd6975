//! Space map bitmap blocks: a 2-bit reference count per block (0 free, 1, 2,
//! 3 = "three or more, see the ref-count tree"), 16,320 per bitmap block.
//! Inside each little-endian u64 word entry `b % 32` takes bits `2(b % 32)`
//! and `2(b % 32) + 1`, and the EVEN bit is the HIGH bit of the count.

use crate::pdata::block::{seal, verify, Block, BlockDefect, BlockKind, BLOCK_BYTES};

/// Entries of one bitmap block: 4 per byte of its 4,080 data bytes.
pub const ENTRIES_PER_BITMAP: u64 = ((BLOCK_BYTES - DATA_AT) * 4) as u64;
/// The entry value meaning "three or more: the ref-count tree has the count".
pub const OVERFLOW: u8 = 3;

const DATA_AT: usize = 16;
const WORDS: usize = (BLOCK_BYTES - DATA_AT) / 8;
const ENTRIES_PER_WORD: usize = 32;

/// The entries of one bitmap block.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    words: Box<[u64; WORDS]>,
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.nonzero()).finish()
    }
}

impl Default for Bitmap {
    fn default() -> Self {
        Self::new()
    }
}

impl Bitmap {
    /// A bitmap with every entry free.
    pub fn new() -> Self {
        Bitmap {
            words: Box::new([0; WORDS]),
        }
    }

    /// Decodes the bitmap block read at `location` once it verifies.
    pub fn decode(location: u64, block: &[u8]) -> Result<Self, BlockDefect> {
        verify(BlockKind::SmBitmap, location, block)?;
        let mut bitmap = Bitmap::new();
        for (word, bytes) in bitmap
            .words
            .iter_mut()
            .zip(block[DATA_AT..].chunks_exact(8))
        {
            *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        Ok(bitmap)
    }

    /// The sealed bitmap block at `location`.
    pub fn encode(&self, location: u64) -> Box<Block> {
        let mut block = Box::new([0u8; BLOCK_BYTES]);
        for (word, bytes) in self.words.iter().zip(block[DATA_AT..].chunks_exact_mut(8)) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        seal(BlockKind::SmBitmap, location, &mut block[..]);
        block
    }

    /// The entry of block `entry` (0..16,320) of this bitmap.
    pub fn get(&self, entry: usize) -> u8 {
        decode_entry(
            self.words[entry / ENTRIES_PER_WORD],
            entry % ENTRIES_PER_WORD,
        )
    }

    /// Sets the entry of block `entry` to `value` (0..=3).
    pub fn set(&mut self, entry: usize, value: u8) {
        debug_assert!(value <= OVERFLOW);
        let shift = 2 * (entry % ENTRIES_PER_WORD);
        let bits = u64::from(value >> 1) | (u64::from(value & 1) << 1);
        let word = &mut self.words[entry / ENTRIES_PER_WORD];
        *word = (*word & !(3 << shift)) | (bits << shift);
    }

    /// Every entry that is not free, as (entry, value), in entry order; free
    /// words are skipped whole.
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u8)> + '_ {
        self.words
            .iter()
            .enumerate()
            .filter(|(_, &word)| word != 0)
            .flat_map(|(w, &word)| {
                (0..ENTRIES_PER_WORD).filter_map(move |slot| {
                    let value = decode_entry(word, slot);
                    (value != 0).then_some((w * ENTRIES_PER_WORD + slot, value))
                })
            })
    }
}

fn decode_entry(word: u64, slot: usize) -> u8 {
    let bits = (word >> (2 * slot)) & 3;
    (((bits & 1) << 1) | (bits >> 1)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bitmap_holds_16320_entries() {
        assert_eq!(ENTRIES_PER_BITMAP, 16_320);
    }

    #[test]
    fn the_even_bit_is_the_high_bit_of_an_entry() {
        let mut bitmap = Bitmap::new();
        bitmap.set(0, 1);
        bitmap.set(1, 2);
        bitmap.set(2, 3);
        let block = bitmap.encode(7);
        assert_eq!(block[DATA_AT], 0b11_01_10);
        let back = Bitmap::decode(7, &block[..]).unwrap();
        assert_eq!(back, bitmap);
        assert_eq!(
            (back.get(0), back.get(1), back.get(2), back.get(3)),
            (1, 2, 3, 0)
        );
    }

    #[test]
    fn entries_set_and_cleared_anywhere_read_back() {
        let mut bitmap = Bitmap::new();
        for entry in [31, 32, 16_319] {
            bitmap.set(entry, 3);
            bitmap.set(entry, 2);
        }
        bitmap.set(32, 0);
        assert_eq!(bitmap.nonzero().collect::<Vec<_>>(), [(31, 2), (16_319, 2)]);
    }

    #[test]
    fn a_damaged_bitmap_block_is_refused() {
        let mut block = Bitmap::new().encode(3);
        block[40] = 1;
        assert!(matches!(
            Bitmap::decode(3, &block[..]),
            Err(BlockDefect::Checksum { .. })
        ));
    }
}
