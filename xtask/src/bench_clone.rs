//! The dm-clone figures of `cargo xtask bench`: `cowcheck` and `cowdump
//! --format json` on clone metadata at the kernel's region limit (2^31
//! regions: an 8 TiB target in 4 KiB regions, about 257 MiB of array
//! blocks), half of the regions hydrated in runs. The metadata is written by
//! `cargo xtask gen-clone` in a child process (so its memory never counts in
//! the tools' figures) through cowfmt's clone writer. Targets: at least
//! [`CLONE_BYTES_PER_SECOND`] of metadata read, in less than
//! [`CLONE_BASE_MEMORY`] plus one bit per region.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use cowfmt::bitset::DenseBitmap;
use cowfmt::clone::check::check;
use cowfmt::clone::geometry::Geometry;
use cowfmt::clone::write::write_clone;
use cowfmt::device::{Access, Device};

use crate::bench::{measure_runs, run_checked, BenchResult};
use crate::prng::SplitMix64;
use crate::tools::{build_release_package, target_dir, Tools};

/// Metadata bytes per second cowcheck and cowdump must read at 2^31 regions.
pub const CLONE_BYTES_PER_SECOND: f64 = 1e9;
/// Memory allowed besides one bit per region.
pub const CLONE_BASE_MEMORY: u64 = 64 << 20;
/// The kernel's region limit, the size measured by default.
pub const CLONE_BENCH_REGIONS: u64 = 1 << 31;
/// Region size of the benchmark metadata: 4 KiB.
const REGION_SECTORS: u64 = 8;
/// Mean length of a hydrated run, and of a gap between two runs, in regions.
const MEAN_RUN: u64 = 1024;
/// Size of the benchmark's metadata image (sparse): room for 2^31 regions'
/// 65,924 array blocks, their B-tree and the space map, twice over.
const METADATA_BYTES: u64 = 512 << 20;

/// Arguments of `cargo xtask gen-clone`.
#[derive(Debug, Clone, Args)]
pub struct GenCloneArgs {
    /// The metadata image to write (replaced).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Regions of the target (region size 4 KiB).
    #[arg(long, value_name = "N", default_value_t = CLONE_BENCH_REGIONS)]
    pub regions: u64,
    /// Seed of the run lengths.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the figures of what was generated, as JSON.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

/// Arguments of `cargo xtask check-clone`.
#[derive(Debug, Clone, Args)]
pub struct CheckCloneArgs {
    /// The metadata image to check.
    pub metadata: PathBuf,
}

/// What `gen-clone` wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloneSummary {
    /// Region size in sectors.
    pub region_sectors: u64,
    /// Target size in sectors.
    pub target_sectors: u64,
    /// Regions of the target.
    pub nr_regions: u64,
    /// Regions marked hydrated.
    pub hydrated_regions: u64,
    /// Hydrated runs.
    pub runs: u64,
    /// Metadata blocks in use (the space map's allocated count).
    pub metadata_blocks: u64,
    /// Size of the metadata image.
    pub metadata_bytes: u64,
}

/// Hydrated runs covering about half of `0..nr_regions`: gaps and runs of
/// lengths drawn uniformly from `1..2 * MEAN_RUN`, alternating, from a
/// seeded generator (the same seed, the same metadata).
pub struct HydratedRuns {
    random: SplitMix64,
    next: u64,
    nr_regions: u64,
}

impl HydratedRuns {
    /// The runs of a target of `nr_regions` regions.
    pub fn new(nr_regions: u64, seed: u64) -> Self {
        HydratedRuns {
            random: SplitMix64::new(seed),
            next: 0,
            nr_regions,
        }
    }

    fn length(&mut self) -> u64 {
        1 + self.random.below(2 * MEAN_RUN - 1)
    }
}

impl Iterator for HydratedRuns {
    /// `(start, count)` of one hydrated run.
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let start = self.next + self.length();
        if start >= self.nr_regions {
            self.next = self.nr_regions;
            return None;
        }
        let count = self.length().min(self.nr_regions - start);
        self.next = start + count;
        Some((start, count))
    }
}

/// The bitset words (bit `i % 64` of word `i / 64` = region `i`) of `runs`
/// over `nr_regions` regions, streamed.
pub fn words_of_runs(
    runs: impl Iterator<Item = (u64, u64)>,
    nr_regions: u64,
) -> impl Iterator<Item = u64> {
    let nr_words = nr_regions.div_ceil(64);
    let mut runs = runs.peekable();
    (0..nr_words).map(move |index| {
        let first = index * 64;
        let end = first + 64;
        let mut word = 0u64;
        while let Some(&(start, count)) = runs.peek() {
            if start >= end {
                break;
            }
            let from = start.max(first) - first;
            let to = (start + count).min(end) - first;
            word |= mask(from, to);
            if start + count > end {
                break;
            }
            runs.next();
        }
        word
    })
}

