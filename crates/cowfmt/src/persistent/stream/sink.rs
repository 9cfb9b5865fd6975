//! A [`Sink`] that writes one snapshot as a classic (persistent or legacy)
//! store: every output chunk has exactly one content, written in allocation
//! order by the [`RebuildWriter`] that repair and persistent migration use.

use crate::device::Device;
use crate::error::Error;
use crate::job::{ChunkGroups, JobError, Sink};
use crate::persistent::rebuild::RebuildWriter;

/// Writes one record per output chunk.
#[derive(Debug)]
pub(crate) struct ClassicWriter {
    writer: RebuildWriter,
}

impl ClassicWriter {
    /// Formats `output` as a fresh store of `chunk_sectors`; `output_zeroed`
    /// says it reads zeros (a new image), so zero chunks are not written.
    pub(crate) fn new(
        output: Device,
        chunk_sectors: u32,
        output_zeroed: bool,
    ) -> Result<Self, JobError> {
        Ok(ClassicWriter {
            writer: RebuildWriter::format(output, chunk_sectors)?.with_zeroed_output(output_zeroed),
        })
    }

    /// Writes what is queued, with a header that says `valid`, and gives the
    /// device back.
    pub(crate) fn finish(self, valid: bool) -> Result<Device, JobError> {
        Ok(self.writer.finish(valid)?)
    }
}

impl Sink for ClassicWriter {
    fn chunk(&mut self, origin: u64, groups: &ChunkGroups) -> Result<(), JobError> {
        let mut contents = groups.iter();
        match (contents.next(), contents.next()) {
            (Some((_, content)), None) => {
                self.writer.push(origin, content)?;
                Ok(())
            }
            _ => Err(Error::Invalid(format!(
                "origin chunk {origin} has {} contents, but a classic store holds one snapshot",
                groups.len()
            ))
            .into()),
        }
    }
}
