//! Runs a scenario's workload on the engine over recording crash devices (the
//! COW device and the origin in one [`CrashLog`]) and keeps the model beside
//! it: every commit stretch, every origin and snapshot write at its place in
//! the log.

use std::sync::Arc;

use cowfmt::blockdev::BlockDev;
use cowfmt::crashdev::{CrashDev, CrashEvent, CrashLog};
use cowfmt::memdev::MemDev;

use super::images::FrozenLog;
use super::model::{Candidate, CommitSpan, Model};
use super::pattern::{self, Rng, SECTOR};
use super::workload::{next_op, Op, Scenario};
use crate::engine::Engine;
use crate::journal::CommitMode;
use crate::store::CreateOptions;

/// The COW device's number in the log.
pub const COW: usize = 0;
/// The origin's number in the log.
pub const ORIGIN: usize = 1;

/// A recorded run: the log, the model, and the operations at their place.
#[derive(Debug)]
pub struct Recording {
    /// The scenario run.
    pub scenario: Scenario,
    /// The workload's seed.
    pub seed: u64,
    /// Every write and sync of both devices.
    pub log: CrashLog,
    /// The same, read out for the sweep threads.
    pub frozen: FrozenLog,
    /// The model, with its commit stretches and write history.
    pub model: Model,
    /// Each recorded operation and the log position it began at.
    pub ops: Vec<(usize, Op)>,
    /// The deepest tree the run reached (node levels above the leaves).
    pub tree_level: u32,
    /// How the engine committed.
    pub commit_mode: CommitMode,
}

impl Recording {
    /// The operation running at log position `at` (its events straddle it).
    pub fn op_at(&self, at: usize) -> Option<Op> {
        let i = self.ops.partition_point(|&(began, _)| began < at);
        i.checked_sub(1).map(|i| self.ops[i].1)
    }
}

/// The options the scenario formats with.
pub fn options(scenario: &Scenario) -> CreateOptions {
    CreateOptions {
        chunk_sectors: scenario.chunk_sectors(),
        journal_chunks: scenario.journal_chunks,
    }
}

/// The origin's initial contents: every sector filled with its initial tag.
pub fn initial_origin(scenario: &Scenario) -> Vec<u8> {
    let mut bytes = vec![0u8; (scenario.origin_chunks * scenario.chunk_bytes) as usize];
    for (s, sector) in bytes.chunks_exact_mut(SECTOR).enumerate() {
        pattern::fill(pattern::tag(0, s as u64), sector);
    }
    bytes
}

/// Formats the store in memory, builds the prefill tree unrecorded, then runs
/// the scenario's operations on crash devices starting from those bytes.
pub fn record(scenario: &Scenario, seed: u64) -> Result<Recording, String> {
    record_with(scenario, seed, |device| device)
}

/// [`record`] with each crash device wrapped by `wrap` before the engine gets
/// it: a test shows with a faulty wrapper (one that drops a sync) that the
/// sweep catches a broken commit order, without a hook in the engine.
pub fn record_with<D: BlockDev>(
    scenario: &Scenario,
    seed: u64,
    wrap: impl Fn(CrashDev) -> D,
) -> Result<Recording, String> {
    run_recorded(scenario, seed, wrap)
        .map_err(|e| format!("scenario {}, seed {seed}: {e}", scenario.name))
}

fn run_recorded<D: BlockDev>(
    scenario: &Scenario,
    seed: u64,
    wrap: impl Fn(CrashDev) -> D,
) -> Result<Recording, String> {
    let mut model = Model::new(scenario.origin_sectors());
    let (cow, origin) = prepare(scenario, seed, &mut model)?;
    model.settle();
    let log = CrashLog::new();
    let engine = Engine::open(
        wrap(log.device("crash:cow", cow)),
        wrap(log.device("crash:origin", origin)),
    )
    .map_err(|e| format!("opening the prepared store on crash devices: {e}"))?;
    let mut rng = Rng::new(seed, 1);
    let mut ops = Vec::with_capacity(scenario.ops);
    let mut tree_level = engine.header().tree_level;
    let commit_mode = engine.commit_mode();
    for step in 0..scenario.ops {
        let op = next_op(&mut rng, scenario, &model, step);
        ops.push((log.len(), op));
        apply(&engine, scenario, &mut model, op, Some(&log))
            .map_err(|e| format!("recorded operation {step} ({op}): {e}"))?;
        tree_level = tree_level.max(engine.header().tree_level);
    }
    ops.push((log.len(), Op::Commit));
    apply(&engine, scenario, &mut model, Op::Commit, Some(&log))
        .map_err(|e| format!("the final commit: {e}"))?;
    let began = log.len();
    drop(engine);
    model.commits.push(CommitSpan {
        began,
        done: log.len(),
        what: "close".to_string(),
        states: vec![model.candidate(log.len())],
        after: vec![model.candidate(log.len())],
    });
    Ok(Recording {
        scenario: scenario.clone(),
        seed,
        frozen: FrozenLog::new(&log),
        log,
        model,
        ops,
        tree_level,
        commit_mode,
    })
}

