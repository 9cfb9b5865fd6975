//! One measurement of the engine bench, run in a child process of its own
//! (`cargo xtask engine-cell`, hidden) so that its peak memory is its own:
//! origin writes of 4 KiB at random chunks of a filled origin image, each
//! copied out (data and record) for the snapshots that still see the origin
//! there, with the snapshots taken at even steps of the run; commits either
//! every `commit_every` writes through [`SharedStore`] (each batch of writes
//! through `origin_write_batch`, which commits, or with `--per-write` each
//! write through `origin_write` and a commit after) or, with `--threads`,
//! the engine's own commit of each write's copy-outs through [`Engine`] from
//! several threads. The figures go to a JSON file the parent reads.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use cowengine::{CreateOptions, Engine, SharedStore};
use cowfmt::blockdev::BlockDev;
use cowfmt::memdev::MemDev;
use cowfmt::shared::geometry::default_journal_chunks;
use cowfmt::Device;
use serde::{Deserialize, Serialize};

use crate::prng::SplitMix64;

/// Bytes per chunk (and per origin write).
pub const CHUNK_BYTES: u64 = 4096;

/// Arguments of `cargo xtask engine-cell`.
#[derive(Debug, Clone, Args)]
pub struct CellArgs {
    /// Folder for the origin and COW images (created, and emptied of them after).
    #[arg(long)]
    pub dir: PathBuf,
    /// Snapshots taken at even steps of the run.
    #[arg(long)]
    pub snapshots: u32,
    /// Origin writes measured.
    #[arg(long)]
    pub writes: u64,
    /// Writes per commit through `SharedStore` (ignored with --threads).
    #[arg(long, default_value_t = 1)]
    pub commit_every: u64,
    /// Writer threads through `Engine`, which commits each write's copy-outs
    /// itself; 0 = one caller through `SharedStore`.
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Commit through the journal (the default size for the COW image) rather
    /// than in place (no journal).
    #[arg(long)]
    pub journal: bool,
    /// Commit with `SharedStore::commit`, which also syncs the origin, rather
    /// than with the metadata commit alone (what `Engine` makes of each
    /// transaction).
    #[arg(long)]
    pub origin_sync: bool,
    /// Each write through `SharedStore::origin_write` (the origin written
    /// before the copy-out is committed: not crash-safe) rather than the
    /// writes between two commits through `SharedStore::origin_write_batch`.
    #[arg(long)]
    pub per_write: bool,
    /// Both devices in memory: the engine's own cost, no kernel I/O.
    #[arg(long)]
    pub memory: bool,
    /// Where the figures go (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// What one cell measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellFigures {
    /// Wall time of the writes and their commits (images filled and synced before).
    pub seconds: f64,
    /// Of which in the bench's commits (the `SharedStore` runs only).
    pub commit_seconds: f64,
    /// CPU time (user and system, every thread) over the same span: the
    /// engine's own cost, whatever else the machine runs.
    pub cpu_seconds: f64,
    /// Commits made by the bench (through `SharedStore`; 1, the last,
    /// through `Engine`).
    pub commits: u64,
    /// Chunks in use in the data range at the end: copies and tree blocks
    /// (the `SharedStore` runs only).
    pub used_chunks: u64,
    /// Node levels above the leaves at the end.
    pub tree_level: u32,
    /// Journal chunks the store was formatted with (0: in-place commit).
    pub journal_chunks: u64,
    /// How the engine says it commits (`CommitMode`'s text).
    pub commit_mode: String,
    /// Whether that is through the journal.
    pub journaled: bool,
    /// Transactions the engine wrote (journal transactions or in-place
    /// commits): more than the bench's commits when the engine committed by
    /// itself at the transaction bound.
    pub transactions: u64,
    /// Commits asked of the engine (through `Engine`: each write that copied
    /// out); with `transactions`, how well group commit shared them.
    pub commit_requests: u64,
    /// Origin chunks (the origin image's size).
    pub origin_chunks: u64,
    /// COW chunks (the COW image's size).
    pub cow_chunks: u64,
}

