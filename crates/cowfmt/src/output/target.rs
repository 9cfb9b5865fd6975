//! Opening the output of a job that writes a store (repair, migration,
//! restore, format, the backup of an in-place repair): every refusal happens
//! before the first byte is written, a new file is created exclusively, and
//! what the job created is removed again unless it completes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::device::{Access, Backing, Device};
use crate::error::{Error, Result};
use crate::in_use::refuse_in_use;
use crate::output::alias::refuse_alias;
use crate::output::contents::{contents, Contents};
use crate::output::marker::Marker;
use crate::probe::{probe, wipe_signatures};

/// Bytes at the start of an existing output device that must hold no data
/// unless the caller forces the write.
pub const OUTPUT_PROBE_BYTES: u64 = 1 << 20;

/// Where a new store goes, and what may be overwritten there.
#[derive(Debug, Clone)]
pub struct OutputRequest<'a> {
    /// The output path: a new image file, an empty one, or a block device.
    pub path: &'a Path,
    /// The size of an image file output, in bytes.
    pub size: u64,
    /// Whether the size was asked for explicitly (refused for block devices,
    /// which are always used whole).
    pub size_given: bool,
    /// Overwrite an existing non-empty file or a device that holds data.
    pub force: bool,
    /// Paths that must not be the output: every file the job reads (the
    /// inputs and the origin).
    pub inputs: &'a [&'a Path],
}

/// An opened output: the device, marked incomplete ([`Marker::Writing`] in
/// its first sector) until the job writes the store's header last.
#[derive(Debug)]
pub struct PreparedOutput {
    /// The device, open for writing.
    pub device: Device,
    /// Whether every byte but the marker sector (which the header replaces)
    /// reads as zero (a new or truncated image).
    pub zeroed: bool,
    /// The claim on the output: call [`OutputClaim::keep`] once the job is
    /// done; dropped without it, a file the job created is removed.
    pub claim: OutputClaim,
    /// What was on an existing output that `force` lets the job overwrite
    /// (`a shared store`), for the tool to say so; `None` when nothing was.
    pub overwritten: Option<String>,
}

/// What a job holds on its output while writing it: an exclusive lock on an
/// image file (a second job on the same file is refused), and whether the
/// file is the job's own creation, removed again if the job fails.
#[derive(Debug)]
pub struct OutputClaim {
    path: PathBuf,
    created: Option<(u64, u64)>,
    _lock: Option<File>,
}

impl OutputClaim {
    /// A claim on something that exists and is not locked (a block device,
    /// claimed by the kernel through `O_EXCL`, or an input rewritten in place).
    pub fn unlocked(path: &Path) -> Self {
        OutputClaim {
            path: path.to_path_buf(),
            created: None,
            _lock: None,
        }
    }

    /// The job completed: keep the output and release the lock.
    pub fn keep(mut self) {
        self.created = None;
    }
}

impl Drop for OutputClaim {
    fn drop(&mut self) {
        let Some((dev, ino)) = self.created else {
            return;
        };
        let still_ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == dev && meta.ino() == ino);
        if still_ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens the output of a job that writes a store. A missing file is created
/// exclusively (`O_EXCL`), sparse at `size` bytes; an existing empty file is
/// claimed and sized; an existing non-empty file is refused, or with `force`
/// truncated; a block device is refused when [`contents`] finds anything,
/// unless `force` (then the magic of every signature on it is wiped). A
/// refusal names what is there; with `force`, [`PreparedOutput::overwritten`]
/// does. The output may never be one of the inputs.
/// Image files are locked (`flock`) for the job, so a second job on the same
/// output is refused. A target held open elsewhere (mounted, claimed, attached
/// to a loop device: [`crate::in_use`]) is refused even with `force`.
/// Every check happens before anything is written; then
/// the [`Marker::Writing`] marker goes to the first sector.
pub fn open_output(request: &OutputRequest<'_>) -> Result<PreparedOutput> {
    let path = request.path;
    let prepared = match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_new(request)?,
        Err(source) => {
            return Err(Error::Open {
                path: path.to_path_buf(),
                source,
            })
        }
        Ok(meta) if meta.file_type().is_block_device() => {
            refuse_in_use(path)?;
            open_block_device(request)?
        }
        Ok(meta) if meta.is_file() => {
            refuse_in_use(path)?;
            claim_existing_file(request)?
        }
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "{}: is neither an image file nor a block device",
                path.display()
            )))
        }
    };
    Marker::Writing.write(&prepared.device)?;
    Ok(prepared)
}

