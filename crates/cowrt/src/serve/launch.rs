//! Running the daemon: in the foreground until it is stopped (the `stop`
//! request, SIGTERM or SIGINT), or started in the background, where the
//! starting process waits for the daemon's `SERVING` line, passes its `READY`
//! lines on, and exits.
//!
//! The background daemon is this program run again with `--foreground`, its
//! output appended to `NAME.log`: a fresh process, started before any thread
//! (the mount namespace change needs that), with no fork of a threaded one.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::daemon::{check_recover, Daemon, DaemonConfig, StopReport};
use super::host::DeviceHost;
use super::rundir::{DeviceMap, RunPaths};
use super::store::open_store;
use super::ServeError;
use crate::log::Log;
use crate::sys;

/// Readies this process to be the daemon, before it starts any thread: a
/// mount namespace of its own, private (runtime.md 2.6: a daemon that shares
/// the mount of a filesystem on its own device can deadlock at exit).
/// Filesystems mounted on ublk devices at that moment are detached from the
/// daemon's namespace ([`super::mounts`]).
pub fn prepare_daemon_process() -> Result<(), ServeError> {
    sys::private_mount_namespace().map_err(|source| ServeError::Io {
        path: PathBuf::from("/"),
        action: "cannot enter a private mount namespace (unshare CLONE_NEWNS; needs root)",
        source,
    })?;
    let mountinfo = PathBuf::from("/proc/self/mountinfo");
    let text = std::fs::read_to_string(&mountinfo).map_err(|source| ServeError::Io {
        path: mountinfo,
        action: "cannot read",
        source,
    })?;
    for point in super::mounts::ublk_mount_points(&text).iter().rev() {
        sys::detach_mount(point).map_err(|source| ServeError::Io {
            path: point.clone(),
            action: "cannot detach this ublk mount from the daemon's mount namespace",
            source,
        })?;
    }
    Ok(())
}

/// What `cowrt serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The COW device holding the shared store.
    pub store: PathBuf,
    /// The origin.
    pub origin: PathBuf,
    /// The run-directory files (and the name).
    pub paths: RunPaths,
    /// Queues per device.
    pub queues: u16,
    /// The periodic commit's interval; `None`: no periodic commit.
    pub commit_interval: Option<Duration>,
    /// Re-attach to the devices `NAME.json` names.
    pub recover: bool,
    /// Where the daemon's own messages go.
    pub log: Log,
}

/// Serves the store until the daemon is stopped, printing the `READY` and
/// `SERVING` lines to `out`; SIGTERM and SIGINT stop it as `cowrt stop` does.
pub fn run_foreground(
    options: &ServeOptions,
    host: Arc<dyn DeviceHost>,
    out: &mut dyn Write,
) -> Result<StopReport, ServeError> {
    let recover = match options.recover {
        false => None,
        true => {
            let map = DeviceMap::read(&options.paths.map())?;
            check_recover(&map, &options.paths, &options.store, &options.origin)?;
            Some(map)
        }
    };
    let store = open_store(&options.store, &options.origin)?;
    let config = DaemonConfig {
        paths: options.paths.clone(),
        store: options.store.clone(),
        origin: options.origin.clone(),
        queues: options.queues,
        commit_interval: options.commit_interval,
        recover,
        pid: Some(std::process::id()),
        log: options.log.clone(),
    };
    let daemon = Daemon::start(store.engine, host, config, out)?;
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|source| ServeError::Io {
        path: PathBuf::from("SIGTERM"),
        action: "cannot catch the signal",
        source,
    })?;
    let handle = signals.handle();
    let stopper = Arc::downgrade(&daemon);
    let log = options.log.clone();
    std::thread::Builder::new()
        .name("cowrt signals".to_string())
        .spawn(move || {
            if signals.forever().next().is_some() {
                if let Some(daemon) = stopper.upgrade() {
                    log.line("signal received: stopping");
                    let _ = daemon.stop();
                }
            }
        })
        .map_err(|source| ServeError::Io {
            path: PathBuf::from("signals"),
            action: "cannot start a thread",
            source,
        })?;
    let stopped = daemon.wait_and_close();
    handle.close();
    drop(store.lock);
    stopped.map_err(ServeError::Stopped)
}

