//! A recording crash device, for crash-replay tests: every write and every
//! sync of one or more [`CrashDev`]s goes into one shared [`CrashLog`] in issue
//! order, and the log builds the image a power cut would leave on a device at
//! any point of it.
//!
//! The model (a volatile write cache, as dm-log-writes replays it): a write is
//! durable once its device has synced after it; a crash after event `at` keeps
//! every durable write and may lose any subset of the writes issued since the
//! device's last sync (so they may also land out of order). Survivors are
//! applied in issue order: a later write over the same bytes wins, as a cache
//! holds the latest data of a block. A write is lost or kept whole. A sync of
//! one device orders nothing on another (an `fdatasync` of the COW device does
//! not flush the origin).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::memdev::MemDev;

/// One recorded event, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashEvent {
    /// `len` bytes written at `offset` of device `device`.
    Write {
        /// The device's number in the log ([`CrashDev::id`]).
        device: usize,
        /// Byte offset of the write.
        offset: u64,
        /// Bytes written.
        len: usize,
    },
    /// A sync of device `device`: a barrier for its earlier writes.
    Sync {
        /// The device's number in the log.
        device: usize,
    },
}

#[derive(Debug)]
struct Entry {
    event: CrashEvent,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Log {
    initial: Vec<Vec<u8>>,
    entries: Vec<Entry>,
}

/// The shared, ordered log of the writes and syncs of every device made from it.
/// Clones share the log.
#[derive(Debug, Clone, Default)]
pub struct CrashLog {
    log: Arc<Mutex<Log>>,
}

/// A device in memory whose writes and syncs are recorded in a [`CrashLog`].
/// Reads see every write issued so far, as a running system does.
#[derive(Debug)]
pub struct CrashDev {
    log: CrashLog,
    id: usize,
    current: MemDev,
}

impl CrashLog {
    /// An empty log.
    pub fn new() -> Self {
        CrashLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new device named `label` holding `initial` (durable before any event).
    pub fn device(&self, label: impl Into<PathBuf>, initial: Vec<u8>) -> CrashDev {
        let mut log = self.lock();
        log.initial.push(initial.clone());
        CrashDev {
            log: self.clone(),
            id: log.initial.len() - 1,
            current: MemDev::from_bytes(label, initial),
        }
    }

    /// Events recorded so far; crash points run from 0 (before any) to this.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Event `index` (issue order, from 0), if recorded.
    pub fn event(&self, index: usize) -> Option<CrashEvent> {
        self.lock().entries.get(index).map(|e| e.event)
    }

    /// The data of event `index`, if it is a write.
    pub fn written(&self, index: usize) -> Option<Vec<u8>> {
        let log = self.lock();
        let entry = log.entries.get(index)?;
        matches!(entry.event, CrashEvent::Write { .. }).then(|| entry.data.clone())
    }

    /// The writes to `device` a crash after the first `at` events may lose:
    /// the log indexes of those issued since the device's last sync before `at`.
    pub fn unsynced(&self, device: usize, at: usize) -> Vec<usize> {
        let log = self.lock();
        let at = at.min(log.entries.len());
        let mut pending = Vec::new();
        for (i, entry) in log.entries[..at].iter().enumerate() {
            match entry.event {
                CrashEvent::Write { device: d, .. } if d == device => pending.push(i),
                CrashEvent::Sync { device: d } if d == device => pending.clear(),
                _ => {}
            }
        }
        pending
    }

    /// The bytes of `device` after a power cut following the first `at` events,
    /// with the unsynced writes whose log indexes are in `lost` lost. A lost
    /// index that is not an unsynced write of `device` at `at` is refused.
    pub fn image(&self, device: usize, at: usize, lost: &[usize]) -> Result<Vec<u8>> {
        let unsynced = self.unsynced(device, at);
        if let Some(bad) = lost.iter().find(|i| unsynced.binary_search(i).is_err()) {
            return Err(Error::Invalid(format!(
                "crash image of device {device} at event {at}: event {bad} is not a write \
                 that could be lost there (unsynced writes: {unsynced:?})"
            )));
        }
        let log = self.lock();
        let Some(initial) = log.initial.get(device) else {
            return Err(Error::Invalid(format!(
                "crash image of device {device}: the log has {} devices",
                log.initial.len()
            )));
        };
        let mut bytes = initial.clone();
        apply(&log, device, 0..at, lost, &mut bytes);
        Ok(bytes)
    }

    /// The losses a crash-replay test tries at cut point `at`, one list of
    /// lost writes per device of `devices`: nothing lost, each unsynced write
    /// of one device lost alone, and every unsynced write of one device lost.
    pub fn loss_cases(&self, devices: &[usize], at: usize) -> Vec<Vec<Vec<usize>>> {
        let none = vec![Vec::new(); devices.len()];
        let mut cases = vec![none.clone()];
        for (d, &device) in devices.iter().enumerate() {
            let unsynced = self.unsynced(device, at);
            for &one in &unsynced {
                let mut case = none.clone();
                case[d] = vec![one];
                cases.push(case);
            }
            if unsynced.len() > 1 {
                let mut case = none.clone();
                case[d] = unsynced;
                cases.push(case);
            }
        }
        cases
    }

    /// Applies to `bytes` (an image of `device`, as [`CrashLog::image`] built
    /// it at `range.start`) the writes of `device` with log indexes in `range`,
    /// except those in `lost`, in issue order. Crash tests step an image along
    /// the log with it instead of rebuilding it from the start at each point.
    pub fn apply_writes(
        &self,
        device: usize,
        range: std::ops::Range<usize>,
        lost: &[usize],
        bytes: &mut [u8],
    ) -> Result<()> {
        let log = self.lock();
        match log.initial.get(device) {
            Some(initial) if initial.len() == bytes.len() => {
                apply(&log, device, range, lost, bytes);
                Ok(())
            }
            _ => Err(Error::Invalid(format!(
                "applying crash log writes to device {device}: the log has {} devices, and an \
                 image must be as long as the device",
                log.initial.len()
            ))),
        }
    }

    fn record(&self, event: CrashEvent, data: &[u8]) {
        self.lock().entries.push(Entry {
            event,
            data: data.to_vec(),
        });
    }
}

/// Applies the writes of `device` with indexes in `range` and not in `lost`.
fn apply(
    log: &Log,
    device: usize,
    range: std::ops::Range<usize>,
    lost: &[usize],
    bytes: &mut [u8],
) {
    let end = range.end.min(log.entries.len());
    let start = range.start.min(end);
    for (i, entry) in log.entries[start..end].iter().enumerate() {
        if let CrashEvent::Write {
            device: d,
            offset,
            len,
        } = entry.event
        {
            if d == device && !lost.contains(&(start + i)) {
                bytes[offset as usize..offset as usize + len].copy_from_slice(&entry.data);
            }
        }
    }
}

impl CrashDev {
    /// This device's number in its log (the `device` of its events).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The log this device records into.
    pub fn log(&self) -> &CrashLog {
        &self.log
    }
}

impl BlockDev for CrashDev {
    fn path(&self) -> &Path {
        self.current.path()
    }

