//! `cargo xtask bench`: throughput and peak memory of the release `cowcheck`
//! and `cowdump --format json` on large generated persistent and shared stores
//! (64 snapshots), against the project's targets, and the shared engine's
//! origin-write throughput with 1, 8 and 64 snapshots; cowrepair of a sparse
//! persistent store, whose output must stay sparse; cowcheck and cowdump on
//! dm-clone metadata at the kernel's region limit (bench_clone.rs). A benchmark, never a
//! timed test: it reports figures and PASS/FAIL, and writes them to
//! target/bench/results.json.
//!
//! With `--cold`, cowcheck, cowdump and cowrepair run again with the page
//! cache of the files they read emptied before each run (cold.rs), beside the
//! warm figures.
//!
//! The dump goes to /dev/null, so the figure is the tool's and not the disk's
//! write-back of a file of several hundred MiB.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::cold::{self, ColdMethod};
use crate::engine_bench;
use crate::gen_store::{parse_count, GenKind, GenStoreArgs, GenSummary, Pattern};
use crate::measure::{self, Measured};
use crate::tools::{target_dir, Tools};

/// cowcheck must read at least this many records per second (at 16M records).
const CHECK_RECORDS_PER_SECOND: f64 = 30_000_000.0;
/// cowdump must write JSON for at least this many records per second.
const DUMP_RECORDS_PER_SECOND: f64 = 15_000_000.0;
/// cowrepair must rebuild a shared store of 16M records in under 10 s.
const REPAIR_RECORDS_PER_SECOND: f64 = (16u64 << 20) as f64 / 10.0;
/// The fraction of leaves the damaged repair benchmark zeroes (one in this many).
const ZEROED_LEAF_EVERY: u64 = 100;
/// cowcheck's memory allowance before its bitmaps (one bit per COW chunk and
/// one per origin chunk).
const CHECK_BASE_MEMORY: u64 = 64 << 20;
/// Version of the results.json schema.
const RESULTS_FORMAT_VERSION: u32 = 1;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Store sizes in records, comma-separated; k/M/G multiply by powers of
    /// 1024 [default: 4M,16M; with --quick: 1M].
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = parse_count)]
    pub records: Vec<u64>,
    /// A quick look: 1M records and one run per tool unless told otherwise.
    #[arg(long)]
    pub quick: bool,
    /// Runs per tool and size (and per engine cell); the median wall time is
    /// reported [default: 3; with --quick: 1].
    #[arg(long, value_name = "N")]
    pub runs: Option<u32>,
    /// Keep the generated images under target/bench/ (they are sparse, but the
    /// metadata of 16M records is 256 MiB).
    #[arg(long)]
    pub keep: bool,
    /// Which store kinds to measure.
    #[arg(long, value_enum, default_value_t = BenchKind::All)]
    pub kind: BenchKind,
    /// Origin chunk writes per engine measurement; the cells that commit every
    /// write make a sixteenth of them [default: 64k; with --quick: 16k].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub engine_writes: Option<u64>,
    /// Folder for the engine's origin and COW images (filled, up to about
    /// 300 MiB each at the default writes; removed after each cell)
    /// [default: target/bench/engine].
    #[arg(long, value_name = "DIR")]
    pub engine_dir: Option<PathBuf>,
    /// Regions of the dm-clone metadata (4 KiB each, half hydrated in runs);
    /// k/M/G multiply by powers of 1024 [default: 2G, the kernel's limit].
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub clone_regions: Option<u64>,
    /// Only these measurements, comma-separated [default: all].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PART,...")]
    pub only: Vec<BenchPart>,
    /// Also run cowcheck, cowdump and cowrepair with a cold page cache (the
    /// files they read dropped from it before each run), beside the warm runs.
    #[arg(long)]
    pub cold: bool,
    /// How --cold empties the cache: fadvise drops only the bench's files;
    /// drop-caches empties every cache of the machine (root only; falls back to
    /// fadvise otherwise).
    #[arg(long, value_enum, default_value_t = ColdMethod::Fadvise, value_name = "METHOD")]
    pub cold_method: ColdMethod,
}

