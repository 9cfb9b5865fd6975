//! Consecutive runs, as the kernel keeps exceptions in memory (seed 004).
//!
//! On disk every chunk has its own record. In memory the kernel merges a record
//! into an existing entry when both its old and new chunk are exactly one past
//! the end, or one before the start, of that entry. Entries live in hash buckets
//! of 256 origin chunks (`old_chunk >> 8`), each list sorted by old chunk, and a
//! record merges with the first entry of its bucket that fits; so a run never
//! crosses a 256-aligned origin boundary and two runs never join.

use std::collections::BTreeMap;

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

/// Builds runs from records in on-disk order, merging as the kernel does.
#[derive(Debug, Default)]
pub struct RunBuilder {
    buckets: BTreeMap<u64, Vec<Run>>,
}

impl RunBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record.
    pub fn insert(&mut self, record: &ExceptionRecord) {
        let (old, new) = (record.old_chunk, record.new_chunk);
        let list = self.buckets.entry(old >> RUN_BUCKET_SHIFT).or_default();
        let mut position = list.len();
        for (i, run) in list.iter_mut().enumerate() {
            if run.old_chunk.checked_add(run.count) == Some(old)
                && run.new_chunk.checked_add(run.count) == Some(new)
            {
                run.count += 1;
                return;
            }
            if old.checked_add(1) == Some(run.old_chunk)
                && new.checked_add(1) == Some(run.new_chunk)
            {
                run.old_chunk = old;
                run.new_chunk = new;
                run.count += 1;
                return;
            }
            if old < run.old_chunk {
                position = i;
                break;
            }
        }
        list.insert(
            position,
            Run {
                old_chunk: old,
                new_chunk: new,
                count: 1,
            },
        );
    }

    /// The runs, sorted by origin chunk.
    pub fn finish(self) -> Vec<Run> {
        self.buckets.into_values().flatten().collect()
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

    #[test]
    fn new_chunks_must_be_consecutive_too() {
        assert_eq!(runs(&[(10, 2), (11, 5)]), vec![(10, 2, 1), (11, 5, 1)]);
    }
}
