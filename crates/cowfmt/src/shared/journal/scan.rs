//! Reading the journal without changing it: the superblock, then every
//! transaction from log position 0 whose descriptor, sequence number and
//! commit record check, up to the first that does not.

use serde::Serialize;

use super::records::{desc_chunks_for, CommitRecord, DescriptorHead, JournalSuper, TxHeader};
use super::{transaction_chunks, valid_home, JournalArea};
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::shared::geometry::Geometry;
use crate::shared::header::MAX_TREE_LEVEL;

/// Log bytes read at once while streaming images (at least one chunk).
pub(super) const IMAGE_BATCH_BYTES: usize = 1 << 20;

/// A transaction found in the log, without its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxSummary {
    /// Its sequence number.
    pub seq: u64,
    /// Its log position (chunks from the log start).
    pub pos: u64,
    /// The header fields it carries.
    pub header: TxHeader,
    /// The home chunk of each image, in image order.
    pub homes: Vec<u64>,
}

impl TxSummary {
    /// Images in the transaction.
    pub fn count(&self) -> usize {
        self.homes.len()
    }

    /// Log position of its first image.
    pub fn images_pos(&self, chunk_bytes: u64) -> u64 {
        self.pos + desc_chunks_for(self.count() as u64, chunk_bytes)
    }

    /// Log position right after it (where the next transaction starts).
    pub fn end_pos(&self, chunk_bytes: u64) -> u64 {
        self.pos + transaction_chunks(self.count(), chunk_bytes)
    }
}

/// How the committed part of the log ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ScanEnd {
    /// The next position holds no descriptor of the expected sequence number.
    Clean,
    /// The next position holds a descriptor of the expected sequence number,
    /// but its transaction is not whole (or, see [`JournalScan::damaged`], is
    /// whole and invalid); replay ignores it.
    Torn {
        /// The sequence number it carries.
        seq: u64,
        /// Its log position.
        pos: u64,
        /// Why it is not replayed.
        why: String,
    },
}

/// What a scan of the journal found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalScan {
    /// The superblock; `None` when the store has no journal chunk or the
    /// superblock is all zero (never used).
    pub sup: Option<JournalSuper>,
    /// The committed transactions, in log order: what replay applies.
    pub committed: Vec<TxSummary>,
    /// How the committed part ended.
    pub end: ScanEnd,
    /// Log position after the last committed transaction.
    pub next_pos: u64,
    /// The descriptor of the transaction the scan stopped on, when it could
    /// be read whole.
    pub stopped: Option<TxSummary>,
    /// Whether that stop is damage rather than a crash's torn write: a
    /// descriptor whose sizes are inconsistent or pass the end of the log, or
    /// a whole transaction (commit record and crc32c check) whose home chunks
    /// or header fields are invalid. A crash never leaves either.
    pub damaged: bool,
}

impl JournalScan {
    /// Whether committed transactions wait for replay.
    pub fn needs_replay(&self) -> bool {
        !self.committed.is_empty()
    }

    /// Images in the committed transactions.
    pub fn images(&self) -> u64 {
        self.committed.iter().map(|t| t.count() as u64).sum()
    }

    /// The last committed transaction's sequence number.
    pub fn last_seq(&self) -> Option<u64> {
        self.committed.last().map(|t| t.seq)
    }
}

/// Reads and checks the journal superblock of the journal at `area` on
/// `dev`: `None` when the journal has no chunk or its superblock is all zero;
/// [`Error::Journal`] when it is damaged or does not fit the store.
pub fn read_superblock<D: BlockDev + ?Sized>(
    dev: &D,
    area: &JournalArea,
) -> Result<Option<JournalSuper>> {
    if !area.has_superblock() {
        return Ok(None);
    }
    let mut chunk = vec![0u8; area.chunk_bytes as usize];
    dev.read_at(&mut chunk, area.start * area.chunk_bytes, &|| {
        format!("the journal superblock (chunk {})", area.start)
    })?;
    let damaged = |source| Error::Journal {
        path: dev.path().to_path_buf(),
        chunk: area.start,
        source,
    };
    let sup = JournalSuper::decode(&chunk).map_err(damaged)?;
    if let Some(sup) = &sup {
        sup.check_fits(area.chunk_bytes, area.log_chunks)
            .map_err(damaged)?;
    }
    Ok(sup)
}

/// Scans the journal of the store of geometry `g` on `dev`. Keeps the home
/// chunks of each transaction, never more than a batch of images.
pub fn scan<D: BlockDev + ?Sized>(dev: &D, g: &Geometry) -> Result<JournalScan> {
    let area = JournalArea::new(g);
    let sup = read_superblock(dev, &area)?;
    let mut scan = JournalScan {
        sup,
        committed: Vec::new(),
        end: ScanEnd::Clean,
        next_pos: 0,
        stopped: None,
        damaged: false,
    };
    let Some(sup) = sup else {
        return Ok(scan);
    };
    let mut reader = LogReader {
        dev,
        g,
        area,
        buf: Vec::new(),
    };
    let mut seq = sup.tail_seq;
    loop {
        match reader.read(scan.next_pos, seq)? {
            Step::End => break,
            Step::Committed(tx) => {
                scan.next_pos = tx.end_pos(area.chunk_bytes);
                scan.committed.push(tx);
                seq = seq.wrapping_add(1);
            }
            Step::Stopped { tx, why, damaged } => {
                scan.end = ScanEnd::Torn {
                    seq,
                    pos: scan.next_pos,
                    why,
                };
                scan.stopped = tx;
                scan.damaged = damaged;
                break;
            }
        }
    }
    Ok(scan)
}