/// Runs one cell and writes its figures to `args.out`.
pub fn run(args: &CellArgs) -> Result<()> {
    if args.snapshots == 0 || args.writes == 0 || args.commit_every == 0 {
        bail!("engine-cell: --snapshots, --writes and --commit-every must be at least 1");
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("{}: cannot create", args.dir.display()))?;
    let origin_path = args.dir.join("origin.img");
    let cow_path = args.dir.join("cow.img");
    let figures = measure(args, &origin_path, &cow_path);
    for path in [&origin_path, &cow_path] {
        let _ = fs::remove_file(path);
    }
    let figures = figures?;
    fs::write(&args.out, serde_json::to_string(&figures)? + "\n")
        .with_context(|| format!("{}: cannot write", args.out.display()))
}

fn measure(args: &CellArgs, origin_path: &Path, cow_path: &Path) -> Result<CellFigures> {
    let origin_chunks = args.writes;
    // Every write may copy out once, plus the tree and the reserved chunks.
    let cow_data_chunks = args.writes + args.writes / 8 + 4096;
    let journal = if args.journal {
        default_journal_chunks(cow_data_chunks * CHUNK_BYTES * 8 / 7, CHUNK_BYTES)
    } else {
        0
    };
    let cow_chunks = cow_data_chunks + journal + 64;
    let options = CreateOptions {
        chunk_sectors: CHUNK_BYTES / 512,
        journal_chunks: journal,
    };
    let mut figures = CellFigures {
        seconds: 0.0,
        commit_seconds: 0.0,
        cpu_seconds: 0.0,
        commits: 0,
        used_chunks: 0,
        tree_level: 0,
        journal_chunks: journal,
        commit_mode: String::new(),
        journaled: false,
        transactions: 0,
        commit_requests: 0,
        origin_chunks,
        cow_chunks,
    };
    if args.memory {
        let origin = MemDev::from_bytes("origin (memory)", touched(origin_chunks));
        let cow = MemDev::from_bytes("COW (memory)", touched(cow_chunks));
        run_on(cow, origin, &options, args, &mut figures)?;
    } else {
        let origin = filled(origin_path, origin_chunks, true)?;
        let cow = filled(cow_path, cow_chunks, false)?;
        run_on(cow, origin, &options, args, &mut figures)?;
    }
    Ok(figures)
}

/// Formats `cow` and runs the writes of `args` on it.
fn run_on<D: BlockDev>(
    cow: D,
    origin: D,
    options: &CreateOptions,
    args: &CellArgs,
    figures: &mut CellFigures,
) -> Result<()> {
    if args.threads == 0 {
        let mut store = SharedStore::create(cow, origin, options)?;
        store.cow_device().sync()?;
        flush_all()?;
        if args.per_write {
            per_write_writes(&mut store, args, figures)?;
        } else {
            batched_writes(&mut store, args, figures)?;
        }
        figures.used_chunks = store.geometry().data_chunks() - store.free_chunks();
        figures.tree_level = store.tree_level();
        figures.commit_mode = store.commit_mode().to_string();
        figures.journaled = store.commit_mode().journaled();
        figures.transactions = store.transactions();
        figures.commit_requests = figures.commits;
        store.close()?;
    } else {
        let engine = Engine::create(cow, origin, options)?;
        engine.cow_device().sync()?;
        flush_all()?;
        concurrent_writes(&engine, args, figures)?;
        figures.tree_level = engine.header().tree_level;
        figures.commit_mode = engine.commit_mode().to_string();
        figures.journaled = engine.commit_mode().journaled();
        let stats = engine.commit_stats();
        figures.transactions = stats.written;
        figures.commit_requests = stats.requested;
        engine.close()?;
    }
    Ok(())
}

