//! The engine's figures for `cowrt serve` under `dd bs=1M`: `cargo xtask
//! engine-seq` writes an origin from start to end in large requests through
//! [`Engine::origin_write`] (the first pass copies every chunk out for the
//! snapshots, the rewrite copies nothing), as the ublk origin device does with
//! each request, and reports the CPU time per chunk of each pass and the
//! device calls (reads, writes, syncs) per request. The devices are image
//! files in a folder of the caller's choosing, or memory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use cowengine::{CreateOptions, Engine};
use cowfmt::blockdev::BlockDev;
use cowfmt::memdev::MemDev;
use cowfmt::shared::geometry::default_journal_chunks;
use cowfmt::Device;
use serde::{Deserialize, Serialize};

use crate::bench::BenchResult;
use crate::engine_cell::cpu_time;

/// Arguments of `cargo xtask engine-seq`.
#[derive(Debug, Clone, Args)]
pub struct SeqArgs {
    /// Folder for the origin and COW images (removed after each run).
    #[arg(long, default_value = "target/bench/engine-seq")]
    pub dir: PathBuf,
    /// Origin size in MiB.
    #[arg(long, default_value_t = 64)]
    pub origin_mib: u64,
    /// Bytes per request in KiB (`dd bs=1M`: 1024).
    #[arg(long, default_value_t = 1024)]
    pub request_kib: u64,
    /// Chunk size in KiB.
    #[arg(long, default_value_t = 4)]
    pub chunk_kib: u64,
    /// Snapshots taken before the first pass.
    #[arg(long, default_value_t = 1)]
    pub snapshots: u32,
    /// Runs; the median run (by first-write CPU time) is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Both devices in memory: the engine's own cost, no kernel I/O.
    #[arg(long)]
    pub memory: bool,
    /// Only the first pass (the rewrite reported as zeros): for profilers.
    #[arg(long)]
    pub first_write_only: bool,
    /// Also write the figures of the median run here (JSON).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What one pass over the origin cost.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PassFigures {
    /// Wall seconds of the pass (its final commit included).
    pub seconds: f64,
    /// CPU seconds (user and system) of the pass.
    pub cpu_seconds: f64,
    /// CPU microseconds per origin chunk written.
    pub cpu_us_per_chunk: f64,
    /// Device reads per request (both devices).
    pub reads_per_request: f64,
    /// Device writes per request (both devices).
    pub writes_per_request: f64,
    /// Device syncs per request (both devices).
    pub syncs_per_request: f64,
    /// Journal transactions (or in-place commits) written per request.
    pub transactions_per_request: f64,
}

/// One run: the first write and the rewrite.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SeqFigures {
    /// Origin chunks.
    pub chunks: u64,
    /// Requests per pass.
    pub requests: u64,
    /// The pass that copies every chunk out.
    pub first_write: PassFigures,
    /// The pass that finds every chunk covered.
    pub rewrite: PassFigures,
}

/// The figures rows of `cargo xtask bench --only engine`: `runner` (the
/// release xtask) runs `engine-seq` with its defaults (64 MiB, 1 MiB
/// requests, 4 KiB chunks, 1 snapshot) on images under `dir`, `runs` runs;
/// it prints the device calls per request, the rows carry the times.
pub fn bench(runner: &Path, dir: &Path, runs: u32) -> Result<Vec<BenchResult>> {
    let out = dir.join("engine-seq.json");
    let status = std::process::Command::new(runner)
        .arg("engine-seq")
        .arg("--dir")
        .arg(dir.join("seq"))
        .args(["--runs", &runs.to_string()])
        .arg("--json")
        .arg(&out)
        .status()
        .context("cannot run xtask engine-seq")?;
    if !status.success() {
        bail!("xtask engine-seq ended with {status}");
    }
    let text =
        fs::read_to_string(&out).with_context(|| format!("{}: cannot read", out.display()))?;
    let _ = fs::remove_file(&out);
    let figures: SeqFigures = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the figures of engine-seq", out.display()))?;
    let row = |name: &str, p: PassFigures| BenchResult {
        kind: "shared",
        tool: format!("engine 1 snap, 1 MiB sequential requests, {name}"),
        unit: "chunks",
        records: figures.chunks,
        chunk_bytes: 4096,
        cow_chunks: 0,
        origin_chunks: figures.chunks,
        runs: vec![p.seconds],
        wall_seconds: Some(p.seconds),
        records_per_second: Some(figures.chunks as f64 / p.seconds),
        peak_rss_bytes: None,
        target_records_per_second: 0.0,
        memory_budget_bytes: None,
        pass: true,
        note: None,
        cpu_seconds: Some(p.cpu_seconds),
        load_average: None,
        cache: None,
    };
    Ok(vec![
        row("first write", figures.first_write),
        row("rewrite", figures.rewrite),
    ])
}

