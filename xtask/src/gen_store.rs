//! `cargo xtask gen-store`: builds a realistic persistent (or legacy) store of
//! any size as sparse image files. Only the header and the metadata areas are
//! written unless `--with-data` asks for the data chunks and the origin content
//! too.
//!
//! cowfmt's `StoreWriter` formats the store; the records are then written a
//! whole area at a time in the kernel's order (the next area zeroed before a
//! full one), without `StoreWriter::commit`'s flush to stable storage after
//! every area, which would dominate the time of a large store. The bytes are
//! the same as the writer's (a test compares them), and the result is read
//! back with cowfmt's streaming reader before the summary is printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use cowfmt::persistent::dump::stream_records;
use cowfmt::persistent::record::RECORD_BYTES;
use cowfmt::persistent::table::{snapshot_table_line, TableDevices};
use cowfmt::persistent::{
    ExceptionRecord, Geometry, PersistentStore, StoreWriter, LEGACY_CHUNK_LIMIT,
};
use cowfmt::units::{human_bytes, parse_chunk_size, parse_size};
use cowfmt::{Device, StoreKind, SECTOR_BYTES};

use crate::pattern::{self, NEW1, ORIG};
use crate::prng::{Permutation, SplitMix64};

/// Store kinds gen-store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenKind {
    /// The kernel's "SnAp" v1 store.
    Persistent,
    /// The same bytes, held to the pre-2.6.29 32-bit chunk limit.
    Legacy,
    /// The multi-snapshot shared store, built through the engine.
    Shared,
}

impl From<GenKind> for StoreKind {
    fn from(kind: GenKind) -> Self {
        match kind {
            GenKind::Persistent => StoreKind::Persistent,
            GenKind::Legacy => StoreKind::Legacy,
            GenKind::Shared => StoreKind::Shared,
        }
    }
}

/// Which origin chunks the simulated writes hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// Distinct chunks scattered over the origin in seeded random order
    /// (default origin: twice the records).
    Random,
    /// Chunks 0, 1, 2, ... in order, as a linear copy would (default origin:
    /// as many chunks as records).
    Sequential,
    /// Runs of 1 to 64 consecutive chunks at random 64-chunk-aligned places
    /// (default origin: about four times the records).
    Runs,
}

/// Arguments of `cargo xtask gen-store`.
#[derive(Debug, Clone, Args)]
pub struct GenStoreArgs {
    /// Store kind: persistent, legacy or shared.
    #[arg(long, value_enum, default_value_t = GenKind::Persistent)]
    pub kind: GenKind,
    /// The COW image file to write.
    #[arg(long, value_name = "PATH")]
    pub cow: PathBuf,
    /// The origin image file to write (sparse unless --with-data).
    #[arg(long, value_name = "PATH")]
    pub origin: PathBuf,
    /// Chunk size (4k, 64k, 8s...).
    #[arg(long, value_name = "SIZE", default_value = "4k", value_parser = parse_chunk_size)]
    pub chunk_size: u32,
    /// Exception records to write; k/M/G multiply by 1024, 1024^2, 1024^3.
    /// For a shared store: write until it holds this many records.
    #[arg(long, value_name = "N", default_value = "1000", value_parser = parse_count)]
    pub records: u64,
    /// Shared stores: snapshots to take, evenly spread over the writes [default: 64].
    #[arg(long, value_name = "N")]
    pub snapshots: Option<u32>,
    /// Shared stores: make exactly this many origin chunk writes instead of
    /// writing until --records records exist.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub writes: Option<u64>,
    /// Origin size [default: what the pattern needs for the records].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub origin_size: Option<u64>,
    /// COW size [default: the smallest COW that holds the records].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cow_size: Option<u64>,
    /// Which origin chunks are written.
    #[arg(long, value_enum, default_value_t = Pattern::Random)]
    pub pattern: Pattern,
    /// Seed of the pseudo-random choices; the same seed gives the same store.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the data chunks (the origin's old content) and the origin
    /// (new content where it was written, the ORIG pattern elsewhere).
    #[arg(long)]
    pub with_data: bool,
    /// Replace existing image files.
    #[arg(long)]
    pub force: bool,
    /// Also write the summary as JSON to this file (for `cargo xtask bench`,
    /// which generates in a child process so that its own memory does not
    /// count in the figures of the tools it measures).
    #[arg(long, value_name = "PATH", hide = true)]
    pub summary_json: Option<PathBuf>,
}

