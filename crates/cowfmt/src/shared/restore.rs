//! Restoring a shared store's metadata from a dump (`mkcow --from-dump`):
//! the head checked, every record checked in the dump's order (while the
//! records are spooled when the head came first), then the data chunks the
//! records name claimed where they are and a fresh tree and bitmap written
//! around them.

use std::any::Any;
use std::path::Path;

use super::build::{Built, StoreBuilder};
use super::dump::SharedRestoreHead;
use super::geometry::validate_chunk_size;
use super::header::SHARED_VERSION;
use super::mask::{self, MAX_SNAPSHOTS};
use super::stream::{SpooledGroups, TreeSink};
use crate::device::Device;
use crate::dump_read::spool::{read_back_error, RecordCheck, Spool};
use crate::error::{Error, Result};
use crate::job::{run_kept, InEntry, JobError, KeptSink};
use crate::SECTOR_BYTES;

/// The head's version, snapshots and chunk size checked; returns the snapmask.
pub fn check_head(head: &SharedRestoreHead, dump_path: &Path) -> Result<u64> {
    if let Some(version) = head.version.filter(|&v| v != SHARED_VERSION) {
        return Err(Error::Invalid(format!(
            "{}: version {version} is not the shared store version {SHARED_VERSION}",
            dump_path.display()
        )));
    }
    let snapmask = mask_of(
        &head.snapshots,
        &format!("{}: snapshots", dump_path.display()),
    )?;
    validate_chunk_size(u64::from(head.chunk_size))
        .map_err(|e| Error::Invalid(format!("{}: chunk_size: {e}", dump_path.display())))?;
    Ok(snapmask)
}

/// The mask of a list of snapshot ids; refuses ids out of range. `place`
/// names the file and the list.
fn mask_of(ids: &[u32], place: &str) -> Result<u64> {
    let mut m = 0u64;
    for &id in ids {
        if id >= MAX_SNAPSHOTS {
            return Err(Error::Invalid(format!(
                "{place}: snapshot id {id} is out of range (0-63)"
            )));
        }
        m |= mask::bit(id);
    }
    Ok(m)
}

/// Plans the check of shared records while they are spooled, from the head
/// read before them; `None` when the head cannot be used.
pub fn plan_check(head: &SharedRestoreHead, dump_path: &Path) -> Option<Box<dyn RecordCheck>> {
    let snapmask = mask_of(&head.snapshots, "").ok()?;
    validate_chunk_size(u64::from(head.chunk_size)).ok()?;
    let chunk_bytes = u64::from(head.chunk_size) * SECTOR_BYTES;
    Some(Box::new(SharedCheck::new(snapmask, chunk_bytes, dump_path)))
}

/// Checks the spooled records in the dump's order and returns the number of
/// origin chunks: origin chunks ascend and address bytes a device can have,
/// masks are non-empty, inside `snapmask` and disjoint within an origin chunk.
/// The check run while spooling is taken when it was planned for the same
/// mask and chunk size; otherwise the records are read back.
pub fn check_records(
    spool: &mut Spool,
    snapmask: u64,
    chunk_bytes: u64,
    dump_path: &Path,
    early: Option<Box<dyn RecordCheck>>,
) -> Result<u64> {
    let early = early
        .and_then(|check| check.into_any().downcast::<SharedCheck>().ok())
        .filter(|check| {
            check.snapmask == snapmask
                && check.chunk_bytes == chunk_bytes
                && (check.problem.is_some() || check.index == spool.len())
        });
    let check = match early {
        Some(check) => *check,
        None => {
            let mut check = SharedCheck::new(snapmask, chunk_bytes, dump_path);
            let mut reader = spool.read().map_err(read_back_error)?;
            let mut r = [0u64; 3];
            while check.problem.is_none() && reader.next_into(&mut r).map_err(read_back_error)? {
                check.check(&r);
            }
            check
        }
    };
    match check.problem {
        Some(problem) => Err(Error::Invalid(problem)),
        None => Ok(check.groups),
    }
}

