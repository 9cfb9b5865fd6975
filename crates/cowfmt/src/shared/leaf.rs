//! B-tree leaves: a map of origin chunks at the front, the exceptions (share
//! mask and COW chunk) packed at the end of the chunk.
//!
//! In memory a leaf keeps its records in on-disk order (entry 0's records first,
//! each entry's records in the order they are stored), and each map entry knows
//! the index of its first record. Encoding turns those indices into offsets.

use byteorder::{ByteOrder, LittleEndian};

use super::mask::MAX_SNAPSHOTS;
use crate::error::FormatError;

/// Leaf magic at offset 0.
pub const LEAF_MAGIC: u16 = 0x1eaf;
/// The only leaf version.
pub const LEAF_VERSION: u16 = 0;
/// Bytes before the map.
pub const LEAF_HEADER_BYTES: usize = 24;
/// Bytes per map entry.
pub const MAP_ENTRY_BYTES: usize = 8;
/// Bytes per exception record.
pub const RECORD_BYTES: usize = 16;

/// One exception: the snapshots that see it, and the COW chunk holding the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exception {
    /// Bit s set: snapshot s reads this chunk.
    pub share: u64,
    /// The COW chunk with the copied data.
    pub chunk: u64,
}

/// One map entry: an origin chunk (relative to the leaf's base) and the index of
/// its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry {
    /// Origin chunk minus `base_chunk`.
    pub rchunk: u32,
    /// Index into the leaf's records of this entry's first record.
    pub first: u32,
}

/// Why a chunk does not decode as a leaf. Each names the first thing that made
/// the records unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// Offset 0 does not hold 0x1eaf.
    #[error("leaf magic is {found:#06x}, not 0x1eaf")]
    BadMagic {
        /// The magic found.
        found: u16,
    },
    /// The version is not 0.
    #[error("leaf version is {found}, not 0")]
    BadVersion {
        /// The version found.
        found: u16,
    },
    /// The map would not fit in the chunk.
    #[error("leaf count {count} is more than a chunk holds ({max})")]
    CountTooLarge {
        /// The count found.
        count: u32,
        /// The most map entries a chunk can hold.
        max: u32,
    },
    /// A record offset points into the map or past the chunk, or is not on a
    /// record boundary.
    #[error("map entry {entry}: record offset {offset} is outside the record area or not on a 16-byte record boundary")]
    BadOffset {
        /// The map entry.
        entry: u32,
        /// The offset found.
        offset: u32,
    },
    /// Record offsets go down from one entry to the next.
    #[error("map entry {entry}: record offset {offset} is below the previous entry's {previous}")]
    OffsetsOutOfOrder {
        /// The map entry.
        entry: u32,
        /// Its offset.
        offset: u32,
        /// The previous entry's offset.
        previous: u32,
    },
    /// The sentinel's offset is not the chunk size.
    #[error("sentinel (map entry {entry}) offset is {offset}, not the chunk size {chunk_bytes}")]
    BadSentinel {
        /// The sentinel's index (the count).
        entry: u32,
        /// The offset found.
        offset: u32,
        /// The chunk size.
        chunk_bytes: usize,
    },
}

/// A decoded leaf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leaf {
    /// Origin chunk of rchunk 0.
    pub base_chunk: u64,
    /// The using_mask as stored (encode writes the OR of the share masks).
    pub stored_using_mask: u64,
    /// The sentinel's rchunk as stored (encode writes 0).
    pub stored_sentinel_rchunk: u32,
    /// The map, sorted by rchunk in a well-formed leaf.
    pub map: Vec<MapEntry>,
    /// Every record, entry 0's first.
    pub records: Vec<Exception>,
}

/// The most map entries (without the sentinel) that fit in a chunk.
pub fn max_leaf_count(chunk_bytes: usize) -> u32 {
    (chunk_bytes.saturating_sub(LEAF_HEADER_BYTES) / MAP_ENTRY_BYTES).saturating_sub(1) as u32
}

/// The most records one origin chunk can have: a leaf holding that chunk's
/// entry alone is full.
pub fn max_records_per_origin(chunk_bytes: usize) -> usize {
    chunk_bytes.saturating_sub(LEAF_HEADER_BYTES + 2 * MAP_ENTRY_BYTES) / RECORD_BYTES
}

