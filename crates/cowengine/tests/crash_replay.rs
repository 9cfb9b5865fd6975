//! The crash replay proof of the journaled engine (issue 9 step 6,
//! docs/crash-replay.md): seeded workloads on recording crash devices, and at
//! every crash point of their logs the images with none, all and a sample of
//! the unsynced writes lost must open, check clean and read as a state a commit
//! may have left. Two more tests show the sweep fails where it must: on the
//! in-place commit of a store without a journal, and on the journaled commit
//! through a device that drops syncs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cowengine::crash_proof::{
    record, record_with, scenario, sweep, Failure, Scenario, SweepOptions,
};
use cowfmt::error::Result;
use cowfmt::{BlockDev, CrashDev};

fn named(name: &str) -> Scenario {
    scenario(name).unwrap_or_else(|| panic!("no scenario {name}"))
}

/// The message names everything a replay needs.
fn assert_replayable(failure: &Failure, seed: u64) {
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
    let outcome = sweep(
        &record(&scenario, 1).unwrap_or_else(|e| panic!("{e}")),
        &SweepOptions::default(),
    );
    assert!(
        outcome.failed > 0,
        "{} crash images of an in-place commit all passed",
        outcome.images
    );
    assert_replayable(&outcome.failures[0], 1);
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
    assert!(
        outcome.failed > 0,
        "{} crash images with dropped syncs all passed",
        outcome.images
    );
    assert_replayable(&outcome.failures[0], 2);
}
