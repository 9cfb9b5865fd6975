//! The crash replay proof of the engine (issue 9 step 6), shared by
//! `cargo test` (crates/cowengine/tests/it/crash_replay.rs) and
//! `cargo xtask crash-soak`. Nothing in the engine calls it.
//!
//! A seeded workload ([`workload`]) drives the [`Engine`](crate::Engine) on
//! recording crash devices, COW and origin in one log ([`record`]), while a
//! model ([`model`]) keeps what the origin and every snapshot read and which
//! states each commit may leave. Every prefix of the log is then a crash point,
//! and at each the image with none, all and a sample of the unsynced writes
//! lost (built by [`crash`] and [`images`]) is opened with the engine's store
//! (which replays the journal), checked by cowfmt's shared checker and read
//! back against the model ([`verify`]); on a sample of them the journal replay
//! is itself cut at every point and finished again ([`replay_crash`]). Sector
//! contents name the write that made them ([`pattern`]), so a view compares as
//! one tag per sector.

pub mod crash;
pub mod images;
pub mod model;
pub mod pattern;
pub mod record;
pub mod replay_crash;
pub mod verify;
pub mod workload;

pub use crash::{sweep, Failure, Outcome, SweepOptions};
pub use record::{record, record_with, Recording};
pub use workload::{scenario, scenarios, Op, Scenario};

use cowfmt::shared::journal::COMMIT_MAGIC;

/// The figures of one recorded run and its sweep.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The seed.
    pub seed: u64,
    /// Events in the log.
    pub events: usize,
    /// Commit stretches recorded (explicit and inside operations).
    pub commits: usize,
    /// Journal transactions written (commit records in the log).
    pub transactions: usize,
    /// Checkpoints (journal superblock writes).
    pub checkpoints: usize,
    /// Deletes that took more than one transaction.
    pub split_deletes: usize,
    /// The deepest tree reached.
    pub tree_level: u32,
    /// The sweep.
    pub outcome: Outcome,
}

/// Records `scenario` with `seed` and checks the crash points `options` names.
pub fn run(scenario: &Scenario, seed: u64, options: &SweepOptions) -> Result<RunReport, String> {
    let rec = record(scenario, seed)?;
    Ok(report(&rec, sweep(&rec, options)))
}

/// The figures of a recorded run and its sweep.
pub fn report(rec: &Recording, outcome: Outcome) -> RunReport {
    let journal = journal_events(rec);
    let commit_records: Vec<usize> = journal
        .iter()
        .filter(|(_, kind)| *kind == JournalWrite::CommitRecord)
        .map(|&(i, _)| i)
        .collect();
    let split_deletes = rec
        .ops
        .iter()
        .enumerate()
        .filter(|(_, (_, op))| matches!(op, Op::Delete { .. }))
        .filter(|&(k, &(began, _))| {
            let end = rec.ops.get(k + 1).map_or(rec.log.len(), |&(next, _)| next);
            commit_records
                .iter()
                .filter(|&&i| (began..end).contains(&i))
                .count()
                > 1
        })
        .count();
    RunReport {
        scenario: rec.scenario.name,
        seed: rec.seed,
        events: rec.log.len(),
        commits: rec.model.commits.len(),
        transactions: commit_records.len(),
        checkpoints: journal
            .iter()
            .filter(|(_, kind)| *kind == JournalWrite::Superblock)
            .count(),
        split_deletes,
        tree_level: rec.tree_level,
        outcome,
    }
}

/// A write into the journal the figures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JournalWrite {
    Superblock,
    CommitRecord,
}

/// The journal superblock and commit record writes of the log, by index.
fn journal_events(rec: &Recording) -> Vec<(usize, JournalWrite)> {
    let s = &rec.scenario;
    let geometry = cowfmt::shared::Geometry::new(
        s.cow_chunks * s.chunk_bytes,
        s.chunk_sectors() as u32,
        s.journal_chunks,
    );
    let start = geometry.journal_start() * s.chunk_bytes;
    let end = start + s.journal_chunks * s.chunk_bytes;
    (0..rec.log.len())
        .filter_map(|i| match rec.log.event(i) {
            Some(cowfmt::crashdev::CrashEvent::Write {
                device: record::COW,
                offset,
                ..
            }) if offset == start && s.journal_chunks > 0 => Some((i, JournalWrite::Superblock)),
            Some(cowfmt::crashdev::CrashEvent::Write {
                device: record::COW,
                offset,
                ..
            }) if (start..end).contains(&offset) => rec
                .log
                .written(i)
                .filter(|data| data.starts_with(&COMMIT_MAGIC))
                .map(|_| (i, JournalWrite::CommitRecord)),
            _ => None,
        })
        .collect()
}
