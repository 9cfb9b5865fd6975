//! Exit codes and the top-level error handler shared by every tool.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | clean, or the job is done |
//! | 1 | the store has problems (check), or the job could not complete because of them |
//! | 2 | usage error, I/O error, not a store |
//! | 3 | cowrepair: the output was written (or, with `--dry-run`, would be) but records were lost |
//! | 4 | a device the job would write is held open elsewhere (mounted, claimed, attached to a loop device); nothing was written |

use std::io::Write;
use std::process::ExitCode;

/// Clean, or done.
pub const EXIT_OK: u8 = 0;
/// The store has problems, or the job stopped because of them.
pub const EXIT_PROBLEMS: u8 = 1;
/// Usage or I/O error, or not a store.
pub const EXIT_FAILURE: u8 = 2;
/// A repair that was done but lost records: dropped, or in unreadable ranges
/// (the report names the origin ranges that now read through to the origin).
pub const EXIT_LOSSY: u8 = 3;
/// A device the job would write is held open elsewhere; refused even with
/// `--force`, before anything is written.
pub const EXIT_IN_USE: u8 = 4;

/// An error that means "the store has problems" (exit 1) rather than "could not
/// run" (exit 2). Wrap it in `anyhow` and return it.
#[derive(Debug)]
pub struct StoreProblems(pub String);

impl std::fmt::Display for StoreProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreProblems {}

/// Runs a tool's body and turns its result into the process exit code: an
/// `Ok(code)` is returned as is; an error is printed as one line
/// `tool: message: cause: cause` on stderr and exits 2 (1 for [`StoreProblems`],
/// 4 for a device held open elsewhere).
/// A closed stdout (`cowdump | head`) ends the tool quietly with 0.
pub fn run(tool: &str, body: impl FnOnce() -> anyhow::Result<u8>) -> ExitCode {
    match body() {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::from(EXIT_OK);
            }
            let mut line = format!("{tool}: {error}");
            for cause in error.chain().skip(1) {
                let text = cause.to_string();
                if !line.contains(&text) {
                    line.push_str(": ");
                    line.push_str(&text);
                }
            }
            let _ = writeln!(std::io::stderr(), "{line}");
            let code = if error.downcast_ref::<StoreProblems>().is_some() {
                EXIT_PROBLEMS
            } else if is_in_use(&error) {
                EXIT_IN_USE
            } else {
                EXIT_FAILURE
            };
            ExitCode::from(code)
        }
    }
}

fn is_in_use(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<cowfmt::Error>(),
            Some(cowfmt::Error::InUse { .. })
        )
    })
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<cowfmt::Error>() {
                Some(cowfmt::Error::Output(io)) => Some(io),
                _ => None,
            }
        });
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error a job stopped with, for [`run`]: damage becomes
/// [`StoreProblems`] (exit 1), anything else stays what it is (exit 2, or 4
/// for a device held open elsewhere).
pub fn job_error(error: cowfmt::job::JobError) -> anyhow::Error {
    match error {
        cowfmt::job::JobError::Damage(message) => StoreProblems(message).into(),
        cowfmt::job::JobError::Failed(error) => error.into(),
    }
}
