//! `cargo xtask crash-soak`: the crash replay proof of `cargo test`
//! (crates/cowengine/tests/it/crash_replay.rs) over many more seeds, every crash
//! point of every scenario, more lost-write samples per point; or one crash
//! point of one seed again, to replay a failure (docs/crash-replay.md).

use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use cowengine::crash_proof::{record, report, scenarios, sweep, Scenario, SweepOptions};

/// Command line of `cargo xtask crash-soak`.
#[derive(Debug, Clone, Args)]
pub struct CrashSoakArgs {
    /// Seeds per scenario, from --seed on.
    #[arg(long, value_name = "N", default_value_t = 20)]
    seeds: u64,
    /// Stop once this many crash images were checked (at a seed's end).
    #[arg(long, value_name = "N")]
    images: Option<u64>,
    /// The first seed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Only this scenario (4k, 512, deep).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Only this crash point (events kept), to replay a failure.
    #[arg(long, value_name = "EVENTS")]
    at: Option<usize>,
    /// Random lost-write subsets per crash point, beyond none and all lost
    /// (default: four times the scenario's own).
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// Cut the journal replay of every N-th crash image (per thread) at every
    /// point and replay again; 0: never.
    #[arg(long, value_name = "N", default_value_t = 20)]
    replay_crash_every: u64,
    /// Failure messages printed.
    #[arg(long, value_name = "N", default_value_t = 5)]
    show: usize,
}

/// Runs the soak and prints images tried, seconds and failures.
pub fn run(args: &CrashSoakArgs) -> Result<()> {
    let chosen: Vec<Scenario> = scenarios()
        .into_iter()
        .filter(|s| args.scenario.as_deref().is_none_or(|name| s.name == name))
        .map(|s| Scenario {
            samples: args.samples.unwrap_or(s.samples * 4),
            ..s
        })
        .collect();
    if chosen.is_empty() {
        bail!(
            "crash-soak: no scenario named {:?} (scenarios: 4k, 512, deep)",
            args.scenario.as_deref().unwrap_or_default()
        );
    }
    let options = SweepOptions {
        points: args.at.map(|at| at..at + 1),
        keep: args.show,
        replay_crash_every: args.replay_crash_every,
        ..SweepOptions::default()
    };
    let start = Instant::now();
    let (mut images, mut failed, mut shown, mut cut) = (0u64, 0u64, 0usize, 0u64);
    'seeds: for seed in args.seed..args.seed + args.seeds {
        for scenario in &chosen {
            let rec = match record(scenario, seed) {
                Ok(rec) => rec,
                Err(e) => {
                    println!(
                        "{:>5} seed {seed:>4}: the workload failed: {e}",
                        scenario.name
                    );
                    failed += 1;
                    continue;
                }
            };
            let run = report(&rec, sweep(&rec, &options));
            let outcome = &run.outcome;
            println!(
                "{:>5} seed {seed:>4}: {:>6} events, {:>3} commits, {:>3} transactions, {:>2} \
                 checkpoints, {} split deletes, tree level {}, {:>7} images, {} failed",
                run.scenario,
                run.events,
                run.commits,
                run.transactions,
                run.checkpoints,
                run.split_deletes,
                run.tree_level,
                outcome.images,
                outcome.failed
            );
            for failure in outcome
                .failures
                .iter()
                .take(args.show - shown.min(args.show))
            {
                println!("  {failure}");
                shown += 1;
            }
            images += outcome.images;
            cut += outcome.replay_images;
            failed += outcome.failed;
            if args.images.is_some_and(|n| images >= n) {
                break 'seeds;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "crash-soak: {images} crash images and {cut} cut replays in {seconds:.1} s ({:.0} \
         images/s), {failed} failed",
        images as f64 / seconds.max(1e-9)
    );
    if failed > 0 {
        bail!("crash-soak: {failed} of {images} crash images failed");
    }
    Ok(())
}
