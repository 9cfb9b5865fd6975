//! Bit sets for the checkers: one bit per chunk, so memory grows with the
//! device, never with the number of records.

use std::collections::HashSet;

/// A fixed-size bit set over `0..len`.
#[derive(Debug, Clone)]
pub struct DenseBitmap {
    words: Vec<u64>,
    len: u64,
}

/// Set bits of `words`, with the CPU's `popcnt` where it has one (x86_64
/// builds target CPUs without it, and the portable count is several times
/// slower over a large bitset).
pub(crate) fn count_ones_of(words: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has `popcnt`, detected just above.
        return unsafe { count_ones_popcnt(words) };
    }
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn count_ones_popcnt(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

impl DenseBitmap {
    /// An all-clear set of `len` bits.
    pub fn new(len: u64) -> Self {
        DenseBitmap {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    /// The set of `len` bits stored in `words` (bit `i` in word `i / 64`,
    /// least significant first); bits past `len` are dropped.
    pub fn from_words(mut words: Vec<u64>, len: u64) -> Self {
        words.resize(len.div_ceil(64) as usize, 0);
        if let (Some(last), 1..) = (words.last_mut(), len % 64) {
            *last &= !(u64::MAX << (len % 64));
        }
        DenseBitmap { words, len }
    }

    /// Number of bits.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether bit `i` is set (false past the end).
    #[inline]
    pub fn get(&self, i: u64) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Sets bit `i` and returns whether it was already set. `i` must be in range.
    #[inline]
    pub fn test_and_set(&mut self, i: u64) -> bool {
        let word = &mut self.words[(i / 64) as usize];
        let mask = 1 << (i % 64);
        let was = *word & mask != 0;
        *word |= mask;
        was
    }

    /// The 64 bits `64 * index .. 64 * index + 64`, bit 0 first (0 past the end).
    #[inline]
    pub fn word(&self, index: u64) -> u64 {
        self.words.get(index as usize).copied().unwrap_or(0)
    }

    /// Asks the CPU to start loading the word of bit `i` (nothing past the end),
    /// so that testing many random bits overlaps their cache misses.
    #[inline]
    pub fn prefetch(&self, i: u64) {
        if let Some(word) = self.words.get((i / 64) as usize) {
            prefetch_word(word);
        }
    }

    /// Clears bit `i`. `i` must be in range.
    #[inline]
    pub fn clear(&mut self, i: u64) {
        self.words[(i / 64) as usize] &= !(1 << (i % 64));
    }

    /// The words, bit `i` in word `i / 64` (least significant first); bits
    /// past `len` are clear.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        count_ones_of(&self.words)
    }

    /// Number of set bits in `from..to` (bits past the end count as clear).
    pub fn count_ones_in(&self, from: u64, to: u64) -> u64 {
        let to = to.min(self.len);
        if from >= to {
            return 0;
        }
        let (first, last) = (from / 64, (to - 1) / 64);
        let head = u64::MAX << (from % 64);
        let tail = u64::MAX >> (63 - (to - 1) % 64);
        if first == last {
            return u64::from((self.word(first) & head & tail).count_ones());
        }
        let middle = count_ones_of(&self.words[(first + 1) as usize..last as usize]);
        u64::from((self.word(first) & head).count_ones())
            + middle
            + u64::from((self.word(last) & tail).count_ones())
    }

    /// The maximal runs `[start, end)` of clear bits inside `from..to`.
    pub fn clear_runs(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        self.runs(from, to.min(self.len), false)
    }

    /// The maximal runs `[start, end)` of set bits inside `from..to`.
    pub fn set_runs(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        self.runs(from, to.min(self.len), true)
    }

    fn runs(&self, from: u64, to: u64, value: bool) -> Vec<(u64, u64)> {
        let mut runs = Vec::new();
        let mut i = from;
        while i < to {
            // Skip whole words that hold no bit of the wanted value.
            if i.is_multiple_of(64) && i + 64 <= to {
                let word = self.words[(i / 64) as usize];
                let unwanted = if value { 0 } else { u64::MAX };
                if word == unwanted {
                    i += 64;
                    continue;
                }
            }
            if self.get(i) != value {
                i += 1;
                continue;
            }
            let start = i;
            while i < to {
                if i.is_multiple_of(64) && i + 64 <= to {
                    let wanted = if value { u64::MAX } else { 0 };
                    if self.words[(i / 64) as usize] == wanted {
                        i += 64;
                        continue;
                    }
                }
                if self.get(i) != value {
                    break;
                }
                i += 1;
            }
            runs.push((start, i));
        }
        runs
    }
}

/// Bits per page of a [`SparseBitmap`].
const PAGE_BITS: u64 = 1 << 15;
/// Pages addressed directly; chunks beyond go to a hash set.
const DIRECT_PAGES: u64 = 1 << 20;

/// A bit set over all of `u64` for numbers read from disk (origin chunks):
/// pages of 32768 bits are allocated on first use, so memory is one bit per
/// chunk of the range actually touched; numbers too large for the page table
/// (absurd values from damaged records) are kept in a hash set.
#[derive(Debug, Default)]
pub struct SparseBitmap {
    pages: Vec<Option<Box<[u64]>>>,
    far: HashSet<u64>,
}

impl SparseBitmap {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets bit `i` and returns whether it was already set.
    #[inline]
    pub fn test_and_set(&mut self, i: u64) -> bool {
        let page = i / PAGE_BITS;
        if page >= DIRECT_PAGES {
            return !self.far.insert(i);
        }
        let page = page as usize;
        if page >= self.pages.len() {
            self.pages.resize_with(page + 1, || None);
        }
        let words = self.pages[page]
            .get_or_insert_with(|| vec![0u64; (PAGE_BITS / 64) as usize].into_boxed_slice());
        let bit = i % PAGE_BITS;
        let word = &mut words[(bit / 64) as usize];
        let mask = 1 << (bit % 64);
        let was = *word & mask != 0;
        *word |= mask;
        was
    }

    /// Makes sure the page holding bit `i` exists and asks the CPU to start
    /// loading the word, so that a later [`SparseBitmap::test_and_set`] of many
    /// random bits overlaps their cache misses instead of paying them one by one.
    #[inline]
    pub fn prefetch(&mut self, i: u64) {
        let page = i / PAGE_BITS;
        if page >= DIRECT_PAGES {
            return;
        }
        let page = page as usize;
        if page >= self.pages.len() {
            self.pages.resize_with(page + 1, || None);
        }
        let words = self.pages[page]
            .get_or_insert_with(|| vec![0u64; (PAGE_BITS / 64) as usize].into_boxed_slice());
        prefetch_word(&words[((i % PAGE_BITS) / 64) as usize]);
    }

    /// Whether bit `i` is set.
    pub fn get(&self, i: u64) -> bool {
        let page = i / PAGE_BITS;
        if page >= DIRECT_PAGES {
            return self.far.contains(&i);
        }
        let bit = i % PAGE_BITS;
        self.pages
            .get(page as usize)
            .and_then(|p| p.as_ref())
            .is_some_and(|words| words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

#[inline(always)]
fn prefetch_word(word: &u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; the pointer comes from a live reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(word as *const u64 as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = word;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn count_ones_in_counts_the_set_bits_of_a_range_only() {
        let set = [0u64, 5, 63, 64, 65, 127, 128, 190, 199];
        let mut bits = DenseBitmap::new(200);
        for i in set {
            bits.test_and_set(i);
        }
        for (from, to) in [
            (0, 200),
            (1, 64),
            (63, 65),
            (64, 128),
            (100, 300),
            (5, 6),
            (7, 7),
            (150, 100),
        ] {
            let want = set.iter().filter(|&&i| i >= from && i < to).count() as u64;
            assert_eq!(bits.count_ones_in(from, to), want, "{from}..{to}");
        }
    }

    #[test]
    fn dense_basics() {
        let mut bits = DenseBitmap::new(130);
        assert!(!bits.test_and_set(0));
        assert!(bits.test_and_set(0));
        assert!(!bits.test_and_set(129));
        assert!(bits.get(129));
        assert!(!bits.get(500));
        assert_eq!(bits.count_ones(), 2);
        bits.clear(0);
        assert_eq!(bits.clear_runs(0, 130), vec![(0, 129)]);
        assert_eq!(bits.set_runs(0, 130), vec![(129, 130)]);
    }

    #[test]
    fn prefetch_changes_nothing() {
        let mut bits = SparseBitmap::new();
        bits.prefetch(1 << 40);
        bits.prefetch(77);
        assert!(!bits.get(77));
        assert!(!bits.test_and_set(77));
        assert!(bits.get(77));
    }

    #[test]
    fn sparse_far_values() {
        let mut bits = SparseBitmap::new();
        assert!(!bits.test_and_set(u64::MAX));
        assert!(bits.test_and_set(u64::MAX));
        assert!(!bits.test_and_set(5));
        assert!(bits.get(5));
        assert!(!bits.get(6));
    }

    proptest! {
        #[test]
        fn count_ones_counts_every_set_bit(words in proptest::collection::vec(any::<u64>(), 0..40), len in 0u64..2600) {
            let bits = DenseBitmap::from_words(words, len);
            let naive = (0..len).filter(|&i| bits.get(i)).count() as u64;
            proptest::prop_assert_eq!(bits.count_ones(), naive);
            proptest::prop_assert_eq!(bits.count_ones_in(0, len), naive);
        }

        #[test]
        fn runs_match_a_naive_scan(set in proptest::collection::vec(0u64..300, 0..200), from in 0u64..300, to in 0u64..300) {
            let mut bits = DenseBitmap::new(300);
            for &i in &set { bits.test_and_set(i); }
            let naive = |value: bool| {
                let mut runs = Vec::new();
                let mut i = from;
                while i < to {
                    if bits.get(i) == value {
                        let s = i;
                        while i < to && bits.get(i) == value { i += 1; }
                        runs.push((s, i));
                    } else { i += 1; }
                }
                runs
            };
            prop_assert_eq!(bits.clear_runs(from, to), naive(false));
            prop_assert_eq!(bits.set_runs(from, to), naive(true));
        }
    }
}