/// The measurements a bench run can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
    /// cowcheck.
    Check,
    /// cowdump --format json to /dev/null.
    Dump,
    /// cowrepair of the shared store, intact and damaged.
    Repair,
    /// cowdump to a file and mkcow --from-dump, YAML and JSON (persistent
    /// stores at every size, shared stores up to 4M records).
    Restore,
    /// The shared engine's origin writes.
    Engine,
}

/// The largest shared store the restore is measured on.
const SHARED_RESTORE_RECORDS: u64 = 4 << 20;

/// The store kinds a bench run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchKind {
    /// Persistent stores only.
    Persistent,
    /// Shared stores (64 snapshots) and the engine only.
    Shared,
    /// dm-clone metadata only (2^31 regions unless --clone-regions).
    Clone,
    /// All of them.
    All,
}

impl BenchKind {
    fn kinds(self) -> Vec<GenKind> {
        match self {
            BenchKind::Persistent => vec![GenKind::Persistent],
            BenchKind::Shared => vec![GenKind::Shared],
            BenchKind::Clone => Vec::new(),
            BenchKind::All => vec![GenKind::Persistent, GenKind::Shared],
        }
    }
}

/// A tool run on a store of one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Check,
    DumpJson,
    /// cowrepair of the intact store into a new image.
    Repair,
    /// cowrepair after 1% of the leaves were zeroed.
    RepairDamaged,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Check => "cowcheck",
            Job::DumpJson => "cowdump --format json",
            Job::Repair => "cowrepair (intact)",
            Job::RepairDamaged => "cowrepair (1% leaves zeroed)",
        }
    }

    /// The exit codes of a run that did its job: a repair of the damaged
    /// store loses the records of the zeroed leaves, which cowrepair says
    /// with exit 3 (docs/cowrepair.md).
    fn good_exits(self) -> &'static [i32] {
        match self {
            Job::RepairDamaged => &[0, 3],
            Job::Check | Job::DumpJson | Job::Repair => &[0],
        }
    }

    /// What the job runs on, for a failure's message.
    fn input(self) -> &'static str {
        match self {
            Job::RepairDamaged => "a damaged store",
            Job::Check | Job::DumpJson | Job::Repair => "a clean store",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Job::Check => "cowcheck",
            Job::DumpJson => "cowdump",
            Job::Repair | Job::RepairDamaged => "cowrepair",
        }
    }

    fn command(self, tools: &Tools, store: &Store) -> Command {
        let mut command = tools.command(self.binary());
        match self {
            Job::Check => command.arg("--origin").arg(&store.origin).arg(&store.cow),
            Job::DumpJson => command
                .args(["--format", "json", "-o", "/dev/null"])
                .arg(&store.cow),
            Job::Repair | Job::RepairDamaged => command
                .args(["-q", "-i"])
                .arg(&store.cow)
                .arg("-o")
                .arg(store.dir.join("repaired.img")),
        };
        command
    }

    fn target_rate(self) -> f64 {
        match self {
            Job::Check => CHECK_RECORDS_PER_SECOND,
            Job::DumpJson => DUMP_RECORDS_PER_SECOND,
            Job::Repair | Job::RepairDamaged => REPAIR_RECORDS_PER_SECOND,
        }
    }

    fn memory_budget(self, store: &GenSummary) -> Option<u64> {
        match self {
            // Persistent: one bit per COW chunk and per origin chunk. Shared: the
            // on-disk bitmap and the referenced set, a bit per COW chunk each.
            Job::Check if store.kind == cowfmt::StoreKind::Shared => {
                Some(CHECK_BASE_MEMORY + 2 * store.cow_chunks.div_ceil(8))
            }
            Job::Check => Some(
                CHECK_BASE_MEMORY + store.cow_chunks.div_ceil(8) + store.origin_chunks.div_ceil(8),
            ),
            Job::DumpJson | Job::Repair | Job::RepairDamaged => None,
        }
    }

    /// The files the job reads, whose cache a cold run drops.
    fn inputs(self, store: &Store) -> Vec<&Path> {
        match self {
            Job::Check => vec![&store.cow, &store.origin],
            Job::DumpJson | Job::Repair | Job::RepairDamaged => vec![&store.cow],
        }
    }

    /// How many times its warm time a cold run may take (issue 14's targets),
    /// if the job has such a target.
    fn cold_ratio(self) -> Option<f64> {
        match self {
            Job::Check => Some(COLD_CHECK_RATIO),
            Job::DumpJson => Some(COLD_DUMP_RATIO),
            Job::Repair | Job::RepairDamaged => None,
        }
    }
}

