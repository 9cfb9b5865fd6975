//! The store a tool writes (mkcow's target): looked at before anything is
//! written (held open elsewhere, signatures, size), then claimed through the
//! output guard; and the size of an origin device.

use std::path::Path;

use anyhow::bail;
use cowfmt::device::{Access, Device};
use cowfmt::output::{self, Marker, OutputClaim, OutputRequest};
use cowfmt::probe;
pub use cowfmt::store::create::planned_size;

use crate::signatures;

/// What a tool writes: the target, its size, `--force`, and the files it
/// reads (the target must be none of them).
pub struct WriteTarget<'a> {
    /// The image file or block device to write.
    pub path: &'a Path,
    /// `--size`: create the image file, or extend it, to this size.
    pub size: Option<u64>,
    /// `--force`.
    pub force: bool,
    /// The files the job reads.
    pub inputs: &'a [&'a Path],
}

/// Looks at the target without changing it: refuses a target held open
/// elsewhere (even forced), refuses to overwrite any signature or a non-zero
/// first chunk unless forced (then says what is overwritten), and returns its
/// size once --size is applied.
pub fn plan_target(
    tool: &str,
    target: &Path,
    size: Option<u64>,
    chunk_sectors: u32,
    force: bool,
) -> anyhow::Result<u64> {
    let device = match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(size) = size else {
                bail!(
                    "{}: does not exist; give --size to create an image file of that size",
                    target.display()
                );
            };
            return Ok(size);
        }
        _ => Device::open(target, Access::ReadOnly)?,
    };
    cowfmt::in_use::refuse_in_use(target)?;
    signatures::guard_overwrite(
        tool,
        &device,
        u64::from(chunk_sectors) * cowfmt::SECTOR_BYTES,
        force,
    )?;
    Ok(planned_size(&device, size))
}

/// Opens the target through the output guard, never the origin or the dump:
/// a missing image file is created exclusively (and removed again if the job
/// fails); an existing target is extended to `--size` and locked for the job.
/// It carries the incomplete marker until the store's header is written last;
/// with `--force`, the magic of every signature still on it is wiped, and so
/// is area 0 of a persistent store it held (the refusal without `--force` came
/// before, in [`plan_target`]).
pub fn open_for_write(write: &WriteTarget<'_>) -> anyhow::Result<(Device, OutputClaim)> {
    let target = write.path;
    let inputs = write.inputs;
    let existing = match std::fs::metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        other => Some(other.map_err(|source| cowfmt::Error::Open {
            path: target.to_path_buf(),
            source,
        })?),
    };
    let Some(meta) = existing else {
        let prepared = output::open_output(&OutputRequest {
            path: target,
            size: write.size.unwrap_or(0),
            size_given: true,
            force: write.force,
            inputs,
        })?;
        return Ok((prepared.device, prepared.claim));
    };
    output::refuse_alias(target, &meta, inputs)?;
    if let Some(size) = write.size {
        Device::create_or_extend(target, size)?;
    }
    let (device, claim) = output::claim_in_place(target)?;
    let mut old_start = [0u8; 16];
    device.read_at(&mut old_start, 0, || "the old header".to_string())?;
    Marker::Writing.write(&device)?;
    if write.force {
        probe::wipe_signatures(&device, &probe::probe(&device)?)?;
        probe::wipe_old_snap_area(&device, &old_start)?;
    }
    Ok((device, claim))
}

/// The size in sectors of the origin device, when one is given.
pub fn origin_sectors(origin: Option<&Path>) -> anyhow::Result<Option<u64>> {
    origin
        .map(|path| Ok(Device::open(path, Access::ReadOnly)?.size_sectors()))
        .transpose()
}
