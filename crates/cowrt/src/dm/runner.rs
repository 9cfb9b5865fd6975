//! The commands the device-mapper half runs, and who runs them: [`System`]
//! runs them, [`DryRun`] prints each command that would change something
//! (and lets a real runner answer the read-only queries, which change
//! nothing). Command builders for `dmsetup` and `losetup` are in [`dmsetup`]
//! and [`losetup`].

use std::fmt;
use std::io::Write;
use std::process;

/// One command: its argv, and whether it changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// False for queries (status, table, listing).
    pub changes: bool,
}

impl Command {
    fn new(changes: bool, argv: &[&str]) -> Self {
        Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            changes,
        }
    }
}

/// The command as a shell line an admin can paste: words with spaces or shell
/// characters are single-quoted.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.argv.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
            if plain {
                f.write_str(word)?;
            } else {
                write!(f, "'{}'", word.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("{command}: could not run {program}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("{command}: exit status {status}: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: i32,
        /// What it wrote on stderr, its lines joined with "; ".
        stderr: String,
    },
    /// A dry run cannot answer a query: nothing real was asked to.
    #[error("{0}: a dry run without a real runner cannot answer this query")]
    NoAnswer(String),
    /// A dry run was asked the output of a command it only printed.
    #[error("could not print the dry run: {0}")]
    Print(std::io::Error),
}

/// Runs commands; returns what they printed on stdout.
pub trait Runner {
    /// Runs `command`.
    fn run(&mut self, command: &Command) -> Result<String, RunError>;

    /// Whether commands that change something are only printed.
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Runs every command with `std::process::Command`.
#[derive(Debug, Default)]
pub struct System;

impl Runner for System {
    fn run(&mut self, command: &Command) -> Result<String, RunError> {
        let (program, args) = command.argv.split_first().expect("a command has a program");
        let output = process::Command::new(program)
            .args(args)
            .stdin(process::Stdio::null())
            .output()
            .map_err(|source| RunError::Spawn {
                command: command.to_string(),
                program: program.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(RunError::Failed {
                command: command.to_string(),
                status: output.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Prints each command that changes something instead of running it, and
/// answers it with a placeholder (`losetup --find --show FILE` answers
/// `<loop device of FILE>`). Queries go to `queries` when given.
pub struct DryRun<W: Write> {
    out: W,
    queries: Option<Box<dyn Runner>>,
}

impl<W: Write> DryRun<W> {
    /// Prints to `out`; queries are answered by `queries`, if any.
    pub fn new(out: W, queries: Option<Box<dyn Runner>>) -> Self {
        DryRun { out, queries }
    }

    /// The output.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Runner for DryRun<W> {
    fn run(&mut self, command: &Command) -> Result<String, RunError> {
        if !command.changes {
            return match &mut self.queries {
                Some(runner) => runner.run(command),
                None => Err(RunError::NoAnswer(command.to_string())),
            };
        }
        writeln!(self.out, "{command}").map_err(RunError::Print)?;
        Ok(losetup::placeholder(command).unwrap_or_default())
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}

/// `dmsetup` command lines.
pub mod dmsetup {
    use super::Command;
    use crate::dm::table::Table;

    /// `dmsetup create NAME --table LINE`: load and resume a new device.
    pub fn create(name: &str, table: &Table) -> Command {
        Command::new(
            true,
            &["dmsetup", "create", name, "--table", &table.to_string()],
        )
    }

    /// `dmsetup load NAME --table LINE`: stage a new table for the next resume.
    pub fn load(name: &str, table: &Table) -> Command {
        Command::new(
            true,
            &["dmsetup", "load", name, "--table", &table.to_string()],
        )
    }

    /// `dmsetup suspend NAME`.
    pub fn suspend(name: &str) -> Command {
        Command::new(true, &["dmsetup", "suspend", name])
    }

    /// `dmsetup resume NAME`.
    pub fn resume(name: &str) -> Command {
        Command::new(true, &["dmsetup", "resume", name])
    }

    /// `dmsetup remove NAME`.
    pub fn remove(name: &str) -> Command {
        Command::new(true, &["dmsetup", "remove", name])
    }

    /// `dmsetup mknodes`: the `/dev/mapper` nodes udev would make (without
    /// udev, `create` makes none: runtime.md 3.4).
    pub fn mknodes() -> Command {
        Command::new(true, &["dmsetup", "mknodes"])
    }

    /// `dmsetup message NAME 0 WORDS...`: a message to the target at sector 0.
    pub fn message(name: &str, words: &[String]) -> Command {
        let mut argv = vec!["dmsetup", "message", name, "0"];
        argv.extend(words.iter().map(String::as_str));
        Command::new(true, &argv)
    }

    /// `dmsetup status NAME`.
    pub fn status(name: &str) -> Command {
        Command::new(false, &["dmsetup", "status", name])
    }

    /// `dmsetup table NAME`.
    pub fn table(name: &str) -> Command {
        Command::new(false, &["dmsetup", "table", name])
    }

    /// `dmsetup info -c --noheadings -o name`: every device's name, one a line.
    pub fn names() -> Command {
        Command::new(
            false,
            &["dmsetup", "info", "-c", "--noheadings", "-o", "name"],
        )
    }
}

/// `losetup` command lines.
pub mod losetup {
    use super::Command;

    /// `losetup --find --show FILE`: attach `file` to a free loop device and
    /// print its name.
    pub fn attach(file: &str) -> Command {
        Command::new(true, &["losetup", "--find", "--show", file])
    }

    /// `losetup --find --show --read-only FILE`: the same, read-only (for a
    /// device nothing may write, such as a clone's source).
    pub fn attach_read_only(file: &str) -> Command {
        Command::new(true, &["losetup", "--find", "--show", "--read-only", file])
    }

    /// `losetup --detach DEVICE`.
    pub fn detach(device: &str) -> Command {
        Command::new(true, &["losetup", "--detach", device])
    }

    /// What a dry run answers for `command`: a name standing for the loop
    /// device an attach would print.
    pub(super) fn placeholder(command: &Command) -> Option<String> {
        match command.argv.as_slice() {
            [losetup, find, show, .., file]
                if losetup == "losetup" && find == "--find" && show == "--show" =>
            {
                Some(format!("<loop device of {file}>"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::table::{Persistence, SnapshotArgs, Table};

    #[test]
    fn commands_print_as_shell_lines() {
        let table = Table::Snapshot {
            sectors: 2048,
            snapshot: SnapshotArgs {
                origin: "/dev/vda".into(),
                cow: "/dev/vdb".into(),
                persistence: Persistence::Persistent,
                chunk_sectors: 8,
            },
        };
        assert_eq!(
            dmsetup::create("snap", &table).to_string(),
            "dmsetup create snap --table '0 2048 snapshot /dev/vda /dev/vdb P 8'"
        );
        assert_eq!(
            losetup::attach("/tmp/it's.img").to_string(),
            r"losetup --find --show '/tmp/it'\''s.img'"
        );
        assert!(!dmsetup::status("snap").changes);
    }

    #[test]
    fn a_dry_run_prints_changes_and_passes_queries_on() {
        struct Answer;
        impl Runner for Answer {
            fn run(&mut self, command: &Command) -> Result<String, RunError> {
                Ok(format!("answer to {}", command.argv[1]))
            }
        }
        let mut dry = DryRun::new(Vec::new(), Some(Box::new(Answer)));
        assert_eq!(
            dry.run(&losetup::attach("a.img")).unwrap(),
            "<loop device of a.img>"
        );
        assert_eq!(
            dry.run(&losetup::attach_read_only("b.img")).unwrap(),
            "<loop device of b.img>"
        );
        assert_eq!(dry.run(&dmsetup::remove("x")).unwrap(), "");
        assert_eq!(dry.run(&dmsetup::table("x")).unwrap(), "answer to table");
        assert!(dry.is_dry_run());
        let printed = String::from_utf8(dry.into_inner()).unwrap();
        assert_eq!(
            printed,
            "losetup --find --show a.img\nlosetup --find --show --read-only b.img\n\
             dmsetup remove x\n"
        );

        let mut alone = DryRun::new(Vec::new(), None);
        assert_eq!(
            alone.run(&dmsetup::status("x")).unwrap_err().to_string(),
            "dmsetup status x: a dry run without a real runner cannot answer this query"
        );
    }

    #[test]
    fn a_failing_program_reports_its_status_and_stderr() {
        let mut system = System;
        let failing = Command::new(
            false,
            &["sh", "-c", "echo 'Device does not exist.' >&2; exit 1"],
        );
        let error = system.run(&failing).unwrap_err().to_string();
        assert!(
            error.ends_with(": exit status 1: Device does not exist."),
            "{error}"
        );
        let missing = Command::new(false, &["/nonexistent/dmsetup"]);
        assert!(matches!(system.run(&missing), Err(RunError::Spawn { .. })));
    }
}
