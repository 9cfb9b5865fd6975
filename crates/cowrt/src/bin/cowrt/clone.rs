//! `cowrt dm` for clones: the clone arguments of `activate`, `hydrate`, and
//! what they print.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use cowrt::dm::clone::{
    self, parse_region_size, CloneActivation, CloneRequest, CloneStatus, HydrationMessage,
    HydrationReport, HydrationWait,
};
use cowrt::dm::error::DmError;
use cowrt::dm::runner::Runner;
use cowrt::dm::status::{CloneState, CloneUsage};

const DRY: &str = "dry run: nothing was changed";

/// The arguments of `activate --kind clone`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Clone (--kind clone)")]
pub struct CloneArgs {
    /// Metadata device: block device or image file, blank or holding metadata for the same sizes.
    #[arg(long, value_name = "DEV", required_if_eq("kind", "clone"))]
    pub metadata: Option<PathBuf>,
    /// Destination (hydrated from the source): block device or image file, at least the source's size.
    #[arg(long, value_name = "DEV", required_if_eq("kind", "clone"))]
    pub dest: Option<PathBuf>,
    /// Source: block device or image file; never written (image files are attached read-only).
    #[arg(long, value_name = "DEV", required_if_eq("kind", "clone"))]
    pub source: Option<PathBuf>,
    /// Region size: sectors (64) or with a unit (32k); a power of two from 4 KiB to 1 GiB.
    #[arg(long, value_name = "SECTORS", value_parser = parse_region_size,
          required_if_eq("kind", "clone"))]
    pub region_size: Option<u32>,
    /// Load the clone with background hydration off (start it with `cowrt dm hydrate NAME start`).
    #[arg(long)]
    pub no_hydration: bool,
}

impl CloneArgs {
    /// Whether any clone argument was given.
    pub fn any(&self) -> bool {
        self.metadata.is_some()
            || self.dest.is_some()
            || self.source.is_some()
            || self.region_size.is_some()
            || self.no_hydration
    }

    /// The request for clone `name`.
    pub fn request(&self, name: &str) -> Result<CloneRequest, DmError> {
        let missing = || {
            DmError::BadOptions(
                "--kind clone needs --metadata, --dest, --source and --region-size".to_string(),
            )
        };
        Ok(CloneRequest {
            metadata: self.metadata.clone().ok_or_else(missing)?,
            dest: self.dest.clone().ok_or_else(missing)?,
            source: self.source.clone().ok_or_else(missing)?,
            region_sectors: self.region_size.ok_or_else(missing)?,
            hydration: !self.no_hydration,
            name: name.to_string(),
        })
    }
}

/// What `hydrate` does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HydrateAction {
    /// enable_hydration: copy the regions not yet hydrated in the background.
    Start,
    /// disable_hydration: stop copying (reads of unhydrated regions still go to the source).
    Stop,
    /// hydration_threshold N: at most N regions copied at once (0 pauses).
    Threshold,
    /// hydration_batch_size N: copy contiguous regions in batches of N.
    BatchSize,
}

pub const HYDRATE_EXAMPLES: &str = "\
EXAMPLES:
  cowrt dm hydrate vm1 start --wait
  cowrt dm hydrate vm1 threshold 256
  cowrt dm hydrate vm1 batch-size 16
  cowrt dm hydrate vm1 stop
  cowrt dm hydrate --dry-run vm1 start

Sends `dmsetup message NAME 0 enable_hydration | disable_hydration |
hydration_threshold N | hydration_batch_size N`. With --wait, polls the status
and prints a line each time the count of hydrated regions changes, until every
region is hydrated; it stops early (exit 1) if hydration is off or paused with
regions left, or if the clone fails.";

/// The arguments of `hydrate`.
#[derive(Debug, Args)]
pub struct HydrateArgs {
    /// Wait until every region is hydrated, printing progress.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits at most (hydration goes on in the kernel after that).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub timeout: u64,
    #[command(flatten)]
    pub dry_run: super::DryRunArg,
    /// The clone's device name.
    pub name: String,
    /// What to do.
    #[arg(value_enum)]
    pub action: HydrateAction,
    /// The number for threshold and batch-size (regions).
    #[arg(value_name = "N")]
    pub value: Option<u32>,
}

impl HydrateArgs {
    fn message(&self) -> Result<HydrationMessage, DmError> {
        let bad = |text: &str| Err(DmError::BadOptions(text.to_string()));
        match (self.action, self.value) {
            (HydrateAction::Start, None) => Ok(HydrationMessage::Start),
            (HydrateAction::Stop, None) if self.wait => bad(
                "--wait goes with start, threshold or batch-size: after stop it would never end",
            ),
            (HydrateAction::Stop, None) => Ok(HydrationMessage::Stop),
            (HydrateAction::Threshold, Some(n)) => Ok(HydrationMessage::Threshold(n)),
            (HydrateAction::BatchSize, Some(n)) => Ok(HydrationMessage::BatchSize(n)),
            (HydrateAction::Start | HydrateAction::Stop, Some(_)) => {
                bad("start and stop take no number")
            }
            (HydrateAction::Threshold | HydrateAction::BatchSize, None) => {
                bad("threshold and batch-size need a number of regions")
            }
        }
    }
}

