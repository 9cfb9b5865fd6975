//! The origin and snapshot devices of a shared store, as [`BlockTarget`]s over
//! [`Engine`], with the FLUSH and FUA rules of runtime.md 4.4:
//!
//! | request | origin device | snapshot device |
//! |---|---|---|
//! | WRITE | copy-out and its commit are durable before the origin is written ([`Engine::origin_write`]) | written through the engine; its records ride the next commit |
//! | WRITE + FUA | as WRITE, then the origin is synced | as WRITE, then commit (syncing both) |
//! | FLUSH | commit, sync the origin and the COW | the same |
//!
//! The targets use only the engine's public operations, so they keep their
//! meaning when the engine's commit becomes a journal transaction.

use std::sync::Arc;

use cowengine::Engine;
use cowfmt::blockdev::BlockDev;
use cowfmt::error::{Error, Result};

use crate::target::BlockTarget;

/// The origin device of a shared store.
#[derive(Debug)]
pub struct OriginTarget<D: BlockDev> {
    engine: Arc<Engine<D>>,
}

impl<D: BlockDev> OriginTarget<D> {
    /// The origin of `engine`'s store.
    pub fn new(engine: Arc<Engine<D>>) -> Self {
        OriginTarget { engine }
    }
}

impl<D: BlockDev> BlockTarget for OriginTarget<D> {
    fn size(&self) -> u64 {
        self.engine.origin_device().size()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.engine.origin_read(offset, buf)
    }

    fn write(&self, offset: u64, data: &[u8], fua: bool) -> Result<()> {
        self.engine.origin_write(offset, data)?;
        if fua {
            self.engine.origin_device().sync()?;
        }
        Ok(())
    }

    /// [`Engine::commit`] syncs both devices after its commit.
    fn flush(&self) -> Result<()> {
        self.engine.commit()
    }
}

/// The device of one snapshot of a shared store.
#[derive(Debug)]
pub struct SnapshotTarget<D: BlockDev> {
    engine: Arc<Engine<D>>,
    id: u32,
}

impl<D: BlockDev> SnapshotTarget<D> {
    /// Snapshot `id` of `engine`'s store; refused when it does not exist.
    pub fn new(engine: Arc<Engine<D>>, id: u32) -> Result<Self> {
        let exists = id < 64 && engine.snapmask() & (1 << id) != 0;
        if !exists {
            return Err(Error::Invalid(format!(
                "{}: snapshot {id} does not exist",
                engine.cow_device().path().display()
            )));
        }
        Ok(SnapshotTarget { engine, id })
    }

    /// The snapshot's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Commits; [`Engine::commit`] then syncs the COW (snapshot data written
    /// in place needs no record) and the origin.
    fn commit_and_sync(&self) -> Result<()> {
        self.engine.commit()
    }
}

impl<D: BlockDev> BlockTarget for SnapshotTarget<D> {
    fn size(&self) -> u64 {
        self.engine.origin_device().size()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.engine.snapshot_read(self.id, offset, buf)
    }

    fn write(&self, offset: u64, data: &[u8], fua: bool) -> Result<()> {
        self.engine.snapshot_write(self.id, offset, data)?;
        if fua {
            self.commit_and_sync()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.commit_and_sync()
    }
}

#[cfg(test)]
mod tests;