/// A cold cowcheck may take at most this many times its warm time.
const COLD_CHECK_RATIO: f64 = 4.0;
/// A cold cowdump may take at most this many times its warm time.
const COLD_DUMP_RATIO: f64 = 2.5;

/// The cold runs of a bench: the method used and why it is not the one asked for.
#[derive(Debug, Clone)]
struct ColdSetup {
    method: ColdMethod,
    fallback: Option<String>,
}

/// A generated store in its own directory.
struct Store {
    dir: PathBuf,
    cow: PathBuf,
    origin: PathBuf,
    summary: GenSummary,
}

/// One line of the results.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// The store kind measured.
    pub kind: &'static str,
    /// What was run.
    pub tool: String,
    /// What `records` counts: "records" (tools) or "chunks" (engine writes).
    pub unit: &'static str,
    /// See the results schema.
    pub records: u64,
    /// See the results schema.
    pub chunk_bytes: u64,
    /// See the results schema.
    pub cow_chunks: u64,
    /// See the results schema.
    pub origin_chunks: u64,
    /// See the results schema.
    pub runs: Vec<f64>,
    /// See the results schema.
    pub wall_seconds: Option<f64>,
    /// See the results schema.
    pub records_per_second: Option<f64>,
    /// See the results schema.
    pub peak_rss_bytes: Option<u64>,
    /// See the results schema.
    pub target_records_per_second: f64,
    /// See the results schema.
    pub memory_budget_bytes: Option<u64>,
    /// See the results schema.
    pub pass: bool,
    /// See the results schema.
    pub note: Option<String>,
    /// CPU time of the measured span, where the bench takes it (engine cells).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// The 1-minute load average when the measurement started (engine cells).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_average: Option<f64>,
    /// Cold rows only: how the cache was emptied and what the runs read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheFigures>,
}

/// The page cache of a cold row.
#[derive(Debug, Clone, Serialize)]
pub struct CacheFigures {
    /// "fadvise" or "drop-caches".
    pub method: &'static str,
    /// Why the method is not the one asked for, if it is not.
    pub fallback: Option<String>,
    /// Whether every run started with (nearly) none of its files resident.
    pub cold: bool,
    /// Why a run was not cold, if one was not.
    pub not_cold: Option<String>,
    /// The most bytes of the files left resident after a drop (`mincore`).
    pub resident_after_bytes: u64,
    /// The median bytes a run read from the disk (`ru_inblock`).
    pub disk_read_bytes: u64,
    /// The warm row's median wall time.
    pub warm_seconds: f64,
    /// The cold time's allowed multiple of the warm time, if there is a target.
    pub max_cold_over_warm: Option<f64>,
}

impl BenchResult {
    /// A result of `tool` on the store `summary` describes, not measured yet.
    pub fn of_tool(summary: &GenSummary, tool: String, target: f64, budget: Option<u64>) -> Self {
        BenchResult {
            kind: summary.kind.as_str(),
            tool,
            unit: "records",
            records: summary.records,
            chunk_bytes: u64::from(summary.chunk_sectors) * cowfmt::SECTOR_BYTES,
            cow_chunks: summary.cow_chunks,
            origin_chunks: summary.origin_chunks,
            runs: Vec::new(),
            wall_seconds: None,
            records_per_second: None,
            peak_rss_bytes: None,
            target_records_per_second: target,
            memory_budget_bytes: budget,
            pass: false,
            note: None,
            cpu_seconds: None,
            load_average: None,
            cache: None,
        }
    }
}

/// The results file.
#[derive(Debug, Serialize)]
struct Results<'a> {
    format_version: u32,
    generated_by: &'static str,
    cpus: usize,
    page_cache: &'static str,
    wall_time: &'static str,
    dump_output: &'static str,
    results: &'a [BenchResult],
}

