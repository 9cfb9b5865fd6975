//! cowrt: the live runtime of COW snapshot stores. Shared stores are served
//! through ublk (`cowrt serve`, in the ublk build) and controlled through the
//! daemon's socket (`cowrt message | status | stop`); classic stores
//! (persistent, legacy, transient) through the kernel's dm-snapshot (`cowrt dm
//! activate | status | merge | deactivate`). docs/cowrt.md.

mod clone;
mod render;
mod shared;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cowrt::dm::classic::{self, ActivateRequest, DmError, MergeWait};
use cowrt::dm::clone as dm_clone;
use cowrt::dm::precheck::ClassicKind;
use cowrt::dm::runner::{DryRun, Runner, System};

const TOOL: &str = "cowrt";

/// Done.
const EXIT_OK: u8 = 0;
/// Refused: the store is damaged, in use or of another kind, a message was
/// refused, or the merge failed.
const EXIT_REFUSED: u8 = 1;
/// Usage, setup or I/O error, a command that failed, or no daemon.
const EXIT_FAILURE: u8 = 2;

const EXAMPLES: &str = "\
EXAMPLES:
  Activate a persistent snapshot (writes to the origin then go through
  /dev/mapper/home-snap-origin; the snapshot is /dev/mapper/home-snap):
    cowrt dm activate --kind persistent --origin /dev/vg/home --cow /dev/vg/home-cow home-snap
  The same from image files (loop devices are attached for them):
    cowrt dm activate --kind persistent --origin origin.img --cow cow.img snap
  Print the commands without running them:
    cowrt dm activate --dry-run --kind transient --origin /dev/sdb --cow /dev/sdc --chunk-size 4k snap
  Status, merge back into the origin, deactivate:
    cowrt dm status snap --format json
    cowrt dm merge snap
    cowrt dm deactivate snap
  Clone a source onto a destination (dm-clone), hydrate, deactivate:
    cowrt dm activate --kind clone --metadata meta.img --dest /dev/vg/vm1 --source /dev/nfs/golden --region-size 64 vm1
    cowrt dm hydrate vm1 start --wait
    cowrt dm deactivate vm1

Shared stores through ublk (serve needs a cowrt built by `cargo xtask runtime`):
    cowrt serve --store /dev/vdb --origin /dev/vdc home
    cowrt message home create
    cowrt status home --format json
    cowrt stop home
Exit codes: 0 done, 1 refused (damaged, in use or wrong-kind store, a refused
message, failed merge), 2 usage, setup, I/O or command error (no daemon).";

/// Command line of cowrt.
#[derive(Debug, Parser)]
#[command(name = "cowrt", version, about = "Serve COW snapshot stores live", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Serve a shared store: one ublk device for the origin, one per snapshot.
    #[command(after_help = shared::SERVE_EXAMPLES)]
    Serve(shared::ServeArgs),
    /// Send a control message to a served store (seed 002's words).
    #[command(after_help = shared::MESSAGE_EXAMPLES)]
    Message(shared::MessageArgs),
    /// Show a served store's status: seed 002's line, or JSON.
    #[command(
        after_help = "EXAMPLES:\n  cowrt status home\n  cowrt status home --format json\n\n\
The line is seed 002's: `5 <error> <new id or -> <total> <allocated> <metadata>\n\
<n> <ids...>`, sizes in 512-byte sectors. The JSON adds free chunks, the\n\
journal, each snapshot's chunks and the devices.\n\
Exit codes: 0 done; 2 no daemon."
    )]
    Status(shared::StatusArgs),
    /// Stop a served store: take its devices down, commit, exit.
    #[command(after_help = "EXAMPLES:\n  cowrt stop home\n\n\
Returns once the daemon exited; its store is committed and its journal\n\
checkpointed. Unmount filesystems on its devices first.\n\
Exit codes: 0 stopped; 1 stopped with errors (devices that could not be\n\
taken down stay in RUN_DIR/NAME.json for `cowrt serve --recover`); 2 no daemon.")]
    Stop(shared::StopArgs),
    /// Classic stores through the kernel's device-mapper (dm-snapshot).
    #[command(subcommand)]
    Dm(Dm),
}

const ACTIVATE_EXAMPLES: &str = "\
EXAMPLES:
  cowrt dm activate --kind persistent --origin /dev/vg/home --cow /dev/vg/home-cow home-snap
  cowrt dm activate --kind persistent --overflow --origin origin.img --cow cow.img snap
  cowrt dm activate --kind transient --origin /dev/sdb --cow /dev/sdc --chunk-size 8k snap
  cowrt dm activate --dry-run --kind legacy --origin /dev/sdb --cow /dev/sdc snap
  cowrt dm activate --kind clone --metadata meta.img --dest /dev/sdd --source /dev/sde --region-size 64 vm1
  cowrt dm activate --kind clone --no-hydration --metadata m.img --dest d.img --source s.img --region-size 32k vm1

