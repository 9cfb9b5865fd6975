//! The shared engine's origin-write figures of `cargo xtask bench`: 4 KiB
//! origin writes at random chunks, each copied out (data and record) for the
//! snapshots that still see the origin there, with 1, 8 and 64 snapshots taken
//! at even steps of the run, committing every 1, 64 and 4096 writes, through
//! the journal and in place (a store with no journal); and 1 and 2 writer
//! threads through [`cowengine::Engine`], which commits each write's copy-outs
//! before the write lands. Beside them, as figures: the target cell committing
//! with `SharedStore::commit` (which also syncs the origin), and on devices in
//! memory (the engine's own cost). Each cell runs in a child process
//! ([`crate::engine_cell`]) on filled image files, so its peak memory is its own.
//! Last, as figures, [`crate::engine_seq`]: 1 MiB sequential origin writes
//! over a 64 MiB origin, first write and rewrite, CPU per chunk and device
//! calls per request.
//!
//! Targets: at least [`TARGET_CHUNKS_PER_SECOND`] with 8 snapshots and a commit
//! every 4096 writes through the journal (warm page cache, the commits' syncs
//! included); the journal costs at most [`JOURNAL_COST`] against the in-place
//! commit of the same cell (measured in the same run).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::bench::BenchResult;
use crate::engine_cell::{CellFigures, CHUNK_BYTES};
use crate::measure;
use crate::tools::{build_release_package, target_dir};

/// Chunks per second the journaled engine must reach with
/// [`TARGET_SNAPSHOTS`] snapshots and a commit every [`TARGET_COMMIT_EVERY`] writes.
pub const TARGET_CHUNKS_PER_SECOND: f64 = 100_000.0;
/// Snapshots of the throughput target.
pub const TARGET_SNAPSHOTS: u32 = 8;
/// Commit interval of the throughput target.
pub const TARGET_COMMIT_EVERY: u64 = 4096;
/// The most the journal may cost against the in-place commit (a fraction of
/// the in-place rate).
pub const JOURNAL_COST: f64 = 0.20;
/// Snapshot counts measured.
const SNAPSHOTS: [u32; 3] = [1, 8, 64];
/// Commit intervals measured.
const COMMIT_EVERY: [u64; 3] = [1, 64, 4096];
/// Writer threads through `Engine` (with [`TARGET_SNAPSHOTS`] snapshots).
const THREADS: [u32; 2] = [1, 2];
/// Cells that commit every 64 writes run this many times fewer writes.
const EVERY_64_DIVISOR: u64 = 4;
/// Cells that commit every write (through `Engine` too) run this many times
/// fewer writes: each costs a commit's syncs.
const PER_WRITE_DIVISOR: u64 = 256;

/// How a cell commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commits {
    /// One caller through `SharedStore`, a commit every so many writes.
    Every(u64),
    /// Writer threads through `Engine`, which commits each write's copy-outs.
    Threads(u32),
}

/// One measurement: snapshots, commits, journal or in place.
#[derive(Debug, Clone, Copy)]
struct Cell {
    snapshots: u32,
    commits: Commits,
    journal: bool,
    writes: u64,
    /// What else the cell does (variants are figures only).
    variant: Variant,
}

/// The cells beside the matrix, figures only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The matrix: image files, each commit `SharedStore`'s metadata commit
    /// (what `Engine` makes of each transaction; the origin is not synced).
    Plain,
    /// Each commit is `SharedStore::commit`, which also syncs the origin.
    OriginSynced,
    /// Each write through `SharedStore::origin_write`, which writes the
    /// origin before the copy-out is committed (not crash-safe).
    PerWrite,
    /// Devices in memory: the engine's own cost.
    Memory,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Plain => "",
            Variant::OriginSynced => ", origin synced",
            Variant::PerWrite => ", per write (not crash-safe)",
            Variant::Memory => ", memory",
        }
    }
}

impl Cell {
    fn name(&self) -> String {
        let how = match self.commits {
            Commits::Every(n) => format!("commit/{n}"),
            Commits::Threads(t) => format!("Engine x{t}"),
        };
        let mode = if self.journal { "journal" } else { "in place" };
        format!(
            "engine {} snap, {how}, {mode}{}",
            self.snapshots,
            self.variant.label()
        )
    }