/// How a background start ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The daemon printed `SERVING NAME` and goes on in the background.
    Serving,
    /// The daemon exited first, with this code (`None`: killed by a signal).
    Exited(Option<i32>),
}

/// Starts `daemon` (a command running `cowrt serve --foreground ...`) in the
/// background with its output appended to `NAME.log`; passes its `READY` and
/// `SERVING` lines to `out` and anything else it prints to `err`, and returns
/// once it printed `SERVING NAME` or exited.
pub fn start_background(
    mut daemon: Command,
    paths: &RunPaths,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Started, ServeError> {
    paths.create_dir()?;
    let log_path = paths.log();
    let log_error = |action| {
        let path = log_path.clone();
        move |source| ServeError::Io {
            path,
            action,
            source,
        }
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(log_error("cannot open the daemon's log"))?;
    let start = log
        .metadata()
        .map_err(log_error("cannot read the daemon's log"))?
        .len();
    let output = |file: &File| file.try_clone().map(Stdio::from);
    daemon
        .stdin(Stdio::null())
        .stdout(output(&log).map_err(log_error("cannot pass the log"))?)
        .stderr(output(&log).map_err(log_error("cannot pass the log"))?)
        .process_group(0);
    let mut child = daemon.spawn().map_err(|source| ServeError::Io {
        path: PathBuf::from(daemon.get_program()),
        action: "cannot start the daemon",
        source,
    })?;
    let mut reader = LogTail::open(&log_path, start).map_err(log_error("cannot read"))?;
    let serving = format!("SERVING {}", paths.name());
    loop {
        let exited = child
            .try_wait()
            .map_err(log_error("cannot wait for the daemon"))?;
        for line in reader.lines().map_err(log_error("cannot read"))? {
            let target: &mut dyn Write = match line.starts_with("READY ") || line == serving {
                true => out,
                false => err,
            };
            let _ = writeln!(target, "{line}");
            if line == serving {
                let _ = out.flush();
                return Ok(Started::Serving);
            }
        }
        if let Some(status) = exited {
            return Ok(Started::Exited(status.code()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines appended to a file from an offset on.
struct LogTail {
    file: File,
    partial: String,
}

impl LogTail {
    fn open(path: &std::path::Path, from: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(from))?;
        Ok(LogTail {
            file,
            partial: String::new(),
        })
    }

    /// The complete lines appended since the last call.
    fn lines(&mut self) -> io::Result<Vec<String>> {
        let mut bytes = Vec::new();
        self.file.read_to_end(&mut bytes)?;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let Some(end) = self.partial.rfind('\n') else {
            return Ok(Vec::new());
        };
        let complete: Vec<String> = self.partial[..end].lines().map(str::to_string).collect();
        self.partial.drain(..=end);
        Ok(complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn the_start_returns_at_serving_and_passes_ready_lines_on() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path(), "t").unwrap();
        std::fs::write(paths.log(), "old line\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let script = "echo 'READY t /dev/ublkb0'; echo 'note: x' >&2; \
                      printf 'READY t-s0 /dev/ub'; sleep 0.1; echo 'lkb1'; \
                      echo 'SERVING t'; sleep 1";
        let started = start_background(shell(script), &paths, &mut out, &mut err).unwrap();
        assert_eq!(started, Started::Serving);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "READY t /dev/ublkb0\nREADY t-s0 /dev/ublkb1\nSERVING t\n"
        );
        assert_eq!(String::from_utf8(err).unwrap(), "note: x\n");
        let log = std::fs::read_to_string(paths.log()).unwrap();
        assert!(log.starts_with("old line\nREADY t /dev/ublkb0\n"), "{log}");
    }

    #[test]
    fn a_daemon_that_exits_first_gives_its_code_and_its_words() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path(), "t").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let script = "echo 'cowrt: cow.img: the store is in use' >&2; exit 2";
        let started = start_background(shell(script), &paths, &mut out, &mut err).unwrap();
        assert_eq!(started, Started::Exited(Some(2)));
        assert!(out.is_empty());
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "cowrt: cow.img: the store is in use\n"
        );
    }
}