/// Runs the benchmarks; fails when a target is missed or a tool is missing.
pub fn run(args: &BenchArgs) -> Result<()> {
    let sizes = if !args.records.is_empty() {
        args.records.clone()
    } else if args.quick {
        vec![1 << 20]
    } else {
        vec![4 << 20, 16 << 20]
    };
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let cold = args.cold.then(|| {
        let (method, fallback) = cold::choose_method(args.cold_method, cold::is_root());
        if let Some(why) = &fallback {
            println!("cold runs: {why}");
        }
        ColdSetup { method, fallback }
    });
    let bench_dir = target_dir().join("bench");
    let mut results = Vec::new();
    let wanted = |part| args.only.is_empty() || args.only.contains(&part);
    let tool_parts = [
        BenchPart::Check,
        BenchPart::Dump,
        BenchPart::Repair,
        BenchPart::Restore,
    ];
    let tools = if tool_parts.into_iter().any(wanted) {
        Some(Tools::build_release(&[])?)
    } else {
        None
    };
    for kind in args.kind.kinds() {
        for &records in &sizes {
            let restore = wanted(BenchPart::Restore)
                && (kind != GenKind::Shared || records <= SHARED_RESTORE_RECORDS);
            let tools_wanted = [BenchPart::Check, BenchPart::Dump, BenchPart::Repair]
                .into_iter()
                .any(wanted);
            if !restore && !tools_wanted {
                continue;
            }
            let Some(tools) = &tools else {
                continue;
            };
            let store = generate(&bench_dir, kind, records)?;
            for (job, part) in [
                (Job::Check, BenchPart::Check),
                (Job::DumpJson, BenchPart::Dump),
            ] {
                if wanted(part) {
                    let warm = bench_job(tools, &store, job, runs)?;
                    push_with_cold(&mut results, warm, tools, &store, job, runs, &cold)?;
                }
            }
            if restore {
                results.extend(crate::restore_bench::run(
                    tools,
                    &store.dir,
                    &store.cow,
                    &store.summary,
                    runs,
                )?);
            }
            if kind == GenKind::Persistent && wanted(BenchPart::Repair) {
                let warm = bench_sparse_repair(tools, &store, runs)?;
                push_with_cold(&mut results, warm, tools, &store, Job::Repair, runs, &cold)?;
            }
            if kind == GenKind::Shared && wanted(BenchPart::Repair) {
                let warm = bench_job(tools, &store, Job::Repair, runs)?;
                push_with_cold(&mut results, warm, tools, &store, Job::Repair, runs, &cold)?;
                let zeroed = crate::damage::zero_leaves(&store.cow, ZEROED_LEAF_EVERY)?;
                println!("zeroed {zeroed} leaves (one in {ZEROED_LEAF_EVERY})");
                results.push(bench_job(tools, &store, Job::RepairDamaged, runs)?);
            }
            if !args.keep {
                fs::remove_dir_all(&store.dir)
                    .with_context(|| format!("{}: cannot remove", store.dir.display()))?;
            }
        }
    }
    if matches!(args.kind, BenchKind::Clone | BenchKind::All)
        && (wanted(BenchPart::Check) || wanted(BenchPart::Dump))
    {
        if let Some(tools) = &tools {
            let regions = args
                .clone_regions
                .unwrap_or(crate::bench_clone::CLONE_BENCH_REGIONS);
            let jobs = crate::bench_clone::CloneJobs {
                check: wanted(BenchPart::Check),
                dump: wanted(BenchPart::Dump),
            };
            results.extend(crate::bench_clone::run(
                tools, &bench_dir, regions, runs, args.keep, jobs,
            )?);
        }
    }
    if matches!(args.kind, BenchKind::Shared | BenchKind::All) && wanted(BenchPart::Engine) {
        let writes = args
            .engine_writes
            .unwrap_or(if args.quick { 16 << 10 } else { 64 << 10 });
        let dir = args
            .engine_dir
            .clone()
            .unwrap_or_else(|| bench_dir.join("engine"));
        results.extend(engine_bench::run(&dir, writes, runs)?);
    }
    print_table(&results, cold.is_some());
    let path = write_results(&bench_dir, &results, cold.is_some())?;
    println!("\nresults: {}", path.display());
    let failed = results.iter().filter(|r| !r.pass).count();
    if failed > 0 {
        bail!(
            "{failed} of {} benchmarks missed their target or could not run",
            results.len()
        );
    }
    Ok(())
}

