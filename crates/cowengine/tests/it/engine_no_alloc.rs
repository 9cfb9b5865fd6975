//! The engine's hot path allocates nothing once warm: origin reads, origin
//! writes to chunks already copied out, and snapshot reads, counted by an
//! allocator that counts the allocations of the measuring thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use cowengine::{CreateOptions, Engine};
use cowfmt::MemDev;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if MEASURING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; counting
// touches only an atomic and a const-initialised thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `layout` is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHUNK: u64 = 4096;
const ORIGIN_CHUNKS: u64 = 256;

#[test]
fn origin_io_and_snapshot_reads_allocate_nothing_once_warm() {
    let engine = Engine::create(
        MemDev::new("mem:cow", 1024 * CHUNK),
        MemDev::new("mem:origin", ORIGIN_CHUNKS * CHUNK),
        &CreateOptions {
            chunk_sectors: CHUNK / 512,
            journal_chunks: 4,
        },
    )
    .unwrap();
    engine.create_snapshot(None).unwrap();
    let data = vec![7u8; 3 * CHUNK as usize];
    let mut buf = vec![0u8; 3 * CHUNK as usize];
    for c in 0..ORIGIN_CHUNKS {
        engine
            .origin_write(c * CHUNK, &data[..CHUNK as usize])
            .unwrap();
        engine
            .snapshot_read(0, c * CHUNK, &mut buf[..CHUNK as usize])
            .unwrap();
    }

    MEASURING.with(|m| m.set(true));
    for i in 0..2000u64 {
        let c = (i * 37) % (ORIGIN_CHUNKS - 3);
        engine
            .origin_write(c * CHUNK + 100, &data[..2 * CHUNK as usize])
            .unwrap();
        engine.snapshot_read(0, c * CHUNK + 5, &mut buf).unwrap();
        engine.origin_read(c * CHUNK, &mut buf).unwrap();
    }
    MEASURING.with(|m| m.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0);

    MEASURING.with(|m| m.set(true));
    let fresh = vec![1u8; 8];
    MEASURING.with(|m| m.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 1, "the counter counts");
    drop(fresh);
}
