//! The engine's side of the write-ahead journal (docs/format-shared.md,
//! "Journal"; the format, scan and replay are cowfmt's
//! [`cowfmt::shared::journal`]): where the next transaction goes, when to
//! checkpoint, and whether the store's journal is usable at all.
//!
//! A commit writes the data chunks its records name first (the caller), then
//! the transaction (descriptor and images, sync, commit record, sync); only
//! then is it acknowledged. The images then go to their home chunks without a
//! sync. A checkpoint (when more than half the log is used, at close) syncs
//! the home writes, writes the store header, syncs, and resets the log with a
//! new superblock.

use std::fmt;

use cowfmt::blockdev::BlockDev;
use cowfmt::error::Result;
use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::header::SharedHeader;
use cowfmt::shared::journal::{
    is_journaled, min_journaled_chunks, read_superblock, transaction_chunks, write_superblock,
    write_transaction, JournalArea, Transaction, TxHeader,
};

/// The rule of which stores journal their commits is cowfmt's, shared with the tools.
pub use cowfmt::shared::journal::MIN_TRANSACTION_IMAGES;

/// How a store makes its commits durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Through the write-ahead journal: crash-safe.
    Journaled {
        /// Chunks of log after the journal superblock.
        log_chunks: u64,
        /// The most log chunks one transaction may take (half the log).
        max_transaction_chunks: u64,
    },
    /// Tree blocks, bitmap and header written in place, each step synced: a
    /// crash in the middle of a commit can leave a damaged store.
    InPlace(InPlaceReason),
}

/// Why a store commits in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InPlaceReason {
    /// The store has no journal chunks.
    NoJournal,
    /// Half the log cannot hold the smallest transaction the tree may need.
    JournalTooSmall {
        /// Chunks of journal the store has.
        journal_chunks: u64,
        /// Chunks of journal it would need.
        needed_chunks: u64,
    },
}

impl CommitMode {
    /// The mode of a store of geometry `g`.
    pub fn of(g: &Geometry) -> CommitMode {
        let area = JournalArea::new(g);
        if g.nr_journal_chunks == 0 {
            CommitMode::InPlace(InPlaceReason::NoJournal)
        } else if !is_journaled(g) {
            CommitMode::InPlace(InPlaceReason::JournalTooSmall {
                journal_chunks: g.nr_journal_chunks,
                needed_chunks: min_journaled_chunks(g.chunk_bytes),
            })
        } else {
            CommitMode::Journaled {
                log_chunks: area.log_chunks,
                max_transaction_chunks: area.log_chunks / 2,
            }
        }
    }

    /// Whether commits go through the journal (crash-safe).
    pub fn journaled(&self) -> bool {
        matches!(self, CommitMode::Journaled { .. })
    }
}

impl fmt::Display for CommitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitMode::Journaled {
                log_chunks,
                max_transaction_chunks,
            } => write!(
                f,
                "journaled ({log_chunks} log chunks, at most {max_transaction_chunks} per transaction)"
            ),
            CommitMode::InPlace(InPlaceReason::NoJournal) => {
                write!(f, "in place, not crash-safe: the store has no journal")
            }
            CommitMode::InPlace(InPlaceReason::JournalTooSmall {
                journal_chunks,
                needed_chunks,
            }) => write!(
                f,
                "in place, not crash-safe: the journal's {journal_chunks} chunks are too few \
                 for a transaction in half its log (a journal needs at least {needed_chunks})"
            ),
        }
    }
}

/// Where the next transaction goes in the log, and the header of the last
/// durable one.
#[derive(Debug)]
pub struct JournalWriter {
    area: JournalArea,
    next_seq: u64,
    pos: u64,
    superblock_written: bool,
    last_header: Option<TxHeader>,
}

impl JournalWriter {
    /// The writer for the journal of geometry `g` on `dev`, whose committed
    /// transactions have been replayed: the log is empty and the next
    /// transaction carries the superblock's tail_seq (1 for a journal never
    /// used, whose superblock is written before its first transaction).
    pub fn open<D: BlockDev + ?Sized>(dev: &D, g: &Geometry) -> Result<Self> {
        let area = JournalArea::new(g);
        let sup = read_superblock(dev, &area)?;
        Ok(JournalWriter {
            area,
            next_seq: sup.as_ref().map_or(1, |s| s.tail_seq),
            pos: 0,
            superblock_written: sup.is_some(),
            last_header: None,
        })
    }

    /// The most log chunks one transaction may take.
    pub fn max_transaction_chunks(&self) -> u64 {
        self.area.log_chunks / 2
    }