Creates NAME-origin (snapshot-origin: write to the origin only through it) and
NAME (the snapshot). The COW store is checked first as cowcheck checks it: a
damaged store, a store of another kind or a --chunk-size that differs from the
header's is refused and nothing is run. An all-zero COW device is formatted by
the kernel (chunk size from --chunk-size, default 4k). A transient snapshot
keeps nothing on disk.

--kind clone creates NAME (dm-clone): it reads as the source at once, writes
go to the destination, and the source is copied to the destination region by
region in the background (unless --no-hydration). Checked first: the
destination holds the whole source, the region size is one dm-clone takes, and
the metadata device is blank (the kernel formats it) or holds dm-clone metadata
for the same region size and length; anything else is refused and nothing is
run.";

#[derive(Debug, Subcommand)]
enum Dm {
    /// Check a classic store and activate it as a snapshot of its origin, or activate a clone.
    #[command(after_help = ACTIVATE_EXAMPLES)]
    Activate(ActivateArgs),
    /// Show the status of a snapshot and its origin device, or of a clone.
    #[command(
        after_help = "EXAMPLES:\n  cowrt dm status snap\n  cowrt dm status snap --format json"
    )]
    Status(StatusArgs),
    /// Roll the origin back to the snapshot (snapshot-merge), wait, report.
    #[command(
        after_help = "EXAMPLES:\n  cowrt dm merge snap\n  cowrt dm merge --dry-run snap\n  cowrt dm merge --timeout 600 snap\n\n\
The snapshot device goes away; NAME-origin reads as the snapshot at once and\n\
maps the origin linearly once the merge is done."
    )]
    Merge(MergeArgs),
    /// Hydrate a clone: start, stop or tune background copying; wait until done.
    #[command(after_help = clone::HYDRATE_EXAMPLES)]
    Hydrate(clone::HydrateArgs),
    /// Remove the snapshot and its origin device (or the clone), and detach their loop devices.
    #[command(
        after_help = "EXAMPLES:\n  cowrt dm deactivate snap\n  cowrt dm deactivate --keep-loops snap"
    )]
    Deactivate(DeactivateArgs),
}

/// The classic kinds, and clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    Persistent,
    Legacy,
    Transient,
    /// dm-clone: a destination hydrated from a source.
    Clone,
}

impl KindArg {
    fn classic(self) -> Option<ClassicKind> {
        match self {
            KindArg::Persistent => Some(ClassicKind::Persistent),
            KindArg::Legacy => Some(ClassicKind::Legacy),
            KindArg::Transient => Some(ClassicKind::Transient),
            KindArg::Clone => None,
        }
    }
}

/// Report formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct DryRunArg {
    /// Print every command that would change something instead of running it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct ActivateArgs {
    /// The store kind.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Persistent only: a full store reports Overflow instead of invalidating the snapshot.
    #[arg(long)]
    overflow: bool,
    /// The origin: block device or image file.
    #[arg(long, value_name = "DEV", required_if_eq_any(CLASSIC_KINDS))]
    origin: Option<PathBuf>,
    /// The COW store: block device or image file.
    #[arg(long, value_name = "DEV", required_if_eq_any(CLASSIC_KINDS))]
    cow: Option<PathBuf>,
    /// Chunk size for an empty COW device (4k, 8s...); a formatted store's header decides.
    #[arg(long, value_name = "SIZE", value_parser = cowfmt::units::parse_chunk_size)]
    chunk_size: Option<u32>,
    #[command(flatten)]
    clone: clone::CloneArgs,
    #[command(flatten)]
    dry_run: DryRunArg,
    /// The snapshot's (or clone's) device name.
    name: String,
}

/// `--kind` values that need --origin and --cow.
const CLASSIC_KINDS: [(&str, &str); 3] = [
    ("kind", "persistent"),
    ("kind", "legacy"),
    ("kind", "transient"),
];

impl ActivateArgs {
    /// The classic request, refusing clone arguments.
    fn classic_request(&self, kind: ClassicKind) -> Result<ActivateRequest, DmError> {
        if self.clone.any() {
            return Err(DmError::BadOptions(
                "--metadata, --dest, --source, --region-size and --no-hydration go with --kind \
                 clone"
                    .to_string(),
            ));
        }
        let (Some(origin), Some(cow)) = (&self.origin, &self.cow) else {
            return Err(DmError::BadOptions(format!(
                "--kind {} needs --origin and --cow",
                kind.as_str()
            )));
        };
        Ok(ActivateRequest {
            kind,
            overflow: self.overflow,
            origin: origin.clone(),
            cow: cow.clone(),
            chunk_sectors: self.chunk_size,
            name: self.name.clone(),
        })
    }