/// Bits `from..to` of a word (`to` <= 64).
fn mask(from: u64, to: u64) -> u64 {
    let upper = if to == 64 { u64::MAX } else { (1u64 << to) - 1 };
    upper & !((1u64 << from) - 1)
}

/// `cargo xtask gen-clone`: writes the benchmark metadata through cowfmt's
/// clone writer and its summary.
pub fn gen_clone(args: &GenCloneArgs) -> Result<()> {
    let summary = write_metadata(&args.out, args.regions, args.seed)?;
    println!(
        "{}: {} regions, {} hydrated in {} runs, {} metadata blocks",
        args.out.display(),
        summary.nr_regions,
        summary.hydrated_regions,
        summary.runs,
        summary.metadata_blocks
    );
    if let Some(path) = &args.summary_json {
        fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// Writes fresh clone metadata of `regions` 4 KiB regions, hydrated as
/// [`HydratedRuns`] says, to `path` through cowfmt's clone writer.
fn write_metadata(path: &Path, regions: u64, seed: u64) -> Result<CloneSummary> {
    let target_sectors = regions * REGION_SECTORS;
    let geometry = Geometry::new(REGION_SECTORS, target_sectors)
        .map_err(|error| anyhow::anyhow!("{regions} regions: {error}"))?;
    let nr_blocks = geometry
        .check_metadata_device(METADATA_BYTES)
        .map_err(|error| anyhow::anyhow!("{regions} regions: {error}"))?;
    let (mut runs, mut hydrated) = (0, 0);
    let counted = HydratedRuns::new(regions, seed).inspect(|&(_, count)| {
        runs += 1;
        hydrated += count;
    });
    let words: Vec<u64> = words_of_runs(counted, regions).collect();
    let bits = DenseBitmap::from_words(words, regions);
    let _ = fs::remove_file(path);
    let mut device = Device::create_or_extend(path, METADATA_BYTES)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    let written = write_clone(&mut device, &geometry, nr_blocks, &bits)
        .with_context(|| format!("{}: cannot write the clone metadata", path.display()))?;
    Ok(CloneSummary {
        region_sectors: REGION_SECTORS,
        target_sectors,
        nr_regions: regions,
        hydrated_regions: hydrated,
        runs,
        metadata_blocks: written.sm_root.nr_allocated,
        metadata_bytes: METADATA_BYTES,
    })
}

/// `cargo xtask check-clone`: checks the metadata with cowfmt's
/// `clone::check` (the library checker cowcheck's clone arm renders), prints
/// its status line, and fails on any error found.
pub fn check_clone(args: &CheckCloneArgs) -> Result<()> {
    let path = &args.metadata;
    let device = Device::open(path, Access::ReadOnly)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    let report = check(&device, None)?;
    for finding in &report.violations {
        eprintln!("{}: {}", path.display(), finding.describe());
    }
    if let Some(status) = &report.status {
        println!("{}", status.line());
    }
    if report.has_errors() {
        bail!("{}: the clone metadata has errors", path.display());
    }
    Ok(())
}

/// A tool run on the benchmark metadata.
#[derive(Debug, Clone, Copy)]
enum CloneJob {
    Check,
    LibraryCheck,
    DumpJson,
}

impl CloneJob {
    fn name(self) -> &'static str {
        match self {
            CloneJob::Check => "cowcheck",
            CloneJob::LibraryCheck => "clone::check (library)",
            CloneJob::DumpJson => "cowdump --format json",
        }
    }

    /// The file names of its output.
    fn output_name(self) -> &'static str {
        match self {
            CloneJob::Check => "cowcheck",
            CloneJob::LibraryCheck => "check-clone",
            CloneJob::DumpJson => "cowdump",
        }
    }

    fn command(self, tools: &Tools, runner: &Path, metadata: &Path) -> Command {
        let mut command = match self {
            CloneJob::Check => tools.command("cowcheck"),
            CloneJob::LibraryCheck => {
                let mut command = Command::new(runner);
                command.arg("check-clone");
                command
            }
            CloneJob::DumpJson => {
                let mut command = tools.command("cowdump");
                command.args(["--format", "json", "-o", "/dev/null"]);
                command
            }
        };
        command.arg(metadata);
        command
    }
}