/// Creates the image at `path` with `chunks` chunks, every byte written (a
/// block device has no holes to allocate on first write): each origin chunk
/// starts with its number, the COW is zeros. Written one chunk per write, so
/// the page cache holds chunk-sized pages as the engine's own writes leave
/// them (a file written in large writes is cached in large folios, and a
/// 4 KiB write into a large folio costs the kernel the whole folio's buffers).
fn filled(path: &Path, chunks: u64, pattern: bool) -> Result<Device> {
    if path.exists() {
        fs::remove_file(path).with_context(|| format!("{}: cannot remove", path.display()))?;
    }
    let device = Device::create_or_extend(path, chunks * CHUNK_BYTES)?;
    let mut buf = vec![0u8; CHUNK_BYTES as usize];
    for chunk in 0..chunks {
        if pattern {
            buf[..8].copy_from_slice(&chunk.to_le_bytes());
        }
        device.write_chunk(chunk, &buf)?;
    }
    device.sync()?;
    Ok(device)
}

/// `chunks` zeroed chunks of memory, every page written once so that no
/// page fault of first touch is measured.
fn touched(chunks: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; (chunks * CHUNK_BYTES) as usize];
    for page in bytes.chunks_mut(4096) {
        page[0] = std::hint::black_box(0);
    }
    bytes
}

/// Every measured run starts with no dirty pages of earlier work.
fn flush_all() -> Result<()> {
    let status = std::process::Command::new("sync").status()?;
    if !status.success() {
        bail!("sync ended with {status}");
    }
    Ok(())
}

/// Whether the `i`th write of `writes` is where snapshot `taken` (of
/// `snapshots`) is due.
fn snapshot_due(i: u64, writes: u64, taken: u32, snapshots: u32) -> bool {
    taken < snapshots && i >= writes * u64::from(taken) / u64::from(snapshots)
}

/// One caller through `SharedStore`, each write through `origin_write`,
/// committing every `commit_every` writes and at the end.
fn per_write_writes<D: BlockDev>(
    store: &mut SharedStore<D>,
    args: &CellArgs,
    figures: &mut CellFigures,
) -> Result<()> {
    let mut rng = SplitMix64::new(u64::from(args.snapshots) ^ args.commit_every << 8);
    let mut data = vec![0u8; CHUNK_BYTES as usize];
    let mut in_commits = Duration::ZERO;
    let mut taken = 0;
    let started = Instant::now();
    let cpu_started = cpu_time();
    for i in 0..args.writes {
        if snapshot_due(i, args.writes, taken, args.snapshots) {
            store.create_snapshot(None)?;
            taken += 1;
        }
        let chunk = rng.below(figures.origin_chunks);
        data[..8].copy_from_slice(&i.to_le_bytes());
        store.origin_write(chunk * CHUNK_BYTES, &data)?;
        let last = i + 1 == args.writes;
        if (i + 1) % args.commit_every == 0 || last {
            let commit_started = Instant::now();
            commit(store, args.origin_sync)?;
            in_commits += commit_started.elapsed();
            figures.commits += 1;
        }
    }
    figures.seconds = started.elapsed().as_secs_f64();
    figures.cpu_seconds = (cpu_time() - cpu_started).as_secs_f64();
    figures.commit_seconds = in_commits.as_secs_f64();
    Ok(())
}