    /// The clone request, refusing snapshot arguments.
    fn clone_request(&self) -> Result<dm_clone::CloneRequest, DmError> {
        if self.origin.is_some() || self.cow.is_some() || self.overflow || self.chunk_size.is_some()
        {
            return Err(DmError::BadOptions(
                "--origin, --cow, --overflow and --chunk-size go with the snapshot kinds; a clone \
                 takes --metadata, --dest, --source and --region-size"
                    .to_string(),
            ));
        }
        self.clone.request(&self.name)
    }
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The snapshot's device name.
    name: String,
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Seconds to wait for the merge (it goes on in the kernel after that).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    timeout: u64,
    #[command(flatten)]
    dry_run: DryRunArg,
    /// The snapshot's device name.
    name: String,
}

#[derive(Debug, Args)]
struct DeactivateArgs {
    /// Leave the loop devices attached.
    #[arg(long)]
    keep_loops: bool,
    #[command(flatten)]
    dry_run: DryRunArg,
    /// The snapshot's device name.
    name: String,
}

/// A real runner, or a dry run printing to stdout whose queries (status,
/// table, names) still run for real: they change nothing.
fn runner(dry_run: &DryRunArg) -> Box<dyn Runner> {
    match dry_run.dry_run {
        true => Box::new(DryRun::new(io::stdout(), Some(Box::new(System)))),
        false => Box::new(System),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let shared = match &cli.command {
        Top::Serve(args) => Some(shared::serve(args)),
        Top::Message(args) => Some(shared::message(args)),
        Top::Status(args) => Some(shared::status(args)),
        Top::Stop(args) => Some(shared::stop(args)),
        Top::Dm(_) => None,
    };
    if let Some(done) = shared {
        return ExitCode::from(done.unwrap_or_else(|error| {
            let _ = writeln!(io::stderr(), "{}", error_line(&error));
            EXIT_FAILURE
        }));
    }
    let code = match run(&cli) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            let refused = matches!(
                error.downcast_ref::<DmError>(),
                Some(
                    DmError::Refused(_)
                        | DmError::MergeFailed { .. }
                        | DmError::HydrationFailed { .. }
                        | DmError::HydrationStalled { .. }
                )
            );
            let _ = writeln!(io::stderr(), "{}", error_line(&error));
            if refused {
                EXIT_REFUSED
            } else {
                EXIT_FAILURE
            }
        }
    };
    ExitCode::from(code)
}

/// `cowrt: error: cause: cause`, leaving out a cause the line already says.
fn error_line(error: &anyhow::Error) -> String {
    let mut line = format!("{TOOL}: {error}");
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let Top::Dm(dm) = &cli.command else {
        return Ok(());
    };
    let mut out = io::stdout().lock();
    match dm {
        Dm::Activate(args) => match args.kind.classic() {
            Some(kind) => {
                let request = args.classic_request(kind)?;
                let mut runner = runner(&args.dry_run);
                let done = classic::activate(runner.as_mut(), &request)?;
                render::activation(&mut out, &request, &done, args.dry_run.dry_run)?;
            }
            None => {
                let request = args.clone_request()?;
                let mut runner = runner(&args.dry_run);
                clone::activate(&mut out, runner.as_mut(), &request, args.dry_run.dry_run)?;
            }
        },
        Dm::Status(args) if dm_clone::is_clone(&mut System, &args.name)? => {
            let status = dm_clone::status(&mut System, &args.name)?;
            match args.format {
                Format::Text => clone::status(&mut out, &status)?,
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?,
            }
        }
        Dm::Status(args) => {
            let status = classic::status(&mut System, &args.name)?;
            match args.format {
                Format::Text => render::status(&mut out, &status)?,
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?,
            }
        }
        Dm::Merge(args) => {
            let wait = MergeWait {
                interval: Duration::from_millis(200),
                timeout: Duration::from_secs(args.timeout),
            };
            let mut runner = runner(&args.dry_run);
            let report = classic::merge(runner.as_mut(), &args.name, wait)?;
            render::merge(&mut out, &args.name, &report, args.dry_run.dry_run)?;
        }
        Dm::Hydrate(args) => {
            let mut runner = runner(&args.dry_run);
            clone::hydrate(&mut out, runner.as_mut(), args)?;
        }
        Dm::Deactivate(args) => {
            let mut runner = runner(&args.dry_run);
            let loops = match dm_clone::is_clone(runner.as_mut(), &args.name)? {
                true => dm_clone::deactivate(runner.as_mut(), &args.name, args.keep_loops)?,
                false => classic::deactivate(runner.as_mut(), &args.name, args.keep_loops)?,
            };
            render::deactivation(&mut out, &args.name, &loops, args.dry_run.dry_run)?;
        }
    }
    out.flush()?;
    Ok(())
}
