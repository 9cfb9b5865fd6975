//! Kind-neutral steps on device-mapper devices: names, loop devices for image
//! files, the undo list of a multi-step activation, queries, and removal.

use std::path::Path;

use super::error::DmError;
use super::runner::{dmsetup, losetup, Command, Runner};
use super::status::StatusLine;
use super::table::Table;

/// Longest device-mapper name (`DM_NAME_LEN` less the terminating NUL).
const DM_NAME_MAX: usize = 127;
/// Major number of loop devices.
const LOOP_MAJOR: &str = "7";

/// `/dev/mapper/NAME`.
pub(crate) fn mapper(name: &str) -> String {
    format!("/dev/mapper/{name}")
}

/// Refuses a name device-mapper would refuse, or one that would not fit once
/// `suffix` (the name of a companion device) is added.
pub(crate) fn check_name(name: &str, suffix: &str) -> Result<(), DmError> {
    let bad = |problem: String| {
        Err(DmError::BadName {
            name: name.to_string(),
            problem,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("empty, '.' or '..'".to_string());
    }
    if name.contains('/') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain '/', spaces or control characters".to_string());
    }
    if name.len() + suffix.len() > DM_NAME_MAX {
        let with = match suffix {
            "" => String::new(),
            _ => format!(" with '{suffix}'"),
        };
        return bad(format!(
            "too long:{with} it must fit in {DM_NAME_MAX} bytes"
        ));
    }
    Ok(())
}

/// Commands already done, undone in reverse order if a later one fails.
pub(crate) struct Undo<'r> {
    runner: &'r mut dyn Runner,
    undo: Vec<Command>,
}

impl<'r> Undo<'r> {
    /// Nothing done yet.
    pub(crate) fn new(runner: &'r mut dyn Runner) -> Self {
        Undo {
            runner,
            undo: Vec::new(),
        }
    }

    /// Runs `command`; `undo` undoes it if a later step fails.
    pub(crate) fn run(
        &mut self,
        command: Command,
        undo: Option<Command>,
    ) -> Result<String, DmError> {
        let output = self.runner.run(&command)?;
        self.undo.extend(undo);
        Ok(output)
    }

    /// Forgets the undo step `command` (it was done another way).
    pub(crate) fn forget(&mut self, command: &Command) {
        self.undo.retain(|c| c != command);
    }

    /// Undoes every step done, newest first.
    pub(crate) fn roll_back(&mut self) {
        while let Some(command) = self.undo.pop() {
            let _ = self.runner.run(&command);
        }
    }
}

/// A device path for `path`: a loop device for an image file (attached now,
/// `read_only` if asked, detached on roll-back), the path itself for a block
/// device.
pub(crate) fn block_device(
    steps: &mut Undo<'_>,
    path: &Path,
    read_only: bool,
    loops: &mut Vec<String>,
) -> Result<String, DmError> {
    let text = path.display().to_string();
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(text);
    }
    let attach = match read_only {
        true => losetup::attach_read_only(&text),
        false => losetup::attach(&text),
    };
    let output = steps.run(attach, None)?;
    let device = output.trim().to_string();
    steps.undo.push(losetup::detach(&device));
    loops.push(device.clone());
    Ok(device)
}

/// The names of the active devices.
pub(crate) fn active_names(runner: &mut dyn Runner) -> Result<Vec<String>, DmError> {
    let output = runner.run(&dmsetup::names())?;
    Ok(output
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// The table of device `name`.
pub(crate) fn table_of(runner: &mut dyn Runner, name: &str) -> Result<Table, DmError> {
    Ok(runner.run(&dmsetup::table(name))?.trim().parse()?)
}

/// The status of device `name`.
pub(crate) fn status_of(runner: &mut dyn Runner, name: &str) -> Result<StatusLine, DmError> {
    Ok(runner.run(&dmsetup::status(name))?.parse()?)
}

/// The table of device `name`, or `None` when no such device is active.
pub fn active_table(runner: &mut dyn Runner, name: &str) -> Result<Option<Table>, DmError> {
    check_name(name, "")?;
    match active_names(runner)?.iter().any(|n| n == name) {
        true => table_of(runner, name).map(Some),
        false => Ok(None),
    }
}

/// The loop device a table names `device` by, if it is one: `/dev/loopN`
/// itself, or `7:N` as the kernel prints it.
fn loop_device(device: &str) -> Option<String> {
    if let Some(n) = device.strip_prefix("/dev/loop") {
        return n.parse::<u32>().is_ok().then(|| device.to_string());
    }
    let (major, minor) = device.split_once(':')?;
    (major == LOOP_MAJOR && minor.parse::<u32>().is_ok()).then(|| format!("/dev/loop{minor}"))
}

/// Removes `devices` in order, then detaches the loop devices their tables
/// name unless `keep_loops`. Returns the loop devices detached.
pub(crate) fn remove_with_loops(
    runner: &mut dyn Runner,
    devices: &[String],
    keep_loops: bool,
) -> Result<Vec<String>, DmError> {
    let mut loops = Vec::new();
    for device in devices {
        let table = table_of(runner, device)?;
        for loop_dev in table.devices().into_iter().filter_map(loop_device) {
            if !loops.contains(&loop_dev) {
                loops.push(loop_dev);
            }
        }
    }
    for device in devices {
        runner.run(&dmsetup::remove(device))?;
    }
    if keep_loops {
        return Ok(Vec::new());
    }
    for loop_dev in &loops {
        runner.run(&losetup::detach(loop_dev))?;
    }
    Ok(loops)
}
