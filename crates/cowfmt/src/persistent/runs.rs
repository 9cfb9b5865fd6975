//! Consecutive runs, as the kernel keeps exceptions in memory (seed 004).
//!
//! On disk every chunk has its own record. In memory the kernel merges a record
//! into an existing entry when both its old and new chunk are exactly one past
//! the end, or one before the start, of that entry. Entries live in hash buckets
//! of 256 origin chunks (`old_chunk >> 8`), each list sorted by old chunk, and a
//! record merges with the first entry of its bucket that fits; so a run never
//! crosses a 256-aligned origin boundary and two runs never join.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::record::ExceptionRecord;

/// Bits of `old_chunk` that select the bucket a run lives in.
pub const RUN_BUCKET_SHIFT: u32 = 8;

/// A run of `count` chunks: origin `old_chunk..old_chunk+count` kept in COW
/// `new_chunk..new_chunk+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// First origin chunk.
    pub old_chunk: u64,
    /// First COW chunk.
    pub new_chunk: u64,
    /// Chunks in the run (at least 1).
    pub count: u64,
}

impl Run {
    /// The (old, new) chunk pair one past the end, when it fits 64 bits.
    fn end(&self) -> Option<(u64, u64)> {
        Some((
            self.old_chunk.checked_add(self.count)?,
            self.new_chunk.checked_add(self.count)?,
        ))
    }
}

/// Where a run stands in the kernel's lists: its first origin chunk, then
/// the order in which it took that place (later ones stand after earlier).
type Place = (u64, u64);

/// Builds runs from records in on-disk order, merging as the kernel does, in
/// logarithmic time per record however many runs share a bucket.
#[derive(Debug, Default)]
pub struct RunBuilder {
    /// Every run, in the order of the kernel's bucket lists.
    runs: BTreeMap<Place, Run>,
    /// The places of the runs ending just before each (old, new) pair, in
    /// list order: the runs a record with that pair extends.
    ends: HashMap<(u64, u64), Vec<Place>>,
    next_seq: u64,
}