/// The most live snapshots a store of `chunk_bytes`-byte chunks serves: 29 at
/// 512 bytes, 61 at 1 KiB, 64 from 2 KiB on. The records of one origin chunk
/// (one per snapshot at most, their masks being disjoint) must fit one leaf.
pub fn max_snapshots(chunk_bytes: u64) -> u32 {
    let records = usize::try_from(chunk_bytes).map_or(usize::MAX, max_records_per_origin);
    records.min(MAX_SNAPSHOTS as usize) as u32
}

/// Refuses `snapshots` live snapshots on a store of `chunk_bytes`-byte chunks
/// when that is more than [`max_snapshots`].
pub fn check_snapshot_count(snapshots: u32, chunk_bytes: u64) -> Result<(), FormatError> {
    let max = max_snapshots(chunk_bytes);
    if snapshots > max {
        return Err(FormatError::TooManySnapshots {
            snapshots,
            chunk_bytes,
            max,
        });
    }
    Ok(())
}

impl Leaf {
    /// Decodes a buffer shorter than a leaf header and its sentinel (no chunk
    /// is): the missing bytes read as zero. Kept off the hot path of
    /// [`Leaf::decode`].
    #[cold]
    fn decode_short(chunk: &[u8]) -> Result<Self, LeafError> {
        let mut padded = [0u8; LEAF_HEADER_BYTES + MAP_ENTRY_BYTES];
        padded[..chunk.len()].copy_from_slice(chunk);
        Self::decode(&padded)
    }

    /// An empty leaf whose rchunks count from `base_chunk`.
    pub fn new(base_chunk: u64) -> Self {
        Leaf {
            base_chunk,
            ..Leaf::default()
        }
    }

    /// Decodes a leaf chunk. The count and every offset are checked against the
    /// chunk before anything is read through them; a buffer too short for the
    /// header and the sentinel is decoded as if zeros followed it.
    pub fn decode(chunk: &[u8]) -> Result<Self, LeafError> {
        if chunk.len() < LEAF_HEADER_BYTES + MAP_ENTRY_BYTES {
            return Self::decode_short(chunk);
        }
        let chunk_bytes = chunk.len();
        let magic = LittleEndian::read_u16(&chunk[0..2]);
        if magic != LEAF_MAGIC {
            return Err(LeafError::BadMagic { found: magic });
        }
        let version = LittleEndian::read_u16(&chunk[2..4]);
        if version != LEAF_VERSION {
            return Err(LeafError::BadVersion { found: version });
        }
        let count = LittleEndian::read_u32(&chunk[4..8]);
        let max = max_leaf_count(chunk_bytes);
        if count > max {
            return Err(LeafError::CountTooLarge { count, max });
        }
        let map_end = LEAF_HEADER_BYTES + MAP_ENTRY_BYTES * (count as usize + 1);
        let entry_at = |i: usize| {
            let at = LEAF_HEADER_BYTES + MAP_ENTRY_BYTES * i;
            (
                LittleEndian::read_u32(&chunk[at..at + 4]),
                LittleEndian::read_u32(&chunk[at + 4..at + 8]),
            )
        };
        let mut offsets = Vec::with_capacity(count as usize + 1);
        let mut previous = 0u32;
        for i in 0..=count as usize {
            let (offset, _) = entry_at(i);
            let o = offset as usize;
            if o < map_end || o > chunk_bytes || !(chunk_bytes - o).is_multiple_of(RECORD_BYTES) {
                if i == count as usize && o != chunk_bytes {
                    return Err(LeafError::BadSentinel {
                        entry: count,
                        offset,
                        chunk_bytes,
                    });
                }
                return Err(LeafError::BadOffset {
                    entry: i as u32,
                    offset,
                });
            }
            if i > 0 && offset < previous {
                return Err(LeafError::OffsetsOutOfOrder {
                    entry: i as u32,
                    offset,
                    previous,
                });
            }
            previous = offset;
            offsets.push(offset as usize);
        }
        if offsets[count as usize] != chunk_bytes {
            return Err(LeafError::BadSentinel {
                entry: count,
                offset: offsets[count as usize] as u32,
                chunk_bytes,
            });
        }
        let first_offset = offsets[0];
        let map = (0..count as usize)
            .map(|i| MapEntry {
                rchunk: entry_at(i).1,
                first: ((offsets[i] - first_offset) / RECORD_BYTES) as u32,
            })
            .collect();
        let records = chunk[first_offset..]
            .chunks_exact(RECORD_BYTES)
            .map(|r| Exception {
                share: LittleEndian::read_u64(&r[0..8]),
                chunk: LittleEndian::read_u64(&r[8..16]),
            })
            .collect();
        Ok(Leaf {
            base_chunk: LittleEndian::read_u64(&chunk[8..16]),
            stored_using_mask: LittleEndian::read_u64(&chunk[16..24]),
            stored_sentinel_rchunk: entry_at(count as usize).1,
            map,
            records,
        })
    }

