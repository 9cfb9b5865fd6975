//! The shared store behind `&self`, for several I/O threads at once
//! (docs/architecture.md, runtime.md 4.3): the metadata ([`SharedStore`]) sits
//! behind one lock, data is copied outside it, and per-origin-chunk locks
//! ([`ChunkLocks`]) order the I/O that touches one chunk:
//!
//! - an origin write holds its chunks exclusively; under the metadata lock it
//!   records the copy-outs the snapshots need, copies the chunks outside it
//!   (consecutive chunks in one read and one write), commits, and only then
//!   writes the origin, so the old data and its record are durable first;
//! - a snapshot read holds its chunks shared, so a read that resolves to the
//!   origin never races an origin overwrite, and one that resolves to a COW
//!   chunk still being copied waits for the copy;
//! - a snapshot write holds its chunks exclusively, plans under the lock and
//!   writes its data outside it;
//!   an origin write to a chunk a snapshot wrote since the last commit commits
//!   first even when it copies nothing out, or a crash could lose the record
//!   that covers the snapshot while the origin data landed; a snapshot write
//!   to such a chunk commits first too, or a write in place to a chunk another
//!   snapshot left (still shared on disk) could change that snapshot's data;
//! - deleting a snapshot commits before it returns (see
//!   [`Engine::delete_snapshot`]); an explicit commit also syncs the COW
//!   device, for snapshot data written in place;
//! - creating a snapshot syncs the origin first, so that what the snapshot
//!   sees of the origin is durable before its commit can be;
//! - creating or deleting a snapshot closes a gate that new origin writes wait
//!   at and lets the ones in flight drain, so none copies out for the old set
//!   of snapshots and writes the origin under the new one;
//! - a commit waits, under the metadata lock, until no copy is in flight, so it
//!   never makes a record durable before the data it names.
//!
//! Commits are grouped (runtime.md 4.3): a change made under the metadata
//! lock takes a ticket (the batch the next commit will capture); one thread
//! at a time commits, capturing every change made so far; a thread whose
//! ticket a finished commit covered returns without committing again. On a
//! journaled store the commit is captured under the metadata lock and written
//! (two syncs, home writes, checkpoints) outside it; in place it is written
//! under the lock, because a chunk freed by a later change could otherwise be
//! reused while the commit still writes a stale block over it. Deleting or
//! copying a snapshot, and reclaiming chunks freed but waiting for a
//! checkpoint when the store runs full, run with commits held off and no copy
//! in flight, so the store may commit by itself in between.
//!
//! Origin reads take no lock. Buffers come from a pool, so the I/O path does
//! not allocate once warm.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use cowfmt::blockdev::BlockDev;
use cowfmt::error::{Error, Result};
use cowfmt::shared::header::SharedHeader;

use crate::journal::CommitMode;
use crate::locks::{ChunkLocks, LockMode};
use crate::store::{check_origin_span, CreateOptions, Fill, SharedStore};

/// Stripes of the chunk lock table.
const LOCK_STRIPES: usize = 4096;

/// A shared store served to several threads.
#[derive(Debug)]
pub struct Engine<D: BlockDev> {
    store: Mutex<SharedStore<Arc<D>>>,
    cow: Arc<D>,
    origin: Arc<D>,
    chunk_bytes: u64,
    locks: ChunkLocks,
    gate: RwLock<()>,
    copies: Watched<u64>,
    committing: Watched<bool>,
    requests: std::sync::atomic::AtomicU64,
    scratch: Mutex<Vec<Scratch>>,
    snapshot_written: Mutex<HashMap<u64, u64>>,
}

/// How many commits were asked for and how many transactions were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Commits asked for (an origin write that copied out, an explicit commit).
    pub requested: u64,
    /// Transactions written (journal transactions or in-place commits).
    pub written: u64,
}

/// How far one step of an origin write's copy-outs went.
#[derive(Debug, Clone, Copy)]
struct CopyStep {
    /// The first chunk not yet planned.
    next: u64,
    /// The ticket to commit before going on: set when the step copied
    /// anything, or stopped at the transaction bound.
    ticket: Option<u64>,
}

