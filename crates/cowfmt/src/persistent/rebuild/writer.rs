//! Writing a new store's data chunks and records in allocation order.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::persistent::layout::Geometry;
use crate::persistent::record::ExceptionRecord;
use crate::persistent::writer::{CommitOutcome, StoreWriter};

/// Data is written in contiguous runs of at most this many bytes.
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// Writes a new store in allocation order: data chunks are gathered into
/// contiguous writes, and each batch's records are committed only after its
/// data is written.
#[derive(Debug)]
pub struct RebuildWriter {
    writer: StoreWriter,
    chunk_bytes: usize,
    batch: Vec<u8>,
    batch_start: u64,
    pending: Vec<ExceptionRecord>,
}

impl RebuildWriter {
    /// Starts a fresh store of `chunk_sectors` chunks on `output`; its header
    /// is written last, by [`RebuildWriter::finish`].
    pub fn format(output: Device, chunk_sectors: u32) -> Result<Self> {
        let writer = StoreWriter::begin(output, chunk_sectors)?;
        let chunk_bytes = writer.geometry().chunk_bytes();
        Ok(RebuildWriter {
            writer,
            chunk_bytes,
            batch: Vec::with_capacity(BATCH_BYTES.max(chunk_bytes)),
            batch_start: 0,
            pending: Vec::new(),
        })
    }

    /// The output geometry.
    pub fn geometry(&self) -> Geometry {
        self.writer.geometry()
    }

    /// Allocates the next data chunk for origin chunk `old_chunk`, queues `data`
    /// (one chunk) for it and returns the chunk.
    pub fn push(&mut self, old_chunk: u64, data: &[u8]) -> Result<u64> {
        debug_assert_eq!(data.len(), self.chunk_bytes);
        let new_chunk = self.writer.allocate()?;
        let contiguous = new_chunk == self.batch_start + self.pending.len() as u64;
        if !self.pending.is_empty() && (!contiguous || self.batch.len() + data.len() > BATCH_BYTES)
        {
            self.flush_batch()?;
        }
        if self.pending.is_empty() {
            self.batch_start = new_chunk;
        }
        self.batch.extend_from_slice(data);
        self.pending.push(ExceptionRecord {
            old_chunk,
            new_chunk,
        });
        Ok(new_chunk)
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let device = self.writer.device();
        device.write_at(&self.batch, self.batch_start * self.chunk_bytes as u64)?;
        for record in std::mem::take(&mut self.pending) {
            if self.writer.commit(record)? == CommitOutcome::Invalidated {
                return Err(Error::Invalid(format!(
                    "{}: the metadata area after chunk {} lies past the end of the device; the output is too small",
                    self.writer.device().path().display(),
                    record.new_chunk
                )));
            }
        }
        self.batch.clear();
        Ok(())
    }

    /// Writes what is queued, then (after a sync) the header, valid unless
    /// `!valid`, and gives the device back.
    pub fn finish(mut self, valid: bool) -> Result<Device> {
        self.flush_batch()?;
        self.writer.flush()?;
        if !valid {
            self.writer.invalidate()?;
        }
        self.writer.finish()
    }
}
