//! Checks one crash image: it opens with the engine's store
//! ([`SharedStore::open`], as `Engine::open` opens it, replaying the journal;
//! without the engine's per-chunk locks, which cost a futex wake per chunk
//! read), cowfmt's shared
//! checker finds no error, the snapshot set and every snapshot's view are one
//! state a commit may have left, and every origin sector holds a value written
//! to it since its last durable point.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cowfmt::blockdev::BlockDev;

use cowfmt::device::{Access, Device};
use cowfmt::finding::Severity;
use cowfmt::shared::check::{check, CheckOptions};

use super::images::{ImageDevice, Tracked};
use super::model::Candidate;
use super::pattern::{self, SECTOR};
use super::record::{Recording, COW, ORIGIN};
use super::replay_crash::check_replay_crashes;
use crate::store::SharedStore;

/// A scratch file the checker reads a crash image from (it reads devices by
/// path), in memory (/dev/shm) where there is one; removed when dropped.
#[derive(Debug)]
pub struct CheckFile {
    path: PathBuf,
}

impl CheckFile {
    /// A new scratch file named after this process, a count of the files made
    /// and `worker` (never an existing file), and a handle to write it through.
    pub fn new(worker: usize) -> std::io::Result<(Self, File)> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        static FILES: AtomicU64 = AtomicU64::new(0);
        let n = FILES.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            "cowengine-crash-{}-{n}-{worker}.img",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((CheckFile { path }, file))
    }

    /// Runs cowfmt's shared checker over the file; the first error, if any.
    pub fn first_error(&self, origin_bytes: u64) -> Result<(), String> {
        let device = Device::open(&self.path, Access::ReadOnly).map_err(|e| e.to_string())?;
        let options = CheckOptions {
            origin_bytes: Some(origin_bytes),
            ..CheckOptions::default()
        };
        let report = check(&device, &options).map_err(|e| format!("the checker failed: {e}"))?;
        match report
            .findings
            .iter()
            .find(|f| f.severity == Severity::Error)
        {
            Some(f) => Err(format!(
                "the checker finds {} errors, the first: {f:?}",
                report
                    .findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .count()
            )),
            None => Ok(()),
        }
    }
}

impl Drop for CheckFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a crash point stands: events kept, and the origin's last sync.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Events before the power cut.
    pub at: usize,
    /// Log index of the origin's last sync before it (0 when none): origin
    /// writes before it are durable.
    pub origin_synced: usize,
}

/// What one sweep thread opens its crash images on: both devices stepped
/// along the log, the check file mirroring the COW device, a view buffer.
#[derive(Debug)]
pub struct Workbench {
    /// The COW device's images.
    pub cow: ImageDevice,
    /// The origin's images.
    pub origin: ImageDevice,
    file: CheckFile,
    origin_bytes: Vec<u8>,
    view: Vec<u8>,
}

impl Workbench {
    /// The devices of `rec` at crash point `at`, and worker `worker`'s check
    /// file.
    pub fn new(rec: &Recording, at: usize, worker: usize) -> std::io::Result<Self> {
        let (file, mirror) = CheckFile::new(worker)?;
        let cow = ImageDevice::new(&rec.log, COW, at, Some(mirror))?;
        let origin = ImageDevice::new(&rec.log, ORIGIN, at, None)?;
        let size = origin.device().size() as usize;
        Ok(Workbench {
            cow,
            origin,
            file,
            origin_bytes: vec![0; size],
            view: vec![0; size],
        })
    }
}

impl Workbench {
    /// Cuts the journal replay of the loaded COW image at every point
    /// ([`super::replay_crash`]); the cut images checked.
    pub fn check_replay_crashes(&self, rec: &Recording, at: usize) -> Result<u64, String> {
        let device = self.cow.device();
        let mut image = vec![0; device.size() as usize];
        device
            .read_at(&mut image, 0, &String::new)
            .map_err(|e| e.to_string())?;
        check_replay_crashes(&image, rec.seed ^ at as u64, rec.scenario.samples)
    }
}

