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

/// The state of the store's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JournalState {
    /// The store has no journal area: commits write in place.
    None,
    /// A journal area is reserved, but the engine commits in place and never
    /// writes it (until the engine's journal lands).
    Unused {
        /// Chunks reserved.
        chunks: u64,
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
            journal: JournalState::Unused { chunks: 4 },
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
        assert_eq!(json["journal"]["state"], "unused");
        assert_eq!(json["journal"]["chunks"], 4);
        let none = serde_json::to_value(JournalState::None).unwrap();
        assert_eq!(none, serde_json::json!({"state": "none"}));
    }
}