    fn size(&self) -> u64 {
        self.current.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        self.current.read_at(buf, offset, what)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.current.write_at(buf, offset)?;
        let event = CrashEvent::Write {
            device: self.id,
            offset,
            len: buf.len(),
        };
        self.log.record(event, buf);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.log.record(CrashEvent::Sync { device: self.id }, &[]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two devices: cow writes 1 (event 0), 2 (1), sync (2), 3 over 1's bytes (3),
    /// origin writes 9 (4), cow writes 4 (5), origin syncs (6).
    fn recorded() -> (CrashLog, CrashDev, CrashDev) {
        let log = CrashLog::new();
        let cow = log.device("mem:cow", vec![0; 8]);
        let origin = log.device("mem:origin", vec![0; 4]);
        cow.write_at(&[1, 1], 0).unwrap();
        cow.write_at(&[2], 4).unwrap();
        cow.sync().unwrap();
        cow.write_at(&[3], 1).unwrap();
        origin.write_at(&[9], 0).unwrap();
        cow.write_at(&[4], 7).unwrap();
        origin.sync().unwrap();
        (log, cow, origin)
    }

    #[test]
    fn every_write_and_sync_is_logged_in_issue_order() {
        let (log, cow, origin) = recorded();
        assert_eq!((cow.id(), origin.id()), (0, 1));
        assert_eq!(log.len(), 7);
        assert_eq!(
            log.event(3),
            Some(CrashEvent::Write {
                device: 0,
                offset: 1,
                len: 1
            })
        );
        assert_eq!(log.event(6), Some(CrashEvent::Sync { device: 1 }));
        assert_eq!(log.event(7), None);
        let mut now = [0u8; 8];
        cow.read_at(&mut now, 0, &String::new).unwrap();
        assert_eq!(now, [1, 3, 0, 0, 2, 0, 0, 4], "reads see unsynced writes");
    }

    #[test]
    fn a_sync_is_a_barrier_for_its_own_device_only() {
        let (log, ..) = recorded();
        assert_eq!(log.unsynced(0, 0), Vec::<usize>::new());
        assert_eq!(log.unsynced(0, 2), vec![0, 1]);
        assert_eq!(log.unsynced(0, 3), Vec::<usize>::new());
        assert_eq!(
            log.unsynced(0, 7),
            vec![3, 5],
            "the origin's sync leaves the cow's writes"
        );
        assert_eq!(log.unsynced(1, 6), vec![4]);
        assert_eq!(log.unsynced(1, 7), Vec::<usize>::new());
    }

    #[test]
    fn crash_images_keep_durable_writes_and_any_subset_of_the_rest() {
        let (log, ..) = recorded();
        assert_eq!(log.image(0, 0, &[]).unwrap(), [0; 8]);
        assert_eq!(log.image(0, 2, &[0]).unwrap(), [0, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(log.image(0, 2, &[1]).unwrap(), [1, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(log.image(0, 7, &[]).unwrap(), [1, 3, 0, 0, 2, 0, 0, 4]);
        assert_eq!(
            log.image(0, 7, &[3]).unwrap(),
            [1, 1, 0, 0, 2, 0, 0, 4],
            "a later write lost while an earlier one landed: reordered"
        );
        assert_eq!(log.image(0, 7, &[3, 5]).unwrap(), [1, 1, 0, 0, 2, 0, 0, 0]);
        assert_eq!(log.image(1, 5, &[4]).unwrap(), [0; 4]);
        assert_eq!(log.image(1, 7, &[]).unwrap(), [9, 0, 0, 0]);
    }

    #[test]
    fn stepping_an_image_along_the_log_builds_the_same_image() {
        let (log, ..) = recorded();
        let mut cow = log.image(0, 3, &[]).unwrap();
        log.apply_writes(0, 3..7, &[5], &mut cow).unwrap();
        assert_eq!(cow, log.image(0, 7, &[5]).unwrap());
        let mut origin = log.image(1, 0, &[]).unwrap();
        log.apply_writes(1, 0..7, &[], &mut origin).unwrap();
        assert_eq!(origin, [9, 0, 0, 0], "the cow's writes are not applied");
        assert!(log.apply_writes(0, 0..7, &[], &mut [0; 4]).is_err());
        assert_eq!(log.written(3), Some(vec![3]));
        assert_eq!(log.written(2), None, "a sync");
        assert_eq!(log.written(7), None, "past the end");
        assert!(log.apply_writes(2, 0..7, &[], &mut [0; 8]).is_err());
    }

    #[test]
    fn losing_a_durable_write_or_another_devices_write_is_refused() {
        let (log, ..) = recorded();
        let err = log.image(0, 7, &[0]).unwrap_err().to_string();
        assert!(
            err.contains("event 0 is not a write that could be lost"),
            "{err}"
        );
        assert!(log.image(0, 7, &[4]).is_err(), "event 4 is the origin's");
        assert!(log.image(1, 7, &[4]).is_err(), "the origin synced after it");
        assert!(log.image(2, 7, &[]).is_err(), "no third device");
    }

    #[test]
    fn loss_cases_lose_each_unsynced_write_and_all_of_them() {
        let (log, ..) = recorded();
        let nothing: Vec<Vec<Vec<usize>>> = vec![vec![vec![], vec![]]];
        assert_eq!(log.loss_cases(&[0, 1], 0), nothing);
        assert_eq!(
            log.loss_cases(&[0, 1], 6),
            vec![
                vec![vec![], vec![]],
                vec![vec![3], vec![]],
                vec![vec![5], vec![]],
                vec![vec![3, 5], vec![]],
                vec![vec![], vec![4]],
            ]
        );
    }

    #[test]
    fn failed_writes_are_not_logged() {
        let log = CrashLog::new();
        let dev = log.device("mem:small", vec![0; 4]);
        assert!(dev.write_at(&[1; 2], 3).is_err());
        assert!(log.is_empty());
    }
}