fn label(records: u64) -> String {
    match records {
        r if r >= 1 << 20 && r % (1 << 20) == 0 => format!("{}M", r >> 20),
        r if r >= 1 << 10 && r % (1 << 10) == 0 => format!("{}k", r >> 10),
        r => r.to_string(),
    }
}

fn generate(bench_dir: &Path, kind: GenKind, records: u64) -> Result<Store> {
    let kind_name = cowfmt::StoreKind::from(kind).as_str();
    let dir = bench_dir.join(format!("{kind_name}-{}", label(records)));
    println!(
        "\n=== {kind_name} store, {} records: generating it in {}",
        label(records),
        dir.display()
    );
    let args = GenStoreArgs {
        kind,
        cow: dir.join("cow.img"),
        origin: dir.join("origin.img"),
        chunk_size: 8,
        records,
        origin_size: None,
        cow_size: None,
        pattern: Pattern::Random,
        seed: 1,
        with_data: false,
        force: true,
        snapshots: (kind == GenKind::Shared).then_some(64),
        writes: None,
        summary_json: Some(dir.join("summary.json")),
    };
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    // In a child process: the kernel carries a process's peak memory over an
    // exec into its children's figures, so this process must stay small.
    let status = Command::new(std::env::current_exe()?)
        .args(args.to_cli_args())
        .status()
        .context("cannot run gen-store")?;
    if !status.success() {
        bail!("gen-store failed ({status})");
    }
    let summary_path = dir.join("summary.json");
    let summary: GenSummary = serde_json::from_str(
        &fs::read_to_string(&summary_path)
            .with_context(|| format!("{}: cannot read", summary_path.display()))?,
    )?;
    Ok(Store {
        cow: args.cow,
        origin: args.origin,
        dir,
        summary,
    })
}

fn bench_job(tools: &Tools, store: &Store, job: Job, runs: u32) -> Result<BenchResult> {
    let summary = &store.summary;
    let mut result = BenchResult::of_tool(
        summary,
        job.name().to_string(),
        job.target_rate(),
        job.memory_budget(summary),
    );
    if !tools.exists(job.binary()) {
        result.note = Some(format!(
            "{} is not built (not written yet?)",
            tools.path(job.binary()).display()
        ));
        println!(
            "{}: skipped: {}",
            job.name(),
            result.note.as_deref().unwrap_or_default()
        );
        return Ok(result);
    }
    measure_runs(&mut result, runs, || run_once(tools, store, job))?;
    Ok(result)
}

/// Pushes the `warm` row of `job` and, with `cold` runs asked for and the warm
/// run measured, the cold row beside it.
fn push_with_cold(
    results: &mut Vec<BenchResult>,
    warm: BenchResult,
    tools: &Tools,
    store: &Store,
    job: Job,
    runs: u32,
    cold: &Option<ColdSetup>,
) -> Result<()> {
    let cold_row = match (cold, warm.wall_seconds) {
        (Some(setup), Some(_)) => Some(bench_cold(tools, store, job, runs, &warm, setup)?),
        _ => None,
    };
    results.push(warm);
    results.extend(cold_row);
    Ok(())
}

/// `job` run `runs` times, each after the page cache of its inputs was emptied;
/// its target is a multiple of the `warm` row's time, where the job has one.
fn bench_cold(
    tools: &Tools,
    store: &Store,
    job: Job,
    runs: u32,
    warm: &BenchResult,
    setup: &ColdSetup,
) -> Result<BenchResult> {
    let warm_seconds = warm.wall_seconds.unwrap_or_default();
    let ratio = job.cold_ratio();
    let mut result = warm.clone();
    result.tool = cold_tool_name(&warm.tool, setup.method);
    result.target_records_per_second =
        ratio.map_or(0.0, |ratio| warm.records as f64 / (ratio * warm_seconds));
    result.note = None;
    let inputs = job.inputs(store);
    let mut reports = Vec::new();
    let mut measured = Vec::new();
    for run in 1..=runs {
        let report = cold::make_cold(&inputs, setup.method)?;
        let this = run_once(tools, store, job)?;
        println!(
            "{} {} run {run}/{runs}: {:.3} s, peak {:.1} MiB, read {:.1} MiB from disk; {}",
            result.kind,
            result.tool,
            this.wall.as_secs_f64(),
            mib(this.peak_rss_bytes),
            mib(this.disk_read_bytes),
            report.line()
        );
        reports.push(report);
        measured.push(this);
    }
    fill_figures(&mut result, &measured);
    if ratio.is_none() {
        result.pass = true;
    }
    let mut read: Vec<u64> = measured.iter().map(|m| m.disk_read_bytes).collect();
    read.sort_unstable();
    let not_cold = reports.iter().find(|r| !r.is_cold()).map(|r| r.line());
    result.cache = Some(CacheFigures {
        method: setup.method.as_str(),
        fallback: setup.fallback.clone(),
        cold: not_cold.is_none(),
        not_cold,
        resident_after_bytes: reports.iter().map(|r| r.resident_after).max().unwrap_or(0),
        disk_read_bytes: read[read.len() / 2],
        warm_seconds,
        max_cold_over_warm: ratio,
    });
    Ok(result)
}

