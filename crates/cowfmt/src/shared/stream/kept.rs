//! A shared store's records kept in place: spooled `[origin_chunk, cow_chunk,
//! share]` records as an exception stream ([`SpooledGroups`], a restore's
//! input), and the tree writer as the sink of entries whose data chunks are
//! already claimed where they are ([`TreeSink`], for a restore and a repair).

use crate::dump_read::spool::{read_back_error, SpoolReader};
use crate::job::{EntrySource, InEntry, InRecord, JobError, KeptSink};
use crate::shared::build::TreeWriter;
use crate::shared::leaf::Exception;

/// Spooled shared records grouped by origin chunk, in the spool's order
/// (the records of one origin chunk are neighbours).
pub(crate) struct SpooledGroups {
    reader: SpoolReader,
    next: Option<[u64; 3]>,
    started: bool,
}

impl SpooledGroups {
    /// The records `reader` reads back.
    pub(crate) fn new(reader: SpoolReader) -> Self {
        SpooledGroups {
            reader,
            next: None,
            started: false,
        }
    }

    fn read(&mut self) -> Result<Option<[u64; 3]>, JobError> {
        let mut r = [0u64; 3];
        match self.reader.next_into(&mut r) {
            Ok(true) => Ok(Some(r)),
            Ok(false) => Ok(None),
            Err(e) => Err(read_back_error(e).into()),
        }
    }
}

impl EntrySource for SpooledGroups {
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
        let mut entry = InEntry {
            origin: 0,
            records: Vec::new(),
        };
        Ok(self.next_into(&mut entry)?.then_some(entry))
    }

    fn next_into(&mut self, entry: &mut InEntry) -> Result<bool, JobError> {
        if !self.started {
            self.started = true;
            self.next = self.read()?;
        }
        let Some([origin, chunk, share]) = self.next else {
            return Ok(false);
        };
        entry.origin = origin;
        entry.records.clear();
        entry.records.push(record(chunk, share));
        loop {
            self.next = self.read()?;
            match self.next {
                Some([o, chunk, share]) if o == origin => entry.records.push(record(chunk, share)),
                _ => return Ok(true),
            }
        }
    }
}

fn record(chunk: u64, share: u64) -> InRecord {
    InRecord {
        mask: share,
        dev: 0,
        chunk,
    }
}

/// Pushes each entry into a shared tree as the records of its origin chunk:
/// the snapshots of each copy and the chunk where its data already is.
pub(crate) struct TreeSink<'a> {
    tree: TreeWriter<'a>,
    records: Vec<Exception>,
}

impl<'a> TreeSink<'a> {
    /// Fills `tree`.
    pub(crate) fn new(tree: TreeWriter<'a>) -> Self {
        TreeSink {
            tree,
            records: Vec::new(),
        }
    }

    /// The tree, to be finished.
    pub(crate) fn into_tree(self) -> TreeWriter<'a> {
        self.tree
    }
}

impl KeptSink for TreeSink<'_> {
    fn entry(&mut self, _index: u64, entry: &InEntry) -> Result<(), JobError> {
        self.records.clear();
        self.records.extend(entry.records.iter().map(|r| Exception {
            share: r.mask,
            chunk: r.chunk,
        }));
        self.tree.push(entry.origin, &self.records)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump_read::spool::Spool;

    #[test]
    fn spooled_records_group_by_origin_chunk() {
        let mut spool = Spool::new(3).unwrap();
        for r in [[1, 10, 1], [1, 11, 2], [4, 12, 3], [6, 13, 1], [6, 14, 4]] {
            spool.push(&r).unwrap();
        }
        let mut source = SpooledGroups::new(spool.read().unwrap());
        let mut got = Vec::new();
        while let Some(e) = source.next_entry().unwrap() {
            let copies: Vec<(u64, u64)> = e.records.iter().map(|r| (r.chunk, r.mask)).collect();
            got.push((e.origin, copies));
        }
        assert_eq!(
            got,
            vec![
                (1, vec![(10, 1), (11, 2)]),
                (4, vec![(12, 3)]),
                (6, vec![(13, 1), (14, 4)]),
            ]
        );
        assert!(source.next_entry().unwrap().is_none());
    }

    #[test]
    fn a_reused_entry_holds_only_the_next_origin_chunk() {
        let mut spool = Spool::new(3).unwrap();
        for r in [[2, 10, 1], [2, 11, 2], [5, 12, 3]] {
            spool.push(&r).unwrap();
        }
        let mut source = SpooledGroups::new(spool.read().unwrap());
        let mut entry = InEntry {
            origin: 0,
            records: Vec::new(),
        };
        assert!(source.next_into(&mut entry).unwrap());
        assert_eq!((entry.origin, entry.records.len()), (2, 2));
        assert!(source.next_into(&mut entry).unwrap());
        assert_eq!(entry.origin, 5);
        assert_eq!(entry.records, vec![record(12, 3)]);
        assert!(!source.next_into(&mut entry).unwrap());
    }

    #[test]
    fn an_empty_spool_is_an_empty_stream() {
        let mut spool = Spool::new(3).unwrap();
        let mut source = SpooledGroups::new(spool.read().unwrap());
        assert!(source.next_entry().unwrap().is_none());
    }
}
