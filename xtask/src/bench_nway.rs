//! `cargo xtask bench-nway`: the n-way benchmark in one VM boot
//! (xtask/vm-runtime/guest/bench.sh). For n snapshots of a 64 MiB origin, the
//! time of a first write (every chunk copied out) and of a rewrite (nothing
//! copied), and the COW space used, for one shared store served by
//! `cowrt serve` against n classic dm-snapshots. Medians over the rounds,
//! ratios shared/classic, printed and written to docs/bench.md ("n-way").

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::tools::workspace_root;
use crate::vm_runtime::{run_script, vm_dir, VmBinaries};

/// Heading of the section of docs/bench.md this task rewrites.
const SECTION: &str = "## n-way: shared store vs classic snapshots (`cargo xtask bench-nway`)";

/// Arguments of `cargo xtask bench-nway`.
#[derive(Debug, Clone, Args)]
pub struct BenchNwayArgs {
    /// Where downloads, the VM build, the disk images and the logs go.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Rounds; the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Snapshot counts, comma-separated (at most 16: the VM has 16 classic COWs).
    #[arg(long, default_value = "1,2,4,8,16")]
    pub ns: String,
    /// Print the table only; leave docs/bench.md alone.
    #[arg(long)]
    pub no_write: bool,
    /// No boot: render the results of the last run (VM_DIR/logs-rt/bench/).
    #[arg(long)]
    pub last: bool,
    /// Install libclang with apt-get when it is missing (needs root).
    #[arg(long)]
    pub install_deps: bool,
}

/// One measurement: the guest's
/// `bench KIND N ROUND first S rewrite S space SECTORS meta SECTORS`.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    first: f64,
    rewrite: f64,
    /// Allocated sectors, metadata included.
    space_sectors: f64,
    /// The metadata part (for the shared store: header, bitmap, tree and the
    /// journal mkcow preallocates).
    meta_sectors: f64,
}

impl Sample {
    /// Sectors holding copied data.
    fn data_sectors(&self) -> f64 {
        self.space_sectors - self.meta_sectors
    }
}

/// The samples of one kind ("classic" or "shared") and one n.
type Samples = BTreeMap<(String, u32), Vec<Sample>>;

fn parse(results: &str) -> Result<Samples> {
    let mut samples = Samples::new();
    for (number, line) in results.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"bench") {
            continue;
        }
        let bad = || {
            format!(
                "results line {}: '{line}' is not `bench KIND N ROUND first S rewrite S space \
                 SECTORS meta SECTORS`",
                number + 1
            )
        };
        let labels = [(4, "first"), (6, "rewrite"), (8, "space"), (10, "meta")];
        if words.len() != 12 || labels.iter().any(|&(i, label)| words[i] != label) {
            bail!(bad());
        }
        let n: u32 = words[2].parse().with_context(bad)?;
        let sample = Sample {
            first: words[5].parse().with_context(bad)?,
            rewrite: words[7].parse().with_context(bad)?,
            space_sectors: words[9].parse().with_context(bad)?,
            meta_sectors: words[11].parse().with_context(bad)?,
        };
        samples
            .entry((words[1].to_string(), n))
            .or_default()
            .push(sample);
    }
    Ok(samples)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// Medians of one kind and n.
fn medians(samples: &[Sample]) -> Sample {
    Sample {
        first: median(samples.iter().map(|s| s.first).collect()),
        rewrite: median(samples.iter().map(|s| s.rewrite).collect()),
        space_sectors: median(samples.iter().map(|s| s.space_sectors).collect()),
        meta_sectors: median(samples.iter().map(|s| s.meta_sectors).collect()),
    }
}

fn mib(sectors: f64) -> f64 {
    sectors * 512.0 / (1024.0 * 1024.0)
}

/// The table, with one verdict line per target of issue 10.
fn render(samples: &Samples) -> String {
    let rounds = samples.values().map(Vec::len).max().unwrap_or(0);
    let ns: Vec<u32> = samples
        .keys()
        .map(|(_, n)| *n)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "64 MiB origin, 4 KiB chunks, medians of {rounds} rounds, seconds; TCG, CPU-bound (Linux 6.12 under qemu without KVM, 2 vCPUs): ratios, not disk speeds.\n");
    let _ = writeln!(out, "| n | classic first write | shared first write | shared/classic | classic rewrite | shared rewrite | shared/classic | classic COW data (+ metadata) | shared COW data (+ metadata) | data shared/classic |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for n in ns {
        let (Some(classic), Some(shared)) = (
            samples.get(&("classic".to_string(), n)).map(|s| medians(s)),
            samples.get(&("shared".to_string(), n)).map(|s| medians(s)),
        ) else {
            let _ = writeln!(
                out,
                "| {n} | (missing: see the guest log) | | | | | | | | |"
            );
            continue;
        };
        let first = shared.first / classic.first;
        let rewrite = shared.rewrite / classic.rewrite;
        let space = shared.data_sectors() / classic.data_sectors();
        let _ = writeln!(
            out,
            "| {n} | {:.2} | {:.2} | {first:.2}x | {:.2} | {:.2} | {rewrite:.2}x | {:.1} MiB (+{:.1}) | {:.1} MiB (+{:.1}) | {space:.3} (1/n = {:.3}) |",
            classic.first, shared.first, classic.rewrite, shared.rewrite,
            mib(classic.data_sectors()), mib(classic.meta_sectors),
            mib(shared.data_sectors()), mib(shared.meta_sectors), 1.0 / f64::from(n)
        );
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        match n {
            1 => verdicts.push(format!(
                "n = 1: shared first write within 1.25x of classic: {first:.2}x, {}",
                verdict(first <= 1.25)
            )),
            16 => verdicts.push(format!(
                "n = 16: shared at least 4x faster than classic: {:.2}x faster, {}",
                1.0 / first,
                verdict(first <= 0.25)
            )),
            _ => {}
        }
        if n >= 2 {
            verdicts.push(format!(
                "n = {n}: shared faster than classic: {first:.2}x, {}",
                verdict(first < 1.0)
            ));
        }
        let one_nth = 1.0 / f64::from(n);
        verdicts.push(format!(
            "n = {n}: shared COW data 1/n of classic: {space:.3} (1/n = {one_nth:.3}), {}",
            verdict((space - one_nth).abs() <= 0.05 * one_nth)
        ));
    }
    let _ = writeln!(out, "\nTargets (issue 10):\n");
    for verdict in verdicts {
        let _ = writeln!(out, "- {verdict}");
    }
    out
}

