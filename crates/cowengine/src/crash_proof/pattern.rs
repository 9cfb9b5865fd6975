//! Sector contents that name themselves: every sector the workload writes is
//! filled from a 64-bit tag, so a view read back after a crash is compared
//! with the model as one tag per sector, and a torn or foreign sector reads as
//! no tag at all.

/// The unit the model tracks: a sector, the smallest write the workload issues.
pub const SECTOR: usize = 512;

/// A deterministic 64-bit generator (splitmix64): workloads, crash samples.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` and a stream number.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng(mix(seed ^ mix(stream.wrapping_add(0x5851_f42d_4c95_7f2d))))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The tag of sector `sector` written by write number `write` (0: the
/// origin's initial contents).
pub fn tag(write: u64, sector: u64) -> u64 {
    (write << 32) | sector
}

/// The write number and sector a tag names.
pub fn describe(tag: u64) -> String {
    match tag >> 32 {
        0 => format!("the initial contents of sector {}", tag & 0xffff_ffff),
        w => format!("write {w} of sector {}", tag & 0xffff_ffff),
    }
}

/// Fills a sector from `tag`.
pub fn fill(tag: u64, sector: &mut [u8]) {
    for (i, word) in sector.chunks_exact_mut(8).enumerate() {
        let value = if i == 0 { tag } else { mix(tag ^ i as u64) };
        word.copy_from_slice(&value.to_le_bytes());
    }
}

/// The tag a sector was filled from, or `None` when it holds anything else.
/// Writes land whole, so the first, second and last words tell.
pub fn tag_of(sector: &[u8]) -> Option<u64> {
    let word = |i: usize| u64::from_le_bytes(sector[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let tag = word(0);
    let last = sector.len() / 8 - 1;
    (word(1) == mix(tag ^ 1) && word(last) == mix(tag ^ last as u64)).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_sector_reads_back_its_tag_and_nothing_else_does() {
        let mut sector = [0u8; SECTOR];
        assert_eq!(tag_of(&sector), None);
        fill(tag(3, 17), &mut sector);
        assert_eq!(tag_of(&sector), Some(tag(3, 17)));
        sector[SECTOR - 1] ^= 1;
        assert_eq!(tag_of(&sector), None, "a torn sector has no tag");
        assert_eq!(describe(tag(0, 5)), "the initial contents of sector 5");
        assert_eq!(describe(tag(2, 5)), "write 2 of sector 5");
    }

    #[test]
    fn the_generator_is_deterministic_per_seed_and_stream() {
        let (mut a, mut b, mut c) = (Rng::new(1, 2), Rng::new(1, 2), Rng::new(1, 3));
        let first = a.next_u64();
        assert_eq!(first, b.next_u64());
        assert_ne!(first, c.next_u64());
        assert!((0..1000).all(|_| a.below(7) < 7));
    }
}
