//! A classic store's records kept in place: spooled `[old_chunk, new_chunk]`
//! records as an exception stream ([`SpooledRecords`], a restore's input),
//! and each entry as the one record a classic store writes for it.

use crate::dump_read::spool::{read_back_error, SpoolReader};
use crate::job::{EntrySource, InEntry, JobError};
use crate::persistent::record::ExceptionRecord;

use super::source::{entry, fill_entry};

/// Spooled classic records, one entry each, in the spool's order.
pub(crate) struct SpooledRecords {
    reader: SpoolReader,
}

impl SpooledRecords {
    /// The records `reader` reads back.
    pub(crate) fn new(reader: SpoolReader) -> Self {
        SpooledRecords { reader }
    }
}

impl EntrySource for SpooledRecords {
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
        let mut r = [0u64; 2];
        match self.reader.next_into(&mut r) {
            Ok(true) => Ok(Some(entry(r[0], r[1]))),
            Ok(false) => Ok(None),
            Err(e) => Err(read_back_error(e).into()),
        }
    }

    fn next_into(&mut self, entry: &mut InEntry) -> Result<bool, JobError> {
        let mut r = [0u64; 2];
        match self.reader.next_into(&mut r) {
            Ok(true) => {
                fill_entry(entry, r[0], r[1]);
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(read_back_error(e).into()),
        }
    }
}

/// The record of a classic entry: its origin chunk and the chunk of its one
/// copy.
pub(crate) fn record_of(entry: &InEntry) -> ExceptionRecord {
    ExceptionRecord {
        old_chunk: entry.origin,
        new_chunk: entry.records[0].chunk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump_read::spool::Spool;

    #[test]
    fn spooled_records_come_back_as_entries_and_records() {
        let mut spool = Spool::new(2).unwrap();
        spool.push(&[7, 2]).unwrap();
        spool.push(&[3, 9]).unwrap();
        let mut source = SpooledRecords::new(spool.read().unwrap());
        let mut got = Vec::new();
        while let Some(e) = source.next_entry().unwrap() {
            got.push(record_of(&e));
        }
        let want = [(7, 2), (3, 9)].map(|(old_chunk, new_chunk)| ExceptionRecord {
            old_chunk,
            new_chunk,
        });
        assert_eq!(got, want);
    }
}
