//! A [`Sink`] that writes a new shared store: each distinct content gets the
//! next data chunk (so data lies contiguous from the start of the data range,
//! written in large batches; zero contents are not written to an output that
//! reads zeros), its record is kept, and at the end the tree is bulk-loaded and the header written by [`StoreBuilder`].

use crate::device::Device;
use crate::error::Error;
use crate::job::{ChunkGroups, JobError, Sink, BATCH_BYTES};
use crate::shared::build::{Built, StoreBuilder};
use crate::shared::leaf::Exception;
use crate::sparse::is_zero;

use super::size::max_records_per_chunk;

/// Writes data chunks and collects records for the tree.
#[derive(Debug)]
pub(crate) struct SharedWriter<'a> {
    builder: StoreBuilder<'a>,
    device: &'a Device,
    output_zeroed: bool,
    chunk_bytes: u64,
    batch: Vec<u8>,
    batch_start: u64,
    records: Vec<(u64, Exception)>,
}

impl<'a> SharedWriter<'a> {
    /// Starts a store of `chunk_sectors` with `journal_chunks` of journal on
    /// `device`; `output_zeroed` says the device reads zeros (a new image).
    pub(crate) fn new(
        device: &'a Device,
        chunk_sectors: u32,
        journal_chunks: u64,
        output_zeroed: bool,
    ) -> Result<Self, JobError> {
        let builder = StoreBuilder::new(device, u64::from(chunk_sectors), journal_chunks)?;
        let chunk_bytes = builder.geometry().chunk_bytes;
        Ok(SharedWriter {
            builder,
            device,
            output_zeroed,
            chunk_bytes,
            batch: Vec::with_capacity(BATCH_BYTES.max(chunk_bytes as usize)),
            batch_start: 0,
            records: Vec::new(),
        })
    }

    fn batch_chunks(&self) -> u64 {
        self.batch.len() as u64 / self.chunk_bytes
    }

    fn flush(&mut self) -> Result<(), JobError> {
        if !self.batch.is_empty() {
            self.device
                .write_at(&self.batch, self.batch_start * self.chunk_bytes)?;
            self.batch.clear();
        }
        Ok(())
    }

    /// Writes the last data, the tree, bitmap, journal and header with
    /// `snapmask`.
    pub(crate) fn finish(mut self, snapmask: u64) -> Result<Built, JobError> {
        self.flush()?;
        let mut tree = self.builder.into_tree();
        let records = &self.records;
        let mut i = 0;
        let mut group = Vec::new();
        while i < records.len() {
            let origin = records[i].0;
            group.clear();
            while i < records.len() && records[i].0 == origin {
                group.push(records[i].1);
                i += 1;
            }
            tree.push(origin, &group)?;
        }
        Ok(tree.finish(snapmask)?)
    }
}

impl Sink for SharedWriter<'_> {
    fn chunk(&mut self, origin: u64, groups: &ChunkGroups) -> Result<(), JobError> {
        let most = max_records_per_chunk(self.chunk_bytes);
        if groups.len() as u64 > most {
            return Err(Error::Invalid(format!(
                "{}: origin chunk {origin} has {} different contents, more than a leaf of {}-byte chunks holds ({most}); choose a larger --chunk-size",
                self.device.path().display(),
                groups.len(),
                self.chunk_bytes
            ))
            .into());
        }
        for (mask, content) in groups.iter() {
            let chunk = self.builder.allocate()?;
            self.records
                .push((origin, Exception { share: mask, chunk }));
            if self.output_zeroed && is_zero(content) {
                self.flush()?;
                continue;
            }
            let contiguous = chunk == self.batch_start + self.batch_chunks();
            if !contiguous || self.batch.len() + content.len() > BATCH_BYTES {
                self.flush()?;
            }
            if self.batch.is_empty() {
                self.batch_start = chunk;
            }
            self.batch.extend_from_slice(content);
        }
        Ok(())
    }
}
