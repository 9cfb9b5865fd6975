//! Inferring the chunk size from the leaves' geometry. A leaf's sentinel offset
//! is its chunk size, and a leaf starts on a multiple of it: every 512-byte
//! boundary holding the leaf prefix whose sentinel names a power of two that
//! the position is aligned to, and under which the whole leaf decodes with an
//! ascending map, is one vote for that chunk size. Leaves are at most 1 MiB
//! and aligned, so each lies inside one aligned 1 MiB block.

use crate::device::Device;
use crate::error::Result;
use crate::shared::geometry::{MAX_CHUNK_SECTORS, MIN_CHUNK_SECTORS};
use crate::shared::leaf::{Leaf, LEAF_HEADER_BYTES, MAP_ENTRY_BYTES};
use crate::SECTOR_BYTES;

use super::shape::{leaf_span, starts_like_leaf};

/// Bytes read at a time: the largest chunk size, so every leaf lies in one block.
const BLOCK_BYTES: u64 = MAX_CHUNK_SECTORS as u64 * SECTOR_BYTES;
/// The search stops once one chunk size has this many votes.
const ENOUGH_VOTES: u64 = 64;
/// Candidate sizes: 2^0 ..= 2^11 sectors.
const SIZES: usize = (MAX_CHUNK_SECTORS.trailing_zeros() + 1) as usize;

/// Data bytes a probe reads at most.
const PROBE_BUDGET: u64 = 512 << 20;

/// Leaves voting for one chunk size that are enough, alone, to tell a shared
/// store whose header and bitmap are both damaged.
const STRONG_VOTES: u64 = 16;

/// Whether a device whose first bytes are no store's header holds a shared
/// store: leaves in its first 512 MiB of data vote for a chunk size, and
/// either at least [`STRONG_VOTES`] of them agree, or under that size the
/// bitmap marks the header and the first bitmap chunk in use (a store with
/// few leaves). Returns that chunk size in sectors.
pub fn probe_wiped_header(input: &Device) -> Result<Option<u32>> {
    let votes = count_votes(input, Some(PROBE_BUDGET))?;
    let Some(sectors) = votes.winner(None) else {
        return Ok(None);
    };
    if votes.best() >= STRONG_VOTES {
        return Ok(Some(sectors));
    }
    Ok(bitmap_marks_reserved(input, sectors)?.then_some(sectors))
}

/// Whether, with `sectors`-sector chunks, the first bitmap byte marks the
/// header and the first bitmap chunk in use.
fn bitmap_marks_reserved(input: &Device, sectors: u32) -> Result<bool> {
    let chunk_bytes = u64::from(sectors) * SECTOR_BYTES;
    if input.size_bytes() < 2 * chunk_bytes {
        return Ok(false);
    }
    let mut first = [0u8; 1];
    input.read_at(&mut first, chunk_bytes, || {
        "the first bitmap byte".to_string()
    })?;
    Ok(first[0] & 0b11 == 0b11)
}

/// Votes per candidate chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Votes([u64; SIZES]);

impl Votes {
    /// The chunk size (sectors) with the most votes; ties go to `preferred`,
    /// then to the smaller size. `None` when nothing voted.
    pub(super) fn winner(&self, preferred: Option<u32>) -> Option<u32> {
        let best = *self.0.iter().max()?;
        if best == 0 {
            return None;
        }
        let sectors = |i: usize| MIN_CHUNK_SECTORS << i;
        if let Some(p) = preferred {
            if (0..SIZES).any(|i| sectors(i) == p && self.0[i] == best) {
                return Some(p);
            }
        }
        (0..SIZES).find(|&i| self.0[i] == best).map(sectors)
    }

    fn add(&mut self, chunk_bytes: u64) {
        let sectors = chunk_bytes / SECTOR_BYTES;
        self.0[sectors.trailing_zeros() as usize] += 1;
    }

    fn best(&self) -> u64 {
        self.0.iter().copied().max().unwrap_or(0)
    }
}

