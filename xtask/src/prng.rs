//! Deterministic pseudo-random numbers and permutations for generated stores:
//! the same seed always gives the same store, on every machine.

/// SplitMix64: a tiny, fast, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0), by multiply-and-shift.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// Rounds of the bit mixer; four are plenty to look random.
const ROUNDS: usize = 4;

/// A seeded bijection of `0..len`, computed in O(1) memory: a keyed mixer on the
/// smallest power of two holding `len` (xor with a key, multiply by an odd key,
/// xor-shift right: each step is invertible modulo 2^bits), walked until the
/// value falls below `len` (cycle walking keeps it a bijection).
#[derive(Debug, Clone)]
pub struct Permutation {
    len: u64,
    mask: u64,
    shift: u32,
    keys: [(u64, u64); ROUNDS],
}

impl Permutation {
    /// A permutation of `0..len` chosen by `seed`.
    pub fn new(len: u64, seed: u64) -> Self {
        let bits = if len <= 1 {
            0
        } else {
            64 - (len - 1).leading_zeros()
        };
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let mut rng = SplitMix64::new(seed ^ 0x6a09_e667_f3bc_c909);
        let keys = std::array::from_fn(|_| (rng.next_u64() & mask, (rng.next_u64() | 1) & mask));
        Permutation {
            len,
            mask,
            shift: bits.div_ceil(2).max(1),
            keys,
        }
    }

    /// The number of values permuted.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The image of `index` (which must be below [`Permutation::len`]).
    pub fn apply(&self, index: u64) -> u64 {
        debug_assert!(index < self.len);
        let mut value = index;
        loop {
            value = self.mix(value);
            if value < self.len {
                return value;
            }
        }
    }

    fn mix(&self, mut value: u64) -> u64 {
        for &(xor, odd) in &self.keys {
            value ^= xor;
            value = value.wrapping_mul(odd | 1) & self.mask;
            value ^= value >> self.shift;
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_bijection(len: u64, seed: u64) -> bool {
        let perm = Permutation::new(len, seed);
        let mut seen = vec![false; len as usize];
        (0..len).all(|i| {
            let v = perm.apply(i) as usize;
            v < seen.len() && !std::mem::replace(&mut seen[v], true)
        })
    }

    #[test]
    fn permutations_are_bijections() {
        for len in [1, 2, 3, 7, 64, 100, 1000, 4096, 5000] {
            for seed in [0, 1, 42] {
                assert!(is_bijection(len, seed), "len {len} seed {seed}");
            }
        }
    }

    #[test]
    fn permutations_depend_on_the_seed_and_look_shuffled() {
        let a = Permutation::new(1 << 20, 1);
        let b = Permutation::new(1 << 20, 2);
        let first_a: Vec<u64> = (0..16).map(|i| a.apply(i)).collect();
        let first_b: Vec<u64> = (0..16).map(|i| b.apply(i)).collect();
        assert_ne!(first_a, first_b);
        let in_order = first_a.windows(2).filter(|w| w[0] < w[1]).count();
        assert!((3..12).contains(&in_order), "{first_a:?}");
    }

    #[test]
    fn below_stays_in_range_and_is_repeatable() {
        let mut one = SplitMix64::new(7);
        let mut two = SplitMix64::new(7);
        for bound in 1..1000 {
            let value = one.below(bound);
            assert!(value < bound);
            assert_eq!(value, two.below(bound));
        }
    }
}
