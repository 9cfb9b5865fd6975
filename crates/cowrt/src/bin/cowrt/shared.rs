//! `cowrt serve`, `message`, `status` and `stop`: shared stores served as
//! block devices. `serve` needs the ublk build; the others only talk to the
//! daemon's socket and work in any build.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use cowrt::control::Message;
use cowrt::serve::client::{self, ClientError};
use cowrt::serve::protocol::{Answer, Request};
use cowrt::serve::{RunPaths, ServeError, DEFAULT_RUN_DIR};

use crate::{EXIT_FAILURE, EXIT_OK, EXIT_REFUSED};

pub const SERVE_EXAMPLES: &str = "\
EXAMPLES:
  Serve a shared store (one /dev/ublkbN for the origin, one per snapshot):
    cowrt serve --store /dev/vdb --origin /dev/vdc home
  In the foreground, 2 queues per device, committing every second:
    cowrt serve --foreground --queues 2 --commit-interval 1 --store cow.img --origin origin.img home
  After the daemon was killed: take the same devices back, journal replayed:
    cowrt serve --recover --store /dev/vdb --origin /dev/vdc home

Prints `READY home /dev/ublkbN` for the origin and `READY home-sID /dev/ublkbN`
per snapshot, then `SERVING home`; without --foreground it then returns and
the daemon goes on (its output in RUN_DIR/home.log). RUN_DIR/home.json maps
the devices to their ublk ids. Stop it with `cowrt stop home` or SIGTERM.
Needs root, the ublk_drv module, and a cowrt built with `cargo xtask runtime`.
Exit codes: 0 stopped cleanly (or serving, in the background); 1 refused (the
store is damaged or in use, the name is served already, --recover with another
store or origin than RUN_DIR/home.json names) or stopped with devices left up
(the map keeps them for --recover); 2 usage or setup error (no ublk in this
build, no /dev/ublk-control, I/O).";

pub const MESSAGE_EXAMPLES: &str = "\
EXAMPLES:
  cowrt message home create                      -> created 0 /dev/ublkb1
  cowrt message home create --freeze /mnt/home   (filesystem frozen around it)
  cowrt message home create_subsnap 0            -> created 1 /dev/ublkb2
  cowrt message home delete 0                    -> deleted 0 (12 chunks freed)
  cowrt message home detach 1                    -> detached 1
  cowrt message home attach 1                    -> attached 1 /dev/ublkb2

The words are seed 002's (`dmsetup message NAME 0 create`). A snapshot is
taken between two origin writes: writes in flight land first, later ones wait.
Exit codes: 0 done; 1 refused or failed (the message says why; nothing
changed); 2 usage error, no daemon, or --freeze could not thaw the filesystem
after the request (the message says what the request did, e.g. the snapshot
created, and that the filesystem is still frozen).";

/// Where the daemons' files are.
#[derive(Debug, Args)]
pub struct RunDirArg {
    /// The run directory (socket, device map, pid file, log).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    run_dir: PathBuf,
}

impl RunDirArg {
    fn paths(&self, name: &str) -> anyhow::Result<RunPaths> {
        Ok(RunPaths::new(&self.run_dir, name)?)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The COW device (or image file) holding the shared store.
    #[arg(long, value_name = "COW")]
    store: PathBuf,
    /// The origin device (or image file).
    #[arg(long, value_name = "DEV")]
    origin: PathBuf,
    /// Stay in the foreground (output on stdout/stderr instead of NAME.log).
    #[arg(long)]
    foreground: bool,
    /// Queues per device, one serving thread each.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    queues: u16,
    #[command(flatten)]
    run_dir: RunDirArg,
    /// Commit at least every SECS seconds (0: only on FLUSH, FUA and requests).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    commit_interval: u64,
    /// Take back the devices of a daemon that died (ids from RUN_DIR/NAME.json).
    #[arg(long)]
    recover: bool,
    /// The name: the origin's device is NAME, a snapshot's NAME-sID.
    name: String,
}

#[derive(Debug, Args)]
pub struct MessageArgs {
    /// Freeze the filesystem mounted here around `create` / `create_subsnap`.
    #[arg(long, value_name = "MOUNTPOINT")]
    freeze: Option<PathBuf>,
    #[command(flatten)]
    run_dir: RunDirArg,
    /// The served store's name.
    name: String,
    /// create | create_subsnap ID | delete ID | attach ID | detach ID
    #[arg(required = true, num_args = 1..=2, value_name = "WORDS")]
    words: Vec<String>,
}

/// Status formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// seed 002's status line, or JSON with free chunks, the journal and the devices.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    format: StatusFormat,
    #[command(flatten)]
    run_dir: RunDirArg,
    /// The served store's name.
    name: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
    /// The served store's name.
    name: String,
}