/// Reusable buffers of one origin write.
#[derive(Debug, Default)]
struct Scratch {
    data: Vec<u8>,
    plans: Vec<(u64, u64)>,
    targets: Vec<(u64, Fill)>,
}

impl<D: BlockDev> Engine<D> {
    /// Formats `cow` as an empty shared store for `origin` and serves it.
    pub fn create(cow: D, origin: D, options: &CreateOptions) -> Result<Self> {
        let (cow, origin) = (Arc::new(cow), Arc::new(origin));
        let store = SharedStore::create(Arc::clone(&cow), Arc::clone(&origin), options)?;
        Ok(Engine::serve(store, cow, origin))
    }

    /// Serves the shared store on `cow` for `origin`.
    pub fn open(cow: D, origin: D) -> Result<Self> {
        let (cow, origin) = (Arc::new(cow), Arc::new(origin));
        let store = SharedStore::open(Arc::clone(&cow), Arc::clone(&origin))?;
        Ok(Engine::serve(store, cow, origin))
    }

    fn serve(mut store: SharedStore<Arc<D>>, cow: Arc<D>, origin: Arc<D>) -> Self {
        store.set_auto_commit(false);
        Engine {
            chunk_bytes: store.geometry().chunk_bytes,
            store: Mutex::new(store),
            cow,
            origin,
            locks: ChunkLocks::new(LOCK_STRIPES),
            gate: RwLock::new(()),
            copies: Watched::new(0),
            committing: Watched::new(false),
            requests: std::sync::atomic::AtomicU64::new(0),
            scratch: Mutex::new(Vec::new()),
            snapshot_written: Mutex::new(HashMap::new()),
        }
    }

    /// Commits, checkpoints (the journal is left empty) and syncs both devices.
    pub fn close(self) -> Result<()> {
        let mut store = self.store.into_inner().unwrap_or_else(|e| e.into_inner());
        store.set_auto_commit(true);
        store.close()
    }

    /// How commits are made durable (journaled, or in place and why).
    pub fn commit_mode(&self) -> CommitMode {
        self.store().commit_mode()
    }