/// Runs `args.runs` runs and prints the median one.
pub fn run(args: &SeqArgs) -> Result<()> {
    if args.origin_mib == 0 || args.request_kib == 0 || args.runs == 0 || args.snapshots == 0 {
        bail!("engine-seq: --origin-mib, --request-kib, --runs and --snapshots must be at least 1");
    }
    if !(args.request_kib * 1024).is_multiple_of(args.chunk_kib * 1024)
        || !(args.origin_mib * 1024).is_multiple_of(args.request_kib)
    {
        bail!("engine-seq: a request must be whole chunks and the origin whole requests");
    }
    let mut all = Vec::new();
    for i in 1..=args.runs {
        let figures = one_run(args)?;
        println!(
            "run {i}/{}: first write {:.3} s (CPU {:.3} s), rewrite {:.3} s (CPU {:.3} s)",
            args.runs,
            figures.first_write.seconds,
            figures.first_write.cpu_seconds,
            figures.rewrite.seconds,
            figures.rewrite.cpu_seconds
        );
        all.push(figures);
    }
    all.sort_by(|a, b| {
        a.first_write
            .cpu_seconds
            .total_cmp(&b.first_write.cpu_seconds)
    });
    let median = all[all.len() / 2];
    print_figures(args, &median);
    if let Some(path) = &args.json {
        fs::write(path, serde_json::to_string_pretty(&median)? + "\n")
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

fn print_figures(args: &SeqArgs, f: &SeqFigures) {
    let where_ = if args.memory { "memory" } else { "image files" };
    println!(
        "\nengine-seq: {} MiB origin, {} KiB requests, {} KiB chunks, {} snapshot(s), {where_}; median of {}",
        args.origin_mib, args.request_kib, args.chunk_kib, args.snapshots, args.runs
    );
    println!(
        "{:<12} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "pass", "wall s", "CPU s", "CPU us/chunk", "reads/req", "writes/req", "syncs/req", "tx/req"
    );
    for (name, p) in [("first write", f.first_write), ("rewrite", f.rewrite)] {
        println!(
            "{name:<12} {:>8.3} {:>8.3} {:>12.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            p.seconds,
            p.cpu_seconds,
            p.cpu_us_per_chunk,
            p.reads_per_request,
            p.writes_per_request,
            p.syncs_per_request,
            p.transactions_per_request
        );
    }
}

fn one_run(args: &SeqArgs) -> Result<SeqFigures> {
    let chunk_bytes = args.chunk_kib * 1024;
    let origin_bytes = args.origin_mib << 20;
    let chunks = origin_bytes / chunk_bytes;
    let cow_data_chunks = chunks + chunks / 8 + 4096;
    let journal = default_journal_chunks(cow_data_chunks * chunk_bytes * 8 / 7, chunk_bytes);
    let cow_bytes = (cow_data_chunks + journal + 64) * chunk_bytes;
    let options = CreateOptions {
        chunk_sectors: chunk_bytes / 512,
        journal_chunks: journal,
    };
    if args.memory {
        let origin = Counted::new(MemDev::from_bytes(
            "origin (memory)",
            vec![0x5a; origin_bytes as usize],
        ));
        let cow = Counted::new(MemDev::from_bytes(
            "COW (memory)",
            vec![0; cow_bytes as usize],
        ));
        return passes(cow, origin, &options, args, chunks);
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("{}: cannot create", args.dir.display()))?;
    let origin_path = args.dir.join("origin.img");
    let cow_path = args.dir.join("cow.img");
    let result =
        files(&origin_path, &cow_path, origin_bytes, cow_bytes).and_then(|(origin, cow)| {
            passes(
                Counted::new(cow),
                Counted::new(origin),
                &options,
                args,
                chunks,
            )
        });
    for path in [&origin_path, &cow_path] {
        let _ = fs::remove_file(path);
    }
    result
}

/// The origin (every byte written) and the COW image (zeros, every byte
/// written), synced.
fn files(origin: &Path, cow: &Path, origin_bytes: u64, cow_bytes: u64) -> Result<(Device, Device)> {
    let mut out = Vec::new();
    for (path, bytes, fill) in [(origin, origin_bytes, 0x5a), (cow, cow_bytes, 0)] {
        if path.exists() {
            fs::remove_file(path).with_context(|| format!("{}: cannot remove", path.display()))?;
        }
        let device = Device::create_or_extend(path, bytes)?;
        let block = vec![fill; 1 << 20];
        let mut at = 0;
        while at < bytes {
            let n = (bytes - at).min(block.len() as u64) as usize;
            device.write_at(&block[..n], at)?;
            at += n as u64;
        }
        device.sync()?;
        out.push(device);
    }
    let cow = out.pop().expect("two devices");
    let origin = out.pop().expect("two devices");
    Ok((origin, cow))
}

fn passes<D: BlockDev>(
    cow: Counted<D>,
    origin: Counted<D>,
    options: &CreateOptions,
    args: &SeqArgs,
    chunks: u64,
) -> Result<SeqFigures> {
    let engine = Engine::create(cow, origin, options)?;
    for _ in 0..args.snapshots {
        engine.create_snapshot(None)?;
    }
    engine.commit()?;
    let request = vec![0xc3u8; (args.request_kib * 1024) as usize];
    let requests = (args.origin_mib << 20) / request.len() as u64;
    let first_write = pass(&engine, &request, requests, chunks)?;
    let rewrite = if args.first_write_only {
        PassFigures::default()
    } else {
        pass(&engine, &request, requests, chunks)?
    };
    engine.close()?;
    Ok(SeqFigures {
        chunks,
        requests,
        first_write,
        rewrite,
    })
}

/// Writes the origin from start to end in requests of `request.len()` bytes,
/// then commits (a FLUSH).
fn pass<D: BlockDev>(
    engine: &Engine<Counted<D>>,
    request: &[u8],
    requests: u64,
    chunks: u64,
) -> Result<PassFigures> {
    let before = Calls::of(engine);
    let tx_before = engine.commit_stats().written;
    let started = Instant::now();
    let cpu_started = cpu_time();
    for i in 0..requests {
        engine.origin_write(i * request.len() as u64, request)?;
    }
    engine.commit()?;
    let cpu_seconds = (cpu_time() - cpu_started).as_secs_f64();
    let seconds = started.elapsed().as_secs_f64();
    let calls = Calls::of(engine).minus(&before);
    let per = |n: u64| n as f64 / requests as f64;
    Ok(PassFigures {
        seconds,
        cpu_seconds,
        cpu_us_per_chunk: cpu_seconds * 1e6 / chunks as f64,
        reads_per_request: per(calls.reads),
        writes_per_request: per(calls.writes),
        syncs_per_request: per(calls.syncs),
        transactions_per_request: per(engine.commit_stats().written - tx_before),
    })
}

/// Device calls so far, both devices.
#[derive(Debug, Clone, Copy)]
struct Calls {
    reads: u64,
    writes: u64,
    syncs: u64,
}

impl Calls {
    fn of<D: BlockDev>(engine: &Engine<Counted<D>>) -> Calls {
        let (c, o) = (engine.cow_device(), engine.origin_device());
        Calls {
            reads: c.reads.load(Ordering::Relaxed) + o.reads.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed) + o.writes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed) + o.syncs.load(Ordering::Relaxed),
        }
    }

    fn minus(&self, earlier: &Calls) -> Calls {
        Calls {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            syncs: self.syncs - earlier.syncs,
        }
    }
}

/// A device that counts the calls made of it.
#[derive(Debug)]
struct Counted<D> {
    inner: D,
    reads: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl<D> Counted<D> {
    fn new(inner: D) -> Self {
        Counted {
            inner,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        }
    }
}

impl<D: BlockDev> BlockDev for Counted<D> {
    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(
        &self,
        buf: &mut [u8],
        offset: u64,
        what: &dyn Fn() -> String,
    ) -> cowfmt::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_at(buf, offset, what)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> cowfmt::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_at(buf, offset)
    }

    fn sync(&self) -> cowfmt::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync()
    }

    fn zero_range(&self, offset: u64, len: u64) -> cowfmt::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.zero_range(offset, len)
    }
}
