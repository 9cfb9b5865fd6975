//! Crash images of one device, stepped along the log: the durable image (every
//! write up to the device's last sync) and the writes since, of which each
//! image keeps a subset. The image lives in a device in memory the engine
//! opens (and, for the COW device, in a mirror file the checker reads); from
//! one image to the next only the bytes that differ are rewritten: those the
//! last image's surviving writes, the engine (replay at open, checkpoint at
//! close) and a sync since changed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cowfmt::blockdev::BlockDev;
use cowfmt::crashdev::{CrashEvent, CrashLog};
use cowfmt::error::Result;
use cowfmt::memdev::MemDev;

/// A device in memory that notes the byte ranges written to it.
#[derive(Debug)]
pub struct Tracked {
    device: MemDev,
    written: Mutex<Vec<(u64, usize)>>,
}

impl Tracked {
    fn take_written(&self) -> Vec<(u64, usize)> {
        std::mem::take(&mut *self.written.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl BlockDev for Tracked {
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
        self.device.write_at(buf, offset)?;
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((offset, buf.len()));
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// The recorded log read out once: the sweep threads step along it without
/// taking the log's lock for every event.
#[derive(Debug, Default)]
pub struct FrozenLog {
    events: Vec<CrashEvent>,
    data: Vec<Vec<u8>>,
}

impl FrozenLog {
    /// Every event of `log` and the data of its writes.
    pub fn new(log: &CrashLog) -> Self {
        let events: Vec<CrashEvent> = (0..log.len()).filter_map(|i| log.event(i)).collect();
        let data = (0..events.len())
            .map(|i| log.written(i).unwrap_or_default())
            .collect();
        FrozenLog { events, data }
    }

    /// Event `index`.
    pub fn event(&self, index: usize) -> Option<CrashEvent> {
        self.events.get(index).copied()
    }

    /// Events recorded.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The data of write `index` and where it goes.
    fn write(&self, index: usize) -> Option<(u64, &[u8])> {
        match self.events.get(index)? {
            CrashEvent::Write { offset, .. } => Some((*offset, &self.data[index])),
            CrashEvent::Sync { .. } => None,
        }
    }
}

/// One device's crash images along the log.
#[derive(Debug)]
pub struct ImageDevice {
    log_device: usize,
    durable: Vec<u8>,
    pending: Vec<usize>,
    last_sync: usize,
    stale: Vec<(u64, usize)>,
    device: Arc<Tracked>,
    mirror: Option<File>,
}

impl ImageDevice {
    /// Device `log_device` of `log` at crash point `at`, with a mirror file
    /// when given one.
    pub fn new(
        log: &CrashLog,
        log_device: usize,
        at: usize,
        mirror: Option<File>,
    ) -> io::Result<Self> {
        let pending = log.unsynced(log_device, at);
        let durable = log
            .image(log_device, at, &pending)
            .map_err(io::Error::other)?;
        if let Some(file) = &mirror {
            file.set_len(durable.len() as u64)?;
            file.write_all_at(&durable, 0)?;
        }
        let last_sync = (0..at)
            .rev()
            .find(|&i| log.event(i) == Some(CrashEvent::Sync { device: log_device }))
            .unwrap_or(0);
        Ok(ImageDevice {
            log_device,
            device: Arc::new(Tracked {
                device: MemDev::from_bytes("crash:image", durable.clone()),
                written: Mutex::new(Vec::new()),
            }),
            durable,
            pending,
            last_sync,
            stale: Vec::new(),
            mirror,
        })
    }

    /// The device the engine opens.
    pub fn device(&self) -> Arc<Tracked> {
        Arc::clone(&self.device)
    }

    /// The writes since the device's last sync (log indexes).
    pub fn pending(&self) -> &[usize] {
        &self.pending
    }

    /// The log index of the device's last sync (0 when none).
    pub fn last_sync(&self) -> usize {
        self.last_sync
    }

    /// Takes in event `index`.
    pub fn step(&mut self, log: &FrozenLog, index: usize) {
        match log.event(index) {
            Some(CrashEvent::Write { device, .. }) if device == self.log_device => {
                self.pending.push(index)
            }
            Some(CrashEvent::Sync { device }) if device == self.log_device => {
                for &i in &self.pending {
                    if let Some((offset, data)) = log.write(i) {
                        let at = offset as usize;
                        self.durable[at..at + data.len()].copy_from_slice(data);
                        self.stale.push((offset, data.len()));
                    }
                }
                self.pending.clear();
                self.last_sync = index;
            }
            _ => {}
        }
    }

    /// Loads the image with the pending writes in `lost` lost.
    pub fn load(&mut self, log: &FrozenLog, lost: &[usize]) -> io::Result<()> {
        self.stale.extend(self.device.take_written());
        for (offset, len) in std::mem::take(&mut self.stale) {
            let bytes = &self.durable[offset as usize..offset as usize + len];
            self.write(bytes, offset)?;
        }
        self.device.take_written();
        for &i in self.pending.iter().filter(|i| !lost.contains(i)) {
            if let Some((offset, data)) = log.write(i) {
                self.write(data, offset)?;
            }
        }
        self.stale = self.device.take_written();
        Ok(())
    }

    /// Copies what the engine wrote since the load (its replay) to the mirror.
    pub fn mirror_engine_writes(&mut self) -> io::Result<()> {
        let written = self.device.take_written();
        let mut buf = Vec::new();
        for &(offset, len) in &written {
            buf.resize(len, 0);
            self.device
                .read_at(&mut buf, offset, &String::new)
                .map_err(io::Error::other)?;
            if let Some(file) = &self.mirror {
                file.write_all_at(&buf, offset)?;
            }
        }
        self.stale.extend(written);
        Ok(())
    }

    fn write(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.device
            .write_at(bytes, offset)
            .map_err(io::Error::other)?;
        match &self.mirror {
            Some(file) => file.write_all_at(bytes, offset),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash_proof::pattern::Rng;

    /// Random writes and syncs of two devices, 16 bytes each.
    fn random_log(seed: u64) -> CrashLog {
        let log = CrashLog::new();
        let devices = [log.device("a", vec![0; 16]), log.device("b", vec![0; 16])];
        let mut rng = Rng::new(seed, 0);
        for n in 0..60u8 {
            let device = &devices[rng.below(2) as usize];
            if rng.chance(20) {
                device.sync().unwrap();
            } else {
                let offset = rng.below(12);
                let len = 1 + rng.below(16 - offset) as usize;
                device.write_at(&vec![n + 1; len], offset).unwrap();
            }
        }
        log
    }

    fn bytes(device: &Tracked) -> Vec<u8> {
        let mut out = vec![0; device.size() as usize];
        device.read_at(&mut out, 0, &String::new).unwrap();
        out
    }

    #[test]
    fn stepped_images_equal_images_built_from_the_start() {
        for seed in 0..8 {
            let log = random_log(seed);
            let scratch = tempfile::NamedTempFile::new().unwrap();
            let path = scratch.path().to_path_buf();
            let mirror = scratch.reopen().unwrap();
            let start = 5;
            let mut image = ImageDevice::new(&log, 0, start, Some(mirror)).unwrap();
            let frozen = FrozenLog::new(&log);
            let mut rng = Rng::new(seed, 1);
            for at in start..=log.len() {
                if at > start {
                    image.step(&frozen, at - 1);
                }
                assert_eq!(image.pending(), log.unsynced(0, at).as_slice());
                let lost: Vec<usize> = image
                    .pending()
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(50))
                    .collect();
                image.load(&frozen, &lost).unwrap();
                let want = log.image(0, at, &lost).unwrap();
                assert_eq!(bytes(&image.device()), want, "seed {seed} at {at}");
                image.device().write_at(&[0xee; 3], 2).unwrap();
                image.mirror_engine_writes().unwrap();
                let mut expected_mirror = want.clone();
                expected_mirror[2..5].fill(0xee);
                assert_eq!(std::fs::read(&path).unwrap(), expected_mirror, "the mirror");
            }
        }
    }
}
