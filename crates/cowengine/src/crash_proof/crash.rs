//! Crash enumeration: every prefix of the log is a crash point; at each, the
//! image with no write lost, with every unsynced write lost, and a seeded
//! sample of subsets of the unsynced writes of each device lost. Images are
//! stepped along the log ([`super::images`]),
//! the points shared out among threads.

use std::fmt;
use std::ops::Range;

use cowfmt::crashdev::CrashEvent;

use super::pattern::Rng;
use super::record::{Recording, COW};
use super::verify::{verify, Point, Workbench};

/// One crash image that failed, with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The workload's seed.
    pub seed: u64,
    /// Events kept before the power cut.
    pub at: usize,
    /// Events in the whole log.
    pub events: usize,
    /// The last event kept, and the operation it belongs to.
    pub context: String,
    /// Unsynced COW writes lost (log indexes).
    pub lost_cow: Vec<usize>,
    /// Unsynced origin writes lost (log indexes).
    pub lost_origin: Vec<usize>,
    /// The first thing wrong.
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash replay: scenario {}, seed {}, crash after event {} of {} ({}), lost COW \
             writes {:?}, lost origin writes {:?}: {} (replay: cargo xtask crash-soak \
             --scenario {} --seed {} --at {})",
            self.scenario,
            self.seed,
            self.at,
            self.events,
            self.context,
            self.lost_cow,
            self.lost_origin,
            self.what,
            self.scenario,
            self.seed,
            self.at
        )
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Crash images built and checked.
    pub images: u64,
    /// Crash points visited.
    pub points: u64,
    /// Images that failed.
    pub failed: u64,
    /// Images of cut journal replays checked.
    pub replay_images: u64,
    /// The first failures, in log order (at most the number asked for).
    pub failures: Vec<Failure>,
}

impl Outcome {
    fn add(&mut self, other: Outcome, keep: usize) {
        self.images += other.images;
        self.points += other.points;
        self.failed += other.failed;
        self.replay_images += other.replay_images;
        self.failures.extend(other.failures);
        self.failures.sort_by_key(|f| f.at);
        self.failures.truncate(keep);
    }
}

/// Which crash points a sweep checks, on how many threads, and how many
/// failures it keeps.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The crash points (events kept) to visit; `None`: every prefix of the log.
    pub points: Option<Range<usize>>,
    /// Check every `stride`-th point only (1: every point).
    pub stride: usize,
    /// Threads.
    pub threads: usize,
    /// Failures kept (the first in log order).
    pub keep: usize,
    /// Cut the journal replay of every `n`-th crash image of each thread
    /// at every point ([`super::replay_crash`]); 0: never.
    pub replay_crash_every: u64,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            points: None,
            stride: 1,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep: 1,
            replay_crash_every: 0,
        }
    }
}

/// Checks the crash points `options` names.
pub fn sweep(rec: &Recording, options: &SweepOptions) -> Outcome {
    let (threads, keep) = (options.threads, options.keep);
    let points = options.points.clone().unwrap_or(0..rec.log.len() + 1);
    let points = points.start..points.end.min(rec.log.len() + 1);
    let threads = threads.max(1).min(points.len().max(1));
    let per = points.len().div_ceil(threads);
    let mut total = Outcome::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let start = points.start + w * per;
                let part = start..(start + per).min(points.end);
                scope.spawn(move || sweep_part(rec, part, options, w))
            })
            .collect();
        for worker in workers {
            total.add(worker.join().expect("a crash sweep thread panicked"), keep);
        }
    });
    total
}

/// The subsets of unsynced writes lost at one point: none, all, and samples.
fn subsets(
    rec: &Recording,
    at: usize,
    cow: &[usize],
    origin: &[usize],
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut out = vec![(Vec::new(), Vec::new())];
    if cow.is_empty() && origin.is_empty() {
        return out;
    }
    out.push((cow.to_vec(), origin.to_vec()));
    let mut rng = Rng::new(rec.seed, 0x1000_0000 + at as u64);
    for _ in 0..rec.scenario.samples {
        let pick = |rng: &mut Rng, writes: &[usize]| -> Vec<usize> {
            writes.iter().copied().filter(|_| rng.chance(50)).collect()
        };
        let lost = (pick(&mut rng, cow), pick(&mut rng, origin));
        if !out.contains(&lost) {
            out.push(lost);
        }
    }
    out
}

fn sweep_part(
    rec: &Recording,
    points: Range<usize>,
    options: &SweepOptions,
    worker: usize,
) -> Outcome {
    let (stride, keep) = (options.stride.max(1), options.keep);
    let log = &rec.frozen;
    let mut bench = match Workbench::new(rec, points.start, worker) {
        Ok(bench) => bench,
        Err(e) => {
            return Outcome {
                failed: 1,
                failures: vec![failure(
                    rec,
                    points.start,
                    Vec::new(),
                    Vec::new(),
                    format!("cannot set up the crash images: {e}"),
                )],
                ..Outcome::default()
            }
        }
    };
    let mut outcome = Outcome::default();
    for at in points.clone() {
        if at > points.start {
            bench.cow.step(log, at - 1);
            bench.origin.step(log, at - 1);
        }
        if !at.is_multiple_of(stride) && at != rec.log.len() {
            continue;
        }
        outcome.points += 1;
        let point = Point {
            at,
            origin_synced: bench.origin.last_sync(),
        };
        let lost_sets = subsets(rec, at, bench.cow.pending(), bench.origin.pending());
        for (lost_cow, lost_origin) in lost_sets {
            outcome.images += 1;
            let loaded = bench
                .cow
                .load(log, &lost_cow)
                .and_then(|()| bench.origin.load(log, &lost_origin));
            let every = options.replay_crash_every;
            let cut_replay = every > 0 && outcome.images.is_multiple_of(every);
            let checked = loaded
                .map_err(|e| format!("cannot load the crash image: {e}"))
                .and_then(|()| match cut_replay {
                    true => {
                        outcome.replay_images += bench.check_replay_crashes(rec, at)?;
                        Ok(())
                    }
                    false => Ok(()),
                })
                .and_then(|()| verify(rec, point, &mut bench));
            if let Err(what) = checked {
                outcome.failed += 1;
                if outcome.failures.len() < keep {
                    outcome
                        .failures
                        .push(failure(rec, at, lost_cow, lost_origin, what));
                }
            }
        }
    }
    outcome
}

fn failure(
    rec: &Recording,
    at: usize,
    lost_cow: Vec<usize>,
    lost_origin: Vec<usize>,
    what: String,
) -> Failure {
    Failure {
        scenario: rec.scenario.name,
        seed: rec.seed,
        at,
        events: rec.log.len(),
        context: context(rec, at),
        lost_cow,
        lost_origin,
        what,
    }
}

/// The last event kept at `at` and the operation running then.
fn context(rec: &Recording, at: usize) -> String {
    let event = match at.checked_sub(1).and_then(|i| rec.frozen.event(i)) {
        None => "no event".to_string(),
        Some(CrashEvent::Write {
            device,
            offset,
            len,
        }) => format!(
            "last kept: {} write of {len} bytes at {offset}",
            if device == COW { "COW" } else { "origin" }
        ),
        Some(CrashEvent::Sync { device }) => format!(
            "last kept: {} sync",
            if device == COW { "COW" } else { "origin" }
        ),
    };
    let op = rec
        .model
        .in_flight(at)
        .map(|c| format!("; during {}", c.what))
        .or_else(|| rec.op_at(at).map(|op| format!("; after or during {op}")))
        .unwrap_or_default();
    format!("{event}{op}")
}
