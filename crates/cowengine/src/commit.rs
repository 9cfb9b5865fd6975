//! One captured commit, written outside the store's lock: the dirty bitmap
//! chunks and tree blocks as images with their home chunks, and the header
//! fields after it ([`cowfmt::shared::journal::Transaction`]).

use cowfmt::blockdev::BlockDev;
use cowfmt::error::Result;
use cowfmt::shared::header::SharedHeader;
use cowfmt::shared::journal::Transaction;

use crate::journal::{write_home, Checkpointed, JournalWriter};

/// A commit captured by [`crate::SharedStore::begin_commit`].
#[derive(Debug)]
pub struct CommitWork {
    pub(crate) batch: u64,
    pub(crate) tx: Transaction,
    pub(crate) base: SharedHeader,
    pub(crate) journal: Option<JournalWriter>,
    pub(crate) changed: Vec<usize>,
}

/// Buffers a commit reuses.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) homes: Vec<u64>,
    pub(crate) images: Vec<u8>,
    pub(crate) changed: Vec<usize>,
}

impl CommitWork {
    /// The batch this commit makes durable ([`crate::SharedStore::batch`]).
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The transaction (its images, homes and header fields).
    pub fn transaction(&self) -> &Transaction {
        &self.tx
    }

    /// Writes the commit to `cow`, the store's COW device: through the
    /// journal (and checkpoints when due), or in place (images home, sync,
    /// header, sync).
    pub fn write<D: BlockDev + ?Sized>(&mut self, cow: &D) -> Result<Checkpointed> {
        let cb = self.base.chunk_size as u64 * cowfmt::SECTOR_BYTES;
        match &mut self.journal {
            Some(journal) => journal.commit(cow, &self.tx, &self.base),
            None => {
                write_home(cow, &self.tx.homes, &self.tx.images, cb)?;
                cow.sync()?;
                let header = SharedHeader {
                    root_tree_chunk: self.tx.header.root_tree_chunk,
                    snapmask: self.tx.header.snapmask,
                    tree_level: self.tx.header.tree_level,
                    ..self.base
                };
                cow.write_chunk(0, &header.to_chunk(cb as usize))?;
                cow.sync()?;
                Ok(Checkpointed::No)
            }
        }
    }
}