/// Prints an answer: the text on stdout (exit 0), or the refusal on stderr (exit 1).
fn answer(answer: Answer, json: bool) -> anyhow::Result<u8> {
    match answer {
        Answer::Done(text) => {
            let mut out = io::stdout().lock();
            match json {
                true => {
                    let value: serde_json::Value =
                        serde_json::from_str(&text).context("the daemon's JSON status")?;
                    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                }
                false => writeln!(out, "{text}")?,
            }
            out.flush()?;
            Ok(EXIT_OK)
        }
        Answer::Refused(text) => {
            eprintln!("{}: {text}", crate::TOOL);
            Ok(EXIT_REFUSED)
        }
    }
}

/// A client error: one line on stderr, exit 1 when nothing was sent (a
/// failed freeze), else 2 (a failed thaw among them: the request was sent).
fn client_failure(error: ClientError) -> u8 {
    eprintln!("{}: {error}", crate::TOOL);
    match error.is_refusal() {
        true => EXIT_REFUSED,
        false => EXIT_FAILURE,
    }
}

pub fn message(args: &MessageArgs) -> anyhow::Result<u8> {
    let paths = args.run_dir.paths(&args.name)?;
    let message: Message = args.words.join(" ").parse()?;
    let request = Request::Message(message);
    let sent = match &args.freeze {
        None => client::send(&paths, &request),
        Some(mountpoint) => {
            if !matches!(message, Message::Create | Message::CreateSubsnap(_)) {
                anyhow::bail!("--freeze goes with create and create_subsnap, not '{message}'");
            }
            client::send_frozen(&paths, &request, mountpoint)
        }
    };
    match sent {
        Ok(reply) => answer(reply, false),
        Err(error) => Ok(client_failure(error)),
    }
}

pub fn status(args: &StatusArgs) -> anyhow::Result<u8> {
    let paths = args.run_dir.paths(&args.name)?;
    let json = matches!(args.format, StatusFormat::Json);
    match client::send(&paths, &Request::Status { json }) {
        Ok(reply) => answer(reply, json),
        Err(error) => Ok(client_failure(error)),
    }
}

pub fn stop(args: &StopArgs) -> anyhow::Result<u8> {
    let paths = args.run_dir.paths(&args.name)?;
    match client::stop(&paths) {
        Ok(reply) => answer(reply, false),
        Err(error) => Ok(client_failure(error)),
    }
}

/// The exit code of a daemon that could not start or serve.
fn serve_failure(error: &ServeError) -> u8 {
    eprintln!("{}: {error}", crate::TOOL);
    match error {
        ServeError::InUse { .. }
        | ServeError::Served { .. }
        | ServeError::Damaged { .. }
        | ServeError::RecoverMismatch { .. } => EXIT_REFUSED,
        _ => EXIT_FAILURE,
    }
}

#[cfg(not(feature = "ublk"))]
pub fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    let _ = (serve_failure, args.foreground);
    eprintln!(
        "{}: serve: this cowrt was built without the ublk transport; build one with `cargo xtask runtime` (target/release/cowrt)",
        crate::TOOL
    );
    Ok(EXIT_FAILURE)
}

#[cfg(feature = "ublk")]
pub fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    use cowrt::serve::launch::{self, ServeOptions, Started};
    use std::sync::Arc;

    let paths = args.run_dir.paths(&args.name)?;
    if !args.foreground {
        let mut daemon = std::process::Command::new(std::env::current_exe()?);
        daemon.args(std::env::args_os().skip(1)).arg("--foreground");
        let (mut out, mut err) = (io::stdout(), io::stderr());
        return Ok(
            match launch::start_background(daemon, &paths, &mut out, &mut err) {
                Ok(Started::Serving) => EXIT_OK,
                Ok(Started::Exited(code)) => code
                    .and_then(|c| u8::try_from(c).ok())
                    .filter(|&c| c != EXIT_OK)
                    .unwrap_or(EXIT_FAILURE),
                Err(error) => serve_failure(&error),
            },
        );
    }
    if let Err(error) = launch::prepare_daemon_process() {
        return Ok(serve_failure(&error));
    }
    // The daemon's own messages, on stderr: NAME.log in the background.
    let log = cowrt::log::Log::new(|line| eprintln!("{}: {line}", crate::TOOL));
    let options = ServeOptions {
        store: args.store.clone(),
        origin: args.origin.clone(),
        paths,
        queues: args.queues,
        commit_interval: (args.commit_interval > 0)
            .then(|| std::time::Duration::from_secs(args.commit_interval)),
        recover: args.recover,
        log: log.clone(),
    };
    let host = Arc::new(cowrt::ublk::UblkHost::new(log));
    match launch::run_foreground(&options, host, &mut io::stdout()) {
        Ok(report) if report.failures.is_empty() => {
            println!("stopped {} ({} devices removed)", args.name, report.removed);
            Ok(EXIT_OK)
        }
        Ok(report) => {
            eprintln!(
                "{}: stopped {} with errors: {}; {} keeps the devices still up: take them back with `cowrt serve --recover`",
                crate::TOOL,
                args.name,
                report.failures.join("; "),
                options.paths.map().display()
            );
            Ok(EXIT_REFUSED)
        }
        Err(error) => Ok(serve_failure(&error)),
    }
}