    /// Encodes the leaf over a whole chunk. The leaf must fit (see [`Leaf::fits`]).
    pub fn encode(&self, chunk: &mut [u8]) {
        let chunk_bytes = chunk.len();
        chunk.fill(0);
        LittleEndian::write_u16(&mut chunk[0..2], LEAF_MAGIC);
        LittleEndian::write_u16(&mut chunk[2..4], LEAF_VERSION);
        LittleEndian::write_u32(&mut chunk[4..8], self.map.len() as u32);
        LittleEndian::write_u64(&mut chunk[8..16], self.base_chunk);
        LittleEndian::write_u64(&mut chunk[16..24], self.using_mask());
        let first_offset = chunk_bytes - RECORD_BYTES * self.records.len();
        let mut at = LEAF_HEADER_BYTES;
        for e in &self.map {
            let offset = first_offset + RECORD_BYTES * e.first as usize;
            LittleEndian::write_u32(&mut chunk[at..at + 4], offset as u32);
            LittleEndian::write_u32(&mut chunk[at + 4..at + 8], e.rchunk);
            at += MAP_ENTRY_BYTES;
        }
        LittleEndian::write_u32(&mut chunk[at..at + 4], chunk_bytes as u32);
        for (r, out) in self
            .records
            .iter()
            .zip(chunk[first_offset..].chunks_exact_mut(RECORD_BYTES))
        {
            LittleEndian::write_u64(&mut out[0..8], r.share);
            LittleEndian::write_u64(&mut out[8..16], r.chunk);
        }
    }

    /// Number of map entries (distinct origin chunks).
    pub fn count(&self) -> usize {
        self.map.len()
    }

    /// The OR of every record's share mask.
    pub fn using_mask(&self) -> u64 {
        self.records.iter().fold(0, |m, r| m | r.share)
    }

    /// Bytes the encoded leaf takes: header, map with sentinel, records.
    pub fn bytes_used(&self) -> usize {
        LEAF_HEADER_BYTES
            + MAP_ENTRY_BYTES * (self.map.len() + 1)
            + RECORD_BYTES * self.records.len()
    }

    /// Whether the leaf fits in a chunk of `chunk_bytes`.
    pub fn fits(&self, chunk_bytes: usize) -> bool {
        self.bytes_used() <= chunk_bytes
    }

    /// Free bytes left in a chunk of `chunk_bytes`.
    pub fn free_bytes(&self, chunk_bytes: usize) -> usize {
        chunk_bytes.saturating_sub(self.bytes_used())
    }

