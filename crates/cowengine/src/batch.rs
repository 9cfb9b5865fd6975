//! Crash-safe batched origin writes ([`SharedStore::origin_write_batch`]):
//! every copy-out of the batch is planned first, the origin chunks are copied
//! to their COW chunks in gathered runs, the records are committed, and only
//! then does the origin change.

use cowfmt::blockdev::BlockDev;
use cowfmt::error::{Error, Result};

use crate::store::{CopyData, SharedStore};

/// The most bytes one gathered copy or origin write holds.
const RUN_BYTES: u64 = 1 << 20;

/// Buffers a batch reuses, so that a warm store allocates nothing per batch.
#[derive(Debug, Default)]
pub(crate) struct BatchScratch {
    /// The origin chunks the batch touches, sorted, each once.
    chunks: Vec<u64>,
    /// `(origin chunk, COW chunk)` of each copy-out recorded but not yet copied.
    copies: Vec<(u64, u64)>,
    /// One gathered run of data.
    buf: Vec<u8>,
}

impl<D: BlockDev> SharedStore<D> {
    /// Writes each `(byte offset, data)` of `writes` to the origin, in order,
    /// crash-safe: first every chunk they touch is copied out for the
    /// snapshots that still see the origin there (origin chunks read and COW
    /// chunks written in runs, one I/O per run of chunks consecutive on both
    /// sides), then the records are committed ([`SharedStore::commit`]'s
    /// metadata commit: data durable before the commit record), and only then
    /// are the writes made (adjacent ones as one write). The result is that of
    /// [`SharedStore::origin_write`] for each write followed by a commit, but
    /// no crash can leave an origin chunk overwritten whose copy-out is not
    /// durable. The origin itself is not synced: its new data are durable
    /// once the caller syncs it ([`SharedStore::commit`] does).
    ///
    /// A batch too large for one transaction commits its copy-outs in several
    /// (each after its data). The batch commits, so no copy planned by the
    /// caller ([`SharedStore::plan_copy_out`]) may be in flight. A write past
    /// the origin's end refuses the whole batch before anything changes; an
    /// error while planning leaves the copies made so far written (their
    /// records name written data) and the origin untouched.
    pub fn origin_write_batch(&mut self, writes: &[(u64, &[u8])]) -> Result<()> {
        for &(offset, data) in writes {
            self.check_span(offset, data.len())?;
        }
        let mut scratch = std::mem::take(&mut self.batch_scratch);
        let result = self.write_batch_with(&mut scratch, writes);
        self.batch_scratch = scratch;
        result
    }

    fn write_batch_with(&mut self, s: &mut BatchScratch, writes: &[(u64, &[u8])]) -> Result<()> {
        let cb = self.geometry().chunk_bytes;
        s.chunks.clear();
        s.copies.clear();
        for &(offset, data) in writes.iter().filter(|(_, d)| !d.is_empty()) {
            s.chunks
                .extend(offset / cb..=(offset + data.len() as u64 - 1) / cb);
        }
        s.chunks.sort_unstable();
        s.chunks.dedup();
        let chunks = std::mem::take(&mut s.chunks);
        let planned = chunks.iter().try_for_each(|&origin| {
            if let Some(chunk) = self.plan_batch_copy(s, origin)? {
                s.copies.push((origin, chunk));
            }
            Ok(())
        });
        s.chunks = chunks;
        // Even when planning stopped, the records made so far must name
        // written data before any later commit.
        self.copy_planned(s)?;
        planned?;
        self.commit_metadata()?;
        self.write_origin_runs(s, writes)
    }

    /// Records the copy-out of `origin`; commits the copies planned so far
    /// (data first) when the transaction would pass its bound, and
    /// checkpoints when the store is full of chunks waiting for one.
    fn plan_batch_copy(&mut self, s: &mut BatchScratch, origin: u64) -> Result<Option<u64>> {
        if self.wants_commit() {
            self.copy_planned(s)?;
            self.commit_metadata()?;
        }
        match self.copy_out_to(origin, CopyData::No) {
            Err(Error::StoreFull { .. }) if self.pending_frees() > 0 => {
                self.copy_planned(s)?;
                self.checkpoint()?;
                self.copy_out_to(origin, CopyData::No)
            }
            other => other,
        }
    }

    /// Copies every planned origin chunk to its COW chunk, one write per run
    /// of consecutive COW chunks (one read per part of it whose origin chunks
    /// are consecutive too). A failed copy fails the store: its record must
    /// never be committed.
    fn copy_planned(&mut self, s: &mut BatchScratch) -> Result<()> {
        let copied = self.copy_runs(s);
        s.copies.clear();
        if copied.is_err() {
            self.fail();
        }
        copied
    }

    fn copy_runs(&self, s: &mut BatchScratch) -> Result<()> {
        let cb = self.geometry().chunk_bytes;
        let per_run = (RUN_BYTES / cb).max(1) as usize;
        let mut start = 0;
        while start < s.copies.len() {
            let mut end = start + 1;
            while end < s.copies.len()
                && end - start < per_run
                && s.copies[end].1 == s.copies[end - 1].1 + 1
            {
                end += 1;
            }
            let run = &s.copies[start..end];
            s.buf.resize(run.len() * cb as usize, 0);
            let mut at = 0;
            while at < run.len() {
                let mut to = at + 1;
                while to < run.len() && run[to].0 == run[to - 1].0 + 1 {
                    to += 1;
                }
                let bytes = &mut s.buf[at * cb as usize..to * cb as usize];
                self.read_origin_span(run[at].0, bytes)?;
                at = to;
            }
            self.cow_device().write_at(&s.buf, run[0].1 * cb)?;
            start = end;
        }
        Ok(())
    }

    /// Reads the origin chunks from `first` into `buf` (whole chunks),
    /// zero-padding past the origin's end.
    fn read_origin_span(&self, first: u64, buf: &mut [u8]) -> Result<()> {
        let start = first * self.geometry().chunk_bytes;
        let len = (self.origin_device().size() - start).min(buf.len() as u64) as usize;
        buf[len..].fill(0);
        let chunks = buf.len() as u64 / self.geometry().chunk_bytes;
        self.origin_device().read_at(&mut buf[..len], start, &|| {
            format!("origin chunks {first} to {}", first + chunks - 1)
        })
    }

    /// Makes the writes in order, each run of writes that follow one another
    /// on the origin as one write.
    fn write_origin_runs(&self, s: &mut BatchScratch, writes: &[(u64, &[u8])]) -> Result<()> {
        let mut start = 0;
        while start < writes.len() {
            let (offset, first) = writes[start];
            let mut end = start + 1;
            let mut run_end = offset + first.len() as u64;
            while end < writes.len()
                && writes[end].0 == run_end
                && run_end - offset + writes[end].1.len() as u64 <= RUN_BYTES
            {
                run_end += writes[end].1.len() as u64;
                end += 1;
            }
            if end - start == 1 {
                self.origin_device().write_at(first, offset)?;
            } else {
                s.buf.clear();
                for (_, data) in &writes[start..end] {
                    s.buf.extend_from_slice(data);
                }
                self.origin_device().write_at(&s.buf, offset)?;
            }
            start = end;
        }
        Ok(())
    }
}
