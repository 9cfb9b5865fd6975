//! Writing to the journal: a transaction (descriptor and images, sync, commit
//! record, sync), a fresh superblock, and replay, which writes every committed
//! transaction's images home and the last one's header fields into the store
//! header, then resets the log.

use serde::Serialize;

use super::records::{encode_transaction, JournalSuper, Transaction};
use super::scan::{scan, JournalScan, ScanEnd, TxSummary, IMAGE_BATCH_BYTES};
use super::{JournalArea, FIRST_SEQ};
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::overlay::Overlay;
use crate::shared::geometry::Geometry;
use crate::shared::header::{SharedHeader, HEADER_BYTES};

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Committed transactions applied.
    pub transactions: u64,
    /// Images written home.
    pub images: u64,
    /// The last applied transaction's sequence number.
    pub last_seq: Option<u64>,
    /// The torn (or damaged) transaction after the committed ones, which
    /// replay ignored; `None` when the log ended cleanly.
    pub torn: Option<ScanEnd>,
}

/// Writes a superblock with `tail_seq` as the journal's chunk 0, then syncs.
/// Used by mkcow (tail_seq 1), checkpoints and replay. Refused when the store
/// has no journal chunk.
pub fn write_superblock<D: BlockDev + ?Sized>(
    dev: &D,
    area: &JournalArea,
    tail_seq: u64,
) -> Result<()> {
    if !area.has_superblock() {
        return Err(Error::Invalid(format!(
            "{}: the store has no journal (nr_journal_chunks 0), so no journal superblock to write",
            dev.path().display()
        )));
    }
    dev.write_chunk(area.start, &superblock_chunk(area, tail_seq))?;
    dev.sync()
}

/// Makes the journal of a fresh store of geometry `g`: every journal chunk
/// zero, then (when the journal has a chunk) a superblock whose tail_seq is
/// [`FIRST_SEQ`]. No sync: the caller syncs before writing the header.
pub fn write_empty_journal<D: BlockDev + ?Sized>(dev: &D, g: &Geometry) -> Result<()> {
    let area = JournalArea::new(g);
    dev.zero_range(
        area.start * area.chunk_bytes,
        area.nr_chunks * area.chunk_bytes,
    )?;
    if area.has_superblock() {
        dev.write_chunk(area.start, &superblock_chunk(&area, FIRST_SEQ))?;
    }
    Ok(())
}

fn superblock_chunk(area: &JournalArea, tail_seq: u64) -> Vec<u8> {
    let mut chunk = vec![0u8; area.chunk_bytes as usize];
    JournalSuper {
        chunk_bytes: area.chunk_bytes as u32,
        log_chunks: area.log_chunks as u32,
        tail_seq,
    }
    .encode(&mut chunk);
    chunk
}

/// Writes transaction `t` at log position `pos` in the journal's commit order:
/// descriptor and images, sync, commit record, sync. Images are not written
/// home (the caller does that after, without a sync). Returns the log position
/// after the transaction. Refused when it does not fit the log from `pos` or
/// `t.images` is not one chunk per home.
pub fn write_transaction<D: BlockDev + ?Sized>(
    dev: &D,
    area: &JournalArea,
    pos: u64,
    t: &Transaction,
) -> Result<u64> {
    let cb = area.chunk_bytes as usize;
    let count = t.homes.len();
    if t.images.len() != count * cb {
        return Err(Error::Invalid(format!(
            "{}: journal transaction {}: {} bytes of images for {count} homes of {cb} bytes",
            dev.path().display(),
            t.seq,
            t.images.len()
        )));
    }
    if !area.fits(pos, count) {
        return Err(Error::Invalid(format!(
            "{}: journal transaction {} of {count} images does not fit the log ({} chunks) at position {pos}",
            dev.path().display(),
            t.seq,
            area.log_chunks
        )));
    }
    let (mut desc, mut commit) = (Vec::new(), Vec::new());
    encode_transaction(t, cb, &mut desc, &mut commit);
    let desc_chunks = (desc.len() / cb) as u64;
    dev.write_at(&desc, area.log_chunk(pos) * area.chunk_bytes)?;
    if count > 0 {
        dev.write_at(
            &t.images,
            area.log_chunk(pos + desc_chunks) * area.chunk_bytes,
        )?;
    }
    dev.sync()?;
    let commit_pos = pos + desc_chunks + count as u64;
    dev.write_chunk(area.log_chunk(commit_pos), &commit)?;
    dev.sync()?;
    Ok(commit_pos + 1)
}

