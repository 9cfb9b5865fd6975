//! Reading the committed metadata space map into a reference-count table:
//! one count per metadata block, read from the index, the bitmaps (in sorted
//! runs of consecutive blocks) and the ref-count tree. Tolerant: every defect
//! becomes a finding, and the counts a damaged structure held are marked
//! unknown rather than guessed.

use std::ops::Range;

use crate::error::Result;
use crate::pdata::block::{BLOCK_BYTES, BLOCK_SECTORS};
use crate::pdata::io::BlockSource;

use super::bitmap::{Bitmap, ENTRIES_PER_BITMAP, OVERFLOW};
use super::finding::SmFinding;
use super::index::{IndexEntry, MetadataIndex};
use super::refcount;
use super::root::SmRoot;

/// Blocks read at most in one batch.
pub(crate) const MAX_RUN_BLOCKS: usize = 64;

/// The committed space map as read: its counts and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedSpaceMap {
    /// The root it was read from.
    pub root: SmRoot,
    /// The index, if it could be read.
    pub index: Option<MetadataIndex>,
    /// The reference count of every block the space map covers.
    pub counts: Vec<u32>,
    /// Blocks whose counts could not be read (their entries in `counts` are 0).
    pub unknown: Vec<Range<u64>>,
    /// The space map's own blocks, referenced whether or not they decode:
    /// index, bitmaps, ref-count tree nodes.
    pub own_blocks: Vec<u64>,
    /// Everything found wrong while reading, in the order found.
    pub findings: Vec<SmFinding>,
}

impl CommittedSpaceMap {
    /// Whether the count of `block` was read.
    pub fn is_known(&self, block: u64) -> bool {
        !self.unknown.iter().any(|range| range.contains(&block))
    }

    /// Blocks with a count above zero.
    pub fn nr_allocated(&self) -> u64 {
        self.counts.iter().filter(|&&count| count > 0).count() as u64
    }
}

/// Reads the space map that `root` describes from `source`.
pub fn load(source: &dyn BlockSource, root: SmRoot) -> Result<CommittedSpaceMap> {
    let device_blocks = source.nr_blocks();
    let mut findings = Vec::new();
    if root.nr_blocks > device_blocks {
        findings.push(SmFinding::PastDevice {
            nr_blocks: root.nr_blocks,
            device_blocks,
        });
    }
    let nr_blocks = root.nr_blocks.min(device_blocks);
    let mut loaded = CommittedSpaceMap {
        root,
        index: None,
        counts: vec![0; nr_blocks as usize],
        unknown: Vec::new(),
        own_blocks: Vec::new(),
        findings,
    };
    if let Some(index) = read_index(source, &mut loaded)? {
        read_bitmaps(source, &index, &mut loaded)?;
        loaded.index = Some(index);
        refcount::apply_tree(source, &mut loaded)?;
    } else {
        loaded.unknown.push(0..nr_blocks);
    }
    let counted = loaded.nr_allocated();
    if loaded.unknown.is_empty() && counted != root.nr_allocated {
        loaded.findings.push(SmFinding::NrAllocated {
            stored: root.nr_allocated,
            counted,
        });
    }
    Ok(loaded)
}

/// Whether `location` lies inside the space map, else a finding naming `what`.
pub(crate) fn inside(
    loaded: &mut CommittedSpaceMap,
    what: &dyn Fn() -> String,
    location: u64,
) -> bool {
    let nr_blocks = loaded.counts.len() as u64;
    if location < nr_blocks {
        return true;
    }
    loaded.findings.push(SmFinding::PointerPastEnd {
        what: what(),
        location,
        nr_blocks,
    });
    false
}

fn read_index(
    source: &dyn BlockSource,
    loaded: &mut CommittedSpaceMap,
) -> Result<Option<MetadataIndex>> {
    let location = loaded.root.index_block;
    if !inside(loaded, &|| "index block".into(), location) {
        return Ok(None);
    }
    let block = source.read_block(location, &|| format!("space map index block {location}"))?;
    loaded.own_blocks.push(location);
    match MetadataIndex::decode(location, &block[..], loaded.root.nr_blocks) {
        Ok(index) => Ok(Some(index)),
        Err(defect) => {
            loaded.findings.push(SmFinding::Index { location, defect });
            Ok(None)
        }
    }
}

