//! `cargo xtask gen-store --kind shared`: builds a shared store by driving the
//! engine the way a live origin would be used: snapshots are taken one after
//! another, and between two snapshots the origin is written in the chosen
//! pattern. Every write goes through `SharedStore::copy_out` (and, with
//! `--with-data`, `origin_write`), so the tree, the bitmap and the share masks
//! are exactly what the engine makes.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cowengine::{CopyData, CreateOptions, SharedStore};
use cowfmt::shared::geometry::{bitmap_chunks_for, default_journal_chunks};
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{mask, Leaf, Node};
use cowfmt::units::human_bytes;
use cowfmt::{Access, Device, StoreKind, SECTOR_BYTES};

use crate::gen_store::{prepare_image, GenStoreArgs, GenSummary, Pattern, PROGRESS_EVERY};
use crate::pattern::{self, NEW1, ORIG};
use crate::prng::SplitMix64;

/// Writes between two commits: bounds the engine's cache of changed blocks.
const COMMIT_EVERY: u64 = 1 << 16;

/// Builds the shared store `args` describe. With `--writes`, exactly that many
/// origin chunk writes are made; otherwise writes go on until the store holds
/// `--records` records. Snapshots are created at even steps of the way.
pub fn generate(args: &GenStoreArgs) -> Result<GenSummary> {
    let started = Instant::now();
    let chunk_bytes = u64::from(args.chunk_size) * SECTOR_BYTES;
    let snapshots = args.snapshots.unwrap_or(64);
    ensure!(
        (1..=64).contains(&snapshots),
        "--snapshots must be 1 to 64 for a shared store"
    );
    let goal = args.writes.unwrap_or(args.records);
    let origin_chunks = match args.origin_size {
        Some(bytes) => bytes / chunk_bytes,
        None => goal.saturating_mul(2).max(64),
    };
    ensure!(origin_chunks > 0, "the origin must hold at least one chunk");
    let cow_bytes = match args.cow_size {
        Some(bytes) => bytes,
        None => default_cow_chunks(goal, chunk_bytes) * chunk_bytes,
    };
    let origin = prepare_image(&args.origin, origin_chunks * chunk_bytes, args.force)?;
    if args.with_data {
        fill_origin(&origin, chunk_bytes)?;
    }
    let cow = prepare_image(&args.cow, cow_bytes, args.force)?;
    let journal_chunks = default_journal_chunks(cow_bytes, chunk_bytes);
    let options = CreateOptions {
        chunk_sectors: u64::from(args.chunk_size),
        journal_chunks,
    };
    let mut store = SharedStore::create(cow, origin, &options)?;
    let mut chunks = WriteChunks::new(args.pattern, origin_chunks, args.seed);
    let mut data = vec![0u8; chunk_bytes as usize];
    let (mut records, mut writes) = (0u64, 0u64);
    let mut created = 0u32;
    let bar = cowtools::progress::bar(goal, "generating", false);
    while (args.writes.is_some() && writes < goal) || (args.writes.is_none() && records < goal) {
        let progress = if args.writes.is_some() {
            writes
        } else {
            records
        };
        if created < snapshots && progress >= goal * u64::from(created) / u64::from(snapshots) {
            store.create_snapshot(None)?;
            created += 1;
        }
        let chunk = chunks.next();
        if args.with_data {
            let before = store.free_chunks();
            pattern::fill(NEW1, chunk * chunk_bytes, &mut data);
            store.origin_write(chunk * chunk_bytes, &data)?;
            records += u64::from(store.free_chunks() < before);
        } else {
            records += u64::from(store.copy_out(chunk, CopyData::No)?);
        }
        writes += 1;
        if writes.is_multiple_of(PROGRESS_EVERY) {
            bar.set_position(progress);
        }
        if writes % COMMIT_EVERY == 0 {
            store.commit()?;
        }
    }
    while created < snapshots {
        store.create_snapshot(None)?;
        created += 1;
    }
    store.commit()?;
    bar.finish_and_clear();
    let header = store.header();
    let geometry = *store.geometry();
    drop(store);

    let cow = Device::open(&args.cow, Access::ReadOnly)?;
    let mut count = Count::default();
    walk_tree(
        &cow,
        &geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut count,
    )?;
    ensure!(
        count.problems.is_empty() && count.records == records,
        "{}: read back {} records instead of {records} ({})",
        args.cow.display(),
        count.records,
        count.problems.join("; ")
    );
    Ok(GenSummary {
        kind: StoreKind::Shared,
        records,
        chunk_sectors: args.chunk_size,
        cow_bytes,
        cow_chunks: geometry.nr_chunks,
        areas: count.leaves,
        origin_bytes: origin_chunks * chunk_bytes,
        origin_chunks,
        status: format!(
            "{writes} origin chunk writes; snapshots {}; tree_level {}, {} nodes, {} leaves, {} origin chunks with records; {} of {} data-range chunks free",
            mask::describe(header.snapmask),
            header.tree_level,
            count.nodes,
            count.leaves,
            count.entries,
            geometry.data_chunks() - count.records - count.nodes - count.leaves,
            geometry.data_chunks()
        ),
        table: cowfmt::shared::table_line(
            Some(&args.origin.display().to_string()),
            Some(origin_chunks * chunk_bytes / SECTOR_BYTES),
            &args.cow.display().to_string(),
            args.chunk_size,
            0,
        ),
        elapsed: started.elapsed(),
    })
}

