//! Grouping the contents of one output chunk by their bytes: identical contents
//! are stored once, with the snapshots of all of them in one share mask. A
//! 64-bit hash picks the candidates and a byte comparison decides, so two
//! contents are grouped exactly when they are equal. Hashes are taken only
//! once a second content arrives: a chunk seen one way costs no hashing.

/// The distinct contents of one output chunk, with the snapshots seeing each.
#[derive(Debug)]
pub(crate) struct ChunkGroups {
    chunk_bytes: usize,
    /// Group i's content at `i * chunk_bytes`, then the slot; it only grows,
    /// so that a slot is never zeroed again.
    arena: Vec<u8>,
    groups: Vec<Group>,
    added: u64,
}

/// One distinct content; its hash once another content was compared with it.
#[derive(Debug, Clone, Copy)]
struct Group {
    mask: u64,
    hash: Option<u64>,
}

impl ChunkGroups {
    /// Groups of contents of `chunk_bytes`.
    pub(crate) fn new(chunk_bytes: usize) -> Self {
        ChunkGroups {
            chunk_bytes,
            arena: Vec::new(),
            groups: Vec::new(),
            added: 0,
        }
    }

    /// Empties the groups for the next output chunk.
    pub(crate) fn clear(&mut self) {
        self.groups.clear();
        self.added = 0;
    }

    /// Adds `content` seen by the snapshots in `mask`.
    pub(crate) fn add(&mut self, mask: u64, content: &[u8]) {
        debug_assert_eq!(content.len(), self.chunk_bytes);
        self.slot().copy_from_slice(content);
        self.add_slot(mask);
    }

    /// Room for the next content, to be filled and then added with
    /// [`ChunkGroups::add_slot`].
    pub(crate) fn slot(&mut self) -> &mut [u8] {
        let start = self.groups.len() * self.chunk_bytes;
        let end = start + self.chunk_bytes;
        if self.arena.len() < end {
            self.arena.resize(end, 0);
        }
        &mut self.arena[start..end]
    }

    /// Adds the content filled into [`ChunkGroups::slot`], seen by the
    /// snapshots in `mask`.
    pub(crate) fn add_slot(&mut self, mask: u64) {
        self.added += 1;
        let cb = self.chunk_bytes;
        let n = self.groups.len();
        if n == 0 {
            self.groups.push(Group { mask, hash: None });
            return;
        }
        let (kept, rest) = self.arena.split_at(n * cb);
        let new = &rest[..cb];
        let hash = content_hash(new);
        let found = self.groups.iter_mut().enumerate().position(|(i, g)| {
            let bytes = &kept[i * cb..(i + 1) * cb];
            *g.hash.get_or_insert_with(|| content_hash(bytes)) == hash && bytes == new
        });
        match found {
            Some(i) => self.groups[i].mask |= mask,
            None => self.groups.push(Group {
                mask,
                hash: Some(hash),
            }),
        }
    }

    /// Distinct contents.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// Contents added since the last [`ChunkGroups::clear`].
    pub(crate) fn added(&self) -> u64 {
        self.added
    }

    /// `(mask, content)` of each distinct content, in the order first added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.groups
            .iter()
            .zip(self.arena.chunks_exact(self.chunk_bytes))
            .map(|(g, bytes)| (g.mask, bytes))
    }
}

/// A fast 64-bit hash of a chunk (a multiple of 8 bytes long).
fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for word in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_contents_share_one_group() {
        let mut groups = ChunkGroups::new(16);
        groups.add(0b0001, &[1; 16]);
        groups.add(0b0010, &[2; 16]);
        groups.add(0b0100, &[1; 16]);
        let mut last = [1u8; 16];
        last[15] = 9;
        groups.add(0b1000, &last);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups.added(), 4);
        let got: Vec<(u64, Vec<u8>)> = groups.iter().map(|(m, b)| (m, b.to_vec())).collect();
        assert_eq!(got[0], (0b0101, vec![1; 16]));
        assert_eq!(got[1], (0b0010, vec![2; 16]));
        assert_eq!(got[2], (0b1000, last.to_vec()));
        groups.clear();
        assert_eq!(groups.len(), 0);
    }

    #[test]
    fn contents_filled_in_place_are_grouped_like_added_ones() {
        let mut groups = ChunkGroups::new(8);
        groups.add(0b001, &[5; 8]);
        groups.add(0b010, &[6; 8]);
        groups.clear();
        groups.slot().copy_from_slice(&[3; 8]);
        groups.add_slot(0b001);
        groups.slot().copy_from_slice(&[4; 8]);
        groups.add_slot(0b010);
        groups.slot().copy_from_slice(&[3; 8]);
        groups.add_slot(0b100);
        assert_eq!(groups.added(), 3);
        let got: Vec<(u64, Vec<u8>)> = groups.iter().map(|(m, b)| (m, b.to_vec())).collect();
        assert_eq!(got, vec![(0b101, vec![3; 8]), (0b010, vec![4; 8])]);
    }

    #[test]
    fn the_hash_sees_every_word() {
        let a = [0u8; 64];
        let mut b = a;
        b[63] = 1;
        assert_ne!(content_hash(&a), content_hash(&b));
    }
}
