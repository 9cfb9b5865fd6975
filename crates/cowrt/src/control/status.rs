//! The status of a shared store: seed 002's multisnapshot status line
//! ([`Status`]'s `Display`) and a JSON form with more detail (`Serialize`).
//!
//! Seed 002's line is `5 <error> <new id or -> <total> <allocated> <metadata>
//! <n> <ids...>`: 5 words before the id list, 0 or a negative errno, the id the
//! last `create` made, then sizes in 512-byte sectors (the seed's code shifts
//! its chunk counts by the chunk size) and the snapshot ids.

use std::fmt;

use serde::Serialize;

/// What the status reports; counts are in chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// 0, or the negative errno of the error that stopped the store.
    pub error: i32,
    /// The id the last `create` or `create_subsnap` made.
    pub new_snapshot: Option<u32>,
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
    /// Chunks on the COW device.
    pub total_chunks: u64,
    /// Chunks in use: metadata and data.
    pub allocated_chunks: u64,
    /// Chunks in use for metadata: header, bitmap, journal, tree.
    pub metadata_chunks: u64,
    /// Chunks free.
    pub free_chunks: u64,
    /// Each snapshot, by id.
    pub snapshots: Vec<SnapshotUsage>,
    /// The journal.
    pub journal: JournalState,
}

/// The COW chunks one snapshot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SnapshotUsage {
    /// The snapshot id.
    pub id: u32,
    /// Data chunks it reads from the COW (shared with others or not).
    pub chunks: u64,
    /// Data chunks only it reads: what deleting it frees.
    pub exclusive_chunks: u64,
}

/// How the store commits, and what its journal holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JournalState {
    /// Commits go through the write-ahead journal: crash-safe.
    Journaled {
        /// Chunks reserved for the journal.
        chunks: u64,
        /// The most log chunks one transaction may take.
        max_transaction_chunks: u64,
        /// Commits asked for since the daemon started (FLUSH, FUA, copy-outs,
        /// the periodic commit, control requests).
        commits_requested: u64,
        /// Transactions written since the daemon started (grouped commits).
        transactions_written: u64,
        /// Freed chunks that become reusable at the next checkpoint.
        pending_free_chunks: u64,
    },
    /// Commits write in place: a crash in the middle of one can damage the store.
    InPlace {
        /// Chunks reserved for the journal (0: none).
        chunks: u64,
        /// Why the journal is not used, in one sentence.
        reason: String,
    },
}

impl Status {
    fn sectors(&self, chunks: u64) -> u64 {
        chunks * u64::from(self.chunk_sectors)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "5 {} ", self.error)?;
        match self.new_snapshot {
            Some(id) => write!(f, "{id}")?,
            None => f.write_str("-")?,
        }
        write!(
            f,
            " {} {} {} {}",
            self.sectors(self.total_chunks),
            self.sectors(self.allocated_chunks),
            self.sectors(self.metadata_chunks),
            self.snapshots.len()
        )?;
        for snapshot in &self.snapshots {
            write!(f, " {}", snapshot.id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            error: 0,
            new_snapshot: Some(2),
            chunk_sectors: 8,
            total_chunks: 256,
            allocated_chunks: 20,
            metadata_chunks: 8,
            free_chunks: 236,
            snapshots: vec![
                SnapshotUsage {
                    id: 0,
                    chunks: 12,
                    exclusive_chunks: 4,
                },
                SnapshotUsage {
                    id: 2,
                    chunks: 8,
                    exclusive_chunks: 0,
                },
            ],
            journal: JournalState::Journaled {
                chunks: 40,
                max_transaction_chunks: 19,
                commits_requested: 7,
                transactions_written: 3,
                pending_free_chunks: 2,
            },
        }
    }

    #[test]
    fn the_line_is_seed_002s_in_sectors() {
        assert_eq!(status().to_string(), "5 0 2 2048 160 64 2 0 2");
        let empty = Status {
            error: -libc::ENOSPC,
            new_snapshot: None,
            snapshots: Vec::new(),
            ..status()
        };
        assert_eq!(empty.to_string(), "5 -28 - 2048 160 64 0");
    }

    #[test]
    fn json_names_every_count() {
        let json = serde_json::to_value(status()).unwrap();
        assert_eq!(json["free_chunks"], 236);
        assert_eq!(json["new_snapshot"], 2);
        assert_eq!(json["snapshots"][0]["exclusive_chunks"], 4);
        assert_eq!(json["journal"]["state"], "journaled");
        assert_eq!(json["journal"]["transactions_written"], 3);
        assert_eq!(json["journal"]["pending_free_chunks"], 2);
        let in_place = JournalState::InPlace {
            chunks: 0,
            reason: "the store has no journal".to_string(),
        };
        assert_eq!(
            serde_json::to_value(in_place).unwrap(),
            serde_json::json!({"state": "in_place", "chunks": 0, "reason": "the store has no journal"})
        );
    }
}
