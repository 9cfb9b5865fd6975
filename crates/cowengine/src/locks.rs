//! Per-origin-chunk locks for the thread-safe engine (dm-snapshot's pending
//! exceptions and tracked chunks): an origin write holds its chunks exclusively
//! from the copy-out until the origin is written, a snapshot write holds its
//! chunks exclusively, and a snapshot read that resolves to the origin holds
//! them shared while it reads, so it never sees an origin overwrite whose
//! copy-out is not durable yet.
//!
//! Chunks map onto a fixed set of stripes (chunk `c` on stripe `c % stripes`),
//! so locking never allocates; two chunks on one stripe merely wait for each
//! other. A range takes its stripes in ascending order, so two ranges never
//! deadlock; a thread holds one [`ChunkGuard`] at a time.

use std::sync::{Condvar, Mutex, MutexGuard};

/// How a range is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (snapshot reads of the origin).
    Shared,
    /// One holder (origin writes, snapshot writes).
    Exclusive,
}

#[derive(Debug, Default)]
struct Stripe {
    state: Mutex<Holders>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct Holders {
    shared: u32,
    exclusive: bool,
    /// Threads waiting on the stripe's condvar: a release wakes them only
    /// when there are some (a wake is a system call even with no waiter).
    waiting: u32,
}

/// The lock table of one store.
#[derive(Debug)]
pub struct ChunkLocks {
    stripes: Box<[Stripe]>,
}

/// A held range of chunks; dropping it releases them.
#[derive(Debug)]
#[must_use = "the chunks are released when the guard is dropped"]
pub struct ChunkGuard<'a> {
    locks: &'a ChunkLocks,
    first: u64,
    count: u64,
    mode: LockMode,
}

impl ChunkLocks {
    /// A table of `stripes` stripes (at least one).
    pub fn new(stripes: usize) -> Self {
        ChunkLocks {
            stripes: (0..stripes.max(1)).map(|_| Stripe::default()).collect(),
        }
    }

    /// Takes chunks `first..first + count` in `mode`, waiting for holders that
    /// conflict. An empty range holds nothing.
    pub fn lock(&self, first: u64, count: u64, mode: LockMode) -> ChunkGuard<'_> {
        self.for_each_stripe(first, count, |stripe| {
            let mut holders = lock(&stripe.state);
            while conflicts(&holders, mode) {
                holders.waiting += 1;
                holders = stripe
                    .released
                    .wait(holders)
                    .unwrap_or_else(|e| e.into_inner());
                holders.waiting -= 1;
            }
            match mode {
                LockMode::Shared => holders.shared += 1,
                LockMode::Exclusive => holders.exclusive = true,
            }
        });
        ChunkGuard {
            locks: self,
            first,
            count,
            mode,
        }
    }

    /// Calls `f` on every stripe chunks `first..first + count` map to, once
    /// each, in ascending stripe order.
    fn for_each_stripe(&self, first: u64, count: u64, mut f: impl FnMut(&Stripe)) {
        let n = self.stripes.len() as u64;
        if count >= n {
            self.stripes.iter().for_each(f);
            return;
        }
        let start = first % n;
        let end = start + count;
        if end <= n {
            self.stripes[start as usize..end as usize]
                .iter()
                .for_each(f);
        } else {
            self.stripes[..(end - n) as usize].iter().for_each(&mut f);
            self.stripes[start as usize..].iter().for_each(f);
        }
    }
}

fn lock(state: &Mutex<Holders>) -> MutexGuard<'_, Holders> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn conflicts(holders: &Holders, mode: LockMode) -> bool {
    match mode {
        LockMode::Shared => holders.exclusive,
        LockMode::Exclusive => holders.exclusive || holders.shared > 0,
    }
}

impl ChunkGuard<'_> {
    /// The first chunk held.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// How many chunks are held.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Drop for ChunkGuard<'_> {
    fn drop(&mut self) {
        let mode = self.mode;
        self.locks
            .for_each_stripe(self.first, self.count, |stripe| {
                let mut holders = lock(&stripe.state);
                match mode {
                    LockMode::Shared => holders.shared -= 1,
                    LockMode::Exclusive => holders.exclusive = false,
                }
                let waiting = holders.waiting > 0;
                drop(holders);
                if waiting {
                    stripe.released.notify_all();
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn readers_share_and_writers_exclude() {
        let locks = ChunkLocks::new(64);
        let read = locks.lock(5, 1, LockMode::Shared);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            s.spawn(|| {
                let _second_reader = locks.lock(5, 1, LockMode::Shared);
                tx.send("reader").unwrap();
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("reader"));
        });
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            s.spawn(|| {
                let _writer = locks.lock(5, 1, LockMode::Exclusive);
                tx.send("writer").unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(100)).is_err(),
                "writer got in beside a reader"
            );
            drop(read);
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("writer"));
        });
    }

    #[test]
    fn other_chunks_and_empty_ranges_do_not_wait() {
        let locks = ChunkLocks::new(64);
        let held = locks.lock(10, 4, LockMode::Exclusive);
        assert_eq!((held.first(), held.count()), (10, 4));
        let free = locks.lock(14, 50, LockMode::Exclusive);
        drop(free);
        let _empty = locks.lock(11, 0, LockMode::Exclusive);
        let _shared = locks.lock(0, 10, LockMode::Shared);
    }

    #[test]
    fn a_range_waits_for_any_chunk_it_overlaps_even_across_the_wrap() {
        let locks = ChunkLocks::new(8);
        let held = locks.lock(13, 1, LockMode::Exclusive);
        let (tx, rx) = mpsc::channel();
        thread::scope(|s| {
            s.spawn(|| {
                let _range = locks.lock(7, 7, LockMode::Shared);
                tx.send(()).unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(100)).is_err(),
                "chunks 7..14 (stripes 7, 0..6) went past chunk 13"
            );
            drop(held);
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        });
        let _all = locks.lock(3, 100, LockMode::Exclusive);
    }

    #[test]
    fn exclusive_holders_never_overlap_under_contention() {
        let locks = ChunkLocks::new(16);
        let inside = AtomicU32::new(0);
        let most = AtomicU32::new(0);
        thread::scope(|s| {
            for t in 0..4u64 {
                let (locks, inside, most) = (&locks, &inside, &most);
                s.spawn(move || {
                    for i in 0..2000u64 {
                        let first = (t * 7 + i * 3) % 20;
                        let _guard = locks.lock(first, 1 + i % 5, LockMode::Exclusive);
                        if (first..first + 1 + i % 5).contains(&9) {
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two holders of chunk 9 at once"
        );
    }
}