    fn is_target(&self) -> bool {
        self.journal
            && self.variant == Variant::Plain
            && self.snapshots == TARGET_SNAPSHOTS
            && self.commits == Commits::Every(TARGET_COMMIT_EVERY)
    }
}

/// A measured cell.
struct Measured {
    cell: Cell,
    figures: CellFigures,
    peak_rss_bytes: u64,
    /// The load average when the cell started.
    load: f64,
    /// Wall seconds of every run of the cell (this one's among them).
    runs: Vec<f64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.cell.writes as f64 / self.figures.seconds
    }

    /// Writes per second of CPU time: the rate an idle machine would reach
    /// if the I/O kept up.
    fn cpu_rate(&self) -> f64 {
        self.cell.writes as f64 / self.figures.cpu_seconds
    }
}

/// Runs every cell `runs` times (in place and journal in turn) with `writes`
/// origin writes (a quarter with a commit every 64 writes, 1/256 with a
/// commit every write), images under `dir`; the median run of each cell is
/// reported. Returns the results with their verdicts.
pub fn run(dir: &Path, writes: u64, runs: u32) -> Result<Vec<BenchResult>> {
    let writes_for = |every: u64| match every {
        1 => (writes / PER_WRITE_DIVISOR).max(64),
        64 => (writes / EVERY_64_DIVISOR).max(64 * 16),
        _ => writes,
    };
    let mut cells = Vec::new();
    for snapshots in SNAPSHOTS {
        for every in COMMIT_EVERY {
            for journal in [false, true] {
                cells.push(Cell {
                    snapshots,
                    commits: Commits::Every(every),
                    journal,
                    writes: writes_for(every),
                    variant: Variant::Plain,
                });
            }
        }
    }
    for threads in THREADS {
        for journal in [false, true] {
            cells.push(Cell {
                snapshots: TARGET_SNAPSHOTS,
                commits: Commits::Threads(threads),
                journal,
                writes: writes_for(1),
                variant: Variant::Plain,
            });
        }
    }
    for variant in [Variant::OriginSynced, Variant::PerWrite, Variant::Memory] {
        for journal in [false, true] {
            cells.push(Cell {
                snapshots: TARGET_SNAPSHOTS,
                commits: Commits::Every(TARGET_COMMIT_EVERY),
                journal,
                writes,
                variant,
            });
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let runner = build_release_runner()?;
    println!(
        "\n=== engine: 4 KiB origin writes, data copied, filled images under {}",
        dir.display()
    );
    let mut all: Vec<Vec<Measured>> = cells.iter().map(|_| Vec::new()).collect();
    for run in 1..=runs {
        for (cell, done) in cells.iter().zip(&mut all) {
            let one = run_cell(&runner, dir, *cell)?;
            println!(
                "{} (run {run}/{runs}): {} writes in {:.3} s ({:.3} s in {} commits, {} transactions for {} commit requests; CPU {:.3} s), {:.0} chunks/s ({:.0} per CPU second), peak {:.1} MiB, {} chunks used, tree_level {}, load {:.1}; {}",
                cell.name(),
                cell.writes,
                one.figures.seconds,
                one.figures.commit_seconds,
                one.figures.commits,
                one.figures.transactions,
                one.figures.commit_requests,
                one.figures.cpu_seconds,
                one.rate(),
                one.cpu_rate(),
                mib(one.peak_rss_bytes),
                one.figures.used_chunks,
                one.figures.tree_level,
                one.load,
                one.figures.commit_mode
            );
            done.push(one);
        }
    }
    let measured: Vec<Measured> = all.into_iter().map(median_run).collect();
    let mut results = judge(&measured);
    print_matrix(&measured);
    println!("\n=== engine: 1 MiB sequential origin writes (cowrt serve under dd bs=1M)");
    results.extend(crate::engine_seq::bench(&runner, dir, runs)?);
    Ok(results)
}

/// Builds xtask in release (the engine is generic over its devices, so its
/// code is compiled in the crate that uses it: a cell run from the dev build
/// would measure unoptimised engine code) and returns the binary.
fn build_release_runner() -> Result<PathBuf> {
    build_release_package("xtask")?;
    Ok(target_dir().join("release").join("xtask"))
}

/// The 1-minute load average, to read the wall times against.
fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Runs `cell` in a child process of `runner` and reads its figures.
fn run_cell(runner: &Path, dir: &Path, cell: Cell) -> Result<Measured> {
    let cell_dir = dir.join("cell");
    let out = dir.join("cell.json");
    let stderr = dir.join("cell.stderr");
    let _ = fs::remove_file(&out);
    let load = load_average();
    let mut command = Command::new(runner);
    command
        .arg("engine-cell")
        .arg("--dir")
        .arg(&cell_dir)
        .arg("--out")
        .arg(&out)
        .args(["--snapshots", &cell.snapshots.to_string()])
        .args(["--writes", &cell.writes.to_string()]);
    match cell.commits {
        Commits::Every(n) => command.args(["--commit-every", &n.to_string()]),
        Commits::Threads(t) => command.args(["--threads", &t.to_string()]),
    };
    if cell.journal {
        command.arg("--journal");
    }
    match cell.variant {
        Variant::Plain => {}
        Variant::OriginSynced => {
            command.arg("--origin-sync");
        }
        Variant::PerWrite => {
            command.arg("--per-write");
        }
        Variant::Memory => {
            command.arg("--memory");
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?);
    let run = measure::run(&mut command)?;
    let _ = fs::remove_dir_all(&cell_dir);
    if run.exit_code != Some(0) {
        let text = fs::read_to_string(&stderr).unwrap_or_default();
        bail!(
            "{}: the engine-cell run ended with {:?}: {}",
            cell.name(),
            run.exit_code,
            text.trim()
        );
    }
    let figures: CellFigures = serde_json::from_str(
        &fs::read_to_string(&out).with_context(|| format!("{}: cannot read", out.display()))?,
    )
    .with_context(|| format!("{}: not the figures of a cell", out.display()))?;
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&stderr);
    let figures_seconds = figures.seconds;
    Ok(Measured {
        cell,
        figures,
        peak_rss_bytes: run.peak_rss_bytes,
        load,
        runs: vec![figures_seconds],
    })
}

/// The run of median wall time, with the highest peak memory of all runs.
fn median_run(mut runs: Vec<Measured>) -> Measured {
    let peak = runs.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0);
    let seconds: Vec<f64> = runs.iter().map(|m| m.figures.seconds).collect();
    runs.sort_by(|a, b| a.figures.seconds.total_cmp(&b.figures.seconds));
    let mut median = runs.swap_remove(runs.len() / 2);
    median.peak_rss_bytes = peak;
    median.runs = seconds;
    median
}

/// The in-place cell that `journaled` is compared with.
fn in_place_of<'a>(measured: &'a [Measured], journaled: &Cell) -> Option<&'a Measured> {
    measured.iter().find(|m| {
        !m.cell.journal
            && m.cell.variant == journaled.variant
            && m.cell.snapshots == journaled.snapshots
            && m.cell.commits == journaled.commits
    })
}

