//! The shared store's write-ahead journal: a physical redo log in the
//! `nr_journal_chunks` chunks after the bitmap (docs/format-shared.md,
//! "Journal"). Journal chunk 0 is the [`JournalSuper`]; the rest is the log,
//! where each transaction is a descriptor, full images of the metadata chunks
//! it changes, and a commit record whose crc32c covers both.
//!
//! - [`records`](self::records): the superblock, descriptor and commit record
//!   bytes, and [`encode_transaction`];
//! - [`scan`](self::scan): reading the log without changing it;
//! - [`replay`](self::replay): writing committed images home, and the writes
//!   a transaction and a fresh superblock need.
//!
//! The engine writes transactions and checkpoints; the offline tools check,
//! dump and replay them; the layout is decided here only.

mod records;
mod replay;
mod scan;

#[cfg(test)]
mod log_tests;

use serde::{Deserialize, Serialize};

use super::geometry::Geometry;

pub use records::{
    desc_chunks_for, encode_transaction, CommitRecord, DescriptorHead, JournalError, JournalSuper,
    Transaction, TxHeader, COMMIT_MAGIC, DESC_HEAD_BYTES, DESC_MAGIC, SUPER_MAGIC,
};
pub use replay::{
    replay, replay_overlay, write_empty_journal, write_superblock, write_transaction, ReplayReport,
};
pub use scan::{read_superblock, scan, JournalScan, ScanEnd, TxSummary};

/// The only journal version this crate reads and writes.
pub const JOURNAL_VERSION: u32 = 1;

/// What a store's journal holds, as cowcheck and cowdump report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JournalState {
    /// The store has no journal chunk (commits in place).
    None,
    /// The superblock is all zero: the journal was never used.
    Unused,
    /// Nothing committed waits for replay.
    Empty,
    /// Committed transactions wait for replay.
    NeedsReplay,
    /// The superblock is damaged.
    Damaged,
}

/// The tail_seq of a fresh journal (mkcow).
pub const FIRST_SEQ: u64 = 1;

/// Log chunks a transaction of `count` images takes: its descriptor chunks,
/// the images and the commit record.
pub fn transaction_chunks(count: usize, chunk_bytes: u64) -> u64 {
    desc_chunks_for(count as u64, chunk_bytes) + count as u64 + 1
}

/// Images the smallest transaction the tree can need may hold: one insert
/// that splits every level of an 8-level tree and grows the root (2 * 8 + 3
/// blocks), the bitmap chunks of its allocations, and room to spare. A log
/// whose half cannot take a transaction of this size is not used.
pub const MIN_TRANSACTION_IMAGES: usize = 32;

/// The fewest journal chunks (superblock included) with which a store of
/// `chunk_bytes`-byte chunks commits through its journal: a superblock and a
/// log whose half holds a transaction of [`MIN_TRANSACTION_IMAGES`] images
/// (69 at every chunk size of 512 bytes or more). A store with fewer commits
/// in place and is not crash-safe.
pub fn min_journaled_chunks(chunk_bytes: u64) -> u64 {
    2 * transaction_chunks(MIN_TRANSACTION_IMAGES, chunk_bytes) + 1
}

/// Whether a store of geometry `g` commits through its journal (crash-safe)
/// rather than in place.
pub fn is_journaled(g: &Geometry) -> bool {
    g.nr_journal_chunks >= min_journaled_chunks(g.chunk_bytes)
}

/// Why a store of geometry `g` commits in place, as one sentence saying it
/// is not crash-safe; `None` when it commits through its journal.
pub fn in_place_note(g: &Geometry) -> Option<String> {
    if is_journaled(g) {
        return None;
    }
    let min = min_journaled_chunks(g.chunk_bytes);
    let why = match g.nr_journal_chunks {
        0 => "the store has no journal".to_string(),
        n => format!("the journal has {n} chunks, fewer than the {min} a journaled commit needs"),
    };
    Some(format!(
        "{why}: the store commits in place, not crash-safe (a journal of {min} chunks or more makes every commit atomic)"
    ))
}

/// Where a store's journal is: its superblock chunk, the log after it, and the
/// chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalArea {
    /// The journal's first chunk (the superblock), `Geometry::journal_start()`.
    pub start: u64,
    /// Chunks of log after the superblock (0 when the journal has 0 or 1 chunk).
    pub log_chunks: u64,
    /// Bytes per chunk.
    pub chunk_bytes: u64,
    /// Every journal chunk, superblock included (the header's `nr_journal_chunks`).
    pub nr_chunks: u64,
}