/// The name of the cold row of the warm row `tool`.
fn cold_tool_name(tool: &str, method: ColdMethod) -> String {
    format!("{tool} [cold, {}]", method.as_str())
}

/// Measures `one` run `runs` times, printing each, and fills in `result`'s
/// figures.
pub fn measure_runs(
    result: &mut BenchResult,
    runs: u32,
    mut one: impl FnMut() -> Result<Measured>,
) -> Result<()> {
    let mut measured = Vec::new();
    for run in 1..=runs {
        let this = one()?;
        println!(
            "{} {} run {run}/{runs}: {:.3} s, peak {:.1} MiB",
            result.kind,
            result.tool,
            this.wall.as_secs_f64(),
            mib(this.peak_rss_bytes)
        );
        measured.push(this);
    }
    fill_figures(result, &measured);
    Ok(())
}

/// cowrepair of the generated (sparse: metadata only) persistent store into a
/// new image: a figure for the time, and a verdict on the holes, which must
/// stay holes (the output may allocate at most twice the input's blocks plus
/// 1 MiB).
fn bench_sparse_repair(tools: &Tools, store: &Store, runs: u32) -> Result<BenchResult> {
    use std::os::unix::fs::MetadataExt;
    let mut result = bench_job(tools, store, Job::Repair, runs)?;
    result.tool = "cowrepair (intact, sparse)".to_string();
    result.target_records_per_second = 0.0;
    if result.wall_seconds.is_none() {
        return Ok(result);
    }
    result.pass = true;
    let allocated = |path: &Path| -> Result<u64> {
        Ok(fs::metadata(path)
            .with_context(|| format!("{}: cannot stat", path.display()))?
            .blocks()
            * 512)
    };
    let input = allocated(&store.cow)?;
    let output = allocated(&store.dir.join("repaired.img"))?;
    println!(
        "cowrepair (intact, sparse): input allocates {:.1} MiB, output {:.1} MiB",
        mib(input),
        mib(output)
    );
    if output > 2 * input + (1 << 20) {
        result.pass = false;
        result.note = Some(format!(
            "the output allocates {:.1} MiB for the input's {:.1} MiB: holes were written",
            mib(output),
            mib(input)
        ));
    }
    Ok(result)
}

fn run_once(tools: &Tools, store: &Store, job: Job) -> Result<Measured> {
    if matches!(job, Job::Repair | Job::RepairDamaged) {
        let _ = fs::remove_file(store.dir.join("repaired.img"));
    }
    run_with_exits(
        job.command(tools, store),
        &store.dir,
        job.binary(),
        job.input(),
        job.good_exits(),
    )
}

/// Runs `command` once with its output in `dir` (`<name>.stdout`,
/// `<name>.stderr`) and fails unless it exits 0 (`on`: what it ran on, for
/// the message).
pub fn run_checked(command: Command, dir: &Path, name: &str, on: &str) -> Result<Measured> {
    run_with_exits(command, dir, name, on, &[0])
}