enum Step {
    End,
    Committed(TxSummary),
    Stopped {
        tx: Option<TxSummary>,
        why: String,
        damaged: bool,
    },
}

struct LogReader<'a, D: ?Sized> {
    dev: &'a D,
    g: &'a Geometry,
    area: JournalArea,
    buf: Vec<u8>,
}

impl<D: BlockDev + ?Sized> LogReader<'_, D> {
    fn read_log(&mut self, pos: u64, chunks: u64) -> Result<()> {
        let cb = self.area.chunk_bytes;
        self.buf.resize((chunks * cb) as usize, 0);
        let first = self.area.log_chunk(pos);
        self.dev.read_at(&mut self.buf, first * cb, &|| {
            format!("journal log position {pos} (chunk {first}, {chunks} chunks)")
        })
    }

    fn read(&mut self, pos: u64, seq: u64) -> Result<Step> {
        let cb = self.area.chunk_bytes;
        if pos >= self.area.log_chunks {
            return Ok(Step::End);
        }
        self.read_log(pos, 1)?;
        let Some(head) = DescriptorHead::decode(&self.buf) else {
            return Ok(Step::End);
        };
        if head.seq != seq {
            return Ok(Step::End);
        }
        let damaged = |why: String| Step::Stopped {
            tx: None,
            why,
            damaged: true,
        };
        let count = u64::from(head.count);
        let desc_chunks = desc_chunks_for(count, cb);
        if u64::from(head.desc_chunks) != desc_chunks {
            return Ok(damaged(format!(
                "descriptor says desc_chunks {} (offset 20), but a list of {count} home chunks takes {desc_chunks}",
                head.desc_chunks
            )));
        }
        if head.reserved != 0 {
            return Ok(damaged(format!(
                "descriptor's reserved field (offset 44) is {:#x}, expected 0",
                head.reserved
            )));
        }
        if !self.area.fits(pos, count as usize) {
            return Ok(damaged(format!(
                "a transaction of {count} images ({} chunks) at log position {pos} passes the end of the log ({} chunks)",
                transaction_chunks(count as usize, cb),
                self.area.log_chunks
            )));
        }
        self.read_log(pos, desc_chunks)?;
        let tx = TxSummary {
            seq,
            pos,
            header: head.header,
            homes: head.homes(&self.buf),
        };
        let mut crc = crc32c::crc32c(&self.buf);
        let batch = (IMAGE_BATCH_BYTES as u64 / cb).max(1);
        let images_pos = pos + desc_chunks;
        let mut done = 0;
        while done < count {
            let n = batch.min(count - done);
            self.read_log(images_pos + done, n)?;
            crc = crc32c::crc32c_append(crc, &self.buf);
            done += n;
        }
        let commit_pos = images_pos + count;
        self.read_log(commit_pos, 1)?;
        let torn = |tx: TxSummary, why: String| Step::Stopped {
            tx: Some(tx),
            why,
            damaged: false,
        };
        let Some(record) = CommitRecord::decode(&self.buf) else {
            return Ok(torn(
                tx,
                format!("no commit record at log position {commit_pos}"),
            ));
        };
        if record.seq != seq {
            return Ok(torn(
                tx,
                format!(
                    "the commit record at log position {commit_pos} carries seq {}, not {seq}",
                    record.seq
                ),
            ));
        }
        if record.count != head.count || record.desc_chunks != head.desc_chunks {
            return Ok(torn(
                tx,
                format!(
                    "the commit record at log position {commit_pos} says {} images in {} descriptor chunks, the descriptor {} in {}",
                    record.count, record.desc_chunks, head.count, head.desc_chunks
                ),
            ));
        }
        if record.crc != crc {
            return Ok(torn(
                tx,
                format!(
                    "the commit record's crc32c {:#010x} does not match the descriptor and images (crc32c {crc:#010x})",
                    record.crc
                ),
            ));
        }
        if let Some(why) = content_problem(self.g, &tx) {
            return Ok(Step::Stopped {
                tx: Some(tx),
                why,
                damaged: true,
            });
        }
        Ok(Step::Committed(tx))
    }
}

/// Why a whole transaction must not be applied to a store of geometry `g`:
/// an image whose home is not a tree or bitmap chunk, two images of one home,
/// or header fields no tree can have.
fn content_problem(g: &Geometry, tx: &TxSummary) -> Option<String> {
    if let Some((i, home)) = tx
        .homes
        .iter()
        .enumerate()
        .find(|(_, &h)| !valid_home(g, h))
    {
        return Some(format!(
            "image {i}'s home chunk {home} is not in the tree area ({}..{}) or the bitmap (1..{})",
            g.data_start(),
            g.nr_chunks,
            g.journal_start()
        ));
    }
    let mut sorted = tx.homes.clone();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Some(format!("two images have home chunk {}", pair[0]));
    }
    let h = &tx.header;
    if h.tree_level == 0 || h.tree_level > MAX_TREE_LEVEL {
        return Some(format!(
            "descriptor's tree_level {} (offset 40) is not between 1 and {MAX_TREE_LEVEL}",
            h.tree_level
        ));
    }
    if !g.in_data_range(h.root_tree_chunk) {
        return Some(format!(
            "descriptor's root_tree_chunk {} (offset 24) is outside the tree area {}..{}",
            h.root_tree_chunk,
            g.data_start(),
            g.nr_chunks
        ));
    }
    None
}
