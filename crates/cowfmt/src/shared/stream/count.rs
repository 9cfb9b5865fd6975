//! A [`Sink`] that writes nothing and counts what sharing leaves: the exact
//! data chunks and records of the output, and the tree they take.

use crate::job::{ChunkGroups, JobError, Sink};

use super::size::LeafPacker;

/// Counts distinct contents and packs their records into leaves.
#[derive(Debug)]
pub(crate) struct Counter {
    /// The leaves the records take.
    pub(crate) packer: LeafPacker,
    /// Data chunks (one per distinct content).
    pub(crate) data_chunks: u64,
}

impl Counter {
    /// A counter for output chunks of `chunk_bytes`.
    pub(crate) fn new(chunk_bytes: u64) -> Self {
        Counter {
            packer: LeafPacker::new(chunk_bytes),
            data_chunks: 0,
        }
    }

    /// Data and tree chunks.
    pub(crate) fn content_chunks(&self) -> u64 {
        self.data_chunks + self.packer.tree_chunks()
    }
}

impl Sink for Counter {
    fn chunk(&mut self, origin: u64, groups: &ChunkGroups) -> Result<(), JobError> {
        let n = groups.len() as u64;
        self.data_chunks += n;
        self.packer.add(origin, n);
        Ok(())
    }
}
