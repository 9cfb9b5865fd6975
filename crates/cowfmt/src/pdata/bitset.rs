//! dm-bitset (`dm-bitset.c`): a dm-array of le64 words, bit `i` in word
//! `i / 64` at bit `i % 64` (least significant first). Reading gives the
//! bits, the bit ranges whose words could not be read, and the bits set
//! past the last one; the bits' set runs come as an iterator; a fresh bitset
//! is built from a bitmap.

use std::ops::Range;

use crate::bitset::{count_ones_of, DenseBitmap};
use crate::error::Result;
use crate::pdata::alloc::Allocator;
use crate::pdata::array::{self, ArrayBlock, ArrayDefect, ArraySpec, ArrayVisitor};
use crate::pdata::btree::{BuildError, Mode, NodeAt};
use crate::pdata::io::{BlockSource, BlockTarget};

/// Bits per array value.
pub const BITS_PER_WORD: u64 = 64;

/// What is wrong with a bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitsetDefect {
    /// Its array (B-tree or array blocks) is damaged.
    #[error(transparent)]
    Array(#[from] ArrayDefect),
    /// Bits past the last one are set in the last word.
    #[error("{count} bits past bit {nr_bits} are set in the last word")]
    BitsPastEnd {
        /// Bits of the bitset.
        nr_bits: u64,
        /// How many are set past it.
        count: u32,
        /// The bits set past it, as a mask over the last word.
        mask: u64,
    },
}

/// A bitset as read: its bits (those of lost words clear), the bit ranges
/// whose words were lost, and every defect.
#[derive(Debug, Clone)]
pub struct BitsetRead {
    /// The bits read; bits past the end are not kept.
    pub bits: DenseBitmap,
    /// How many of them are set (counted while they were read, where the
    /// words were in cache).
    pub ones: u64,
    /// Bit ranges whose words could not be read, ascending, merged.
    pub lost: Vec<Range<u64>>,
    /// Every defect, in the order found.
    pub defects: Vec<BitsetDefect>,
    /// Whether a strict read stopped at a defect.
    pub stopped: bool,
}

/// Words a bitset of `nr_bits` bits is stored in.
pub fn nr_words(nr_bits: u64) -> u64 {
    nr_bits.div_ceil(BITS_PER_WORD)
}

/// The array spec of the bitset of `nr_bits` bits rooted at `root`.
pub fn array_spec(root: u64, nr_bits: u64) -> ArraySpec {
    ArraySpec {
        root,
        len: nr_words(nr_bits),
        value_size: 8,
    }
}

/// Every block reference a bitset read meets, with its place, for walks
/// that report each block (a closure taking the location is one).
pub trait BitsetReferences {
    /// A node of the array's B-tree, first reach.
    fn btree_node(&mut self, at: &NodeAt);
    /// A node of the array's B-tree reached again.
    fn btree_revisit(&mut self, location: u64);
    /// A leaf's reference to array block `index` at `location`.
    fn array_block(&mut self, index: u64, location: u64);
}

impl<F: FnMut(u64)> BitsetReferences for F {
    fn btree_node(&mut self, at: &NodeAt) {
        self(at.location)
    }
    fn btree_revisit(&mut self, location: u64) {
        self(location)
    }
    fn array_block(&mut self, _index: u64, location: u64) {
        self(location)
    }
}

struct Collect<'a> {
    words: Vec<u64>,
    ones: u64,
    per_block: u64,
    nr_bits: u64,
    lost: Vec<Range<u64>>,
    defects: Vec<BitsetDefect>,
    references: &'a mut dyn BitsetReferences,
}