    /// Whether a transaction of `images` images stays within the bound.
    pub fn within_bound(&self, images: usize) -> bool {
        transaction_chunks(images, self.area.chunk_bytes) <= self.max_transaction_chunks()
    }

    /// The sequence number the next transaction carries.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether the log holds transactions not yet checkpointed.
    pub fn has_log(&self) -> bool {
        self.pos > 0
    }

    /// Writes `t` (its `seq` must be [`JournalWriter::next_seq`]) in commit
    /// order and then its images home, unsynced; checkpoints first when the
    /// log cannot take it, and after when more than half the log is used.
    /// Returns whether it checkpointed (every earlier transaction's frees are
    /// then final; this one's too when the checkpoint came after it).
    pub fn commit<D: BlockDev + ?Sized>(
        &mut self,
        dev: &D,
        t: &Transaction,
        base: &SharedHeader,
    ) -> Result<Checkpointed> {
        let mut done = Checkpointed::No;
        if !self.superblock_written {
            write_superblock(dev, &self.area, self.next_seq)?;
            self.superblock_written = true;
        }
        if !self.area.fits(self.pos, t.homes.len()) && self.has_log() {
            self.checkpoint(dev, base)?;
            done = Checkpointed::Before;
        }
        self.pos = write_transaction(dev, &self.area, self.pos, t)?;
        self.next_seq = t.seq + 1;
        self.last_header = Some(t.header);
        write_home(dev, &t.homes, &t.images, self.area.chunk_bytes)?;
        if self.pos > self.max_transaction_chunks() {
            self.checkpoint(dev, base)?;
            done = Checkpointed::After;
        }
        Ok(done)
    }

    /// Makes every transaction in the log final: syncs their home writes,
    /// writes the store header from the last one (`base` gives the other
    /// fields), syncs, and resets the log. Nothing to do when the log is empty.
    pub fn checkpoint<D: BlockDev + ?Sized>(&mut self, dev: &D, base: &SharedHeader) -> Result<()> {
        let Some(last) = self.last_header.filter(|_| self.has_log()) else {
            return Ok(());
        };
        dev.sync()?;
        let header = SharedHeader {
            root_tree_chunk: last.root_tree_chunk,
            snapmask: last.snapmask,
            tree_level: last.tree_level,
            valid: 1,
            ..*base
        };
        dev.write_chunk(0, &header.to_chunk(self.area.chunk_bytes as usize))?;
        dev.sync()?;
        write_superblock(dev, &self.area, self.next_seq)?;
        self.pos = 0;
        Ok(())
    }
}

/// Whether a journal commit checkpointed, and so which frees became final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointed {
    /// No checkpoint.
    No,
    /// Before the transaction was written: the earlier transactions' frees.
    Before,
    /// After it: every durable transaction's frees, this one's included.
    After,
}

/// Writes `images` (one chunk of `chunk_bytes` per home) to `homes`, runs of
/// consecutive homes in one write each. No sync.
pub fn write_home<D: BlockDev + ?Sized>(
    dev: &D,
    homes: &[u64],
    images: &[u8],
    chunk_bytes: u64,
) -> Result<()> {
    let cb = chunk_bytes as usize;
    let mut i = 0;
    while i < homes.len() {
        let mut n = 1;
        while homes.get(i + n) == Some(&(homes[i] + n as u64)) {
            n += 1;
        }
        dev.write_at(&images[i * cb..(i + n) * cb], homes[i] * chunk_bytes)?;
        i += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_journals_commit_in_place_and_say_why() {
        let none = Geometry::new(1 << 20, 1, 0);
        assert_eq!(
            CommitMode::of(&none),
            CommitMode::InPlace(InPlaceReason::NoJournal)
        );
        let needed = 2 * transaction_chunks(MIN_TRANSACTION_IMAGES, 512) + 1;
        let small = Geometry::new(1 << 20, 1, needed - 1);
        let mode = CommitMode::of(&small);
        assert_eq!(
            mode,
            CommitMode::InPlace(InPlaceReason::JournalTooSmall {
                journal_chunks: needed - 1,
                needed_chunks: needed
            })
        );
        assert!(mode.to_string().contains("not crash-safe"), "{mode}");
        let enough = CommitMode::of(&Geometry::new(1 << 20, 1, needed));
        assert!(enough.journaled());
        assert_eq!(
            enough,
            CommitMode::Journaled {
                log_chunks: needed - 1,
                max_transaction_chunks: (needed - 1) / 2
            }
        );
    }
}