/// How far a pass over the records got.
pub trait PassProgress {
    /// A pass labelled `what` over `total` origin chunks starts.
    fn start(&mut self, what: &'static str, total: u64);
    /// `done` origin chunks are done (every so many).
    fn at(&self, done: u64);
    /// The pass ended.
    fn end(&mut self);
}

/// What a restore writes beyond the records.
#[derive(Debug, Clone, Copy)]
pub struct RestorePlan {
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
    /// Journal chunks.
    pub journal_chunks: u64,
    /// The snapshots that exist.
    pub snapmask: u64,
    /// Whether the header says valid.
    pub valid: bool,
    /// Origin chunks the records cover (from [`check_records`]).
    pub origin_chunks: u64,
    /// Origin chunks between two progress updates.
    pub every: u64,
}

/// Writes the store of the checked, spooled records on `device`: claims
/// their data chunks where they are (one pass of the place-keeping stream),
/// then writes the tree, the bitmap, an empty journal and the header (a
/// second pass).
pub fn write_store(
    device: &Device,
    spool: &mut Spool,
    plan: &RestorePlan,
    dump_path: &Path,
    progress: &mut dyn PassProgress,
) -> Result<Built> {
    let chunk_sectors = u64::from(plan.chunk_sectors);
    let mut builder = StoreBuilder::new(device, chunk_sectors, plan.journal_chunks)?;
    progress.start("claiming", plan.origin_chunks);
    let mut claims = Claims {
        builder: &mut builder,
        dump_path,
    };
    pass(spool, &mut claims, plan.every, progress)?;
    progress.end();
    let mut tree = TreeSink::new(builder.into_tree());
    progress.start("writing", plan.origin_chunks);
    pass(spool, &mut tree, plan.every, progress)?;
    let tree = tree.into_tree();
    let built = tree.finish(plan.snapmask)?;
    progress.end();
    if !plan.valid {
        let mut header = built.header;
        header.valid = 0;
        device.write_chunk(0, &header.to_chunk(chunk_sectors as usize * 512))?;
        device.sync()?;
    }
    Ok(built)
}

/// Where a record of the dump is, for its error message; formatted only when
/// a record is wrong (the check runs once per record).
struct RecordPlace<'a> {
    dump_path: &'a str,
    index: u64,
    origin_chunk: u64,
    cow_chunk: u64,
}

impl std::fmt::Display for RecordPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: exception {} (origin_chunk {}, cow_chunk {})",
            self.dump_path, self.index, self.origin_chunk, self.cow_chunk
        )
    }
}

/// The first problem of shared records read in order; only the current
/// origin chunk is remembered.
struct SharedCheck {
    snapmask: u64,
    chunk_bytes: u64,
    dump_path: String,
    current: Option<(u64, u64)>,
    groups: u64,
    index: u64,
    problem: Option<String>,
}

impl SharedCheck {
    fn new(snapmask: u64, chunk_bytes: u64, dump_path: &Path) -> Self {
        SharedCheck {
            snapmask,
            chunk_bytes,
            dump_path: dump_path.display().to_string(),
            current: None,
            groups: 0,
            index: 0,
            problem: None,
        }
    }

    /// What is wrong with the next record, in the dump's order.
    fn problem_of(&mut self, origin_chunk: u64, cow_chunk: u64, share: u64) -> Option<String> {
        let (snapmask, chunk_bytes) = (self.snapmask, self.chunk_bytes);
        let origin_chunks = u64::MAX / chunk_bytes;
        let place = RecordPlace {
            dump_path: &self.dump_path,
            index: self.index,
            origin_chunk,
            cow_chunk,
        };
        if origin_chunk >= origin_chunks {
            return Some(format!(
                "{place}: origin chunk {origin_chunk} lies past the largest origin {chunk_bytes}-byte chunks can address ({origin_chunks} chunks)"
            ));
        }
        if share == 0 {
            return Some(format!("{place}: lists no snapshot"));
        }
        if share & !snapmask != 0 {
            return Some(format!(
                "{place}: snapshots {} are not among the dump's snapshots ({})",
                mask::describe(share & !snapmask),
                mask::describe(snapmask)
            ));
        }
        match self.current {
            Some((origin, seen)) if origin == origin_chunk => {
                if seen & share != 0 {
                    return Some(format!(
                        "{place}: its snapshots overlap another record of the same origin chunk"
                    ));
                }
                self.current = Some((origin, seen | share));
            }
            Some((origin, _)) if origin > origin_chunk => {
                return Some(format!(
                    "{place}: origin chunks must ascend, but it follows origin chunk {origin}"
                ));
            }
            _ => {
                self.groups += 1;
                self.current = Some((origin_chunk, share));
            }
        }
        None
    }
}

impl RecordCheck for SharedCheck {
    fn check(&mut self, records: &[u64]) {
        for r in records.chunks_exact(3) {
            if self.problem.is_some() {
                return;
            }
            self.problem = self.problem_of(r[0], r[1], r[2]);
            self.index += 1;
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Runs the spooled records, grouped by origin chunk (checked by
/// [`check_records`]), through the place-keeping stream into `sink`.
fn pass(
    spool: &mut Spool,
    sink: &mut dyn KeptSink,
    every: u64,
    progress: &mut dyn PassProgress,
) -> Result<()> {
    let mut source = SpooledGroups::new(spool.read().map_err(read_back_error)?);
    run_kept(&mut source, sink, &mut |index| {
        if index.is_multiple_of(every) {
            progress.at(index);
        }
    })
    .map_err(JobError::into_error)?;
    Ok(())
}

/// Claims the data chunk of every record where it is, naming the dump's
/// entry of a chunk that cannot be claimed.
struct Claims<'b, 'a> {
    builder: &'b mut StoreBuilder<'a>,
    dump_path: &'b Path,
}

impl KeptSink for Claims<'_, '_> {
    fn entry(&mut self, index: u64, entry: &InEntry) -> std::result::Result<(), JobError> {
        for r in &entry.records {
            self.builder.claim(r.chunk).map_err(|e| {
                Error::Invalid(format!(
                    "{}: origin chunk entry {index}: {e}",
                    self.dump_path.display()
                ))
            })?;
        }
        Ok(())
    }
}