/// The store's bytes (COW, origin) the recorded run starts from: formatted,
/// and for a deep scenario filled until its tree has the levels asked for.
fn prepare(
    scenario: &Scenario,
    seed: u64,
    model: &mut Model,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let cow = Arc::new(MemDev::new(
        "prepare:cow",
        scenario.cow_chunks * scenario.chunk_bytes,
    ));
    let origin = Arc::new(MemDev::from_bytes(
        "prepare:origin",
        initial_origin(scenario),
    ));
    let engine = Engine::create(Arc::clone(&cow), Arc::clone(&origin), &options(scenario))
        .map_err(|e| format!("formatting the store: {e}"))?;
    let mut rng = Rng::new(seed, 2);
    let run = scenario.chunk_sectors() * 64;
    while engine.header().tree_level < scenario.prefill_levels {
        if model.now.snapshots.len() >= scenario.max_snapshots {
            return Err(format!(
                "the prefill reached {} snapshots with a tree of {} levels, short of {}",
                model.now.snapshots.len(),
                engine.header().tree_level,
                scenario.prefill_levels
            ));
        }
        apply(&engine, scenario, model, Op::Create, None).map_err(|e| format!("prefill: {e}"))?;
        let mut first = rng.below(run);
        while first < scenario.origin_sectors() {
            let sectors = run.min(scenario.origin_sectors() - first);
            apply(
                &engine,
                scenario,
                model,
                Op::OriginWrite { first, sectors },
                None,
            )
            .map_err(|e| format!("prefill: {e}"))?;
            first += sectors;
        }
    }
    engine
        .commit()
        .map_err(|e| format!("prefill commit: {e}"))?;
    drop(engine);
    Ok((cow.to_bytes(), origin.to_bytes()))
}

/// Applies `op` to the engine and the model; with a log, records where it
/// ran and, when it committed, the states it may leave.
pub fn apply<D: BlockDev>(
    engine: &Engine<D>,
    scenario: &Scenario,
    model: &mut Model,
    op: Op,
    log: Option<&CrashLog>,
) -> cowfmt::error::Result<()> {
    let began = log.map_or(0, CrashLog::len);
    let before = model.candidate(began);
    match op {
        Op::OriginWrite { first, sectors } => {
            let write = model.take_write();
            let data = tagged(write, first, sectors);
            engine.origin_write(first * SECTOR as u64, &data)?;
            let index = log.map_or(0, |log| log.len() - 1);
            if let Some(log) = log {
                let landed = log.event(index);
                if !matches!(landed, Some(CrashEvent::Write { device: ORIGIN, .. })) {
                    return Err(cowfmt::error::Error::Invalid(format!(
                        "the origin write's last event is {landed:?}, not the origin data"
                    )));
                }
            }
            model.origin_write(first, sectors, write, index);
        }
        Op::SnapshotWrite { id, chunk, chunks } => {
            let write = model.take_write();
            let per_chunk = scenario.chunk_sectors();
            let (first, sectors) = (chunk * per_chunk, chunks * per_chunk);
            let data = tagged(write, first, sectors);
            engine.snapshot_write(id, first * SECTOR as u64, &data)?;
            model.snapshot_write(id, first, sectors, write, began);
        }
        Op::Create => {
            let id = engine.create_snapshot(None)?;
            model.create(id);
        }
        Op::CreateOf { parent } => {
            let id = engine.create_snapshot_of(parent)?;
            model.create_of(parent, id);
        }
        Op::Delete { id } => {
            engine.delete_snapshot(id)?;
            model.delete(id);
        }
        Op::Commit => engine.commit()?,
    }
    if let Some(log) = log {
        let done = log.len();
        let synced = (began..done).any(|i| log.event(i) == Some(CrashEvent::Sync { device: COW }));
        if op == Op::Commit || synced {
            let after = model.candidate(done);
            let mut before = before;
            if let Op::Delete { id } = op {
                before.unchecked = Some(id);
            }
            let durable_on_return =
                matches!(op, Op::Commit | Op::OriginWrite { .. } | Op::Delete { .. });
            let settled = if durable_on_return {
                vec![after.clone()]
            } else {
                vec![
                    Candidate {
                        unchecked: None,
                        ..before.clone()
                    },
                    Candidate {
                        as_of: began,
                        ..after.clone()
                    },
                ]
            };
            let mut states = vec![before];
            if after.state != states[0].state {
                states.push(after);
            }
            model.commits.push(CommitSpan {
                began,
                done,
                what: op.to_string(),
                states,
                after: settled,
            });
        }
    }
    Ok(())
}

/// The bytes of sectors `first..first + sectors` as write `write` fills them.
fn tagged(write: u64, first: u64, sectors: u64) -> Vec<u8> {
    let mut data = vec![0u8; sectors as usize * SECTOR];
    for (i, sector) in data.chunks_exact_mut(SECTOR).enumerate() {
        pattern::fill(pattern::tag(write, first + i as u64), sector);
    }
    data
}