impl GenStoreArgs {
    /// The command-line arguments that ask for the same store.
    pub fn to_cli_args(&self) -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = vec!["gen-store".into(), "--kind".into()];
        out.push(StoreKind::from(self.kind).as_str().into());
        out.extend(["--cow".into(), self.cow.clone().into_os_string()]);
        out.extend(["--origin".into(), self.origin.clone().into_os_string()]);
        out.extend([
            "--chunk-size".into(),
            format!("{}s", self.chunk_size).into(),
        ]);
        out.extend(["--records".into(), self.records.to_string().into()]);
        let pattern = match self.pattern {
            Pattern::Random => "random",
            Pattern::Sequential => "sequential",
            Pattern::Runs => "runs",
        };
        out.extend(["--pattern".into(), pattern.into()]);
        out.extend(["--seed".into(), self.seed.to_string().into()]);
        for (flag, value) in [
            ("--origin-size", self.origin_size),
            ("--cow-size", self.cow_size),
            ("--writes", self.writes),
            ("--snapshots", self.snapshots.map(u64::from)),
        ] {
            if let Some(value) = value {
                out.extend([flag.into(), value.to_string().into()]);
            }
        }
        if self.with_data {
            out.push("--with-data".into());
        }
        if self.force {
            out.push("--force".into());
        }
        if let Some(path) = &self.summary_json {
            out.extend(["--summary-json".into(), path.clone().into_os_string()]);
        }
        out
    }
}

/// What gen-store made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GenSummary {
    /// The kind written.
    pub kind: StoreKind,
    /// Records written.
    pub records: u64,
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
    /// COW image size.
    pub cow_bytes: u64,
    /// Whole chunks on the COW.
    pub cow_chunks: u64,
    /// Metadata areas in use (shared stores: leaves).
    pub areas: u64,
    /// Origin image size.
    pub origin_bytes: u64,
    /// Whole chunks on the origin.
    pub origin_chunks: u64,
    /// The `dmsetup status` text the store would show once loaded (shared
    /// stores: snapshots and tree figures).
    pub status: String,
    /// The table line that activates it.
    pub table: String,
    /// Time taken.
    pub elapsed: Duration,
}

/// Parses a record count: a number with an optional k, M or G (powers of 1024).
pub fn parse_count(text: &str) -> Result<u64, String> {
    if text.trim().to_ascii_lowercase().ends_with('s') {
        return Err(format!("count '{text}' cannot be given in sectors"));
    }
    parse_size(text).map_err(|e| e.replacen("size", "count", 1))
}

