//! Backing up the input device before an in-place repair, and verifying the
//! copy.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::output::MARKER_BYTES;
use crate::sparse::{Extents, SparseCopier};

/// Bytes compared at a time when verifying a backup.
const COPY_BLOCK: usize = 1 << 20;

/// Copies every byte of `source` to the start of `backup` (which must be at
/// least as large), keeping holes: holes and all-zero blocks are skipped when
/// `backup_zeroed`, zeroed otherwise. The first sector, where the backup
/// carries the output guard's incomplete marker, is copied last, after a
/// sync of everything else: a copy cut short never looks like a store.
/// `progress` gets (bytes copied, bytes to copy).
pub fn copy_device(
    source: &Device,
    backup: &Device,
    backup_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = source.size_bytes();
    let first = (MARKER_BYTES as u64).min(total);
    SparseCopier::new(source, backup, backup_zeroed).copy(first, total - first, &mut |done| {
        progress(first + done, total)
    })?;
    backup.sync()?;
    let mut sector = vec![0u8; first as usize];
    source.read_at(&mut sector, 0, || "the first sector".to_string())?;
    backup.write_at(&sector, 0)?;
    backup.sync()?;
    progress(total, total);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Marker;

    #[test]
    fn the_backup_stays_marked_incomplete_until_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let source = Device::create_or_extend(dir.path().join("in.img"), 8 << 20).unwrap();
        source
            .write_at(b"SnAp\x01\0\0\0\x01\0\0\0\x08\0\0\0", 0)
            .unwrap();
        source.write_at(&[7u8; 4096], 3 << 20).unwrap();
        let backup = Device::create_or_extend(dir.path().join("b.img"), 8 << 20).unwrap();
        Marker::Writing.write(&backup).unwrap();
        let mut unmarked_early = Vec::new();
        copy_device(&source, &backup, true, &mut |done, total| {
            if done < total && Marker::read(&backup).unwrap().is_none() {
                unmarked_early.push(done);
            }
        })
        .unwrap();
        assert_eq!(unmarked_early, Vec::<u64>::new());
        verify_copy(&source, &backup, &mut |_, _| {}).unwrap();
    }
}