impl JournalArea {
    /// The journal of a store of geometry `g`.
    pub fn new(g: &Geometry) -> Self {
        JournalArea {
            start: g.journal_start(),
            log_chunks: g.nr_journal_chunks.saturating_sub(1),
            chunk_bytes: g.chunk_bytes,
            nr_chunks: g.nr_journal_chunks,
        }
    }

    /// Whether the store has a journal superblock at all (a journal of at
    /// least one chunk).
    pub fn has_superblock(&self) -> bool {
        self.nr_chunks > 0
    }

    /// The device chunk of log position `pos`.
    pub fn log_chunk(&self, pos: u64) -> u64 {
        self.start + 1 + pos
    }

    /// Whether a transaction of `count` images starting at log position `pos`
    /// fits in the log.
    pub fn fits(&self, pos: u64, count: usize) -> bool {
        pos.checked_add(transaction_chunks(count, self.chunk_bytes))
            .is_some_and(|end| end <= self.log_chunks)
    }
}

/// Whether `chunk` may be the home of a journal image under `g`: a chunk of
/// the tree area (the data range) or a bitmap chunk.
pub fn valid_home(g: &Geometry, chunk: u64) -> bool {
    g.in_data_range(chunk) || (1..g.journal_start()).contains(&chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_journals_from_69_journal_chunks_at_every_chunk_size() {
        for sectors in [1u32, 8, 128, 2048] {
            let chunk_bytes = u64::from(sectors) * 512;
            assert_eq!(min_journaled_chunks(chunk_bytes), 69);
            let g = |journal| Geometry::new(1 << 30, sectors, journal);
            assert!(is_journaled(&g(69)));
            assert!(!is_journaled(&g(68)));
            assert!(!is_journaled(&g(0)));
            assert_eq!(in_place_note(&g(69)), None);
            let note = in_place_note(&g(68)).unwrap();
            assert!(note.contains("68 chunks, fewer than the 69"), "{note}");
            assert!(note.contains("commits in place, not crash-safe"), "{note}");
            let note = in_place_note(&g(0)).unwrap();
            assert!(note.starts_with("the store has no journal"), "{note}");
        }
    }

    #[test]
    fn the_area_follows_the_bitmap() {
        let g = Geometry::new(64 << 20, 8, 16);
        let area = JournalArea::new(&g);
        assert_eq!(area.start, 2);
        assert_eq!(area.log_chunks, 15);
        assert_eq!(area.log_chunk(0), 3);
        assert_eq!(area.log_chunk(14), 17);
        assert!(area.has_superblock());
        assert!(area.fits(0, 13));
        assert!(!area.fits(0, 14));
        assert!(area.fits(12, 1));
        assert!(!area.fits(13, 1));
        assert!(!area.fits(u64::MAX, 1));
    }

    #[test]
    fn a_zero_or_one_chunk_journal_has_no_log() {
        let none = JournalArea::new(&Geometry::new(1 << 20, 1, 0));
        assert!(!none.has_superblock());
        assert_eq!(none.log_chunks, 0);
        assert!(!none.fits(0, 0));
        let one = JournalArea::new(&Geometry::new(1 << 20, 1, 1));
        assert!(one.has_superblock());
        assert_eq!(one.log_chunks, 0);
    }

    #[test]
    fn transaction_sizes_at_descriptor_boundaries() {
        assert_eq!(transaction_chunks(0, 512), 2);
        assert_eq!(transaction_chunks(58, 512), 1 + 58 + 1);
        assert_eq!(transaction_chunks(59, 512), 2 + 59 + 1);
        assert_eq!(transaction_chunks(506, 4096), 1 + 506 + 1);
        assert_eq!(transaction_chunks(507, 4096), 2 + 507 + 1);
    }

    #[test]
    fn homes_are_tree_or_bitmap_chunks() {
        let g = Geometry::new(64 << 20, 8, 16);
        assert!(!valid_home(&g, 0));
        assert!(valid_home(&g, 1));
        assert!(!valid_home(&g, 2));
        assert!(!valid_home(&g, 17));
        assert!(valid_home(&g, 18));
        assert!(valid_home(&g, g.nr_chunks - 1));
        assert!(!valid_home(&g, g.nr_chunks));
    }
}
