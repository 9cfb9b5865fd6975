//! The crash replay proof of the engine (issue 9 step 6), shared by
//! `cargo test` (crates/cowengine/tests/crash_replay.rs) and
//! `cargo xtask crash-soak`. Nothing in the engine calls it.
//!
//! A seeded workload ([`workload`]) drives the [`Engine`](crate::Engine) on
//! recording crash devices, COW and origin in one log ([`record`]), while a
//! model ([`model`]) keeps what the origin and every snapshot read and which
//! states each commit may leave. Every prefix of the log is then a crash point,
//! and at each the image with none, all and a sample of the unsynced writes
//! lost ([`crash`]) is opened, checked by cowfmt's shared checker and read back
//! against the model ([`verify`]). Sector contents name the write that made
//! them ([`pattern`]), so a view compares as one tag per sector.

pub mod crash;
pub mod images;
pub mod model;
pub mod pattern;
pub mod record;
pub mod verify;
pub mod workload;

pub use crash::{sweep, Failure, Outcome, SweepOptions};
pub use record::{record, record_with, Recording};
pub use workload::{scenario, scenarios, Op, Scenario};

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
    RunReport {
        scenario: rec.scenario.name,
        seed: rec.seed,
        events: rec.log.len(),
        commits: rec.model.commits.len(),
        tree_level: rec.tree_level,
        outcome,
    }
}
