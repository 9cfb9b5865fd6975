//! Writing a new store's data chunks and records in allocation order.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::job::BATCH_BYTES;
use crate::persistent::layout::Geometry;
use crate::persistent::record::ExceptionRecord;
use crate::persistent::writer::{CommitOutcome, StoreWriter};
use crate::sparse::is_zero;

/// Zero chunks are cleared (a hole punched in an image file) in contiguous
/// runs of at most this many bytes; they take no memory.
const ZERO_RUN_BYTES: usize = 64 << 20;

/// Writes a new store in allocation order: data chunks are gathered into
/// contiguous writes, and each batch's records are committed only after its
/// data is written. On an output known to read zeros, zero chunks are not
/// written (the output stays as sparse as the input); on any other output
/// runs of zero chunks are cleared with [`Device::zero_range`] (a punched hole
/// in an image file, zeros written on a block device).
#[derive(Debug)]
pub struct RebuildWriter {
    writer: StoreWriter,
    chunk_bytes: usize,
    output_zeroed: bool,
    batch: Vec<u8>,
    batch_zeros: bool,
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
            output_zeroed: false,
            batch: Vec::with_capacity(BATCH_BYTES.max(chunk_bytes)),
            batch_zeros: false,
            batch_start: 0,
            pending: Vec::new(),
        })
    }

    /// Says whether every byte of the output is known to read as zero (a new
    /// or truncated image): zero chunks are then left unwritten, and so is the
    /// zeroing of each next area (see [`StoreWriter::assume_zeroed_device`]).
    pub fn with_zeroed_output(mut self, output_zeroed: bool) -> Self {
        self.output_zeroed = output_zeroed;
        if output_zeroed {
            self.writer.assume_zeroed_device();
        }
        self
    }

    /// The output geometry.
    pub fn geometry(&self) -> Geometry {
        self.writer.geometry()
    }

    /// Allocates the next data chunk for origin chunk `old_chunk`, queues `data`
    /// (one chunk) for it and returns the chunk.
    pub fn push(&mut self, old_chunk: u64, data: &[u8]) -> Result<u64> {
        debug_assert_eq!(data.len(), self.chunk_bytes);
        if is_zero(data) {
            return self.push_zeros(old_chunk);
        }
        let new_chunk = self.writer.allocate()?;
        self.queue(old_chunk, new_chunk, Some(data))?;
        Ok(new_chunk)
    }

    /// Allocates the next data chunk for origin chunk `old_chunk`, whose
    /// content is all zeros (a hole of the input), and returns the chunk.
    /// Nothing is written when the output already reads zeros.
    pub fn push_zeros(&mut self, old_chunk: u64) -> Result<u64> {
        let new_chunk = self.writer.allocate()?;
        if self.output_zeroed {
            self.flush_batch()?;
            self.commit(ExceptionRecord {
                old_chunk,
                new_chunk,
            })?;
        } else {
            self.queue(old_chunk, new_chunk, None)?;
        }
        Ok(new_chunk)
    }

    /// Queues the record and its data (`None`: zeros) after the batch,
    /// writing the batch first when the chunk does not continue it (a run of
    /// data and a run of zeros never share a batch).
    fn queue(&mut self, old_chunk: u64, new_chunk: u64, data: Option<&[u8]>) -> Result<()> {
        let zeros = data.is_none();
        let contiguous = new_chunk == self.batch_start + self.pending.len() as u64;
        let limit = if zeros { ZERO_RUN_BYTES } else { BATCH_BYTES };
        let queued = self.pending.len() * self.chunk_bytes;
        if !self.pending.is_empty()
            && (!contiguous || zeros != self.batch_zeros || queued + self.chunk_bytes > limit)
        {
            self.flush_batch()?;
        }
        if self.pending.is_empty() {
            self.batch_start = new_chunk;
            self.batch_zeros = zeros;
        }
        if let Some(data) = data {
            self.batch.extend_from_slice(data);
        }
        self.pending.push(ExceptionRecord {
            old_chunk,
            new_chunk,
        });
        Ok(())
    }

    fn commit(&mut self, record: ExceptionRecord) -> Result<()> {
        if self.writer.commit(record)? == CommitOutcome::Invalidated {
            return Err(Error::Invalid(format!(
                "{}: the metadata area after chunk {} lies past the end of the device; the output is too small",
                self.writer.device().path().display(),
                record.new_chunk
            )));
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let device = self.writer.device();
        let offset = self.batch_start * self.chunk_bytes as u64;
        if self.batch_zeros {
            device.zero_range(offset, (self.pending.len() * self.chunk_bytes) as u64)?;
        } else {
            device.write_at(&self.batch, offset)?;
        }
        for record in std::mem::take(&mut self.pending) {
            self.commit(record)?;
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