impl ArrayVisitor for Collect<'_> {
    fn btree_node_at(&mut self, at: &NodeAt) {
        self.references.btree_node(at);
    }
    fn btree_revisit(&mut self, location: u64) {
        self.references.btree_revisit(location);
    }
    fn reference(&mut self, index: u64, location: u64) {
        self.references.array_block(index, location);
    }
    fn block(&mut self, index: u64, block: &ArrayBlock) {
        let first = (index * self.per_block) as usize;
        let end = (first + block.nr_entries() as usize).min(self.words.len());
        let filled = &mut self.words[first..end];
        for (slot, word) in filled.iter_mut().zip(block.words()) {
            *slot = word;
        }
        self.ones += count_ones_of(filled);
    }
    fn defect(&mut self, defect: ArrayDefect) {
        let blocks = defect.lost_blocks();
        let start = (blocks.start * self.per_block * BITS_PER_WORD).min(self.nr_bits);
        let end = (blocks.end * self.per_block * BITS_PER_WORD).min(self.nr_bits);
        if start < end {
            match self.lost.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => self.lost.push(start..end),
            }
        }
        self.defects.push(defect.into());
    }
}

/// Reads the bitset of `nr_bits` bits rooted at `root` (a count the caller
/// has checked: one bit of memory each). `references` is
/// called with every block the bitset references, once per reference (B-tree
/// nodes, array blocks), for a space map check. Fails only when the source
/// cannot be read.
pub fn read_bitset(
    source: &dyn BlockSource,
    root: u64,
    nr_bits: u64,
    mode: Mode,
    references: &mut dyn FnMut(u64),
) -> Result<BitsetRead> {
    read_bitset_with(source, root, nr_bits, mode, &mut { references })
}

/// [`read_bitset`] telling `references` where each reference is (B-tree
/// node places, array block indices).
pub fn read_bitset_with(
    source: &dyn BlockSource,
    root: u64,
    nr_bits: u64,
    mode: Mode,
    references: &mut dyn BitsetReferences,
) -> Result<BitsetRead> {
    let spec = array_spec(root, nr_bits);
    let mut collect = Collect {
        words: vec![0; spec.len as usize],
        ones: 0,
        per_block: u64::from(spec.max_entries()),
        nr_bits,
        lost: Vec::new(),
        defects: Vec::new(),
        references,
    };
    let summary = array::walk_array(source, spec, mode, &mut collect)?;
    let Collect {
        mut words,
        mut ones,
        mut lost,
        mut defects,
        ..
    } = collect;
    lost.sort_unstable_by_key(|r| r.start);
    let tail = nr_bits % BITS_PER_WORD;
    let mut stopped = summary.stopped;
    if let (Some(last), true) = (words.last_mut(), tail != 0) {
        let past = *last & (u64::MAX << tail);
        if past != 0 && !stopped {
            defects.push(BitsetDefect::BitsPastEnd {
                nr_bits,
                count: past.count_ones(),
                mask: past,
            });
            stopped = mode == Mode::Strict;
        }
        ones -= u64::from(past.count_ones());
        *last &= !(u64::MAX << tail);
    }
    Ok(BitsetRead {
        bits: DenseBitmap::from_words(words, nr_bits),
        ones,
        lost,
        defects,
        stopped,
    })
}

/// The runs of set bits of `bits` as (start, count), ascending.
pub fn set_runs(bits: &DenseBitmap) -> SetRuns<'_> {
    SetRuns { bits, at: 0 }
}

/// Iterator of the runs of set bits, see [`set_runs`].
#[derive(Debug, Clone)]
pub struct SetRuns<'a> {
    bits: &'a DenseBitmap,
    at: u64,
}

impl SetRuns<'_> {
    /// The first bit at or after `from` whose value is `value` (or the end),
    /// a word at a time.
    fn seek(&self, from: u64, value: bool) -> u64 {
        let len = self.bits.len();
        let words = self.bits.words();
        let flip = if value { 0 } else { u64::MAX };
        let index = (from / BITS_PER_WORD) as usize;
        let Some(&word) = words.get(index) else {
            return len;
        };
        let word = (word ^ flip) & (u64::MAX << (from % BITS_PER_WORD));
        let found = if word != 0 {
            Some((index, word))
        } else {
            let rest = &words[index + 1..];
            rest.iter()
                .position(|&w| w ^ flip != 0)
                .map(|offset| (index + 1 + offset, rest[offset] ^ flip))
        };
        found.map_or(len, |(index, word)| {
            (index as u64 * BITS_PER_WORD + u64::from(word.trailing_zeros())).min(len)
        })
    }
}