fn read_bitmaps(
    source: &dyn BlockSource,
    index: &MetadataIndex,
    loaded: &mut CommittedSpaceMap,
) -> Result<()> {
    let mut order: Vec<usize> = Vec::with_capacity(index.entries.len());
    for (i, entry) in index.entries.iter().enumerate() {
        if inside(loaded, &|| format!("bitmap {i}"), entry.blocknr) {
            order.push(i);
        } else {
            loaded.unknown.push(covers(i, loaded.counts.len() as u64));
        }
    }
    order.sort_by_key(|&i| index.entries[i].blocknr);
    let mut buf = vec![0u8; MAX_RUN_BLOCKS * BLOCK_BYTES];
    for run in runs(&order, |i| index.entries[i].blocknr) {
        let first = index.entries[run[0]].blocknr;
        let bytes = &mut buf[..run.len() * BLOCK_BYTES];
        source.read_blocks(first, bytes, &|| {
            format!(
                "space map bitmaps at blocks {first}..{} (sector {})",
                first + run.len() as u64,
                first * BLOCK_SECTORS
            )
        })?;
        for (&i, block) in run.iter().zip(bytes.chunks_exact(BLOCK_BYTES)) {
            apply_bitmap(i, &index.entries[i], block, loaded);
        }
    }
    Ok(())
}

/// Splits `items` (sorted by `location`) into runs of consecutive locations,
/// at most [`MAX_RUN_BLOCKS`] long; a location repeated starts a new run.
pub(crate) fn runs<T: Copy>(items: &[T], location: impl Fn(T) -> u64) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        let breaks = i == items.len()
            || i - start == MAX_RUN_BLOCKS
            || location(items[i]) != location(items[i - 1]) + 1;
        if breaks {
            out.push(&items[start..i]);
            start = i;
        }
    }
    out
}

fn covers(bitmap: usize, nr_blocks: u64) -> Range<u64> {
    let first = bitmap as u64 * ENTRIES_PER_BITMAP;
    first.min(nr_blocks)..(first + ENTRIES_PER_BITMAP).min(nr_blocks)
}

fn apply_bitmap(i: usize, entry: &IndexEntry, block: &[u8], loaded: &mut CommittedSpaceMap) {
    let nr_blocks = loaded.counts.len() as u64;
    let range = covers(i, nr_blocks);
    loaded.own_blocks.push(entry.blocknr);
    let bitmap = match Bitmap::decode(entry.blocknr, block) {
        Ok(bitmap) => bitmap,
        Err(defect) => {
            loaded.findings.push(SmFinding::Bitmap {
                bitmap: i,
                location: entry.blocknr,
                covers: range.clone(),
                defect,
            });
            loaded.unknown.push(range);
            return;
        }
    };
    let first = i as u64 * ENTRIES_PER_BITMAP;
    let mut used = 0u32;
    let mut first_free = None;
    let mut expected = 0usize;
    for (slot, value) in bitmap.nonzero() {
        if first_free.is_none() && slot != expected {
            first_free = Some(expected as u32);
        }
        expected = slot + 1;
        used += 1;
        let block = first + slot as u64;
        if block >= nr_blocks {
            loaded.findings.push(SmFinding::EntryPastEnd {
                bitmap: i,
                block,
                value,
            });
            continue;
        }
        loaded.counts[block as usize] = if value == OVERFLOW {
            refcount::PENDING
        } else {
            u32::from(value)
        };
    }
    let first_free = first_free.unwrap_or(expected as u32);
    let counted = ENTRIES_PER_BITMAP as u32 - used;
    if entry.nr_free != counted {
        loaded.findings.push(SmFinding::NrFree {
            bitmap: i,
            stored: entry.nr_free,
            counted,
        });
    }
    if counted > 0 && entry.none_free_before > first_free {
        loaded.findings.push(SmFinding::NoneFreeBefore {
            bitmap: i,
            stored: entry.none_free_before,
            first_free,
        });
    }
}
