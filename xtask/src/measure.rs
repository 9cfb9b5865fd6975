//! Wall time, peak memory and disk reads of one child process.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What one run of a child process cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// From spawn to exit.
    pub wall: Duration,
    /// The child's peak resident set size (`ru_maxrss`), in bytes.
    pub peak_rss_bytes: u64,
    /// The exit code (`None` when a signal ended it).
    pub exit_code: Option<i32>,
    /// Bytes the child read from the disk (`ru_inblock`, 512-byte blocks):
    /// what the page cache did not hold.
    pub disk_read_bytes: u64,
}

/// Spawns `command` and waits for it with `wait4`, which returns the rusage of
/// that child alone.
pub fn run(command: &mut Command) -> Result<Measured> {
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot run {}", command.get_program().to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = loop {
        // SAFETY: `pid` is our own unwaited child; both pointers point at live
        // locals of the types wait4 writes.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    let wall = started.elapsed();
    if waited != pid {
        bail!(
            "wait4 on child {pid} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    drop(child);
    let exit_code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ok(Measured {
        wall,
        peak_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
        exit_code,
        disk_read_bytes: u64::try_from(usage.ru_inblock).unwrap_or(0) * 512,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_its_exit_code() {
        let measured = run(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(measured.exit_code, Some(3));
        assert!(measured.peak_rss_bytes > 0);
    }
}
