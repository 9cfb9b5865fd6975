//! The shared engine's origin-write throughput: 4 KiB origin writes at random
//! chunks, each copied out for the snapshots that still need it, with the
//! given number of snapshots taken at even steps of the run. Reported in
//! chunks written per second, data included (warm page cache).

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use cowengine::{CreateOptions, SharedStore};
use cowfmt::shared::geometry::default_journal_chunks;
use cowfmt::Device;

use crate::bench::BenchResult;
use crate::prng::SplitMix64;

const CHUNK_BYTES: u64 = 4096;
const COMMIT_EVERY: u64 = 1 << 16;

/// Measures `writes` origin chunk writes with `snapshots` snapshots.
pub fn run(bench_dir: &Path, snapshots: u32, writes: u64) -> Result<BenchResult> {
    let dir = bench_dir.join(format!("engine-{snapshots}"));
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let origin_chunks = writes * 2;
    let cow_chunks = writes + writes / 20 + 4096;
    let journal = default_journal_chunks(cow_chunks * CHUNK_BYTES, CHUNK_BYTES);
    let origin_path = dir.join("origin.img");
    let cow_path = dir.join("cow.img");
    for path in [&origin_path, &cow_path] {
        if path.exists() {
            fs::remove_file(path)?;
        }
    }
    let origin = Device::create_or_extend(&origin_path, origin_chunks * CHUNK_BYTES)?;
    let cow = Device::create_or_extend(&cow_path, (cow_chunks + journal + 64) * CHUNK_BYTES)?;
    let options = CreateOptions {
        chunk_sectors: CHUNK_BYTES / 512,
        journal_chunks: journal,
    };
    let mut store = SharedStore::create(cow, origin, &options)?;
    println!("\n=== engine: {writes} origin writes of 4 KiB with {snapshots} snapshot(s)");
    let mut rng = SplitMix64::new(u64::from(snapshots));
    let mut data = vec![0u8; CHUNK_BYTES as usize];
    let started = Instant::now();
    let mut taken = 0u32;
    for i in 0..writes {
        if taken < snapshots && i >= writes * u64::from(taken) / u64::from(snapshots) {
            store.create_snapshot(None)?;
            taken += 1;
        }
        let chunk = rng.below(origin_chunks);
        data[..8].copy_from_slice(&i.to_le_bytes());
        store.origin_write(chunk * CHUNK_BYTES, &data)?;
        if (i + 1) % COMMIT_EVERY == 0 {
            store.commit()?;
        }
    }
    store.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    let copied = store.geometry().data_chunks() - store.free_chunks();
    let rate = writes as f64 / seconds;
    println!(
        "engine, {snapshots} snapshot(s): {seconds:.3} s, {:.0} chunks/s, {copied} chunks copied out or used by the tree, tree_level {}",
        rate,
        store.tree_level()
    );
    drop(store);
    fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    Ok(BenchResult {
        kind: "shared",
        tool: format!("engine origin_write, {snapshots} snap"),
        unit: "chunks",
        records: writes,
        chunk_bytes: CHUNK_BYTES,
        cow_chunks,
        origin_chunks,
        runs: vec![seconds],
        wall_seconds: Some(seconds),
        records_per_second: Some(rate),
        peak_rss_bytes: None,
        target_records_per_second: 0.0,
        memory_budget_bytes: None,
        pass: true,
        note: None,
    })
}