/// Runs `cargo xtask gen-store` and prints what it made.
pub fn run(args: &GenStoreArgs) -> Result<()> {
    let summary = generate(args)?;
    print_summary(args, &summary);
    if let Some(path) = &args.summary_json {
        fs::write(path, serde_json::to_string(&summary)?)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// Records between two updates of the progress bar.
pub(crate) const PROGRESS_EVERY: u64 = 1 << 16;

/// Sizes worked out from the arguments.
#[derive(Debug, Clone, Copy)]
struct Plan {
    chunk_bytes: u64,
    origin_bytes: u64,
    origin_chunks: u64,
    geometry: Geometry,
}

/// Builds the store the arguments describe.
pub fn generate(args: &GenStoreArgs) -> Result<GenSummary> {
    if args.kind == GenKind::Shared {
        return crate::gen_shared::generate(args);
    }
    ensure!(
        args.snapshots.is_none() && args.writes.is_none(),
        "--snapshots and --writes apply to shared stores only (--kind shared)"
    );
    let started = Instant::now();
    let plan = plan(args)?;
    let origin = prepare_image(&args.origin, plan.origin_bytes, args.force)?;
    let cow = prepare_image(&args.cow, plan.geometry.device_bytes(), args.force)?;
    let cow = StoreWriter::format(cow, args.chunk_size)?.finish()?;
    let mut areas = AreaWriter::new(&cow, plan.geometry);
    let mut old_chunks = OldChunks::new(args.pattern, plan.origin_chunks, args.seed);
    let mut written = args.with_data.then(|| Bitmap::new(plan.origin_chunks));
    let mut data = vec![0u8; plan.chunk_bytes as usize];
    let bar = cowtools::progress::bar(args.records, "generating", false);
    for index in 0..args.records {
        if index.is_multiple_of(PROGRESS_EVERY) {
            bar.set_position(index);
        }
        let old_chunk = old_chunks.next_chunk()?;
        let new_chunk = plan.geometry.nth_data_chunk(index);
        if let Some(written) = written.as_mut() {
            pattern::fill(ORIG, old_chunk * plan.chunk_bytes, &mut data);
            cow.write_chunk(new_chunk, &data)?;
            written.set(old_chunk);
        }
        areas.push(ExceptionRecord {
            old_chunk,
            new_chunk,
        })?;
    }
    areas.finish()?;
    if let Some(written) = written {
        write_origin(&origin, plan.chunk_bytes, &written)?;
    }
    bar.finish_and_clear();
    let store = PersistentStore::open(cow, None)?;
    let tail = stream_records(&store, false, |_| Ok(()))?;
    ensure!(
        tail.state.records == args.records && tail.problems.is_empty(),
        "{}: read back {} records instead of {} ({})",
        args.cow.display(),
        tail.state.records,
        args.records,
        tail.problems.join("; ")
    );
    let kind = StoreKind::from(args.kind);
    Ok(GenSummary {
        kind,
        records: args.records,
        chunk_sectors: args.chunk_size,
        cow_bytes: plan.geometry.device_bytes(),
        cow_chunks: plan.geometry.device_chunks(),
        areas: tail.areas_in_use,
        origin_bytes: plan.origin_bytes,
        origin_chunks: plan.origin_chunks,
        status: tail.status,
        table: table_line(args, &plan, kind),
        elapsed: started.elapsed(),
    })
}

fn plan(args: &GenStoreArgs) -> Result<Plan> {
    let chunk_bytes = u64::from(args.chunk_size) * SECTOR_BYTES;
    let origin_bytes = match args.origin_size {
        Some(bytes) => bytes,
        None => default_origin_chunks(args.pattern, args.records) * chunk_bytes,
    };
    ensure!(
        origin_bytes % SECTOR_BYTES == 0,
        "the origin size {origin_bytes} is not a whole number of 512-byte sectors"
    );
    let origin_chunks = origin_bytes / chunk_bytes;
    if args.pattern != Pattern::Runs && origin_chunks < args.records {
        bail!(
            "an origin of {origin_chunks} chunks cannot take {} distinct chunk writes; give a larger --origin-size",
            args.records
        );
    }
    let cow_bytes = match args.cow_size {
        Some(bytes) => bytes,
        None => smallest_cow_chunks(args.chunk_size, args.records)? * chunk_bytes,
    };
    let geometry = Geometry::new(args.chunk_size, cow_bytes)?;
    ensure!(
        geometry.data_capacity() >= args.records,
        "a COW of {} holds at most {} exceptions with {} chunks, fewer than the {} asked for",
        human_bytes(cow_bytes),
        geometry.data_capacity(),
        human_bytes(chunk_bytes),
        args.records
    );
    if args.kind == GenKind::Legacy {
        ensure!(
            geometry.device_chunks() <= LEGACY_CHUNK_LIMIT && origin_chunks <= LEGACY_CHUNK_LIMIT,
            "a legacy store counts chunks in 32 bits: the COW ({} chunks) and the origin ({origin_chunks} chunks) must stay within {LEGACY_CHUNK_LIMIT}",
            geometry.device_chunks()
        );
    }
    Ok(Plan {
        chunk_bytes,
        origin_bytes,
        origin_chunks,
        geometry,
    })
}

/// Chunks of the 64-chunk slots the runs pattern places its runs in.
const RUN_SLOT_CHUNKS: u64 = 64;

fn default_origin_chunks(pattern: Pattern, records: u64) -> u64 {
    match pattern {
        Pattern::Sequential => records.max(1),
        Pattern::Random => records.saturating_mul(2).max(1),
        Pattern::Runs => records
            .saturating_mul(4)
            .div_ceil(RUN_SLOT_CHUNKS)
            .saturating_add(16)
            .saturating_mul(RUN_SLOT_CHUNKS),
    }
}

/// The fewest chunks a COW needs to hold `records` exceptions, by binary search
/// over `Geometry::data_capacity` (which grows with the device).
fn smallest_cow_chunks(chunk_sectors: u32, records: u64) -> Result<u64> {
    let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
    let capacity = |chunks: u64| -> Result<u64> {
        let bytes = chunks
            .checked_mul(chunk_bytes)
            .context("the COW would be larger than 2^64 bytes")?;
        Ok(Geometry::new(chunk_sectors, bytes)?.data_capacity())
    };
    let epa = chunk_bytes / 16;
    let (mut low, mut high) = (
        2u64,
        records.saturating_add(records / epa).saturating_add(4),
    );
    while capacity(high)? < records {
        high = high.saturating_mul(2);
    }
    while low < high {
        let middle = low + (high - low) / 2;
        if capacity(middle)? >= records {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(low)
}

/// Creates an empty sparse image of `size` bytes, replacing an existing file
/// only when forced. Block devices are refused: gen-store writes images only.
pub(crate) fn prepare_image(path: &Path, size: u64, force: bool) -> Result<Device> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => bail!(
            "{}: not a regular file; gen-store writes image files only",
            path.display()
        ),
        Ok(_) if !force => bail!("{}: exists; give --force to replace it", path.display()),
        Ok(_) => {
            fs::remove_file(path).with_context(|| format!("{}: cannot remove", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("{}: cannot stat", path.display())),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    Ok(Device::create_or_extend(path, size)?)
}

/// Writes the whole origin: NEW1 in the chunks that were written, ORIG elsewhere.
fn write_origin(origin: &Device, chunk_bytes: u64, written: &Bitmap) -> Result<()> {
    let per_buffer = (1u64 << 20).div_ceil(chunk_bytes).max(1);
    let mut buffer = vec![0u8; (per_buffer * chunk_bytes) as usize];
    let size = origin.size_bytes();
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(buffer.len() as u64) as usize;
        let piece = &mut buffer[..len];
        for (index, chunk) in piece.chunks_mut(chunk_bytes as usize).enumerate() {
            let chunk_offset = offset + index as u64 * chunk_bytes;
            let tag = if written.get(chunk_offset / chunk_bytes) {
                NEW1
            } else {
                ORIG
            };
            pattern::fill(tag, chunk_offset, chunk);
        }
        origin.write_at(piece, offset)?;
        offset += len as u64;
    }
    origin.sync()?;
    Ok(())
}

fn table_line(args: &GenStoreArgs, plan: &Plan, kind: StoreKind) -> String {
    let origin = args.origin.display().to_string();
    let cow = args.cow.display().to_string();
    let devices = TableDevices {
        origin: Some(&origin),
        origin_sectors: Some(plan.origin_bytes / SECTOR_BYTES),
        cow: &cow,
    };
    snapshot_table_line(&devices, args.chunk_size, kind)
}

/// Prints what [`generate`] made.
pub fn print_summary(args: &GenStoreArgs, summary: &GenSummary) {
    let chunk = human_bytes(u64::from(summary.chunk_sectors) * SECTOR_BYTES);
    let content = if args.with_data {
        "with data"
    } else {
        "sparse: metadata only"
    };
    println!(
        "gen-store: {} store, {} records ({:?} origin chunks, seed {}), {chunk} chunks, in {:.2} s",
        summary.kind,
        summary.records,
        args.pattern,
        args.seed,
        summary.elapsed.as_secs_f64()
    );
    let cow = if summary.kind == StoreKind::Shared {
        crate::gen_shared::describe_cow(&args.cow, summary)
    } else {
        format!(
            "{}: {} ({} chunks, {} metadata areas in use)",
            args.cow.display(),
            human_bytes(summary.cow_bytes),
            summary.cow_chunks,
            summary.areas
        )
    };
    println!("  cow     {cow}, {content}");
    println!(
        "  origin  {}: {} ({} chunks), {}",
        args.origin.display(),
        human_bytes(summary.origin_bytes),
        summary.origin_chunks,
        if args.with_data {
            "NEW1 where written, ORIG elsewhere"
        } else {
            "sparse (zeros)"
        }
    );
    if summary.kind == StoreKind::Shared {
        println!("  store   {}", summary.status);
    } else {
        println!(
            "  status  {} (what dmsetup status shows once loaded)",
            summary.status
        );
    }
    println!("  table   {}", summary.table);
}

/// Appends records to the metadata areas a whole area at a time, in the
/// kernel's order: when an area fills, the next one is zeroed first.
struct AreaWriter<'d> {
    device: &'d Device,
    geometry: Geometry,
    area: Vec<u8>,
    zero: Vec<u8>,
    index: u64,
    committed: usize,
}

impl<'d> AreaWriter<'d> {
    /// Starts at area 0 of a freshly formatted store.
    fn new(device: &'d Device, geometry: Geometry) -> Self {
        AreaWriter {
            device,
            geometry,
            area: vec![0u8; geometry.chunk_bytes()],
            zero: vec![0u8; geometry.chunk_bytes()],
            index: 0,
            committed: 0,
        }
    }

    fn push(&mut self, record: ExceptionRecord) -> Result<()> {
        let slot = self.committed * RECORD_BYTES;
        record.encode(&mut self.area[slot..slot + RECORD_BYTES]);
        self.committed += 1;
        if self.committed as u64 == self.geometry.exceptions_per_area() {
            let next = self.geometry.area_location(self.index + 1);
            self.device.write_chunk(next, &self.zero)?;
            self.write_current()?;
            self.index += 1;
            self.committed = 0;
            self.area.fill(0);
        }
        Ok(())
    }

    fn write_current(&self) -> Result<()> {
        let chunk = self.geometry.area_location(self.index);
        Ok(self.device.write_chunk(chunk, &self.area)?)
    }

    /// Writes the last, partial area and flushes everything to stable storage.
    fn finish(self) -> Result<()> {
        if self.committed > 0 {
            self.write_current()?;
        }
        Ok(self.device.sync()?)
    }
}

/// The origin chunks the simulated writes hit, each at most once.
enum OldChunks {
    Sequential { next: u64 },
    Random { permutation: Permutation, next: u64 },
    Runs(RunChunks),
}

impl OldChunks {
    fn new(pattern: Pattern, origin_chunks: u64, seed: u64) -> Self {
        match pattern {
            Pattern::Sequential => OldChunks::Sequential { next: 0 },
            Pattern::Random => OldChunks::Random {
                permutation: Permutation::new(origin_chunks, seed),
                next: 0,
            },
            Pattern::Runs => OldChunks::Runs(RunChunks::new(origin_chunks, seed)),
        }
    }

    fn next_chunk(&mut self) -> Result<u64> {
        match self {
            OldChunks::Sequential { next } => {
                *next += 1;
                Ok(*next - 1)
            }
            OldChunks::Random { permutation, next } => {
                *next += 1;
                Ok(permutation.apply(*next - 1))
            }
            OldChunks::Runs(runs) => runs.next_chunk(),
        }
    }
}

/// Runs of consecutive chunks, each in its own 64-chunk slot, slots in random order.
struct RunChunks {
    slots: Permutation,
    next_slot: u64,
    rng: SplitMix64,
    chunk: u64,
    left: u64,
}

impl RunChunks {
    fn new(origin_chunks: u64, seed: u64) -> Self {
        RunChunks {
            slots: Permutation::new(origin_chunks / RUN_SLOT_CHUNKS, seed),
            next_slot: 0,
            rng: SplitMix64::new(seed),
            chunk: 0,
            left: 0,
        }
    }

    fn next_chunk(&mut self) -> Result<u64> {
        if self.left == 0 {
            ensure!(
                self.next_slot < self.slots.len(),
                "the origin has only {} slots of {RUN_SLOT_CHUNKS} chunks, too few for the runs pattern; give a larger --origin-size",
                self.slots.len()
            );
            self.chunk = self.slots.apply(self.next_slot) * RUN_SLOT_CHUNKS;
            self.left = 1 + self.rng.below(RUN_SLOT_CHUNKS);
            self.next_slot += 1;
        }
        self.left -= 1;
        self.chunk += 1;
        Ok(self.chunk - 1)
    }
}

/// One bit per origin chunk.
struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    fn new(bits: u64) -> Self {
        Bitmap {
            words: vec![0; bits.div_ceil(64) as usize],
        }
    }

    fn set(&mut self, bit: u64) {
        self.words[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    fn get(&self, bit: u64) -> bool {
        self.words
            .get((bit / 64) as usize)
            .is_some_and(|word| word & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowfmt::persistent::check::{check, CheckOptions};
    use cowfmt::persistent::PersistentStore;
    use cowfmt::Access;

    fn args(dir: &Path, records: u64, pattern: Pattern) -> GenStoreArgs {
        GenStoreArgs {
            kind: GenKind::Persistent,
            cow: dir.join("cow.img"),
            origin: dir.join("origin.img"),
            chunk_size: 8,
            records,
            origin_size: None,
            cow_size: None,
            pattern,
            seed: 3,
            with_data: false,
            force: false,
            snapshots: None,
            writes: None,
            summary_json: None,
        }
    }

    fn load_and_check(args: &GenStoreArgs) -> Vec<ExceptionRecord> {
        let device = Device::open(&args.cow, Access::ReadOnly).unwrap();
        let options = CheckOptions {
            origin_bytes: Some(fs::metadata(&args.origin).unwrap().len()),
            ..CheckOptions::default()
        };
        let report = check(&device, &options).unwrap();
        assert!(report.is_clean(), "{:#?}", report.findings);
        let store = PersistentStore::open(device, None).unwrap();
        store
            .load()
            .unwrap()
            .records
            .iter()
            .map(|p| p.record)
            .collect()
    }

    #[test]
    fn smallest_cow_is_exact() {
        for records in [0u64, 1, 255, 256, 257, 511, 512, 100_000] {
            let chunks = smallest_cow_chunks(8, records).unwrap();
            let fits = |c: u64| Geometry::new(8, c * 4096).unwrap().data_capacity() >= records;
            assert!(fits(chunks), "{records}");
            assert!(chunks == 2 || !fits(chunks - 1), "{records}");
        }
    }

    #[test]
    fn every_pattern_makes_a_clean_store_of_distinct_chunks() {
        for pattern in [Pattern::Random, Pattern::Sequential, Pattern::Runs] {
            let dir = tempfile::tempdir().unwrap();
            let args = args(dir.path(), 1000, pattern);
            let summary = generate(&args).unwrap();
            let records = load_and_check(&args);
            assert_eq!(records.len(), 1000);
            let mut old: Vec<u64> = records.iter().map(|r| r.old_chunk).collect();
            old.sort_unstable();
            old.dedup();
            assert_eq!(old.len(), 1000, "{pattern:?}");
            assert!(old.iter().all(|&c| c < summary.origin_chunks));
            assert_eq!(summary.cow_chunks, smallest_cow_chunks(8, 1000).unwrap());
        }
    }

    #[test]
    fn areas_are_the_bytes_store_writer_commits() {
        for records in [0u64, 1, 255, 256, 257, 600] {
            let dir = tempfile::tempdir().unwrap();
            let args = args(dir.path(), records, Pattern::Random);
            generate(&args).unwrap();
            let reference = dir.path().join("reference.img");
            let size = fs::metadata(&args.cow).unwrap().len();
            let mut writer =
                StoreWriter::format(Device::create_or_extend(&reference, size).unwrap(), 8)
                    .unwrap();
            let device = Device::open(&args.cow, Access::ReadOnly).unwrap();
            let store = PersistentStore::open(device, None).unwrap();
            for placed in store.load().unwrap().records {
                assert_eq!(writer.allocate().unwrap(), placed.record.new_chunk);
                writer.commit(placed.record).unwrap();
            }
            writer.finish().unwrap();
            assert!(
                fs::read(&args.cow).unwrap() == fs::read(&reference).unwrap(),
                "{records} records"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_store() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        generate(&args(one.path(), 700, Pattern::Runs)).unwrap();
        generate(&args(two.path(), 700, Pattern::Runs)).unwrap();
        let a = fs::read(one.path().join("cow.img")).unwrap();
        let b = fs::read(two.path().join("cow.img")).unwrap();
        assert!(a == b);
    }

    #[test]
    fn with_data_copies_the_old_origin_content_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path(), 300, Pattern::Random);
        args.with_data = true;
        generate(&args).unwrap();
        let records = load_and_check(&args);
        let cow = fs::read(&args.cow).unwrap();
        let origin = fs::read(&args.origin).unwrap();
        let mut expected = vec![0u8; 4096];
        for record in records {
            let at = |chunk: u64| chunk as usize * 4096..(chunk as usize + 1) * 4096;
            pattern::fill(ORIG, record.old_chunk * 4096, &mut expected);
            assert!(cow[at(record.new_chunk)] == expected[..]);
            pattern::fill(NEW1, record.old_chunk * 4096, &mut expected);
            assert!(origin[at(record.old_chunk)] == expected[..]);
        }
    }

    #[test]
    fn existing_files_need_force_and_small_cows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path(), 10, Pattern::Sequential);
        generate(&args).unwrap();
        assert!(generate(&args).unwrap_err().to_string().contains("--force"));
        args.force = true;
        args.cow_size = Some(8 * 4096);
        assert!(generate(&args)
            .unwrap_err()
            .to_string()
            .contains("at most 6 exceptions"));
    }

    #[test]
    fn counts_take_binary_suffixes_but_not_sectors() {
        assert_eq!(parse_count("16M"), Ok(16 << 20));
        assert_eq!(parse_count("1000"), Ok(1000));
        assert!(parse_count("8s").is_err());
    }
}