/// Activates a clone and says what was made.
pub fn activate(
    out: &mut dyn Write,
    runner: &mut dyn Runner,
    request: &CloneRequest,
    dry_run: bool,
) -> anyhow::Result<()> {
    let done = clone::activate(runner, request)?;
    activation(out, request, &done, dry_run)?;
    Ok(())
}

fn activation(
    out: &mut dyn Write,
    request: &CloneRequest,
    done: &CloneActivation,
    dry_run: bool,
) -> io::Result<()> {
    if dry_run {
        return writeln!(out, "{DRY}");
    }
    writeln!(
        out,
        "activated {} (clone): {}, {} regions of {} sectors; reads see the source at once",
        request.name, done.device, done.regions, request.region_sectors
    )?;
    writeln!(out, "  {}: {}", done.device, done.table)?;
    if done.new_metadata {
        writeln!(
            out,
            "  the metadata device was blank: the kernel formatted it"
        )?;
    }
    match request.hydration {
        true => writeln!(
            out,
            "  hydrating in the background; follow it with `cowrt dm hydrate {} start --wait`",
            request.name
        ),
        false => writeln!(
            out,
            "  hydration is off; start it with `cowrt dm hydrate {} start`",
            request.name
        ),
    }
}

/// Sends a hydration message, then waits if asked.
pub fn hydrate(
    out: &mut dyn Write,
    runner: &mut dyn Runner,
    args: &HydrateArgs,
) -> anyhow::Result<()> {
    let message = args.message()?;
    clone::message(runner, &args.name, message)?;
    let words = message.words().join(" ");
    if !args.wait {
        match args.dry_run.dry_run {
            true => writeln!(out, "{DRY}")?,
            false => writeln!(out, "sent {words} to {}", args.name)?,
        }
        return Ok(());
    }
    let wait = HydrationWait {
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(args.timeout),
    };
    let mut failed_write = None;
    let report = clone::wait_hydrated(runner, &args.name, wait, &mut |usage| {
        if let Err(error) = progress(out, &args.name, usage) {
            failed_write.get_or_insert(error);
        }
    })?;
    if let Some(error) = failed_write {
        return Err(error.into());
    }
    hydrated(out, &args.name, &report, args.dry_run.dry_run)?;
    Ok(())
}

fn percent(usage: &CloneUsage) -> f64 {
    usage.hydrated_regions as f64 * 100.0 / usage.total_regions.max(1) as f64
}

fn progress(out: &mut dyn Write, name: &str, usage: &CloneUsage) -> io::Result<()> {
    writeln!(
        out,
        "hydrating {name}: {}/{} regions ({:.1}%), {} in flight",
        usage.hydrated_regions,
        usage.total_regions,
        percent(usage),
        usage.hydrating_regions
    )?;
    out.flush()
}

fn hydrated(
    out: &mut dyn Write,
    name: &str,
    report: &HydrationReport,
    dry_run: bool,
) -> io::Result<()> {
    match (&report.usage, dry_run) {
        (Some(usage), false) => writeln!(
            out,
            "hydrated {name}: {}/{} regions in {:.1} s ({} status polls); the destination no \
             longer needs the source",
            usage.hydrated_regions,
            usage.total_regions,
            report.waited.as_secs_f64(),
            report.polls
        ),
        _ => writeln!(
            out,
            "{DRY} (a real --wait polls `dmsetup status {name}` until every region is hydrated)"
        ),
    }
}

/// A clone's status for people.
pub fn status(out: &mut dyn Write, status: &CloneStatus) -> io::Result<()> {
    let usage = match &status.status {
        CloneState::Active(usage) => usage,
        CloneState::Fail => {
            return writeln!(
            out,
            "{}: clone, Fail: the metadata failed; the device errors every I/O (dmesg says why)",
            status.name
        )
        }
        CloneState::Error => {
            return writeln!(
                out,
                "{}: clone, Error: the kernel could not read the metadata for the status",
                status.name
            )
        }
    };
    writeln!(
        out,
        "{}: clone {}, {}/{} regions of {} sectors hydrated ({:.1}%{}), {} hydrating",
        status.name,
        status.device,
        usage.hydrated_regions,
        usage.total_regions,
        usage.region_sectors,
        percent(usage),
        if usage.is_complete() {
            ": complete"
        } else {
            ""
        },
        usage.hydrating_regions
    )?;
    let on = if usage.hydration_enabled() {
        "on"
    } else {
        "off"
    };
    let number = |key| {
        usage
            .core_arg(key)
            .map_or("?".to_string(), |n| n.to_string())
    };
    writeln!(
        out,
        "  hydration {on}, threshold {} regions, batch size {} regions",
        number("hydration_threshold"),
        number("hydration_batch_size")
    )?;
    writeln!(
        out,
        "  metadata {}/{} blocks of {} sectors used, mode {}",
        usage.metadata_used, usage.metadata_total, usage.metadata_block_sectors, usage.mode
    )?;
    writeln!(out, "  table: {}", status.table)
}