    /// Commits asked for and transactions written since the engine started.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            requested: self.requests.load(std::sync::atomic::Ordering::Relaxed),
            written: self.store().transactions(),
        }
    }

    /// Freed chunks that wait for a checkpoint before they can be reused.
    pub fn pending_frees(&self) -> u64 {
        self.store().pending_frees()
    }

    /// Free chunks in the data range (chunks waiting for a checkpoint excluded).
    pub fn free_chunks(&self) -> u64 {
        self.store().free_chunks()
    }

    fn store(&self) -> MutexGuard<'_, SharedStore<Arc<D>>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The COW device.
    pub fn cow_device(&self) -> &D {
        &self.cow
    }

    /// The origin device.
    pub fn origin_device(&self) -> &D {
        &self.origin
    }

    /// The header as the next commit will write it.
    pub fn header(&self) -> SharedHeader {
        self.store().header()
    }

    /// Bit s set: snapshot s exists.
    pub fn snapmask(&self) -> u64 {
        self.store().snapmask()
    }

    /// Creates snapshot `id`, or the lowest free id, seeing the origin as it is
    /// once the origin writes in flight have landed.
    pub fn create_snapshot(&self, id: Option<u32>) -> Result<u32> {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        self.origin.sync()?;
        self.store().create_snapshot(id)
    }

    /// Creates a snapshot that sees what snapshot `parent` sees now.
    pub fn create_snapshot_of(&self, parent: u32) -> Result<u32> {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        self.origin.sync()?;
        self.with_store_committing(|store| store.create_snapshot_of(parent))
    }

    /// Deletes snapshot `id`; returns the data chunks freed. A delete larger
    /// than a journal transaction commits in steps (see [`crate::delete`]).
    ///
    /// The delete is committed before it returns: until it is durable, a
    /// record it left to one snapshot alone is still shared on disk, and a
    /// write of that snapshot in place would change the deleted one's data.
    pub fn delete_snapshot(&self, id: u32) -> Result<u64> {
        let _gate = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let freed = self.with_store_committing(|store| store.delete_snapshot(id))?;
        self.commit_through(self.ticket())?;
        Ok(freed)
    }

    /// Makes every change made so far durable (grouped with other threads'
    /// commits), then syncs the COW device (snapshot data written in place
    /// needs no new record, so no transaction makes it durable) and the origin.
    pub fn commit(&self) -> Result<()> {
        let ticket = self.ticket();
        self.commit_through(ticket)?;
        self.cow.sync()?;
        self.origin.sync()
    }

    /// Commits every transaction and checkpoints: the journal is left empty
    /// and chunks freed so far become reusable.
    pub fn checkpoint(&self) -> Result<()> {
        self.with_store_committing(|store| store.checkpoint())
    }

    /// The ticket of a change made now: the batch the next commit captures.
    fn ticket(&self) -> u64 {
        self.store().batch() + 1
    }

    /// Returns once the commit that captured batch `ticket` (or a later one)
    /// is durable: at once when one already is, after the commit under way
    /// when that one covers it, else by committing.
    fn commit_through(&self, ticket: u64) -> Result<()> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        loop {
            let mut running = self.wait_commit_idle();
            if self.store().durable_batch() >= ticket {
                return Ok(());
            }
            running.value = true;
            drop(running);
            let done = self.run_commit();
            self.end_commit();
            done?;
        }
    }

    /// The commit flag once no commit runs (still clear; the caller may set it).
    fn wait_commit_idle(&self) -> MutexGuard<'_, WatchedState<bool>> {
        self.committing.wait_while(|&running| running)
    }

    fn end_commit(&self) {
        self.committing.update(|running| {
            *running = false;
            true
        });
    }

    /// Writes one commit of every change so far, once no copy-out is in
    /// flight; the caller holds the commit flag.
    fn run_commit(&self) -> Result<()> {
        let mut store = self.store();
        self.wait_no_copies();
        let in_place = !store.commit_mode().journaled();
        let Some(mut work) = store.begin_commit()? else {
            return Ok(());
        };
        if in_place {
            let written = work.write(&*self.cow);
            return store.finish_commit(work, written);
        }
        drop(store);
        let written = work.write(&*self.cow);
        self.store().finish_commit(work, written)
    }

    /// Waits until no copy-out is in flight (called under the metadata lock,
    /// so none can start).
    fn wait_no_copies(&self) {
        drop(self.copies.wait_while(|&copies| copies > 0));
    }

    /// Runs `f` on the store with the commit flag held and no copy-out in
    /// flight, the store allowed to commit by itself meanwhile.
    fn with_store_committing<T>(
        &self,
        f: impl FnOnce(&mut SharedStore<Arc<D>>) -> Result<T>,
    ) -> Result<T> {
        let mut running = self.wait_commit_idle();
        running.value = true;
        drop(running);
        let mut store = self.store();
        self.wait_no_copies();
        store.set_auto_commit(true);
        let result = f(&mut store);
        store.set_auto_commit(false);
        drop(store);
        self.end_commit();
        result
    }

    /// Checkpoints when the store ran full while freed chunks wait for one;
    /// returns whether it did (the caller then tries again).
    fn reclaim(&self, error: &Error) -> Result<bool> {
        if !matches!(error, Error::StoreFull { .. }) || self.pending_frees() == 0 {
            return Ok(false);
        }
        self.checkpoint()?;
        Ok(true)
    }

    /// Reads the origin at byte `offset`; no lock is taken.
    pub fn origin_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_span(offset, buf.len())?;
        let len = buf.len();
        self.origin
            .read_at(buf, offset, &|| format!("{len} bytes of the origin"))
    }

    /// Writes `data` to the origin at byte `offset` once every chunk it touches
    /// is copied out for the snapshots that still see it, and committed. A
    /// write whose copy-outs pass the journal's transaction bound copies and
    /// commits them in steps, each within the bound, holding every chunk of
    /// the write throughout; the origin is written after the last step.
    pub fn origin_write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_span(offset, data.len())?;
        let Some((first, count)) = self.chunk_range(offset, data.len()) else {
            return Ok(());
        };
        let _gate = self.gate.read().unwrap_or_else(|e| e.into_inner());
        let _chunks = self.locks.lock(first, count, LockMode::Exclusive);
        let end = first + count;
        let mut at = first;
        let mut reclaimed = false;
        loop {
            match self.copy_out_step(at, end) {
                Ok(step) if step.next == end => {
                    let ticket = step
                        .ticket
                        .or_else(|| self.snapshot_written_since_commit(first, count));
                    if let Some(ticket) = ticket {
                        self.commit_through(ticket)?;
                    }
                    break;
                }
                Ok(step) => {
                    at = step.next;
                    if let Some(ticket) = step.ticket {
                        self.commit_through(ticket)?;
                    }
                }
                Err(e) if !reclaimed && self.reclaim(&e)? => reclaimed = true,
                Err(e) => return Err(e),
            }
        }
        self.origin.write_at(data, offset)
    }

    /// Copies out chunks from `at` on (up to `end`) for the snapshots that
    /// still see them, as many as one transaction holds: plans under the
    /// metadata lock, copies outside it.
    fn copy_out_step(&self, at: u64, end: u64) -> Result<CopyStep> {
        let mut scratch = self.take_scratch();
        let planned = self.plan_copy_outs(at, end, &mut scratch.plans);
        let copied = if scratch.plans.is_empty() {
            Ok(())
        } else {
            self.copy_runs(&mut scratch)
        };
        self.end_copy();
        self.give_back(scratch);
        if copied.is_err() {
            self.store().fail();
        }
        let step = planned?;
        copied?;
        Ok(step)
    }

    /// Records the copy-outs of chunks from `at` on under the metadata lock,
    /// stopping at `end` or where the changes so far approach the journal's
    /// transaction bound; counts one copy in flight (ended by
    /// [`Engine::end_copy`] whatever happens). Plans made before an error are
    /// kept, so that their data is still copied before any commit can name it.
    fn plan_copy_outs(&self, at: u64, end: u64, plans: &mut Vec<(u64, u64)>) -> Result<CopyStep> {
        plans.clear();
        let mut store = self.store();
        self.copies.lock().value += 1;
        let next = store.plan_copy_outs(at, end, plans)?;
        let commit = !plans.is_empty() || next < end;
        Ok(CopyStep {
            next,
            ticket: commit.then(|| store.batch() + 1),
        })
    }

    fn end_copy(&self) {
        self.copies.update(|copies| {
            *copies -= 1;
            *copies == 0
        });
    }

    /// Copies each planned origin chunk to its COW chunk, a run of chunks
    /// consecutive on both devices in one read and one write.
    fn copy_runs(&self, scratch: &mut Scratch) -> Result<()> {
        let cb = self.chunk_bytes;
        let origin_bytes = self.origin.size();
        let mut i = 0;
        while i < scratch.plans.len() {
            let (origin, cow) = scratch.plans[i];
            let mut n = 1;
            while scratch
                .plans
                .get(i + n)
                .is_some_and(|&(o, c)| o == origin + n as u64 && c == cow + n as u64)
            {
                n += 1;
            }
            let len = n * cb as usize;
            if scratch.data.len() < len {
                scratch.data.resize(len, 0);
            }
            let data = &mut scratch.data[..len];
            let start = origin * cb;
            let present = (origin_bytes - start).min(len as u64) as usize;
            data[present..].fill(0);
            self.origin.read_at(&mut data[..present], start, &|| {
                format!("origin chunks {origin}..{}", origin + n as u64)
            })?;
            self.cow.write_at(data, cow * cb)?;
            i += n;
        }
        Ok(())
    }

    /// Reads snapshot `id`'s view at byte `offset` into `buf`.
    pub fn snapshot_read(&self, id: u32, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_span(offset, buf.len())?;
        let Some((first, count)) = self.chunk_range(offset, buf.len()) else {
            return Ok(());
        };
        let _chunks = self.locks.lock(first, count, LockMode::Shared);
        let cb = self.chunk_bytes;
        let mut at = offset;
        let mut done = 0;
        while done < buf.len() {
            let origin = at / cb;
            let within = at % cb;
            let len = ((cb - within) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + len];
            match self.store().resolve(id, origin)? {
                Some(chunk) => self.cow.read_at(out, chunk * cb + within, &|| {
                    format!("COW chunk {chunk} of origin chunk {origin}")
                })?,
                None => self
                    .origin
                    .read_at(out, at, &|| format!("origin chunk {origin}"))?,
            }
            done += len;
            at += len as u64;
        }
        Ok(())
    }

    /// Writes `data` into snapshot `id`'s view at byte `offset`; the records it
    /// makes ride the next commit (committed first when the changes so far
    /// approach the journal's transaction bound). The chunks are planned
    /// under the metadata lock and written outside it.
    pub fn snapshot_write(&self, id: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.check_span(offset, data.len())?;
        let Some((first, count)) = self.chunk_range(offset, data.len()) else {
            return Ok(());
        };
        let _chunks = self.locks.lock(first, count, LockMode::Exclusive);
        if let Some(ticket) = self.snapshot_written_since_commit(first, count) {
            self.commit_through(ticket)?;
        }
        let mut reclaimed = false;
        loop {
            match self.write_snapshot_chunks(id, offset, data) {
                Err(e) if !reclaimed && self.reclaim(&e)? => reclaimed = true,
                done => return done,
            }
        }
    }

    /// The ticket to commit through before the origin chunks `first..first +
    /// count` may be written: the last record change of a snapshot write to
    /// one of them not yet durable, if any. Entries already durable are dropped.
    fn snapshot_written_since_commit(&self, first: u64, count: u64) -> Option<u64> {
        if lock(&self.snapshot_written).is_empty() {
            return None;
        }
        let durable = self.store().durable_batch();
        let mut written = lock(&self.snapshot_written);
        written.retain(|_, ticket| *ticket > durable);
        if written.len() as u64 <= count {
            written
                .iter()
                .filter(|(chunk, _)| (first..first + count).contains(chunk))
                .map(|(_, ticket)| *ticket)
                .max()
        } else {
            (first..first + count)
                .filter_map(|chunk| written.get(&chunk).copied())
                .max()
        }
    }

    /// One try of [`Engine::snapshot_write`]: plans every chunk, then writes
    /// the chunks planned (even when a later one failed to plan, so that no
    /// record names a chunk never written).
    fn write_snapshot_chunks(&self, id: u32, offset: u64, data: &[u8]) -> Result<()> {
        let wants_commit = {
            let store = self.store();
            store.wants_commit().then(|| store.batch() + 1)
        };
        if let Some(ticket) = wants_commit {
            self.commit_through(ticket)?;
        }
        let mut scratch = self.take_scratch();
        let planned = self.plan_snapshot_chunks(id, offset, data.len(), &mut scratch.targets);
        let written = self.write_planned(offset, data, &mut scratch);
        self.end_copy();
        self.give_back(scratch);
        if written.is_err() {
            self.store().fail();
        }
        planned.and(written)
    }

    /// Plans the chunks of a snapshot write under the metadata lock, counting
    /// one copy in flight (ended by the caller).
    fn plan_snapshot_chunks(
        &self,
        id: u32,
        offset: u64,
        len: usize,
        targets: &mut Vec<(u64, Fill)>,
    ) -> Result<()> {
        targets.clear();
        let mut store = self.store();
        self.copies.lock().value += 1;
        let cb = self.chunk_bytes;
        let ticket = store.batch() + 1;
        for origin in offset / cb..(offset + len as u64).div_ceil(cb) {
            let (target, fill) = store.plan_snapshot_chunk(id, origin)?;
            targets.push((target, fill));
            if fill != Fill::Nothing {
                lock(&self.snapshot_written).insert(origin, ticket);
            }
        }
        Ok(())
    }

    /// Writes `data` at byte `offset` of the snapshot into the chunks planned,
    /// filling a chunk written in part from its old content first.
    fn write_planned(&self, offset: u64, data: &[u8], scratch: &mut Scratch) -> Result<()> {
        let cb = self.chunk_bytes;
        let mut done = 0;
        for &(target, fill) in &scratch.targets {
            let at = offset + done as u64;
            let within = at % cb;
            let len = ((cb - within) as usize).min(data.len() - done);
            let part = &data[done..done + len];
            if fill == Fill::Nothing || len as u64 == cb {
                self.cow.write_at(part, target * cb + within)?;
            } else {
                scratch.data.clear();
                scratch.data.resize(cb as usize, 0);
                match fill {
                    Fill::Cow(from) => self.cow.read_chunk(from, &mut scratch.data)?,
                    Fill::Origin(from) => self.read_origin_chunk(from, &mut scratch.data)?,
                    Fill::Nothing => unreachable!("written directly above"),
                }
                scratch.data[within as usize..within as usize + len].copy_from_slice(part);
                self.cow.write_chunk(target, &scratch.data)?;
            }
            done += len;
        }
        Ok(())
    }

    /// Reads origin chunk `origin` into `buf` (one chunk), zero-padded past
    /// the origin's end.
    fn read_origin_chunk(&self, origin: u64, buf: &mut [u8]) -> Result<()> {
        let start = origin * self.chunk_bytes;
        let present = (self.origin.size() - start).min(self.chunk_bytes) as usize;
        buf[present..].fill(0);
        self.origin.read_at(&mut buf[..present], start, &|| {
            format!("origin chunk {origin}")
        })
    }

    /// The origin chunks `len` bytes at `offset` touch, as (first, count).
    fn chunk_range(&self, offset: u64, len: usize) -> Option<(u64, u64)> {
        if len == 0 {
            return None;
        }
        let first = offset / self.chunk_bytes;
        let last = (offset + len as u64 - 1) / self.chunk_bytes;
        Some((first, last - first + 1))
    }

    fn check_span(&self, offset: u64, len: usize) -> Result<()> {
        check_origin_span(&*self.origin, offset, len)
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give_back(&self, scratch: Scratch) {
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(scratch);
    }
}

