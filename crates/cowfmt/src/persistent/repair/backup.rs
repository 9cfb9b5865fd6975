//! Backing up the input device before an in-place repair, and verifying the
//! copy.

use crate::device::Device;
use crate::error::{Error, Result};

/// Bytes copied at a time when backing up a device.
const COPY_BLOCK: usize = 1 << 20;

/// Copies every byte of `source` to the start of `backup` (which must be at
/// least as large), skipping all-zero blocks when `backup_zeroed`. `progress`
/// gets (bytes copied, bytes to copy).
pub fn copy_device(
    source: &Device,
    backup: &Device,
    backup_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    let mut buffer = vec![0u8; COPY_BLOCK];
    let mut offset = 0u64;
    while offset < total {
        let len = (total - offset).min(COPY_BLOCK as u64) as usize;
        let block = &mut buffer[..len];
        source.read_at(block, offset, || format!("bytes at {offset}"))?;
        if !(backup_zeroed && block.iter().all(|&b| b == 0)) {
            backup.write_at(block, offset)?;
        }
        offset += len as u64;
        progress(offset, total);
    }
    backup.sync()
}

/// Compares `backup` with `source` byte for byte and fails, naming the first
/// differing offset, unless the backup holds an exact copy.
pub fn verify_copy(
    source: &Device,
    backup: &Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    let mut left = vec![0u8; COPY_BLOCK];
    let mut right = vec![0u8; COPY_BLOCK];
    let mut offset = 0u64;
    while offset < total {
        let len = (total - offset).min(COPY_BLOCK as u64) as usize;
        source.read_at(&mut left[..len], offset, || format!("bytes at {offset}"))?;
        backup.read_at(&mut right[..len], offset, || format!("bytes at {offset}"))?;
        if let Some(at) = left[..len]
            .iter()
            .zip(&right[..len])
            .position(|(a, b)| a != b)
        {
            return Err(Error::Invalid(format!(
                "{}: the backup differs from {} at byte {}; the input was not touched",
                backup.path().display(),
                source.path().display(),
                offset + at as u64
            )));
        }
        offset += len as u64;
        progress(offset, total);
    }
    Ok(())
}