/// Counts leaf votes over the device, reading at most `budget` bytes of data
/// (holes of sparse images are free), and stopping early once one size has
/// plenty.
pub(super) fn count_votes(input: &Device, budget: Option<u64>) -> Result<Votes> {
    let mut votes = Votes::default();
    let size = input.size_bytes();
    let mut block = vec![0u8; BLOCK_BYTES as usize];
    let mut next_block = 0u64;
    let mut read = 0u64;
    for (start, end) in input.data_ranges(0, size) {
        let mut at = (start / BLOCK_BYTES * BLOCK_BYTES).max(next_block);
        while at < end {
            if votes.best() >= ENOUGH_VOTES || budget.is_some_and(|b| read >= b) {
                return Ok(votes);
            }
            let len = (size - at).min(BLOCK_BYTES) as usize;
            input.read_at(&mut block[..len], at, || {
                format!("bytes {at}.. (looking for leaves)")
            })?;
            vote_block(&block[..len], &mut votes);
            read += len as u64;
            at += BLOCK_BYTES;
            next_block = at;
        }
    }
    Ok(votes)
}

/// Adds the votes of the leaves in one aligned block.
fn vote_block(block: &[u8], votes: &mut Votes) {
    let min = (MIN_CHUNK_SECTORS as u64 * SECTOR_BYTES) as usize;
    for o in (0..block.len()).step_by(min) {
        if !starts_like_leaf(&block[o..]) {
            continue;
        }
        if let Some(chunk_bytes) = leaf_size_at(block, o) {
            votes.add(chunk_bytes as u64);
        }
    }
}

/// The chunk size a leaf at `o` claims, if the whole leaf decodes at that size.
fn leaf_size_at(block: &[u8], o: usize) -> Option<usize> {
    let count = u32::from_le_bytes(block.get(o + 4..o + 8)?.try_into().ok()?) as usize;
    let at = o + LEAF_HEADER_BYTES + MAP_ENTRY_BYTES * count;
    let sentinel = u32::from_le_bytes(block.get(at..at + 4)?.try_into().ok()?) as usize;
    let min = (MIN_CHUNK_SECTORS as u64 * SECTOR_BYTES) as usize;
    if !sentinel.is_power_of_two()
        || sentinel < min
        || sentinel as u64 > BLOCK_BYTES
        || !o.is_multiple_of(sentinel)
    {
        return None;
    }
    let leaf = Leaf::decode(block.get(o..o + sentinel)?).ok()?;
    leaf_span(&leaf).ok()?;
    Some(sentinel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::leaf::Exception;

    fn leaf_bytes(chunk_bytes: usize) -> Vec<u8> {
        let mut l = Leaf::new(0);
        l.insert_entry(0, 3, Exception { share: 1, chunk: 9 });
        let mut out = vec![0u8; chunk_bytes];
        l.encode(&mut out);
        out
    }

    #[test]
    fn leaves_vote_for_their_own_size() {
        let mut block = vec![0u8; BLOCK_BYTES as usize];
        block[8192..12288].copy_from_slice(&leaf_bytes(4096));
        block[16384..20480].copy_from_slice(&leaf_bytes(4096));
        block[1536..2048].copy_from_slice(&leaf_bytes(512));
        // A 4 KiB leaf at a position not aligned to 4 KiB does not vote.
        block[21504..25600].copy_from_slice(&leaf_bytes(4096));
        let mut votes = Votes::default();
        vote_block(&block, &mut votes);
        assert_eq!(votes.winner(None), Some(8));
        assert_eq!(votes.0[3], 2);
        assert_eq!(votes.0[0], 1);
        let mut tie = Votes::default();
        tie.add(512);
        tie.add(4096);
        assert_eq!(tie.winner(None), Some(1));
        assert_eq!(tie.winner(Some(8)), Some(8));
        assert_eq!(Votes::default().winner(Some(8)), None);
    }
}
