//! Running one case: a fresh directory with the inputs it names, the command,
//! and everything it left behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::build::ToolDir;
use super::cases::Case;

/// How long one command may run before it counts as hung.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// What one run of a case did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// Every entry left in the directory, by relative path.
    pub files: BTreeMap<PathBuf, Entry>,
}

/// One entry of the case directory after the run.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file: its permission bits and bytes.
    File { mode: u32, bytes: Vec<u8> },
    /// A directory.
    Dir,
    /// A symbolic link and its target.
    Link(PathBuf),
}

/// Runs `case` with the tools in `tools`, in `dir` (emptied first and filled
/// with the inputs the case names, copied from `pool`).
pub fn run_case(case: &Case, tools: &ToolDir, pool: &Path, dir: &Path) -> Result<Outcome> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    for name in case.inputs(pool) {
        copy_entry(&pool.join(&name), &dir.join(&name))?;
    }
    let mut command = Command::new(tools.path(case.tool()));
    command
        .args(case.args())
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match case.stdin() {
        Some(name) => command
            .stdin(File::open(pool.join(name)).with_context(|| format!("{name}: no such input"))?),
        None => command.stdin(Stdio::null()),
    };
    let (code, stdout, stderr) = run_bounded(&mut command, case)?;
    Ok(Outcome {
        code,
        stdout,
        stderr,
        files: entries(dir)?,
    })
}

fn copy_entry(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_entry(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Runs `command`, reading its output as it comes, killing it after [`TIME_LIMIT`].
fn run_bounded(command: &mut Command, case: &Case) -> Result<(Option<i32>, Vec<u8>, Vec<u8>)> {
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", command.get_program().to_string_lossy()))?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            child.kill()?;
            child.wait()?;
            bail!(
                "{}: still running after {TIME_LIMIT:?}; killed",
                case.name()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().expect("the stdout reader does not panic")?;
    let stderr = err.join().expect("the stderr reader does not panic")?;
    Ok((status.code(), stdout, stderr))
}

fn reader<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> thread::JoinHandle<std::io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    })
}

/// Every entry under `dir`, by path relative to it.
fn entries(dir: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in
            fs::read_dir(&folder).with_context(|| format!("{}: cannot list", folder.display()))?
        {
            let path = entry?.path();
            let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
            let meta = fs::symlink_metadata(&path)?;
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(fs::read_link(&path)?)
            } else if meta.is_dir() {
                pending.push(path);
                Entry::Dir
            } else {
                Entry::File {
                    mode: meta.permissions().mode() & 0o7777,
                    bytes: fs::read(&path)
                        .with_context(|| format!("{}: cannot read", path.display()))?,
                }
            };
            found.insert(relative, entry);
        }
    }
    Ok(found)
}