impl RunBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record: it extends the first run of its bucket that it
    /// continues, else prepends to the first run after it when it comes just
    /// before that one, else starts a run.
    pub fn insert(&mut self, record: &ExceptionRecord) {
        let (old, new) = (record.old_chunk, record.new_chunk);
        let bucket_start = (old >> RUN_BUCKET_SHIFT) << RUN_BUCKET_SHIFT;
        if let Some(place) = self.take_end((old, new), bucket_start) {
            if let Some(run) = self.runs.get_mut(&place) {
                run.count += 1;
                let run = *run;
                self.index_end(&run, place);
                return;
            }
        }
        if let (Some(next_old), Some(next_new)) = (old.checked_add(1), new.checked_add(1)) {
            let same_bucket = next_old >> RUN_BUCKET_SHIFT == old >> RUN_BUCKET_SHIFT;
            let after = same_bucket
                .then(|| self.runs.range((next_old, 0)..).next())
                .flatten();
            if let Some((&place, &run)) = after {
                if run.old_chunk == next_old && run.new_chunk == next_new {
                    self.runs.remove(&place);
                    self.unindex_end(&run, place);
                    let run = Run {
                        old_chunk: old,
                        new_chunk: new,
                        count: run.count + 1,
                    };
                    self.place(run);
                    return;
                }
            }
        }
        self.place(Run {
            old_chunk: old,
            new_chunk: new,
            count: 1,
        });
    }

    /// The runs, sorted by origin chunk.
    pub fn finish(self) -> Vec<Run> {
        self.runs.into_values().collect()
    }

    /// Puts `run` after every run that starts at or before its origin chunk.
    fn place(&mut self, run: Run) {
        let place = (run.old_chunk, self.next_seq);
        self.next_seq += 1;
        self.runs.insert(place, run);
        self.index_end(&run, place);
    }

    /// Removes and returns the first run of the bucket starting at
    /// `bucket_start` that ends just before `pair`.
    fn take_end(&mut self, pair: (u64, u64), bucket_start: u64) -> Option<Place> {
        let places = self.ends.get_mut(&pair)?;
        let first = places.partition_point(|place| place.0 < bucket_start);
        if first == places.len() {
            return None;
        }
        let place = places.remove(first);
        if places.is_empty() {
            self.ends.remove(&pair);
        }
        Some(place)
    }

    fn index_end(&mut self, run: &Run, place: Place) {
        if let Some(end) = run.end() {
            let places = self.ends.entry(end).or_default();
            let at = places.partition_point(|p| *p < place);
            places.insert(at, place);
        }
    }

    fn unindex_end(&mut self, run: &Run, place: Place) {
        let Some(end) = run.end() else { return };
        if let Some(places) = self.ends.get_mut(&end) {
            if let Ok(at) = places.binary_search(&place) {
                places.remove(at);
            }
            if places.is_empty() {
                self.ends.remove(&end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(records: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
        let mut builder = RunBuilder::new();
        for &(old_chunk, new_chunk) in records {
            builder.insert(&ExceptionRecord {
                old_chunk,
                new_chunk,
            });
        }
        builder
            .finish()
            .into_iter()
            .map(|r| (r.old_chunk, r.new_chunk, r.count))
            .collect()
    }

    #[test]
    fn appends_and_prepends() {
        assert_eq!(runs(&[(10, 2), (11, 3), (12, 4)]), vec![(10, 2, 3)]);
        assert_eq!(runs(&[(12, 4), (11, 3), (10, 2)]), vec![(10, 2, 3)]);
        assert_eq!(runs(&[(10, 2), (12, 3)]), vec![(10, 2, 1), (12, 3, 1)]);
    }

    #[test]
    fn runs_never_cross_a_bucket_boundary() {
        assert_eq!(runs(&[(255, 2), (256, 3)]), vec![(255, 2, 1), (256, 3, 1)]);
    }

    #[test]
    fn a_gap_filled_later_does_not_join_two_runs() {
        // (10,2) and (12,4) are separate; (11,3) extends the first one only.
        assert_eq!(
            runs(&[(10, 2), (12, 4), (11, 3)]),
            vec![(10, 2, 2), (12, 4, 1)]
        );
    }

    /// The kernel's lists as they are: one sorted list per bucket, scanned
    /// from the start for each record.
    fn reference(records: &[(u64, u64)]) -> Vec<(u64, u64, u64)> {
        let mut buckets: BTreeMap<u64, Vec<Run>> = BTreeMap::new();
        for &(old, new) in records {
            let list = buckets.entry(old >> RUN_BUCKET_SHIFT).or_default();
            let mut position = list.len();
            let mut merged = false;
            for (i, run) in list.iter_mut().enumerate() {
                if run.old_chunk.checked_add(run.count) == Some(old)
                    && run.new_chunk.checked_add(run.count) == Some(new)
                {
                    run.count += 1;
                    merged = true;
                    break;
                }
                if old.checked_add(1) == Some(run.old_chunk)
                    && new.checked_add(1) == Some(run.new_chunk)
                {
                    run.old_chunk = old;
                    run.new_chunk = new;
                    run.count += 1;
                    merged = true;
                    break;
                }
                if old < run.old_chunk {
                    position = i;
                    break;
                }
            }
            if !merged {
                let run = Run {
                    old_chunk: old,
                    new_chunk: new,
                    count: 1,
                };
                list.insert(position, run);
            }
        }
        buckets
            .into_values()
            .flatten()
            .map(|r| (r.old_chunk, r.new_chunk, r.count))
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn runs_match_the_kernels_lists(
            records in proptest::collection::vec((250u64..270, 0u64..24), 0..200)
        ) {
            proptest::prop_assert_eq!(runs(&records), reference(&records));
        }

        #[test]
        fn runs_match_at_the_top_of_the_range(
            records in proptest::collection::vec((u64::MAX - 4..=u64::MAX, u64::MAX - 4..=u64::MAX), 0..40)
        ) {
            proptest::prop_assert_eq!(runs(&records), reference(&records));
        }
    }

    #[test]
    fn many_records_of_one_origin_chunk_are_linear() {
        // 262,144 records of one old chunk took 32 s when every record scanned
        // the whole bucket; the index makes each a lookup.
        let n = 1u64 << 18;
        let records: Vec<(u64, u64)> = (0..n).map(|i| (7, 100 + 2 * i)).collect();
        let built = runs(&records);
        assert_eq!(built.len(), n as usize);
        assert!(built.iter().all(|&(old, _, count)| old == 7 && count == 1));
        let firsts: Vec<u64> = built.iter().take(3).map(|r| r.1).collect();
        assert_eq!(firsts, vec![100, 102, 104]);
        let small: Vec<(u64, u64)> = records[..300].to_vec();
        assert_eq!(runs(&small), reference(&small));
    }

    #[test]
    fn new_chunks_must_be_consecutive_too() {
        assert_eq!(runs(&[(10, 2), (11, 5)]), vec![(10, 2, 1), (11, 5, 1)]);
    }
}
