//! A classic store's records as an exception stream, in the order a
//! migration writes them: the kernel's record order for a copy or a split,
//! and for a merge the groups of `factor` origin chunks in the order each
//! group first appears (the first record of an origin chunk wins).

use std::collections::{HashMap, HashSet};

use crate::job::{EntrySource, InEntry, InRecord, JobError};
use crate::persistent::store::PlacedRecord;

/// The entries of one store's records, snapshot bit 0, device 0.
#[derive(Debug)]
pub(crate) struct RecordSource {
    entries: std::vec::IntoIter<InEntry>,
}

impl RecordSource {
    /// Every record, in the order given.
    pub(crate) fn in_record_order(records: &[PlacedRecord]) -> Self {
        let entries: Vec<InEntry> = records
            .iter()
            .map(|placed| entry(placed.record.old_chunk, placed.record.new_chunk))
            .collect();
        RecordSource {
            entries: entries.into_iter(),
        }
    }

    /// The records grouped by `old_chunk / factor`, groups in the order each
    /// first appears, ascending inside a group; of several records of one
    /// origin chunk the first is kept.
    pub(crate) fn grouped(records: &[PlacedRecord], factor: u64) -> Self {
        let mut groups: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut group_of: HashMap<u64, usize> = HashMap::new();
        let mut seen: HashSet<u64> = HashSet::with_capacity(records.len());
        for placed in records {
            let old = placed.record.old_chunk;
            if !seen.insert(old) {
                continue;
            }
            let next = groups.len();
            let index = *group_of.entry(old / factor).or_insert(next);
            if index == next {
                groups.push(Vec::new());
            }
            groups[index].push((old, placed.record.new_chunk));
        }
        let entries: Vec<InEntry> = groups
            .into_iter()
            .flat_map(|mut group| {
                group.sort_unstable();
                group.into_iter().map(|(old, new)| entry(old, new))
            })
            .collect();
        RecordSource {
            entries: entries.into_iter(),
        }
    }
}

/// The entry of one classic record: snapshot bit 0, device 0.
pub(super) fn entry(old_chunk: u64, new_chunk: u64) -> InEntry {
    InEntry {
        origin: old_chunk,
        records: vec![InRecord {
            mask: 1,
            dev: 0,
            chunk: new_chunk,
        }],
    }
}

impl EntrySource for RecordSource {
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
        Ok(self.entries.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistent::record::ExceptionRecord;

    fn placed(index: u64, old_chunk: u64, new_chunk: u64) -> PlacedRecord {
        PlacedRecord {
            area: 0,
            index,
            record: ExceptionRecord {
                old_chunk,
                new_chunk,
            },
        }
    }

    fn origins(mut source: RecordSource) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        while let Some(e) = source.next_entry().unwrap() {
            out.push((e.origin, e.records[0].chunk));
        }
        out
    }

    #[test]
    fn groups_keep_their_first_appearance_and_the_first_record_wins() {
        let records = [
            placed(0, 9, 2),
            placed(1, 1, 3),
            placed(2, 8, 4),
            placed(3, 9, 5),
            placed(4, 0, 6),
        ];
        let got = origins(RecordSource::grouped(&records, 4));
        assert_eq!(got, vec![(8, 4), (9, 2), (0, 6), (1, 3)]);
        let got = origins(RecordSource::in_record_order(&records));
        assert_eq!(got[3], (9, 5));
        assert_eq!(got.len(), 5);
    }
}