impl Iterator for SetRuns<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.at >= self.bits.len() {
            return None;
        }
        let start = self.seek(self.at, true);
        if start >= self.bits.len() {
            self.at = start;
            return None;
        }
        let end = self.seek(start, false);
        self.at = end;
        Some((start, end - start))
    }
}

/// Builds a fresh bitset holding `bits` and returns its array root.
pub fn build_bitset(
    alloc: &mut dyn Allocator,
    target: &mut dyn BlockTarget,
    bits: &DenseBitmap,
) -> std::result::Result<u64, BuildError> {
    let words = (0..nr_words(bits.len()) as usize).map(|i| bits.word(i as u64).to_le_bytes());
    array::build(alloc, target, 8, words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::alloc::BumpAllocator;
    use crate::pdata::array::ArrayBlockDefect;
    use crate::pdata::block::{BlockDefect, BLOCK_BYTES};
    use crate::pdata::io::MemBlocks;

    fn bitmap(len: u64, set: &[(u64, u64)]) -> DenseBitmap {
        let mut bits = DenseBitmap::new(len);
        for &(start, count) in set {
            for i in start..start + count {
                bits.test_and_set(i);
            }
        }
        bits
    }

    fn built(bits: &DenseBitmap, nr_blocks: u64) -> (MemBlocks, u64, BumpAllocator) {
        let mut mem = MemBlocks::zeroed(nr_blocks);
        let mut alloc = BumpAllocator::new(1, nr_blocks);
        let root = build_bitset(&mut alloc, &mut mem, bits).unwrap();
        (mem, root, alloc)
    }

    fn read(mem: &MemBlocks, root: u64, nr_bits: u64, mode: Mode) -> (BitsetRead, Vec<u64>) {
        let mut refs = Vec::new();
        let read = read_bitset(mem, root, nr_bits, mode, &mut |b| refs.push(b)).unwrap();
        (read, refs)
    }

    proptest::proptest! {
        #[test]
        fn runs_are_the_maximal_runs_of_set_bits(
            len in 0u64..4000,
            set in proptest::collection::vec((0u64..4000, 1u64..1500), 0..8),
        ) {
            let set: Vec<(u64, u64)> = set
                .into_iter()
                .filter(|&(s, _)| s < len)
                .map(|(s, c)| (s, c.min(len - s)))
                .collect();
            let bits = bitmap(len, &set);
            let want: Vec<(u64, u64)> = bits.set_runs(0, len).into_iter().map(|(s, e)| (s, e - s)).collect();
            proptest::prop_assert_eq!(set_runs(&bits).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn a_bitset_round_trips_with_its_references() {
        let runs = [
            (0, 1),
            (63, 2),
            (509 * 64 - 1, 3),
            (100_000, 64),
            (130_000, 1),
        ];
        let bits = bitmap(130_001, &runs);
        let (mem, root, alloc) = built(&bits, 64);
        let (read, refs) = read(&mem, root, 130_001, Mode::Strict);
        assert!(read.defects.is_empty() && read.lost.is_empty());
        assert_eq!(set_runs(&read.bits).collect::<Vec<_>>(), runs);
        assert_eq!(read.ones, 71);
        let mut refs = refs;
        refs.sort_unstable();
        let used: Vec<u64> = (1..alloc.next()).collect();
        assert_eq!(refs, used, "every block built is referenced once");
    }

    #[test]
    fn bits_past_the_end_are_reported_and_not_kept() {
        let bits = bitmap(128, &[(60, 10), (120, 8)]);
        let (mem, root, _) = built(&bits, 8);
        let (read, _) = read(&mem, root, 124, Mode::Tolerant);
        assert_eq!(
            read.defects,
            [BitsetDefect::BitsPastEnd {
                nr_bits: 124,
                count: 4,
                mask: 0xf << 60
            }]
        );
        assert_eq!(
            set_runs(&read.bits).collect::<Vec<_>>(),
            [(60, 10), (120, 4)]
        );
        assert_eq!(read.bits.count_ones(), 14);
        assert_eq!(read.ones, 14, "the bits past the end are not counted");
    }

    #[test]
    fn a_lost_array_block_loses_its_bits_only() {
        let nr_bits = 3 * 509 * 64 + 5;
        let bits = bitmap(
            nr_bits,
            &[(10, 1), (509 * 64 + 7, 1), (2 * 509 * 64 + 9, 1)],
        );
        let (mut mem, root, _) = built(&bits, 8);
        // Blocks: the root leaf, then array blocks 0..3 in order.
        let second = (root + 2) as usize;
        mem.bytes_mut()[second * BLOCK_BYTES + 64] ^= 0xff;
        let (read, refs) = read(&mem, root, nr_bits, Mode::Tolerant);
        assert_eq!(read.lost, vec![509 * 64..2 * 509 * 64]);
        assert!(matches!(
            read.defects[..],
            [BitsetDefect::Array(ArrayDefect::Block {
                index: 1,
                defect: ArrayBlockDefect::Block(BlockDefect::Checksum { .. }),
                ..
            })]
        ));
        assert_eq!(
            set_runs(&read.bits).collect::<Vec<_>>(),
            [(10, 1), (2 * 509 * 64 + 9, 1)]
        );
        assert_eq!(refs.len(), 5, "the damaged block is still referenced");
        assert_eq!(read.ones, 2, "the lost block's bit is not counted");
    }

    /// The regions a dm-clone write or discard hydrates: a write hydrates
    /// every region it touches (a partial one after copying it), a discard
    /// only the regions it covers whole.
    fn hydrated_by(ops: &[(&str, u64, u64)], region_bytes: u64, nr_regions: u64) -> DenseBitmap {
        let mut bits = DenseBitmap::new(nr_regions);
        for &(op, offset, length) in ops {
            let regions = match op {
                "write" => offset / region_bytes..(offset + length).div_ceil(region_bytes),
                _ => offset.div_ceil(region_bytes)..(offset + length) / region_bytes,
            };
            for region in regions {
                bits.test_and_set(region);
            }
        }
        bits
    }

    fn unxz(path: &str) -> MemBlocks {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut bytes = Vec::new();
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut bytes).expect("xz");
        MemBlocks::from_bytes(bytes)
    }

    /// (region sectors, target sectors, bitset root) of a clone superblock.
    fn superblock(meta: &MemBlocks) -> (u64, u64, u64) {
        let field = |at: usize| u64::from_le_bytes(meta.bytes()[at..at + 8].try_into().unwrap());
        (field(172), field(180), field(188))
    }

    /// Reads the bitset of a dm-clone metadata image strictly.
    fn clone_bitset(meta: &MemBlocks) -> DenseBitmap {
        let (region, target, root) = superblock(meta);
        let read = read_bitset(
            meta,
            root,
            target.div_ceil(region),
            Mode::Strict,
            &mut |_| {},
        )
        .unwrap();
        assert!(read.defects.is_empty(), "{:?}", read.defects);
        read.bits
    }

    #[test]
    fn the_golden_partial_hydration_decodes_exactly() {
        let meta = unxz(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/golden/d-clone-partial-hydration/meta.img.xz"
        ));
        let (region, target, root) = superblock(&meta);
        assert_eq!((region, target, root), (64, 32768, 12));
        let bits = clone_bitset(&meta);
        // script.sh: full-region writes (3, 10, 11, 511), 4 KiB writes inside
        // regions 20, 21, 100 and 0, a 128 KiB discard over regions 300..304
        // and a 32 KiB discard that starts inside region 400 (covers none).
        let ops = [
            ("write", 98_304, 32_768),
            ("write", 327_680, 32_768),
            ("write", 360_448, 32_768),
            ("write", 16_744_448, 32_768),
            ("write", 659_456, 4096),
            ("write", 688_128, 4096),
            ("write", 3_305_472, 4096),
            ("write", 0, 4096),
            ("discard", 9_830_400, 131_072),
            ("discard", 13_111_296, 32_768),
        ];
        let want = hydrated_by(&ops, 64 * 512, 512);
        let regions: Vec<u64> = (0..512).filter(|&r| bits.get(r)).collect();
        assert_eq!(
            regions,
            [0, 3, 10, 11, 20, 21, 100, 300, 301, 302, 303, 511]
        );
        assert_eq!(
            regions,
            (0..512).filter(|&r| want.get(r)).collect::<Vec<_>>()
        );
        assert_eq!(bits.count_ones(), 12, "status: 12/512 hydrated");
    }

    #[test]
    fn every_kernel_fixture_decodes_to_its_manifest() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/kernel-clone");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("kernel-clone fixtures")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "{names:?}");
        for name in names {
            let text = std::fs::read_to_string(format!("{dir}/{name}/manifest.yaml")).unwrap();
            let manifest: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            let geometry = &manifest["geometry"];
            let nr_regions = geometry["nr_regions"].as_u64().unwrap();
            let region_bytes = geometry["region_sectors"].as_u64().unwrap() * 512;
            let want: Vec<(u64, u64)> = manifest["hydrated"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|run| {
                    (
                        run["start"].as_u64().unwrap(),
                        run["count"].as_u64().unwrap(),
                    )
                })
                .collect();
            let ops: Vec<(String, u64, u64)> = manifest["ops"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|op| {
                    let kind = op["op"].as_str().unwrap().to_string();
                    (
                        kind,
                        op["offset"].as_u64().unwrap(),
                        op["length"].as_u64().unwrap(),
                    )
                })
                .collect();
            let ops: Vec<(&str, u64, u64)> =
                ops.iter().map(|(k, o, l)| (k.as_str(), *o, *l)).collect();
            let derived = hydrated_by(&ops, region_bytes, nr_regions);
            assert_eq!(set_runs(&derived).collect::<Vec<_>>(), want, "{name}: ops");

            let formatted = unxz(&format!("{dir}/{name}/meta-formatted.img.xz"));
            let bits = clone_bitset(&formatted);
            assert_eq!((bits.len(), bits.count_ones()), (nr_regions, 0), "{name}");
            let last = unxz(&format!("{dir}/{name}/meta-final.img.xz"));
            let bits = clone_bitset(&last);
            assert_eq!(bits.len(), nr_regions, "{name}");
            assert_eq!(set_runs(&bits).collect::<Vec<_>>(), want, "{name}: final");
            assert_eq!(
                bits.count_ones(),
                manifest["hydrated_regions"].as_u64().unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_fresh_bitset_is_the_kernels_byte_for_byte_when_one_leaf_holds_it() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/kernel-clone");
        for name in [
            "a-region8-131072regions",
            "b-region128-1024regions",
            "d-region2097152-4regions",
        ] {
            let kernel = unxz(&format!("{dir}/{name}/meta-formatted.img.xz"));
            let (region, target, root) = superblock(&kernel);
            let nr_regions = target.div_ceil(region);
            let mut mem = MemBlocks::zeroed(kernel.nr_blocks());
            let mut alloc = BumpAllocator::new(root, kernel.nr_blocks());
            let built = build_bitset(&mut alloc, &mut mem, &DenseBitmap::new(nr_regions)).unwrap();
            assert_eq!(built, root, "{name}");
            let blocks = root as usize * BLOCK_BYTES..alloc.next() as usize * BLOCK_BYTES;
            assert!(
                mem.bytes()[blocks.clone()] == kernel.bytes()[blocks],
                "{name}: blocks {root}..{} differ from the kernel's",
                alloc.next()
            );
        }
    }
}
