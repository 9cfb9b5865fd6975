//! Backing up the input device before an in-place repair, and verifying the
//! copy.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::sparse::{Extents, SparseCopier};

/// Bytes compared at a time when verifying a backup.
const COPY_BLOCK: usize = 1 << 20;

/// Copies every byte of `source` to the start of `backup` (which must be at
/// least as large), keeping holes: holes and all-zero blocks are skipped when
/// `backup_zeroed`, zeroed otherwise. `progress` gets (bytes copied, bytes to
/// copy).
pub fn copy_device(
    source: &Device,
    backup: &Device,
    backup_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    SparseCopier::new(source, backup, backup_zeroed)
        .copy(0, total, &mut |done| progress(done, total))?;
    backup.sync()
}

/// Compares `backup` with `source` byte for byte (blocks that are holes in
/// both read as zeros and are not read) and fails, naming the first differing
/// offset, unless the backup holds an exact copy.
pub fn verify_copy(
    source: &Device,
    backup: &Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    let mut left = vec![0u8; COPY_BLOCK];
    let mut right = vec![0u8; COPY_BLOCK];
    let (mut source_extents, mut backup_extents) = (Extents::new(source), Extents::new(backup));
    let mut offset = 0u64;
    while offset < total {
        let len = (total - offset).min(COPY_BLOCK as u64) as usize;
        if source_extents.is_hole(offset, len as u64) && backup_extents.is_hole(offset, len as u64)
        {
            offset += len as u64;
            progress(offset, total);
            continue;
        }
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
