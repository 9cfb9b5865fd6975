//! A classic store's records as an exception stream, in the order a
//! migration writes them: the kernel's record order for a copy or a split,
//! and for a merge the groups of `factor` origin chunks in the order each
//! group first appears (the first record of an origin chunk wins).

use crate::job::{EntrySource, InEntry, InRecord, JobError};
use crate::persistent::store::PlacedRecord;

/// The entries of one store's records, snapshot bit 0, device 0, made one
/// at a time from the records.
#[derive(Debug)]
pub(crate) struct RecordSource<'a> {
    records: &'a [PlacedRecord],
    order: Order,
    /// The next record (in record order) or key (grouped) to give.
    next: usize,
}

/// The order entries come in.
#[derive(Debug)]
enum Order {
    /// Record by record.
    Records,
    /// Group by group; `keys` holds `(old_chunk, record index)` sorted by
    /// origin chunk, one per origin chunk, and each group is a run of it.
    Grouped {
        keys: Vec<(u64, usize)>,
        groups: Vec<GroupRun>,
        at: usize,
    },
}

/// A group's keys: `keys[start..end]`.
#[derive(Debug, Clone, Copy)]
struct GroupRun {
    start: usize,
    end: usize,
}

impl<'a> RecordSource<'a> {
    /// Every record, in the order given.
    pub(crate) fn in_record_order(records: &'a [PlacedRecord]) -> Self {
        RecordSource {
            records,
            order: Order::Records,
            next: 0,
        }
    }

    /// The records grouped by `old_chunk / factor`, groups in the order each
    /// first appears, ascending inside a group; of several records of one
    /// origin chunk the first is kept.
    pub(crate) fn grouped(records: &'a [PlacedRecord], factor: u64) -> Self {
        let mut keys: Vec<(u64, usize)> = records
            .iter()
            .enumerate()
            .map(|(i, placed)| (placed.record.old_chunk, i))
            .collect();
        keys.sort_unstable();
        keys.dedup_by_key(|key| key.0);
        let mut firsts: Vec<(usize, GroupRun)> = Vec::new();
        let mut start = 0;
        while start < keys.len() {
            let group = keys[start].0 / factor;
            let mut end = start;
            let mut first = usize::MAX;
            while end < keys.len() && keys[end].0 / factor == group {
                first = first.min(keys[end].1);
                end += 1;
            }
            firsts.push((first, GroupRun { start, end }));
            start = end;
        }
        firsts.sort_unstable_by_key(|(first, _)| *first);
        let groups: Vec<GroupRun> = firsts.into_iter().map(|(_, run)| run).collect();
        RecordSource {
            records,
            next: groups.first().map_or(0, |run| run.start),
            order: Order::Grouped {
                keys,
                groups,
                at: 0,
            },
        }
    }

    /// The index of the next record to give, or `None` at the end.
    fn next_index(&mut self) -> Option<usize> {
        match &mut self.order {
            Order::Records => {
                let i = self.next;
                self.next += 1;
                (i < self.records.len()).then_some(i)
            }
            Order::Grouped { keys, groups, at } => {
                let run = groups.get(*at)?;
                let i = keys[self.next].1;
                self.next += 1;
                if self.next == run.end {
                    *at += 1;
                    self.next = groups.get(*at).map_or(0, |run| run.start);
                }
                Some(i)
            }
        }
    }
}

/// The entry of one classic record: snapshot bit 0, device 0.
pub(super) fn entry(old_chunk: u64, new_chunk: u64) -> InEntry {
    let mut made = InEntry {
        origin: old_chunk,
        records: Vec::with_capacity(1),
    };
    fill_entry(&mut made, old_chunk, new_chunk);
    made
}

/// Makes `entry` the entry of one classic record, reusing its record list.
pub(super) fn fill_entry(entry: &mut InEntry, old_chunk: u64, new_chunk: u64) {
    entry.origin = old_chunk;
    entry.records.clear();
    entry.records.push(InRecord {
        mask: 1,
        dev: 0,
        chunk: new_chunk,
    });
}

impl EntrySource for RecordSource<'_> {
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
        Ok(self.next_index().map(|i| {
            let record = self.records[i].record;
            entry(record.old_chunk, record.new_chunk)
        }))
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

    fn origins(mut source: RecordSource<'_>) -> Vec<(u64, u64)> {
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