    /// Index range into `records` of entry `i`.
    pub fn record_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = self.map[i].first as usize;
        let end = self
            .map
            .get(i + 1)
            .map_or(self.records.len(), |e| e.first as usize);
        start..end.max(start)
    }

    /// The records of entry `i`.
    pub fn records_of(&self, i: usize) -> &[Exception] {
        &self.records[self.record_range(i)]
    }

    /// The origin chunk of entry `i`. A damaged `base_chunk` near 2^64 wraps
    /// instead of overflowing; the checker reports the entry out of its range.
    pub fn origin_of(&self, i: usize) -> u64 {
        self.base_chunk.wrapping_add(u64::from(self.map[i].rchunk))
    }

    /// The entry for origin chunk `origin`: `Ok(index)` if present, else
    /// `Err(insertion index)`. The map must be sorted.
    pub fn find(&self, origin: u64) -> Result<usize, usize> {
        match origin.checked_sub(self.base_chunk) {
            None => Err(0),
            Some(r) if r > u64::from(u32::MAX) => Err(self.map.len()),
            Some(r) => self.map.binary_search_by_key(&(r as u32), |e| e.rchunk),
        }
    }

    /// Adds `record` in front of entry `i`'s records.
    pub fn push_record(&mut self, i: usize, record: Exception) {
        let at = self.map[i].first as usize;
        self.records.insert(at, record);
        for e in &mut self.map[i + 1..] {
            e.first += 1;
        }
    }

    /// Adds a new entry at index `i` for `rchunk` holding one record.
    pub fn insert_entry(&mut self, i: usize, rchunk: u32, record: Exception) {
        let at = self
            .map
            .get(i)
            .map_or(self.records.len(), |e| e.first as usize);
        self.records.insert(at, record);
        self.map.insert(
            i,
            MapEntry {
                rchunk,
                first: at as u32,
            },
        );
        for e in &mut self.map[i + 1..] {
            e.first += 1;
        }
    }

    /// Removes the record at index `r` of `records`, and its entry if that leaves
    /// the entry empty.
    pub fn remove_record(&mut self, r: usize) {
        self.records.remove(r);
        let owner = self.map.partition_point(|e| e.first as usize <= r) - 1;
        for e in &mut self.map[owner + 1..] {
            e.first -= 1;
        }
        if self.record_range(owner).is_empty() {
            self.map.remove(owner);
        }
    }

    /// Moves the entries from index `at` on into a new leaf based at `new_base`
    /// (every moved origin chunk must be at least `new_base` and within 2^32 of it).
    pub fn split_off(&mut self, at: usize, new_base: u64) -> Leaf {
        let first_moved = self
            .map
            .get(at)
            .map_or(self.records.len(), |e| e.first as usize);
        let records = self.records.split_off(first_moved);
        let map = self
            .map
            .split_off(at)
            .into_iter()
            .map(|e| MapEntry {
                rchunk: self
                    .base_chunk
                    .wrapping_add(u64::from(e.rchunk))
                    .wrapping_sub(new_base) as u32,
                first: e.first - first_moved as u32,
            })
            .collect();
        Leaf {
            base_chunk: new_base,
            stored_using_mask: 0,
            stored_sentinel_rchunk: 0,
            map,
            records,
        }
    }

    /// Appends every entry of `other` (all above this leaf's entries, and within
    /// 2^32 of this leaf's base).
    pub fn append(&mut self, other: Leaf) {
        let shift = self.records.len() as u32;
        for e in other.map {
            self.map.push(MapEntry {
                rchunk: other
                    .base_chunk
                    .wrapping_add(u64::from(e.rchunk))
                    .wrapping_sub(self.base_chunk) as u32,
                first: e.first + shift,
            });
        }
        self.records.extend(other.records);
    }

    /// Whether every origin chunk of `other` can be expressed relative to this
    /// leaf's base.
    pub fn can_absorb(&self, other: &Leaf) -> bool {
        other.map.iter().all(|e| {
            other
                .base_chunk
                .checked_add(u64::from(e.rchunk))
                .and_then(|origin| origin.checked_sub(self.base_chunk))
                .is_some_and(|r| r <= u64::from(u32::MAX))
        })
    }

    /// Iterates `(origin chunk, records)` over the entries.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &[Exception])> {
        (0..self.map.len()).map(|i| (self.origin_of(i), self.records_of(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exc(share: u64, chunk: u64) -> Exception {
        Exception { share, chunk }
    }

    fn sample() -> Leaf {
        let mut l = Leaf::new(1000);
        l.insert_entry(0, 5, exc(1, 50));
        l.insert_entry(0, 2, exc(2, 20));
        l.push_record(1, exc(4, 51));
        l.insert_entry(2, 9, exc(3, 90));
        l
    }

    #[test]
    fn layout_matches_the_spec() {
        let l = sample();
        let mut chunk = vec![0u8; 512];
        l.encode(&mut chunk);
        assert_eq!(LittleEndian::read_u16(&chunk[0..2]), 0x1eaf);
        assert_eq!(LittleEndian::read_u32(&chunk[4..8]), 3);
        assert_eq!(LittleEndian::read_u64(&chunk[8..16]), 1000);
        assert_eq!(LittleEndian::read_u64(&chunk[16..24]), 7);
        // map: entry 0 (rchunk 2) has the lowest records; the sentinel ends at 512.
        let off = |i: usize| LittleEndian::read_u32(&chunk[24 + 8 * i..28 + 8 * i]);
        let rch = |i: usize| LittleEndian::read_u32(&chunk[28 + 8 * i..32 + 8 * i]);
        assert_eq!((off(0), rch(0)), (512 - 64, 2));
        assert_eq!((off(1), rch(1)), (512 - 48, 5));
        assert_eq!((off(2), rch(2)), (512 - 16, 9));
        assert_eq!((off(3), rch(3)), (512, 0));
        // entry 1's newest record (chunk 51) is in front of its older one.
        assert_eq!(LittleEndian::read_u64(&chunk[512 - 48 + 8..512 - 32]), 51);
        assert_eq!(l.bytes_used(), 24 + 32 + 64);
        let back = Leaf::decode(&chunk).unwrap();
        assert_eq!(back.map, l.map);
        assert_eq!(back.records, l.records);
        assert_eq!(back.stored_using_mask, 7);
    }

    #[test]
    fn empty_leaf_round_trips() {
        let mut chunk = vec![0u8; 512];
        Leaf::new(0).encode(&mut chunk);
        assert_eq!(LittleEndian::read_u32(&chunk[24..28]), 512);
        let l = Leaf::decode(&chunk).unwrap();
        assert_eq!(l.count(), 0);
        assert!(l.records.is_empty());
    }

    #[test]
    fn full_leaf_fits_exactly() {
        let mut l = Leaf::new(0);
        let mut r = 0;
        loop {
            let mut next = l.clone();
            next.insert_entry(next.count(), r, exc(1, u64::from(r)));
            if !next.fits(512) {
                break;
            }
            l = next;
            r += 1;
        }
        assert_eq!(l.count(), (512 - 24 - 8) / 24);
        let mut chunk = vec![0u8; 512];
        l.encode(&mut chunk);
        assert_eq!(Leaf::decode(&chunk).unwrap().records, l.records);
    }

    #[test]
    fn find_split_and_append() {
        let mut l = sample();
        assert_eq!(l.find(1005), Ok(1));
        assert_eq!(l.find(1003), Err(1));
        assert_eq!(l.find(3), Err(0));
        assert_eq!(l.find(1000 + (1 << 33)), Err(3));
        let upper = l.split_off(1, 1004);
        assert_eq!(l.count(), 1);
        assert_eq!(upper.base_chunk, 1004);
        assert_eq!(upper.origin_of(0), 1005);
        assert_eq!(upper.records_of(0), &[exc(4, 51), exc(1, 50)]);
        assert!(l.can_absorb(&upper));
        l.append(upper);
        assert_eq!(l.map, sample().map);
        assert_eq!(l.records, sample().records);
    }

    #[test]
    fn removing_the_last_record_removes_the_entry() {
        let mut l = sample();
        l.remove_record(0);
        assert_eq!(l.count(), 2);
        assert_eq!(l.origin_of(0), 1005);
        l.remove_record(1);
        assert_eq!(l.records_of(0), &[exc(4, 51)]);
    }

    #[test]
    fn decode_never_trusts_count_or_offsets() {
        let mut chunk = vec![0u8; 512];
        sample().encode(&mut chunk);
        let mut bad = chunk.clone();
        LittleEndian::write_u32(&mut bad[4..8], 100);
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::CountTooLarge { .. })
        ));
        let mut bad = chunk.clone();
        LittleEndian::write_u32(&mut bad[24..28], 20);
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::BadOffset { entry: 0, .. })
        ));
        let mut bad = chunk.clone();
        LittleEndian::write_u32(&mut bad[24..28], 513);
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::BadOffset { .. })
        ));
        let mut bad = chunk.clone();
        LittleEndian::write_u32(&mut bad[32..36], 512 - 80);
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::OffsetsOutOfOrder { entry: 1, .. })
        ));
        let mut bad = chunk.clone();
        LittleEndian::write_u32(&mut bad[48..52], 496);
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::BadSentinel { .. })
        ));
        let mut bad = chunk.clone();
        bad[0] = 0;
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::BadMagic { .. })
        ));
        let mut bad = chunk;
        bad[2] = 1;
        assert!(matches!(
            Leaf::decode(&bad),
            Err(LeafError::BadVersion { found: 1 })
        ));
    }
}
