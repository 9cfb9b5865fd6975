//! The place-keeping form of the stream: entries whose data already sits at
//! the chunk each record names, in the output as in the input (a restore, a
//! shared repair). Nothing is read or copied; a kind's [`KeptSink`] records
//! the entries where they are.

use super::error::JobError;
use super::stream::{EntrySource, InEntry};

/// A kind's writer for entries kept in place: it takes them one by one, in
/// the source's order, with their index in the stream.
pub(crate) trait KeptSink {
    /// Takes entry number `index`.
    fn entry(&mut self, index: u64, entry: &InEntry) -> Result<(), JobError>;
}

/// Hands every entry of `source` to `sink` in order; `progress` gets the
/// index of each entry before the sink takes it. Returns the entries handed.
pub(crate) fn run_kept(
    source: &mut dyn EntrySource,
    sink: &mut dyn KeptSink,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, JobError> {
    let mut index = 0u64;
    let mut entry = InEntry {
        origin: 0,
        records: Vec::new(),
    };
    while source.next_into(&mut entry)? {
        progress(index);
        sink.entry(index, &entry)?;
        index += 1;
    }
    Ok(index)
}

/// The entries of `source` as an iterator of what `map` makes of each, for
/// a kind's writer that pulls its records (the first error ends the
/// iteration). One entry is reused for the whole stream: a source that
/// fills it in place allocates nothing per entry.
pub(crate) fn kept_entries<'a, T>(
    source: &'a mut dyn EntrySource,
    mut map: impl FnMut(&InEntry) -> T + 'a,
) -> impl Iterator<Item = Result<T, JobError>> + 'a {
    let mut failed = false;
    let mut entry = InEntry {
        origin: 0,
        records: Vec::new(),
    };
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match source.next_into(&mut entry) {
            Ok(true) => Some(Ok(map(&entry))),
            Ok(false) => None,
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::InRecord;

    struct Listed(std::vec::IntoIter<InEntry>);

    impl EntrySource for Listed {
        fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
            Ok(self.0.next())
        }
    }

    fn entry(origin: u64, chunk: u64) -> InEntry {
        InEntry {
            origin,
            records: vec![InRecord {
                mask: 1,
                dev: 0,
                chunk,
            }],
        }
    }

    struct Recorder(Vec<(u64, u64, u64)>);

    impl KeptSink for Recorder {
        fn entry(&mut self, index: u64, entry: &InEntry) -> Result<(), JobError> {
            if entry.origin == 99 {
                return Err(JobError::Damage(format!("entry {index}")));
            }
            self.0.push((index, entry.origin, entry.records[0].chunk));
            Ok(())
        }
    }

    #[test]
    fn entries_reach_the_sink_in_order_with_their_index() {
        let mut source = Listed(vec![entry(4, 10), entry(2, 11), entry(7, 3)].into_iter());
        let mut sink = Recorder(Vec::new());
        let mut seen = Vec::new();
        let n = run_kept(&mut source, &mut sink, &mut |i| seen.push(i)).unwrap();
        assert_eq!(n, 3);
        assert_eq!(sink.0, vec![(0, 4, 10), (1, 2, 11), (2, 7, 3)]);
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn a_sink_error_stops_the_run() {
        let mut source = Listed(vec![entry(1, 5), entry(99, 6), entry(3, 7)].into_iter());
        let mut sink = Recorder(Vec::new());
        let err = run_kept(&mut source, &mut sink, &mut |_| {}).unwrap_err();
        assert_eq!(err.to_string(), "entry 1");
        assert_eq!(sink.0, vec![(0, 1, 5)]);
    }

    #[test]
    fn pulled_entries_come_in_order() {
        let mut source = Listed(vec![entry(4, 10), entry(2, 11)].into_iter());
        let got: Vec<u64> = kept_entries(&mut source, |e| e.origin)
            .map(|origin| origin.unwrap())
            .collect();
        assert_eq!(got, vec![4, 2]);
    }
}
