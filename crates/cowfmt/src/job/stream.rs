//! The exception stream every job speaks: the copies of each origin chunk,
//! each with the snapshots that see it.

use super::error::JobError;

/// One copy of an origin chunk: the snapshots that see it, the input device
/// holding it (an index into the job's devices) and its chunk there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InRecord {
    /// Bit s set: snapshot s of the output sees this copy.
    pub(crate) mask: u64,
    /// Index of the input device.
    pub(crate) dev: u32,
    /// Chunk of the input device holding the data.
    pub(crate) chunk: u64,
}

/// The copies of one origin chunk (in the inputs' chunk size); their masks are
/// disjoint and non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InEntry {
    /// The origin chunk.
    pub(crate) origin: u64,
    /// Its copies.
    pub(crate) records: Vec<InRecord>,
}

/// A stream of [`InEntry`]s. The entries of one output chunk come one after
/// the other; a source for a shared output (whose tree is built in order)
/// gives them in strictly ascending origin order, a classic store's records
/// come in the order they are to be written.
pub(crate) trait EntrySource {
    /// The next entry, or `None` at the end.
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError>;

    /// The next entry into `entry`, whose record list a source may reuse;
    /// `false` at the end.
    fn next_into(&mut self, entry: &mut InEntry) -> Result<bool, JobError> {
        match self.next_entry()? {
            Some(next) => {
                *entry = next;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
