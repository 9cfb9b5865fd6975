//! What makes a decoded leaf usable, and the facts about it that the scan,
//! the selection and the snapmask decision weigh.

use crate::shared::leaf::{Leaf, LEAF_MAGIC, LEAF_VERSION};

/// The first four bytes of every leaf: magic 0x1eaf and version 0, little-endian.
pub(super) const LEAF_PREFIX: [u8; 4] = [
    LEAF_MAGIC as u8,
    (LEAF_MAGIC >> 8) as u8,
    LEAF_VERSION as u8,
    (LEAF_VERSION >> 8) as u8,
];

/// Whether `chunk` starts like a leaf (before the full decode).
pub(super) fn starts_like_leaf(chunk: &[u8]) -> bool {
    chunk.len() >= 4 && chunk[..4] == LEAF_PREFIX
}

/// The first and last origin chunk of a leaf whose map can be trusted: origin
/// chunks strictly ascending and none overflowing. `Ok(None)` for a leaf with
/// no entries.
pub(super) fn leaf_span(leaf: &Leaf) -> Result<Option<(u64, u64)>, String> {
    let mut span: Option<(u64, u64)> = None;
    for (i, entry) in leaf.map.iter().enumerate() {
        let Some(origin) = leaf.base_chunk.checked_add(u64::from(entry.rchunk)) else {
            return Err(format!(
                "map entry {i}: base {} + rchunk {} overflows",
                leaf.base_chunk, entry.rchunk
            ));
        };
        span = match span {
            Some((_, last)) if origin <= last => {
                return Err(format!(
                    "map entry {i}: origin chunk {origin} does not ascend (previous {last})"
                ))
            }
            Some((first, _)) => Some((first, origin)),
            None => Some((origin, origin)),
        };
    }
    Ok(span)
}

/// The OR of a leaf's share masks, and whether the stored `using_mask` agrees
/// with it (the engine writes it so; 0 means "not written" and proves nothing).
pub(super) fn mask_facts(leaf: &Leaf) -> (u64, bool) {
    let or = leaf.using_mask();
    (or, or != 0 && leaf.stored_using_mask == or)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::leaf::{Exception, MapEntry};

    fn leaf(base: u64, rchunks: &[u32]) -> Leaf {
        let mut l = Leaf::new(base);
        for (i, &r) in rchunks.iter().enumerate() {
            l.map.push(MapEntry {
                rchunk: r,
                first: i as u32,
            });
            l.records.push(Exception {
                share: 1,
                chunk: 100 + i as u64,
            });
        }
        l
    }

    #[test]
    fn spans_and_order() {
        assert_eq!(leaf_span(&leaf(10, &[1, 5, 9])), Ok(Some((11, 19))));
        assert_eq!(leaf_span(&leaf(10, &[])), Ok(None));
        assert!(leaf_span(&leaf(10, &[5, 5])).is_err());
        assert!(leaf_span(&leaf(10, &[6, 5])).is_err());
        assert!(leaf_span(&leaf(u64::MAX, &[1])).is_err());
    }

    #[test]
    fn using_mask_confirms_only_when_written() {
        let mut l = leaf(0, &[1, 2]);
        l.records[1].share = 4;
        assert_eq!(mask_facts(&l), (5, false));
        l.stored_using_mask = 5;
        assert_eq!(mask_facts(&l), (5, true));
        let mut chunk = vec![0u8; 512];
        l.encode(&mut chunk);
        assert!(starts_like_leaf(&chunk));
        assert!(!starts_like_leaf(&[0xaf, 0x1e, 1, 0]));
    }
}