/// One caller through `SharedStore`, the writes between two commits (every
/// `commit_every` writes, at the end, and before each snapshot) through one
/// `origin_write_batch`, which commits; with `origin_sync` the origin is
/// synced after each batch. The time in commits is the time in the batches.
fn batched_writes<D: BlockDev>(
    store: &mut SharedStore<D>,
    args: &CellArgs,
    figures: &mut CellFigures,
) -> Result<()> {
    let mut rng = SplitMix64::new(u64::from(args.snapshots) ^ args.commit_every << 8);
    let per_batch = args.commit_every.min(args.writes) as usize;
    let mut offsets: Vec<u64> = Vec::with_capacity(per_batch);
    let mut data: Vec<u8> = Vec::with_capacity(per_batch * CHUNK_BYTES as usize);
    let mut in_batches = Duration::ZERO;
    let mut taken = 0;
    let started = Instant::now();
    let cpu_started = cpu_time();
    for i in 0..args.writes {
        if snapshot_due(i, args.writes, taken, args.snapshots) {
            if !offsets.is_empty() {
                in_batches += write_batch(store, &offsets, &data, args)?;
                figures.commits += 1;
                offsets.clear();
                data.clear();
            }
            store.create_snapshot(None)?;
            taken += 1;
        }
        let chunk = rng.below(figures.origin_chunks);
        offsets.push(chunk * CHUNK_BYTES);
        let at = data.len();
        data.resize(at + CHUNK_BYTES as usize, 0);
        data[at..at + 8].copy_from_slice(&i.to_le_bytes());
        let last = i + 1 == args.writes;
        if (i + 1) % args.commit_every == 0 || last {
            in_batches += write_batch(store, &offsets, &data, args)?;
            figures.commits += 1;
            offsets.clear();
            data.clear();
        }
    }
    figures.seconds = started.elapsed().as_secs_f64();
    figures.cpu_seconds = (cpu_time() - cpu_started).as_secs_f64();
    figures.commit_seconds = in_batches.as_secs_f64();
    Ok(())
}

/// Writes one batch (`offsets[i]` gets the `i`th chunk of `data`) and
/// returns its time.
fn write_batch<D: BlockDev>(
    store: &mut SharedStore<D>,
    offsets: &[u64],
    data: &[u8],
    args: &CellArgs,
) -> Result<Duration> {
    let started = Instant::now();
    let writes: Vec<(u64, &[u8])> = offsets
        .iter()
        .copied()
        .zip(data.chunks(CHUNK_BYTES as usize))
        .collect();
    store.origin_write_batch(&writes)?;
    if args.origin_sync {
        store.origin_device().sync()?;
    }
    Ok(started.elapsed())
}

/// Makes the changes so far durable: the metadata commit (through the
/// journal or in place, with the copied data synced first), as `Engine`
/// makes each transaction, and with `origin_sync` the origin's sync after it
/// (`SharedStore::commit`).
fn commit<D: BlockDev>(store: &mut SharedStore<D>, origin_sync: bool) -> Result<()> {
    if origin_sync {
        return Ok(store.commit()?);
    }
    if let Some(mut work) = store.begin_commit()? {
        let written = work.write(store.cow_device());
        store.finish_commit(work, written)?;
    }
    Ok(())
}

/// `args.threads` writers through `Engine`; the snapshots are taken between
/// rounds of writes, while no writer runs.
fn concurrent_writes<D: BlockDev>(
    engine: &Engine<D>,
    args: &CellArgs,
    figures: &mut CellFigures,
) -> Result<()> {
    let threads = u64::from(args.threads);
    let origin_chunks = figures.origin_chunks;
    let started = Instant::now();
    let cpu_started = cpu_time();
    for round in 0..u64::from(args.snapshots) {
        engine.create_snapshot(None)?;
        let from = args.writes * round / u64::from(args.snapshots);
        let to = args.writes * (round + 1) / u64::from(args.snapshots);
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || -> Result<()> {
                        let mut rng = SplitMix64::new(round << 16 | t);
                        let mut data = vec![0u8; CHUNK_BYTES as usize];
                        let mut i = from + t;
                        while i < to {
                            let chunk = rng.below(origin_chunks);
                            data[..8].copy_from_slice(&i.to_le_bytes());
                            engine.origin_write(chunk * CHUNK_BYTES, &data)?;
                            i += threads;
                        }
                        Ok(())
                    })
                })
                .collect();
            for worker in workers {
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("an engine writer thread panicked"))??;
            }
            Ok(())
        })?;
    }
    engine.commit()?;
    figures.commits = 1;
    figures.seconds = started.elapsed().as_secs_f64();
    figures.cpu_seconds = (cpu_time() - cpu_started).as_secs_f64();
    Ok(())
}

/// User and system time of this process so far, every thread included.
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live local of the type getrusage writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_usec).unwrap_or(0) * 1000,
        )
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