/// Opens the input of an in-place rewrite for writing, before anything else
/// (a backup) is made: a busy block device (`O_EXCL`), a read-only file or an
/// image file another job holds (`flock`) is refused here. Returns the device
/// and the claim that holds the lock.
pub fn claim_in_place(path: &Path) -> Result<(Device, OutputClaim)> {
    refuse_in_use(path)?;
    let device = Device::open(path, Access::ReadWrite)?;
    let lock = match device.backing() {
        Backing::File => {
            let file = File::open(path).map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
            Some(lock(&file, path)?)
        }
        Backing::BlockDevice => None,
    };
    Ok((
        device,
        OutputClaim {
            path: path.to_path_buf(),
            created: None,
            _lock: lock,
        },
    ))
}

fn create_new(request: &OutputRequest<'_>) -> Result<PreparedOutput> {
    let path = request.path;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => Error::Invalid(format!(
                "{}: was created by someone else while this job started; refusing to overwrite it",
                path.display()
            )),
            _ => Error::Open {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let meta = stat(&file, path)?;
    let lock = lock(&file, path)?;
    let claim = OutputClaim {
        path: path.to_path_buf(),
        created: Some((meta.dev(), meta.ino())),
        _lock: Some(lock),
    };
    resize(&file, path, request.size)?;
    Ok(PreparedOutput {
        device: Device::from_open_file(file, path)?,
        zeroed: true,
        claim,
        overwritten: None,
    })
}

fn claim_existing_file(request: &OutputRequest<'_>) -> Result<PreparedOutput> {
    let path = request.path;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = stat(&file, path)?;
    refuse_alias(path, &meta, request.inputs)?;
    let lock = lock(&file, path)?;
    let meta = stat(&file, path)?;
    let overwritten = if meta.len() > 0 {
        let existing = Device::from_open_file(clone(&file, path)?, path)?;
        let found = contents(&existing, OUTPUT_PROBE_BYTES)?;
        if !request.force {
            return Err(Error::Invalid(refusal(path, meta.len(), found.as_ref())));
        }
        Some(what_is_overwritten(meta.len(), found))
    } else {
        None
    };
    resize(&file, path, 0)?;
    resize(&file, path, request.size)?;
    Ok(PreparedOutput {
        device: Device::from_open_file(file, path)?,
        zeroed: true,
        claim: OutputClaim {
            path: path.to_path_buf(),
            created: None,
            _lock: Some(lock),
        },
        overwritten,
    })
}

/// Why an existing file of `len` bytes holding `found` is not overwritten
/// without `--force`.
pub(super) fn refusal(path: &Path, len: u64, found: Option<&Contents>) -> String {
    let path = path.display();
    match found {
        Some(found) if found.what == Marker::Writing.describe() => format!(
            "{path}: holds an incomplete output left by a job that was cut short; the input is untouched; remove it or give --force"
        ),
        Some(found) if !found.data_only => format!(
            "{path}: {}; refusing to overwrite it without --force",
            found.refusal
        ),
        _ => format!(
            "{path}: already exists and is not empty ({len} bytes); refusing to overwrite it without --force"
        ),
    }
}

/// What overwriting an existing file of `len` bytes holding `found` destroys.
pub(super) fn what_is_overwritten(len: u64, found: Option<Contents>) -> String {
    found.map_or_else(|| format!("a file of {len} bytes"), |found| found.what)
}

fn open_block_device(request: &OutputRequest<'_>) -> Result<PreparedOutput> {
    let path = request.path;
    if request.size_given {
        return Err(Error::Invalid(format!(
            "{}: is a block device, which is always used whole; drop the size",
            path.display()
        )));
    }
    let meta = std::fs::metadata(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    refuse_alias(path, &meta, request.inputs)?;
    let device = Device::open(path, Access::ReadWrite)?;
    let found = contents(&device, OUTPUT_PROBE_BYTES)?;
    if request.force {
        wipe_signatures(&device, &probe(&device)?)?;
    } else if let Some(found) = &found {
        return Err(Error::Invalid(format!(
            "{}: the device {}; refusing to overwrite it without --force",
            path.display(),
            found.refusal
        )));
    }
    Ok(PreparedOutput {
        device,
        zeroed: false,
        claim: OutputClaim::unlocked(path),
        overwritten: found.map(|f| f.what),
    })
}

fn stat(file: &File, path: &Path) -> Result<std::fs::Metadata> {
    file.metadata().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "cannot stat",
        source,
    })
}