/// A value behind a mutex, with a condvar to wait on it that is signalled
/// only when some thread waits (a wake is a system call even with no waiter,
/// and the I/O path changes these values on every request).
#[derive(Debug)]
struct Watched<T> {
    state: Mutex<WatchedState<T>>,
    changed: Condvar,
}

/// The value of a [`Watched`] and how many threads wait on it.
#[derive(Debug)]
struct WatchedState<T> {
    value: T,
    waiting: u32,
}

impl<T> Watched<T> {
    fn new(value: T) -> Self {
        Watched {
            state: Mutex::new(WatchedState { value, waiting: 0 }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WatchedState<T>> {
        lock(&self.state)
    }

    /// The locked value once `busy` no longer holds of it.
    fn wait_while(&self, busy: impl Fn(&T) -> bool) -> MutexGuard<'_, WatchedState<T>> {
        let mut state = self.lock();
        while busy(&state.value) {
            state.waiting += 1;
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
        state
    }

    /// Changes the value with `f`, and wakes the waiters if `f` says so and
    /// there are any.
    fn update(&self, f: impl FnOnce(&mut T) -> bool) {
        let mut state = self.lock();
        let wake = f(&mut state.value) && state.waiting > 0;
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }
}

/// Locks `mutex`, taking over a poisoned one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
