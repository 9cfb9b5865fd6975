//! Opening the output device of a repair or migration, refusing to overwrite
//! what must not be.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::device::{Access, Device};
use crate::error::{Error, Result};

/// Bytes at the start of an existing output device that must be zero unless
/// the caller forces the write.
const OUTPUT_PROBE_BYTES: u64 = 1 << 20;

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

/// An opened output device.
#[derive(Debug)]
pub struct PreparedOutput {
    /// The device, open for writing.
    pub device: Device,
    /// Whether every byte of it is known to be zero (a new or truncated image).
    pub zeroed: bool,
}

/// Opens the output of a repair or migration: a missing or empty image file
/// is created sparse at `size` bytes; an existing non-empty file is refused,
/// or with `force` truncated and recreated; a block device must hold only
/// zeros in its first MiB unless `force`. The output may never be an input.
pub fn open_output(request: &OutputRequest<'_>) -> Result<PreparedOutput> {
    let path = request.path;
    let existing = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Open {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if let Some(meta) = &existing {
        for input in request.inputs {
            if same_file(meta, input) {
                return Err(Error::Invalid(format!(
                    "{}: the output is the same file as {}, which this job reads",
                    path.display(),
                    input.display()
                )));
            }
        }
    }
    match existing {
        Some(meta) if meta.file_type().is_block_device() => {
            if request.size_given {
                return Err(Error::Invalid(format!(
                    "{}: is a block device, which is always used whole; drop the size",
                    path.display()
                )));
            }
            let device = Device::open(path, Access::ReadWrite)?;
            if !request.force {
                refuse_if_not_zero(&device)?;
            }
            Ok(PreparedOutput {
                device,
                zeroed: false,
            })
        }
        Some(meta) if meta.is_file() => {
            if meta.len() > 0 && !request.force {
                return Err(Error::Invalid(format!(
                    "{}: already exists and is not empty; refusing to overwrite it without --force",
                    path.display()
                )));
            }
            truncate_and_extend(path, request.size)?;
            Ok(PreparedOutput {
                device: Device::open(path, Access::ReadWrite)?,
                zeroed: true,
            })
        }
        Some(_) => Err(Error::Invalid(format!(
            "{}: is neither an image file nor a block device",
            path.display()
        ))),
        None => Ok(PreparedOutput {
            device: Device::create_or_extend(path, request.size)?,
            zeroed: true,
        }),
    }
}

fn same_file(output: &std::fs::Metadata, input: &Path) -> bool {
    let Ok(input) = std::fs::metadata(input) else {
        return false;
    };
    if output.file_type().is_block_device() && input.file_type().is_block_device() {
        return output.rdev() == input.rdev();
    }
    output.dev() == input.dev() && output.ino() == input.ino()
}

fn truncate_and_extend(path: &Path, size: u64) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let resize = |len| {
        file.set_len(len).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            action: "cannot resize the image file",
            source,
        })
    };
    resize(0)?;
    resize(size)
}

fn refuse_if_not_zero(device: &Device) -> Result<()> {
    let len = device.size_bytes().min(OUTPUT_PROBE_BYTES) as usize;
    let mut probe = vec![0u8; len];
    device.read_at(&mut probe, 0, || "the start of the output".to_string())?;
    if let Some(at) = probe.iter().position(|&b| b != 0) {
        return Err(Error::Invalid(format!(
            "{}: the device holds data (byte {at} is not zero); refusing to overwrite it without --force",
            device.path().display()
        )));
    }
    Ok(())
}
