//! Checks one crash image: it opens (replaying its journal), cowfmt's shared
//! checker finds no error, the snapshot set and every snapshot's view are one
//! state a commit may have left, and every origin sector holds a value written
//! to it since its last durable point.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cowfmt::blockdev::BlockDev;

use cowfmt::device::{Access, Device};
use cowfmt::finding::Severity;
use cowfmt::memdev::MemDev;
use cowfmt::shared::check::{check, CheckOptions};

use super::model::Candidate;
use super::pattern::{self, SECTOR};
use super::record::{Recording, COW, ORIGIN};
use crate::engine::Engine;

/// A scratch file the checker reads a crash image from (it reads devices by
/// path), in memory (/dev/shm) where there is one; removed when dropped.
#[derive(Debug)]
pub struct CheckFile {
    path: PathBuf,
    file: File,
}

impl CheckFile {
    /// A scratch file named after this process and `worker`.
    pub fn new(worker: usize) -> std::io::Result<Self> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!(
            "cowengine-crash-{}-{worker}.img",
            std::process::id()
        ));
        let file = File::create(&path)?;
        Ok(CheckFile { path, file })
    }

    /// Runs cowfmt's shared checker over `cow`; the first error, if any.
    pub fn first_error(&self, cow: &[u8], origin_bytes: u64) -> Result<(), String> {
        let written = self
            .file
            .set_len(cow.len() as u64)
            .and_then(|()| self.file.write_all_at(cow, 0));
        written.map_err(|e| format!("writing {}: {e}", self.path.display()))?;
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

/// The devices one sweep thread opens its crash images on, reused from
/// image to image so that no image costs an allocation of its size.
#[derive(Debug)]
pub struct Workbench {
    cow: Arc<MemDev>,
    origin: Arc<MemDev>,
    bytes: Vec<u8>,
    view: Vec<u8>,
    file: CheckFile,
}

impl Workbench {
    /// Devices of the sizes of `rec`'s, and worker `worker`'s check file.
    pub fn new(rec: &Recording, worker: usize) -> std::io::Result<Self> {
        let size = |device| rec.log.image(device, 0, &[]).map_or(0, |b| b.len() as u64);
        let (cow, origin) = (size(COW), size(ORIGIN));
        Ok(Workbench {
            cow: Arc::new(MemDev::new("crash:cow", cow)),
            origin: Arc::new(MemDev::new("crash:origin", origin)),
            bytes: Vec::with_capacity(cow.max(origin) as usize),
            view: vec![0; origin as usize],
            file: CheckFile::new(worker)?,
        })
    }

    /// The buffer crash images are built in.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Loads the buffer as the COW device's image.
    pub fn load_cow(&mut self) {
        let _ = self.cow.write_at(&self.bytes, 0);
    }

    /// Loads the buffer as the origin's image.
    pub fn load_origin(&mut self) {
        let _ = self.origin.write_at(&self.bytes, 0);
    }
}

/// Checks the store a crash left on the workbench's devices at `point`; the
/// first thing wrong, if any.
pub fn verify(rec: &Recording, point: Point, bench: &mut Workbench) -> Result<(), String> {
    let origin_bytes = bench.origin.size();
    let engine = Engine::open(Arc::clone(&bench.cow), Arc::clone(&bench.origin))
        .map_err(|e| format!("the store does not open: {e}"))?;
    bench.bytes.resize(bench.cow.size() as usize, 0);
    bench
        .cow
        .read_at(&mut bench.bytes, 0, &String::new)
        .map_err(|e| e.to_string())?;
    bench.file.first_error(&bench.bytes, origin_bytes)?;
    bench.bytes.resize(origin_bytes as usize, 0);
    bench
        .origin
        .read_at(&mut bench.bytes, 0, &String::new)
        .map_err(|e| e.to_string())?;
    let origin = &bench.bytes;
    let candidates = rec.model.candidates(point.at);
    let mut mismatches = Vec::new();
    for candidate in &candidates {
        match matches(rec, &engine, candidate, point, origin, &mut bench.view) {
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
    engine: &Engine<Arc<MemDev>>,
    candidate: &Candidate,
    point: Point,
    origin: &[u8],
    view: &mut [u8],
) -> Result<(), String> {
    let want: Vec<u32> = candidate.state.snapshots.keys().copied().collect();
    let have = cowfmt::shared::mask::id_list(engine.snapmask());
    if want != have {
        return Err(format!("snapshots {have:?}, expected {want:?}"));
    }
    for (&id, tags) in &candidate.state.snapshots {
        engine
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
                Some(_) if found == origin_tag && rec.model.origin_held(s as u64, expected) => {
                    ": it reads the origin, overwritten before its copy-out was durable"
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
