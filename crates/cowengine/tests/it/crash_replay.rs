//! The crash replay proof of the journaled engine (issue 9 step 6,
//! docs/crash-replay.md): seeded workloads on recording crash devices, and at
//! every crash point of their logs the images with none, all and a sample of
//! the unsynced writes lost must open, check clean and read as a state a commit
//! may have left (and on a sample of them the journal replay is cut at every
//! point and finished again). Two more tests show the sweep fails where it must: on the
//! in-place commit of a store without a journal, and on the journaled commit
//! through a device that drops syncs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cowengine::crash_proof::{
    record, record_with, report, scenario, sweep, Failure, Outcome, Scenario, SweepOptions,
};
use cowfmt::error::Result;
use cowfmt::{BlockDev, CrashDev};

/// What `cargo test` sweeps: (scenario, seeds), every crash point of each.
const RUNS: &[(&str, u64)] = &[("4k", 5), ("512", 4), ("deep", 1)];

/// Every this many crash images (per thread), the journal replay is also cut
/// at every point and finished again.
const REPLAY_CRASH_EVERY: u64 = 200;

fn named(name: &str) -> Scenario {
    scenario(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

#[test]
fn at_least_20000_crash_images_each_read_as_a_commit() {
    let (mut images, mut cut_replays, mut checkpoints, mut split_deletes) = (0, 0, 0, 0);
    for &(name, seeds) in RUNS {
        let scenario = named(name);
        for seed in 1..=seeds {
            let rec = record(&scenario, seed).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                rec.commit_mode.journaled(),
                "scenario {name} commits {}",
                rec.commit_mode
            );
            assert!(
                rec.tree_level >= scenario.prefill_levels,
                "scenario {name}: the tree reached {} levels",
                rec.tree_level
            );
            let options = SweepOptions {
                replay_crash_every: REPLAY_CRASH_EVERY,
                ..SweepOptions::default()
            };
            let run = report(&rec, sweep(&rec, &options));
            if let Some(failure) = run.outcome.failures.first() {
                panic!(
                    "{failure}\n({} of {} crash images of this seed failed)",
                    run.outcome.failed, run.outcome.images
                );
            }
            images += run.outcome.images;
            cut_replays += run.outcome.replay_images;
            checkpoints += run.checkpoints;
            if name == "deep" {
                split_deletes += run.split_deletes;
            }
        }
    }
    assert!(images >= 20_000, "only {images} crash images were checked");
    assert!(cut_replays > 0, "no journal replay was cut");
    assert!(checkpoints > 0, "no checkpoint was written");
    assert!(split_deletes > 0, "no delete of the deep tree was split");
}

/// Some crash image of seed `seed` failed (`what` broke the commit), and the
/// first failure's message names everything a replay needs.
fn assert_caught(outcome: &Outcome, seed: u64, what: &str) {
    assert!(
        outcome.failed > 0,
        "{} crash images {what} all passed",
        outcome.images
    );
    let failure: &Failure = &outcome.failures[0];
    let message = failure.to_string();
    for part in [
        format!("seed {seed}"),
        format!("crash after event {}", failure.at),
        "lost COW writes".to_string(),
        "lost origin writes".to_string(),
        format!("--seed {seed} --at {}", failure.at),
    ] {
        assert!(message.contains(&part), "{part:?} missing from: {message}");
    }
}

#[test]
fn the_in_place_commit_of_a_store_without_a_journal_is_caught() {
    let scenario = Scenario {
        journal_chunks: 0,
        ..named("512")
    };
    let rec = record(&scenario, 1).unwrap_or_else(|e| panic!("{e}"));
    assert!(!rec.commit_mode.journaled(), "{}", rec.commit_mode);
    let outcome = sweep(&rec, &SweepOptions::default());
    assert_caught(&outcome, 1, "of an in-place commit");
}

/// A crash device that drops every second sync of the COW device (device 0):
/// the barriers of the commit order go missing, the engine none the wiser.
#[derive(Debug)]
struct DropsSyncs {
    device: CrashDev,
    syncs: AtomicU64,
}

impl BlockDev for DropsSyncs {
    fn path(&self) -> &Path {
        self.device.path()
    }

    fn size(&self) -> u64 {
        self.device.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        self.device.read_at(buf, offset, what)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.device.write_at(buf, offset)
    }

    fn sync(&self) -> Result<()> {
        let n = self.syncs.fetch_add(1, Ordering::Relaxed);
        if self.device.id() == 0 && n.is_multiple_of(2) {
            return Ok(());
        }
        self.device.sync()
    }
}

#[test]
fn a_commit_whose_device_drops_syncs_is_caught() {
    let scenario = named("4k");
    let rec = record_with(&scenario, 2, |device| DropsSyncs {
        device,
        syncs: AtomicU64::new(0),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let outcome = sweep(&rec, &SweepOptions::default());
    assert_caught(&outcome, 2, "with dropped syncs");
}