/// Replaces (or appends) the n-way section of docs/bench.md.
fn write_section(table: &str) -> Result<PathBuf> {
    let path = workspace_root().join("docs/bench.md");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let body = format!(
        "{SECTION}\n\nWritten by `cargo xtask bench-nway` (xtask/vm-runtime/guest/bench.sh): one VM boot; per round and n, n classic persistent snapshots (`cowrt dm activate`, COWs cut from one virtio disk with dm linear) and one shared store with n snapshots (`cowrt serve`), 64 MiB written to the origin with `dd bs=1M oflag=direct conv=fsync` twice (first write: every chunk copied out; rewrite: none), page cache dropped before each. COW space: allocated minus metadata sectors, from `dmsetup status` summed over the n snapshots and from `cowrt status` (seed 002's line) for the shared store; the metadata in brackets (the shared store's includes the journal mkcow preallocates: 16 MiB of a 128 MiB store).\n\n{table}"
    );
    let new = match text.find(SECTION) {
        Some(start) => {
            let rest = &text[start + SECTION.len()..];
            let end = rest
                .find("\n## ")
                .map_or(text.len(), |i| start + SECTION.len() + i + 1);
            format!("{}{body}\n{}", &text[..start], &text[end..])
        }
        None => format!("{}\n{body}", text.trim_end_matches('\n').to_string() + "\n"),
    };
    std::fs::write(&path, new.trim_end_matches('\n').to_string() + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `cargo xtask bench-nway`.
pub fn run(args: &BenchNwayArgs) -> Result<()> {
    for n in args.ns.split(',') {
        let n: u32 = n
            .trim()
            .parse()
            .with_context(|| format!("--ns: '{n}' is not a number"))?;
        if !(1..=16).contains(&n) {
            bail!("--ns: {n} snapshots: the VM has 16 classic COWs, give 1 to 16");
        }
    }
    let dir = vm_dir(args.dir.as_deref());
    if !args.last {
        let binaries = VmBinaries::build(args.install_deps)?;
        let rounds = args.rounds.to_string();
        run_script(
            &binaries,
            &dir,
            "bench",
            &[("BENCH_ROUNDS", &rounds), ("BENCH_NS", &args.ns)],
        )?;
    }
    let results_path = dir.join("logs-rt/bench/results.txt");
    let results = std::fs::read_to_string(&results_path)
        .with_context(|| format!("cannot read the guest's results {}", results_path.display()))?;
    let samples = parse(&results)?;
    if samples.is_empty() {
        bail!("{} holds no bench lines", results_path.display());
    }
    let table = render(&samples);
    println!("\n{table}");
    if !args.no_write {
        let path = write_section(&table)?;
        println!("written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guest_lines_and_takes_medians() {
        let text = "VM: PASS x\nbench classic 2 1 first 3.00 rewrite 0.50 space 110 meta 10\n\
                    bench classic 2 2 first 1.00 rewrite 0.70 space 110 meta 10\n\
                    bench classic 2 3 first 2.00 rewrite 0.60 space 110 meta 10\n\
                    bench shared 2 1 first 1.00 rewrite 0.60 space 80 meta 30\n";
        let samples = parse(text).unwrap();
        let classic = medians(&samples[&("classic".to_string(), 2)]);
        assert_eq!((classic.first, classic.rewrite), (2.0, 0.6));
        let table = render(&samples);
        assert!(table.contains("| 2 | 2.00 | 1.00 | 0.50x |"), "{table}");
        assert!(
            table.contains("n = 2: shared COW data 1/n of classic: 0.500 (1/n = 0.500), met"),
            "{table}"
        );
        assert!(
            table.contains("n = 2: shared faster than classic: 0.50x, met"),
            "{table}"
        );
    }

    #[test]
    fn refuses_a_malformed_line() {
        let error = parse("bench shared 2 1 first x rewrite 1 space 2 meta 1").unwrap_err();
        assert!(error.to_string().contains("results line 1"), "{error}");
    }
}