/// Which tools the clone benchmark runs.
#[derive(Debug, Clone, Copy)]
pub struct CloneJobs {
    /// cowcheck, and cowfmt's clone::check in a release child of its own
    /// (the checker cowcheck renders; measured also where cowcheck has no
    /// clone arm).
    pub check: bool,
    /// cowdump --format json to /dev/null.
    pub dump: bool,
}

/// Generates the metadata of `regions` regions under `bench_dir`, measures
/// the `jobs` on it `runs` times each, and removes it unless `keep`.
pub fn run(
    tools: &Tools,
    bench_dir: &Path,
    regions: u64,
    runs: u32,
    keep: bool,
    jobs: CloneJobs,
) -> Result<Vec<BenchResult>> {
    let runner = build_release_package("xtask")
        .map(|()| target_dir().join("release").join("xtask"))
        .context("the release xtask runs gen-clone and check-clone")?;
    let dir = bench_dir.join(format!("clone-{regions}"));
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let metadata = dir.join("meta.img");
    let summary_path = dir.join("summary.json");
    println!(
        "\n=== clone metadata, {regions} regions: generating it in {}",
        dir.display()
    );
    let status = Command::new(&runner)
        .arg("gen-clone")
        .arg("--out")
        .arg(&metadata)
        .arg("--regions")
        .arg(regions.to_string())
        .arg("--summary-json")
        .arg(&summary_path)
        .status()
        .context("cannot run gen-clone")?;
    if !status.success() {
        bail!("gen-clone failed ({status})");
    }
    let summary: CloneSummary = serde_json::from_str(
        &fs::read_to_string(&summary_path)
            .with_context(|| format!("{}: cannot read", summary_path.display()))?,
    )?;
    let mut results = Vec::new();
    for (job, wanted) in [
        (CloneJob::Check, jobs.check),
        (CloneJob::LibraryCheck, jobs.check),
        (CloneJob::DumpJson, jobs.dump),
    ] {
        if wanted {
            let mut result = clone_result(&summary, job);
            let one = || {
                let command = job.command(tools, &runner, &metadata);
                run_checked(command, &dir, job.output_name(), "clean clone metadata")
            };
            match measure_runs(&mut result, runs, one) {
                Ok(()) => {}
                Err(refused) if matches!(job, CloneJob::Check) => {
                    result.note = Some(format!("cowcheck refused the metadata: {refused:#}"));
                    println!("cowcheck: skipped: {refused:#}");
                }
                Err(error) => return Err(error),
            }
            results.push(result);
        }
    }
    if !keep {
        fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    }
    Ok(results)
}

/// The result line of `job` on the metadata `summary` describes, before
/// any run: a rate in metadata bytes per second.
fn clone_result(summary: &CloneSummary, job: CloneJob) -> BenchResult {
    BenchResult {
        kind: "clone",
        tool: job.name().to_string(),
        unit: "bytes",
        records: summary.metadata_blocks * cowfmt::clone::superblock::METADATA_BLOCK_BYTES as u64,
        chunk_bytes: summary.region_sectors * cowfmt::SECTOR_BYTES,
        cow_chunks: summary.nr_regions,
        origin_chunks: 0,
        runs: Vec::new(),
        wall_seconds: None,
        records_per_second: None,
        peak_rss_bytes: None,
        target_records_per_second: CLONE_BYTES_PER_SECOND,
        memory_budget_bytes: Some(CLONE_BASE_MEMORY + summary.nr_regions.div_ceil(8)),
        pass: false,
        note: None,
        cpu_seconds: None,
        load_average: None,
        cache: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_about_half_and_stay_in_range() {
        let nr = 1 << 22;
        let runs: Vec<_> = HydratedRuns::new(nr, 7).collect();
        let hydrated: u64 = runs.iter().map(|&(_, count)| count).sum();
        assert!(
            hydrated > nr * 45 / 100 && hydrated < nr * 55 / 100,
            "{hydrated}"
        );
        assert!(runs.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0));
        let &(start, count) = runs.last().unwrap();
        assert!(start + count <= nr);
    }

    #[test]
    fn words_hold_exactly_the_runs() {
        let nr = 1000;
        let runs = vec![(0, 1), (3, 70), (130, 62), (999, 1)];
        let words: Vec<u64> = words_of_runs(runs.clone().into_iter(), nr).collect();
        assert_eq!(words.len(), 16);
        for region in 0..nr {
            let want = runs
                .iter()
                .any(|&(start, count)| region >= start && region < start + count);
            let got = words[(region / 64) as usize] >> (region % 64) & 1 == 1;
            assert_eq!(got, want, "region {region}");
        }
    }
}
