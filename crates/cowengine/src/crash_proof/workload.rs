//! The seeded workload: scenarios (chunk size, device sizes, journal size,
//! how deep a tree to start from) and the operations drawn for each step from
//! the model's current state.

use std::fmt;

use super::model::Model;
use super::pattern::{Rng, SECTOR};

/// One crash-replay configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Short name, for messages and `--scenario`.
    pub name: &'static str,
    /// Chunk size in bytes.
    pub chunk_bytes: u64,
    /// Origin size in chunks.
    pub origin_chunks: u64,
    /// COW device size in chunks.
    pub cow_chunks: u64,
    /// Journal chunks (superblock included).
    pub journal_chunks: u64,
    /// Recorded operations.
    pub ops: usize,
    /// Most live snapshots the workload keeps.
    pub max_snapshots: usize,
    /// Tree levels to build (unrecorded) before the recorded operations; 0:
    /// start from an empty store.
    pub prefill_levels: u32,
    /// Random subsets of the unsynced writes tried at each crash point, beyond
    /// "none lost" and "all lost".
    pub samples: usize,
}

impl Scenario {
    /// Sectors of the origin.
    pub fn origin_sectors(&self) -> u64 {
        self.origin_chunks * self.chunk_bytes / SECTOR as u64
    }

    /// Sectors per chunk.
    pub fn chunk_sectors(&self) -> u64 {
        self.chunk_bytes / SECTOR as u64
    }
}

/// The scenarios `cargo test` runs: 4 KiB and 512 B chunks, journals just
/// above the engine's smallest (`MIN_TRANSACTION_IMAGES`: 69 chunks) so that
/// checkpoints come often and deletes split, and a tree three node levels deep.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "4k",
            chunk_bytes: 4096,
            origin_chunks: 40,
            cow_chunks: 352,
            journal_chunks: 72,
            ops: 90,
            max_snapshots: 6,
            prefill_levels: 0,
            samples: 4,
        },
        Scenario {
            name: "512",
            chunk_bytes: 512,
            origin_chunks: 96,
            cow_chunks: 1024,
            journal_chunks: 72,
            ops: 110,
            max_snapshots: 8,
            prefill_levels: 0,
            samples: 3,
        },
        Scenario {
            name: "deep",
            chunk_bytes: 512,
            origin_chunks: 2048,
            cow_chunks: 14336,
            journal_chunks: 96,
            ops: 12,
            max_snapshots: 20,
            prefill_levels: 3,
            samples: 1,
        },
    ]
}

/// The scenario named `name`.
pub fn scenario(name: &str) -> Option<Scenario> {
    scenarios().into_iter().find(|s| s.name == name)
}

/// One operation of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Origin sectors `first..first + sectors` written.
    OriginWrite {
        /// First sector.
        first: u64,
        /// Sectors.
        sectors: u64,
    },
    /// Whole chunks `chunk..chunk + chunks` of snapshot `id` written.
    SnapshotWrite {
        /// The snapshot.
        id: u32,
        /// First chunk.
        chunk: u64,
        /// Chunks.
        chunks: u64,
    },
    /// A snapshot of the origin created.
    Create,
    /// A snapshot of snapshot `parent` created.
    CreateOf {
        /// The snapshot copied.
        parent: u32,
    },
    /// Snapshot `id` deleted.
    Delete {
        /// The snapshot.
        id: u32,
    },
    /// An explicit commit.
    Commit,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::OriginWrite { first, sectors } => {
                write!(f, "origin write of sectors {first}..{}", first + sectors)
            }
            Op::SnapshotWrite { id, chunk, chunks } => {
                write!(
                    f,
                    "write of snapshot {id} chunks {chunk}..{}",
                    chunk + chunks
                )
            }
            Op::Create => write!(f, "create"),
            Op::CreateOf { parent } => write!(f, "create of snapshot {parent}"),
            Op::Delete { id } => write!(f, "delete of snapshot {id}"),
            Op::Commit => write!(f, "commit"),
        }
    }
}