/// The results: every cell a figure; every journaled cell judged against
/// `1 - JOURNAL_COST` of its in-place twin, and the target cell also against
/// [`TARGET_CHUNKS_PER_SECOND`].
fn judge(measured: &[Measured]) -> Vec<BenchResult> {
    measured
        .iter()
        .map(|m| {
            let mut result = BenchResult {
                kind: "shared",
                tool: m.cell.name(),
                unit: "chunks",
                records: m.cell.writes,
                chunk_bytes: CHUNK_BYTES,
                cow_chunks: m.figures.cow_chunks,
                origin_chunks: m.figures.origin_chunks,
                runs: m.runs.clone(),
                wall_seconds: Some(m.figures.seconds),
                records_per_second: Some(m.rate()),
                peak_rss_bytes: Some(m.peak_rss_bytes),
                target_records_per_second: 0.0,
                memory_budget_bytes: None,
                pass: true,
                note: None,
                cpu_seconds: Some(m.figures.cpu_seconds),
                load_average: Some(m.load),
                cache: None,
            };
            if !m.cell.journal || m.cell.variant != Variant::Plain {
                return result;
            }
            let mut problems = Vec::new();
            if !m.figures.journaled {
                problems.push(format!(
                    "the store did not commit through its journal: {}",
                    m.figures.commit_mode
                ));
            }
            if let Some(twin) = in_place_of(measured, &m.cell) {
                let floor = (1.0 - JOURNAL_COST) * twin.rate();
                result.target_records_per_second = floor;
                if m.rate() < floor {
                    problems.push(format!(
                        "journal costs {:.0}% against in place, more than {:.0}%",
                        100.0 * (1.0 - m.rate() / twin.rate()),
                        100.0 * JOURNAL_COST
                    ));
                }
            }
            if m.cell.is_target() {
                result.target_records_per_second = result
                    .target_records_per_second
                    .max(TARGET_CHUNKS_PER_SECOND);
                if m.rate() < TARGET_CHUNKS_PER_SECOND {
                    problems.push(format!(
                        "{:.0} chunks/s, below {:.0}",
                        m.rate(),
                        TARGET_CHUNKS_PER_SECOND
                    ));
                }
            }
            result.pass = problems.is_empty();
            result.note = (!problems.is_empty()).then(|| problems.join("; "));
            result
        })
        .collect()
}

