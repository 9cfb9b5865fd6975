//! Test devices: a [`MemDev`] that counts its syncs, and engines over them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cowengine::{CreateOptions, Engine};
use cowfmt::blockdev::BlockDev;
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

    /// The bytes as they are now (durable or not: a MemDev has no cache).
    pub fn bytes(&self) -> Vec<u8> {
        self.dev.to_bytes()
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

/// The store as a power cut right now would leave it, opened again: what is
/// on the COW and origin devices, without anything in the engine's memory.
pub fn reopened(engine: &Engine<Counted>) -> Engine<MemDev> {
    let cow = MemDev::from_bytes("cow.img", engine.cow_device().bytes());
    let origin = MemDev::from_bytes("origin.img", engine.origin_device().bytes());
    Engine::open(cow, origin).unwrap()
}