fn resize(file: &File, path: &Path, len: u64) -> Result<()> {
    file.set_len(len).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "cannot resize the image file",
        source,
    })
}

fn clone(file: &File, path: &Path) -> Result<File> {
    file.try_clone().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "cannot reopen",
        source,
    })
}

/// Takes an exclusive `flock` on the open file, without waiting; returns a
/// second handle that holds it for as long as it lives.
fn lock(file: &File, path: &Path) -> Result<File> {
    // SAFETY: flock only reads its integer arguments; the descriptor is owned
    // by `file` and open for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Invalid(format!(
            "{}: another job is writing it (it is locked); refusing to write it too",
            path.display()
        )));
    }
    file.try_clone().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "cannot hold the lock on",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(path: &'a Path, inputs: &'a [&'a Path], force: bool) -> OutputRequest<'a> {
        OutputRequest {
            path,
            size: 1 << 20,
            size_given: false,
            force,
            inputs,
        }
    }

    #[test]
    fn a_new_output_is_marked_and_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        let prepared = open_output(&request(&path, &[], false)).unwrap();
        assert_eq!(
            Marker::read(&prepared.device).unwrap(),
            Some(Marker::Writing)
        );
        drop(prepared);
        assert!(!path.exists());
        let prepared = open_output(&request(&path, &[], false)).unwrap();
        prepared.claim.keep();
        assert!(path.exists());
    }

    #[test]
    fn a_claimed_output_is_refused_to_a_second_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        std::fs::write(&path, b"").unwrap();
        let first = open_output(&request(&path, &[], false)).unwrap();
        let second = open_output(&request(&path, &[], true)).unwrap_err();
        assert!(second.to_string().contains("another job"), "{second}");
        drop(first);
        assert!(path.exists(), "an existing file is never removed");
    }

    #[test]
    fn existing_data_and_inputs_are_refused_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        std::fs::write(&path, b"keep me").unwrap();
        let err = open_output(&request(&path, &[], false)).unwrap_err();
        assert!(err.to_string().contains("not empty (7 bytes)"), "{err}");
        let forced = open_output(&request(&path, &[], true)).unwrap();
        assert_eq!(
            forced.overwritten.as_deref(),
            Some("data (first non-zero byte at offset 0)")
        );
        drop(forced);
        std::fs::write(&path, b"keep me").unwrap();
        let err = open_output(&request(&path, &[&path], true)).unwrap_err();
        assert!(err.to_string().contains("which this job reads"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[test]
    fn an_output_left_by_a_cut_job_is_named_in_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        Marker::Writing
            .write(&Device::create_or_extend(&path, 1 << 20).unwrap())
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = open_output(&request(&path, &[], false)).unwrap_err();
        assert!(
            err.to_string()
                .contains("holds an incomplete output left by a job that was cut short"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