/// Checks the store a crash left on the workbench's devices at `point`; the
/// first thing wrong, if any.
pub fn verify(rec: &Recording, point: Point, bench: &mut Workbench) -> Result<(), String> {
    let origin_size = bench.origin_bytes.len() as u64;
    let mut store = SharedStore::open(bench.cow.device(), bench.origin.device())
        .map_err(|e| format!("the store does not open: {e}"))?;
    bench
        .cow
        .mirror_engine_writes()
        .map_err(|e| format!("mirroring the replayed image: {e}"))?;
    bench.file.first_error(origin_size)?;
    store
        .origin_device()
        .read_at(&mut bench.origin_bytes, 0, &String::new)
        .map_err(|e| e.to_string())?;
    let origin = &bench.origin_bytes;
    let candidates = rec.model.candidates(point.at);
    let mut mismatches = Vec::new();
    for candidate in &candidates {
        match matches(rec, &mut store, candidate, point, origin, &mut bench.view) {
            Ok(()) => {
                mismatches.clear();
                break;
            }
            Err(e) => mismatches.push(e),
        }
    }
    if let Some(last_commit) = mismatches.first() {
        let mut message = format!("against the last commit's state, {last_commit}");
        for (i, other) in mismatches.iter().enumerate().skip(1) {
            message.push_str(&format!(
                "; against state {i} of the commit in flight, {other}"
            ));
        }
        return Err(message);
    }
    check_origin(rec, point, origin)
}

/// Whether the snapshots read as `candidate` (allowing snapshot writes issued
/// after it was taken, which may land in place).
fn matches(
    rec: &Recording,
    store: &mut SharedStore<Arc<Tracked>>,
    candidate: &Candidate,
    point: Point,
    origin: &[u8],
    view: &mut [u8],
) -> Result<(), String> {
    let want: Vec<u32> = candidate.state.snapshots.keys().copied().collect();
    let have = cowfmt::shared::mask::id_list(store.snapmask());
    if want != have {
        return Err(format!("snapshots {have:?}, expected {want:?}"));
    }
    for (&id, tags) in &candidate.state.snapshots {
        if candidate.unchecked == Some(id) {
            continue;
        }
        store
            .snapshot_read(id, 0, view)
            .map_err(|e| format!("snapshot {id} cannot be read: {e}"))?;
        for (s, sector) in view.chunks_exact(SECTOR).enumerate() {
            let expected = tags[s];
            let found = pattern::tag_of(sector);
            if found == Some(expected) {
                continue;
            }
            if let Some(tag) = found {
                if rec
                    .model
                    .loose_tag(id, s as u64, tag, candidate.as_of, point.at)
                {
                    continue;
                }
            }
            let read = found.map_or("bytes no write produced".to_string(), pattern::describe);
            let origin_tag = pattern::tag_of(&origin[s * SECTOR..(s + 1) * SECTOR]);
            let why = match found {
                Some(tag) if found == origin_tag && rec.model.origin_held(s as u64, expected) => {
                    if tag >> 32 > expected >> 32 {
                        ": it reads the origin, overwritten before its copy-out was durable"
                    } else {
                        ": it reads the origin, which lost a write the snapshot saw (the origin \
                         was not durable when the snapshot's commit was)"
                    }
                }
                Some(_) if found == origin_tag => {
                    ": it reads the origin, the record of its own data lost"
                }
                _ => "",
            };
            return Err(format!(
                "snapshot {id} sector {s} (chunk {}) reads {read}, expected {}{why}",
                s as u64 / rec.scenario.chunk_sectors(),
                pattern::describe(expected)
            ));
        }
    }
    Ok(())
}

/// Every origin sector holds its value at the origin's last sync or one
/// written to it since.
fn check_origin(rec: &Recording, point: Point, origin: &[u8]) -> Result<(), String> {
    for (s, sector) in origin.chunks_exact(SECTOR).enumerate() {
        let found = pattern::tag_of(sector);
        let allowed = found.is_some_and(|tag| {
            rec.model
                .origin_allows(s as u64, tag, point.origin_synced, point.at)
        });
        if !allowed {
            let read = found.map_or("bytes no write produced".to_string(), pattern::describe);
            return Err(format!(
                "origin sector {s} reads {read}, which was not written to it since its last sync"
            ));
        }
    }
    Ok(())
}