/// [`run_checked`], where any of `good` is an exit code of a run that did
/// its job.
fn run_with_exits(
    mut command: Command,
    dir: &Path,
    name: &str,
    on: &str,
    good: &[i32],
) -> Result<Measured> {
    let stdout = dir.join(format!("{name}.stdout"));
    let stderr = dir.join(format!("{name}.stderr"));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout)?)
        .stderr(File::create(&stderr)?);
    let measured = measure::run(&mut command)?;
    if !measured.exit_code.is_some_and(|code| good.contains(&code)) {
        let text = fs::read_to_string(&stderr).unwrap_or_default();
        bail!(
            "{} ended with {:?} on {on}: {}",
            crate::tools::shown(&command),
            measured.exit_code,
            text.trim()
        );
    }
    Ok(measured)
}

/// Fills in the median wall time, rate, peak memory and verdict of `measured` runs.
pub fn fill_figures(result: &mut BenchResult, measured: &[Measured]) {
    let mut walls: Vec<f64> = measured.iter().map(|m| m.wall.as_secs_f64()).collect();
    result.runs = walls.clone();
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    let rate = result.records as f64 / median;
    let peak = measured.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0);
    result.wall_seconds = Some(median);
    result.records_per_second = Some(rate);
    result.peak_rss_bytes = Some(peak);
    let fast_enough = rate >= result.target_records_per_second;
    let small_enough = result
        .memory_budget_bytes
        .is_none_or(|budget| peak < budget);
    result.pass = fast_enough && small_enough;
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn target_text(result: &BenchResult) -> String {
    if let Some(ratio) = result.cache.as_ref().and_then(|c| c.max_cold_over_warm) {
        return format!("<= {ratio}x warm");
    }
    if result.target_records_per_second == 0.0 {
        return "(figure only)".to_string();
    }
    let rate = match result.unit {
        "chunks" => format!(">= {:.1}k chunks/s", result.target_records_per_second / 1e3),
        "bytes" => format!(">= {:.0} MB/s", result.target_records_per_second / 1e6),
        _ => format!(">= {:.0}M rec/s", result.target_records_per_second / 1e6),
    };
    match result.memory_budget_bytes {
        Some(budget) => format!("{rate}, < {:.1} MiB", mib(budget)),
        None => rate,
    }
}

fn print_table(results: &[BenchResult], cold: bool) {
    println!(
        "\nwarm page cache (the images were just written); wall time is the median of the runs"
    );
    if cold {
        println!("[cold, METHOD] rows: the page cache of the files the tool reads was emptied before each run");
    }
    println!("the dump is written to /dev/null: the figure is the tool's, not the disk's");
    println!(
        "{:<10} {:>9}  {:<40} {:>9} {:>14} {:>10}  {:<28} result",
        "kind", "size", "tool", "seconds", "per second", "peak MiB", "target"
    );
    for result in results {
        let (seconds, rate, peak) = match (
            result.wall_seconds,
            result.records_per_second,
            result.peak_rss_bytes,
        ) {
            (Some(s), Some(r), p) => (
                format!("{s:.3}"),
                match result.unit {
                    "chunks" => format!("{:.1}k {}", r / 1e3, result.unit),
                    "bytes" => format!("{:.0} MB", r / 1e6),
                    unit => format!("{:.2}M {unit}", r / 1e6),
                },
                p.map_or("-".into(), |p| format!("{:.1}", mib(p))),
            ),
            _ => ("-".into(), "-".into(), "-".into()),
        };
        let verdict = match (&result.note, result.pass) {
            (Some(note), _) => format!("FAIL ({note})"),
            (None, true) => "PASS".to_string(),
            (None, false) => "FAIL".to_string(),
        };
        println!(
            "{:<10} {:>9}  {:<40} {seconds:>9} {rate:>14} {peak:>10}  {:<28} {verdict}",
            result.kind,
            label(result.records),
            result.tool,
            target_text(result)
        );
        if let Some(cache) = &result.cache {
            println!("{:<22}{}", "", cache_line(cache, result.wall_seconds));
        }
    }
    println!("(targets are set at 16M records; smaller sizes are shown against the same figures)");
}

/// The line under a cold row: the ratio to the warm time, the disk reads and
/// whether the runs really started cold.
fn cache_line(cache: &CacheFigures, cold_seconds: Option<f64>) -> String {
    let ratio = cold_seconds.map_or("-".to_string(), |cold| {
        format!("{:.1}x", cold / cache.warm_seconds)
    });
    let mut line = format!(
        "{ratio} the warm {:.3} s; {:.1} MiB read from disk; {:.1} MiB resident after the drop",
        cache.warm_seconds,
        mib(cache.disk_read_bytes),
        mib(cache.resident_after_bytes)
    );
    if let Some(why) = &cache.fallback {
        line.push_str(&format!("; {why}"));
    }
    if let Some(why) = &cache.not_cold {
        line.push_str(&format!("; NOT cold: {why}"));
    }
    line
}

