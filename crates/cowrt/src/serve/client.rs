//! The client side of the control socket: one request, one answer; `stop`
//! waits for the daemon to exit; `create --freeze MOUNTPOINT` freezes the
//! filesystem around the request.
//!
//! The client freezes, not the daemon: the daemon runs in a mount namespace of
//! its own (so that it never holds a mount of its own devices) and does not see
//! filesystems mounted after it started; the client runs where the user
//! mounted it. The filesystem is thawed whatever the request did.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{Answer, Request};
use super::rundir::RunPaths;
use crate::sys;

/// How long a client waits for an answer (a `create` waits for the origin
/// writes in flight and a commit; `stop` for every device to go down).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `stop` waits for the daemon's process to exit after it answered.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("no daemon serves '{name}': cannot connect to {}: {source}", socket.display())]
    NoDaemon {
        /// The name.
        name: String,
        /// Its socket.
        socket: PathBuf,
        /// Why the connection failed.
        source: io::Error,
    },
    /// The socket failed mid-request.
    #[error("{}: {action}: {source}", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The daemon answered something that is not an answer.
    #[error("{}: the daemon answered '{line}', not 'ok ...' or 'error ...'", socket.display())]
    BadReply {
        /// The socket.
        socket: PathBuf,
        /// What it sent.
        line: String,
    },
    /// The filesystem could not be frozen; nothing was sent.
    #[error("--freeze {}: cannot freeze the filesystem (is it a mount point?): {source}; nothing was changed", mountpoint.display())]
    Freeze {
        /// The mount point.
        mountpoint: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The filesystem could not be thawed after the request: the request's
    /// answer stands (a snapshot it created is there), the filesystem is
    /// still frozen.
    #[error("--freeze {}: {}, but thawing the filesystem failed: {source}; it is still frozen: run `fsfreeze -u {}`", mountpoint.display(), outcome(answer), mountpoint.display())]
    Thaw {
        /// The mount point.
        mountpoint: PathBuf,
        /// The request's answer.
        answer: Answer,
        /// The error.
        source: io::Error,
    },
    /// The daemon did not exit after stopping.
    #[error("'{name}' answered the stop, but its process {pid} is still running after {}s", EXIT_TIMEOUT.as_secs())]
    StillRunning {
        /// The name.
        name: String,
        /// The daemon's pid.
        pid: u32,
    },
}

/// What the request did, for [`ClientError::Thaw`].
fn outcome(answer: &Answer) -> String {
    match answer {
        Answer::Done(text) => format!("the request was done ({text})"),
        Answer::Refused(text) => format!("the request was refused ({text})"),
    }
}

impl ClientError {
    /// Whether nothing was changed because the request was refused before it
    /// was sent (exit 1), as opposed to a setup problem or a request whose
    /// thaw failed (exit 2).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Freeze { .. })
    }
}

/// Sends `request` to the daemon of `paths` and returns its answer.
pub fn send(paths: &RunPaths, request: &Request) -> Result<Answer, ClientError> {
    let socket = paths.socket();
    let io_error = |action| {
        let socket = socket.clone();
        move |source| ClientError::Io {
            socket,
            action,
            source,
        }
    };
    let stream = UnixStream::connect(&socket).map_err(|source| ClientError::NoDaemon {
        name: paths.name().to_string(),
        socket: socket.clone(),
        source,
    })?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(io_error("cannot set a timeout"))?;
    writeln!(&stream, "{request}").map_err(io_error("cannot send the request"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(io_error("no answer"))?;
    Answer::parse(&line).ok_or_else(|| ClientError::BadReply {
        socket,
        line: line.trim_end().to_string(),
    })
}

/// Sends `request` with the filesystem mounted at `mountpoint` frozen, and
/// thaws it afterwards whatever happened.
pub fn send_frozen(
    paths: &RunPaths,
    request: &Request,
    mountpoint: &Path,
) -> Result<Answer, ClientError> {
    around_freeze(mountpoint, sys::freeze, sys::thaw, || send(paths, request))
}

/// Runs `request` with `freeze` done on `mountpoint` before and `thaw` after,
/// whatever the request did.
fn around_freeze(
    mountpoint: &Path,
    freeze: fn(&File) -> io::Result<()>,
    thaw: fn(&File) -> io::Result<()>,
    request: impl FnOnce() -> Result<Answer, ClientError>,
) -> Result<Answer, ClientError> {
    let freeze_error = |source| ClientError::Freeze {
        mountpoint: mountpoint.to_path_buf(),
        source,
    };
    let directory = File::open(mountpoint).map_err(freeze_error)?;
    freeze(&directory).map_err(freeze_error)?;
    let answer = request();
    let thawed = thaw(&directory);
    let answer = answer?;
    thawed.map_err(|source| ClientError::Thaw {
        mountpoint: mountpoint.to_path_buf(),
        answer: answer.clone(),
        source,
    })?;
    Ok(answer)
}

/// Asks the daemon of `paths` to stop and, once it answered, waits for its
/// process to exit (unless it is this process: a daemon served in-process).
pub fn stop(paths: &RunPaths) -> Result<Answer, ClientError> {
    let pid = paths.read_pid().ok().flatten();
    let answer = send(paths, &Request::Stop)?;
    if let Some(pid) = pid.filter(|&pid| pid != std::process::id()) {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let start = Instant::now();
        while proc.exists() {
            if start.elapsed() > EXIT_TIMEOUT {
                return Err(ClientError::StillRunning {
                    name: paths.name().to_string(),
                    pid,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine(_: &File) -> io::Result<()> {
        Ok(())
    }

    fn failing(_: &File) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }

    #[test]
    fn a_failed_thaw_reports_the_created_snapshot_and_is_no_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let created = || Ok(Answer::Done("created 3 /dev/ublkb4".to_string()));
        let error = around_freeze(dir.path(), fine, failing, created).unwrap_err();
        assert!(!error.is_refusal(), "the snapshot was created: not exit 1");
        let text = error.to_string();
        assert!(
            text.contains(
                "the request was done (created 3 /dev/ublkb4), but thawing the filesystem failed"
            ) && text.contains("it is still frozen: run `fsfreeze -u"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_freeze_sends_nothing_and_is_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let mut sent = false;
        let error = around_freeze(dir.path(), failing, fine, || {
            sent = true;
            Ok(Answer::Done(String::new()))
        })
        .unwrap_err();
        assert!(error.is_refusal());
        assert!(!sent);
        let done = around_freeze(dir.path(), fine, fine, || {
            Ok(Answer::Done("created 0 /dev/ublkb1".to_string()))
        });
        assert_eq!(
            done.unwrap(),
            Answer::Done("created 0 /dev/ublkb1".to_string())
        );
    }
}