/// Draws operation `step` for the model's current state. A prefilled (deep)
/// tree starts from a script ([`deep_script`]), and its prefilled snapshots
/// are never copied or deleted (see [`deep_script`]).
pub fn next_op(rng: &mut Rng, scenario: &Scenario, model: &Model, step: usize) -> Op {
    if scenario.prefill_levels > 0 {
        if let Some(op) = deep_script(scenario, model, step) {
            return op;
        }
    }
    let live: Vec<u32> = model.now.snapshots.keys().copied().collect();
    let pick = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize];
    let room = live.len() < scenario.max_snapshots;
    let roll = rng.below(100);
    if live.is_empty() || (roll < 6 && room) {
        return Op::Create;
    }
    let young: Vec<u32> = live
        .iter()
        .copied()
        .filter(|id| !model.prefilled.contains(id))
        .collect();
    let pick_young = |rng: &mut Rng| young[rng.below(young.len() as u64) as usize];
    if roll < 10 && room && !young.is_empty() {
        return Op::CreateOf {
            parent: pick_young(rng),
        };
    }
    if roll < 15 && live.len() > 1 && !young.is_empty() {
        return Op::Delete {
            id: pick_young(rng),
        };
    }
    if roll < 24 {
        return Op::Commit;
    }
    let chunks = scenario.origin_chunks;
    if roll < 42 {
        let chunk = rng.below(chunks);
        let n = (1 + rng.below(3)).min(chunks - chunk);
        return Op::SnapshotWrite {
            id: pick(rng),
            chunk,
            chunks: n,
        };
    }
    origin_write(rng, scenario)
}

/// Chunks of the deep script's wide origin write.
const DEEP_WIDE_WRITE: u64 = 144;

/// The first operations on a deep tree: a new snapshot and a snapshot of it,
/// two origin writes of 48 chunks each (copied out for them, each commit
/// touching some 20 leaves of the deep tree) and a wide one of 256 chunks
/// (some 100 leaves, more than half the journal takes, so its copy-outs
/// commit in steps before the origin is written), then the new snapshot
/// deleted: more leaves than half the journal takes, so the delete is split.
/// (An old snapshot is not copied or deleted: it has records in every leaf,
/// and its delete would take thousands of events, its copy a transaction of
/// every leaf, which no journal bound allows: docs/crash-replay.md.)
pub fn deep_script(scenario: &Scenario, model: &Model, step: usize) -> Option<Op> {
    let third = scenario.origin_sectors() / 3;
    let run = if step == 4 { DEEP_WIDE_WRITE } else { 48 } * scenario.chunk_sectors();
    match step {
        0 => Some(Op::Create),
        1 => model.created.last().map(|&parent| Op::CreateOf { parent }),
        2..=4 => Some(Op::OriginWrite {
            first: (step as u64 - 2) * third,
            sectors: run.min(third),
        }),
        5 => model
            .created
            .iter()
            .rev()
            .nth(1)
            .map(|&id| Op::Delete { id }),
        _ => None,
    }
}

/// An origin write: most within one chunk (whole, or some of its sectors),
/// some over several chunks, starting and ending anywhere on a sector.
fn origin_write(rng: &mut Rng, scenario: &Scenario) -> Op {
    let per_chunk = scenario.chunk_sectors();
    let total = scenario.origin_sectors();
    let chunk = rng.below(scenario.origin_chunks);
    let (first, sectors) = if rng.chance(70) {
        let first = chunk * per_chunk + rng.below(per_chunk);
        let whole = rng.chance(50);
        let sectors = if whole {
            per_chunk
        } else {
            1 + rng.below(per_chunk)
        };
        (if whole { chunk * per_chunk } else { first }, sectors)
    } else {
        let first = chunk * per_chunk + rng.below(per_chunk);
        (first, per_chunk + 1 + rng.below(3 * per_chunk))
    };
    Op::OriginWrite {
        first,
        sectors: sectors.min(total - first),
    }
}