fn write_results(bench_dir: &Path, results: &[BenchResult], cold: bool) -> Result<PathBuf> {
    fs::create_dir_all(bench_dir)?;
    let path = bench_dir.join("results.json");
    let document = Results {
        format_version: RESULTS_FORMAT_VERSION,
        generated_by: "cargo xtask bench",
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        page_cache: if cold {
            "warm: the images were written just before the runs; rows with `cache`: the \
             page cache of the tool's input files was emptied before each run"
        } else {
            "warm: the images were written just before the runs"
        },
        wall_time: "median of the runs, spawn to exit",
        dump_output: "/dev/null",
        results,
    };
    let text = serde_json::to_string_pretty(&document)?;
    fs::write(&path, text + "\n").with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_repair_that_loses_records_is_a_good_run_and_other_exits_are_not() {
        assert_eq!(Job::RepairDamaged.good_exits(), &[0, 3]);
        assert_eq!(Job::Repair.good_exits(), &[0]);
        let dir = tempfile::tempdir().unwrap();
        let exit = |code: i32| {
            let mut command = Command::new("sh");
            command.args(["-c", &format!("exit {code}")]);
            command
        };
        run_with_exits(exit(3), dir.path(), "lossy", "a damaged store", &[0, 3]).unwrap();
        let refused = run_checked(exit(3), dir.path(), "lossy", "a clean store").unwrap_err();
        assert!(
            refused.to_string().contains("Some(3) on a clean store"),
            "{refused}"
        );
    }

    #[test]
    fn cold_options_parse() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        use clap::Parser;
        let plain = Cli::try_parse_from(["bench"]).unwrap().bench;
        assert!(!plain.cold);
        assert_eq!(plain.cold_method, ColdMethod::Fadvise);
        let cold = Cli::try_parse_from(["bench", "--cold", "--cold-method", "drop-caches"])
            .unwrap()
            .bench;
        assert!(cold.cold);
        assert_eq!(cold.cold_method, ColdMethod::DropCaches);
        assert!(Cli::try_parse_from(["bench", "--cold-method", "sometimes"]).is_err());
    }

    #[test]
    fn a_cold_row_shows_its_ratio_and_method() {
        assert_eq!(
            cold_tool_name("cowcheck", ColdMethod::Fadvise),
            "cowcheck [cold, fadvise]"
        );
        let cache = CacheFigures {
            method: "fadvise",
            fallback: Some("drop-caches needs root: used fadvise".to_string()),
            cold: true,
            not_cold: None,
            resident_after_bytes: 0,
            disk_read_bytes: 3 << 20,
            warm_seconds: 0.5,
            max_cold_over_warm: Some(COLD_CHECK_RATIO),
        };
        assert_eq!(
            cache_line(&cache, Some(2.0)),
            "4.0x the warm 0.500 s; 3.0 MiB read from disk; 0.0 MiB resident after the drop; \
             drop-caches needs root: used fadvise"
        );
        let mut row = BenchResult {
            cache: Some(cache),
            ..BenchResult::of_tool(&summary(), "cowcheck".into(), 1.0, None)
        };
        assert_eq!(target_text(&row), "<= 4x warm");
        row.cache = None;
        assert_eq!(target_text(&row), ">= 0M rec/s");
    }

    fn summary() -> GenSummary {
        GenSummary {
            kind: cowfmt::StoreKind::Shared,
            records: 1024,
            chunk_sectors: 8,
            cow_bytes: 16 << 20,
            cow_chunks: 4096,
            areas: 4,
            origin_bytes: 16 << 20,
            origin_chunks: 4096,
            status: String::new(),
            table: String::new(),
            elapsed: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn labels() {
        assert_eq!(label(16 << 20), "16M");
        assert_eq!(label(512 << 10), "512k");
        assert_eq!(label(1000), "1000");
    }
}