/// Replays the journal of the store of geometry `g` on `dev`: every committed
/// transaction's images go home in log order (a later image of a chunk wins),
/// the last one's root, snapmask and tree level go into the header (valid set
/// to 1, other fields kept), sync, then a superblock whose tail_seq follows the
/// last one, sync. Nothing committed: nothing is written. Idempotent: a replay
/// cut anywhere is finished by the next. A damaged superblock is an
/// [`Error::Journal`] and nothing is written.
pub fn replay<D: BlockDev + ?Sized>(dev: &D, g: &Geometry) -> Result<ReplayReport> {
    let scan = scan(dev, g)?;
    let report = report_of(&scan);
    let Some(last) = scan.committed.last() else {
        return Ok(report);
    };
    apply(dev, g, &scan, &mut |chunk, bytes| {
        dev.write_chunk(chunk, bytes)
    })?;
    dev.sync()?;
    write_superblock(dev, &JournalArea::new(g), last.seq.wrapping_add(1))?;
    Ok(report)
}

/// What replay would write, without writing: an [`Overlay`] holding the
/// last image of every home chunk, the header chunk and the reset superblock,
/// through which a read-only device reads the store as replay would leave
/// it. Holds every committed image at once (at most the log's size).
pub fn replay_overlay<D: BlockDev + ?Sized>(
    dev: &D,
    g: &Geometry,
) -> Result<(Overlay, ReplayReport)> {
    let scan = scan(dev, g)?;
    let report = report_of(&scan);
    let mut overlay = Overlay::new(g.chunk_bytes);
    if let Some(last) = scan.committed.last() {
        apply(dev, g, &scan, &mut |chunk, bytes| {
            overlay.insert(chunk, bytes);
            Ok(())
        })?;
        let area = JournalArea::new(g);
        overlay.insert(
            area.start,
            &superblock_chunk(&area, last.seq.wrapping_add(1)),
        );
    }
    Ok((overlay, report))
}

fn report_of(scan: &JournalScan) -> ReplayReport {
    ReplayReport {
        transactions: scan.committed.len() as u64,
        images: scan.images(),
        last_seq: scan.last_seq(),
        torn: match &scan.end {
            ScanEnd::Clean => None,
            end => Some(end.clone()),
        },
    }
}

/// Gives `put` every committed image with its home chunk in log order, then
/// the header chunk with the last transaction's fields.
fn apply<D: BlockDev + ?Sized>(
    dev: &D,
    g: &Geometry,
    scan: &JournalScan,
    put: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let area = JournalArea::new(g);
    for tx in &scan.committed {
        images_home(dev, &area, tx, put)?;
    }
    if let Some(last) = scan.committed.last() {
        put(0, &header_chunk(dev, g, last)?)?;
    }
    Ok(())
}

/// Reads `tx`'s images from the log a batch at a time and gives each to `put`
/// with its home chunk.
fn images_home<D: BlockDev + ?Sized>(
    dev: &D,
    area: &JournalArea,
    tx: &TxSummary,
    put: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let cb = area.chunk_bytes as usize;
    let batch = (IMAGE_BATCH_BYTES / cb).max(1);
    let first = area.log_chunk(tx.images_pos(area.chunk_bytes));
    let mut buf = Vec::new();
    for (b, homes) in tx.homes.chunks(batch).enumerate() {
        let at = first + (b * batch) as u64;
        buf.resize(homes.len() * cb, 0);
        dev.read_at(&mut buf, at * cb as u64, &|| {
            format!("journal images of transaction {} (chunk {at})", tx.seq)
        })?;
        for (home, image) in homes.iter().zip(buf.chunks_exact(cb)) {
            put(*home, image)?;
        }
    }
    Ok(())
}

/// Chunk 0 with `last`'s header fields, the other fields and the rest of
/// the chunk kept.
fn header_chunk<D: BlockDev + ?Sized>(dev: &D, g: &Geometry, last: &TxSummary) -> Result<Vec<u8>> {
    let mut chunk = vec![0u8; (g.chunk_bytes as usize).max(HEADER_BYTES)];
    dev.read_chunk(0, &mut chunk)?;
    let mut header = SharedHeader::decode(&chunk).map_err(|e| Error::format(dev.path(), e))?;
    header.root_tree_chunk = last.header.root_tree_chunk;
    header.snapmask = last.header.snapmask;
    header.tree_level = last.header.tree_level;
    header.valid = 1;
    header.encode(&mut chunk);
    Ok(chunk)
}