/// The matrix: in place and journal side by side, the ratio, peak memory,
/// and the PASS/FAIL lines of the targets.
fn print_matrix(measured: &[Measured]) {
    println!(
        "\nengine origin writes (4 KiB, data copied; warm page cache, commits' syncs included)"
    );
    println!("(per CPU s: writes per second of the cell's CPU time, what an idle machine would reach if the disk kept up)");
    println!(
        "{:<6} {:<18} {:>8} {:>12} {:>12} {:>7} {:>14} {:>14} {:>10} {:>10}",
        "snaps",
        "commits",
        "writes",
        "in place/s",
        "journal/s",
        "ratio",
        "in place/CPU s",
        "journal/CPU s",
        "peak MiB",
        "(in place)"
    );
    for m in measured.iter().filter(|m| m.cell.journal) {
        let Some(twin) = in_place_of(measured, &m.cell) else {
            continue;
        };
        let how = match m.cell.commits {
            Commits::Every(n) => format!("every {n}"),
            Commits::Threads(t) => format!("Engine x{t}"),
        } + match m.cell.variant {
            Variant::Plain => "",
            Variant::OriginSynced => " +origin",
            Variant::PerWrite => " per write",
            Variant::Memory => " (mem)",
        };
        println!(
            "{:<6} {:<18} {:>8} {:>12.0} {:>12.0} {:>7.3} {:>14.0} {:>14.0} {:>10.1} {:>10.1}",
            m.cell.snapshots,
            how,
            m.cell.writes,
            twin.rate(),
            m.rate(),
            m.rate() / twin.rate(),
            twin.cpu_rate(),
            m.cpu_rate(),
            mib(m.peak_rss_bytes),
            mib(twin.peak_rss_bytes)
        );
    }
    for m in measured.iter().filter(|m| m.cell.is_target()) {
        let verdict = if m.rate() >= TARGET_CHUNKS_PER_SECOND {
            "PASS"
        } else {
            "FAIL"
        };
        println!(
            "{verdict}: {} at {:.0} chunks/s (target >= {:.0})",
            m.cell.name(),
            m.rate(),
            TARGET_CHUNKS_PER_SECOND
        );
    }
    let worst = measured
        .iter()
        .filter(|m| m.cell.journal && m.cell.variant == Variant::Plain)
        .filter_map(|m| in_place_of(measured, &m.cell).map(|t| (m, m.rate() / t.rate())))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((m, ratio)) = worst {
        let verdict = if ratio >= 1.0 - JOURNAL_COST {
            "PASS"
        } else {
            "FAIL"
        };
        println!(
            "{verdict}: journal cost at most {:.0}% against in place in every cell (worst: {}, {:.0}%)",
            100.0 * JOURNAL_COST,
            m.cell.name(),
            100.0 * (1.0 - ratio)
        );
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}
