//! The restore figures of `cargo xtask bench`: `cowdump` writes the store's
//! YAML and JSON dumps to files, and `mkcow --from-dump` restores each into a
//! new image. Targets: the restore takes at most [`RESTORE_TIME_FACTOR`] times
//! what `cowdump` took to write the same dump (measured in the same run), in
//! less than [`RESTORE_BASE_MEMORY`] plus its bitmaps, at the sizes issue 8
//! names ([`TARGET_RECORDS_PERSISTENT`], [`TARGET_RECORDS_SHARED`]); smaller
//! stores are figures only (the restore's fixed costs, its threads and its
//! one sync, weigh more against a dump of a second or less).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::bench::{fill_figures, BenchResult};
use crate::gen_store::GenSummary;
use crate::measure::{self, Measured};
use crate::tools::Tools;

/// A restore may take this many times the dump's wall time.
pub const RESTORE_TIME_FACTOR: f64 = 3.0;

/// The persistent store size the time target is set at.
pub const TARGET_RECORDS_PERSISTENT: u64 = 16 << 20;

/// The shared store size (64 snapshots) the time target is set at.
pub const TARGET_RECORDS_SHARED: u64 = 4 << 20;
/// Restore memory before its bitmaps.
pub const RESTORE_BASE_MEMORY: u64 = 64 << 20;

/// Dumps the store at `cow` in both formats and restores each dump; the
/// results are the dump's figures and the restore's against the targets.
pub fn run(
    tools: &Tools,
    dir: &Path,
    cow: &Path,
    summary: &GenSummary,
    runs: u32,
) -> Result<Vec<BenchResult>> {
    let cow_bytes = fs::metadata(cow)?.len();
    let restored = dir.join("restored.img");
    let mut results = Vec::new();
    for format in ["yaml", "json"] {
        let dump = dir.join(format!("dump.{format}"));
        let dumped = repeat(
            runs,
            dir,
            &format!("cowdump --format {format} -o FILE"),
            || {
                let _ = fs::remove_file(&dump);
                let mut command = tools.command("cowdump");
                command.args(["--format", format, "-o"]).arg(&dump).arg(cow);
                command
            },
        )?;
        let mut dump_result = BenchResult::of_tool(
            summary,
            format!("cowdump --format {format} -o FILE"),
            0.0,
            None,
        );
        fill_figures(&mut dump_result, &dumped);
        let dump_seconds = dump_result.wall_seconds.unwrap_or(f64::INFINITY);
        let restores = repeat(runs, dir, &format!("mkcow --from-dump {format}"), || {
            let _ = fs::remove_file(&restored);
            let mut command = tools.command("mkcow");
            command
                .args(["-q", "--size", &cow_bytes.to_string(), "--from-dump"])
                .arg(&dump)
                .arg(&restored);
            command
        })?;
        let target_size = match summary.kind {
            cowfmt::StoreKind::Shared => TARGET_RECORDS_SHARED,
            _ => TARGET_RECORDS_PERSISTENT,
        };
        let target = if summary.records >= target_size {
            summary.records as f64 / (RESTORE_TIME_FACTOR * dump_seconds)
        } else {
            0.0
        };
        let mut restore_result = BenchResult::of_tool(
            summary,
            format!("mkcow --from-dump ({format})"),
            target,
            Some(memory_budget(summary)),
        );
        fill_figures(&mut restore_result, &restores);
        let ratio = restore_result.wall_seconds.unwrap_or(f64::INFINITY) / dump_seconds;
        if target > 0.0 {
            println!(
                "mkcow --from-dump ({format}): {ratio:.2}x the dump's time (target at most {RESTORE_TIME_FACTOR}x)"
            );
        } else {
            println!(
                "mkcow --from-dump ({format}): {ratio:.2}x the dump's time (a figure: the target is set at {target_size} records)"
            );
        }
        results.push(dump_result);
        results.push(restore_result);
        let _ = fs::remove_file(&dump);
        let _ = fs::remove_file(&restored);
    }
    Ok(results)
}

/// 64 MiB plus the bitmaps: a persistent restore keeps a bit per COW chunk
/// (data chunks used) and per origin chunk (chunks mapped); a shared one a
/// bit per COW chunk (the allocation bitmap).
fn memory_budget(summary: &GenSummary) -> u64 {
    let cow = summary.cow_chunks.div_ceil(8);
    match summary.kind {
        cowfmt::StoreKind::Shared => RESTORE_BASE_MEMORY + cow,
        _ => RESTORE_BASE_MEMORY + cow + summary.origin_chunks.div_ceil(8),
    }
}

/// Writes back every dirty page of the machine before a measured run, so a
/// run pays for its own writes only: a restore syncs its output before the
/// header goes last, and must not also flush the dump cowdump just wrote (or
/// the previous run's output) through that sync.
fn flush_dirty_pages() -> Result<()> {
    let status = Command::new("sync").status()?;
    if !status.success() {
        bail!("sync ended with {status}");
    }
    Ok(())
}

/// Runs the command `make` builds `runs` times, each after
/// [`flush_dirty_pages`]; any exit but 0 is an error.
fn repeat(
    runs: u32,
    dir: &Path,
    name: &str,
    mut make: impl FnMut() -> Command,
) -> Result<Vec<Measured>> {
    let stderr = dir.join("restore-bench.stderr");
    let mut measured = Vec::new();
    for run in 1..=runs {
        let mut command = make();
        flush_dirty_pages()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr)?);
        let one = measure::run(&mut command)?;
        if one.exit_code != Some(0) {
            let text = fs::read_to_string(&stderr).unwrap_or_default();
            bail!("{name} ended with {:?}: {}", one.exit_code, text.trim());
        }
        println!(
            "{name} run {run}/{runs}: {:.3} s, peak {:.1} MiB",
            one.wall.as_secs_f64(),
            one.peak_rss_bytes as f64 / f64::from(1u32 << 20)
        );
        measured.push(one);
    }
    Ok(measured)
}
