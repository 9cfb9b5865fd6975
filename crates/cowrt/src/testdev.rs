//! Test devices: a [`MemDev`] that counts its syncs, and engines over them;
//! journaled stores on recording crash devices, and every power cut they
//! allow, for the durability tests.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cowengine::{CreateOptions, Engine};
use cowfmt::blockdev::BlockDev;
use cowfmt::crashdev::{CrashDev, CrashLog};
use cowfmt::error::Result;
use cowfmt::MemDev;

/// Bytes per chunk of the test stores.
pub const CHUNK: u64 = 4096;
/// Origin size of the test stores.
pub const ORIGIN_BYTES: u64 = 64 * CHUNK;
const COW_BYTES: u64 = 256 * CHUNK;

/// A memory device that counts the syncs it was asked for.
#[derive(Debug)]
pub struct Counted {
    dev: MemDev,
    syncs: AtomicU64,
}

impl Counted {
    fn new(dev: MemDev) -> Self {
        Counted {
            dev,
            syncs: AtomicU64::new(0),
        }
    }

    /// Syncs so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }
}

impl BlockDev for Counted {
    fn path(&self) -> &Path {
        self.dev.path()
    }
    fn size(&self) -> u64 {
        self.dev.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        self.dev.read_at(buf, offset, what)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.dev.write_at(buf, offset)
    }
    fn sync(&self) -> Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.dev.sync()
    }
}

/// The origin's initial bytes: every byte of chunk c is `c + 1`.
pub fn origin_pattern() -> Vec<u8> {
    (0..ORIGIN_BYTES).map(|i| (i / CHUNK + 1) as u8).collect()
}

/// A fresh store on counting devices, the origin filled with
/// [`origin_pattern`], with `snapshots` snapshots (ids 0..).
pub fn engine(snapshots: u32) -> Arc<Engine<Counted>> {
    let cow = Counted::new(MemDev::new("cow.img", COW_BYTES));
    let origin = Counted::new(MemDev::from_bytes("origin.img", origin_pattern()));
    let options = CreateOptions {
        chunk_sectors: CHUNK / 512,
        journal_chunks: 4,
    };
    let engine = Engine::create(cow, origin, &options).unwrap();
    for _ in 0..snapshots {
        engine.create_snapshot(None).unwrap();
    }
    engine.commit().unwrap();
    Arc::new(engine)
}

/// The COW device of the crash stores: room for the journal and the data.
const CRASH_COW_BYTES: u64 = 512 * CHUNK;
/// Journal chunks of the crash stores: at least the 69 a journaled store
/// needs, so that their commits go through the journal.
const CRASH_JOURNAL_CHUNKS: u64 = 80;

/// A fresh journaled store on recording crash devices (the COW device is
/// device 0 of the log, the origin device 1), the origin filled with
/// [`origin_pattern`], with `snapshots` snapshots (ids 0..), committed.
pub fn crash_engine(snapshots: u32) -> (CrashLog, Arc<Engine<CrashDev>>) {
    let log = CrashLog::new();
    let cow = log.device("cow.img", vec![0; CRASH_COW_BYTES as usize]);
    let origin = log.device("origin.img", origin_pattern());
    let options = CreateOptions {
        chunk_sectors: CHUNK / 512,
        journal_chunks: CRASH_JOURNAL_CHUNKS,
    };
    let engine = Engine::create(cow, origin, &options).unwrap();
    assert!(engine.commit_mode().journaled(), "{}", engine.commit_mode());
    for _ in 0..snapshots {
        engine.create_snapshot(None).unwrap();
    }
    engine.commit().unwrap();
    (log, Arc::new(engine))
}

/// The store after each power cut the log allows now (nothing lost, each
/// unsynced write lost alone, every unsynced write of a device lost), opened
/// again: the journal is replayed.
pub fn after_power_cuts(log: &CrashLog) -> Vec<Engine<MemDev>> {
    let at = log.len();
    log.loss_cases(&[0, 1], at)
        .into_iter()
        .map(|lost| {
            let cow = log.image(0, at, &lost[0]).unwrap();
            let origin = log.image(1, at, &lost[1]).unwrap();
            Engine::open(
                MemDev::from_bytes("cow.img", cow),
                MemDev::from_bytes("origin.img", origin),
            )
            .unwrap_or_else(|e| panic!("a power cut losing {lost:?} leaves {e}"))
        })
        .collect()
}