/// A COW big enough for `writes` copy-outs: data, tree blocks (a leaf per ~40
/// records at worst), bitmap and the default journal.
fn default_cow_chunks(writes: u64, chunk_bytes: u64) -> u64 {
    let data_and_tree = writes + writes / 40 + 1024;
    let mut chunks = data_and_tree;
    for _ in 0..3 {
        let journal = default_journal_chunks(chunks * chunk_bytes, chunk_bytes);
        chunks = 1 + bitmap_chunks_for(chunks, chunk_bytes) + journal + data_and_tree;
    }
    chunks
}

/// Writes the ORIG pattern over the whole origin.
fn fill_origin(origin: &Device, chunk_bytes: u64) -> Result<()> {
    let mut buf = vec![0u8; (1u64 << 20).max(chunk_bytes) as usize];
    let size = origin.size_bytes();
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(buf.len() as u64) as usize;
        pattern::fill(ORIG, offset, &mut buf[..len]);
        origin
            .write_at(&buf[..len], offset)
            .with_context(|| format!("{}: cannot fill", origin.path().display()))?;
        offset += len as u64;
    }
    Ok(())
}

/// The origin chunks the writes hit, in the chosen pattern. Unlike a classic
/// store, a shared store is written again and again as snapshots come and go,
/// so chunks repeat.
struct WriteChunks {
    pattern: Pattern,
    origin_chunks: u64,
    rng: SplitMix64,
    next: u64,
    run_left: u64,
}

impl WriteChunks {
    fn new(pattern: Pattern, origin_chunks: u64, seed: u64) -> Self {
        WriteChunks {
            pattern,
            origin_chunks,
            rng: SplitMix64::new(seed),
            next: 0,
            run_left: 0,
        }
    }

    fn next(&mut self) -> u64 {
        match self.pattern {
            Pattern::Random => self.rng.below(self.origin_chunks),
            Pattern::Sequential => {
                let c = self.next;
                self.next = (self.next + 1) % self.origin_chunks;
                c
            }
            Pattern::Runs => {
                if self.run_left == 0 {
                    self.next = self.rng.below(self.origin_chunks);
                    self.run_left = 1 + self.rng.below(64);
                }
                let c = self.next;
                self.next = (self.next + 1) % self.origin_chunks;
                self.run_left -= 1;
                c
            }
        }
    }
}

/// Counts what a walk of the written tree finds.
#[derive(Default)]
struct Count {
    nodes: u64,
    leaves: u64,
    entries: u64,
    records: u64,
    problems: Vec<String>,
}

impl TreeVisitor for Count {
    fn node(&mut self, _: &BlockAt, _: &Node) -> cowfmt::Result<()> {
        self.nodes += 1;
        Ok(())
    }

    fn leaf(&mut self, _: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
        self.leaves += 1;
        self.entries += leaf.count() as u64;
        self.records += leaf.records.len() as u64;
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> cowfmt::Result<()> {
        self.problems
            .push(format!("chunk {}: {problem:?}", at.chunk));
        Ok(())
    }
}

/// How the summary names the COW's content.
pub fn describe_cow(path: &Path, summary: &GenSummary) -> String {
    format!(
        "{}: {} ({} chunks, {} leaves)",
        path.display(),
        human_bytes(summary.cow_bytes),
        summary.cow_chunks,
        summary.areas
    )
}
